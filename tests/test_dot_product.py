"""DotProduct in Amaranth's simulator: exact sums at the stated latency, for every lane kind."""

import numpy as np
import pytest
from amaranth.hdl import Module

from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.lanes.lane_multiplicands import LaneMultiplicands
from qmac.sim.dot_product import dot_product
from qmac.sim.winograd_correction import winograd_correction

#: Each multiplier, with the register stages its lanes add (the rest of the latency is the adder tree's).
LANE_STAGES = {"logic": 0, "logic_pipelined": 1, "sb_mac16": 0, "mult18": 5, "mult18_fip": 6}
CASES = [(4, ("int8", "int4"), 2), (16, ("int8",), 1), (8, ("int4",), 3), (64, ("int8", "int4"), 8),
         (1, ("int8", "int4"), 1), (2, ("int8", "int4"), 1), (2, ("int4",), 2)]


@pytest.mark.parametrize("lanes,modes,levels,multiplier", [
    case + (multiplier,) for multiplier in LANE_STAGES for case in CASES
    if multiplier != "mult18_fip" or 2 <= case[0] <= 16])
def test_pipelined_sums(lanes, modes, levels, multiplier, pysim_stream):
    rng = np.random.default_rng(lanes)
    dut = DotProduct(lanes, modes, levels, multiplier=multiplier)
    n = 40
    w = rng.integers(0, 256, (n, lanes)).astype(np.uint8)
    a = rng.integers(0, 256, (n, lanes)).astype(np.uint8)
    w[0], a[0] = 0x80, 0x80  # most negative codes everywhere: the largest sum
    w[1], a[1] = 0x80, 0x7F  # the most negative sum
    w[2], a[2] = 0x88, 0x88  # INT4: -8 * -8 in every element
    w[3], a[3] = 0x88, 0x77
    int4 = rng.integers(0, 2, n) if len(modes) > 1 else np.full(n, modes == ("int4",))
    mode = np.where(int4, "int4", "int8")
    beats = [[(dut.w.as_value(), int.from_bytes(w[t].tobytes(), "little")),
              (dut.a.as_value(), int.from_bytes(a[t].tobytes(), "little"))]
             + ([(dut.int4, int(int4[t]))] if len(modes) > 1 else []) for t in range(n)]
    if multiplier == "mult18_fip":   # the corrections, presented correction_delay cycles after the operands
        beats += [[] for _ in range(dut.correction_delay)]
        for t in range(n):
            beats[t + dut.correction_delay] += [(dut.ca, int(winograd_correction(a[t], mode[t]))),
                                                (dut.cw, int(winograd_correction(w[t], mode[t])))]
    got = pysim_stream(dut, beats, dut.sum)[:n]
    assert got == [int(dot_product(w[t], a[t], mode[t])) for t in range(n)]
    assert dut.latency == 1 + LANE_STAGES[multiplier] + -(-int(np.log2(lanes)) // levels)


def test_bad_lanes():
    with pytest.raises(ConfigError, match=r"^dot-product lanes must be one of 1, 2, 4, 8, 16, 32, 64, not 3$"):
        DotProduct(3, ("int8",))


def test_bad_multiplier():
    with pytest.raises(ConfigError, match=r"^multiplier must be one of logic, logic_pipelined, sb_mac16, mult18, "
                                          r"mult18_fip, not 'dsp'$"):
        DotProduct(4, ("int8",), multiplier="dsp")


def test_mult18_fip_needs_lane_pairs():
    with pytest.raises(ConfigError, match=r"^dot-product lanes must be at least 2 with the mult18_fip multiplier, "
                                          r"not 1$"):
        DotProduct(1, ("int8",), multiplier="mult18_fip")


@pytest.mark.parametrize("multiplier", ["mult18", "mult18_fip"])
def test_w4a8_needs_logic_lanes(multiplier):
    with pytest.raises(ConfigError, match=rf"^multiplier must be one of logic, logic_pipelined, sb_mac16 with mode w4a8, "
                                          rf"not '{multiplier}'$"):
        DotProduct(4, ("int8", "w4a8"), multiplier=multiplier)


@pytest.mark.parametrize("lanes,modes,levels,multiplier", [(4, ("int8", "int4", "w4a8"), 1, "logic"),
                                                           (8, ("w4a8",), 2, "logic_pipelined"),
                                                           (2, ("int4", "w4a8"), 1, "logic"),
                                                           (4, ("int8", "int4", "w4a8"), 2, "sb_mac16"),
                                                           (2, ("w4a8",), 1, "sb_mac16")])
def test_w4a8_pipelined_sums(lanes, modes, levels, multiplier, pysim_stream):
    """Every built mode at random per cycle, the W4A8 extremes (-8 x -128, -8 x 127) included: lane ``i``
    meets payload activation lanes ``2i``, ``2i + 1`` in W4A8 mode and lane ``2i`` otherwise, through the
    :class:`LaneMultiplicands` an array column puts in front of its units."""
    rng = np.random.default_rng(lanes)
    dot = DotProduct(lanes, modes, levels, multiplier=multiplier)
    mult = LaneMultiplicands(lanes, modes)
    dut = Module()
    dut.submodules.dot, dut.submodules.mult = dot, mult
    dut.d.comb += dot.a.eq(mult.m)
    dut.latency = dot.latency
    n = 40
    w = rng.integers(0, 256, (n, lanes)).astype(np.uint8)
    a = rng.integers(0, 256, (n, 2 * lanes)).astype(np.uint8)
    w[0], a[0] = 0x88, 0x80
    w[1], a[1] = 0x88, 0x7F
    mode = rng.choice(modes, n)
    mode[:2] = "w4a8"
    flags = [f for f in modes[1:]]
    beats = [[(dot.w.as_value(), int.from_bytes(w[t].tobytes(), "little")),
              (mult.a.as_value(), int.from_bytes(a[t].tobytes(), "little"))]
             + [(getattr(u, f), int(mode[t] == f)) for f in flags for u in (dot, mult)] for t in range(n)]
    got = pysim_stream(dut, beats, dot.sum)[:n]
    assert got == [int(dot_product(w[t], a[t] if mode[t] == "w4a8" else a[t, ::2], mode[t])) for t in range(n)]
    assert got[0] == lanes * 2048 and got[1] == lanes * 2 * -8 * 127


@pytest.mark.parametrize("multiplier", LANE_STAGES)
def test_config_latency_matches(multiplier):
    cfg = CoreConfig(rows=1, cols=1, lanes=16, tree_levels_per_stage=1, multiplier=multiplier)
    assert cfg.dot_latency == DotProduct(16, cfg.modes, 1, multiplier=multiplier).latency
