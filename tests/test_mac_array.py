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


def _stream_tiles(cfg, tiles, ready_rng=None):
    """Stream ``tiles`` (``(w, a)`` byte arrays of shape ``(k, rows or cols, lanes)``, INT8) back to back into a
    MacArray of ``cfg``; the consumer is ready every cycle, or with probability 1/2 per cycle from ``ready_rng``.
    Returns the result rows in order, the cycles (from 0) in which beats were taken and the cycle of the last
    result row."""
    dut = MacArray(cfg)
    fired, rows, last_row = [], [], []

    async def producer(ctx):
        ctx.set(dut.w.valid, 1)
        ctx.set(dut.a.valid, 1)
        for w, a in tiles:
            ctx.set(dut.k_beats_m1, len(w) - 1)
            for b in range(len(w)):
                ctx.set(dut.w.payload.data.as_value(), _word(w[b]))
                ctx.set(dut.a.payload.data.as_value(), _word(a[b]))
                await ctx.tick().until(dut.w.ready)
        ctx.set(dut.w.valid, 0)
        ctx.set(dut.a.valid, 0)

    async def monitor(ctx):
        cycle = 0
        async for _, _, fire, y in ctx.tick().sample(dut.fire, dut.y.valid & dut.y.ready):
            if fire:
                fired.append(cycle)
            if y:
                last_row[:] = [cycle]
            cycle += 1

    async def consumer(ctx):
        while len(rows) < len(tiles) * cfg.rows:
            ready = 1 if ready_rng is None else int(ready_rng.integers(2))
            ctx.set(dut.y.ready, ready)
            _, _, valid, data = await ctx.tick().sample(dut.y.valid, dut.y.payload.data)
            if valid and ready:
                rows.append([int(v) for v in data])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_process(monitor)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * 2000)
    return rows, fired, last_row[0]


def _tiles(cfg, rng, ks):
    return [(rng.integers(0, 256, (k, cfg.rows, cfg.lanes)), rng.integers(0, 256, (k, cfg.cols, cfg.lanes)))
            for k in ks]


def _expected(cfg, tiles):
    return [[int(sum(dot_product(w[b, r], a[b, c], "int8") for b in range(len(w)))) for c in range(cfg.cols)]
            for w, a in tiles for r in range(cfg.rows)]


@pytest.mark.parametrize("shadow_banks,rows,bound", [(1, 2, 5), (1, 4, 7), (2, 2, 3), (2, 4, 4), (2, 8, 8)])
def test_streaming_tile_beats(shadow_banks, rows, bound):
    """Six tiles of ``streaming_tile_beats`` beats stream at a beat per cycle, their last row leaving
    ``dot_latency + rows`` cycles after their last beat; one beat shorter, they take longer (a last beat waits
    for a bank, or the rows fall behind). (``bound`` is worked out by hand: dot_latency 2; one bank:
    2 + rows + 1; two banks: the larger of rows and half of that, rounded up.)"""
    cfg = PRESETS["tiny"].replace(modes=("int8",), rows=rows, shadow_banks=shadow_banks)
    assert cfg.dot_latency == 2 and cfg.streaming_tile_beats == bound
    rng = np.random.default_rng(rows)
    for k in (bound - 1, bound):
        tiles = _tiles(cfg, rng, [k] * 6)
        rows_out, fired, last_row = _stream_tiles(cfg, tiles)
        assert rows_out == _expected(cfg, tiles)
        streamed = last_row - fired[0] == 6 * k - 1 + cfg.dot_latency + rows
        assert streamed == (k == bound), (k, fired, last_row)
        if streamed:
            assert fired == list(range(fired[0], fired[0] + 6 * k))


@pytest.mark.parametrize("shadow_banks", [1, 2])
def test_short_tiles_with_stalls(shadow_banks):
    """Tiles of 1 to 5 beats with a consumer that is ready half the time: every row arrives, in order, exact."""
    cfg = PRESETS["tiny"].replace(modes=("int8",), shadow_banks=shadow_banks)
    rng = np.random.default_rng(11)
    tiles = _tiles(cfg, rng, rng.integers(1, 6, 12))
    rows_out, _, _ = _stream_tiles(cfg, tiles, np.random.default_rng(12))
    assert rows_out == _expected(cfg, tiles)
