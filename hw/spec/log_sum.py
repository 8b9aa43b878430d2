"""The accumulation of log-domain products in fraction buckets: its range, widths and per-product terms.

One description, read by the hardware (:class:`qmac.hw.log_datapath.log_dot_product.LogDotProduct`, the MAC unit's
bucket accumulators, :class:`qmac.hw.log_datapath.log_combine.LogCombine`), the configuration and the golden model
(:mod:`qmac.sim.log_dot_product`). The arithmetic is specified in ``docs/lns.md``.
"""

from dataclasses import dataclass

from qmac.hw.spec.formats import IntFormat
from qmac.hw.spec.log_format import LogFormat
from qmac.hw.spec.checks import is_int

__all__ = ["LogSum", "MAX_RESULT_BITS", "MAX_MANTISSA_BITS", "MAX_WINDOW_BITS"]

#: Widest result a LogSum may describe.
MAX_RESULT_BITS = 256
#: Largest ``mantissa_bits`` of a hybrid LogSum.
MAX_MANTISSA_BITS = 16
#: Largest ``window_bits`` of a windowed LogSum.
MAX_WINDOW_BITS = 32


@dataclass(frozen=True)
class LogSum:
    """Sums of up to ``products * beats`` products of two ``fmt`` codes, each scaled by an exponent in
    ``[scale_lo, scale_hi]`` (units of ``2**-F``), kept in ``2**b`` fraction buckets.

    A product has ``t = e_w + e_a + scale`` in ``[t_lo, t_hi]`` (``t_lo = 2 * min_exponent + scale_lo``,
    ``t_hi = 2 * max_exponent + scale_hi``). With ``q_min = floor(t_lo / 2**F)`` (or ``q_floor`` when set)
    it is split as ``t - q_min * 2**F = q' * 2**F + r``. Products with ``t < q_floor * 2**F`` are dropped
    (each below ``2**q_floor``).

    - **Exact** (``b = F``, the default; ``mantissa_bits = 0``): the product adds the exact integer
      ``(-1)**s * 2**q'`` to bucket ``r``.
    - **Hybrid** (``0 <= b < F``, ``mantissa_bits = Pm >= 1``): the top ``b`` bits of ``r`` pick the bucket
      ``h = r >> (F - b)``, the low ``F - b`` bits ``l`` a mantissa ``M_l = round(2**(Pm + l/2**F))``
      (:attr:`mantissas`, :attr:`mantissa_width` bits: ``Pm + 1``, or ``Pm + 2``), and the product adds ``(-1)**s * M_l * 2**q'`` to bucket ``h``.

    - **Windowed** (``b = 0``, ``window_bits = W``, ``Pm + 1 <= W``): each beat has an anchor ``e``, the
      largest ``q'`` of its kept products (0 if none), and each kept product adds
      ``(-1)**s * floor(M_l * 2**g / 2**(e - q'))`` (:meth:`window_term`, ``g = W - Pm - 1``
      :attr:`guard_bits`: the magnitude truncated toward zero to a ``W``-bit window) to the beat sum ``S``,
      of value ``S * 2**(e - g)`` units of ``2**(q_min - Pm)``. The accumulator is a block-floating pair
      ``(A, E)`` of value ``A * 2**(E - g)`` units, updated per beat by :meth:`window_accumulate` (the one with
      the smaller exponent shifted right, arithmetically, to the larger), and ``result`` is
      :meth:`window_place` of it, ``A * 2**(E - g + P)``: the hybrid ``b = 0`` result word, with the same
      :attr:`result_exponent`.

    After the sum, ``result = sum_h A_h * C_h`` with ``C_h = round(2**(P + h/2**b))`` (:attr:`constants`)
    and ``value = result * 2**(q_min - P - Pm)`` (:attr:`result_exponent`). The exact scheme is the
    hybrid one with ``b = F`` (one mantissa, ``M_0 = 1``).

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
    bucket_fraction_bits : int or None
        ``b``, fraction bits that pick a bucket: ``None`` (the same as ``F``) or 0 .. F.
    mantissa_bits : int
        ``Pm``: 0 when ``b = F``, else 1 .. :data:`MAX_MANTISSA_BITS`.
    window_bits : int or None
        ``W``: ``None`` (exact accumulation), or with ``b = 0`` an integer from ``Pm + 1`` to
        ``min(MAX_WINDOW_BITS, Pm + 1 + P)`` (``g <= P``: placing the accumulator is an exact shift).

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
    bucket_fraction_bits: int | None = None
    mantissa_bits: int = 0
    window_bits: int | None = None

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
        b, pm, f = self.bucket_fraction_bits, self.mantissa_bits, self.fmt.frac_bits
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or not 0 <= b <= f):
            raise ValueError(f"bucket_fraction_bits must be None or an integer from 0 to F = {f}, not {b!r}")
        if self.fraction_bits == f and pm != 0:
            raise ValueError(f"mantissa_bits must be 0 when every fraction bit picks a bucket (b = F = {f}), "
                             f"not {pm!r}")
        if self.fraction_bits < f and (not isinstance(pm, int) or isinstance(pm, bool)
                                       or not 1 <= pm <= MAX_MANTISSA_BITS):
            raise ValueError(f"mantissa_bits must be an integer from 1 to {MAX_MANTISSA_BITS} with "
                             f"bucket_fraction_bits = {b} < F = {f}, not {pm!r}")
        w = self.window_bits
        if w is not None and (self.fraction_bits != 0 or not is_int(w)
                              or not pm + 1 <= w <= self.max_window_bits):
            raise ValueError(f"window_bits must be None, or with bucket_fraction_bits = 0 an integer from "
                             f"mantissa_bits + 1 = {pm + 1} to min({MAX_WINDOW_BITS}, mantissa_bits + 1 + p_bits) "
                             f"= {self.max_window_bits}, not {w!r}")
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
    def fraction_bits(self):
        """``b``: the fraction bits that pick a bucket (``F`` for the exact scheme)."""
        return self.fmt.frac_bits if self.bucket_fraction_bits is None else self.bucket_fraction_bits

    @property
    def low_bits(self):
        """``F - b``: the fraction bits that pick a mantissa."""
        return self.fmt.frac_bits - self.fraction_bits

    @property
    def buckets(self):
        """``2**b``, the number of bucket sums (and accumulators, and constants)."""
        return 1 << self.fraction_bits

    @property
    def constants(self):
        """``C_h = round(2**(P + h/2**b))``, ``h = 0 .. 2**b - 1`` (:meth:`LogFormat.constants` at
        ``r = h * 2**(F - b)``)."""
        return self.fmt.constants(self.p_bits)[::1 << self.low_bits]

    @property
    def mantissas(self):
        """``M_l = round(2**(Pm + l/2**F))``, ``l = 0 .. 2**(F - b) - 1`` (``(1,)`` for the exact scheme):
        ``2**Pm <= M_l <= 2**(Pm + 1)``, ``|M_l - 2**(Pm + l/2**F)| < 1/2``, ``M_0 = 2**Pm`` (the top
        mantissa rounds up to ``2**(Pm + 1)`` for a small Pm: with b = 0, Pm <= F - 2 for F = 3 to 8)."""
        if not self.mantissa_bits:
            return (1,)
        return self.fmt.constants(self.mantissa_bits)[:1 << self.low_bits]

    @property
    def mantissa_width(self):
        """Bits of the largest mantissa: ``Pm + 1``, or ``Pm + 2`` when one rounds up to ``2**(Pm + 1)``
        (1 for the exact scheme)."""
        return max(self.mantissas).bit_length()

    def term(self, offset, ops):
        """``(h, q', M)`` of a product with ``t' = offset``: it adds ``(-1)**s * M * 2**q'`` to bucket ``h``.

        ``(q', r) = fmt.split(offset)``, ``h = r >> (F - b)``, ``M = M_l`` with ``l = r mod 2**(F - b)``
        (a chain of ``ops.where`` over the table; the constant 1 for the exact scheme)."""
        q, r = self.fmt.split(offset, ops)
        if not self.low_bits:
            return r, q, 1
        low = ops.wrap(r, self.low_bits, False)
        mantissa = self.mantissas[0]
        for l, m in enumerate(self.mantissas[1:], 1):
            mantissa = ops.where(low == l, m, mantissa)
        return r >> self.low_bits, q, mantissa

    def _largest(self, offset):
        """``M_l * 2**q'`` of a product at ``t' = offset`` (its term's magnitude)."""
        return self.mantissas[offset % len(self.mantissas)] << (offset >> self.fmt.frac_bits)

    def term_value(self, offset):
        """``M_l * C_h * 2**q'``: what one positive product at ``t' = offset`` adds to ``result``."""
        h = (offset % self.fmt.buckets) >> self.low_bits
        return self._largest(offset) * self.constants[h]

    def _offsets(self, r):
        """The largest ``t'`` of a kept product with fraction ``r`` (``None`` if there is none)."""
        return self.offset_max - ((self.offset_max - r) % self.fmt.buckets) if r <= self.offset_max else None

    def bucket_top(self, h, products):
        """Largest magnitude of a sum of ``products`` kept products in bucket ``h``."""
        tops = [self._largest(t) for r in range(h << self.low_bits, (h + 1) << self.low_bits)
                if (t := self._offsets(r)) is not None]
        return products * max(tops, default=0)

    def bucket_format(self, products):
        """One signed format that holds any bucket's sum of ``products`` kept products."""
        top = max(self.bucket_top(h, products) for h in range(self.buckets))
        return IntFormat.for_range(-top, top)

    @property
    def sum_format(self):
        """Format of a per-beat bucket sum (``products`` products); windowed, of the beat sum ``S``."""
        if self.windowed:
            return IntFormat.for_range(-self.products * self._window_top, self.products * self._window_top)
        return self.bucket_format(self.products)

    @property
    def acc_format(self):
        """Format of a bucket accumulator (``products * beats`` products); windowed, of the mantissa ``A``
        (``|A| <= beats * products * max M_l * 2**g``: each beat adds at most ``products * max M_l * 2**g``
        and an arithmetic right shift never grows a magnitude past its integer ceiling)."""
        if self.windowed:
            top = self.products * self.beats * self._window_top
            return IntFormat.for_range(-top, top)
        return self.bucket_format(self.products * self.beats)

    @property
    def _result_top(self):
        """Largest ``|sum_h A_h * C_h|``: every product at the ``t'`` of the largest :meth:`term_value`
        (for the exact scheme the largest ``t'``: ``C_r * 2**q'`` grows with ``t'``); windowed, the largest
        ``|A|`` placed at ``E = q_top``."""
        if self.windowed:
            return (self.products * self.beats * self._window_top) << (self.q_top + self.p_bits - self.guard_bits)
        top = max(self.term_value(t) for r in range(self.fmt.buckets) if (t := self._offsets(r)) is not None)
        return self.products * self.beats * top

    # -- windowed accumulation (window_bits) --------------------------------------------------------

    @property
    def windowed(self):
        """Whether products are summed in a ``window_bits`` window (else exactly)."""
        return self.window_bits is not None

    @property
    def max_window_bits(self):
        """Largest ``window_bits`` with these ``mantissa_bits`` and ``p_bits``: ``min(32, Pm + 1 + P)``."""
        return min(MAX_WINDOW_BITS, self.mantissa_bits + 1 + self.p_bits)

    @property
    def guard_bits(self):
        """``g = W - Pm - 1``: the window bits below the mantissa of a product at the anchor."""
        return self.window_bits - self.mantissa_bits - 1

    @property
    def anchor_bits(self):
        """Width of an anchor ``e`` or accumulator exponent ``E`` (unsigned, ``0 .. q_top``)."""
        return max(1, self.q_top.bit_length())

    @property
    def _window_top(self):
        """Largest window term, ``max M_l * 2**g`` (a product at the anchor, exact)."""
        return max(self.mantissas) << self.guard_bits

    def window_term(self, mantissa, q, anchor, ops):
        """``floor(M * 2**g / 2**(anchor - q'))``: a kept product's magnitude in the ``W``-bit window of the
        beat's anchor (``anchor >= q'``), truncated toward zero; its sign is applied after, so the
        truncation is the same for both signs. At ``q' = anchor`` the term is ``M * 2**g``, exact."""
        return (mantissa << self.guard_bits) >> ops.wrap(anchor - q, self.anchor_bits, False)

    def window_accumulate(self, acc, exponent, beat, anchor, ops):
        """``(A', E')`` after a beat sum ``S = beat`` at anchor ``e = anchor`` meets the accumulator
        ``(A, E) = (acc, exponent)``: ``E' = max(E, e)``; when ``e > E``, ``A' = floor(A / 2**(e - E)) + S``,
        else ``A' = A + floor(S / 2**(E - e))`` (arithmetic right shifts: floor, errs by less than one unit
        of the new exponent, and not at all when the shift is 0). ``(A, E) = (0, 0)`` starts a sum:
        ``(A', E') = (S, e)``."""
        up = anchor > exponent
        shift = ops.wrap(ops.where(up, anchor - exponent, exponent - anchor), self.anchor_bits, False)
        return ops.where(up, (acc >> shift) + beat, acc + (beat >> shift)), ops.where(up, anchor, exponent)

    def window_place(self, acc, exponent, ops):
        """``A * 2**(E - g + P)``: the accumulator as a result word of :attr:`result_format`, of value
        ``result * 2**result_exponent``; exact (``g <= P``)."""
        return (acc << exponent) << (self.p_bits - self.guard_bits)

    @property
    def result_format(self):
        """Exact format of ``sum_r A_r * C_r`` over ``beats`` beats."""
        return IntFormat.for_range(-self._result_top, self._result_top)

    @property
    def result_exponent(self):
        """``q_min - P - Pm``: the value of a result is ``result * 2**result_exponent``."""
        return self.q_min - self.p_bits - self.mantissa_bits
