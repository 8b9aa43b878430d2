"""Formal proof (SymbiYosys, yices) that SparseDotProduct computes the dense dot product of the decompressed
weights, for V = 4.

Claim: for any weights, activations and valid metadata (distinct, ascending indices in every group), the
SparseDotProduct's ``sum`` equals, at every cycle, that of a 2V-lane DotProduct fed the decompressed weights
and the same activations (the sparse sum delayed by the difference of their latencies).

The solver cannot take the claim in one piece: with the metadata free it has to show that a multiplier fed a
multiplexed activation equals multipliers fed multiplexed weights, which took yices minutes for a single
INT8 lane. So it is split into ``valid metadata => group lemma`` and ``group lemma => claim``. The group
lemma of group ``g``: the lane products of the kept-weight lanes holding ``g`` (kept weights times
Sparse24Select's output) sum to the lane products of the dense lanes holding ``g`` (decompressed weights times
activations).

:class:`GroupLemma` (combinational, exhaustive)
    Asserts the lemma of every group for each of the six valid index pairs set as its indices (all other
    metadata free), on a Sparse24Select and LaneProducts of the build. With the pair constant, Yosys folds
    both sides onto shared multipliers. Under valid metadata the indices of every group are one of the six.
:class:`Composition` (k-induction)
    SparseDotProduct and the dense DotProduct with every LaneProduct cut out (outputs free), assuming the
    lemma of the mode in use on those outputs. Asserts that the lane products are fed as in GroupLemma (so
    the lemma is theirs) and that the sums are equal; left to the solver are multiplexers, adders, registers.

Negative test: GroupLemma over all 16 index pairs fails (on equal indices; descending ones decompress to the
weights the multiplexers select, and hold). The dual build runs in CI, the single-mode builds (the same logic
with ``int4`` tied off) with ``-m slow``.
"""

import itertools

import pytest
from amaranth.hdl import Assert, Assume, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.spec.formats import ELEMENT_FORMATS, INT4
from qmac.hw.lanes.lane_product import LaneProduct
from qmac.hw.ops import adder_tree
from qmac.hw.int_datapath.sparse24_select import Sparse24Select
from qmac.hw.int_datapath.sparse_dot_product import SparseDotProduct
from qmac.toolchain.formal import run_sby

LANES = 4
VALID_PAIRS = list(itertools.combinations(range(4), 2))
DUAL = ("int8", "int4")


def _builds(with_mode):
    """Parameters over the mode sets (and, ``with_mode``, each of their modes): the dual build in CI, the
    single-mode builds (the same logic with ``int4`` tied) only with ``-m slow``."""
    params = []
    for modes in [DUAL, ("int8",), ("int4",)]:
        marks = () if modes == DUAL else pytest.mark.slow
        for mode in modes if with_mode else [None]:
            values = (modes, mode) if with_mode else (modes,)
            params.append(pytest.param(*values, marks=marks, id="+".join(modes) + (f"-{mode}" if mode else "")))
    return params


