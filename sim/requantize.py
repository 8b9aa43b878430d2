"""Golden twin of :class:`qmac.hw.output.requantize.Requantize`, and the host encoding of TFLite shifts."""

import numpy as np
from amaranth.hdl import Shape

from qmac.hw.spec.formats import IntFormat
from qmac.hw.spec.requantize import PARAMS, SHIFT_BITS, RequantizeArithmetic

from qmac.sim.ops import NumpyOps

__all__ = ["requantize", "tflite_shift_field"]


def requantize(acc, multiplier, shift, zero_point, int4, tflite, acc_bits, rounding="half_even"):
    """Rows of accumulators to output codes, exactly as :class:`qmac.hw.output.requantize.Requantize`.

    The stages of :class:`qmac.hw.spec.requantize.RequantizeArithmetic` run on numpy object arrays of Python
    ints, since the aligned values reach ``max(acc_bits, 32) + 95`` bits.

    Parameters
    ----------
    acc : array_like of int, shape (..., C)
        Accumulators, each in ``acc_bits`` signed bits.
    multiplier, shift, zero_point, int4, tflite : array_like of int, shape (...) or broadcastable
        Per-row fields of :data:`qmac.hw.spec.requantize.PARAMS`, each within its field's range.
    acc_bits : int
        As :class:`~qmac.hw.output.requantize.Requantize`.
    rounding : str
        As :class:`~qmac.hw.output.requantize.Requantize`.

    Returns
    -------
    q : ndarray of int64, shape (..., C)
        Output codes, in [-8, 7] where ``int4`` else in [-128, 127].
    clipped : ndarray of bool, shape (...)
        ``o.clipped`` of each row.

    Raises
    ------
    ValueError
        A value is outside its field.
    """
    arith = RequantizeArithmetic(acc_bits, rounding)
    rows = {"multiplier": multiplier, "shift": shift, "zero_point": zero_point, "int4": int4, "tflite": tflite}
    p = {}
    for name, values in rows.items():
        shape = Shape.cast(PARAMS.members[name])
        field = IntFormat(shape.width, shape.signed)
        p[name] = _checked(name, values, field.min, field.max).astype(np.int64)[..., None]
    acc_format = IntFormat(acc_bits)
    x = _checked("acc", acc, acc_format.min, acc_format.max)
    clipped = np.zeros(x.shape, dtype=bool)
    for _, stage, _ in arith.stages:
        x, flag = stage(x, p, NumpyOps)
        clipped = clipped | flag
    return x.astype(np.int64), clipped.any(axis=-1)


def _checked(name, values, lo, hi):
    """``values`` as an object array of Python ints, checked to lie in ``[lo, hi]``."""
    values = np.asarray(values, dtype=object)
    if values.size and not (lo <= values.min() and values.max() <= hi):
        raise ValueError(f"{name} must be within [{lo}, {hi}], not {values.min()}..{values.max()}")
    return values


def tflite_shift_field(shift):
    """TFLite's per-channel ``shift`` (positive: left, negative: right, -31..32) -> the ``shift`` field
    of a TFLite-mode row: the right-shift exponent ``-shift`` in 6-bit two's complement."""
    half = 1 << (SHIFT_BITS - 1)
    shift = _checked("TFLite shift", shift, 1 - half, half).astype(np.int64)
    return (-shift) & ((1 << SHIFT_BITS) - 1)
