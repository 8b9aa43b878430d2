"""Golden twin of :class:`qmac.hw.dot_product.DotProduct`."""

from .lane_product import lane_product

__all__ = ["dot_product"]


def dot_product(w, a, mode):
    """Lane bytes ``(..., V)`` -> exact ``sum`` over lanes of :func:`lane_product` (int64, shape ``(...)``)."""
    return lane_product(w, a, mode).sum(axis=-1)
