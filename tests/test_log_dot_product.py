"""LogSum widths, the per-beat LogDotProduct against the golden model, the combine's constant multipliers and
the error bound of the whole LNS datapath (docs/lns.md)."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import IntFormat
from qmac.hw.log_datapath.log_combine import times_constant
from qmac.hw.log_datapath.log_dot_product import ORGANISATIONS, LogDotProduct
from qmac.hw.ops import adder_tree
from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat
from qmac.hw.spec.log_sum import LogSum
from qmac.sim import log_dot_product as model
from qmac.sim.log_format import decode
from qmac.sim.ops import NumpyOps

#: LNS8 with F = 4 (3 integer bits): the ``frac_bits = 4`` variant of the lns8 mode.
LNS8_F4 = LogFormat(8, 4)


# -- parameters and widths ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, message", [
    ((6, LNS8), {}, "log dot-product lanes must be one of 4, 8, 16, 32, 64, 128, not 6"),
    ((4, "lns8"), {}, "log dot-product format must be a LogFormat, not 'lns8'"),
    ((4, LNS8, "wallace"), {}, f"organisation must be one of {', '.join(ORGANISATIONS)}, not 'wallace'"),
    ((4, LNS8), {"scale_bits": 10}, "scale_bits must be an integer from 0 to 9, not 10"),
    ((4, LNS8), {"scale_bits": True}, "scale_bits must be an integer from 0 to 9, not True"),
    ((4, LNS8), {"scale_bits": 2, "scale_groups": 3}, "scale_groups must be a power of two dividing lanes = 4, not 3"),
    ((4, LNS8), {"scale_bits": 2, "scale_groups": 8}, "scale_groups must be a power of two dividing lanes = 4, not 8"),
    ((4, LNS8), {"q_floor": -16}, "q_floor must be None or an integer from -15 to 15, not -16"),
    ((4, LNS8), {"q_floor": 16}, "q_floor must be None or an integer from -15 to 15, not 16"),
    ((4, LogFormat(12, 0)), {}, "the result would need 4108 bits, more than 256; use fewer scale bits or p_bits, "
                                "or a q_floor"),
])
def test_parameters_are_checked(args, kwargs, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        LogDotProduct(*args, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "lns4", "products": 4}, "log format must be a LogFormat, not 'lns4'"),
    ({"products": 0}, "products must be a positive integer, not 0"),
    ({"products": 4, "beats": 0}, "beats must be a positive integer, not 0"),
    ({"products": 4, "scale_lo": 1, "scale_hi": 0}, r"scale range \[1, 0\] is empty"),
    ({"products": 4, "p_bits": 0}, "p_bits must be an integer from 1 to 48, not 0"),
    ({"products": 4, "q_floor": 2.0}, "q_floor must be None or an integer from -1 to 1, not 2.0"),
    ({"products": 4, "bucket_fraction_bits": 3}, "bucket_fraction_bits must be None or an integer from 0 to F = 2, "
                                                 "not 3"),
    ({"products": 4, "bucket_fraction_bits": -1}, "bucket_fraction_bits must be None or an integer from 0 to F = 2, "
                                                  "not -1"),
    ({"products": 4, "mantissa_bits": 3},
     r"mantissa_bits must be 0 when every fraction bit picks a bucket \(b = F = 2\), not 3"),
    ({"products": 4, "bucket_fraction_bits": 2, "mantissa_bits": 1},
     r"mantissa_bits must be 0 when every fraction bit picks a bucket \(b = F = 2\), not 1"),
    ({"products": 4, "bucket_fraction_bits": 1}, "mantissa_bits must be an integer from 1 to 16 with "
                                                 "bucket_fraction_bits = 1 < F = 2, not 0"),
    ({"products": 4, "bucket_fraction_bits": 0, "mantissa_bits": 17}, "mantissa_bits must be an integer from 1 to "
                                                                       "16 with bucket_fraction_bits = 0 < F = 2, not 17"),
])
def test_log_sum_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        LogSum(**{"fmt": LNS4, **kwargs})


def test_widths_of_a_small_sum():
    # Worked by hand: LNS4 exponents -3..3 give t in [-6, 6], so q_min = floor(-6/4) = -2 and the largest
    # product is t' = 6 + 8 = 14 = 3*4 + 2: 2**3 in bucket 2. C_2 = round(256 * sqrt(2)) = 362.
    spec = LogSum(LNS4, 4, 2, p_bits=8)
    assert (spec.q_min, spec.offset_max, spec.q_top, spec.result_exponent) == (-2, 14, 3, -10)
    assert spec.constants == (256, 304, 362, 431)
    # A beat's bucket 0..2 reaches 4 * 2**3 = 32 (7 signed bits), bucket 3 (t' <= 11) only 4 * 2**2 = 16.
    assert [spec.bucket_top(r, 4) for r in range(4)] == [32, 32, 32, 16]
    assert (spec.sum_format, spec.acc_format) == (IntFormat(7), IntFormat(8))
    # 4 lanes * 2 beats * 362 * 2**3 = 23168 needs 16 signed bits.
    assert spec.result_format == IntFormat(16)
    # Scales in [-2, 1]: t in [-8, 7], q_min = -2, t' up to 15 = 3*4 + 3, so bucket 3 reaches 2**3 too.
    scaled = LogSum(LNS4, 4, 1, -2, 1, p_bits=8)
    assert (scaled.q_min, scaled.offset_max, scaled.sum_format) == (-2, 15, IntFormat(7))
    assert scaled.result_format == IntFormat.for_range(-4 * 431 * 8, 4 * 431 * 8)
    # q_floor = 0 keeps t >= 0 only: t' = t <= 6 = 1*4 + 2, buckets 0..2 reach 4 * 2 (5 bits), bucket 3 4 * 1.
    floored = LogSum(LNS4, 4, q_floor=0)
    assert (floored.q_min, floored.offset_max, floored.q_top, floored.sum_format) == (0, 6, 1, IntFormat(5))


def test_widths_of_a_small_hybrid_sum():
    # Worked by hand: LNS4 (F = 2), b = 1, Pm = 2: bucket h = r >> 1, mantissa of l = r & 1:
    # M = (round(4), round(4 * 2**(1/4)) = round(4.757)) = (4, 5); C_h = round(256 * 2**(h/2)) = (256, 362).
    spec = LogSum(LNS4, 4, 2, p_bits=8, bucket_fraction_bits=1, mantissa_bits=2)
    assert (spec.buckets, spec.low_bits, spec.mantissas, spec.constants) == (2, 1, (4, 5), (256, 362))
    # t' <= 14 = 3*4 + 2. Bucket 0 (r = 0, 1): both reach q' = 3, largest term 5 << 3 = 40. Bucket 1:
    # r = 2 at q' = 3 gives 4 << 3 = 32, r = 3 only q' = 2 (t' <= 11): 5 << 2 = 20.
    assert [spec.bucket_top(h, 4) for h in range(2)] == [160, 128]
    assert (spec.sum_format, spec.acc_format) == (IntFormat(9), IntFormat(10))
    # Per product M * C_h << q': r = 0..3 give 4*256*8, 5*256*8, 4*362*8 = 11584 (the largest), 5*362*4.
    assert spec.result_format == IntFormat.for_range(-8 * 11584, 8 * 11584) == IntFormat(18)
    assert spec.result_exponent == -2 - 8 - 2
    # A product splits into (h, q', M) as written: t' = 7 = 1*4 + 3 is bucket 1, q' = 1, M_1 = 5.
    assert spec.term(7, NumpyOps) == (1, 1, 5)
    # b = F is the exact scheme, the same as None.
    assert LogSum(LNS4, 4, 2, bucket_fraction_bits=2).sum_format == LogSum(LNS4, 4, 2).sum_format
    assert LogSum(LNS4, 4, 2, bucket_fraction_bits=2).mantissas == (1,)


def test_hybrid_mantissas_round_to_nearest():
    for fmt, b, pm in [(LNS8, 0, 1), (LNS8, 0, 6), (LNS8, 1, 9), (LNS4, 0, 16), (LogFormat(10, 5), 2, 7)]:
        spec = LogSum(fmt, 4, bucket_fraction_bits=b, mantissa_bits=pm)
        exact = 2.0 ** (pm + np.arange(1 << (fmt.frac_bits - b)) / fmt.buckets)
        assert (np.abs(np.array(spec.mantissas) - exact) < 0.5).all() and spec.mantissas[0] == 1 << pm
        assert len(spec.constants) == 1 << b


def test_a_mantissa_can_round_up_to_the_next_power_of_two():
    # 2 * 2**(7/8) = 3.67 rounds to 4 = 2**(Pm + 1): the mantissas of LNS8, b = 0, Pm = 1 need 3 bits.
    # 4 * 2**(15/16) = 7.66 rounds to 8 for F = 4, Pm = 2; 8 * 2**(15/16) = 15.32 stays below 16 (Pm = 3).
    assert LogSum(LNS8, 4, bucket_fraction_bits=0, mantissa_bits=1).mantissas[-1] == 4
    assert LogSum(LNS8, 4, bucket_fraction_bits=0, mantissa_bits=1).mantissa_width == 3
    assert LogSum(LNS8_F4, 4, bucket_fraction_bits=0, mantissa_bits=2).mantissa_width == 4
    assert LogSum(LNS8_F4, 4, bucket_fraction_bits=0, mantissa_bits=3).mantissa_width == 4
    assert LogSum(LNS8, 4, bucket_fraction_bits=1, mantissa_bits=5).mantissa_width == 6


def test_unit_takes_its_widths_from_log_sum():
    unit = LogDotProduct(8, LNS8, scale_bits=3, scale_groups=2, q_floor=-9)
    assert unit.log_sum == LogSum(LNS8, 8, 1, -4, 3, q_floor=-9)
    assert unit.latency == 2
    assert (unit.lanes, unit.format, unit.scale_bits, unit.scale_groups) == (8, LNS8, 3, 2)
    assert unit.signature.members["sums"].shape == data.ArrayLayout(signed(unit.log_sum.sum_format.bits), 8)
    assert unit.signature.members["scale"].shape == data.ArrayLayout(signed(3), 2)
    assert "scale" not in LogDotProduct(4, LNS4).signature.members
    hybrid = LogDotProduct(8, LNS8, bucket_fraction_bits=1, mantissa_bits=5)
    assert hybrid.log_sum == LogSum(LNS8, 8, bucket_fraction_bits=1, mantissa_bits=5)
    assert hybrid.signature.members["sums"].shape == data.ArrayLayout(signed(hybrid.log_sum.sum_format.bits), 2)
    with pytest.raises(ConfigError, match="^organisation 'count' needs the exact scheme \\(bucket_fraction_bits "
                                          "None or 3\\), not bucket_fraction_bits = 2$"):
        LogDotProduct(4, LNS8, "count", bucket_fraction_bits=2, mantissa_bits=4)
    with pytest.raises(ConfigError, match="^mantissa_bits must be an integer from 1 to 16 with "
                                          "bucket_fraction_bits = 0 < F = 3, not 0$"):
        LogDotProduct(4, LNS8, bucket_fraction_bits=0)


# -- operand generators -------------------------------------------------------------------------------

def _code(fmt, e, negative):
    return (np.asarray(negative, np.int64) << fmt.field_bits) | (np.asarray(e) + fmt.bias)


def _partner_with_fraction(fmt, w, lane_scale, r, rng):
    """Codes ``a`` of random sign such that every product ``w * a`` (non-zero ``w``, scaled) has fraction ``r``."""
    a = np.empty_like(w)
    for i in range(len(w)):
        e_w = fmt.exponent(w[i]) + lane_scale[i]
        exponents = [e for e in range(fmt.min_exponent, fmt.max_exponent + 1) if (e_w + e) % fmt.buckets == r[i]]
        a[i] = _code(fmt, rng.choice(exponents), rng.integers(2))
    return a


def _beats(unit, rng, random_beats=24):
    """``[(w, a, scale)]``: random beats, then the extreme ones. ``scale`` has one exponent per group."""
    fmt, v, groups = unit.format, unit.lanes, unit.scale_groups
    s_lo, s_hi = unit.log_sum.scale_lo, unit.log_sum.scale_hi
    per_group = v // groups

    def scale(value=None):
        return np.full(groups, value) if value is not None else rng.integers(s_lo, s_hi + 1, groups)

    def nonzero():
        return _code(fmt, rng.integers(fmt.min_exponent, fmt.max_exponent + 1, v), rng.integers(0, 2, v))

    beats = [(rng.integers(0, 1 << fmt.bits, v), rng.integers(0, 1 << fmt.bits, v), scale())
             for _ in range(random_beats)]
    # Zero codes of either sign against anything.
    beats.append((rng.choice([0, 1 << fmt.field_bits], v), rng.integers(0, 1 << fmt.bits, v), scale()))
    largest, smallest = np.full(v, _code(fmt, fmt.max_exponent, 0)), np.full(v, _code(fmt, fmt.min_exponent, 0))
    beats += [(largest, largest, scale(s_hi)), (largest | (1 << fmt.field_bits), largest, scale(s_hi)),
              (smallest, smallest, scale(s_lo)), (smallest, smallest | (1 << fmt.field_bits), scale(s_lo))]
    for r in [np.full(v, rng.integers(fmt.buckets)), np.arange(v) % fmt.buckets]:   # one bucket, all buckets
        w, s = nonzero(), scale()
        beats.append((w, _partner_with_fraction(fmt, w, np.repeat(s, per_group), r, rng), s))
    # Alternating signs that cancel: lane 2j + 1 is lane 2j with w negated (one scale for both).
    w, a = nonzero()[: v // 2], nonzero()[: v // 2]
    beats.append((np.stack([w, w ^ (1 << fmt.field_bits)], axis=1).reshape(v), np.repeat(a, 2), scale(s_hi)))
    return beats


def _lane_scales(unit, beats):
    """The exponent of every lane of every beat, ``(beats, lanes)``, or None without scales."""
    if not unit.scale_bits:
        return None
    return np.repeat(np.array([s for _, _, s in beats]), unit.lanes // unit.scale_groups, axis=1)


def _bucket_sums(ctx, unit):
    sums = ctx.get(unit.sums)
    return [sums[r] for r in range(unit.log_sum.buckets)]


def _simulate(unit, beats, read=_bucket_sums):
    """Feeds one beat per cycle; returns ``read(ctx, unit)`` (default: the ``sums``) of every beat, read
    ``latency`` edges after it entered."""
    outs = []

    async def testbench(ctx):
        idle = (np.zeros(unit.lanes, np.int64), np.zeros(unit.lanes, np.int64), np.zeros(unit.scale_groups))
        for w, a, s in beats + [idle] * unit.latency:
            ctx.set(unit.w, [int(x) for x in w])
            ctx.set(unit.a, [int(x) for x in a])
            if unit.scale_bits:
                ctx.set(unit.scale, [int(x) for x in s])
            await ctx.tick()
            outs.append(read(ctx, unit))

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return outs[unit.latency - 1:][:len(beats)]


_UNITS = [
    ("lns8-v8-groups", lambda org: LogDotProduct(8, LNS8, org, scale_bits=3, scale_groups=2)),
    ("lns4-v4", lambda org: LogDotProduct(4, LNS4, org)),
    ("lns4-v16-scaled", lambda org: LogDotProduct(16, LNS4, org, scale_bits=4)),
    ("lns8-v4-floor", lambda org: LogDotProduct(4, LNS8, org, q_floor=-9)),
    # Only the top octave kept: t' = t - 6 is 0 at most, so bucket 1 never receives a product.
    ("f1-v4-top-octave", lambda org: LogDotProduct(4, LogFormat(4, 1), org, q_floor=3)),
    ("f0-v4-groups", lambda org: LogDotProduct(4, LogFormat(4, 0), org, scale_bits=2, scale_groups=4)),
]


@pytest.mark.parametrize("organisation", ORGANISATIONS)
@pytest.mark.parametrize("make", [u[1] for u in _UNITS], ids=[u[0] for u in _UNITS])
def test_unit_matches_model_bit_exactly(make, organisation):
    unit = make(organisation)
    spec, rng = unit.log_sum, np.random.default_rng(7)
    beats = _beats(unit, rng)
    w, a = np.array([b[0] for b in beats]), np.array([b[1] for b in beats])
    want = model.bucket_sums(spec, w, a, _lane_scales(unit, beats))
    got = _simulate(unit, beats)
    assert got == want.tolist()
    # The extreme beats reach both ends of the sum format: its width is exact and tight.
    top = max(spec.bucket_top(r, unit.lanes) for r in range(unit.format.buckets))
    assert (min(map(min, got)), max(map(max, got))) == (-top, top)
    assert spec.sum_format == IntFormat.for_range(-top, top)
    # The cancelling beat sums to zero in every bucket.
    assert got[-1] == [0] * unit.format.buckets


_HYBRID_UNITS = [
    ("lns8-v8-b2-m6-groups", lambda: LogDotProduct(8, LNS8, scale_bits=3, scale_groups=2, bucket_fraction_bits=2,
                                                  mantissa_bits=6)),
    ("lns8-v4-b1-m5", lambda: LogDotProduct(4, LNS8, bucket_fraction_bits=1, mantissa_bits=5)),
    ("lns8-v16-b0-m4-floor", lambda: LogDotProduct(16, LNS8, q_floor=-9, bucket_fraction_bits=0, mantissa_bits=4)),
    ("lns4-v16-b1-m3-scaled", lambda: LogDotProduct(16, LNS4, scale_bits=4, bucket_fraction_bits=1, mantissa_bits=3)),
    ("lns4-v4-b0-m1", lambda: LogDotProduct(4, LNS4, bucket_fraction_bits=0, mantissa_bits=1)),
    # M_7 = round(2 * 2**(7/8)) = 4 = 2**(Pm + 1): a (Pm + 1)-bit mantissa register would hold 0.
    ("lns8-v4-b0-m1-top-mantissa", lambda: LogDotProduct(4, LNS8, bucket_fraction_bits=0, mantissa_bits=1)),
    ("lns8f4-v8-b0-m8-groups-floor", lambda: LogDotProduct(8, LNS8_F4, scale_bits=6, scale_groups=2, q_floor=-4,
                                                          bucket_fraction_bits=0, mantissa_bits=8)),
]


def _largest_term_beat(unit):
    """One beat whose every lane is the product of the largest term: ``t'`` maximising ``M_l * 2**q'``
    (the top scale, the largest ``w``), as ``(w, a, scale)``, and that ``t'``."""
    spec, fmt, v = unit.log_sum, unit.format, unit.lanes
    offsets = [spec.offset_max - d for d in range(fmt.buckets)]
    top = max(offsets, key=lambda t: spec.mantissas[t % len(spec.mantissas)] << (t >> fmt.frac_bits))
    e_a = top + (spec.q_min << fmt.frac_bits) - fmt.max_exponent - spec.scale_hi
    return (np.full(v, _code(fmt, fmt.max_exponent, 0)), np.full(v, _code(fmt, e_a, 0)),
            np.full(unit.scale_groups, spec.scale_hi)), top


