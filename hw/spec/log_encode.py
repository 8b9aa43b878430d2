"""Linear fixed point to log codes, written once: leading-one detection, then comparison with the exact
log-domain midpoints. :class:`qmac.hw.log_datapath.log_encode.LogEncode` registers its stages, the golden twin
:func:`qmac.sim.log_encode.log_encode` chains them. The rounding is specified in ``docs/lns.md`` ("Log-code output").
"""

from dataclasses import dataclass
from math import isqrt

from amaranth.hdl import signed, unsigned

from qmac.hw.spec.checks import ConfigError, check_int
from qmac.hw.spec.log_format import LogFormat

__all__ = ["LogEncodeArithmetic", "MAX_IN_BITS", "MAX_SHIFT_BITS", "MAX_IN_EXPONENT"]

#: Widest input.
MAX_IN_BITS = 128
#: Widest ``shift`` input.
MAX_SHIFT_BITS = 16
#: Largest ``|in_exponent|``.
MAX_IN_EXPONENT = 1024


@dataclass(frozen=True)
class LogEncodeArithmetic:
    """Rounds ``x * 2**in_exponent * 2**(-shift / 2**F)`` to the nearest code of ``fmt`` in the log domain.

    ``x`` is a signed integer of ``in_bits`` bits, ``shift`` a signed integer of ``shift_bits`` bits (0 when
    ``shift_bits == 0``). With ``W = in_bits``, ``m = |x|`` (``0 .. 2**(W-1)``, ``W`` bits unsigned):

    1. ``magnitude``: ``sign = x < 0``, ``m = |x|``;
    2. ``normalize``: ``z`` = leading zeros of ``m`` in ``W`` bits (``z = W`` for ``m = 0``) and the
       normalized mantissa ``n = m << z`` (:meth:`normalize`), so ``2**(W-1) <= n < 2**W`` for ``m > 0``, and
       ``m = n * 2**(L - W + 1)`` with ``L = W - 1 - z`` the position of the leading one;
    3. ``code``: ``j`` = the number of midpoints ``D_i <= n`` (:attr:`midpoints`, ``i = 1 .. 2**F``), the
       exponent ``e = 2**F * (L + in_exponent) + j - shift`` and the field ``f = e + bias``. The code is 0
       if ``m = 0`` or ``f < 1``, else ``sign`` above ``min(f, 2**(bits-1) - 1)``.

    ``D_i = floor(2**(W-1) * 2**((2i - 1) / 2**(F+1))) + 1`` is the smallest ``W``-bit mantissa at or above
    the log-domain midpoint between ``2**((i-1) / 2**F)`` and ``2**(i / 2**F)``, computed exactly (``F + 1``
    nested integer square roots). The midpoint itself is irrational, so no mantissa equals it: ``j`` is
    exactly ``round(2**F * log2(n / 2**(W-1)))``, and ``e`` is exactly the integer nearest to
    ``2**F * log2(|value|)`` (``shift`` is an integer in those units, so it moves no rounding boundary).
    This is :func:`qmac.sim.log_format.encode` of the exact value, with the thresholds taken exactly
    instead of as float64: zero below half a step under the smallest magnitude, the largest magnitude for
    every ``|value|`` from the midpoint under it up (saturation), zero always coded ``0``.

    Parameters
    ----------
    fmt : LogFormat
    in_bits : int
        ``W``, width of the signed input, 2 to :data:`MAX_IN_BITS`.
    in_exponent : int
        The input's value is ``x * 2**in_exponent``; ``|in_exponent| <=`` :data:`MAX_IN_EXPONENT`.
    shift_bits : int
        Width of the signed ``shift`` input, 0 (no shift) to :data:`MAX_SHIFT_BITS`.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    """
    fmt: LogFormat
    in_bits: int
    in_exponent: int = 0
    shift_bits: int = 0

    def __post_init__(self):
        if not isinstance(self.fmt, LogFormat):
            raise ConfigError(f"log encoder format must be a LogFormat, not {self.fmt!r}")
        check_int("log encoder in_bits", self.in_bits, 2, MAX_IN_BITS, ConfigError)
        check_int("log encoder in_exponent", self.in_exponent, -MAX_IN_EXPONENT, MAX_IN_EXPONENT, ConfigError)
        check_int("log encoder shift_bits", self.shift_bits, 0, MAX_SHIFT_BITS, ConfigError)

    @property
    def midpoints(self):
        """``(D_1, ..., D_2**F)``: ``D_i = floor(2**(W-1) * 2**((2i-1) / 2**(F+1))) + 1``, non-decreasing, each
        in ``(2**(W-1), 2**W]`` (``2**W``, never reached by ``n``, only for small ``W``)."""
        roots = self.fmt.frac_bits + 1
        out = []
        for i in range(1, self.fmt.buckets + 1):
            v = 1 << ((self.in_bits - 1 << roots) + 2 * i - 1)
            for _ in range(roots):
                v = isqrt(v)   # isqrt(isqrt(a)) == floor(a ** (1/4)) for integers, and so on
            out.append(v + 1)
        return tuple(out)

    @property
    def zeros_bits(self):
        """Width of the leading-zero count ``z`` (0 .. W)."""
        return self.in_bits.bit_length()

    @property
    def stages(self):
        """``(name, function, {field: shape})`` of each pipeline stage, in order. A function maps the
        previous stage's fields (the first: ``x`` and ``shift``) to its own, ``function(v, ops)``."""
        w = self.in_bits
        shift = {"shift": signed(self.shift_bits)} if self.shift_bits else {}
        return (("magnitude", self.magnitude, {"sign": unsigned(1), "m": unsigned(w), **shift}),
                ("normalize", self.normalize, {"sign": unsigned(1), "z": unsigned(self.zeros_bits),
                                               "n": unsigned(w), **shift}),
                ("code", self.code, {"code": unsigned(self.fmt.bits)}))

    def magnitude(self, v, ops):
        """``sign = x < 0``, ``m = |x|``."""
        x = v["x"]
        negative = x < 0
        return {"sign": ops.where(negative, 1, 0), "m": ops.where(negative, -x, x), "shift": v["shift"]}

    def normalize(self, v, ops):
        """Leading zeros ``z`` of ``m`` (``W`` when ``m = 0``), mantissa ``n = m << z`` (``W`` bits).

        A normalizer of ``ceil(log2(W))`` steps: for ``s`` = the powers of two below ``W``, descending, the
        top ``s`` bits of ``n`` are zero exactly when at least ``s`` leading zeros remain; then ``n`` shifts
        left by ``s`` and ``z`` counts them.
        """
        w, m = self.in_bits, v["m"]
        n, z = m, 0
        for s in reversed([1 << k for k in range((w - 1).bit_length())]):
            empty = n < (1 << (w - s))   # the top s of its w bits are zero
            n = ops.where(empty, ops.shift_left(n, s) & ((1 << w) - 1), n)
            z = z + ops.where(empty, s, 0)
        return {"sign": v["sign"], "z": ops.where(m < 1, w, z), "n": n, "shift": v["shift"]}

    def code(self, v, ops):
        """Round to the nearest exponent, saturate, attach the sign (see the class docstring)."""
        fmt, w = self.fmt, self.in_bits
        j = 0
        for d in self.midpoints:
            j = j + ops.where(v["n"] >= d, 1, 0)
        field = (((w - 1 + self.in_exponent) - v["z"]) << fmt.frac_bits) + j - v["shift"] + fmt.bias
        top = (1 << fmt.field_bits) - 1
        code = (v["sign"] << fmt.field_bits) | ops.where(field > top, top, field)
        return {"code": ops.where((v["z"] == w) | (field < 1), 0, code)}
