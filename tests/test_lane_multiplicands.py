"""LaneMultiplicands against its stated contract on every pair of payload bytes, in every mode of every build
with W4A8 (the lanes behind it are checked together with it in test_lane_product and test_lane_pair_product)."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.sim import Simulator

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import mode_flags
from qmac.hw.lanes.lane_multiplicands import LaneMultiplicands

BUILDS = [("w4a8",), ("int4", "w4a8"), ("int8", "w4a8"), ("int8", "int4", "w4a8")]


def _contract(x, y, mode):
    """Multiplicand bytes ``(m0, m1)`` for payload bytes ``x = a[2i]``, ``y = a[2i + 1]``, as numbers 0..255."""
    if mode == "int8":
        return x, x
    if mode == "int4":
        nibble = lambda v: ((v & 0xF) ^ 8) - 8   # two's complement INT4 value
        return nibble(x) & 0xFF, nibble(x >> 4) & 0xFF
    return x, y


@pytest.mark.parametrize("modes,mode", [(b, m) for b in BUILDS for m in b])
def test_every_byte_pair(modes, mode):
    """Weight lane ``x`` (of 256) holds payload byte ``x`` in ``a[2x]``; ``a[2x + 1]`` sweeps every byte."""
    m = Module()
    dut = LaneMultiplicands(256, modes)
    m.submodules.dut = dut
    y = Signal(8)
    m.d.comb += dut.a.eq(Cat(Cat(Const(x, 8), y) for x in range(256)))
    for flag in mode_flags(modes):
        m.d.comb += getattr(dut, flag).eq(mode == flag)
    x = np.arange(256)
    failures = []

    async def tb(ctx):
        for yv in range(256):
            ctx.set(y, yv)
            got = np.array([ctx.get(dut.m[j]) for j in range(512)]).reshape(256, 2)
            m0, m1 = _contract(x, np.full_like(x, yv), mode)
            if not (np.array_equal(got[:, 0], m0) and np.array_equal(got[:, 1], m1)):
                failures.append(yv)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert failures == []


def test_contract_spelled_out():
    """The contract itself on a few values: INT4 nibbles 0x8 (-8) and 0x7 (7) of 0x78, and the INT8 byte."""
    assert _contract(0x78, 0x11, "int4") == (0xF8, 0x07)
    assert _contract(0x78, 0x11, "int8") == (0x78, 0x78)
    assert _contract(0x78, 0x11, "w4a8") == (0x78, 0x11)


@pytest.mark.parametrize("lanes", [0, -1, 2.0, True])
def test_bad_lanes(lanes):
    with pytest.raises(ConfigError, match=rf"^lanes must be a positive integer, not {lanes!r}$"):
        LaneMultiplicands(lanes, ("int8", "w4a8"))


@pytest.mark.parametrize("modes", [("int8", "int4"), ("int8",), "w4a8"])
def test_needs_w4a8(modes):
    with pytest.raises(ConfigError, match=r"^lane multiplicands need modes with w4a8, not "):
        LaneMultiplicands(4, modes)
