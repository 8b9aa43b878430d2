"""Formal proof (SymbiYosys, yices) that LogDotProduct's bucket sums, accumulated per bucket over a tile, equal
the per-product terms of the spec accumulated the same way, for both bucket organisations.

Claim: for any codes, scales and tile boundaries (``first``, free), every cycle once the pipeline holds beats
that entered after reset,

- per beat: ``sums[r]`` equals the sum over the lanes of that beat (operands delayed by the unit's latency)
  of the naive term ``(-1)**s * 2**q'`` of each kept product with fraction ``r`` (hybrid units: the naive
  term ``(-1)**s * M_l * 2**q'`` of each kept product whose top ``b`` fraction bits are ``r``, with
  ``M_l = round(2**(Pm + l/2**F))`` of its low ``F - b`` fraction bits ``l``, computed in float64 here);
- per tile: the bucket accumulators ``A_r <= (first ? 0 : A_r) + sums[r]`` equal the naive accumulators that
  add each product's own term to its bucket, from the tile's first beat on. Both are ``W`` bits wide and wrap
  alike, so this holds modulo ``2**W``; ``W`` is the exact accumulator width of tiles of up to 2**10 beats
  (``LogSum.acc_format``), so for those it is exact.

The naive side decodes the codes bit by bit from the spec (docs/lns.md: ``t = (f_w - bias) + (f_a - bias) +
scale``, ``t - q_min * 2**F = q' * 2**F + r``, zero when a field is 0, dropped when ``t' < 0``), sharing no
code with the unit. k-induction with k = latency + 1 proves it for every trace (a feed-forward pipeline's
state is a function of its last ``latency`` inputs; the accumulator relation is then inductive). A naive
side that puts lane 0 into the wrong bucket must fail, so the check is not vacuous.

Windowed units (``window_bits``, :class:`WindowEqualsNaive`): per beat, ``anchor`` equals the largest ``q'``
of the kept products (a chain of comparisons here, a tree in the unit; 0 if none) and ``sums[0]`` the sum of
the naive terms ``(-1)**s * ((M_l << g) >> (anchor - q'))`` (negated directly, not by the unit's one's
complement and counted ``+1``s). The accumulation across beats (:meth:`LogSum.window_accumulate`) is not
proven: its only definition is the spec's own (a naive copy would restate it), and the golden model, which
uses the same spec on numpy, is checked against the float64 product within the error bound instead.

Not proven here: the combine ``sum_r A_r * C_r`` against converting every product, ``sum (-1)**s * C_r << q'``.
That step is distributivity plus the shift-add constant multipliers, and yices does not finish it in minutes
even for ``P = 3`` (it is multiplier equivalence); ``tests/test_log_dot_product.py`` checks
``times_constant`` for every constant up to 2**13 and the combine against the model in simulation.
"""

import pytest
from amaranth.hdl import Assert, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from qmac.hw.log_datapath.log_dot_product import ORGANISATIONS, LogDotProduct
from qmac.hw.ops import adder_tree
from qmac.hw.spec.log_format import LNS4, LogFormat
from qmac.hw.spec.log_sum import LogSum
from qmac.toolchain.formal import run_sby

#: A 5-bit format: exponents -7..7 in quarter octaves, q' up to 7 (LNS4: up to 3).
LNS5 = LogFormat(5, 2)
#: The smallest F = 4 format: exponents -15..15 in sixteenths of an octave, one integer bit.
LNS6_F4 = LogFormat(6, 4)
LANES = 4
TILE_BEATS = 1 << 10


