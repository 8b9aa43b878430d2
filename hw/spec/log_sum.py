"""The exact accumulation of log-domain products in ``2**F`` fraction buckets: its range and widths.

One description, read by the hardware (:class:`qmac.hw.log_datapath.log_dot_product.LogDotProduct`, the MAC unit's
bucket accumulators, :class:`qmac.hw.log_datapath.log_combine.LogCombine`), the configuration and the golden model
(:mod:`qmac.sim.log_dot_product`). The arithmetic is specified in ``docs/lns.md``.
"""

from dataclasses import dataclass

from qmac.hw.spec.formats import IntFormat
from qmac.hw.spec.log_format import LogFormat
from qmac.hw.spec.checks import is_int

__all__ = ["LogSum", "MAX_RESULT_BITS"]

#: Widest result a LogSum may describe.
MAX_RESULT_BITS = 256


@dataclass(frozen=True)
class LogSum:
    """Sums of up to ``products * beats`` products of two ``fmt`` codes, each scaled by an exponent in
    ``[scale_lo, scale_hi]`` (units of ``2**-F``), kept exactly in ``2**F`` buckets.

    A product has ``t = e_w + e_a + scale`` in ``[t_lo, t_hi]`` (``t_lo = 2 * min_exponent + scale_lo``,
    ``t_hi = 2 * max_exponent + scale_hi``). With ``q_min = floor(t_lo / 2**F)`` (or ``q_floor`` when set)
    it is split as ``t - q_min * 2**F = q' * 2**F + r`` and adds the exact integer ``(-1)**s * 2**q'`` to
    bucket ``r``. Products with ``t < q_floor * 2**F`` are dropped (each below ``2**q_floor``). After the
    sum, ``result = sum_r A_r * C_r`` with ``C_r = round(2**(P + r/2**F))`` and
    ``value = result * 2**(q_min - P)``.

    Parameters
    ----------
    fmt : LogFormat
    products : int
        Products per beat, 1 or more.
    beats : int
        Most beats in one sum (sizes the accumulators and the result), 1 or more.
    scale_lo, scale_hi : int
        Range of the added exponent (0, 0 without scales).
    q_floor : int or None
        ``None`` keeps every product; else an integer in ``[exact_q_min + 1, q_max]``.
    p_bits : int
        P, fractional bits of the constants (1..48).

    Raises
    ------
    ValueError
        For a parameter out of range or a result wider than :data:`MAX_RESULT_BITS`.
    """
    fmt: LogFormat
    products: int
    beats: int = 1
    scale_lo: int = 0
    scale_hi: int = 0
    q_floor: int | None = None
    p_bits: int = 12

    def __post_init__(self):
        if not isinstance(self.fmt, LogFormat):
            raise ValueError(f"log format must be a LogFormat, not {self.fmt!r}")
        for name in ("products", "beats"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if self.scale_lo > self.scale_hi:
            raise ValueError(f"scale range [{self.scale_lo}, {self.scale_hi}] is empty")
        self.fmt.constants(self.p_bits)  # checks p_bits
        q = self.q_floor
        if q is not None and (not is_int(q)
                              or not self.exact_q_min < q <= self.q_max):
            raise ValueError(f"q_floor must be None or an integer from {self.exact_q_min + 1} to {self.q_max}, "
                             f"not {q!r}")
        bits = self._result_top.bit_length() + 1
        if bits > MAX_RESULT_BITS:
            raise ValueError(f"the result would need {bits} bits, more than {MAX_RESULT_BITS}; use fewer "
                             f"scale bits or p_bits, or a q_floor")

    @property
    def t_lo(self):
        return 2 * self.fmt.min_exponent + self.scale_lo

    @property
    def t_hi(self):
        return 2 * self.fmt.max_exponent + self.scale_hi

    @property
    def exact_q_min(self):
        """``floor(t_lo / 2**F)``: the integer exponent of the smallest product."""
        return self.t_lo >> self.fmt.frac_bits

    @property
    def q_max(self):
        """``floor(t_hi / 2**F)``: the integer exponent of the largest product."""
        return self.t_hi >> self.fmt.frac_bits

    @property
    def q_min(self):
        """Integer exponent of the buckets' least significant bit."""
        return self.exact_q_min if self.q_floor is None else self.q_floor

    @property
    def offset_max(self):
        """Largest ``t' = t - q_min * 2**F`` of a kept product."""
        return self.t_hi - (self.q_min << self.fmt.frac_bits)

    @property
    def q_top(self):
        """Largest ``q'`` of a kept product."""
        return self.offset_max >> self.fmt.frac_bits

    @property
    def constants(self):
        """``C_r``, ``r = 0 .. 2**F - 1`` (:meth:`LogFormat.constants`)."""
        return self.fmt.constants(self.p_bits)

    def bucket_top(self, r, products):
        """Largest magnitude of a sum of ``products`` kept products in bucket ``r``."""
        return products << ((self.offset_max - r) >> self.fmt.frac_bits) if r <= self.offset_max else 0

    def bucket_format(self, products):
        """One signed format that holds any bucket's sum of ``products`` kept products."""
        top = max(self.bucket_top(r, products) for r in range(self.fmt.buckets))
        return IntFormat.for_range(-top, top)

    @property
    def sum_format(self):
        """Format of a per-beat bucket sum (``products`` products)."""
        return self.bucket_format(self.products)

    @property
    def acc_format(self):
        """Format of a bucket accumulator (``products * beats`` products)."""
        return self.bucket_format(self.products * self.beats)

    @property
    def _result_top(self):
        """Largest ``|sum_r A_r * C_r|``: every product at the largest ``t'``."""
        r_top = self.offset_max % self.fmt.buckets
        return (self.products * self.beats * self.constants[r_top]) << self.q_top

    @property
    def result_format(self):
        """Exact format of ``sum_r A_r * C_r`` over ``beats`` beats."""
        return IntFormat.for_range(-self._result_top, self._result_top)

    @property
    def result_exponent(self):
        """``q_min - P``: the value of a result is ``result * 2**result_exponent``."""
        return self.q_min - self.p_bits
