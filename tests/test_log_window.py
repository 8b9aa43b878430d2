"""Windowed accumulation of the LNS datapath (``window_bits``): LogSum's window arithmetic on both backends,
the windowed LogDotProduct against the golden model, and the error bound against float64."""

import re

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from qmac.hw.log_datapath.log_dot_product import LogDotProduct
from qmac.hw.ops import AmaranthOps
from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import IntFormat
from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat
from qmac.hw.spec.log_sum import LogSum
from qmac.sim import log_dot_product as model
from qmac.sim.log_format import decode
from qmac.sim.ops import NumpyOps
from test_log_dot_product import _beats, _code, _gemm_operands, _lane_scales
from test_log_dot_product import _simulate as _simulate_unit

LNS8_F4 = LogFormat(8, 4)


# -- parameters and widths ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"window_bits": 8}, "window_bits must be None, or with bucket_fraction_bits = 0 an integer from "
                         "mantissa_bits + 1 = 1 to min(32, mantissa_bits + 1 + p_bits) = 13, not 8"),
    ({"bucket_fraction_bits": 1, "mantissa_bits": 4, "window_bits": 8},
     "window_bits must be None, or with bucket_fraction_bits = 0 an integer from mantissa_bits + 1 = 5 to "
     "min(32, mantissa_bits + 1 + p_bits) = 17, not 8"),
    ({"bucket_fraction_bits": 0, "mantissa_bits": 4, "window_bits": 4},
     "window_bits must be None, or with bucket_fraction_bits = 0 an integer from mantissa_bits + 1 = 5 to "
     "min(32, mantissa_bits + 1 + p_bits) = 17, not 4"),
    ({"bucket_fraction_bits": 0, "mantissa_bits": 4, "window_bits": 18},     # g = 13 > P = 12
     "window_bits must be None, or with bucket_fraction_bits = 0 an integer from mantissa_bits + 1 = 5 to "
     "min(32, mantissa_bits + 1 + p_bits) = 17, not 18"),
    ({"bucket_fraction_bits": 0, "mantissa_bits": 4, "p_bits": 40, "window_bits": 33},
     "window_bits must be None, or with bucket_fraction_bits = 0 an integer from mantissa_bits + 1 = 5 to "
     "min(32, mantissa_bits + 1 + p_bits) = 32, not 33"),
    ({"bucket_fraction_bits": 0, "mantissa_bits": 4, "window_bits": 8.0},
     "window_bits must be None, or with bucket_fraction_bits = 0 an integer from mantissa_bits + 1 = 5 to "
     "min(32, mantissa_bits + 1 + p_bits) = 17, not 8.0"),
])
def test_window_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LogSum(LNS8, 4, **kwargs)
    if "p_bits" not in kwargs:        # the unit's sums have no constants: P is the LogSum default
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            LogDotProduct(4, LNS8, **{"mantissa_bits": 0, **kwargs})


def test_widths_of_a_windowed_sum():
    # LNS8 F = 4, sw + sa in [-64, 62], q_floor = -4, V = 4, 64 beats, Pm = 8, W = 12, P = 12, worked by hand.
    spec = LogSum(LNS8_F4, 4, 64, -64, 62, -4, bucket_fraction_bits=0, mantissa_bits=8, window_bits=12)
    # t <= 2 * 63 + 62 = 188, t' <= 188 + 64 = 252, q' <= 15: 4-bit exponents.
    assert (spec.q_top, spec.anchor_bits, spec.guard_bits) == (15, 4, 3)
    # The largest mantissa is round(2**(8 + 15/16)) = 490; a term at the anchor is 490 * 2**3 = 3920.
    assert max(spec.mantissas) == 490
    assert spec.sum_format == IntFormat(15)          # 4 * 3920 = 15680 < 2**14
    assert spec.acc_format == IntFormat(21)          # 64 * 15680 = 1003520 < 2**20
    assert spec.result_format == IntFormat(45)       # 1003520 * 2**15 * 2**(12 - 3) < 2**44
    assert spec.result_exponent == -4 - 12 - 8       # the b = 0 unit's
    # The exact b = 0 unit of the same geometry needs 33-bit accumulators: 256 * 490 * 2**15 < 2**32.
    exact = LogSum(LNS8_F4, 4, 64, -64, 62, -4, bucket_fraction_bits=0, mantissa_bits=8)
    assert (exact.acc_format.bits, exact.result_exponent) == (33, spec.result_exponent)
    # Without a floor the accumulator keeps its width; only the exponent and the result grow.
    free = LogSum(LNS8_F4, 4, 64, -64, 62, bucket_fraction_bits=0, mantissa_bits=8, window_bits=12)
    assert (free.acc_format, free.anchor_bits) == (IntFormat(21), 5)


