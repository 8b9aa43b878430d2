"""A V-lane dot-product unit for logarithmic numbers, with one shared accumulator per exponent fraction."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .formats import IntFormat
from .log_format import LogFormat
from .ops import AmaranthOps

__all__ = ["LogDotProduct", "ORGANISATIONS"]

_LANES = (4, 8, 16, 32, 64)
_MAX_K_BEATS = 1 << 24
_MAX_SCALE_BITS = 8
_MAX_RESULT_BITS = 256

#: Structures of the per-cycle bucket adders (see :class:`LogDotProduct`).
ORGANISATIONS = ("tree", "count")


def _sum(values):
    """Balanced adder tree; Amaranth widens every sum, so it is exact."""
    while len(values) > 1:
        values = [values[j] + values[j + 1] if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]


def _times(x, c):
    """``x * c`` for a constant ``c > 0``: shifted copies of ``x`` added and subtracted by the digits of
    ``c`` in non-adjacent form (at most ``bits(c)/2 + 1`` of them)."""
    terms, k = [], 0
    while c:
        if c & 1:
            digit = 2 - (c & 3)           # +1 when c = 1 mod 4, -1 when c = 3 mod 4
            terms.append(x << k if digit > 0 else -(x << k))
            c -= digit
        c >>= 1
        k += 1
    return _sum(terms)


class LogDotProduct(wiring.Component):
    """Accumulates the dot products of LNS code vectors in ``2**F`` shared fraction accumulators.

    Arithmetic. Lane ``i`` of a beat multiplies ``w_i`` and ``a_i`` in the log domain
    (:meth:`LogFormat.product`): ``t_i = e_w + e_a + scale``, sign ``s_i = s_w XOR s_a``, and splits
    ``t_i - q_min * 2**F`` into ``q'_i = q_i - q_min`` and the fraction ``r_i`` (:meth:`LogFormat.split`).
    Its product is ``(-1)**s_i * 2**q_min * 2**q'_i * 2**(r_i / 2**F)``. Accumulator ``A_r`` adds the exact
    integer ``(-1)**s_i * 2**q'_i`` of every lane with ``r_i = r`` that is not zero, over all beats of a
    tile. At the tile's end the combine stage multiplies each accumulator once by its constant
    ``C_r = round(2**(P + r/2**F))`` (:meth:`LogFormat.constants`) and sums::

        result = sum_r A_r * C_r          value = result * 2**(q_min - P)    (:attr:`result_exponent`)

    ``q_min`` is the smallest ``floor(t / 2**F)`` any product can have, unless ``q_floor`` raises it; then
    the products with ``q < q_floor`` are dropped (each of magnitude below ``2**q_floor``). Every width is
    derived from the format, V, ``max_k_beats`` and ``scale_bits`` so that nothing can overflow; the only
    error besides the operand encoding is the rounding of the constants (and the dropped products),
    ``|value - exact| <= 2**(q_min - P - 1) * sum_{r >= 1} |A_r|  (+ 2**q_min per dropped product)``, which
    is at most ``2**-(P+1)`` times the sum of the magnitudes of the products.

    Organisation of the per-beat bucket adders (``organisation``), both bit-exact:

    ``"tree"``
        Each lane decodes ``q'`` once into ``+2**q'`` (one-hot) or ``-2**q'`` (all bits from ``q'`` up,
        two's complement), and every bucket sums, by an adder tree over the lanes, the lanes gated by
        ``r_i == r``: ``2**F`` trees of V inputs of ``q'_max + 2`` bits.
    ``"count"``
        Each lane decodes ``t'_i = q'_i * 2**F + r_i`` into one-hot flags; per bucket, exponent and sign a
        popcount over the lanes counts the products ``2**q'`` (a count needs ``c = bits(V)`` bits). Counts
        ``c`` exponents apart do not overlap, so per bucket and sign they are concatenated into ``c`` rows,
        and ``S_r = sum(positive rows) - sum(negative rows)``: ``2c`` wide adds per bucket instead of
        ``V - 1``.

    Pipeline (all registers advance every cycle; one beat can enter per cycle):

    1. per-lane sign, zero and ``t'`` registered;
    2. per-beat bucket sums ``S_r`` registered;
    3. ``A_r <= (first ? 0 : A_r) + S_r`` on a valid beat; on a valid beat with ``last`` the new value also
       moves to the shadow bank that feeds the combine stage, so the next tile accumulates meanwhile;
    4. ``A_r * C_r`` registered (shift-add by the digits of each constant);
    5. ``result <= sum_r A_r * C_r``, with ``result_valid`` high for one cycle.

    ``result`` is readable after :attr:`latency` = 5 clock edges, counting the edge that samples the
    tile's last beat, and holds until the next result. Tiles may be as short as one beat and follow back
    to back.

    Parameters
    ----------
    lanes : int
        V: 4, 8, 16, 32 or 64.
    fmt : LogFormat
        Format of both operands.
    p_bits : int
        P, fractional bits of the constants: 1 to 48. The default 12 bounds the combine error by 2**-13
        (0.012%) of the sum of the product magnitudes, far below LNS8's 4.4% encoding error.
    max_k_beats : int
        Longest tile, in beats (first to last inclusive): 1 to 2**24, default 4096. It sizes the
        accumulators.
    organisation : str
        One of :data:`ORGANISATIONS`.
    scale_bits : int
        Width of the optional ``scale`` input, 0 (no input, default) to 8.
    q_floor : int or None
        ``None`` (default) keeps every product exactly. Otherwise products with ``q < q_floor`` are
        dropped; it must lie above the exact ``q_min`` and at most the largest ``q``.

    Members
    -------
    w, a : In(ArrayLayout(unsigned(bits), V))
        Operand codes; lane ``i`` of ``w`` meets lane ``i`` of ``a``.
    scale : In(signed(scale_bits))
        Present only with ``scale_bits > 0``: an exponent in units of ``2**-F`` added to every product of
        the beat (a log-domain per-vector scale), sampled with the operands.
    valid : In(1)
        The beat takes part; ``first`` and ``last`` count only with it.
    first : In(1)
        The beat starts a tile (clears the accumulators).
    last : In(1)
        The beat ends a tile.
    result : Out(signed(result_format.bits))
        ``sum_r A_r * C_r`` of the last finished tile.
    result_valid : Out(1)
        ``result`` is new this cycle.

    Raises
    ------
    ConfigError
        For any parameter out of range, or a result wider than 256 bits (a ``ValueError``).
    """

    def __init__(self, lanes, fmt, p_bits=12, max_k_beats=4096, organisation="tree", *, scale_bits=0,
                 q_floor=None):
        if lanes not in _LANES:
            raise ConfigError(f"log dot-product lanes must be one of {', '.join(map(str, _LANES))}, "
                              f"not {lanes!r}")
        if not isinstance(fmt, LogFormat):
            raise ConfigError(f"log dot-product format must be a LogFormat, not {fmt!r}")
        constants = fmt.constants(p_bits)
        if (not isinstance(max_k_beats, int) or isinstance(max_k_beats, bool)
                or not 1 <= max_k_beats <= _MAX_K_BEATS):
            raise ConfigError(f"max_k_beats must be an integer from 1 to {_MAX_K_BEATS}, not {max_k_beats!r}")
        if organisation not in ORGANISATIONS:
            raise ConfigError(f"organisation must be one of {', '.join(ORGANISATIONS)}, not {organisation!r}")
        if (not isinstance(scale_bits, int) or isinstance(scale_bits, bool)
                or not 0 <= scale_bits <= _MAX_SCALE_BITS):
            raise ConfigError(f"scale_bits must be an integer from 0 to {_MAX_SCALE_BITS}, not {scale_bits!r}")
        scale_lo, scale_hi = (-(1 << (scale_bits - 1)), (1 << (scale_bits - 1)) - 1) if scale_bits else (0, 0)
        t_lo = 2 * fmt.min_exponent + scale_lo
        t_hi = 2 * fmt.max_exponent + scale_hi
        exact_q_min, q_max = t_lo >> fmt.frac_bits, t_hi >> fmt.frac_bits
        if q_floor is not None and (not isinstance(q_floor, int) or isinstance(q_floor, bool)
                                    or not exact_q_min < q_floor <= q_max):
            raise ConfigError(f"q_floor must be None or an integer from {exact_q_min + 1} to {q_max}, "
                              f"not {q_floor!r}")
        self._lanes = lanes
        self._format = fmt
        self._p_bits = p_bits
        self._constants = constants
        self._max_k_beats = max_k_beats
        self._organisation = organisation
        self._scale_bits = scale_bits
        self._q_floor = q_floor
        self._q_min = exact_q_min if q_floor is None else q_floor
        self._offset_max = t_hi - (self._q_min << fmt.frac_bits)
        # |sum_r A_r C_r| <= sum over products of 2**q' * C_r, largest for the largest t'.
        q_top, r_top = self._offset_max >> fmt.frac_bits, self._offset_max % fmt.buckets
        top = (lanes * max_k_beats * constants[r_top]) << q_top
        if top.bit_length() >= _MAX_RESULT_BITS:
            raise ConfigError(f"the result would need {top.bit_length() + 1} bits, more than {_MAX_RESULT_BITS}; "
                              f"use fewer scale_bits or p_bits, or a q_floor")
        sum_tops = [self._bucket_top(r, lanes) for r in range(fmt.buckets)]
        acc_tops = [self._bucket_top(r, lanes * max_k_beats) for r in range(fmt.buckets)]
        self._sum_formats = tuple(IntFormat.for_range(-t, t) for t in sum_tops)
        self._acc_formats = tuple(IntFormat.for_range(-t, t) for t in acc_tops)
        self._product_formats = tuple(IntFormat.for_range(-t * c, t * c) for t, c in zip(acc_tops, constants))
        self._result_format = IntFormat.for_range(-top, top)
        ports = {
            "w": In(data.ArrayLayout(unsigned(fmt.bits), lanes)),
            "a": In(data.ArrayLayout(unsigned(fmt.bits), lanes)),
            "valid": In(1), "first": In(1), "last": In(1),
            "result": Out(signed(self._result_format.bits)),
            "result_valid": Out(1),
        }
        if scale_bits:
            ports["scale"] = In(signed(scale_bits))
        super().__init__(ports)

    def _bucket_top(self, r, products):
        """Largest magnitude of a sum of ``products`` terms ``+-2**q'`` of bucket ``r``
        (``t' = q' * 2**F + r``)."""
        return products << ((self._offset_max - r) >> self._format.frac_bits) if r <= self._offset_max else 0

    @property
    def lanes(self):
        return self._lanes

    @property
    def format(self):
        return self._format

    @property
    def p_bits(self):
        return self._p_bits

    @property
    def constants(self):
        """``C_r``, ``r = 0 .. 2**F - 1``."""
        return self._constants

    @property
    def max_k_beats(self):
        return self._max_k_beats

    @property
    def organisation(self):
        return self._organisation

    @property
    def scale_bits(self):
        return self._scale_bits

    @property
    def q_floor(self):
        return self._q_floor

    @property
    def q_min(self):
        """Integer exponent of the least significant bit of the accumulators."""
        return self._q_min

    @property
    def offset_max(self):
        """Largest ``t' = t - q_min * 2**F`` of a kept product."""
        return self._offset_max

    @property
    def sum_formats(self):
        """Exact format of each per-beat bucket sum ``S_r``."""
        return self._sum_formats

    @property
    def acc_formats(self):
        """Exact format of each accumulator ``A_r`` (``max_k_beats`` beats)."""
        return self._acc_formats

    @property
    def result_format(self):
        """Exact format of ``result``."""
        return self._result_format

    @property
    def result_exponent(self):
        """``q_min - P``: the value of ``result`` is ``result * 2**result_exponent``."""
        return self._q_min - self._p_bits

    @property
    def latency(self):
        """Clock edges, counting the one that samples a tile's last beat, until its ``result`` is readable."""
        return 5

    def _tree_sums(self, m, lanes):
        """Bucket sums of organisation ``"tree"`` from the registered ``(sign, zero, t')`` of each lane."""
        fmt = self._format
        top = self._offset_max >> fmt.frac_bits
        buckets = [[] for _ in range(fmt.buckets)]
        for i, (sign, zero, offset) in enumerate(lanes):
            q_value, r_value = fmt.split(offset, AmaranthOps)
            q, r = Signal(range(top + 1), name=f"q{i}"), Signal(fmt.frac_bits, name=f"r{i}")
            m.d.comb += [q.eq(q_value), r.eq(r_value)]
            # +2**q is one-hot; -2**q, in two's complement, has every bit from q upward set.
            term, gated = Signal(signed(top + 2), name=f"term{i}"), Signal(fmt.buckets, name=f"bucket{i}")
            m.d.comb += [term.eq(Cat(*(Mux(sign, q <= j, q == j) for j in range(top + 1)), sign)),
                         gated.eq(Mux(zero, 0, Const(1, 1) << r))]
            for b, terms in enumerate(buckets):
                terms.append(Mux(gated[b], term, 0))
        return [_sum(terms) for terms in buckets]

    def _count_sums(self, m, lanes):
        """Bucket sums of organisation ``"count"`` from the registered ``(sign, zero, t')`` of each lane."""
        fmt = self._format
        # A balanced tree over V = 2**n one-bit flags is a count of exactly n + 1 bits.
        width = len(lanes).bit_length()
        flags = []
        for i, (sign, zero, offset) in enumerate(lanes):
            hot = Const(1, 1) << offset
            positive = Signal(self._offset_max + 1, name=f"positive{i}")
            negative = Signal(self._offset_max + 1, name=f"negative{i}")
            m.d.comb += [positive.eq(Mux(zero | sign, 0, hot)), negative.eq(Mux(~zero & sign, hot, 0))]
            flags.append((positive, negative))
        sums = []
        for r in range(fmt.buckets):
            offsets = range(r, self._offset_max + 1, fmt.buckets)
            halves = []
            for side in (0, 1):
                counts = [_sum([f[side][t] for f in flags]) for t in offsets]
                # Count k weighs 2**k; counts `width` apart fill disjoint bit ranges of one row.
                rows = [Cat(*counts[phase::width]) << phase for phase in range(min(width, len(counts)))]
                halves.append(_sum(rows) if rows else Const(0))
            sums.append(halves[0] - halves[1])
        return sums

    def elaborate(self, platform):
        m = Module()
        fmt = self._format
        scale = self.scale if self._scale_bits else 0
        offset_bits = max(1, self._offset_max.bit_length())

        lanes = []
        for i in range(self._lanes):
            sign, zero, t = fmt.product(self.w[i], self.a[i], scale)
            offset = t - (self._q_min << fmt.frac_bits)
            if self._q_floor is not None:
                zero = zero | (offset < 0)
            regs = (Signal(name=f"sign{i}"), Signal(name=f"zero{i}"), Signal(offset_bits, name=f"offset{i}"))
            m.d.sync += [regs[0].eq(sign), regs[1].eq(zero), regs[2].eq(offset)]
            lanes.append(regs)
        valid1, first1, last1 = Signal(), Signal(), Signal()
        m.d.sync += [valid1.eq(self.valid), first1.eq(self.first), last1.eq(self.last)]

        sums = (self._tree_sums if self._organisation == "tree" else self._count_sums)(m, lanes)
        valid2, first2, last2 = Signal(), Signal(), Signal()
        m.d.sync += [valid2.eq(valid1), first2.eq(first1), last2.eq(last1)]
        loaded, products = Signal(), []
        for r, (s, sum_fmt, acc_fmt, product_fmt, c) in enumerate(zip(
                sums, self._sum_formats, self._acc_formats, self._product_formats, self._constants)):
            beat = Signal(signed(sum_fmt.bits), name=f"sum{r}")
            acc = Signal(signed(acc_fmt.bits), name=f"acc{r}")
            shadow = Signal(signed(acc_fmt.bits), name=f"shadow{r}")
            product = Signal(signed(product_fmt.bits), name=f"product{r}")
            total = Mux(first2, 0, acc) + beat
            m.d.sync += [beat.eq(s), product.eq(_times(shadow, c))]
            with m.If(valid2):
                m.d.sync += acc.eq(total)
                with m.If(last2):
                    m.d.sync += shadow.eq(total)
            products.append(product)
        multiplied = Signal()
        m.d.sync += [loaded.eq(valid2 & last2), multiplied.eq(loaded),
                     self.result.eq(_sum(products)), self.result_valid.eq(multiplied)]
        return m
