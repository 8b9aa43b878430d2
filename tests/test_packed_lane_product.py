"""PackedLaneProduct (the ECP5 MULT18X18D lane) against the golden lane product on every pair of lane bytes,
after its three register stages."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.sim import Simulator

from qmac.hw.config import ConfigError
from qmac.hw.packed_lane_product import PackedLaneProduct
from qmac.sim.lane_product import lane_product

COPIES = 16  # lanes evaluated side by side, each with a different activation byte
MODES = [(("int8", "int4"), "int8"), (("int8", "int4"), "int4"), (("int8",), "int8"), (("int4",), "int4")]


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def _sweep(modes, mode):
    """Hardware lane result for every (w, a) byte pair, shape (256, 256), read ``latency`` cycles after the
    operands while others follow; in dual-mode lanes every other beat is in the other mode (operands
    0x80, 0x80), so the registered select is checked too."""
    m = Module()
    lanes = [PackedLaneProduct(modes) for _ in range(COPIES)]
    w, a_hi, int4 = Signal(8), Signal(4), Signal()
    bits = lanes[0].format.bits
    for i, lane in enumerate(lanes):
        m.submodules[f"l{i}"] = lane
        m.d.comb += [lane.w.eq(w), lane.a.eq(a_hi * COPIES + i)]
        if len(modes) > 1:
            m.d.comb += lane.int4.eq(int4)
    word = Signal(bits * COPIES)
    m.d.comb += word.eq(Cat(lane.p for lane in lanes))
    out = np.zeros((256, 256), dtype=np.int64)
    dual = len(modes) > 1

    beats = [(wv, hi, True) for wv in range(256) for hi in range(256 // COPIES)]
    if dual:   # the other mode's beat after each: its result must not leak into ours
        beats = [b for beat in beats for b in (beat, (0x80, 8, False))]
    latency = lanes[0].latency

    async def tb(ctx):
        for t in range(len(beats) + latency - 1):
            if t < len(beats):
                wv, hi, ours = beats[t]
                ctx.set(w, wv)
                ctx.set(a_hi, hi)
                ctx.set(int4, (mode == "int4") == ours)
            await ctx.tick()
            if t >= latency - 1 and beats[t - latency + 1][2]:
                wv, hi, _ = beats[t - latency + 1]
                v = ctx.get(word)
                for i in range(COPIES):
                    out[wv, hi * COPIES + i] = _signed((v >> (i * bits)) & ((1 << bits) - 1), bits)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("modes,mode", MODES)
def test_every_byte_pair(modes, mode):
    w, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    got = _sweep(modes, mode)
    assert np.array_equal(got, lane_product(w.astype(np.uint8), a.astype(np.uint8), mode))
    # The extremes, spelled out: -128 * -128, -128 * 127; nibbles -8 * -8 twice; mixed signs.
    if mode == "int8":
        assert got[0x80, 0x80] == 16384 and got[0x80, 0x7F] == -16256 and got[0x7F, 0x7F] == 16129
    else:
        assert got[0x88, 0x88] == 128 and got[0x88, 0x77] == -112 and got[0x8F, 0x71] == -1 * 1 + -8 * 7


def test_latency_and_width():
    assert PackedLaneProduct(("int8", "int4")).latency == 3
    assert PackedLaneProduct(("int4",)).format.bits == 9 and PackedLaneProduct(("int8",)).format.bits == 16


def test_bad_modes():
    with pytest.raises(ConfigError, match="lane modes must be a non-empty tuple of distinct names from int8, int4"):
        PackedLaneProduct(("int2",))