@pytest.mark.parametrize("make", [u[1] for u in _HYBRID_UNITS], ids=[u[0] for u in _HYBRID_UNITS])
def test_hybrid_unit_matches_model_bit_exactly(make):
    unit = make()
    spec, rng, sign = unit.log_sum, np.random.default_rng(11), 1 << unit.format.field_bits
    (w, a, s), offset = _largest_term_beat(unit)
    beats = _beats(unit, rng) + [(w, a, s), (w | sign, a, s)]
    ws, as_ = np.array([b[0] for b in beats]), np.array([b[1] for b in beats])
    want = model.bucket_sums(spec, ws, as_, _lane_scales(unit, beats))
    got = _simulate(unit, beats)
    assert got == want.tolist()
    # The largest-term beats reach both ends of the sum format: its width is exact and tight.
    top = max(spec.bucket_top(h, unit.lanes) for h in range(spec.buckets))
    assert (min(map(min, got)), max(map(max, got))) == (-top, top)
    assert spec.sum_format == IntFormat.for_range(-top, top)
    # Independently of the model: each lane of that beat is M_l * 2**q' with l, q' read off t'.
    m = round(2.0 ** (spec.mantissa_bits + (offset % (1 << spec.low_bits)) / unit.format.buckets))
    assert top == unit.lanes * m << (offset >> unit.format.frac_bits)
    assert got[-3] == [0] * spec.buckets      # the cancelling beat


