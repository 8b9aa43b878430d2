"""cocotb tests of the emitted core against the golden model (run through qmac.tb.runner)."""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from qmac.hw.spec.config import MODE_CODES, code_range
from qmac.hw.spec.datapath import IntDatapath, LogDatapath
from qmac.hw.spec.layouts import LOG_SHIFT_BITS
from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.hw.spec.requantize import MODES, RequantizeArithmetic
from qmac.sim.datapaths import reference_error
from qmac.sim.gemm import operand_beats, plan_gemm
from qmac.sim.requantize import tflite_shift_field
from qmac.tb.core_tb import CoreTB, compare_transactions
from qmac.tb.runner import config_from_env

CONFIG = config_from_env()
#: (valid-gap probability, ready probability): no stalls, and random stalls on every stream.
STALLS = [(0.0, 1.0), (0.3, 0.6)]


def _codes(rng, mode, shape, activations=False):
    lo, hi = code_range(mode, activations)
    return rng.integers(lo, hi + 1, shape)


def _check_product(tb, plan, rows, W, A, w_scales=None, a_scales=None):
    """The assembled result against the datapath's independent product (:func:`reference_error`):
    ``W @ A`` with the scale factors, exactly, for INT; for LNS the float64 product of the decoded codes
    (scales applied), within the combine's error bound."""
    err = reference_error(plan, tb.result_matrix(plan, rows), W, A, w_scales, a_scales)
    assert err is None or err <= 0, f"assembled Y off the reference product by {err} beyond its tolerance"


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
            W, A = _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m), activations=True)
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready)
            compare_transactions(rows, expected)
            _check_product(tb, plan, rows, W, A)
            await tb.wait_idle()
            st = tb.status()
            assert st["macs"] == plan.beats * cfg.macs_per_cycle(mode), st
            assert st["cycles"] >= plan.beats and st["error"] == 0 and st["overflow"] == 0, st


def _scale_fields(rng, plan, shape):
    """Random scale fields with the extremes (0, 1 and the largest field; for log scales the most
    negative, 0 and the largest) always present."""
    fmt = CONFIG.scale_format
    lo, hi = fmt.field_range
    f = rng.integers(lo, hi + 1, shape)
    f.flat[:3] = ([lo, 0, hi] if fmt.kind == "log" else [0, 1, hi])[:f.size]
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
            W, A = _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m), activations=True)
            plan = plan_gemm(cfg, mode, W.shape, A.shape)
            groups = -(-k // plan.group_elements)
            sw, sa = _scale_fields(rng, plan, (n, groups)), _scale_fields(rng, plan, (groups, m))
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready, sw, sa)
            compare_transactions(rows, expected)
            _check_product(tb, plan, rows, W, A, sw, sa)
            await tb.wait_idle()


def _requant_params(rng, n):
    """Per-channel parameters mixing small multipliers with short shifts (many exact ties), TFLite-style
    multipliers in [2**30, 2**31) with right shifts, left shifts, large zero points, both output formats
    and all four modes: saturation at both ends happens often."""
    mode = rng.integers(0, len(MODES), n)
    small = rng.integers(-5, 6, n)
    big = rng.integers(1 << 30, 1 << 31, n)
    multiplier = np.where(rng.random(n) < 0.5, small, big)
    shift = np.where(multiplier == small, rng.integers(0, 5, n), rng.integers(36, 46, n))
    tfl_shift = np.array([tflite_shift_field(int(s)) for s in rng.integers(-31, 4, n)])
    return {"multiplier": multiplier, "shift": np.where(mode != 0, tfl_shift, shift),
            "zero_point": rng.integers(-128, 128, n), "int4": rng.integers(0, 2, n), "mode": mode}


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
            W, A = _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m), activations=True)
            params = _requant_params(rng, n)
            await tb.clear()
            plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready, requant=params)
            compare_transactions(rows, expected)
            clipped |= {r.clipped for r in rows}
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
            W, A = _sparse_weights(rng, mode, n, k), _codes(rng, mode, (k, m), activations=True)
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


