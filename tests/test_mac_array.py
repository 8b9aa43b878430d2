"""MacArray's tile sequencing in Amaranth's simulator: back-to-back tiles whose mode changes in the very
cycle their first beat arrives still run in that mode (the lanes see int4 through a register)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from qmac.hw.spec.config import PRESETS
from qmac.hw.array.mac_array import MacArray
from qmac.sim.dot_product import dot_product


def _word(vectors):
    """Bytes ``(n, V)`` -> the payload's ``data`` bits (vector ``i``, lane ``j`` at ``8 * (i*V + j)``)."""
    return sum(int(b) << (8 * k) for k, b in enumerate(np.asarray(vectors).reshape(-1)))


@pytest.mark.parametrize("multiplier", ["logic", "mult18", "mult18_fip"])
def test_mode_changes_at_first_beat(multiplier):
    cfg = PRESETS["tiny"].replace(multiplier=multiplier)
    rng = np.random.default_rng(6)
    modes = ["int8", "int4", "int4", "int8", "int4", "int8", "int8"]
    ks = [3, 1, 2, 4, 1, 1, 2]
    tiles = [(mode, rng.integers(0, 256, (k, cfg.rows, cfg.lanes)), rng.integers(0, 256, (k, cfg.cols, cfg.lanes)))
             for mode, k in zip(modes, ks)]
    expected = [[[int(sum(dot_product(w[b, r], a[b, c], mode) for b in range(len(w)))) for c in range(cfg.cols)]
                 for r in range(cfg.rows)] for mode, w, a in tiles]
    dut = MacArray(cfg)
    fired, rows = [], []

    async def producer(ctx):
        ctx.set(dut.w.valid, 1)
        ctx.set(dut.a.valid, 1)
        for mode, w, a in tiles:
            ctx.set(dut.int4, mode == "int4")          # with the first beat, not before
            ctx.set(dut.k_beats_m1, len(w) - 1)
            for b in range(len(w)):
                ctx.set(dut.w.payload.data.as_value(), _word(w[b]))
                ctx.set(dut.a.payload.data.as_value(), _word(a[b]))
                await ctx.tick().until(dut.w.ready)
        ctx.set(dut.w.valid, 0)
        ctx.set(dut.a.valid, 0)

    async def monitor(ctx):
        async for _, _, fire, int4 in ctx.tick().sample(dut.fire, dut.fire_int4):
            if fire:
                fired.append(int4)

    async def consumer(ctx):
        ctx.set(dut.y.ready, 1)
        while len(rows) < len(tiles) * cfg.rows:
            _, _, valid, data = await ctx.tick().sample(dut.y.valid, dut.y.payload.data)
            if valid:
                rows.append([int(v) for v in data])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_process(monitor)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * 300)
    assert rows == [row for tile in expected for row in tile]
    assert fired == [int(mode == "int4") for mode, k in zip(modes, ks) for _ in range(k)]
