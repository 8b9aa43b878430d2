"""cocotb tests of the emitted core against the golden model (run through qmac.tb.runner)."""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge

from ..hw.config import MODE_CODES
from ..hw.formats import ELEMENT_FORMATS
from ..hw.requantize import RequantizeArithmetic
from ..sim.gemm import operand_beats, plan_gemm
from ..sim.requantize import tflite_shift_field
from .core_tb import CoreTB, compare_transactions
from .runner import config_from_env

CONFIG = config_from_env()
#: (valid-gap probability, ready probability): no stalls, and random stalls on every stream.
STALLS = [(0.0, 1.0), (0.3, 0.6)]


def _codes(rng, mode, shape):
    f = ELEMENT_FORMATS[mode].code
    return rng.integers(f.min, f.max + 1, shape)


async def _start(dut, seed=1):
    tb = CoreTB(dut, CONFIG, seed=seed)
    await tb.reset()
    return tb


@cocotb.test()
@cocotb.parametrize(stalls=STALLS)
async def random_gemms(dut, stalls):
    """Random GEMMs of odd shapes (padding in N, K and M) in every mode, with and without stalls."""
    gap, ready = stalls
    tb = await _start(dut)
    rng = np.random.default_rng(int(gap * 10))
    cfg = CONFIG
    for mode in cfg.modes:
        E = cfg.elements_per_beat(mode)
        for n, k, m in [(cfg.rows, E, cfg.cols), (2 * cfg.rows + 1, 3 * E - 1, cfg.cols + 1), (1, 1, 1)]:
            W, A = _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m))
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready)
            compare_transactions(rows, expected)
            assert np.array_equal(tb.result_matrix(plan, rows), W @ A), "assembled Y differs from W @ A"
            await tb.wait_idle()
            st = tb.status()
            assert st["macs"] == plan.beats * cfg.macs_per_cycle(mode), st
            assert st["cycles"] >= plan.beats and st["error"] == 0 and st["overflow"] == 0, st


def _scale_fields(rng, plan, shape):
    """Random scale fields with the extremes (0, 1 and the largest field) always present."""
    top = CONFIG.scale_format.max_field
    f = rng.integers(0, top + 1, shape)
    f.flat[:3] = [0, 1, top][:f.size]
    return f


@cocotb.test(skip=not CONFIG.scale_bits)
@cocotb.parametrize(stalls=STALLS)
async def scaled_gemms(dut, stalls):
    """Per-vector scale units: random scale fields (including 0, 1 and the largest) with odd GEMM shapes
    in every mode, with and without stalls on every stream."""
    gap, ready = stalls
    tb = await _start(dut)
    rng = np.random.default_rng(17 + int(gap * 10))
    cfg = CONFIG
    for mode in cfg.modes:
        E = cfg.elements_per_beat(mode)
        for n, k, m in [(cfg.rows, E, cfg.cols), (2 * cfg.rows + 1, 3 * E - 1, cfg.cols + 1)]:
            W, A = _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m))
            plan = plan_gemm(cfg, mode, W.shape, A.shape)
            groups = -(-k // plan.group_elements)
            sw, sa = _scale_fields(rng, plan, (n, groups)), _scale_fields(rng, plan, (groups, m))
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready, sw, sa)
            compare_transactions(rows, expected)
            await tb.wait_idle()


def _requant_params(rng, n):
    """Per-channel parameters mixing small multipliers with short shifts (many exact ties), TFLite-style
    multipliers in [2**30, 2**31) with right shifts, left shifts, large zero points, both output formats
    and both modes: saturation at both ends happens often."""
    tflite = rng.integers(0, 2, n)
    small = rng.integers(-5, 6, n)
    big = rng.integers(1 << 30, 1 << 31, n)
    multiplier = np.where(rng.random(n) < 0.5, small, big)
    shift = np.where(multiplier == small, rng.integers(0, 5, n), rng.integers(36, 46, n))
    tfl_shift = np.array([tflite_shift_field(int(s)) for s in rng.integers(-31, 4, n)])
    return {"multiplier": multiplier, "shift": np.where(tflite == 1, tfl_shift, shift),
            "zero_point": rng.integers(-128, 128, n), "int4": rng.integers(0, 2, n), "tflite": tflite}