def test_bucket_sums_reconstruct_the_exact_products():
    spec = LogSum(LNS8, 16, 64, -32, 31)
    rng = np.random.default_rng(3)
    w, a, s = rng.integers(0, 256, (64, 16)), rng.integers(0, 256, (64, 16)), rng.integers(-32, 32, (64, 1))
    per_beat = model.bucket_sums(spec, w, a, s)
    acc = per_beat.sum(axis=0)
    exact = float(np.sum(acc * np.exp2(np.arange(8) / 8))) * 2.0 ** spec.q_min
    assert exact == pytest.approx(model.reference(LNS8, w, a, s).sum(), rel=1e-12)
    # Beat by beat, from the decoded products: t = 8 * log2|p|, bucket t mod 8 gets +-2**(floor(t/8) - q_min).
    p = decode(LNS8, w) * decode(LNS8, a) * np.exp2(s / 8)
    for beat in range(8):
        want = [0] * 8
        for x in p[beat][p[beat] != 0]:
            t = round(8 * np.log2(abs(x)))
            want[t % 8] += int(np.sign(x)) << (t // 8 - spec.q_min)
        assert per_beat[beat].tolist() == want


# -- the combine's constant multipliers ---------------------------------------------------------------

def test_times_constant_digits_multiply_exactly():
    # On Python integers the shift-add terms are plain arithmetic: every constant up to 2**13.
    for c in range(1, 1 << 13):
        for x in (1, -1, 3, -77, 12345):
            assert times_constant(x, c) == x * c


class _Combine(wiring.Component):
    """``sum_r acc[r] * C_r`` as LogCombine computes it, combinationally, into ``result_bits``."""

    def __init__(self, spec, result_bits):
        self._constants = spec.constants
        super().__init__({"acc": In(data.ArrayLayout(signed(spec.acc_format.bits), len(spec.constants))),
                          "result": Out(signed(result_bits))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.result.eq(adder_tree([times_constant(self.acc[r], c) for r, c in enumerate(self._constants)]))
        return m


def _run_combine(dut, cases):
    got = []

    async def testbench(ctx):
        for acc in cases:
            ctx.set(dut.acc, [int(x) for x in acc])
            got.append(ctx.get(dut.result))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return got


@pytest.mark.parametrize("spec", [LogSum(LNS8, 4, 4), LogSum(LNS4, 8, 16, p_bits=16), LogSum(LogFormat(5, 1), 4, 2)],
                         ids=["lns8", "lns4-p16", "f1"])
def test_combine_matches_model(spec):
    fmt, rng = spec.fmt, np.random.default_rng(11)
    # Any accumulator values (wider than a result: all buckets at their extreme at once cannot happen).
    lo, hi = spec.acc_format.min, spec.acc_format.max
    cases = [rng.integers(lo, hi + 1, fmt.buckets) for _ in range(40)]
    cases += [np.full(fmt.buckets, lo), np.full(fmt.buckets, hi), -np.arange(fmt.buckets)]
    wide = _Combine(spec, spec.acc_format.bits + spec.p_bits + 2 + fmt.frac_bits)
    assert _run_combine(wide, cases) == [int(model.combine(spec, acc)) for acc in cases]
    # Accumulators of real tiles fit the result format, the largest ones exactly.
    n = spec.products * spec.beats
    largest = np.full(n, _code(fmt, fmt.max_exponent, 0))
    tiles = [(largest, largest), (largest | (1 << fmt.field_bits), largest),
             (rng.integers(0, 1 << fmt.bits, n), rng.integers(0, 1 << fmt.bits, n))]
    accs = [model.bucket_sums(spec, w, a) for w, a in tiles]
    got = _run_combine(_Combine(spec, spec.result_format.bits), accs)
    assert got == [int(model.combine(spec, acc)) for acc in accs]
    assert spec.result_format == IntFormat.for_range(got[1], got[0])


# -- the error of the whole datapath ------------------------------------------------------------------

def _magnitudes(fmt, w, a, scale=None):
    """Sum of the product magnitudes over the last axis (float64)."""
    p = np.abs(decode(fmt, w) * decode(fmt, a))
    return (p if scale is None else p * np.exp2(np.asarray(scale) / fmt.buckets)).sum(axis=-1)


@pytest.mark.parametrize("fmt, p_bits, scale, q_floor", [
    (LNS8, 8, 0, None), (LNS8, 16, 0, None), (LNS4, 6, 0, None), (LNS4, 12, 3, None),
    (LNS8, 12, 4, None),                      # scales widen q to 34 octaves
    (LNS8, 12, 0, -4), (LNS4, 10, 0, 0),      # products below 2**q_floor dropped
    (LogFormat(6, 0), 8, 0, -10),             # F = 0, 40 octaves
    (LogFormat(5, 1), 8, 2, None),
])
def test_error_stays_within_the_bound(fmt, p_bits, scale, q_floor):
    s_lo, s_hi = (-(1 << (scale - 1)), (1 << (scale - 1)) - 1) if scale else (0, 0)
    k = 1024
    spec = LogSum(fmt, k, 1, s_lo, s_hi, q_floor=q_floor, p_bits=p_bits)
    rng = np.random.default_rng(5)
    w, a = rng.integers(0, 1 << fmt.bits, (20, k)), rng.integers(0, 1 << fmt.bits, (20, k))
    # Sparse sums too: one product in eight kept, so that cancellation leaves little.
    w = np.where(np.arange(20)[:, None] % 2 & (rng.random((20, k)) < 0.875), 0, w)
    s = rng.integers(s_lo, s_hi + 1, (20, k)) if scale else None
    acc = model.bucket_sums(spec, w, a, s)
    err = np.abs(model.value(spec, model.combine(spec, acc)) - model.reference(fmt, w, a, s))
    bound = model.error_bound(spec, w, a, s)
    magnitudes = _magnitudes(fmt, w, a, s)
    assert (err <= bound + 1e-12 * magnitudes).all()
    if q_floor is None:
        assert (bound <= 2.0 ** -(p_bits + 1) * magnitudes).all()
    if fmt.frac_bits and q_floor is None:
        assert (err / bound).max() > 0.01        # the bound is not vacuous: the constants' rounding shows


@pytest.mark.parametrize("fmt, b, pm, p_bits, scale, q_floor", [
    (LNS8, 2, 6, 12, 0, None), (LNS8, 1, 5, 12, 0, None), (LNS8, 0, 4, 12, 0, None), (LNS8, 0, 8, 16, 4, None),
    (LNS8, 1, 6, 12, 0, -6), (LNS4, 1, 3, 10, 3, None), (LNS4, 0, 2, 8, 0, None), (LogFormat(9, 4), 1, 7, 14, 0, None),
    (LNS8_F4, 0, 8, 12, 6, None), (LNS8_F4, 0, 6, 12, 6, -4),
])
def test_hybrid_error_stays_within_the_bound(fmt, b, pm, p_bits, scale, q_floor):
    s_lo, s_hi = (-(1 << (scale - 1)), (1 << (scale - 1)) - 1) if scale else (0, 0)
    k = 1024
    spec = LogSum(fmt, k, 1, s_lo, s_hi, q_floor=q_floor, p_bits=p_bits, bucket_fraction_bits=b, mantissa_bits=pm)
    rng = np.random.default_rng(b + 10 * pm)
    w, a = rng.integers(0, 1 << fmt.bits, (20, k)), rng.integers(0, 1 << fmt.bits, (20, k))
    w = np.where(np.arange(20)[:, None] % 2 & (rng.random((20, k)) < 0.875), 0, w)
    s = rng.integers(s_lo, s_hi + 1, (20, k)) if scale else None
    acc = model.bucket_sums(spec, w, a, s)
    err = np.abs(model.value(spec, model.combine(spec, acc)) - model.reference(fmt, w, a, s))
    bound = model.error_bound(spec, w, a, s)
    magnitudes = _magnitudes(fmt, w, a, s)
    assert (err <= bound + 1e-12 * magnitudes).all()
    if q_floor is None:
        # Each product errs by at most 2**-(Pm+1) (mantissa) and 2**-(P+1) of its term (constant).
        rel = 2.0 ** -(pm + 1) + 2.0 ** -(p_bits + 1) * (1 + 2.0 ** -(pm + 1))
        assert (bound <= rel * magnitudes * (1 + 1e-12)).all()
    assert (err / bound).max() > 0.01


def test_dropped_products_are_counted_in_the_bound():
    # Smallest LNS8 products (t = -126) fall below q_floor = -4 and vanish; the bound covers each.
    spec = LogSum(LNS8, 8, q_floor=-4)
    smallest = np.full(8, 0x01)
    assert model.bucket_sums(spec, smallest, smallest).tolist() == [0] * 8
    assert model.error_bound(spec, smallest, smallest) == 8 * 2.0 ** -4
    assert model.reference(LNS8, smallest, smallest) == pytest.approx(8 * 2.0 ** (-126 / 8))


# -- the GEMM: exact float64 matrix products against the per-product model ---------------------------

def _gemm_operands(fmt, n, k, m, exp_range, rng):
    """Random codes (a quarter of them zero codes of either sign, a row and a column at the largest and the
    smallest magnitude) and random exponents in ``exp_range`` (or None) for both operands."""
    def codes(shape):
        c = rng.integers(0, 1 << fmt.bits, shape)
        return np.where(rng.random(shape) < 0.25, rng.choice([0, 1 << fmt.field_bits], shape), c)

    W, A = codes((n, k)), codes((k, m))
    W[0], A[:, 0] = _code(fmt, fmt.max_exponent, rng.integers(0, 2, k)), _code(fmt, fmt.max_exponent, 0)
    W[-1], A[:, -1] = _code(fmt, fmt.min_exponent, 0), _code(fmt, fmt.min_exponent, rng.integers(0, 2, k))
    if exp_range is None:
        return W, A, None, None
    lo, hi = exp_range
    w_exp, a_exp = rng.integers(lo, hi + 1, (n, k)), rng.integers(lo, hi + 1, (k, m))
    w_exp[0], a_exp[:, 0], w_exp[-1], a_exp[:, -1] = hi, hi, lo, lo
    return W, A, w_exp, a_exp


@pytest.mark.parametrize("fmt, shape, exp_range, q_floor, b, pm", [
    (LNS8, (9, 37, 5), None, None, None, 0),
    (LNS8, (16, 384, 12), (-8, 7), None, None, 0),        # the 4-bit log scales of a core, on both operands
    (LNS8, (7, 50, 6), None, -9, None, 0),                # q_floor cuts across every window
    (LNS8, (6, 40, 4), (-128, 127), -8, None, 0),         # products span 95 octaves: many windows, dropped ones
    (LNS4, (11, 64, 3), None, None, None, 0),
    (LNS4, (5, 333, 8), (-8, 7), None, None, 0),
    (LNS4, (8, 20, 8), (-2, 1), 0, None, 0),
    (LogFormat(5, 1), (4, 30, 9), None, 0, None, 0),
    (LogFormat(6, 0), (3, 100, 3), (-4, 3), None, None, 0),
    (LNS8, (1, 1, 1), None, None, None, 0),
    (LNS8, (9, 37, 5), None, None, 1, 5),
    (LNS8, (16, 384, 12), (-8, 7), None, 0, 6),
    (LNS8, (7, 50, 6), None, -9, 2, 3),
    (LNS4, (5, 333, 8), (-8, 7), None, 1, 4),
    (LNS4, (11, 64, 3), None, None, 0, 2),
    (LNS8_F4, (6, 96, 7), (-32, 31), -4, 0, 8),
    # Floors through the middle of the products (the elementwise part next to an exact float64 product).
    (LNS8, (12, 200, 10), None, -8, None, 0),              # exact F = 3, 8 buckets: three packed words
    (LNS8, (10, 120, 14), (-8, 7), -8, 1, 5),
    (LNS4, (9, 150, 7), (-8, 7), -2, None, 0),
    (LNS8_F4, (8, 384, 6), (-32, 31), -6, 0, 8),           # the bench's floored F = 4 unit, its K
    (LNS8_F4, (5, 64, 40), (-32, 31), -6, 2, 6),           # more columns than rows: the activations go elementwise
    (LNS8, (4, 30, 3), (-8, 7), 16, None, 0),              # the top of the range: few products kept
])
def test_gemm_buckets_equal_the_per_product_model(fmt, shape, exp_range, q_floor, b, pm):
    n, k, m = shape
    rng = np.random.default_rng(k)
    W, A, w_exp, a_exp = _gemm_operands(fmt, n, k, m, exp_range, rng)
    lo, hi = (0, 0) if exp_range is None else (2 * exp_range[0], 2 * exp_range[1])
    spec = LogSum(fmt, k, 1, lo, hi, q_floor=q_floor, bucket_fraction_bits=b, mantissa_bits=pm)
    scale = None if exp_range is None else w_exp[:, None, :] + a_exp.T[None, :, :]
    want = model.bucket_sums(spec, W[:, None, :], A.T[None, :, :], scale)
    # Small blocks too, so that N and M are worked through in several tiles.
    for block in (1 << 22, 3 * fmt.buckets * fmt.buckets * k):
        assert np.array_equal(model.gemm_buckets(spec, W, A, w_exp, a_exp, block), want)
    assert np.array_equal(model.combine(spec, want), model.combine(spec, model.gemm_buckets(spec, W, A, w_exp, a_exp)))


def test_gemm_buckets_at_the_floor():
    # LNS8, q_floor = -4: t = -32 (e_w + e_a = -32) is exactly 2**-4, kept as +-1 in bucket 0; t = -33
    # (2**-4.125) is dropped. Row 0 meets at-floor partners (+1 +1 -1) and dropped ones; row 1 only dropped
    # ones; the other products are large (t = 0: 2**4 in bucket 0), so that both parts of the sum are used.
    spec = LogSum(LNS8, 6, q_floor=-4)
    at, below, one = _code(LNS8, -16, 0), _code(LNS8, -17, 0), _code(LNS8, 0, 0)
    W = np.array([[at, at, _code(LNS8, -16, 1), at, one, one],
                  [below, below, below, below, below, below]])
    A = np.array([[_code(LNS8, -16, 0)], [_code(LNS8, -16, 0)], [_code(LNS8, -16, 0)], [_code(LNS8, -17, 0)],
                  [one], [_code(LNS8, 0, 1)]])
    got = model.gemm_buckets(spec, W, A)
    assert got[:, 0].tolist() == [[1 + 1 - 1 + 0 + 16 - 16] + [0] * 7, [0] * 8]
    assert np.array_equal(got, model.bucket_sums(spec, W[:, None, :], A.T[None, :, :]))


@pytest.mark.parametrize("fmt, shape, exp_range, q_floor, b, pm", [
    (LNS8, (12, 201, 10), None, -8, None, 0), (LNS4, (9, 151, 7), (-8, 7), -2, None, 0),
    (LNS8_F4, (6, 97, 5), (-32, 31), -6, 0, 8),
])
def test_gemm_buckets_floored_part_in_small_chunks(monkeypatch, fmt, shape, exp_range, q_floor, b, pm):
    # Any valid packing gives the same sums: the most fields a word holds for chunks of 2 steps of K, so
    # that carries between signed fields, many chunks per row and a padded last chunk all occur.
    def packing(buckets, largest, k):
        return max(f for f in range(1, buckets + 1) if 2 * largest < 1 << (63 // f - 1)), 2

    monkeypatch.setattr(model, "_packing", packing)
    n, k, m = shape
    W, A, w_exp, a_exp = _gemm_operands(fmt, n, k, m, exp_range, np.random.default_rng(k))
    lo, hi = (0, 0) if exp_range is None else (2 * exp_range[0], 2 * exp_range[1])
    spec = LogSum(fmt, k, 1, lo, hi, q_floor=q_floor, bucket_fraction_bits=b, mantissa_bits=pm)
    scale = None if exp_range is None else w_exp[:, None, :] + a_exp.T[None, :, :]
    want = model.bucket_sums(spec, W[:, None, :], A.T[None, :, :], scale)
    assert np.array_equal(model.gemm_buckets(spec, W, A, w_exp, a_exp, 3 * fmt.buckets * fmt.buckets * k), want)


def test_gemm_buckets_with_every_product_dropped():
    # q_floor = 15 keeps only t >= 120 (e_w + e_a from 120 to 126); every code here is below 2**(59/8).
    spec = LogSum(LNS8, 16, q_floor=15)
    rng = np.random.default_rng(3)
    W, A = _code(LNS8, rng.integers(-63, 60, (5, 16)), rng.integers(0, 2, (5, 16))), _code(
        LNS8, rng.integers(-63, 60, (16, 4)), rng.integers(0, 2, (16, 4)))
    got = model.gemm_buckets(spec, W, A)
    assert got.shape == (5, 4, 8) and not got.any()
    assert not model.bucket_sums(spec, W[:, None, :], A.T[None, :, :]).any()


def test_gemm_buckets_floored_sums_above_2_53():
    # LNS8 with scales of +-114 per product and q_floor = 1 (t >= 8 kept). "Big" elements have the exponent
    # 63 + 114 = 177, "tiny" ones -63 - 114 = -177: every element can meet a partner below the floor (177 -
    # 177 < 8), so every product goes through the elementwise part. Big x big: t = 354 = 44 * 8 + 2, the
    # term 2**(44 - 1) in bucket 2; 2**11 of them sum to 2**54. A[1, 2] = -169 meets big weights at t = 8,
    # exactly the floor: +1 in bucket 0. Products with a tiny element are otherwise dropped.
    k = 1 << 11
    spec = LogSum(LNS8, k, 1, -228, 228, q_floor=1)
    W, A = np.full((2, k), _code(LNS8, 63, 0)), np.full((k, 3), _code(LNS8, 63, 0))
    w_exp, a_exp = np.full((2, k), 114), np.full((k, 3), 114)
    W[1, 0], w_exp[1, 0] = _code(LNS8, -63, 0), -114
    A[0, 2], a_exp[0, 2] = _code(LNS8, -63, 0), -114
    A[1, 2], a_exp[1, 2] = _code(LNS8, -63, 0), -106
    got = model.gemm_buckets(spec, W, A, w_exp, a_exp)
    assert got[:, :, 2].tolist() == [[k << 43, k << 43, (k - 2) << 43], [(k - 1) << 43, (k - 1) << 43, (k - 2) << 43]]
    assert got[:, :, 0].tolist() == [[0, 0, 1], [0, 0, 1]] and not got[:, :, [1, 3, 4, 5, 6, 7]].any()
    assert np.array_equal(got, model.bucket_sums(spec, W[:, None, :], A.T[None, :, :], w_exp[:, None, :] + a_exp.T[None]))


def test_gemm_buckets_of_zero_operands_are_zero():
    spec = LogSum(LNS8, 4)
    zeros = np.zeros((3, 4), np.int64)
    assert not model.gemm_buckets(spec, zeros, np.full((4, 2), 0x55)).any()


def test_gemm_buckets_keep_products_60_octaves_apart():
    # Scales of +-57 widen LNS8 products to 2**-30 .. 2**30, all kept (q_min = -30): the largest and the
    # smallest sum to 2**60 + 1 in bucket 0, which one float64 sum would round to 2**60.
    spec = LogSum(LNS8, 2, 1, -114, 114)
    largest, smallest = _code(LNS8, 63, 0), _code(LNS8, -63, 0)
    W, A = np.array([[largest, smallest]]), np.array([[largest], [smallest]])
    w_exp, a_exp = np.array([[57, -57]]), np.array([[57], [-57]])
    got = model.gemm_buckets(spec, W, A, w_exp, a_exp)
    assert got[0, 0].tolist() == [(1 << 60) + 1] + [0] * 7
    assert np.array_equal(got, model.bucket_sums(spec, W[:, None, :], A.T[None, :, :], w_exp + a_exp.T[None]))
