"""The logarithmic number format (LNS) of qmac, written once for the hardware and the golden model.

The operations a datapath needs (sign, zero test, exponent, product exponent, integer/fraction split) are
plain operators that numpy arrays and Amaranth values share; :meth:`LogFormat.split` also takes the
``ops`` backend of :mod:`qmac.hw.spec.formats`. The host-side float encoder and decoder are in
:mod:`qmac.sim.log_format`, the bit-level spec is ``docs/lns.md``.
"""

from dataclasses import dataclass
from math import isqrt
from qmac.hw.spec.checks import is_int

__all__ = ["LogFormat", "LNS8", "LNS4", "LOG_FORMATS", "MAX_FRAC_BITS"]

#: Largest ``frac_bits``: 2**8 fraction accumulators is already far past any useful unit.
MAX_FRAC_BITS = 8
#: Largest ``p_bits`` of the fraction constants.
MAX_P_BITS = 48


@dataclass(frozen=True)
class LogFormat:
    """A sign/log-magnitude number of ``bits`` bits: ``(-1)**s * 2**(e / 2**F)``, ``F = frac_bits``.

    Code layout, most significant bit first::

        bit  bits-1        s   sign, 1 = negative
        bits bits-2 .. 0   f   unsigned field of bits-1 bits

    ``f == 0`` is zero, whatever ``s`` (the encoder writes ``s = 0``). Every other field is a non-zero
    magnitude with the fixed-point exponent ``e = f - bias``, ``bias = 2**(bits-2)``, read with ``F``
    fractional bits: ``e`` runs over ``[1 - bias, bias - 1]`` (:attr:`min_exponent`, :attr:`max_exponent`),
    so the magnitudes are ``2**(k / 2**F)`` for every integer ``k`` in that range, symmetric about 1.0
    (``f = bias``). Neighbouring magnitudes differ by the factor ``2**(1 / 2**F)``.

    Parameters
    ----------
    bits : int
        Code width, 3 to 16.
    frac_bits : int
        ``F``, fractional bits of the exponent: 0 to ``min(bits - 2, 8)``.
    """
    bits: int
    frac_bits: int

    def __post_init__(self):
        if not is_int(self.bits) or not 3 <= self.bits <= 16:
            raise ValueError(f"log format width must be an integer from 3 to 16, not {self.bits!r}")
        hi = self.max_frac_bits(self.bits)
        if (not is_int(self.frac_bits)
                or not 0 <= self.frac_bits <= hi):
            raise ValueError(f"frac_bits of a {self.bits}-bit log format must be an integer from 0 to {hi}, "
                             f"not {self.frac_bits!r}")

    @staticmethod
    def max_frac_bits(bits):
        """The largest ``frac_bits`` of a ``bits``-bit format: ``min(bits - 2, 8)`` (at least one integer bit)."""
        return min(bits - 2, MAX_FRAC_BITS)

    @property
    def field_bits(self):
        """Width of the exponent field ``f``."""
        return self.bits - 1

    @property
    def bias(self):
        """``e = f - bias`` for every non-zero code."""
        return 1 << (self.bits - 2)

    @property
    def min_exponent(self):
        """Exponent of the smallest magnitude, in units of ``2**-F``."""
        return 1 - self.bias

    @property
    def max_exponent(self):
        """Exponent of the largest magnitude, in units of ``2**-F``."""
        return self.bias - 1

    @property
    def buckets(self):
        """``2**F``, the number of exponent fractions (and of fraction accumulators of a dot product)."""
        return 1 << self.frac_bits

    def magnitude(self, e):
        """``2**(e / 2**F)`` as a Python float."""
        return 2.0 ** (e / self.buckets)

    def constants(self, p_bits):
        """Fraction constants ``C_r = round(2**(r / 2**F) * 2**P)`` for ``r = 0 .. 2**F - 1``, ``P = p_bits``.

        Rounded to nearest, computed exactly in integers (``F`` nested integer square roots of
        ``2**((P+1) * 2**F + r)``). No ties exist: ``2**(r / 2**F)`` is irrational for ``0 < r < 2**F``,
        and ``C_0 = 2**P`` exactly. So ``|C_r - 2**(P + r/2**F)| < 1/2`` and ``2**P <= C_r <= 2**(P+1)``
        (equal to ``2**(P+1)`` when ``2**(P + r/2**F)`` is within 1/2 of it: F = 4 with P <= 2, F = 3 with P = 1).

        Parameters
        ----------
        p_bits : int
            1 to 48.
        """
        if not is_int(p_bits) or not 1 <= p_bits <= MAX_P_BITS:
            raise ValueError(f"p_bits must be an integer from 1 to {MAX_P_BITS}, not {p_bits!r}")
        out = []
        for r in range(self.buckets):
            twice = 1 << ((p_bits + 1) * self.buckets + r)
            for _ in range(self.frac_bits):
                twice = isqrt(twice)
            # ``twice`` is floor(2 * 2**(P + r/2**F)); its low bit is the first bit after the point.
            out.append((twice + 1) >> 1)
        return tuple(out)

    # -- operations written once for numpy and Amaranth -------------------------------------------

    def sign(self, code):
        """The sign bit, 0 or 1."""
        return (code >> (self.bits - 1)) & 1

    def is_zero(self, code):
        """Whether ``code`` is a zero code (field 0, either sign)."""
        # ``< 1``, not ``== 0``: Yosys writes the latter as ``!x``, which Verilator flags (WIDTHTRUNC).
        return (code & ((1 << self.field_bits) - 1)) < 1

    def exponent(self, code):
        """``e = f - bias`` (meaningless for a zero code)."""
        return (code & ((1 << self.field_bits) - 1)) - self.bias

    def product(self, w, a, scale=0):
        """The product of two codes in the log domain: ``(sign, zero, t)``.

        ``sign = s_w XOR s_a``; ``zero`` is true when either operand is zero (``t`` is then meaningless);
        ``t = e_w + e_a + scale``, so the product is ``(-1)**sign * 2**(t / 2**F)``. ``scale`` is an
        exponent in the same units (a log-domain per-vector scale), in
        ``[2*min_exponent + scale, 2*max_exponent + scale]``.
        """
        sign = self.sign(w) ^ self.sign(a)
        zero = self.is_zero(w) | self.is_zero(a)
        return sign, zero, self.exponent(w) + self.exponent(a) + scale

    def split(self, t, ops):
        """``(q, r)`` with ``t = q * 2**F + r``: ``q = t >> F`` (flooring), ``r = t mod 2**F`` (``F`` bits,
        unsigned), so ``2**(t / 2**F) = 2**q * 2**(r / 2**F)``."""
        return t >> self.frac_bits, ops.wrap(t, self.frac_bits, False)


#: 8-bit LNS: 127 magnitudes 2**(k/8), k in [-63, 63]; steps of 2**(1/8).
LNS8 = LogFormat(8, 3)
#: 4-bit LNS: 7 magnitudes 2**(k/4), k in [-3, 3]; steps of 2**(1/4).
LNS4 = LogFormat(4, 2)
#: The log modes of a core, by name.
LOG_FORMATS = {"lns8": LNS8, "lns4": LNS4}