@cocotb.test(skip=not CONFIG.output_stage)
@cocotb.parametrize(stalls=STALLS)
async def requantized_gemms(dut, stalls):
    """The output stage: raw accumulators and requantized INT8/INT4 codes per result row, per-channel
    parameters in both modes (fixed point and TFLite), with and without stalls on every stream."""
    gap, ready = stalls
    tb = await _start(dut)
    rng = np.random.default_rng(23 + int(gap * 10))
    cfg = CONFIG
    clipped = set()
    for mode in cfg.modes:
        E = cfg.elements_per_beat(mode)
        for n, k, m in [(3 * cfg.rows + 1, 2 * E + 1, cfg.cols + 1), (4 * cfg.rows, 5 * E, 2 * cfg.cols)]:
            W, A = _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m))
            params = _requant_params(rng, n)
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready, requant=params)
            compare_transactions(rows, expected)
            clipped |= {r[4] for r in rows}
            await tb.wait_idle()
    assert clipped == {0, 1}, "rows with and without saturation must both occur"


def _sparse_weights(rng, mode, n, k):
    """Random 2:4 sparse codes: every group one of the six index pairs, a single non-zero, or none, with
    the extreme codes mixed in."""
    f = ELEMENT_FORMATS[mode].code
    W = np.zeros((n, k), dtype=np.int64)
    patterns = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (0,), (1,), (2,), (3,), ()]
    for r in range(n):
        for g in range(k // 4):
            for i in patterns[(r * 7 + g) % len(patterns) if rng.random() < 0.5 else rng.integers(len(patterns))]:
                v = rng.choice([f.min, f.max, rng.integers(f.min, f.max + 1)])
                W[r, 4 * g + i] = v if v else 1
    return W


@cocotb.test(skip=not CONFIG.sparse)
@cocotb.parametrize(stalls=STALLS)
async def sparse_gemms(dut, stalls):
    """2:4 sparse tiles: compressed weights with all six index pairs and groups of 0, 1 or 2 non-zeros,
    extreme codes, every mode (and scales when built), with and without stalls; the result equals the
    dense product W @ A exactly, and dense tiles on the same build stay exact."""
    gap, ready = stalls
    tb = await _start(dut)
    rng = np.random.default_rng(31 + int(gap * 10))
    cfg = CONFIG
    for mode in cfg.modes:
        E = 2 * cfg.elements_per_beat(mode)
        for n, k, m in [(cfg.rows, E, cfg.cols), (2 * cfg.rows + 1, 3 * E - 4, cfg.cols + 1)]:
            W, A = _sparse_weights(rng, mode, n, k), _codes(rng, mode, (k, m))
            scales = (None, None)
            if cfg.scale_bits:
                plan = plan_gemm(cfg, mode, W.shape, A.shape, sparse=True)
                groups = -(-k // plan.group_elements)
                scales = (_scale_fields(rng, plan, (n, groups)), _scale_fields(rng, plan, (groups, m)))
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready, *scales, sparse=True)
            compare_transactions(rows, expected)
            if not cfg.scale_bits:
                assert np.array_equal(tb.result_matrix(plan, rows), W @ A)
            await tb.wait_idle()
            st = tb.status()
            assert st["macs"] == plan.beats * cfg.macs_per_cycle(mode, sparse=True), st


@cocotb.test()
async def extreme_values(dut):
    """All operands at the most negative code over the longest K the core allows: the largest possible
    sum. Exact accumulators hold it; saturating ones clip to their maximum and flag it."""
    tb = await _start(dut)
    cfg = CONFIG
    for mode in cfg.modes:
        f = ELEMENT_FORMATS[mode].code
        k = cfg.max_k_beats * cfg.elements_per_beat(mode)
        for wv, av in [(f.min, f.min), (f.min, f.max)]:
            W = np.full((cfg.rows, k), wv)
            A = np.full((k, cfg.cols), av)
            plan = plan_gemm(cfg, mode, W.shape, A.shape)
            scales, factor = (None, None), 1
            if cfg.scale_bits:  # the largest scale fields everywhere: the largest possible sum
                top = cfg.scale_format.max_field
                scales = (np.full((cfg.rows, plan.k_groups), top), np.full((plan.k_groups, cfg.cols), top))
                factor = cfg.scale_format.max_product
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, 0.0, 1.0, *scales)
            compare_transactions(rows, expected)
            await tb.wait_idle()
            true_sum = k * wv * av * factor
            fits = cfg.acc_format.contains(true_sum, true_sum)
            assert all(v == true_sum for r in rows for v in r[0]) == fits
            assert tb.status()["overflow"] == (0 if fits else 1)
            assert all(r[2] == (0 if fits else 1) for r in rows)


