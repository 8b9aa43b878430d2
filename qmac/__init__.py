"""qmac: an RTL generator for the arithmetic core of a low-precision deep-learning accelerator.

The distribution ``qmac`` is assembled from the folders of the repository (see README, "Map"):

``qmac.hw`` (``hw/``)
    gateware: Amaranth components and boards; ``qmac.hw.spec`` (``hw/spec/``) the number formats, payload
    layouts and limits that the gateware and the golden model both read.
``qmac.sim`` (``sim/``)
    the numpy golden model and host numerics (quantizers, sparse formats).
``qmac.tb`` (``tb/``)
    verification: cocotb testbenches and simulator runners.
``qmac`` (``qmac/``)
    the application: the command line (``qmac.cli``), the host driver (``qmac.host``), toolchain runners
    (``qmac.toolchain``) and the GEMM engines (``qmac.engine``).

Imports run downwards only: spec <- hw, sim <- tb <- application."""
