"""The Core elaborated with real MacUnit components (the path Amaranth's simulator and the board builds
use) against the golden model, in Amaranth's simulator; the cocotb suite covers the emitted Verilog."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from qmac.hw.spec.config import MODE_CODES, PRESETS, CoreConfig
from qmac.hw.array.core import Core
from qmac.sim.gemm import expected_results, operand_beats, plan_gemm, random_operands
from qmac.sim.packing import unpack_result


#: Configs that are not presets: W4A8 alone with pow2 scales; LNS8 F = 4 summed in a 12-bit window.
EXTRA = {
    "w4a8-vsq-pow2": CoreConfig(rows=2, cols=2, lanes=8, modes=("w4a8",), max_k=1024, scale_bits=3,
                                scale_kind="pow2", scale_lanes=4),
    "lns8f4-window": CoreConfig(rows=2, cols=2, lanes=4, modes=("lns8",), max_k=256, frac_bits=4, scale_bits=6,
                                scale_kind="log", scale_lanes=2, bucket_fraction_bits=0, mantissa_bits=8,
                                window_bits=12),
}


@pytest.mark.parametrize("name,mode,multiplier", [
    ("tiny", "int8", "logic"), ("tiny", "int4", "logic"), ("tiny-vsq", "int4", "logic"),
    ("tiny-lns8", "lns8", "logic"), ("tiny-lns4-vsq", "lns4", "logic"),
    ("tiny", "int8", "mult18_fip"), ("tiny", "int4", "mult18_fip"), ("tiny-vsq", "int8", "mult18_fip"),
    ("tiny-w4a8", "w4a8", "logic"), ("tiny-w4a8", "int8", "logic"), ("tiny-w4a8", "int4", "logic_pipelined"),
    ("w4a8-vsq-pow2", "w4a8", "logic_pipelined"), ("lns8f4-window", "lns8", "logic")])
def test_core_components_match_golden(name, mode, multiplier):
    cfg = {**PRESETS, **EXTRA}[name].replace(multiplier=multiplier)
    rng = np.random.default_rng(2)
    plan = plan_gemm(cfg, mode, (3, 19), (19, 3))
    W, A, *scales = random_operands(plan, rng)
    w_words, a_words = operand_beats(plan, W, A, *scales)
    dut = Core(cfg)
    rows = []

    async def producer(ctx):
        ctx.set(dut.ctrl.mode, MODE_CODES[mode])
        ctx.set(dut.ctrl.k_beats_m1, plan.k_beats - 1)
        for w, a in zip(w_words, a_words):
            ctx.set(dut.w.payload.as_value(), w)
            ctx.set(dut.a.payload.as_value(), a)
            ctx.set(dut.w.valid, 1)
            ctx.set(dut.a.valid, 1)
            await ctx.tick().until(dut.w.ready)
        ctx.set(dut.w.valid, 0)
        ctx.set(dut.a.valid, 0)

    async def consumer(ctx):
        ctx.set(dut.y.ready, 1)
        while len(rows) < plan.tiles * cfg.rows:
            _, _, valid, payload = await ctx.tick().sample(dut.y.valid, dut.y.payload.as_value())
            if valid:
                rows.append(unpack_result(payload, cfg))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * 2000)
    assert rows == expected_results(plan, W, A, *scales)
