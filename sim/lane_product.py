"""Golden twin of :class:`qmac.hw.lanes.lane_product.LaneProduct`: computed from the definition, not the circuit."""

import numpy as np

from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.sim.packing import unpack_lanes

__all__ = ["lane_product"]


def lane_product(w, a, mode):
    """Lane bytes ``w`` and ``a`` (equal shapes; for W4A8 ``a`` has one more trailing axis of 2 bytes, the
    lane's two INT8 activations) -> ``w*a`` (INT8) or ``w0*a0 + w1*a1`` (INT4, W4A8), int64."""
    fmt = ELEMENT_FORMATS[mode]
    w_fmt, a_fmt = fmt.operands
    a = np.asarray(a)
    wc = unpack_lanes(np.asarray(w)[..., None], w_fmt.name)
    ac = unpack_lanes(a[..., None] if fmt.activation_lanes == 1 else a, a_fmt.name)
    return (wc * ac).sum(axis=-1)