@cocotb.test(skip=not isinstance(CONFIG.datapath, LogDatapath))
@cocotb.parametrize(stalls=STALLS)
async def lns_extreme_codes(dut, stalls):
    """LNS: zero codes (both signs), the largest and the smallest magnitudes, every product in one
    fraction bucket, every bucket in use, and signs that alternate so the products cancel exactly."""
    gap, ready = stalls
    tb = await _start(dut)
    rng = np.random.default_rng(23 + int(gap * 10))
    cfg = CONFIG
    fmt, mode = cfg.log_format, cfg.modes[0]
    n, k, m = cfg.rows + 1, 2 * cfg.elements_per_beat(mode) + 2, cfg.cols + 1
    top, neg, one = (1 << fmt.field_bits) - 1, 1 << fmt.field_bits, fmt.bias  # largest, sign bit, 1.0

    def exps(e):  # codes of random sign with exponents e
        return (rng.integers(0, 2, np.shape(e)) * neg) | (np.asarray(e) + fmt.bias)

    steps = np.arange(fmt.min_exponent, fmt.max_exponent + 1)
    same = steps[steps % fmt.buckets == 0]
    cases = {
        "zeros": (rng.choice([0, neg], (n, k)), _codes(rng, mode, (k, m), activations=True)),
        "largest": (np.full((n, k), top), rng.choice([top, top | neg], (k, m))),
        "smallest": (np.full((n, k), 1), rng.choice([1, 1 | neg], (k, m))),
        "one bucket": (np.full((n, k), one), exps(rng.choice(same, (k, m)))),
        "every bucket": (np.full((n, k), one), exps(np.resize(steps, (m, k)).T)),
        "cancel": (np.full((n, k), top), np.resize([top, top | neg], (m, k)).T),
    }
    for name, (W, A) in cases.items():
        await tb.clear()
        plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready)
        compare_transactions(rows, expected)
        _check_product(tb, plan, rows, W, A)
        if name in ("zeros", "cancel"):
            assert not tb.result_matrix(plan, rows).any(), name
        await tb.wait_idle()
        assert tb.status()["error"] == 0 and tb.status()["overflow"] == 0


@cocotb.test(skip=not CONFIG.log_output)
@cocotb.parametrize(stalls=STALLS)
async def lns_log_outputs(dut, stalls):
    """LNS with log_output: each result's log code for output shifts across the whole shift range (the
    codes saturate at both ends and round in between), with and without stalls."""
    gap, ready = stalls
    tb = await _start(dut)
    rng = np.random.default_rng(29 + int(gap * 10))
    cfg = CONFIG
    mode = cfg.modes[0]
    E = cfg.elements_per_beat(mode)
    hi = (1 << (LOG_SHIFT_BITS - 1)) - 1
    top = (1 << cfg.log_format.field_bits) - 1
    seen = set()
    for log_shift in (-hi - 1, -37, 0, 11, 64, hi):
        W, A = _codes(rng, mode, (cfg.rows + 1, 2 * E + 1)), _codes(rng, mode, (2 * E + 1, cfg.cols))
        plan, rows, expected = await tb.run_gemm(mode, W, A, gap, ready, log_shift=log_shift)
        compare_transactions(rows, expected)
        seen |= {code for r in rows for code in r.log}
    fields = {code & top for code in seen}
    assert top in fields and len(fields) > 4, f"the shifts should reach saturation and rounding: {sorted(seen)}"


@cocotb.test(skip=not isinstance(CONFIG.datapath, LogDatapath))
async def lns_largest_result(dut):
    """LNS: the largest codes (and scales) over the longest K the core allows give the largest result
    the format is sized for, with either sign: no bit is missing at the top."""
    tb = await _start(dut)
    cfg = CONFIG
    fmt, spec, mode = cfg.log_format, cfg.log_sum, cfg.modes[0]
    k = cfg.max_k_beats * cfg.elements_per_beat(mode)
    top = (1 << fmt.field_bits) - 1
    # Every product at t_hi: t' = offset_max.
    largest = spec.products * spec.beats * spec.term_value(spec.offset_max)
    for sign in (0, 1):
        W, A = np.full((cfg.rows, k), top), np.full((k, cfg.cols), top | (sign << fmt.field_bits))
        plan = plan_gemm(cfg, mode, W.shape, A.shape)
        scales = (None, None)
        if cfg.scale_bits:
            hi = cfg.scale_format.field_range[1]
            scales = (np.full((cfg.rows, plan.k_groups), hi), np.full((plan.k_groups, cfg.cols), hi))
        plan, rows, expected = await tb.run_gemm(mode, W, A, 0.0, 1.0, *scales)
        compare_transactions(rows, expected)
        assert all(v == (-largest if sign else largest) for r in rows for v in r.data)
        assert cfg.acc_format.contains(-largest, largest) and not cfg.acc_format.contains(0, 2 * largest)


