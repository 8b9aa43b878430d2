"""Golden twin of :class:`qmac.hw.lanes.lane_product.LaneProduct`: computed from the definition, not the circuit."""

import numpy as np

from qmac.sim.packing import unpack_lanes

__all__ = ["lane_product"]


def lane_product(w, a, mode):
    """Lane bytes ``w``, ``a`` (any equal shapes) -> ``w*a`` (INT8) or ``w0*a0 + w1*a1`` (INT4), int64."""
    wc = unpack_lanes(np.asarray(w)[..., None], mode)
    ac = unpack_lanes(np.asarray(a)[..., None], mode)
    return (wc * ac).sum(axis=-1)
