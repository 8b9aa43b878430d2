import math

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat
from qmac.hw.ops import AmaranthOps
from qmac.sim.log_format import E2M1, compared_formats, decode, encode, int_value_map, log_value_map, thresholds
from qmac.sim.ops import NumpyOps


# -- parameters and layout ----------------------------------------------------------------------------

@pytest.mark.parametrize("bits, frac_bits, message", [
    (2, 0, "log format width must be an integer from 3 to 16, not 2"),
    (17, 3, "log format width must be an integer from 3 to 16, not 17"),
    (8.0, 3, "log format width must be an integer from 3 to 16, not 8.0"),
    (8, 7, "frac_bits of a 8-bit log format must be an integer from 0 to 6, not 7"),
    (4, -1, "frac_bits of a 4-bit log format must be an integer from 0 to 2, not -1"),
    (16, 9, "frac_bits of a 16-bit log format must be an integer from 0 to 8, not 9"),
])
def test_format_parameters_are_checked(bits, frac_bits, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        LogFormat(bits, frac_bits)


def test_layout_of_lns8():
    # Hand-derived from the spec: bias 64, e = f - 64, value 2**(e/8); 0x80 is a negative zero code.
    assert (LNS8.bias, LNS8.min_exponent, LNS8.max_exponent) == (64, -63, 63)
    codes = [0x40, 0x48, 0xC8, 0x38, 0x41, 0x7F, 0x01, 0x00, 0x80]
    want = [1.0, 2.0, -2.0, 0.5, 2 ** (1 / 8), 2 ** (63 / 8), 2 ** (-63 / 8), 0.0, 0.0]
    np.testing.assert_allclose(decode(LNS8, codes), want, rtol=1e-15)


def test_layout_of_lns4():
    # bias 4, e in [-3, 3] quarter octaves; sign is bit 3.
    assert (LNS4.bias, LNS4.min_exponent, LNS4.max_exponent) == (4, -3, 3)
    want = [0.0] + [2 ** (k / 4) for k in range(-3, 4)] + [0.0] + [-(2 ** (k / 4)) for k in range(-3, 4)]
    np.testing.assert_allclose(decode(LNS4, np.arange(16)), want, rtol=1e-15)


def test_decode_rejects_foreign_codes():
    with pytest.raises(ValueError, match="^codes of a 4-bit log format must be integers from 0 to 15$"):
        decode(LNS4, [16])


# -- encoder ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [LNS8, LNS4, LogFormat(4, 1), LogFormat(6, 0)])
def test_every_code_round_trips(fmt):
    codes = np.arange(1 << fmt.bits)
    negative_zero = 1 << fmt.field_bits
    assert (encode(fmt, decode(fmt, codes)) == np.where(codes == negative_zero, 0, codes)).all()


@pytest.mark.parametrize("fmt", [LNS8, LNS4])
def test_encode_is_nearest_in_the_log_domain(fmt):
    rng = np.random.default_rng(1)
    lo, hi = fmt.magnitude(fmt.min_exponent), fmt.magnitude(fmt.max_exponent)
    x = np.exp2(rng.uniform(np.log2(lo), np.log2(hi), 20000)) * rng.choice([-1, 1], 20000)
    mags = np.array([fmt.magnitude(e) for e in range(fmt.min_exponent, fmt.max_exponent + 1)])
    # Brute force: distance in octaves to every magnitude.
    best = mags[np.argmin(np.abs(np.log2(np.abs(x))[:, None] - np.log2(mags)), axis=1)]
    np.testing.assert_allclose(decode(fmt, encode(fmt, x)), np.sign(x) * best, rtol=1e-15)
    assert np.abs(np.log2(np.abs(decode(fmt, encode(fmt, x)) / x))).max() <= 0.5 / fmt.buckets + 1e-12


@pytest.mark.parametrize("fmt", [LNS8, LNS4])
def test_ties_go_to_the_larger_magnitude(fmt):
    t = thresholds(fmt)
    fields = np.arange(1, 1 << fmt.field_bits)
    # Each threshold is the geometric mean of its neighbours (field 0 standing for 2**((e_min - 1)/2**F)).
    mags = np.exp2((fields - 1 - fmt.bias) / fmt.buckets)
    np.testing.assert_allclose(t, mags * 2 ** (0.5 / fmt.buckets), rtol=1e-15)
    assert (encode(fmt, t) == fields).all()
    assert (encode(fmt, np.nextafter(t, 0)) == fields - 1).all()
    sign = 1 << fmt.field_bits
    assert (encode(fmt, -t) == sign | fields).all()
    assert (encode(fmt, -np.nextafter(t, 0)[1:]) == sign | (fields[1:] - 1)).all()


def test_encode_saturates_at_both_ends():
    top = 2 ** (63 / 8)
    bottom = 2 ** (-63 / 8)
    x = [top * 1.03, top * 1e6, np.inf, -np.inf, -top * 1.03,
         bottom * 2 ** (-1 / 16) * (1 + 1e-12), bottom * 2 ** (-1 / 16) * (1 - 1e-12), 1e-300, -1e-300, 0.0, -0.0]
    assert encode(LNS8, x).tolist() == [0x7F, 0x7F, 0x7F, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]


def test_encode_rejects_nan():
    with pytest.raises(ValueError, match="^cannot encode NaN in a log format$"):
        encode(LNS8, [1.0, np.nan])


# -- constants ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, p_bits", [(LNS8, 12), (LNS8, 48), (LNS4, 1), (LNS4, 16), (LogFormat(12, 8), 20)])
def test_constants_are_nearest(fmt, p_bits):
    c = fmt.constants(p_bits)
    assert len(c) == fmt.buckets and c[0] == 1 << p_bits
    n = fmt.buckets
    for r, cr in enumerate(c):
        # C_r - 1/2 < 2**(P + r/n) < C_r + 1/2, raised to the n-th power: exact in integers.
        exact = 2 ** ((p_bits + 1) * n + r)
        assert (2 * cr - 1) ** n < exact < (2 * cr + 1) ** n


def test_constants_of_lns8():
    # round(2**(r/8) * 4096), computed by hand from 2**(1/8) = 1.0905077...
    assert LNS8.constants(12) == (4096, 4467, 4871, 5312, 5793, 6317, 6889, 7512)


@pytest.mark.parametrize("p_bits", [0, 49, 12.0, True])
def test_constants_check_p_bits(p_bits):
    with pytest.raises(ValueError, match=f"^p_bits must be an integer from 1 to 48, not {p_bits!r}$"):
        LNS8.constants(p_bits)


# -- datapath operations: Amaranth against numpy ------------------------------------------------------

class _ProductOps(wiring.Component):
    """``n`` lanes of :meth:`LogFormat.product` and :meth:`LogFormat.split`, combinational."""

    def __init__(self, fmt, n):
        self._fmt = fmt
        t = signed(fmt.bits + 2)
        super().__init__({
            "w": In(data.ArrayLayout(fmt.bits, n)), "a": In(data.ArrayLayout(fmt.bits, n)),
            "sign": Out(n), "zero": Out(n),
            "q": Out(data.ArrayLayout(t, n)), "r": Out(data.ArrayLayout(max(1, fmt.frac_bits), n)),
        })

    def elaborate(self, platform):
        m = Module()
        for i in range(len(self.sign)):
            sign, zero, t = self._fmt.product(self.w[i], self.a[i])
            q, r = self._fmt.split(t, AmaranthOps)
            m.d.comb += [self.sign[i].eq(sign), self.zero[i].eq(zero), self.q[i].eq(q), self.r[i].eq(r)]
        return m


def _run_product_ops(fmt, w, a, lanes):
    dut = _ProductOps(fmt, lanes)
    out = {k: [] for k in ("sign", "zero", "q", "r")}

    async def testbench(ctx):
        for j in range(0, len(w), lanes):
            ctx.set(dut.w, [int(x) for x in w[j:j + lanes]])
            ctx.set(dut.a, [int(x) for x in a[j:j + lanes]])
            sign, zero = ctx.get(dut.sign), ctx.get(dut.zero)
            out["sign"] += [(sign >> i) & 1 for i in range(lanes)]
            out["zero"] += [(zero >> i) & 1 for i in range(lanes)]
            out["q"] += list(ctx.get(dut.q))
            out["r"] += list(ctx.get(dut.r))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("fmt, lanes", [(LNS4, 16), (LogFormat(4, 1), 16), (LNS8, 512)])
def test_product_ops_in_hardware_match_numpy_for_every_pair(fmt, lanes):
    w, a = (x.ravel() for x in np.meshgrid(np.arange(1 << fmt.bits), np.arange(1 << fmt.bits)))
    hw = _run_product_ops(fmt, w, a, lanes)
    sign, zero, t = fmt.product(w, a)
    q, r = fmt.split(t, NumpyOps)
    assert (hw["sign"] == sign).all() and (hw["zero"] == zero).all()
    assert (hw["q"][~zero] == q[~zero]).all() and (hw["r"][~zero] == r[~zero]).all()

    # Independently of the code: the decoded product is (-1)**sign * 2**q * 2**(r/2**F).
    p = decode(fmt, w) * decode(fmt, a)
    assert ((p == 0) == zero).all()
    assert ((p < 0) == (sign == 1))[~zero].all()
    t_float = np.log2(np.abs(p[~zero])) * fmt.buckets
    np.testing.assert_allclose(t_float, q[~zero] * fmt.buckets + r[~zero], atol=1e-9)
    assert ((0 <= r) & (r < fmt.buckets)).all()


# -- comparison of formats ----------------------------------------------------------------------------

def test_lns_error_and_range_follow_from_the_step():
    for fmt in (LNS8, LNS4, LogFormat(4, 1)):
        vm = log_value_map(fmt)
        # Worst case: just at a log-domain midpoint, rounded up by half a step.
        assert vm.worst_relative_error() == pytest.approx(2 ** (0.5 / fmt.buckets) - 1, rel=1e-12)
        assert vm.dynamic_range == pytest.approx(2 ** ((fmt.max_exponent - fmt.min_exponent) / fmt.buckets))
    assert log_value_map(LNS8).worst_relative_error() == pytest.approx(0.0443, abs=1e-4)
    assert math.log2(log_value_map(LNS8).dynamic_range) == 15.75


def test_linear_formats_err_most_between_their_two_smallest_values():
    # x just below 1.5 rounds to 1 (INT) / just below 0.75 rounds to 0.5 (E2M1): error 1/3.
    for vm in (int_value_map(8), int_value_map(4), E2M1):
        assert vm.worst_relative_error() == pytest.approx(1 / 3)
    assert int_value_map(8).worst_relative_error(64, 127) == pytest.approx(1 / 129)
    assert E2M1.worst_relative_error(3, 6) == pytest.approx(1 / 5)       # 5 rounds up to 6
    assert int_value_map(4).dynamic_range == 7 and E2M1.dynamic_range == 12


def test_value_map_quantize_agrees_with_the_encoder():
    x = np.exp2(np.linspace(-9, 9, 5001))
    for fmt in (LNS8, LNS4):
        np.testing.assert_array_equal(log_value_map(fmt).quantize(x), decode(fmt, encode(fmt, x)))
    assert [vm.name for vm in compared_formats()] == ["INT8", "INT4", "E2M1", "LNS8 (F=3)", "LNS4 (F=2)",
                                                      "LNS4 (F=1)"]
