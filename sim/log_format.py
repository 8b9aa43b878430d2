"""Host side of the logarithmic format: float encoder and decoder, and value maps that compare formats.

The code layout and the datapath operations are :class:`qmac.hw.spec.log_format.LogFormat`; the decoder uses
them with numpy, so both sides read a code the same way.
"""

from dataclasses import dataclass

import numpy as np

from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat

__all__ = ["decode", "encode", "thresholds", "ValueMap", "int_value_map", "log_value_map", "E2M1",
           "compared_formats"]


def _codes(fmt, codes):
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu" or (codes.size and (codes.min() < 0 or codes.max() >= 1 << fmt.bits)):
        raise ValueError(f"codes of a {fmt.bits}-bit log format must be integers from 0 to "
                         f"{(1 << fmt.bits) - 1}")
    return codes.astype(np.int64)


def decode(fmt, codes):
    """The float64 value of every code: 0.0 for a zero code, else ``(-1)**s * 2**(e / 2**F)``.

    ``2**(e / 2**F)`` is ``numpy.exp2`` of the exact dyadic ``e / 2**F``.
    """
    codes = _codes(fmt, codes)
    mag = np.exp2(fmt.exponent(codes) / fmt.buckets)
    return np.where(fmt.is_zero(codes), 0.0, np.where(fmt.sign(codes) == 1, -mag, mag))


def thresholds(fmt):
    """Decision thresholds of :func:`encode`, ascending: ``T[k] = exp2((2*(k + 1 - bias) - 1) / 2**(F+1))``
    for ``k = 0 .. 2**(bits-1) - 2`` (float64, by ``numpy.exp2`` of the exact dyadic exponent).

    ``T[k]`` is the geometric mean of the magnitudes of fields ``k`` and ``k + 1``, i.e. their midpoint in
    the log domain; ``T[0]`` lies half a step below the smallest magnitude.
    """
    f = np.arange(1, 1 << fmt.field_bits)
    return np.exp2((2 * (f - fmt.bias) - 1) / (2 * fmt.buckets))


def encode(fmt, x):
    """Nearest code in the log domain of every float in ``x`` (an int64 array of codes).

    The field is the number of thresholds ``T[k] <= |x|`` (:func:`thresholds`), so:

    - nearest in the log domain, and a tie (``|x|`` equal to a threshold) goes to the larger magnitude;
    - ``|x| < T[0]``, i.e. more than half a step below the smallest magnitude in the log domain, gives
      zero, encoded ``0`` (sign 0, also for negative ``x`` and ``-0.0``);
    - ``|x| >= T[-1]`` (half a step above the largest magnitude, and infinity) saturates to the largest
      magnitude with the sign of ``x``.

    Raises
    ------
    ValueError
        If ``x`` holds a NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("cannot encode NaN in a log format")
    field = np.searchsorted(thresholds(fmt), np.abs(x), side="right").astype(np.int64)
    negative = np.signbit(x) & (field > 0)
    return (negative.astype(np.int64) << fmt.field_bits) | field


@dataclass(frozen=True)
class ValueMap:
    """The positive magnitudes of a number format and where its round-to-nearest switches between them.

    Parameters
    ----------
    name : str
    values : tuple of float
        Non-zero magnitudes, ascending.
    thresholds : tuple of float
        ``len(values) - 1`` decision points; ``thresholds[k]`` separates ``values[k]`` and
        ``values[k+1]``, and a magnitude equal to it goes up.
    zero_threshold : float
        Magnitudes below it round to zero.
    """
    name: str
    values: tuple
    thresholds: tuple
    zero_threshold: float

    def quantize(self, x):
        """Rounded magnitudes of the non-negative array ``x`` (saturating at the largest value)."""
        x = np.asarray(x, dtype=np.float64)
        v = np.asarray(self.values)[np.searchsorted(self.thresholds, x, side="right")]
        return np.where(x < self.zero_threshold, 0.0, v)

    @property
    def dynamic_range(self):
        """Largest over smallest non-zero magnitude."""
        return self.values[-1] / self.values[0]

    def worst_relative_error(self, lo=None, hi=None):
        """Supremum of ``|quantize(x) - x| / x`` over ``x`` in ``[lo, hi]`` (default: smallest to largest
        magnitude).

        Between neighbours ``a < b`` with threshold ``t``: rounding down on ``[a, t)`` errs by ``(x-a)/x``,
        which grows with ``x``; rounding up on ``[t, b]`` by ``(b-x)/x``, which shrinks with ``x``.
        """
        lo = self.values[0] if lo is None else lo
        hi = self.values[-1] if hi is None else hi
        a, b, t = (np.asarray(v) for v in (self.values[:-1], self.values[1:], self.thresholds))
        down_end = np.minimum(t, hi)
        down = np.where(down_end > np.maximum(a, lo), (down_end - a) / down_end, 0.0)
        up_start = np.maximum(t, lo)
        up = np.where(up_start <= np.minimum(b, hi), (b - up_start) / up_start, 0.0)
        return float(max(down.max(), up.max()))


def _linear_map(name, values):
    values = tuple(float(v) for v in values)
    mid = tuple((p + q) / 2 for p, q in zip(values, values[1:]))
    return ValueMap(name, values, mid, values[0] / 2)


def int_value_map(bits):
    """``INT<bits>`` as the quantizers produce it: magnitudes ``1 .. 2**(bits-1) - 1``, nearest rounding."""
    return _linear_map(f"INT{bits}", range(1, 1 << (bits - 1)))


def log_value_map(fmt, name=None):
    """``fmt`` as :func:`encode` rounds it."""
    t = thresholds(fmt)
    values = decode(fmt, np.arange(1, 1 << fmt.field_bits))
    return ValueMap(name or f"LNS{fmt.bits} (F={fmt.frac_bits})", tuple(values), tuple(t[1:]), float(t[0]))


#: 4-bit float E2M1 (OCP MX FP4): magnitudes 0.5, 1, 1.5, 2, 3, 4, 6, nearest rounding.
E2M1 = _linear_map("E2M1", (0.5, 1, 1.5, 2, 3, 4, 6))


def compared_formats():
    """The formats of the comparison in ``docs/lns.md``: INT8, INT4, E2M1, LNS8, LNS4 and LNS4 with F = 1."""
    return (int_value_map(8), int_value_map(4), E2M1, log_value_map(LNS8), log_value_map(LNS4),
            log_value_map(LogFormat(4, 1)))