class BucketsEqualNaive(wiring.Component):
    """A LogDotProduct and its per-bucket tile accumulators against the naive per-product terms.

    ``first`` starts a tile: it travels beside the operands and clears both accumulators when its beat leaves
    the unit. ``wrong_bucket`` moves lane 0's naive term to the next bucket (negative test).
    """

    def __init__(self, fmt, organisation, *, scale_bits=0, q_floor=None, wrong_bucket=False, b=None, pm=0):
        self._dot = LogDotProduct(LANES, fmt, organisation, scale_bits=scale_bits, q_floor=q_floor,
                                  bucket_fraction_bits=b, mantissa_bits=pm)
        spec = self._dot.log_sum
        self._width = LogSum(fmt, LANES, TILE_BEATS, spec.scale_lo, spec.scale_hi, q_floor, bucket_fraction_bits=b,
                             mantissa_bits=pm).acc_format.bits
        self._low, self._pm = (0, 0) if b is None else (fmt.frac_bits - b, pm)
        self._wrong_bucket = wrong_bucket
        ports = {"w": In(data.ArrayLayout(unsigned(fmt.bits), LANES)),
                 "a": In(data.ArrayLayout(unsigned(fmt.bits), LANES)), "first": In(1)}
        if scale_bits:
            ports["scale"] = In(signed(scale_bits))
        super().__init__(ports)

    @property
    def latency(self):
        return self._dot.latency

    def _delayed(self, m, value, name):
        for i in range(self._dot.latency):
            reg = Signal.like(value, name=f"{name}_d{i}")
            m.d.sync += reg.eq(value)
            value = reg
        return value

    def _naive_terms(self, w, a, scale):
        """Per lane ``(x, r)``: ``x = (-1)**s * 2**q'`` (0 for a zero or dropped product) and its bucket."""
        fmt, spec = self._dot.format, self._dot.log_sum
        field = fmt.bits - 1
        out = []
        for i in range(LANES):
            fw, fa = w[i][:field], a[i][:field]
            offset = fw + fa + scale - 2 * fmt.bias - (spec.q_min << fmt.frac_bits)
            low = offset[:self._low]
            mantissa = Const(1 << self._pm, self._pm + 1)
            for l in range(1, 1 << self._low):
                mantissa = Mux(low == l, round(2.0 ** (self._pm + l / fmt.buckets)), mantissa)
            one = (mantissa.as_unsigned() << (offset >> fmt.frac_bits)[:max(1, spec.q_top.bit_length())])
            one = one[:spec.q_top + self._pm + 2]
            r = offset[self._low:fmt.frac_bits] if fmt.frac_bits > self._low else Const(0, 1)
            if self._wrong_bucket and i == 0:
                r = (r + 1)[:max(1, fmt.frac_bits - self._low)]
            x = Mux((fw == 0) | (fa == 0) | (offset < 0), 0, Mux(w[i][field] ^ a[i][field], -one, one))
            out.append((x, r))
        return out

    def elaborate(self, platform):
        m = Module()
        m.submodules.dot = dot = self._dot
        latency = dot.latency
        m.d.comb += [dot.w.eq(self.w), dot.a.eq(self.a)]
        scale = 0
        if dot.scale_bits:
            m.d.comb += dot.scale[0].eq(self.scale)
            scale = self._delayed(m, self.scale, "scale")
        # The operands and `first` of the beat whose sums leave the unit now.
        terms = self._naive_terms(self._delayed(m, self.w, "w"), self._delayed(m, self.a, "a"), scale)
        first = self._delayed(m, self.first, "first")
        filled, started = Signal(range(latency + 1)), Signal()
        with m.If(filled != latency):
            m.d.sync += filled.eq(filled + 1)
        m.d.sync += started.eq(started | first)
        for b in range(dot.log_sum.buckets):
            naive_beat = adder_tree([Mux(r == b, x, 0) for x, r in terms])
            acc, naive = Signal(signed(self._width), name=f"acc{b}"), Signal(signed(self._width), name=f"naive{b}")
            m.d.sync += [acc.eq(Mux(first, 0, acc) + dot.sums[b]), naive.eq(Mux(first, 0, naive) + naive_beat)]
            m.d.comb += [Assert((filled != latency) | (dot.sums[b] == naive_beat)),
                         Assert(~started | (acc == naive))]
        return m


def _case(fmt, organisation, slow=False, **kwargs):
    name = "-".join([f"lns{fmt.bits}", organisation] + [f"{k}{v}" for k, v in kwargs.items()])
    return pytest.param(fmt, organisation, kwargs, id=name, marks=pytest.mark.slow if slow else ())


# CI (about 25 s of solver time): LNS4 tree, the 5-bit format with a q_floor (its narrowest unit) and the F = 4
# unit below. With -m slow: count (25 s for LNS4), the full 5-bit units and the scale inputs (0.5 to 4 min each,
# the 5-bit count units more than 9 min).
_CASES = [_case(LNS4, "tree"), _case(LNS5, "tree", q_floor=0), _case(LNS4, "count", slow=True)]
# Hybrid buckets: LNS4 with b = 1 and b = 0 (mantissas of 2 and 3 bits), the 5-bit format with b = 1.
_CASES += [_case(LNS4, "tree", b=1, pm=2), _case(LNS4, "tree", b=0, pm=3), _case(LNS5, "tree", slow=True, b=1, pm=3)]
# F = 4: hybrid b = 0, Pm = 1 with q_floor = 0 in CI (5 s), whose top mantissa round(2 * 2**(15/16)) = 4 needs
# Pm + 2 bits; with -m slow Pm = 2 (M_15 = 8) without a floor, b = 1 (two buckets), a 2-bit scale input and
# the exact scheme's 16 buckets with q_floor = 0 (15 s to 2 min each on a busy 2-core machine).
_CASES += [_case(LNS6_F4, "tree", q_floor=0, b=0, pm=1), _case(LNS6_F4, "tree", slow=True, b=0, pm=2),
           _case(LNS6_F4, "tree", slow=True, q_floor=0, b=1, pm=1),
           _case(LNS6_F4, "tree", slow=True, q_floor=0, b=0, pm=1, scale_bits=2),
           _case(LNS6_F4, "tree", slow=True, q_floor=0)]
_CASES += [_case(LNS5, org, slow=True) for org in ORGANISATIONS]
_CASES += [_case(fmt, org, slow=True, scale_bits=2) for fmt in (LNS4, LNS5) for org in ORGANISATIONS]


