"""Golden twin of :class:`qmac.hw.lanes.winograd_correction.WinogradCorrection`: computed from the definition, not the
circuit."""

from qmac.sim.packing import unpack_lanes

__all__ = ["winograd_correction"]


def winograd_correction(v, mode):
    """Lane bytes ``v`` of shape ``(..., V)`` -> ``sum_i v[2i] * v[2i+1]`` over the elements of ``v`` (INT8: the
    lanes; INT4: each lane's low then high element), int64 of shape ``(...)``."""
    e = unpack_lanes(v, mode)
    return (e[..., 0::2] * e[..., 1::2]).sum(axis=-1)
