"""Golden twin of :class:`qmac.hw.output.requantize.Requantize`, and the host encoding of TFLite's multipliers and
shifts."""

import math

import numpy as np
from amaranth.hdl import Shape

from qmac.hw.spec.formats import IntFormat
from qmac.hw.spec.requantize import PARAMS, SHIFT_BITS, RequantizeArithmetic

from qmac.sim.ops import NumpyOps

__all__ = ["requantize", "tflite_shift_field", "quantize_multiplier"]


def requantize(acc, multiplier, shift, zero_point, int4, mode, acc_bits, rounding="half_even"):
    """Rows of accumulators to output codes, exactly as :class:`qmac.hw.output.requantize.Requantize`.

    The stages of :class:`qmac.hw.spec.requantize.RequantizeArithmetic` run on numpy object arrays of Python
    ints, since the aligned values reach ``max(acc_bits, 32) + 95`` bits.

    Parameters
    ----------
    acc : array_like of int, shape (..., C)
        Accumulators, each in ``acc_bits`` signed bits.
    multiplier, shift, zero_point, int4, mode : array_like of int, shape (...) or broadcastable
        Per-row fields of :data:`qmac.hw.spec.requantize.PARAMS`, each within its field's range (``mode``: the
        index in :data:`qmac.hw.spec.requantize.MODES`).
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
    rows = {"multiplier": multiplier, "shift": shift, "zero_point": zero_point, "int4": int4, "mode": mode}
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
    of a TFLite-style row (every mode but ``fixed``): the right-shift exponent ``-shift`` in 6-bit two's
    complement."""
    half = 1 << (SHIFT_BITS - 1)
    shift = _checked("TFLite shift", shift, 1 - half, half).astype(np.int64)
    return (-shift) & ((1 << SHIFT_BITS) - 1)


def quantize_multiplier(real):
    """TFLite's ``QuantizeMultiplier``: a real factor -> ``(multiplier, shift)`` with
    ``real ~= multiplier * 2**(shift - 31)``, exactly as ``tflite/kernels/internal/quantization_util.cc``
    computes it (the default build: ``frexp``, not ``TFLITE_EMULATE_FLOAT`` or ``TFLITE_SINGLE_ROUNDING``).

    ``real = q * 2**shift`` with ``q`` in [0.5, 1) (``frexp``, exact); ``multiplier = round(q * 2**31)``
    with ties away from zero (``TfLiteRound``; ``q * 2**31`` is exact in double, so a tie needs ``q``'s
    last bit at 2**-32 or below); a ``multiplier`` that rounds up to 2**31 becomes 2**30 with ``shift + 1``;
    ``shift < -31`` flushes to ``(0, 0)``, and ``real == 0`` is ``(0, 0)``. A negative ``real`` gives a
    negative ``multiplier`` (TFLite's kernels assume ``multiplier >= 0``; the output stage accepts both).
    The result feeds a TFLite-style row as ``multiplier`` and :func:`tflite_shift_field` ``(shift)``.

    Parameters
    ----------
    real : float
        The factor, a finite Python float (double), usually ``input_scale * filter_scale / output_scale``.

    Returns
    -------
    multiplier : int
        In [-2**31 + 1, 2**31 - 1]; ``abs`` in [2**30, 2**31) unless zero.
    shift : int
        TFLite's exponent, positive for a left shift; at least -31. A ``real`` of 2**32 or more has
        ``shift`` above 32, which no row can hold (:func:`tflite_shift_field` rejects it).

    Raises
    ------
    ValueError
        ``real`` is not finite.
    """
    real = float(real)
    if not math.isfinite(real):
        raise ValueError(f"real multiplier must be finite, not {real!r}")
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    scaled = abs(q) * (1 << 31)  # exact: a double times a power of two
    multiplier = math.floor(scaled) + (scaled - math.floor(scaled) >= 0.5)  # half away from zero, on |q|
    if multiplier == 1 << 31:
        multiplier, shift = multiplier // 2, shift + 1
    if shift < -31:
        return 0, 0
    return (multiplier if q > 0 else -multiplier), shift
