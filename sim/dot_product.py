"""Golden twin of :class:`qmac.hw.int_datapath.dot_product.DotProduct`."""

from qmac.sim.lane_product import lane_product

__all__ = ["dot_product"]


def dot_product(w, a, mode):
    """Lane bytes ``(..., V)`` -> exact ``sum`` over lanes of :func:`lane_product` (int64, shape ``(...)``)."""
    return lane_product(w, a, mode).sum(axis=-1)
