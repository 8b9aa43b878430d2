import numpy as np
import pytest
from amaranth.sim import Simulator

from qmac.hw.formats import IntFormat
from qmac.hw.log_dot_product import ORGANISATIONS, LogDotProduct
from qmac.hw.log_format import LNS4, LNS8, LogFormat
from qmac.sim import log_dot_product as model
from qmac.sim.log_format import decode


# -- parameters and widths ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, message", [
    ((6, LNS8, 12, 16), {}, "log dot-product lanes must be one of 4, 8, 16, 32, 64, not 6"),
    ((4, "lns8", 12, 16), {}, "log dot-product format must be a LogFormat, not 'lns8'"),
    ((4, LNS8, 0, 16), {}, "p_bits must be an integer from 1 to 48, not 0"),
    ((4, LNS8, 12, 0), {}, "max_k_beats must be an integer from 1 to 16777216, not 0"),
    ((4, LNS8, 12, 16, "wallace"), {}, "organisation must be one of tree, count, not 'wallace'"),
    ((4, LNS8, 12, 16), {"scale_bits": 9}, "scale_bits must be an integer from 0 to 8, not 9"),
    ((4, LogFormat(12, 0), 12, 16), {}, "the result would need 4112 bits, more than 256; use fewer scale_bits "
                                        "or p_bits, or a q_floor"),
    ((4, LNS8, 12, 16), {"q_floor": -16}, "q_floor must be None or an integer from -15 to 15, not -16"),
    ((4, LNS8, 12, 16), {"q_floor": 16}, "q_floor must be None or an integer from -15 to 15, not 16"),
])
def test_parameters_are_checked(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        LogDotProduct(*args, **kwargs)


def test_widths_of_a_small_unit():
    # Worked by hand: LNS4 exponents -3..3 give t in [-6, 6], so q_min = floor(-6/4) = -2 and the largest
    # product is t' = 6 + 8 = 14 = 3*4 + 2: 2**3 in bucket 2. C_2 = round(256 * sqrt(2)) = 362.
    # 4 lanes * 2 beats * 362 * 8 = 23168 needs 16 signed bits.
    unit = LogDotProduct(4, LNS4, 8, 2)
    assert (unit.q_min, unit.offset_max, unit.result_exponent) == (-2, 14, -10)
    assert unit.constants == (256, 304, 362, 431)
    assert unit.result_format == IntFormat(16)
    # A beat's bucket 2 reaches 4 * 2**3 = 32 (7 bits), bucket 3 only 4 * 2**2.
    assert [f.bits for f in unit.sum_formats] == [7, 7, 7, 6]
    assert unit.latency == 5


# -- operand generators -------------------------------------------------------------------------------

def _code(fmt, e, negative):
    return (np.asarray(negative, np.int64) << fmt.field_bits) | (np.asarray(e) + fmt.bias)


def _partner_with_fraction(fmt, w, scale, r, rng):
    """Codes ``a`` of random sign such that every product ``w * a`` (non-zero ``w``) has fraction ``r``."""
    a = np.empty_like(w)
    for idx in np.ndindex(w.shape):
        e_w = fmt.exponent(w[idx]) + scale[idx[0]]
        exponents = [e for e in range(fmt.min_exponent, fmt.max_exponent + 1)
                     if (e_w + e) % fmt.buckets == r[idx]]
        a[idx] = _code(fmt, rng.choice(exponents), rng.integers(2))
    return a


def _tiles(unit, rng):
    """Random tiles, then the extreme ones: ``[(w, a, scale, exact)]`` with ``exact`` the true value where
    it is known without the model (else None)."""
    fmt, v, k = unit.format, unit.lanes, unit.max_k_beats
    s_lo, s_hi = (-(1 << (unit.scale_bits - 1)), (1 << (unit.scale_bits - 1)) - 1) if unit.scale_bits else (0, 0)
    n_codes = 1 << fmt.bits

    def scale(beats, value=None):
        return np.full(beats, value) if value is not None else rng.integers(s_lo, s_hi + 1, beats)

    def nonzero(shape):
        return _code(fmt, rng.integers(fmt.min_exponent, fmt.max_exponent + 1, shape), rng.integers(0, 2, shape))

    def codes(beats):
        return rng.integers(0, n_codes, (beats, v))

    tiles = []
    for beats in list(rng.integers(1, k + 1, 10)) + [1, 1, 1, k]:
        tiles.append((codes(beats), codes(beats), scale(beats), None))
    zeros = rng.choice([0, 1 << fmt.field_bits], (k, v))
    tiles.append((zeros, codes(k), scale(k), 0.0))
    largest = np.full((k, v), _code(fmt, fmt.max_exponent, 0))
    top = v * k * fmt.magnitude(2 * fmt.max_exponent + s_hi)
    tiles.append((largest, largest, scale(k, s_hi), top))
    tiles.append((largest | (1 << fmt.field_bits), largest, scale(k, s_hi), -top))
    smallest = np.full((k, v), _code(fmt, fmt.min_exponent, 0))
    # The smallest products are dropped when the unit has a q_floor (it lies above their q).
    tiles.append((smallest, smallest, scale(k, s_lo),
                  0.0 if unit.q_floor is not None else v * k * fmt.magnitude(2 * fmt.min_exponent + s_lo)))
    w, s = nonzero((k, v)), scale(k)
    tiles.append((w, _partner_with_fraction(fmt, w, s, np.full((k, v), rng.integers(fmt.buckets)), rng), s, None))
    tiles.append((w, _partner_with_fraction(fmt, w, s, np.indices((k, v))[1] % fmt.buckets, rng), s, None))
    # Alternating signs that cancel: lane 2j + 1 is lane 2j with w negated.
    w, a, s = nonzero((k, v // 2)), nonzero((k, v // 2)), scale(k)
    tiles.append((np.stack([w, w ^ (1 << fmt.field_bits)], axis=2).reshape(k, v),
                  np.repeat(a, 2, axis=1), s, 0.0))
    return tiles


def _magnitudes(fmt, w, a, scale=None):
    """Sum of the magnitudes of the products (float64)."""
    p = np.abs(decode(fmt, w) * decode(fmt, a))
    return float((p if scale is None else p * np.exp2(np.asarray(scale) / fmt.buckets)[:, None]).sum())


# -- simulation ---------------------------------------------------------------------------------------

def _simulate(unit, tiles, rng, bubbles):
    """Feeds the tiles back to back (with random invalid beats carrying random data and flags if
    ``bubbles``) and returns the results, checking that each is read after the ``latency``-th clock edge,
    counting the one that samples its tile's last beat."""
    n_codes = 1 << unit.format.bits
    beats = []
    for w, a, s, _ in tiles:
        for b in range(len(w)):
            while bubbles and rng.random() < 0.3:
                beats.append((rng.integers(0, n_codes, unit.lanes), rng.integers(0, n_codes, unit.lanes),
                              0, 0, int(rng.integers(2)), int(rng.integers(2))))
            beats.append((w[b], a[b], int(s[b]), 1, b == 0, b == len(w) - 1))
    last_edges, results = [], []

    async def producer(ctx):
        for edge, (w, a, s, valid, first, last) in enumerate(beats, start=1):
            ctx.set(unit.w, [int(x) for x in w])
            ctx.set(unit.a, [int(x) for x in a])
            if unit.scale_bits:
                ctx.set(unit.scale, s)
            ctx.set(unit.valid, valid)
            ctx.set(unit.first, first)
            ctx.set(unit.last, last)
            if valid and last:
                last_edges.append(edge)
            await ctx.tick()
        ctx.set(unit.valid, 0)

    async def consumer(ctx):
        for edge in range(1, len(beats) + unit.latency + 3):
            await ctx.tick()
            if ctx.get(unit.result_valid):
                results.append((edge, ctx.get(unit.result)))

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert [edge for edge, _ in results] == [edge + unit.latency - 1 for edge in last_edges]
    return [y for _, y in results]


_UNITS = [
    ("lns8-v8-scaled", lambda org: LogDotProduct(8, LNS8, 12, 4, org, scale_bits=2)),
    ("lns4-v4", lambda org: LogDotProduct(4, LNS4, 8, 4, org)),
    ("lns8-v4-floor", lambda org: LogDotProduct(4, LNS8, 10, 3, org, q_floor=-9)),
    # Only the top octave kept: t' = t - 6 is 0 at most, so bucket 1 never receives a product.
    ("f1-v4-top-octave", lambda org: LogDotProduct(4, LogFormat(4, 1), 6, 3, org, q_floor=3)),
    ("f0-v4", lambda org: LogDotProduct(4, LogFormat(4, 0), 4, 3, org)),
]


@pytest.mark.parametrize("bubbles", [False, True], ids=["dense", "bubbles"])
@pytest.mark.parametrize("organisation", ORGANISATIONS)
@pytest.mark.parametrize("make", [u[1] for u in _UNITS], ids=[u[0] for u in _UNITS])
def test_unit_matches_model_bit_exactly(make, organisation, bubbles):
    unit = make(organisation)
    rng = np.random.default_rng(7)
    tiles = _tiles(unit, rng)
    got = _simulate(unit, tiles, rng, bubbles)
    assert got == [int(model.dot(unit, w, a, s)) for w, a, s, _ in tiles]
    for y, (w, a, s, exact) in zip(got, tiles):
        ref = model.reference(unit.format, w, a, s)
        slack = 1e-12 * _magnitudes(unit.format, w, a, s)
        assert abs(model.value(unit, y) - ref) <= model.error_bound(unit, w, a, s) + slack
        if exact is not None:
            if exact == 0.0:
                assert y == 0
            else:
                assert model.value(unit, y) == pytest.approx(exact, rel=2.0 ** -(unit.p_bits + 1))
    # The largest tile reaches the top of the result format: the width is exact and tight.
    assert unit.result_format == IntFormat.for_range(-max(map(abs, got)), max(map(abs, got)))


# -- model against the exact reference ----------------------------------------------------------------

def test_bucket_sums_reconstruct_the_exact_products():
    unit = LogDotProduct(16, LNS8, 12, 64, scale_bits=6)
    rng = np.random.default_rng(3)
    w, a, s = rng.integers(0, 256, (64, 16)), rng.integers(0, 256, (64, 16)), rng.integers(-32, 32, 64)
    acc = model.accumulators(unit, w, a, s)
    exact = float(np.sum(acc * np.exp2(np.arange(8) / 8))) * 2.0 ** unit.q_min
    assert exact == pytest.approx(model.reference(LNS8, w, a, s), rel=1e-12)
    # Beat by beat, from the decoded products: t = 8 * log2|p|, bucket t mod 8 gets +-2**(floor(t/8) - q_min).
    per_beat = model.bucket_sums(unit, w, a, s)
    p = decode(LNS8, w) * decode(LNS8, a) * np.exp2(s / 8)[:, None]
    for beat in range(8):
        want = [0] * 8
        for x in p[beat][p[beat] != 0]:
            t = round(8 * np.log2(abs(x)))
            want[t % 8] += int(np.sign(x)) << (t // 8 - unit.q_min)
        assert per_beat[beat].tolist() == want
    assert (per_beat.sum(axis=0) == acc).all()


@pytest.mark.parametrize("fmt, p_bits, q_floor", [(LNS8, 8, None), (LNS8, 16, None), (LNS4, 6, None),
                                                  (LNS8, 12, -4), (LogFormat(6, 0), 4, None)])
def test_error_stays_within_the_bound(fmt, p_bits, q_floor):
    unit = LogDotProduct(64, fmt, p_bits, 256, q_floor=q_floor)
    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(20):
        w, a = rng.integers(0, 1 << fmt.bits, (256, 64)), rng.integers(0, 1 << fmt.bits, (256, 64))
        err = abs(model.value(unit, model.dot(unit, w, a)) - model.reference(fmt, w, a))
        bound = model.error_bound(unit, w, a)
        magnitudes = _magnitudes(fmt, w, a)
        assert err <= bound + 1e-12 * magnitudes
        if q_floor is None:
            assert bound <= 2.0 ** -(p_bits + 1) * magnitudes
        worst = max(worst, err / bound if bound else 0.0)
    if fmt.frac_bits:
        assert worst > 0.01        # the bound is not vacuous: the constants' rounding shows
    else:
        assert worst == 0.0        # F = 0: the only constant is 2**P, exact


def test_wide_results_use_python_integers():
    # 8-bit scales: t in [-126 - 128, 126 + 127], q_min = floor(-254 / 8) = -32. The largest product,
    # t = 253, is t' = 253 + 256 = 63 * 8 + 5: 2**63 in bucket 5, too wide for int64 with 16 of them.
    unit = LogDotProduct(4, LNS8, 12, 4, scale_bits=8)
    assert unit.result_format.bits > 64
    w, s = np.full((4, 4), 0x7F), np.full(4, 127)
    assert model.dot(unit, w, w, s) == 16 * round(2 ** (12 + 5 / 8)) * 2 ** 63
    assert model.dot(unit, w, w ^ 0x80, s) == -16 * round(2 ** (12 + 5 / 8)) * 2 ** 63
