"""Golden twin of :class:`qmac.hw.int_datapath.dot_product.DotProduct`."""

import numpy as np

from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.sim.lane_product import lane_product

__all__ = ["dot_product"]


def dot_product(w, a, mode):
    """Lane bytes ``w`` ``(..., V)`` and ``a`` ``(..., V)`` (W4A8: ``(..., 2V)``, lane ``i``'s activations at
    ``2i``, ``2i + 1``) -> exact ``sum`` over lanes of :func:`lane_product` (int64, shape ``(...)``)."""
    w, a = np.asarray(w), np.asarray(a)
    k = ELEMENT_FORMATS[mode].activation_lanes
    if k > 1:
        a = a.reshape(a.shape[:-1] + (w.shape[-1], k))
    return lane_product(w, a, mode).sum(axis=-1)
