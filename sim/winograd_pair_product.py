"""Golden twin of :class:`qmac.hw.lanes.winograd_pair_product.WinogradPairProduct`: computed from the definition, not
the circuit."""

from qmac.sim.packing import unpack_lanes

__all__ = ["winograd_pair_product"]


def winograd_pair_product(w, a, mode):
    """Lane bytes ``w``, ``a`` of shape ``(..., 2)`` -> ``sum_i (a[2i] + w[2i+1]) * (a[2i+1] + w[2i])`` over
    the element pairs of the two lanes (INT8: one pair; INT4: two, each lane's low then high element), int64
    of shape ``(...)``."""
    we, ae = unpack_lanes(w, mode), unpack_lanes(a, mode)
    return ((ae[..., 0::2] + we[..., 1::2]) * (ae[..., 1::2] + we[..., 0::2])).sum(axis=-1)
