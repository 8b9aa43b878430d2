"""LogEncode in Amaranth's simulator against its golden twin; the twin against an exact plain-Python
reference (integer powers, no logarithms) and against the float encoder ``qmac.sim.log_format.encode``."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from qmac.hw.spec.config import ConfigError
from qmac.hw.log_datapath.log_encode import LogEncode
from qmac.hw.spec.log_encode import LogEncodeArithmetic
from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat
from qmac.sim.log_encode import log_encode
from qmac.sim.log_format import encode

FORMATS = (LNS8, LNS4, LogFormat(4, 1), LogFormat(6, 0))


# -- plain-Python reference ---------------------------------------------------------------------------

def _at_least(m, exponent2, num, den):
    """``m * 2**exponent2 >= 2**(num / den)`` for integers ``m > 0``, ``den > 0``, exactly:
    raised to the power ``den``: ``m**den * 2**(exponent2 * den) >= 2**num``."""
    left, right = m ** den, num - exponent2 * den
    return left >= (1 << right) if right >= 0 else (left << -right) >= 1


def reference_code(fmt, x, in_exponent, shift=0):
    """Nearest code in the log domain of ``x * 2**in_exponent * 2**(-shift / 2**F)``: the exponent ``k``
    (units ``2**-F``) with ``|value|`` in ``[2**((2k-1) / 2**(F+1)), 2**((2k+1) / 2**(F+1)))``, found by a
    search with exact integer comparisons, then the saturation rules of ``docs/lns.md``."""
    if x == 0:
        return 0
    m, den = abs(x), 2 * fmt.buckets
    # |value| >= 2**((2k-1)/den)  <=>  m * 2**in_exponent >= 2**((2k - 1 + 2*shift) / den)
    k = round((m.bit_length() - 1 + in_exponent) * fmt.buckets) - shift
    while _at_least(m, in_exponent, 2 * (k + 1) - 1 + 2 * shift, den):
        k += 1
    while not _at_least(m, in_exponent, 2 * k - 1 + 2 * shift, den):
        k -= 1
    field = k + fmt.bias
    if field < 1:
        return 0
    return (int(x < 0) << fmt.field_bits) | min(field, (1 << fmt.field_bits) - 1)


def threshold_floors(fmt, in_bits, in_exponent):
    """``(k, a)``: ``a = floor(T / 2**in_exponent)`` for every threshold ``T`` of ``encode`` with ``1 <= a``
    and ``a + 2`` within ``in_bits`` signed bits, so ``a * 2**in_exponent < T < (a + 1) * 2**in_exponent``;
    ``T`` lies between the magnitudes of fields ``k - 1`` and ``k``."""
    den = 2 * fmt.buckets
    out = []
    for k in range(1, 1 << fmt.field_bits):
        num = 2 * (k - fmt.bias) - 1        # T = 2**(num / den), irrational
        a = 0
        for bit in reversed(range(in_bits)):  # largest a with a * 2**in_exponent < T
            if not _at_least(a | (1 << bit), in_exponent, num, den):
                a |= 1 << bit
        if 1 <= a < (1 << (in_bits - 1)) - 2:
            out.append((k, a))
    return out


def threshold_neighbours(fmt, in_bits, in_exponent):
    """``a - 1 .. a + 2`` of every :func:`threshold_floors` ``a``, both signs, as an object array."""
    return np.array([s * v for _, a in threshold_floors(fmt, in_bits, in_exponent)
                     for v in (a - 1, a, a + 1, a + 2) for s in (1, -1) if v > 0], dtype=object)


def random_inputs(rng, in_bits, count):
    """``count`` signed Python ints of ``in_bits`` bits with log-uniform magnitudes (random bit lengths)."""
    out = []
    for length in rng.integers(0, in_bits, count):
        v = int(rng.integers(0, 1 << 62)) >> max(0, 62 - int(length)) << max(0, int(length) - 62)
        out.append(min(v, (1 << (in_bits - 1)) - 1) * int(rng.choice([-1, 1])))
    return out


def extremes(in_bits):
    top = (1 << (in_bits - 1)) - 1
    return [0, 1, -1, 2, -2, 3, top, -top, -top - 1, top - 1, (top + 1) // 2, -(top + 1) // 2]


# -- parameters ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("lns8", 16), "log encoder format must be a LogFormat, not 'lns8'"),
    ((LNS8, 1), "log encoder in_bits must be an integer from 2 to 128, not 1"),
    ((LNS8, 129), "log encoder in_bits must be an integer from 2 to 128, not 129"),
    ((LNS8, 16.0), "log encoder in_bits must be an integer from 2 to 128, not 16.0"),
    ((LNS8, 16, 1025), "log encoder in_exponent must be an integer from -1024 to 1024, not 1025"),
    ((LNS8, 16, 0, -1), "log encoder shift_bits must be an integer from 0 to 16, not -1"),
    ((LNS8, 16, 0, 17), "log encoder shift_bits must be an integer from 0 to 16, not 17"),
])
def test_parameters_are_checked(args, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        LogEncode(*args)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("in_bits", [2, 8, 33, 64])
def test_midpoints_bracket_the_log_domain_midpoints(fmt, in_bits):
    # (D - 1) < 2**(W-1) * 2**((2i-1)/2**(F+1)) < D, checked by raising to the power 2**(F+1).
    arith = LogEncodeArithmetic(fmt, in_bits)
    den = 2 * fmt.buckets
    for i, d in enumerate(arith.midpoints, start=1):
        exact = 1 << ((in_bits - 1) * den + 2 * i - 1)
        assert (d - 1) ** den < exact < d ** den
        assert 1 << (in_bits - 1) < d <= 1 << in_bits


def test_unit_ports_and_latency():
    unit = LogEncode(LNS8, 61, -28, 6)
    assert (len(unit.x), unit.x.shape().signed, len(unit.shift), len(unit.code)) == (61, True, 6, 8)
    assert unit.latency == 3
    assert "shift" not in LogEncode(LNS4, 16).signature.members


# -- golden twin against the references -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("in_bits, in_exponent", [(16, -8), (24, -16), (40, -30), (12, 2), (3, 0)])
def test_twin_matches_float_encoder(fmt, in_bits, in_exponent):
    rng = np.random.default_rng(in_bits)
    # Log-uniform magnitudes so that every octave of the input, and the saturation at both ends, is hit.
    mags = np.floor(np.exp2(rng.uniform(0, in_bits - 1, 3000))).astype(np.int64)
    x = np.concatenate([mags * rng.choice([-1, 1], mags.size), extremes(in_bits)])
    x = np.clip(x, -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1)
    expected = encode(fmt, x.astype(np.float64) * 2.0 ** in_exponent)
    np.testing.assert_array_equal(log_encode(fmt, x, in_bits, in_exponent), expected)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("in_bits, in_exponent", [(24, -16), (40, -34), (8, -4)])
def test_twin_at_the_thresholds(fmt, in_bits, in_exponent):
    # Inputs within 2 LSB of every threshold: exact agreement with the exact reference and, since these
    # values are exact in float64, with the float encoder too (its float64 thresholds never fall on them).
    x = threshold_neighbours(fmt, in_bits, in_exponent)
    assert x.size
    got = log_encode(fmt, x, in_bits, in_exponent)
    assert list(got) == [reference_code(fmt, int(v), in_exponent) for v in x]
    np.testing.assert_array_equal(got, encode(fmt, x.astype(np.float64) * 2.0 ** in_exponent))
    # Each threshold between fields k - 1 and k separates a (field below k) from a + 1 (field k or more).
    k, a = (np.array(c, dtype=object) for c in zip(*threshold_floors(fmt, in_bits, in_exponent)))
    assert np.all(log_encode(fmt, a, in_bits, in_exponent) < k)
    assert np.all(log_encode(fmt, a + 1, in_bits, in_exponent) >= k)


@pytest.mark.parametrize("fmt", (LNS8, LNS4))
@pytest.mark.parametrize("in_bits, in_exponent, shift_bits", [(20, -10, 5), (64, -28, 8), (128, -60, 4)])
def test_twin_with_shift_matches_exact_reference(fmt, in_bits, in_exponent, shift_bits):
    rng = np.random.default_rng(in_bits + shift_bits)
    x = random_inputs(rng, in_bits, 400) + extremes(in_bits)
    x += list(threshold_neighbours(fmt, min(in_bits, 60), in_exponent))
    half = 1 << (shift_bits - 1)
    shift = [int(s) for s in rng.integers(-half, half, len(x))]
    got = log_encode(fmt, np.array(x, dtype=object), in_bits, in_exponent, np.array(shift, dtype=object),
                     shift_bits)
    assert list(got) == [reference_code(fmt, v, in_exponent, s) for v, s in zip(x, shift)]


def test_twin_saturates_and_flushes():
    # LNS8 from a 16-bit input in units of 2**-8. 1 LSB = 2**(-64/8) lies below the lowest threshold
    # 2**(-63.5/8): zero, also when negative. 2 LSB = 2**(-56/8) is exact: field 64 - 56.
    fmt = LNS8
    assert list(log_encode(fmt, [1, -1, 2, -2], 16, -8)) == [0, 0, 64 - 56, (1 << 7) | (64 - 56)]
    # In units of 2**8, 1 LSB = 2**(64/8) is above the highest threshold 2**(63.5/8): the largest magnitude.
    top = (1 << 15) - 1
    assert list(log_encode(fmt, [1, -1, top, -top - 1], 16, 8)) == [127, 255, 127, 255]


@pytest.mark.parametrize("args, message", [
    (([1 << 15], 16), r"x must be within \[-32768, 32767\], not 32768..32768"),
    (([1.5], 16), "x must hold integers, not float64"),
    (([1], 16, 0, [8], 4), r"shift must be within \[-8, 7\], not 8..8"),
    (([1], 16, 0, [1], 0), r"shift must be within \[0, 0\], not 1..1"),
])
def test_twin_checks_inputs(args, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        log_encode(LNS8, *args)


# -- hardware against the twin --------------------------------------------------------------------------

def _hardware_codes(unit, xs, shifts, rng):
    """Codes of ``xs`` streamed through ``unit`` with random idle cycles, in order of ``code_valid``."""
    out = []

    async def tb(ctx):
        i = 0
        cycles = 0
        while len(out) < len(xs):
            valid = i < len(xs) and rng.random() < 0.8
            ctx.set(unit.valid, valid)
            if valid:
                ctx.set(unit.x, int(xs[i]))
                if unit.shift_bits:
                    ctx.set(unit.shift, int(shifts[i]))
                i += 1
            else:                                   # garbage on idle cycles must not leak out
                ctx.set(unit.x, int(xs[rng.integers(len(xs))]))
            await ctx.tick()
            cycles += 1
            if ctx.get(unit.code_valid):
                out.append(ctx.get(unit.code))
            assert cycles < 4 * len(xs) + 20

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


def _latency_of(unit):
    seen = []

    async def tb(ctx):
        ctx.set(unit.valid, 1)
        ctx.set(unit.x, 1)
        await ctx.tick()
        ctx.set(unit.valid, 0)
        for edge in range(1, 8):
            if ctx.get(unit.code_valid):
                seen.append(edge)
            await ctx.tick()

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return seen


@pytest.mark.parametrize("fmt, in_bits, in_exponent, shift_bits", [
    (LNS8, 16, -8, 0), (LNS8, 61, -28, 6), (LNS4, 33, -14, 3), (LogFormat(4, 1), 12, -3, 2),
])
def test_hardware_matches_twin(fmt, in_bits, in_exponent, shift_bits):
    rng = np.random.default_rng(in_bits)
    unit = LogEncode(fmt, in_bits, in_exponent, shift_bits)
    assert _latency_of(unit) == [unit.latency]
    xs = random_inputs(rng, in_bits, 150) + extremes(in_bits)
    xs += list(threshold_neighbours(fmt, min(in_bits, 60), in_exponent))[:80]
    half = 1 << max(shift_bits - 1, 0)
    shifts = [int(s) for s in rng.integers(-half, half, len(xs))] if shift_bits else [0] * len(xs)
    expected = log_encode(fmt, np.array(xs, dtype=object), in_bits, in_exponent,
                          np.array(shifts, dtype=object), shift_bits)
    assert _hardware_codes(unit, xs, shifts, rng) == list(expected)
