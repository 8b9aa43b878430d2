"""Requantize in Amaranth's simulator against its golden twin, and the golden twin against plain-Python
references written from the definitions: exact rational rounding (fixed point), gemmlowp's
SaturatingRoundingDoublingHighMul / RoundingDivideByPOT (TFLite's double rounding), ruy's AVX2 rounding right
shift (TFLite's optimized kernels) and a double-precision single rounding (TFLite's reference FC kernel).
tests/test_tflite_runtime.py checks the modes against the TFLite runtime itself."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import EnableInserter, Signal
from amaranth.sim import Simulator

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import ROUNDINGS
from qmac.hw.output.requantize import Requantize
from qmac.hw.spec.requantize import MODES
from qmac.sim.requantize import quantize_multiplier, requantize, tflite_shift_field

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
FIELDS = ("multiplier", "shift", "zero_point", "int4", "mode")
GEMMLOWP, OPTIMIZED, REFERENCE = (MODES.index(m) for m in ("gemmlowp", "tflite_optimized", "tflite_reference"))


# -- plain-Python references (not the code under test) ---------------------------------------------------------

def _clamp(v, lo, hi):
    return min(max(v, lo), hi), not lo <= v <= hi


def _output(y, int4):
    return _clamp(y, -8, 7) if int4 else _clamp(y, -128, 127)


def fixed_reference(acc, multiplier, shift, zero_point, int4, rounding):
    """``clamp(round(acc * multiplier / 2**shift) + zero_point)`` with exact rational arithmetic."""
    v = Fraction(acc * multiplier, 1 << shift)
    low = math.floor(v)
    frac = v - low
    if rounding == "floor" or frac < Fraction(1, 2):
        r = low
    elif frac > Fraction(1, 2):
        r = low + 1
    else:
        r = {"half_even": low + low % 2, "half_away": low + (v > 0), "half_up": low + 1}[rounding]
    return _output(r + zero_point, int4)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp, as written there: 64-bit product, nudge, C division (truncating towards zero)."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    return abs(v) // (1 << 31) * (1 if v >= 0 else -1)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp, as written there."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def ruy_rounding_right_shift(h, exponent):
    """ruy's ``rounding_right_shift`` (kernel_avx2_fma.cc, kernel_avx512.cc), as written there: nudge
    ``1 << (exponent - 1)`` when ``exponent > 0``, ``(h + nudge) >> exponent`` (arithmetic), and
    ``1 << (31 - exponent)`` where ``h + nudge`` overflows int32."""
    nudge = (1 << (exponent - 1)) if exponent > 0 else 0
    if h > INT32_MAX - nudge:
        return 1 << (31 - exponent)
    return (h + nudge) >> exponent


def tflite_reference(acc, multiplier, shift, zero_point, int4, mode=GEMMLOWP):
    """TFLite's MultiplyByQuantizedMultiplier with TFLite's ``shift`` (positive = left), then ``+ zero_point``
    and the output clamp: double rounding with gemmlowp's RoundingDivideByPOT (``GEMMLOWP``) or ruy's rounding
    right shift (``OPTIMIZED``), or one rounding of the exact ``x * multiplier * 2**(shift - 31)``, half away
    from zero (``REFERENCE``: C's ``round`` of the product, were it exact in double). Where TFLite's int32
    arithmetic would overflow (``acc`` beyond int32, ``x * (1 << left_shift)``), the documented saturation."""
    x, pre = _clamp(acc * (1 << max(shift, 0)), INT32_MIN, INT32_MAX)
    right = max(-shift, 0)
    if mode == REFERENCE:
        v = Fraction(x * multiplier, 1 << (31 + right))
        r = math.floor(abs(v) + Fraction(1, 2)) * (1 if v >= 0 else -1)
        q, out = _output(r + zero_point, int4)
        return q, pre or out
    high = saturating_rounding_doubling_high_mul(x, multiplier)
    r = rounding_divide_by_pot(high, right) if mode == GEMMLOWP else ruy_rounding_right_shift(high, right)
    q, out = _output(r + zero_point, int4)
    return q, pre or (x == multiplier == INT32_MIN) or out


def tflite_multiplier(scale):
    """TFLite's QuantizeMultiplier for ``scale`` in (0, 2**31): ``scale = multiplier * 2**(shift - 31)``,
    multiplier in [2**30, 2**31)."""
    q, shift = math.frexp(scale)
    m = math.floor(q * (1 << 31) + 0.5)  # TfLiteRound: half away from zero, q > 0
    if m == 1 << 31:
        m, shift = m // 2, shift + 1
    return m, shift


# -- row sets --------------------------------------------------------------------------------------------------

def _row(acc, columns, multiplier, shift, zero_point=0, int4=0, mode=0):
    """One row; ``acc`` is repeated or cut to ``columns``."""
    return ([acc[c % len(acc)] for c in range(columns)],
            dict(multiplier=multiplier, shift=shift, zero_point=zero_point, int4=int4, mode=mode))


def fixed_rows(rng, n, acc_bits, columns):
    """Random rows scaled to land near the output range, then exact ties, saturation and extremes."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    rows = []
    for _ in range(n):
        top = rng.randrange(1, acc_bits)
        acc = [max(lo, min(hi, rng.randrange(-(1 << top), 1 << top))) for _ in range(columns)]
        multiplier = rng.choice([rng.randrange(INT32_MIN, INT32_MAX + 1), rng.randrange(1 << 30, 1 << 31),
                                 rng.randrange(-255, 256)])
        shift = max(0, min(63, top + abs(multiplier).bit_length() - 7 + rng.randrange(-3, 3)))
        rows.append(_row(acc, columns, multiplier, shift, rng.randrange(-128, 128), rng.randrange(2)))
    for shift in range(1, 64):  # acc * multiplier = (2k + 1) * 2**(shift - 1): ties of both signs
        j = min(29, max(0, shift + 2 - acc_bits))  # the multiplier carries what acc cannot
        if shift - 1 - j <= acc_bits - 3:
            for m in (1, -1, 3):
                acc = [(2 * k + 1) << (shift - 1 - j) for k in range(-2, 2)]
                rows.append(_row(acc, columns, m << j, shift, rng.randrange(-3, 4), rng.randrange(2)))
    for int4 in (0, 1):  # saturation at both ends and the widest products
        rows.append(_row([hi, lo], columns, INT32_MIN, 0, 0, int4))
        rows.append(_row([hi, lo, -1, 1], columns, INT32_MAX, 63, -128, int4))
        rows.append(_row([lo], columns, INT32_MIN, 63, 127, int4))
        rows.append(_row([200, -200, 7, -9], columns, 1, 0, 5, int4))
    return rows


def tflite_rows(rng, n, acc_bits, columns, mode=GEMMLOWP):
    """Rows of ``mode`` with multipliers and shifts as TFLite's quantizer makes them, then gemmlowp's corner
    cases."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    rows = []
    for _ in range(n):
        multiplier, shift = tflite_multiplier(rng.uniform(0.5, 1) * 2.0 ** rng.randrange(-30, 3))
        if rng.random() < 0.2:
            multiplier = rng.randrange(INT32_MIN, INT32_MAX + 1)  # gemmlowp defines every int32 multiplier
        reach = max(1, min(acc_bits - 1, 8 - shift + rng.randrange(-2, 3)))
        acc = [max(lo, min(hi, rng.randrange(-(1 << reach), 1 << reach))) for _ in range(columns)]
        rows.append(_row(acc, columns, multiplier, shift, rng.randrange(-128, 128), rng.randrange(2), mode))
    fit = lambda v: max(lo, min(hi, v))  # noqa: E731
    rows.append(_row([fit(INT32_MIN), fit(INT32_MAX)], columns, INT32_MIN, 0, 0, 0, mode))  # the overflowing high mul
    rows.append(_row([fit(INT32_MIN)], columns, INT32_MIN, -31, -3, 0, mode))
    for e in range(1, 32):  # multiplier 2**30 halves exactly: h = acc / 2 is a tie of RoundingDivideByPOT
        rows.append(_row([fit((2 * k + 1) << e) for k in (-2, -1, 0, 1)], columns, 1 << 30, -e, 0, 0, mode))
    for e in (0, 1, 4):  # multiplier 2**30, odd acc: ties of the high multiply (negative ones round up)
        rows.append(_row([-5, -3, -1, 1, 3], columns, 1 << 30, -e, 0, 0, mode))
    for shift in (1, 5, 31, 32):  # left shifts, in range and saturating
        rows.append(_row([3, -3, hi, lo], columns, 1 << 30, shift, 0, 1, mode))
    rows.append(_row([hi, lo], columns, 1 << 30, 0, 0, 0, mode))  # int32 pre-saturation when acc_bits > 32
    return rows


def _split(rows):
    """Rows -> the positional arguments ``acc, multiplier, shift, zero_point, int4, mode`` of ``requantize``."""
    return (np.array([a for a, _ in rows], dtype=object), *(np.array([p[f] for _, p in rows]) for f in FIELDS))


def _with_fields(rows):
    """TFLite rows carry TFLite's shift; the hardware's field is :func:`tflite_shift_field` of it."""
    return [(a, dict(p, shift=int(tflite_shift_field(p["shift"])) if p["mode"] else p["shift"])) for a, p in rows]


# -- golden twin against the references ------------------------------------------------------------------------

@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_fixed_point_golden_matches_exact_rounding(rounding):
    rng = random.Random(1)
    for acc_bits, columns in ((32, 4), (64, 4), (12, 5)):
        rows = fixed_rows(rng, 200, acc_bits, columns)
        q, clipped = requantize(*_split(rows), acc_bits, rounding)
        for r, (acc, p) in enumerate(rows):
            ref = [fixed_reference(a, p["multiplier"], p["shift"], p["zero_point"], p["int4"], rounding) for a in acc]
            assert list(q[r]) == [v for v, _ in ref], (rounding, acc, p)
            assert clipped[r] == any(c for _, c in ref), (rounding, acc, p)


@pytest.mark.parametrize("mode", [GEMMLOWP, OPTIMIZED, REFERENCE])
def test_tflite_modes_golden_match_their_definitions(mode):
    rng = random.Random(2 + mode)
    for acc_bits, columns in ((32, 4), (40, 4), (16, 4)):
        rows = tflite_rows(rng, 400, acc_bits, columns, mode)
        q, clipped = requantize(*_split(_with_fields(rows)), acc_bits)
        for r, (acc, p) in enumerate(rows):
            ref = [tflite_reference(a, p["multiplier"], p["shift"], p["zero_point"], p["int4"], mode) for a in acc]
            assert list(q[r]) == [v for v, _ in ref], (acc, p)
            assert clipped[r] == any(c for _, c in ref), (acc, p)


def test_fixed_point_half_up_is_tflite_single_rounding():
    """TFLite's TFLITE_SINGLE_ROUNDING MultiplyByQuantizedMultiplier, as written there, is the fixed-point mode
    with half_up and shift = 31 - tflite_shift."""
    rng = random.Random(3)
    rows = [(rng.randrange(-(1 << 24), 1 << 24), *tflite_multiplier(rng.uniform(0.5, 1) * 2.0 ** rng.randrange(-30, 0)))
            for _ in range(500)]
    expected = []
    for x, m, shift in rows:
        total_shift = 31 - shift
        r = (x * m + (1 << (total_shift - 1))) >> total_shift
        expected.append(_output(r, 0)[0])
    q, _ = requantize([[x] for x, _, _ in rows], [m for _, m, _ in rows], [31 - s for _, _, s in rows], 0, 0, 0, 32,
                      "half_up")
    assert list(q[:, 0]) == expected


def test_gemmlowp_corner_values():
    """The reference's own corner cases, pinned: the one overflowing high multiply and negative ties."""
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MAX) == -INT32_MAX
    assert saturating_rounding_doubling_high_mul(-1, 1 << 30) == 0  # -0.5 rounds up
    assert saturating_rounding_doubling_high_mul(-3, 1 << 30) == -1  # -1.5 rounds up
    assert [rounding_divide_by_pot(x, 1) for x in (-3, -1, 1, 3)] == [-2, -1, 1, 2]  # ties away from zero
    assert tflite_multiplier(0.75) == (3 << 29, 0) and tflite_multiplier(2.0 ** -20) == (1 << 30, -19)
    q, clipped = requantize([[INT32_MIN]], INT32_MIN, 0, 0, 0, 1, 32)
    assert (q[0, 0], clipped[0]) == (127, True)


