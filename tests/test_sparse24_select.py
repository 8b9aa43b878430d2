"""Sparse24Select and SparseDotProduct in Amaranth's simulator against their golden twins, and the sparse
result against the dense dot product of the decompressed weights, for INT8-only, INT4-only and dual lanes."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.hw.int_datapath.sparse24_select import Sparse24Select
from qmac.hw.int_datapath.sparse_dot_product import SparseDotProduct
from qmac.sim.packing import pack_lanes
from qmac.sim.sparse24 import compress, decompress
from qmac.sim.sparse24_select import sparse24_beats, sparse24_select, sparse_dot_product

#: The six ascending pairs of distinct positions in a group of 4.
PAIRS = np.array(list(itertools.combinations(range(4), 2)))

BUILDS = [pytest.param(lanes, modes, levels, id=f"V{lanes}-{'+'.join(modes)}-L{levels}")
          for lanes, modes, levels in [(4, ("int8", "int4"), 2), (8, ("int8",), 1), (8, ("int4",), 3),
                                       (16, ("int8", "int4"), 2)]]


def word(values, bits):
    """Fields ``values`` (last axis) of ``bits`` bits each -> one integer, field 0 least significant."""
    return sum(int(v) << (bits * i) for i, v in enumerate(values))


def simulate(dut, beats, latency, output):
    """Drive one dict of port values (integers) per cycle; return ``output`` for each beat, read ``latency``
    cycles after its beat was set."""
    got = []

    async def tb(ctx):
        for t in range(len(beats) + latency):
            for name, value in beats[min(t, len(beats) - 1)].items():
                ctx.set(Value.cast(getattr(dut, name)), value)
            got.append(ctx.get(Value.cast(getattr(dut, output))))
            if latency:
                await ctx.tick()

    sim = Simulator(dut)
    if latency:
        sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got[latency:]


def sparse_weights(mode, rows, k, rng):
    """Dense 2:4 codes (rows x k) with groups of 0, 1 and 2 non-zeros, every index pair and extreme values."""
    code = ELEMENT_FORMATS[mode].code
    groups = rows * k // 4
    pair = PAIRS[rng.integers(0, len(PAIRS), groups)]
    count = rng.integers(0, 3, groups)
    values = rng.integers(code.min, code.max, (groups, 2), endpoint=True)
    pair[:6], count[:10] = PAIRS, 2
    values[6:10] = [[code.min, code.min], [code.max, code.max], [code.min, code.max], [code.max, code.min]]
    values[np.arange(2) >= count[:, None]] = 0
    dense = np.zeros((groups, 4), np.int64)
    np.put_along_axis(dense, pair, values, axis=1)
    return dense.reshape(rows, k)


def activations(mode, k, rng):
    code = ELEMENT_FORMATS[mode].code
    a = rng.integers(code.min, code.max, k, endpoint=True)
    a[:4], a[4:8] = code.min, code.max
    return a


@pytest.mark.parametrize("lanes,modes,levels", BUILDS)
def test_sparse_dot_product_equals_dense(lanes, modes, levels):
    """Per beat: the hardware equals the twin and the plain dense dot product of the decompressed weights."""
    rng = np.random.default_rng(lanes + len(modes))
    dut = SparseDotProduct(lanes, modes, levels)
    rows, beats, expected_twin, expected_dense = 6, [], [], []
    for mode in modes:
        dense_k = 2 * lanes * ELEMENT_FORMATS[mode].per_lane
        k = 4 * dense_k
        W, a = sparse_weights(mode, rows, k, rng), activations(mode, k, rng)
        sp = compress(W)
        assert (decompress(sp) == W).all()
        assert {tuple(p) for p in sp.indices.reshape(-1, 2)} == set(map(tuple, PAIRS))
        w_lanes, meta, a_lanes = sparse24_beats(sp, a, lanes, mode)
        expected_twin += sparse_dot_product(w_lanes, meta, a_lanes, mode).ravel().tolist()
        # Independent reference: the dense codes of each beat's 2E positions, multiplied and summed.
        expected_dense += (W.reshape(rows, -1, dense_k) * a.reshape(-1, dense_k)).sum(axis=-1).ravel().tolist()
        for r, b in np.ndindex(w_lanes.shape[:2]):
            beat = {"w": word(w_lanes[r, b], 8), "meta": word(meta[r, b], 2), "a": word(a_lanes[b], 8)}
            if len(modes) > 1:
                beat["int4"] = int(mode == "int4")
            beats.append(beat)
    order = rng.permutation(len(beats))  # interleave the modes of a dual build
    got = simulate(dut, [beats[i] for i in order], dut.latency, "sum")
    assert got == [expected_twin[i] for i in order]
    assert expected_twin == expected_dense
    assert dut.latency == 1 + -(-int(np.log2(lanes)) // levels)


@pytest.mark.parametrize("lanes,modes,levels", BUILDS)
def test_select_matches_twin_for_any_metadata(lanes, modes, levels):
    """Random indices (malformed pairs included) and random dense lanes: Sparse24Select equals its twin."""
    rng = np.random.default_rng(lanes)
    dut = Sparse24Select(lanes, modes)
    n = 64
    a = rng.integers(0, 256, (n, 2 * lanes), dtype=np.uint8)
    meta = rng.integers(0, 4, (n, 2 * lanes))
    mode = rng.choice(modes, n)
    beats = [{"a": word(a[t], 8), "meta": word(meta[t], 2)} | ({"int4": int(mode[t] == "int4")}
                                                               if len(modes) > 1 else {}) for t in range(n)]
    got = simulate(dut, beats, 0, "a_sel")
    assert got == [word(sparse24_select(a[t], meta[t], mode[t]), 8) for t in range(n)]


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_malformed_metadata_selects_the_index_given(mode):
    """Equal and descending indices: each kept weight still multiplies ``a[4*g + idx]``, a defined value."""
    per_lane = ELEMENT_FORMATS[mode].per_lane
    lanes, kept = 4, 4 * per_lane
    dut = SparseDotProduct(lanes, (mode,))
    positions = np.arange(2 * kept)
    # Distinct non-zero activations within each group, so that a wrong pick shows.
    a = (positions % 4 + 1) * np.where(positions // 4 % 2, -1, 1)
    w = np.array([-3, 5, -1, 2, 7, -8, 4, 1])[:kept]
    meta = np.resize([2, 2, 3, 1, 0, 0, 3, 3], 2 * lanes)  # equal, descending, equal, equal
    meta[kept:] = 0
    expected = sum(int(w[e]) * int(a[4 * (e // 2) + meta[e]]) for e in range(kept))
    beat = {"w": word(pack_lanes(w, mode), 8), "meta": word(meta, 2), "a": word(pack_lanes(a, mode), 8)}
    assert simulate(dut, [beat], dut.latency, "sum") == [expected]
    assert sparse_dot_product(pack_lanes(w, mode), meta, pack_lanes(a, mode), mode) == expected


def test_bad_parameters():
    with pytest.raises(ConfigError, match=r"^sparse select lanes must be a positive even integer, not 3$"):
        Sparse24Select(3, ("int8",))
    with pytest.raises(ConfigError, match=r"^sparse select modes must be a non-empty tuple of distinct names "
                                          r"from int8, int4, not \('int2',\)$"):
        Sparse24Select(4, ("int2",))
    with pytest.raises(ConfigError, match=r"^sparse select modes must be a non-empty tuple of distinct names "
                                          r"from int8, int4, not \('int8', 'w4a8'\)$"):
        Sparse24Select(4, ("int8", "w4a8"))
    with pytest.raises(ConfigError, match=r"^dot-product lanes must be one of .*, not 6$"):
        SparseDotProduct(6, ("int8",))  # the DotProduct's check


def test_twin_rejects_indices_out_of_range():
    with pytest.raises(ValueError, match=r"^2:4 indices must lie in 0\.\.3, not \[0, 4\]$"):
        sparse24_select(np.zeros(4, np.uint8), [0, 4, 0, 0], "int8")


def test_beats_need_whole_beats():
    sp = compress(np.zeros((1, 12), np.int64))
    with pytest.raises(ValueError, match=r"^K = 12 is not a multiple of the 8 dense positions of a int8 beat "
                                         r"of 4 lanes \(zero-pad it with pad_k\)$"):
        sparse24_beats(sp, np.zeros(12, np.int64), 4, "int8")
    with pytest.raises(ValueError, match=r"^activations must have shape \(12,\), not \(8,\)$"):
        sparse24_beats(sp, np.zeros(8, np.int64), 2, "int8")