@cocotb.test()
async def back_to_back_tiles(dut):
    """Tiles streamed without pause: one-beat tiles (the array must stall while the shadow bank drains)
    and tiles of as many beats as rows (draining fully overlaps computing: no stall at all)."""
    tb = await _start(dut)
    rng = np.random.default_rng(7)
    cfg = CONFIG
    mode = cfg.modes[0]
    E = cfg.elements_per_beat(mode)
    for k_beats in (1, max(cfg.rows, 2)):
        n, m = 3 * cfg.rows, 2 * cfg.cols
        W, A = _codes(rng, mode, (n, k_beats * E)), _codes(rng, mode, (k_beats * E, m))
        await tb.clear()
        plan, rows, expected = await tb.run_gemm(mode, W, A)
        compare_transactions(rows, expected)
        await tb.wait_idle()
        cycles = tb.status()["cycles"]
        if k_beats >= cfg.rows:
            # Every beat accepted back to back: only the pipeline fill and the last drain add cycles.
            latency = cfg.dot_latency + 1 + (len(RequantizeArithmetic(cfg.acc_format.bits).stages)
                                             if cfg.output_stage else 0)
            assert cycles <= plan.beats + latency + cfg.rows + 1, (cycles, plan.beats)


@cocotb.test()
async def reset_mid_tile(dut):
    """Reset while a tile is half streamed; the next GEMM is exact and the counters restart."""
    tb = await _start(dut)
    rng = np.random.default_rng(3)
    cfg = CONFIG
    mode = cfg.modes[-1]
    E = cfg.elements_per_beat(mode)
    W, A = _codes(rng, mode, (cfg.rows, 4 * E)), _codes(rng, mode, (4 * E, cfg.cols))
    tb.set_mode(mode, 4)
    w_words, a_words = operand_beats(plan_gemm(cfg, mode, W.shape, A.shape), W, A)
    half = [cocotb.start_soon(tb.send("w", w_words[:2])), cocotb.start_soon(tb.send("a", a_words[:2]))]
    for s in half:
        await s
    await ClockCycles(dut.clk, 1)
    assert tb.status()["busy"] == 1
    await tb.reset()
    assert tb.status() == {"busy": 0, "overflow": 0, "error": 0, "cycles": 0, "macs": 0}
    plan, rows, expected = await tb.run_gemm(mode, W, A)
    compare_transactions(rows, expected)


@cocotb.test()
async def unsupported_mode(dut):
    """A mode code the build lacks raises the sticky error flag; the tile runs in the build's first mode."""
    tb = await _start(dut)
    rng = np.random.default_rng(5)
    cfg = CONFIG
    missing = next(c for c in range(4) if c not in {MODE_CODES[m] for m in cfg.modes})
    mode = cfg.modes[0]
    E = cfg.elements_per_beat(mode)
    W, A = _codes(rng, mode, (cfg.rows, E)), _codes(rng, mode, (E, cfg.cols))
    plan, rows, expected = await tb.run_gemm(mode, W, A, mode_code=missing)
    compare_transactions(rows, expected)
    assert tb.status()["error"] == 1
    await tb.clear()
    assert tb.status()["error"] == 0
    if not cfg.sparse:  # a sparse tile on a dense build: flagged, and run dense
        plan, rows, expected = await tb.run_gemm(mode, W, A, sparse_code=1)
        compare_transactions(rows, expected)
        assert tb.status()["error"] == 1