# -- hardware against the golden twin ---------------------------------------------------------------------------

@pytest.mark.parametrize("acc_bits,columns,rounding,stall", [(32, 4, "half_even", False), (40, 4, "half_up", True),
                                                             (64, 4, "half_away", True), (20, 5, "floor", True)])
def test_hardware_matches_golden(acc_bits, columns, rounding, stall):
    rng = random.Random(acc_bits)
    rows = fixed_rows(rng, 150, acc_bits, columns) + [row for mode in (GEMMLOWP, OPTIMIZED, REFERENCE)
                                                      for row in _with_fields(tflite_rows(rng, 60, acc_bits, columns, mode))]
    rng.shuffle(rows)
    dut = Requantize(acc_bits, columns, rounding)
    en = Signal(init=1)
    accepted, delivered = [], []  # (row index, enabled edge), ((q, clipped), enabled edge)

    async def tb(ctx):
        edge, r = 0, 0
        while len(delivered) < len(rows):
            enabled = not stall or rng.random() < 0.7
            valid = r < len(rows) and (not stall or rng.random() < 0.8)
            ctx.set(en, enabled)
            ctx.set(dut.i.valid, valid)
            if valid:
                ctx.set(dut.i.acc, rows[r][0])
                ctx.set(dut.i.params, rows[r][1])
            if enabled:
                if ctx.get(dut.o.valid):
                    q = ctx.get(dut.o.q)
                    delivered.append(((tuple(q[c] for c in range(columns)), ctx.get(dut.o.clipped)), edge))
                if valid:
                    accepted.append((r, edge))
                    r += 1
                edge += 1
            await ctx.tick()

    sim = Simulator(EnableInserter({"sync": en})(dut))
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    q, clipped = requantize(*_split(rows), acc_bits, rounding)
    assert [out for out, _ in delivered] == [(tuple(q[r]), int(clipped[r])) for r, _ in accepted]
    assert {o - i for (_, i), (_, o) in zip(accepted, delivered)} == {dut.latency}
    assert dut.latency == 5


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match=r"^output stage acc_bits must be an integer 2\.\.64, not 65$"):
        Requantize(65, 4)
    with pytest.raises(ConfigError, match=r"^output stage columns must be an integer 1\.\.64, not 0$"):
        Requantize(32, 0)
    with pytest.raises(ConfigError, match=r"^output stage rounding must be one of half_even, half_away, half_up, "
                                          r"floor, not 'nearest'$"):
        Requantize(32, 4, "nearest")
    with pytest.raises(ValueError, match=r"^shift must be within \[0, 63\], not 0\.\.64$"):
        requantize([[0, 0]], 1, [0, 64], 0, 0, 0, 32)
    with pytest.raises(ValueError, match=r"^acc must be within \[-128, 127\], not -1\.\.128$"):
        requantize([[128, -1]], 1, 0, 0, 0, 0, 8)
    with pytest.raises(ValueError, match=r"^TFLite shift must be within \[-31, 32\], not -32\.\.-32$"):
        tflite_shift_field(-32)


