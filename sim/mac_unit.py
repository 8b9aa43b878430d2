"""Golden twin of :class:`qmac.hw.array.mac_unit.MacUnit`'s accumulator."""

import numpy as np

from qmac.sim.ops import NumpyOps

__all__ = ["accumulate"]


def accumulate(psums, config):
    """Accumulate per-beat partial sums ``(beats, ...)`` of one tile as the hardware does.

    ``acc = (first ? 0 : acc) + psum`` beat by beat, saturated to ``config.acc_format`` when the
    accumulators are narrower than exact. Returns ``(acc, saturated)`` with ``saturated`` true where any
    beat clipped.
    """
    psums = np.asarray(psums, dtype=np.int64)
    if not config.saturating:
        return psums.sum(axis=0), np.zeros(psums.shape[1:], dtype=bool)
    acc = np.zeros(psums.shape[1:], dtype=np.int64)
    sat = np.zeros(psums.shape[1:], dtype=bool)
    for psum in psums:
        acc, clipped = config.acc_format.saturate(acc + psum, NumpyOps)
        sat |= clipped
    return acc, sat
