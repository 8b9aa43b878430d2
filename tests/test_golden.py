"""The golden model against independent arithmetic: plain matmul, a per-beat Python loop, hand packing."""

import numpy as np
import pytest

from qmac.hw.spec.config import PRESETS
from qmac.sim.dot_product import dot_product
from qmac.sim.gemm import assemble, expected_results, golden_gemm, operand_beats, plan_gemm
from qmac.sim.packing import pack_lanes, unpack_lanes

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("mode,lo,hi", [("int8", -128, 128), ("int4", -8, 8)])
def test_exact_gemm_is_matmul(mode, lo, hi):
    cfg = PRESETS["default"]
    W, A = RNG.integers(lo, hi, (37, 301)), RNG.integers(lo, hi, (301, 19))
    plan = plan_gemm(cfg, mode, W.shape, A.shape)
    Y, sat = golden_gemm(plan, W, A)
    assert np.array_equal(Y[:37, :19], W.astype(np.int64) @ A.astype(np.int64))
    assert not sat.any()
    rows = expected_results(plan, W, A)
    assert np.array_equal(assemble(plan, [r.data for r in rows]), W @ A)
    assert [r.last for r in rows] == [int(i % cfg.rows == cfg.rows - 1) for i in range(len(rows))]


def test_saturating_accumulation_matches_a_beat_loop():
    cfg = PRESETS["tiny"].replace(acc_bits=18)  # 18-bit accumulators: [-131072, 131071]
    W = np.full((2, 64), -128)
    W[1, 32:] = 127
    A = np.full((64, 2), -128)
    plan = plan_gemm(cfg, "int8", W.shape, A.shape)
    Y, sat = golden_gemm(plan, W, A)
    lo, hi = -(1 << 17), (1 << 17) - 1
    for r in range(2):
        acc, clipped = 0, False
        for b in range(plan.k_beats):  # 4 elements per beat
            s = int(W[r, 4 * b:4 * b + 4] @ A[4 * b:4 * b + 4, 0])
            acc, clipped = min(max(acc + s, lo), hi), clipped or not lo <= acc + s <= hi
        assert Y[r, 0] == acc and sat[r, 0] == clipped
    assert Y[0, 0] == hi and sat[0, 0]          # 64 * 16384 = 2**20 clips
    # row 1 climbs to the upper rail (clipped), then 32 * -16256 takes it down to the lower rail
    assert Y[1, 0] == lo
    assert sat[1, 0]


def test_packing_by_hand():
    # INT4 lane: element 0 in bits 0-3, element 1 in bits 4-7
    assert pack_lanes(np.array([-1, 2]), "int4").tolist() == [0x2F]
    assert pack_lanes(np.array([-128, 127]), "int8").tolist() == [0x80, 0x7F]
    codes = RNG.integers(-8, 8, (5, 32))
    assert np.array_equal(unpack_lanes(pack_lanes(codes, "int4"), "int4"), codes)
    with pytest.raises(ValueError, match=r"int4 codes must lie in \[-8, 7\], not \[-8, 8\]"):
        pack_lanes(np.array([-8, 8]), "int4")


def test_operand_beats_layout():
    cfg = PRESETS["tiny"]  # 2x2, V=4
    W = np.arange(2 * 8).reshape(2, 8) - 8
    A = np.arange(8 * 2).reshape(8, 2) - 3
    plan = plan_gemm(cfg, "int8", W.shape, A.shape)
    w_words, a_words = operand_beats(plan, W, A)
    assert len(w_words) == plan.beats == 2
    # beat 0: row 0 elements 0..3 in bytes 0..3, row 1 elements 0..3 in bytes 4..7
    expected = bytes(int(v) & 0xFF for v in list(W[0, :4]) + list(W[1, :4]))
    assert w_words[0] == int.from_bytes(expected, "little")
    expected = bytes(int(v) & 0xFF for v in list(A[4:8, 0]) + list(A[4:8, 1]))
    assert a_words[1] == int.from_bytes(expected, "little")