def test_tflite_shift_field_is_the_negated_exponent_in_six_bits():
    assert list(tflite_shift_field([0, -1, -31, 1, 32])) == [0, 1, 31, 63, 32]


def test_modes_round_ties_as_named():
    """acc = 3, 5, -3, -5 times 2**30 / 2**31 / 2**2: gemmlowp halves exactly (h = acc / 2 is an integer only for
    even acc, so the high multiply rounds -1.5 up), then divides by 4; the single rounding sees acc / 8."""
    acc = [[12, 20, -12, -20, 4, -4]]  # acc / 8 = 1.5, 2.5, -1.5, -2.5, 0.5, -0.5
    field = int(tflite_shift_field(-2))
    expected = {GEMMLOWP: [2, 3, -2, -3, 1, -1], OPTIMIZED: [2, 3, -1, -2, 1, 0], REFERENCE: [2, 3, -2, -3, 1, -1]}
    for mode, q in expected.items():
        assert list(requantize(acc, 1 << 30, field, 0, 0, mode, 32)[0][0]) == q, MODES[mode]
    # h = round_half_up(acc / 2) differs from acc / 2 on odd acc: gemmlowp (double) != reference (single)
    odd = [[3, -3, 7, -7]]  # / 8 = 0.375 .. ; h = 2, -1, 4, -3 -> / 4 = 0.5, -0.25, 1, -0.75
    assert list(requantize(odd, 1 << 30, field, 0, 0, GEMMLOWP, 32)[0][0]) == [1, 0, 1, -1]
    assert list(requantize(odd, 1 << 30, field, 0, 0, OPTIMIZED, 32)[0][0]) == [1, 0, 1, -1]
    assert list(requantize(odd, 1 << 30, field, 0, 0, REFERENCE, 32)[0][0]) == [0, 0, 1, -1]


def test_quantize_multiplier_matches_tflite():
    """Against the frexp-based definition above and hand-worked values: the 2**31 carry, the flush below
    2**-32, ties of q * 2**31 (away from zero), negative factors."""
    rng = random.Random(7)
    for _ in range(2000):
        real = rng.uniform(0.5, 1) * 2.0 ** rng.randrange(-31, 31)
        assert quantize_multiplier(real) == tflite_multiplier(real), real
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)  # q * 2**31 rounds up to 2**31: carry
    assert quantize_multiplier(1 - 2.0 ** -31) == ((1 << 31) - 1, 0)
    assert quantize_multiplier(0.5 + 2.0 ** -32) == ((1 << 30) + 1, 0)  # q * 2**31 = 2**30 + 0.5: tie, away
    assert quantize_multiplier(0.5 + 2.0 ** -33) == (1 << 30, 0)  # q * 2**31 = 2**30 + 0.25
    assert quantize_multiplier(-0.75) == (-(3 << 29), 0)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -32) == (1 << 30, -31)
    assert quantize_multiplier(2.0 ** -33) == (0, 0)  # shift -32: flushed
    with pytest.raises(ValueError, match=r"^real multiplier must be finite, not nan$"):
        quantize_multiplier(float("nan"))