class WindowEqualsNaive(wiring.Component):
    """A windowed LogDotProduct (``b = 0``) against the naive anchor and window terms of each beat.
    ``wrong_anchor`` leaves lane 0 out of the naive anchor (negative test)."""

    def __init__(self, fmt, pm, window, *, wrong_anchor=False):
        self._dot = LogDotProduct(LANES, fmt, bucket_fraction_bits=0, mantissa_bits=pm, window_bits=window)
        self._pm, self._window, self._wrong_anchor = pm, window, wrong_anchor
        super().__init__({"w": In(data.ArrayLayout(unsigned(fmt.bits), LANES)),
                          "a": In(data.ArrayLayout(unsigned(fmt.bits), LANES))})

    @property
    def latency(self):
        return self._dot.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.dot = dot = self._dot
        fmt, spec = dot.format, dot.log_sum
        m.d.comb += [dot.w.eq(self.w), dot.a.eq(self.a)]
        w, a = self.w, self.a
        for i in range(dot.latency):
            w_d, a_d = Signal.like(w, name=f"w_d{i}"), Signal.like(a, name=f"a_d{i}")
            m.d.sync += [w_d.eq(w), a_d.eq(a)]
            w, a = w_d, a_d
        field, g = fmt.bits - 1, self._window - self._pm - 1
        lanes = []
        for i in range(LANES):
            fw, fa = w[i][:field], a[i][:field]
            offset = fw + fa - 2 * fmt.bias - (spec.q_min << fmt.frac_bits)
            q = Signal(8, name=f"naive_q{i}")
            m.d.comb += q.eq(offset >> fmt.frac_bits)
            mantissa = Const(1 << self._pm, self._pm + 1)
            for l in range(1, fmt.buckets):
                mantissa = Mux(offset[:fmt.frac_bits] == l, round(2.0 ** (self._pm + l / fmt.buckets)), mantissa)
            kept = (fw != 0) & (fa != 0) & (offset >= 0)
            lanes.append((kept, w[i][field] ^ a[i][field], q, mantissa))
        anchor = Const(0, 8)
        for i, (kept, _, q, _) in enumerate(lanes):
            if not (self._wrong_anchor and i == 0):
                anchor = Mux(kept & (q > anchor), q, anchor)
        terms = []
        for kept, sign, q, mantissa in lanes:
            magnitude = Signal(self._window + 1, name=f"naive_magnitude{len(terms)}")
            m.d.comb += magnitude.eq((mantissa << g) >> (anchor - q)[:8])
            terms.append(Mux(kept, Mux(sign, -magnitude, magnitude), 0))
        filled = Signal(range(dot.latency + 1))
        with m.If(filled != dot.latency):
            m.d.sync += filled.eq(filled + 1)
        m.d.comb += Assert((filled != dot.latency) | ((dot.sums[0] == adder_tree(terms)) & (dot.anchor == anchor)))
        return m


# CI: LNS4 with 2-bit mantissas in a 4-bit window; with -m slow 3-bit mantissas in a 6-bit window (2.5 min).
@pytest.mark.parametrize("fmt, pm, window", [pytest.param(LNS4, 2, 4, id="lns4-m2-w4"),
                                             pytest.param(LNS4, 3, 6, id="lns4-m3-w6", marks=pytest.mark.slow)])
def test_window_sums_equal_the_naive_terms(tmp_path, fmt, pm, window):
    top = WindowEqualsNaive(fmt, pm, window)
    result = run_sby(top, "prove", tmp_path, mode="prove", depth=top.latency + 1, timeout=1800)
    assert result.status == "PASS", result.log.read_text()[-3000:]


def test_a_wrong_anchor_is_caught(tmp_path):
    result = run_sby(WindowEqualsNaive(LNS4, 3, 6, wrong_anchor=True), "wrong", tmp_path, mode="bmc", depth=4)
    assert result.status == "FAIL", result.log.read_text()[-3000:]


@pytest.mark.parametrize("fmt, organisation, kwargs", _CASES)
def test_bucket_sums_equal_the_naive_terms(tmp_path, fmt, organisation, kwargs):
    top = BucketsEqualNaive(fmt, organisation, **kwargs)
    result = run_sby(top, "prove", tmp_path, mode="prove", depth=top.latency + 1, timeout=1800)
    assert result.status == "PASS", result.log.read_text()[-3000:]


@pytest.mark.parametrize("fmt, kwargs", [(LNS4, {}), (LNS4, {"b": 1, "pm": 2}), (LNS6_F4, {"q_floor": 0, "b": 1, "pm": 1})],
                         ids=["exact", "hybrid", "hybrid-f4"])
def test_a_wrong_bucket_is_caught(tmp_path, fmt, kwargs):
    result = run_sby(BucketsEqualNaive(fmt, "tree", wrong_bucket=True, **kwargs), "wrong", tmp_path, mode="bmc",
                     depth=4)
    assert result.status == "FAIL", result.log.read_text()[-3000:]