def _decompressed(w, meta, fmt):
    """The 2V dense weight lanes (as one value) of the V kept-weight lanes ``w``: dense element ``4g + i`` is
    kept element ``2g`` if its index is ``i``, else kept element ``2g + 1`` if its index is ``i``, else 0."""
    kept = [w.as_value().word_select(e, fmt.bits) for e in range(LANES * fmt.per_lane)]
    return Cat(Mux(meta[2 * (p // 4)] == p % 4, kept[2 * (p // 4)],
                   Mux(meta[2 * (p // 4) + 1] == p % 4, kept[2 * (p // 4) + 1], Const(0, fmt.bits)))
               for p in range(2 * len(kept)))


def _group_lanes(fmt, g):
    """The kept-weight lanes and the dense lanes that hold group ``g`` of mode ``fmt``."""
    return (sorted({e // fmt.per_lane for e in (2 * g, 2 * g + 1)}),
            sorted({p // fmt.per_lane for p in range(4 * g, 4 * g + 4)}))


def _group_lemma(fmt, g, sparse_p, dense_p):
    """Whether the lane products ``sparse_p`` of the kept-weight lanes holding group ``g`` sum to the lane
    products ``dense_p`` of its dense lanes (both indexed by lane; summed as DotProduct's tree does)."""
    kept, dense = _group_lanes(fmt, g)
    return adder_tree([sparse_p[l] for l in kept]) == adder_tree([dense_p[q] for q in dense])


def _groups(fmt):
    return range(LANES * fmt.per_lane // 2)


class GroupLemma(wiring.Component):
    """Asserts the group lemma of mode ``mode`` of a ``modes`` build for every group and every index pair
    of ``pairs`` (set as that group's indices; the other indices are the free ``meta``), on a
    Sparse24Select and LaneProducts of the build."""

    def __init__(self, modes, mode, pairs):
        self._modes = modes
        self._fmt = ELEMENT_FORMATS[mode]
        self._pairs = pairs
        super().__init__({"w": In(data.ArrayLayout(8, LANES)), "meta": In(data.ArrayLayout(2, 2 * LANES)),
                          "a": In(data.ArrayLayout(8, 2 * LANES))})

    def _product(self, m, w, a):
        lane = LaneProduct(self._modes)
        m.submodules += lane
        m.d.comb += [lane.w.eq(w), lane.a.eq(a)]
        if len(self._modes) > 1:
            m.d.comb += lane.int4.eq(self._fmt == INT4)
        return lane.p

    def elaborate(self, platform):
        m = Module()
        for g, pair in itertools.product(_groups(self._fmt), self._pairs):
            meta = [self.meta[e] for e in range(2 * LANES)]
            meta[2 * g:2 * g + 2] = [Const(i, 2) for i in pair]
            select = Sparse24Select(LANES, self._modes)
            m.submodules += select
            m.d.comb += [select.a.eq(self.a), select.meta.eq(Cat(meta))]
            if len(self._modes) > 1:
                m.d.comb += select.int4.eq(self._fmt == INT4)
            kept, dense = _group_lanes(self._fmt, g)
            dense_w = _decompressed(self.w, meta, self._fmt)
            sparse_p = {l: self._product(m, self.w[l], select.a_sel[l]) for l in kept}
            dense_p = {q: self._product(m, dense_w.word_select(q, 8), self.a[q]) for q in dense}
            m.d.comb += Assert(_group_lemma(self._fmt, g, sparse_p, dense_p))
        return m


class Composition(wiring.Component):
    """Asserts that the SparseDotProduct's ``sum``, delayed to the dense latency, equals that of a dense
    DotProduct fed the decompressed weights, assuming the group lemma (of the mode in use, for every group)
    for the lane products of both; and that those lane products are fed as the lemma has it.

    Run with :data:`LANE_PRODUCTS` as cut points: the proof needs the lane products only through the lemma.
    """

    def __init__(self, modes):
        self._sparse = SparseDotProduct(LANES, modes)
        self._dense = DotProduct(2 * LANES, modes)
        self._modes = modes
        ports = {"w": In(data.ArrayLayout(8, LANES)), "meta": In(data.ArrayLayout(2, 2 * LANES)),
                 "a": In(data.ArrayLayout(8, 2 * LANES))}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def latency(self):
        """Latency of the dense DotProduct, the longer one."""
        return self._dense.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.sparse = sparse = self._sparse
        m.submodules.dense = dense = self._dense
        m.submodules.select = select = Sparse24Select(LANES, self._modes)
        int4 = self.int4 if len(self._modes) > 1 else Const(self._modes == (INT4.name,))
        # The lane products inside both units (private members: this harness reaches into them).
        sparse_lanes, dense_lanes = sparse._dot._units, dense._units
        per_mode = {}
        for name in self._modes:
            fmt = ELEMENT_FORMATS[name]
            lemma = Cat(_group_lemma(fmt, g, [lane.p for lane in sparse_lanes], [lane.p for lane in dense_lanes])
                        for g in _groups(fmt)).all()
            per_mode[name] = (_decompressed(self.w, self.meta, fmt), lemma)
        dense_w, lemma = per_mode[self._modes[0]]
        if len(self._modes) > 1:
            (w4, lemma4), (w8, lemma8) = per_mode[INT4.name], per_mode["int8"]
            dense_w, lemma = Mux(int4, w4, w8), Mux(int4, lemma4, lemma8)
            m.d.comb += [sparse.int4.eq(int4), dense.int4.eq(int4), select.int4.eq(int4),
                         Assert(Cat(lane.int4 == int4 for lane in sparse_lanes + dense_lanes).all())]
        m.d.comb += [sparse.w.eq(self.w), sparse.meta.eq(self.meta), sparse.a.eq(self.a),
                     select.a.eq(self.a), select.meta.eq(self.meta),
                     dense.w.eq(dense_w), dense.a.eq(self.a), Assume(lemma)]
        m.d.comb += Assert(Cat((lane.w == self.w[l]) & (lane.a == select.a_sel[l])
                               for l, lane in enumerate(sparse_lanes)).all())
        m.d.comb += Assert(Cat((lane.w == dense_w.word_select(q, 8)) & (lane.a == self.a[q])
                               for q, lane in enumerate(dense_lanes)).all())
        total = sparse.sum
        for i in range(dense.latency - sparse.latency):
            delayed = Signal.like(total, name=f"sparse_sum_d{i}", reset_less=True)   # as the units' own registers
            m.d.sync += delayed.eq(total)
            total = delayed
        m.d.comb += Assert(total == dense.sum)
        return m


#: Cut points of :class:`Composition`: every LaneProduct of both units.
LANE_PRODUCTS = ("t:top.sparse.dot.lane*", "t:top.dense.lane*")


@pytest.mark.parametrize("modes,mode", _builds(with_mode=True))
def test_group_lemma_holds_for_valid_metadata(tmp_path, modes, mode):
    result = run_sby(GroupLemma(modes, mode, VALID_PAIRS), "lemma", tmp_path, mode="bmc", depth=1)
    assert result.status == "PASS", result.log.read_text()[-3000:]


@pytest.mark.parametrize("modes", _builds(with_mode=False))
def test_group_lemma_implies_sparse_equals_dense(tmp_path, modes):
    top = Composition(modes)
    # A feed-forward pipeline's state is a function of its last `latency` inputs, so k-induction with k one
    # above the latency proves the property for every trace.
    result = run_sby(top, "composition", tmp_path, mode="prove", depth=top.latency + 1, cutpoints=LANE_PRODUCTS)
    assert result.status == "PASS", result.log.read_text()[-3000:]


def test_group_lemma_fails_for_malformed_metadata(tmp_path):
    """Enumerating every index pair instead of the valid ones: equal indices break the lemma. (On the
    INT8-only build, the cheapest to convert.)"""
    pairs = list(itertools.product(range(4), repeat=2))
    result = run_sby(GroupLemma(("int8",), "int8", pairs), "lemma", tmp_path, mode="bmc", depth=1)
    assert result.status == "FAIL", result.log.read_text()[-3000:]


def test_run_sby_checks_its_parameters(tmp_path):
    with pytest.raises(ValueError, match=r"^SymbiYosys mode must be one of bmc, prove, not 'cover'$"):
        run_sby(GroupLemma(DUAL, "int8", VALID_PAIRS), "x", tmp_path, mode="cover")
    with pytest.raises(ValueError, match=r"^SymbiYosys depth must be an integer 1\.\.1000, not 0$"):
        run_sby(GroupLemma(DUAL, "int8", VALID_PAIRS), "x", tmp_path, depth=0)