def test_w4a8_operand_beats_by_hand():
    """W4A8: INT4 weights packed two per byte, INT8 activations one per byte, 2V bytes per vector; INT8 tiles
    on the same build put lane i's activation at byte 2i."""
    cfg = PRESETS["tiny-w4a8"]  # 2x2, V=4
    W = RNG.integers(-8, 8, (2, 8))
    A = RNG.integers(-128, 128, (8, 2))
    w_words, a_words = operand_beats(plan_gemm(cfg, "w4a8", W.shape, A.shape), W, A)
    assert len(w_words) == 1
    assert w_words[0] == int.from_bytes(bytes(int(W[r, 2 * i] & 15 | (W[r, 2 * i + 1] & 15) << 4)
                                              for r in range(2) for i in range(4)), "little")
    assert a_words[0] == int.from_bytes(bytes(int(v) & 0xFF for c in range(2) for v in A[:, c]), "little")
    W8 = RNG.integers(-128, 128, (2, 4))
    _, a_words = operand_beats(plan_gemm(cfg, "int8", W8.shape, A[:4].shape), W8, A[:4])
    assert a_words[0] == int.from_bytes(bytes(b for c in range(2) for v in A[:4, c] for b in (int(v) & 0xFF, 0)),
                                        "little")
    Y, _ = golden_gemm(plan_gemm(cfg, "w4a8", W.shape, A.shape), W, A)
    assert np.array_equal(Y, W @ A)
    with pytest.raises(ValueError, match=r"activations codes must lie in \[-128, 127\] for w4a8"):
        golden_gemm(plan_gemm(cfg, "w4a8", W.shape, A.shape), W, A * 2)
    with pytest.raises(ValueError, match=r"weights codes must lie in \[-8, 7\] for w4a8"):
        golden_gemm(plan_gemm(cfg, "w4a8", W.shape, A.shape), W - 1, A)


def test_dot_product_twin():
    w = RNG.integers(0, 256, (100, 16)).astype(np.uint8)
    a = RNG.integers(0, 256, (100, 16)).astype(np.uint8)
    s8 = lambda x: x.astype(np.int64) - 256 * (x >= 128)
    assert np.array_equal(dot_product(w, a, "int8"), (s8(w) * s8(a)).sum(axis=1))
    a2 = RNG.integers(0, 256, (100, 32)).astype(np.uint8)   # W4A8: two INT8 activations per weight lane
    s4 = lambda x: (x & 15).astype(np.int64) - 16 * ((x & 15) >= 8)
    w4 = np.stack([s4(w), s4(w >> 4)], axis=-1).reshape(100, 32)
    assert np.array_equal(dot_product(w, a2, "w4a8"), (w4 * s8(a2)).sum(axis=1))


def test_plan_rejects_too_long_k():
    with pytest.raises(ValueError, match=r"^K = 1025 needs 257 beats of 4 elements; this core allows at most 256"):
        plan_gemm(PRESETS["tiny"], "int8", (2, 1025), (1025, 2))
    with pytest.raises(ValueError, match=r"^mode 'int8' is not built into this core; allowed: int4$"):
        plan_gemm(PRESETS["int4-wide"], "int8", (2, 4), (4, 2))


@pytest.mark.parametrize("preset,mode,kind,bits", [("default", "int8", "int", 8), ("default", "int4", "int", 8),
                                                   ("default", "int8", "pow2", 4), ("tiny", "int4", "pow2", 3)])
def test_scaled_gemm_is_a_per_element_sum(preset, mode, kind, bits):
    """Per-vector scales on an exact core: Y[n, m] = sum_k w * a * f(sw[n, k // g]) * f(sa[k // g, m]), with
    f(s) = s (int) or 2**s (pow2), summed in Python integers; K = 300 leaves a partial last group."""
    cfg = PRESETS[preset].replace(scale_bits=bits, scale_kind=kind)
    lo, hi = (-128, 128) if mode == "int8" else (-8, 8)
    W, A = RNG.integers(lo, hi, (11, 300)), RNG.integers(lo, hi, (300, 5))
    plan = plan_gemm(cfg, mode, W.shape, A.shape)
    g = plan.group_elements
    groups = -(-300 // g)
    f_lo, f_hi = cfg.scale_format.field_range
    sw, sa = RNG.integers(f_lo, f_hi + 1, (11, groups)), RNG.integers(f_lo, f_hi + 1, (groups, 5))
    f = (lambda s: int(s)) if kind == "int" else (lambda s: 2 ** int(s))
    expected = [[sum(int(W[n, k]) * int(A[k, m]) * f(sw[n, k // g]) * f(sa[k // g, m]) for k in range(300))
                 for m in range(5)] for n in range(11)]
    Y, sat = golden_gemm(plan, W, A, sw, sa)
    assert Y[:11, :5].tolist() == expected and not sat.any()
