"""DotProduct in Amaranth's simulator: exact sums at the stated latency, for every lane kind."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from qmac.hw.config import ConfigError, CoreConfig
from qmac.hw.dot_product import DotProduct
from qmac.sim.dot_product import dot_product


@pytest.mark.parametrize("multiplier", ["logic", "sb_mac16", "mult18"])
@pytest.mark.parametrize("lanes,modes,levels", [(4, ("int8", "int4"), 2), (16, ("int8",), 1),
                                                 (8, ("int4",), 3), (64, ("int8", "int4"), 8),
                                                 (1, ("int8", "int4"), 1)])
def test_pipelined_sums(lanes, modes, levels, multiplier):
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
    got = []

    async def tb(ctx):
        for t in range(n + dut.latency):
            if t < n:
                for i in range(lanes):
                    ctx.set(dut.w[i], int(w[t, i]))
                    ctx.set(dut.a[i], int(a[t, i]))
                if len(modes) > 1:
                    ctx.set(dut.int4, int(int4[t]))
            await ctx.tick()
            got.append(ctx.get(dut.sum))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    expected = [int(dot_product(w[t], a[t], "int4" if int4[t] else "int8")) for t in range(n)]
    assert got[dut.latency - 1:dut.latency - 1 + n] == expected
    assert dut.latency == 1 + 5 * (multiplier == "mult18") + -(-int(np.log2(lanes)) // levels)


def test_bad_lanes():
    with pytest.raises(ConfigError, match=r"^dot-product lanes must be one of 1, 2, 4, 8, 16, 32, 64, not 3$"):
        DotProduct(3, ("int8",))


def test_bad_multiplier():
    with pytest.raises(ConfigError, match=r"^multiplier must be one of logic, sb_mac16, mult18, not 'dsp'$"):
        DotProduct(4, ("int8",), multiplier="dsp")


@pytest.mark.parametrize("multiplier", ["logic", "sb_mac16", "mult18"])
def test_config_latency_matches(multiplier):
    cfg = CoreConfig(rows=1, cols=1, lanes=16, tree_levels_per_stage=1, multiplier=multiplier)
    assert cfg.dot_latency == DotProduct(16, cfg.modes, 1, multiplier=multiplier).latency
