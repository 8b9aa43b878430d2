"""A V-lane log-domain dot-product unit: per beat, the exact sum of the product terms in each fraction bucket,
or their sum in a window at the beat's largest exponent."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.checks import GROUP_LANES, LOG_LANES, MAX_SCALE_BITS, ConfigError, is_int
from qmac.hw.spec.datapath import ORGANISATIONS
from qmac.hw.spec.log_format import LogFormat
from qmac.hw.spec.log_sum import LogSum
from qmac.hw.ops import AmaranthOps, adder_tree, max_tree

__all__ = ["LogDotProduct", "ORGANISATIONS"]

#: Width of a scale input: the signed sum of two log scale fields, one bit wider than a field.
_MAX_SCALE_BITS = MAX_SCALE_BITS["log"] + 1


class LogDotProduct(wiring.Component):
    """Sums the product terms of one beat of LNS codes into fraction buckets, exactly.

    Arithmetic. Lane ``i`` multiplies ``w_i`` and ``a_i`` in the log domain (:meth:`LogFormat.product`):
    ``t_i = e_w + e_a + scale[g]`` (``g`` the lane's scale group), sign ``s_i = s_w XOR s_a``, and turns
    ``t_i - q_min * 2**F`` into a bucket ``h_i``, an integer exponent ``q'_i`` and a mantissa ``M_i``
    (:meth:`LogSum.term`). Bucket ``h`` of the beat is::

        sums[h] = sum over the lanes with h_i = h, not zero, not dropped, of (-1)**s_i * M_i * 2**q'_i

    For the exact scheme (``bucket_fraction_bits = None``) ``h_i`` is the whole fraction ``r_i``, ``M_i = 1``,
    and the beat's exact value is ``2**q_min * sum_r sums[r] * 2**(r / 2**F)``. For the hybrid scheme
    (``b = bucket_fraction_bits < F``) ``h_i`` is the top ``b`` bits of ``r_i`` and ``M_i`` the
    ``mantissa_bits``-bit mantissa of its low ``F - b`` bits (:attr:`LogSum.mantissas`), ``2**b`` buckets.
    ``q_min`` and the widths come from :class:`LogSum` (``products = lanes``); with ``q_floor`` set,
    products with ``t < q_floor * 2**F`` are dropped. The buckets are accumulated across beats by the MAC
    unit and converted once per tile by :class:`qmac.hw.log_datapath.log_combine.LogCombine`.

    Windowed (``window_bits = W``, with ``b = 0``): the unit computes the beat's anchor ``e``, the largest
    ``q'_i`` of its kept lanes (0 if none; a max tree over the lanes), and the one sum
    ``sums[0] = sum over the kept lanes of (-1)**s_i * floor(M_i * 2**g / 2**(e - q'_i))``
    (:meth:`LogSum.window_term`: each magnitude shifted right by ``e - q'_i`` in a ``W``-bit window,
    truncated toward zero, then signed as in the hybrid tree), of :attr:`LogSum.sum_format`; ``anchor``
    holds ``e``. Max tree, shifters and adder tree share the second stage.

    Organisation of the bucket adders (``organisation``), both bit-exact:

    ``"tree"``
        Each lane decodes ``q'`` once into ``+2**q'`` (one-hot) or ``-2**q'`` (all bits from ``q'`` up,
        two's complement), and every bucket sums, by an adder tree over the lanes, the lanes gated by
        ``r_i == r``: ``2**F`` trees of V inputs of ``q'_max + 2`` bits. Hybrid: each lane shifts its
        mantissa left by ``q'`` and, when negative, inverts it (``-x = ~x + 1``); bucket ``h`` sums the gated
        terms in a tree and adds the count of its negative lanes (the ``+1`` of each), ``2**b`` trees of
        ``q'_max + LogSum.mantissa_width + 1`` bits (``mantissa_width`` is ``Pm + 1``, or ``Pm + 2`` when the
        top mantissa rounds up to ``2**(Pm + 1)``).
    ``"count"``
        Each lane decodes ``t'_i = q'_i * 2**F + r_i`` into one-hot flags; per bucket, exponent and sign a
        popcount over the lanes counts the products ``2**q'`` (a count needs ``c = bits(V)`` bits). Counts
        ``c`` exponents apart do not overlap, so per bucket and sign they are concatenated into ``c`` rows,
        and ``sums[r] = sum(positive rows) - sum(negative rows)``. Exact scheme only.

    Pipeline: (1) per-lane sign, zero and ``t'`` registered; (2) ``sums`` registered. Latency 2
    (:attr:`latency`), one beat per cycle; every register advances together (wrap the unit in
    ``EnableInserter`` to stall it).

    Parameters
    ----------
    lanes : int
        Products per beat: 4, 8, 16, 32, 64 or 128.
    fmt : LogFormat
        Format of both operands.
    organisation : str
        One of :data:`ORGANISATIONS`.
    scale_bits : int
        Width of each signed ``scale`` input, 0 (no input, default) to 9.
    scale_groups : int
        Number of scale inputs; a power of two dividing ``lanes``. Group ``g`` covers lanes
        ``[g * lanes / scale_groups, (g + 1) * lanes / scale_groups)``.
    q_floor, bucket_fraction_bits, mantissa_bits, window_bits : int or None, int or None, int, int or None
        As :class:`LogSum`.

    Members
    -------
    w, a : In(ArrayLayout(unsigned(bits), lanes))
        Operand codes; lane ``i`` of ``w`` meets lane ``i`` of ``a``.
    scale : In(ArrayLayout(signed(scale_bits), scale_groups))
        Present only with ``scale_bits > 0``: exponents in units of ``2**-F`` added to the products of
        each group, sampled with the operands.
    sums : Out(ArrayLayout(signed(sum_format.bits), LogSum.buckets))
        The bucket sums of the beat that entered :attr:`latency` cycles earlier.
    anchor : Out(unsigned(LogSum.anchor_bits))
        Present only with ``window_bits``: that beat's anchor ``e``.

    Raises
    ------
    ConfigError
        For any parameter out of range.
    """

    def __init__(self, lanes, fmt, organisation="tree", *, scale_bits=0, scale_groups=1, q_floor=None,
                 bucket_fraction_bits=None, mantissa_bits=0, window_bits=None):
        if lanes not in LOG_LANES:
            raise ConfigError(f"log dot-product lanes must be one of {', '.join(map(str, LOG_LANES))}, "
                              f"not {lanes!r}")
        if not isinstance(fmt, LogFormat):
            raise ConfigError(f"log dot-product format must be a LogFormat, not {fmt!r}")
        if organisation not in ORGANISATIONS:
            raise ConfigError(f"organisation must be one of {', '.join(ORGANISATIONS)}, not {organisation!r}")
        if (not is_int(scale_bits)
                or not 0 <= scale_bits <= _MAX_SCALE_BITS):
            raise ConfigError(f"scale_bits must be an integer from 0 to {_MAX_SCALE_BITS}, not {scale_bits!r}")
        if not is_int(scale_groups) or scale_groups not in [g for g in GROUP_LANES + LOG_LANES[-1:] if g <= lanes]:
            raise ConfigError(f"scale_groups must be a power of two dividing lanes = {lanes}, not {scale_groups!r}")
        scale_lo, scale_hi = (-(1 << (scale_bits - 1)), (1 << (scale_bits - 1)) - 1) if scale_bits else (0, 0)
        try:
            self._sum = LogSum(fmt, lanes, 1, scale_lo, scale_hi, q_floor, bucket_fraction_bits=bucket_fraction_bits,
                               mantissa_bits=mantissa_bits, window_bits=window_bits)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if organisation == "count" and self._sum.low_bits:
            raise ConfigError(f"organisation 'count' needs the exact scheme (bucket_fraction_bits None or "
                              f"{fmt.frac_bits}), not bucket_fraction_bits = {bucket_fraction_bits!r}")
        self._lanes = lanes
        self._organisation = organisation
        self._scale_bits = scale_bits
        self._scale_groups = scale_groups
        ports = {
            "w": In(data.ArrayLayout(unsigned(fmt.bits), lanes)),
            "a": In(data.ArrayLayout(unsigned(fmt.bits), lanes)),
            "sums": Out(data.ArrayLayout(signed(self._sum.sum_format.bits), self._sum.buckets)),
        }
        if scale_bits:
            ports["scale"] = In(data.ArrayLayout(signed(scale_bits), scale_groups))
        if self._sum.windowed:
            ports["anchor"] = Out(self._sum.anchor_bits)
        super().__init__(ports)

    @property
    def lanes(self):
        return self._lanes

    @property
    def format(self):
        return self._sum.fmt

    @property
    def log_sum(self):
        """The :class:`LogSum` of one beat (``q_min``, ``offset_max``, ``sum_format``)."""
        return self._sum

    @property
    def organisation(self):
        return self._organisation

    @property
    def scale_bits(self):
        return self._scale_bits

    @property
    def scale_groups(self):
        return self._scale_groups

    @property
    def latency(self):
        return 2

    def _tree_sums(self, m, lanes):
        """Bucket sums of organisation ``"tree"`` from the registered ``(sign, zero, t')`` of each lane."""
        if self._sum.low_bits:
            return self._hybrid_sums(m, lanes)
        fmt, top = self.format, self._sum.q_top
        buckets = [[] for _ in range(fmt.buckets)]
        for i, (sign, zero, offset) in enumerate(lanes):
            q_value, r_value = fmt.split(offset, AmaranthOps)
            q, r = Signal(range(top + 1), name=f"q{i}"), Signal(fmt.frac_bits, name=f"r{i}")
            m.d.comb += [q.eq(q_value), r.eq(r_value)]
            # +2**q is one-hot; -2**q, in two's complement, has every bit from q upward set (shifts of
            # constants, not comparisons: Verilator flags a constant comparison).
            term, gated = Signal(signed(top + 2), name=f"term{i}"), Signal(fmt.buckets, name=f"bucket{i}")
            ones, one = Const(-1, signed(top + 2)), Const(1, signed(top + 2))
            m.d.comb += [term.eq(Mux(sign, ones << q, one << q)),
                         gated.eq(Mux(zero, 0, Const(1, 1) << r))]
            for b, terms in enumerate(buckets):
                terms.append(Mux(gated[b], term, 0))
        return [adder_tree(terms) for terms in buckets]

    def _hybrid_sums(self, m, lanes):
        """Bucket sums of organisation ``"tree"`` of the hybrid scheme: ``2**b`` trees of shifted mantissas."""
        spec = self._sum
        top, width = spec.q_top, spec.q_top + spec.mantissa_width
        terms, negatives = [[] for _ in range(spec.buckets)], [[] for _ in range(spec.buckets)]
        for i, (sign, zero, offset) in enumerate(lanes):
            h_value, q_value, mantissa_value = spec.term(offset, AmaranthOps)
            q, mantissa = Signal(range(top + 1), name=f"q{i}"), Signal(spec.mantissa_width, name=f"mantissa{i}")
            magnitude = Signal(width, name=f"magnitude{i}")
            # One's complement of a negative term; its +1 is counted per bucket below.
            term = Signal(signed(width + 1), name=f"term{i}")
            gated = Signal(spec.buckets, name=f"bucket{i}")
            m.d.comb += [q.eq(q_value), mantissa.eq(mantissa_value), magnitude.eq(mantissa << q),
                         term.eq(Cat(magnitude ^ sign.replicate(width), sign).as_signed()),
                         gated.eq(Mux(zero, 0, Const(1, 1) << h_value) if spec.fraction_bits else ~zero)]
            for b in range(spec.buckets):
                terms[b].append(Mux(gated[b], term, 0))
                negatives[b].append(gated[b] & sign)
        return [adder_tree(t) + adder_tree(n) for t, n in zip(terms, negatives)]

    def _window_sum(self, m, lanes):
        """``(sums[0], anchor)`` of a windowed unit from the registered ``(sign, zero, t')`` of each lane."""
        spec = self._sum
        # W bits, or W + 1 when the largest mantissa rounds up to 2**(Pm + 1) (LogSum.mantissa_width).
        width = spec.mantissa_width + spec.guard_bits
        qs, mantissas = [], []
        for i, (sign, zero, offset) in enumerate(lanes):
            _, q_value, mantissa_value = spec.term(offset, AmaranthOps)
            q, mantissa = Signal(spec.anchor_bits, name=f"q{i}"), Signal(spec.mantissa_width, name=f"mantissa{i}")
            # A lane without a kept product takes no part in the anchor.
            m.d.comb += [q.eq(Mux(zero, 0, q_value)), mantissa.eq(mantissa_value)]
            qs.append(q)
            mantissas.append(mantissa)
        anchor = Signal(spec.anchor_bits)
        m.d.comb += anchor.eq(max_tree(qs))
        terms, negatives = [], []
        for i, ((sign, zero, _), q, mantissa) in enumerate(zip(lanes, qs, mantissas)):
            magnitude = Signal(width, name=f"magnitude{i}")
            # One's complement of a negative term; its +1 is counted below.
            term = Signal(signed(width + 1), name=f"term{i}")
            m.d.comb += [magnitude.eq(spec.window_term(mantissa, q, anchor, AmaranthOps)),
                         term.eq(Cat(magnitude ^ sign.replicate(width), sign).as_signed())]
            terms.append(Mux(zero, 0, term))
            negatives.append(~zero & sign)
        return adder_tree(terms) + adder_tree(negatives), anchor

    def _count_sums(self, m, lanes):
        """Bucket sums of organisation ``"count"`` from the registered ``(sign, zero, t')`` of each lane."""
        fmt, offset_max = self.format, self._sum.offset_max
        # A balanced tree over V = 2**n one-bit flags is a count of exactly n + 1 bits.
        width = len(lanes).bit_length()
        flags = []
        for i, (sign, zero, offset) in enumerate(lanes):
            hot = Const(1, 1) << offset
            positive = Signal(offset_max + 1, name=f"positive{i}")
            negative = Signal(offset_max + 1, name=f"negative{i}")
            m.d.comb += [positive.eq(Mux(zero | sign, 0, hot)), negative.eq(Mux(~zero & sign, hot, 0))]
            flags.append((positive, negative))
        sums = []
        for r in range(fmt.buckets):
            offsets = range(r, offset_max + 1, fmt.buckets)
            halves = []
            for side in (0, 1):
                counts = [adder_tree([f[side][t] for f in flags]) for t in offsets]
                # Count k weighs 2**k; counts `width` apart fill disjoint bit ranges of one row.
                rows = [Cat(*counts[phase::width]) << phase for phase in range(min(width, len(counts)))]
                halves.append(adder_tree(rows) if rows else Const(0))
            sums.append(halves[0] - halves[1])
        return sums

    def elaborate(self, platform):
        m = Module()
        fmt, spec = self.format, self._sum
        offset_bits = max(1, spec.offset_max.bit_length())
        per_group = self._lanes // self._scale_groups
        lanes = []
        for i in range(self._lanes):
            scale = self.scale[i // per_group] if self._scale_bits else 0
            sign, zero, t = fmt.product(self.w[i], self.a[i], scale)
            offset = t - (spec.q_min << fmt.frac_bits)
            if spec.q_floor is not None:
                zero = zero | (offset < 0)
            regs = (Signal(name=f"sign{i}"), Signal(name=f"zero{i}"), Signal(offset_bits, name=f"offset{i}"))
            m.d.sync += [regs[0].eq(sign), regs[1].eq(zero), regs[2].eq(offset)]
            lanes.append(regs)
        if spec.windowed:
            total, anchor = self._window_sum(m, lanes)
            m.d.sync += [self.sums[0].eq(total), self.anchor.eq(anchor)]
            return m
        sums = (self._tree_sums if self._organisation == "tree" else self._count_sums)(m, lanes)
        m.d.sync += [self.sums[r].eq(s) for r, s in enumerate(sums)]
        return m
