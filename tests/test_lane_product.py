"""LaneProduct and PipelinedLaneProduct against their golden twin on every pair of lane bytes (all INT8 pairs;
all INT4 quadruples; W4A8: every weight byte with every value of each INT8 activation, the other one fixed)."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.sim import Simulator

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import mode_flags
from qmac.hw.lanes.lane_multiplicands import LaneMultiplicands
from qmac.hw.lanes.lane_product import LaneProduct
from qmac.hw.lanes.pipelined_lane_product import PipelinedLaneProduct
from qmac.sim.lane_product import lane_product
from qmac.sim.packing import signed_fields

COPIES = 16  # lanes evaluated side by side, each with a different activation byte


def _sweep(lane_class, modes, mode, other=None):
    """Hardware lane result for every (w, a) byte pair, shape (256, 256); a pipelined lane's one clock
    edge after its operands (and the mode) are set. A lane with W4A8 built has two activation bytes: the
    swept one is ``a0`` and ``a1`` is 0 when ``other`` is None; else ``other = (position, byte)`` fixes
    byte ``position`` (0: ``a0``, 1: ``a1``) and the sweep drives the other. Such a lane reads them through
    the :class:`LaneMultiplicands` its array column has (the two together are checked)."""
    m = Module()
    lanes = [lane_class(modes) for _ in range(COPIES)]
    w = Signal(8)
    bits = lanes[0].format.bits
    for i, lane in enumerate(lanes):
        m.submodules[f"l{i}"] = lane
        m.d.comb += lane.w.eq(w)
        for flag in mode_flags(modes):
            m.d.comb += getattr(lane, flag).eq(mode == flag)
    a_hi = Signal(4)
    for i, lane in enumerate(lanes):
        swept = (a_hi * COPIES + i)[:8]
        if other is None:
            payload = swept
        else:
            payload = Cat(Const(other[1], 8), swept) if other[0] == 0 else Cat(swept, Const(other[1], 8))
        if "w4a8" in modes:
            m.submodules[f"m{i}"] = mult = LaneMultiplicands(1, modes)
            m.d.comb += [mult.a.eq(payload), lane.a.eq(mult.m)]
            for flag in mode_flags(modes):
                m.d.comb += getattr(mult, flag).eq(mode == flag)
        else:
            m.d.comb += lane.a.eq(payload)
    word = Signal(bits * COPIES)
    m.d.comb += word.eq(Cat(lane.p for lane in lanes))
    out = np.zeros((256, 256), dtype=np.int64)

    async def tb(ctx):
        for wv in range(256):
            ctx.set(w, wv)
            for hi in range(256 // COPIES):
                ctx.set(a_hi, hi)
                if lane_class.STAGES:
                    await ctx.tick()
                out[wv, hi * COPIES:(hi + 1) * COPIES] = signed_fields(ctx.get(word), COPIES, bits)

    sim = Simulator(m)
    if lane_class.STAGES:
        sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("lane_class", [LaneProduct, PipelinedLaneProduct])
@pytest.mark.parametrize("modes,mode", [(("int8", "int4"), "int8"), (("int8", "int4"), "int4"),
                                        (("int8",), "int8"), (("int4",), "int4")])
def test_every_byte_pair(lane_class, modes, mode):
    w, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    expected = lane_product(w.astype(np.uint8), a.astype(np.uint8), mode)
    assert np.array_equal(_sweep(lane_class, modes, mode), expected)


@pytest.mark.parametrize("lane_class", [LaneProduct, PipelinedLaneProduct])
@pytest.mark.parametrize("modes,mode", [(("int8", "int4", "w4a8"), "int8"), (("int8", "int4", "w4a8"), "int4"),
                                        (("int4", "w4a8"), "int4"), (("int8", "w4a8"), "int8")])
def test_every_byte_pair_beside_w4a8(lane_class, modes, mode):
    """INT8 and INT4 on lanes that also build W4A8 (two payload activation bytes; the second ignored)."""
    w, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    expected = lane_product(w.astype(np.uint8), a.astype(np.uint8), mode)
    assert np.array_equal(_sweep(lane_class, modes, mode, other=(1, 0xA5)), expected)


@pytest.mark.parametrize("lane_class", [LaneProduct, PipelinedLaneProduct])
@pytest.mark.parametrize("modes", [("w4a8",), ("int8", "int4", "w4a8"), ("int4", "w4a8"), ("int8", "w4a8")])
@pytest.mark.parametrize("other", [(0, 0x80), (1, 0x7F)])
def test_w4a8_every_weight_and_activation(lane_class, modes, other):
    """W4A8: every weight byte against every value of one activation, the other at an extreme or small
    value (the lane is a sum of the two halves' products, so each half is swept completely)."""
    w, swept = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    fixed = np.full_like(swept, other[1])
    a = np.stack([fixed, swept] if other[0] == 0 else [swept, fixed], axis=-1)
    expected = lane_product(w.astype(np.uint8), a.astype(np.uint8), "w4a8")
    assert np.array_equal(_sweep(lane_class, modes, "w4a8", other), expected)


def test_pipelined_latency():
    assert LaneProduct.STAGES == 0 and PipelinedLaneProduct(("int8",)).latency == PipelinedLaneProduct.STAGES == 1


def test_golden_twin_from_definition():
    # 0x8F: INT8 -113; INT4 nibbles (low first) -1, -8.  0x71: INT8 113; nibbles 1, 7.
    assert lane_product(np.uint8(0x8F), np.uint8(0x71), "int8") == -113 * 113
    assert lane_product(np.uint8(0x8F), np.uint8(0x71), "int4") == -1 * 1 + -8 * 7
    assert lane_product(np.uint8(0x88), np.uint8(0x88), "int4") == 64 + 64
    # W4A8: weights -1, -8 (0x8F) against INT8 activations 0x80 (-128) and 0x71 (113).
    assert lane_product(np.uint8(0x8F), np.array([0x80, 0x71], dtype=np.uint8), "w4a8") == 128 - 8 * 113
    assert lane_product(np.uint8(0x88), np.array([0x80, 0x80], dtype=np.uint8), "w4a8") == 2048


@pytest.mark.parametrize("modes", [(), ("int2",), ("int8", "int8"), ["int8"]])
def test_bad_modes(modes):
    with pytest.raises(ConfigError, match="lane modes must be a non-empty tuple of distinct names from int8, int4"):
        LaneProduct(modes)


def test_result_width_is_the_exact_range():
    assert LaneProduct(("int8",)).format.bits == 16   # [-16256, 16384]
    assert LaneProduct(("int4",)).format.bits == 9    # [-112, 128]
    assert LaneProduct(("int8", "int4")).format.bits == 16
    assert LaneProduct(("w4a8",)).format.bits == 13   # [-2032, 2048]
    assert LaneProduct(("int8", "int4", "w4a8")).format.bits == 16