@cocotb.test(skip=not isinstance(CONFIG.datapath, IntDatapath))
async def extreme_values(dut):
    """All operands at the most negative code over the longest K the core allows: the largest possible
    sum. Exact accumulators hold it; saturating ones clip to their maximum and flag it."""
    tb = await _start(dut)
    cfg = CONFIG
    for mode in cfg.modes:
        f, fa = ELEMENT_FORMATS[mode].code, ELEMENT_FORMATS[mode].activation_code
        k = cfg.max_k_beats * cfg.elements_per_beat(mode)
        for wv, av in [(f.min, fa.min), (f.min, fa.max)]:
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
            assert all(v == true_sum for r in rows for v in r.data) == fits
            assert tb.status()["overflow"] == (0 if fits else 1)
            assert all(r.saturated == (0 if fits else 1) for r in rows)


@cocotb.test()
async def back_to_back_tiles(dut):
    """Tiles streamed without pause: one-beat tiles (each waits until a shadow bank is free for it),
    tiles of :attr:`~qmac.hw.spec.config.CoreConfig.streaming_tile_beats` beats, the shortest that never
    wait (draining fully overlaps computing), and tiles one beat shorter, which must wait."""
    tb = await _start(dut)
    rng = np.random.default_rng(7)
    cfg = CONFIG
    mode = cfg.modes[0]
    E = cfg.elements_per_beat(mode)
    no_wait = cfg.streaming_tile_beats
    for k_beats in (1, no_wait - 1, no_wait):
        n, m = 3 * cfg.rows, 2 * cfg.cols
        W, A = _codes(rng, mode, (n, k_beats * E)), _codes(rng, mode, (k_beats * E, m), activations=True)
        await tb.clear()
        plan, rows, expected = await tb.run_gemm(mode, W, A)
        compare_transactions(rows, expected)
        await tb.wait_idle()
        cycles = tb.status()["cycles"]
        # Every beat accepted back to back: only the pipeline fill and the last drain add cycles.
        latency = cfg.dot_latency + 1 + cfg.datapath.post_array_latency + (
            len(RequantizeArithmetic(cfg.acc_format.bits).stages) if cfg.output_stage else 0)
        back_to_back = cycles <= plan.beats + latency + cfg.rows + 1
        assert back_to_back == (k_beats == no_wait), (k_beats, cycles, plan.beats)


@cocotb.test(skip=len(CONFIG.modes) < 2)
@cocotb.parametrize(stalls=STALLS)
async def mode_switching_tiles(dut, stalls):
    """GEMMs in every order of the built modes (each after each, and after itself) streamed back to back:
    each tile runs in the mode set at its first beat, one-beat and multi-beat tiles, one and several tiles
    per GEMM; the MAC counter adds each beat in its own mode."""
    gap, ready = stalls
    tb = await _start(dut)
    rng = np.random.default_rng(41 + int(gap * 10))
    cfg = CONFIG
    order = [m for a in cfg.modes for b in cfg.modes for m in (a, b)]
    jobs = []
    for i, mode in enumerate(order):
        E = cfg.elements_per_beat(mode)
        n, k, m = [(cfg.rows, E, cfg.cols), (cfg.rows + 1, 3 * E - 1, cfg.cols), (cfg.rows, 5 * E, 2 * cfg.cols)][i % 3]
        jobs.append((mode, _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m), activations=True)))
    await tb.clear()
    plans, rows, expected = await tb.run_gemms(jobs, gap, ready)
    compare_transactions(rows, expected)
    await tb.wait_idle()
    st = tb.status()
    assert st["macs"] == sum(p.beats * cfg.macs_per_cycle(p.mode) for p in plans), st
    assert st["error"] == 0, st


@cocotb.test()
async def reset_mid_tile(dut):
    """Reset while a tile is half streamed; the next GEMM is exact and the counters restart."""
    tb = await _start(dut)
    rng = np.random.default_rng(3)
    cfg = CONFIG
    mode = cfg.modes[-1]
    E = cfg.elements_per_beat(mode)
    W, A = _codes(rng, mode, (cfg.rows, 4 * E)), _codes(rng, mode, (4 * E, cfg.cols), activations=True)
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
    W, A = _codes(rng, mode, (cfg.rows, E)), _codes(rng, mode, (E, cfg.cols), activations=True)
    plan, rows, expected = await tb.run_gemm(mode, W, A, mode_code=missing)
    compare_transactions(rows, expected)
    assert tb.status()["error"] == 1
    await tb.clear()
    assert tb.status()["error"] == 0
    if not cfg.sparse:  # a sparse tile on a dense build: flagged, and run dense
        plan, rows, expected = await tb.run_gemm(mode, W, A, sparse_code=1)
        compare_transactions(rows, expected)
        assert tb.status()["error"] == 1