# -- the arithmetic, against a naive model and on both backends ----------------------------------------

def _naive(spec, beats):
    """Python-integer model of a windowed sum of ``[(sign, kept, q', M)]`` per beat: the anchor is the largest
    kept q', each term ``M * 2**g // 2**(anchor - q')`` signed, the accumulator shifted with Python's ``>>``
    (floor) to the larger exponent; returns the result word ``A * 2**(E - g + P)``."""
    g = spec.window_bits - spec.mantissa_bits - 1
    acc, exponent = 0, 0
    for lanes in beats:
        anchor = max([q for s, kept, q, m in lanes if kept], default=0)
        total = sum((-1) ** s * ((m << g) // (1 << (anchor - q))) for s, kept, q, m in lanes if kept)
        if anchor > exponent:
            acc, exponent = (acc >> (anchor - exponent)) + total, anchor
        else:
            acc += total >> (exponent - anchor)
    return acc * 2 ** (exponent - g + spec.p_bits)


@pytest.mark.parametrize("spec", [
    LogSum(LNS8_F4, 4, 32, -64, 62, -4, bucket_fraction_bits=0, mantissa_bits=8, window_bits=12),
    LogSum(LNS8, 8, 16, bucket_fraction_bits=0, mantissa_bits=6, window_bits=7),              # g = 0
    LogSum(LNS4, 16, 8, -8, 6, p_bits=4, bucket_fraction_bits=0, mantissa_bits=3, window_bits=8),    # g = P
], ids=["f4-w12", "lns8-w7", "lns4-g-equals-p"])
def test_window_sums_match_a_naive_model(spec):
    fmt, rng = spec.fmt, np.random.default_rng(spec.window_bits)
    k = spec.products * spec.beats
    w, a = rng.integers(0, 1 << fmt.bits, (30, k)), rng.integers(0, 1 << fmt.bits, (30, k))
    s = rng.integers(spec.scale_lo, spec.scale_hi + 1, (30, k))
    # Rows whose exponents climb, fall and stay flat beat by beat, so every branch of the update runs.
    w[1] = _code(fmt, np.linspace(fmt.min_exponent, fmt.max_exponent, k).astype(int), 0)
    w[2] = w[1][::-1]
    got = spec.window_place(*model.window_sums(spec, w, a, s), NumpyOps)
    sign, kept, _, q, r = model.products(spec, w, a, s)
    mantissa = np.asarray(spec.mantissas)[r]           # b = 0: the whole fraction picks M_l
    for row in range(30):
        beats = [[(int(sign[row, i]), bool(kept[row, i]), int(q[row, i]), int(mantissa[row, i]))
                  for i in range(j, j + spec.products)] for j in range(0, k, spec.products)]
        assert int(got[row]) == _naive(spec, beats)


def _combinational(inputs, outputs):
    """Runs a combinational Amaranth function of ``inputs`` (name -> shape) on each case (name -> int)."""
    def run(cases):
        signals = {name: Signal(shape, name=name) for name, shape in inputs.items()}
        results = [Signal(shape, name=f"out{i}") for i, (shape, _) in enumerate(outputs)]
        m = Module()
        for out, (_, fn) in zip(results, outputs):
            m.d.comb += out.eq(fn(**signals))
        got = []

        async def testbench(ctx):
            for case in cases:
                for name, value in case.items():
                    ctx.set(signals[name], value)
                got.append(tuple(ctx.get(out) for out in results))

        sim = Simulator(m)
        sim.add_testbench(testbench)
        sim.run()
        return got
    return run


@pytest.mark.parametrize("spec", [
    LogSum(LNS8_F4, 4, 32, -64, 62, -4, bucket_fraction_bits=0, mantissa_bits=8, window_bits=12),
    LogSum(LNS4, 16, 8, -8, 6, p_bits=4, bucket_fraction_bits=0, mantissa_bits=3, window_bits=8),
], ids=["f4-w12", "lns4-g-equals-p"])
def test_amaranth_and_numpy_backends_agree(spec):
    rng = np.random.default_rng(1)
    e_bits, top = spec.anchor_bits, spec.q_top
    acc_f, beat_f = spec.acc_format, spec.sum_format
    run = _combinational(
        {"m": spec.mantissa_bits + 1, "q": e_bits, "e": e_bits, "acc": signed(acc_f.bits), "exponent": e_bits,
         "beat": signed(beat_f.bits)},
        [(spec.window_bits, lambda m, q, e, **_: spec.window_term(m, q, e, AmaranthOps)),
         (signed(acc_f.bits + 1), lambda acc, exponent, beat, e, **_:
          spec.window_accumulate(acc, exponent, beat, e, AmaranthOps)[0]),
         (e_bits, lambda acc, exponent, beat, e, **_: spec.window_accumulate(acc, exponent, beat, e, AmaranthOps)[1]),
         (signed(spec.result_format.bits), lambda acc, exponent, **_: spec.window_place(acc, exponent, AmaranthOps))])
    cases = []
    for _ in range(300):
        e = int(rng.integers(0, top + 1))
        cases.append({"m": int(rng.choice(spec.mantissas)), "q": int(rng.integers(0, e + 1)), "e": e,
                      "acc": int(rng.integers(acc_f.min // 2, acc_f.max // 2)),
                      "exponent": int(rng.integers(0, top + 1)),
                      "beat": int(rng.integers(beat_f.min, beat_f.max + 1))})
    cases += [{"m": max(spec.mantissas), "q": top, "e": top, "acc": acc_f.min // 2, "exponent": top,
               "beat": beat_f.min}, {"m": spec.mantissas[0], "q": 0, "e": top, "acc": -1, "exponent": 0,
                                     "beat": beat_f.max}]
    got = run(cases)
    for case, (term, acc, exponent, placed) in zip(cases, got):
        c = {k: np.int64(v) for k, v in case.items()}
        assert term == spec.window_term(c["m"], c["q"], c["e"], NumpyOps)
        want_acc, want_exp = spec.window_accumulate(c["acc"], c["exponent"], c["beat"], c["e"], NumpyOps)
        assert (acc, exponent) == (want_acc, want_exp)
        assert placed == spec.window_place(c["acc"], c["exponent"], NumpyOps)


# -- the windowed unit in Amaranth's simulator -----------------------------------------------------------

def _simulate(unit, beats):
    """``[(sums[0], anchor)]`` of every beat (:func:`test_log_dot_product._simulate`)."""
    return _simulate_unit(unit, beats, lambda ctx, u: (ctx.get(u.sums)[0], ctx.get(u.anchor)))


_UNITS = [
    ("f4-v8-s6-groups-floor-w12", lambda: LogDotProduct(8, LNS8_F4, scale_bits=6, scale_groups=2, q_floor=-4,
                                                       bucket_fraction_bits=0, mantissa_bits=8, window_bits=12)),
    ("lns8-v16-m6-w7", lambda: LogDotProduct(16, LNS8, bucket_fraction_bits=0, mantissa_bits=6, window_bits=7)),
    ("lns4-v4-s3-m2-w9", lambda: LogDotProduct(4, LNS4, scale_bits=3, bucket_fraction_bits=0, mantissa_bits=2,
                                               window_bits=9)),
    # M_7 = round(2 * 2**(7/8)) = 4 = 2**(Pm + 1): the term at the anchor needs W + 1 bits.
    ("lns8-v4-m1-w3-top-mantissa", lambda: LogDotProduct(4, LNS8, bucket_fraction_bits=0, mantissa_bits=1,
                                                         window_bits=3)),
]


@pytest.mark.parametrize("make", [u[1] for u in _UNITS], ids=[u[0] for u in _UNITS])
def test_windowed_unit_matches_model_bit_exactly(make):
    unit = make()
    spec, rng, sign = unit.log_sum, np.random.default_rng(13), 1 << unit.format.field_bits
    assert unit.signature.members["anchor"].shape == spec.anchor_bits
    # Every lane at the largest t' whose fraction has the largest mantissa: the largest window terms.
    fmt, l_top = unit.format, int(np.argmax(spec.mantissas))
    offset = spec.offset_max - ((spec.offset_max - l_top) % fmt.buckets)
    e_a = offset + (spec.q_min << fmt.frac_bits) - fmt.max_exponent - spec.scale_hi
    w, a = np.full(unit.lanes, _code(fmt, fmt.max_exponent, 0)), np.full(unit.lanes, _code(fmt, e_a, 0))
    s = np.full(unit.scale_groups, spec.scale_hi)
    # One large product among tiny ones: every other term is truncated to 0 in the window.
    tiny = np.full(unit.lanes, _code(unit.format, unit.format.min_exponent, 0))
    lone = (np.concatenate([w[:1], tiny[1:]]), np.concatenate([a[:1], tiny[1:]]), s)
    beats = _beats(unit, rng) + [(w, a, s), (w | sign, a, s), lone]
    ws, as_ = np.array([b[0] for b in beats]), np.array([b[1] for b in beats])
    total, anchor = model.window_beat(spec, ws, as_, _lane_scales(unit, beats))
    got = _simulate(unit, beats)
    assert got == list(zip(total.tolist(), anchor.tolist()))
    # The largest-term beats reach both ends of the sum format; their anchor is the top exponent.
    top = unit.lanes * max(spec.mantissas) << spec.guard_bits
    anchor = offset >> fmt.frac_bits
    assert got[-3] == (top, anchor) and got[-2] == (-top, anchor)
    assert spec.sum_format == IntFormat.for_range(-top, top)
    assert got[-4][0] == 0                       # the beat whose signs cancel
    # The lone large product: the tiny ones, W or more octaves below it (or under q_floor), add nothing.
    tiny_offset = 2 * fmt.min_exponent + spec.scale_hi - (spec.q_min << fmt.frac_bits)
    if tiny_offset < 0 or anchor - (tiny_offset >> fmt.frac_bits) >= spec.window_bits:
        assert got[-1] == (max(spec.mantissas) << spec.guard_bits, anchor)
    else:
        assert got[-1][0] > max(spec.mantissas) << spec.guard_bits


# -- the GEMM model and the error bound -------------------------------------------------------------------

@pytest.mark.parametrize("fmt, shape, exp_range, q_floor, pm, window", [
    (LNS8_F4, (6, 96, 7), (-32, 31), -4, 8, 12),
    (LNS8, (5, 37, 4), None, None, 6, 10),                 # K not a multiple of the beat
    (LNS4, (4, 64, 9), (-4, 3), None, 3, 8),
])
def test_gemm_window_equals_the_per_product_model(fmt, shape, exp_range, q_floor, pm, window):
    n, k, m = shape
    rng = np.random.default_rng(k)
    W, A, w_exp, a_exp = _gemm_operands(fmt, n, k, m, exp_range, rng)
    lo, hi = (0, 0) if exp_range is None else (2 * exp_range[0], 2 * exp_range[1])
    spec = LogSum(fmt, 8, 16, lo, hi, q_floor=q_floor, bucket_fraction_bits=0, mantissa_bits=pm, window_bits=window)
    scale = None if exp_range is None else w_exp[:, None, :] + a_exp.T[None]
    want = spec.window_place(*model.window_sums(spec, W[:, None, :], A.T[None], scale), NumpyOps)
    assert model.gemm_window(spec, W, A, w_exp, a_exp).tolist() == want.tolist()
    assert model.gemm_window(spec, W, A, w_exp, a_exp, block=1).tolist() == want.tolist()     # a row at a time


def _magnitudes(fmt, w, a, scale=None):
    """Sum of the product magnitudes over the last axis (float64)."""
    p = np.abs(decode(fmt, w) * decode(fmt, a))
    return (p if scale is None else p * np.exp2(np.asarray(scale) / fmt.buckets)).sum(axis=-1)


@pytest.mark.parametrize("fmt, pm, window, p_bits, scale, q_floor, lanes", [
    (LNS8_F4, 8, 12, 12, 6, -4, 16), (LNS8_F4, 8, 12, 12, 6, None, 16), (LNS8_F4, 8, 16, 12, 6, -6, 4),
    (LNS8, 6, 9, 12, 0, None, 16), (LNS8, 4, 11, 6, 4, None, 8),      # g = P
    (LNS4, 3, 8, 10, 3, None, 16),
])
def test_windowed_error_stays_within_the_bound(fmt, pm, window, p_bits, scale, q_floor, lanes):
    s_lo, s_hi = (-(1 << (scale - 1)), (1 << (scale - 1)) - 1) if scale else (0, 0)
    k = 512
    spec = LogSum(fmt, lanes, k // lanes, s_lo, s_hi, q_floor=q_floor, p_bits=p_bits, bucket_fraction_bits=0,
                  mantissa_bits=pm, window_bits=window)
    rng = np.random.default_rng(window + pm)
    w, a = rng.integers(0, 1 << fmt.bits, (20, k)), rng.integers(0, 1 << fmt.bits, (20, k))
    w = np.where(np.arange(20)[:, None] % 2 & (rng.random((20, k)) < 0.875), 0, w)
    s = rng.integers(s_lo, s_hi + 1, (20, k)) if scale else None
    y = model.value(spec, spec.window_place(*model.window_sums(spec, w, a, s), NumpyOps))
    err = np.abs(y - model.reference(fmt, w, a, s))
    bound = model.error_bound(spec, w, a, s)
    magnitudes = _magnitudes(fmt, w, a, s)
    assert (err <= bound + 1e-12 * magnitudes).all()
    # The bound is not vacuous: 2**-(Pm+1) of each product (mantissas), and per beat at most lanes + 1 units
    # of the window at the largest product, 2**-(W-1) of it...
    largest = np.abs(decode(fmt, w) * decode(fmt, a) * (1 if s is None else np.exp2(s / fmt.buckets))).max(axis=-1)
    assert (bound <= 2.0 ** -(pm + 1) * magnitudes + spec.beats * (lanes + 1) * 2.0 ** -(window - 1) * largest
            + (0 if q_floor is None else k * 2.0 ** q_floor)).all()
    # ...and reached in part by the truncations themselves.
    assert (err / bound).max() > 0.05


def test_same_sign_truncations_reach_half_the_bound():
    # Every product positive, one large per beat and the rest far below it: each small term loses its
    # fraction (uniform), so the error approaches half the truncation bound.
    spec = LogSum(LNS8_F4, 16, 32, bucket_fraction_bits=0, mantissa_bits=8, window_bits=10)
    rng = np.random.default_rng(2)
    w = _code(LNS8_F4, rng.integers(-40, -8, (50, 512)), 0)
    w[:, ::16] = _code(LNS8_F4, 63, 0)
    a = np.full((50, 512), _code(LNS8_F4, 0, 0))
    y = model.value(spec, spec.window_place(*model.window_sums(spec, w, a), NumpyOps))
    err = model.reference(LNS8_F4, w, a) - y                 # truncation toward zero of positive terms: err > 0
    bound = model.error_bound(spec, w, a)
    assert (err > 0).all() and (err <= bound).all()
    assert np.median(err / bound) > 0.3
