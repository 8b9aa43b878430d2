"""IntFormat operations: the Amaranth backend against the numpy backend, exhaustively over operand pairs."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.sim import Simulator

from qmac.hw.spec.formats import INT4, INT8, ROUNDINGS, IntFormat, ScaleFormat
from qmac.hw.ops import AmaranthOps
from qmac.sim.ops import NumpyOps

# (name, function of (x, y, ops) -> (value, flag)) applied to every pair of operands.
OUT = IntFormat(8)


def _ops(fmt):
    out = IntFormat(fmt.bits)
    cases = [("sat_sum", lambda x, y, o: out.saturate(x + y, o)),
             ("wrap_product", lambda x, y, o: (out.wrap(x * y, o), 0))]
    for r in ROUNDINGS:
        for n in (1, 3, fmt.bits - 1):
            cases.append((f"{r}_{n}", lambda x, y, o, r=r, n=n: out.rounding_shift(x * y, n, r, o)))
    return cases


def _reference(x, y, name, fmt):
    """Plain-Python arithmetic from the definitions (not the code under test)."""
    lo, hi = -(1 << (fmt.bits - 1)), (1 << (fmt.bits - 1)) - 1
    clamp = lambda v: (min(max(v, lo), hi), int(v < lo or v > hi))
    if name == "sat_sum":
        return clamp(x + y)
    if name == "wrap_product":
        return ((x * y - lo) % (1 << fmt.bits)) + lo, 0
    rounding, n = name.rsplit("_", 1)
    n = int(n)
    p = x * y
    q, r = p >> n, p - ((p >> n) << n)
    half = 1 << (n - 1)
    up = {"half_even": r > half or (r == half and q % 2 == 1),
          "half_away": r > half or (r == half and p >= 0),
          "half_up": r >= half,
          "floor": False}[rounding]
    return clamp(q + int(up))


@pytest.mark.parametrize("fmt", [INT4, INT8], ids=lambda f: f.name)
def test_backends_agree_on_every_pair(fmt):
    codes = np.arange(fmt.code.min, fmt.code.max + 1)
    cases = _ops(fmt)
    # numpy backend on all pairs at once
    X, Y = np.meshgrid(codes, codes, indexing="ij")
    numpy_out = {name: f(X, Y, NumpyOps) for name, f in cases}
    # hardware: every case on two operand signals, read as one word per pair
    width = OUT.bits + 2  # value (signed, one spare bit to catch overflow) and flag
    m = Module()
    x, y = Signal(signed(fmt.bits)), Signal(signed(fmt.bits))
    fields = []
    for name, f in cases:
        v, flag = f(x, y, AmaranthOps)
        sv, sf = Signal(signed(width - 1), name=f"v_{name}"), Signal(name=f"f_{name}")
        m.d.comb += [sv.eq(v), sf.eq(flag)]
        fields += [sv, sf]
    word = Signal(len(cases) * width)
    m.d.comb += word.eq(Cat(*fields))
    words = []

    async def tb(ctx):
        for xv in codes:
            ctx.set(x, int(xv))
            for yv in codes:
                ctx.set(y, int(yv))
                words.append(ctx.get(word))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    raw = np.array([[(w >> (i * width)) & ((1 << width) - 1) for i in range(len(cases))] for w in words],
                   dtype=np.int64).reshape(len(codes), len(codes), len(cases))
    value = raw & ((1 << (width - 1)) - 1)
    value = np.where(value >> (width - 2), value - (1 << (width - 1)), value)
    hw_out = {name: (value[:, :, c], (raw[:, :, c] >> (width - 1)).astype(bool)) for c, (name, _) in enumerate(cases)}
    for name, _ in cases:
        nv, nf = numpy_out[name]
        hv, hf = hw_out[name]
        assert np.array_equal(hv, nv), name
        assert np.array_equal(hf, np.broadcast_to(nf, hf.shape)), name
    # and both against plain-Python arithmetic on a sample of pairs (all pairs for INT4)
    step = 1 if fmt.bits == 4 else 17
    for i in range(0, len(codes), step):
        for j in range(0, len(codes), step):
            for name, _ in cases:
                assert (int(numpy_out[name][0][i, j]), int(np.broadcast_to(numpy_out[name][1], X.shape)[i, j])) \
                    == _reference(int(codes[i]), int(codes[j]), name, fmt), (name, codes[i], codes[j])


def test_for_range_is_narrowest():
    assert IntFormat.for_range(-128, 127) == IntFormat(8)
    assert IntFormat.for_range(-128, 128) == IntFormat(9)
    assert IntFormat.for_range(0, 0) == IntFormat(1)
    assert IntFormat.for_range(-16256, 16384).bits == 16  # INT8 products: 128 * 128 = 2**14


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"^integer format width must be an integer between 1 and 256, not 0$"):
        IntFormat(0)
    with pytest.raises(ValueError, match=r"^rounding must be one of half_even, half_away, half_up, floor, not 'up'$"):
        IntFormat(8).rounding_shift(np.int64(3), 1, "up", NumpyOps)


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_int_scale_product_in_logic_matches_numpy(bits):
    """The int scale product, built by AmaranthOps.mul as shift-and-add rows, against numpy: every pair of
    fields up to 4 bits, 2000 random pairs and the extremes of 8-bit fields."""
    fmt = ScaleFormat(bits, "int")
    top = (1 << bits) - 1
    if bits <= 4:
        pairs = [(x, y) for x in range(top + 1) for y in range(top + 1)]
    else:
        rng = np.random.default_rng(bits)
        pairs = [(0, top), (top, top), (top, 1)] + [tuple(map(int, p)) for p in rng.integers(0, top + 1, (2000, 2))]
    sw, sa = Signal(bits), Signal(bits)
    out = Signal(fmt.product_bits)
    m = Module()
    m.d.comb += out.eq(fmt.product(sw, sa, AmaranthOps))
    got = []

    async def tb(ctx):
        for x, y in pairs:
            ctx.set(sw, x)
            ctx.set(sa, y)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    x, y = np.array(pairs).T
    assert np.array_equal(got, fmt.product(x, y, NumpyOps))
