"""The spec layer: every number format and its arithmetic, every port payload layout, every limit.

Read by the gateware (``qmac.hw``) and by the golden model (``qmac.sim``); imports no component. The
bit-level document of each format is ``docs/formats.md``."""
