"""PackedLaneProduct (the ECP5 MULT18X18D lane) against the golden lane product on every pair of lane bytes,
after its five register stages: its portable form in Amaranth's simulator, and its MULT18X18D form (the
Verilog emitted for an ECP5 platform) in Icarus Verilog with the behavioural MULT18X18D model of
``conftest.py``."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.sim import Simulator

from qmac.hw.spec.config import ConfigError
from qmac.hw.lanes.mult18 import MULT18X18D_PARAMETERS
from qmac.hw.lanes.packed_lane_product import PackedLaneProduct
from qmac.sim.lane_product import lane_product
from qmac.sim.ops import NumpyOps
from qmac.sim.packing import signed_fields

COPIES = 16  # lanes evaluated side by side, each with a different activation byte
MODES = [(("int8", "int4"), "int8"), (("int8", "int4"), "int4"), (("int8",), "int8"), (("int4",), "int4")]


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
                out[wv, hi * COPIES:(hi + 1) * COPIES] = signed_fields(ctx.get(word), COPIES, bits)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


def _icarus_sweep(modes, mode, mult18x18d_bench):
    """The lane's result for every (w, a), from the MULT18X18D instance the ECP5 build elaborates, beats
    as in :func:`_sweep` (dual-mode lanes alternate with the other mode's beat)."""
    dut = PackedLaneProduct(modes)
    bits, dual = dut.format.bits, len(modes) > 1
    step = 2 if dual else 1
    beats = 65536 * step
    ours = int(mode == "int4")
    bench = f"""
module bench;
  reg clk = 0;
  reg [7:0] w, a;
  reg int4;
  wire [{bits - 1}:0] p;
  integer t, f;
  dut lane(.clk(clk), .rst(1'b0), .w(w), .a(a), {".int4(int4), " if dual else ""}.p(p));
  initial begin
    f = $fopen("out.txt", "w");
    for (t = 0; t < {beats + 4}; t = t + 1) begin
      if (t % {step} == 0) begin w = t / {step} / 256; a = t / {step} % 256; int4 = {ours}; end
      else begin w = 8'h80; a = 8'h80; int4 = {1 - ours}; end
      #1 clk = 1; #1 clk = 0;
      if (t >= 4 && (t - 4) % {step} == 0) $fwrite(f, "%0d\\n", p);
    end
    $fclose(f); $finish;
  end
endmodule
"""
    raw = mult18x18d_bench(dut, {"bench.v": bench})
    return NumpyOps.wrap(raw.reshape(256, 256), bits, True)


def _check(got, mode):
    w, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    assert np.array_equal(got, lane_product(w.astype(np.uint8), a.astype(np.uint8), mode))
    # The extremes, spelled out: -128 * -128, -128 * 127; nibbles -8 * -8 twice; mixed signs.
    if mode == "int8":
        assert got[0x80, 0x80] == 16384 and got[0x80, 0x7F] == -16256 and got[0x7F, 0x7F] == 16129
    else:
        assert got[0x88, 0x88] == 128 and got[0x88, 0x77] == -112 and got[0x8F, 0x71] == -1 * 1 + -8 * 7


@pytest.mark.parametrize("modes,mode", MODES)
def test_every_byte_pair(modes, mode):
    _check(_sweep(modes, mode), mode)


@pytest.mark.parametrize("modes,mode", MODES)
def test_every_byte_pair_mult18x18d(modes, mode, mult18x18d_bench):
    _check(_icarus_sweep(modes, mode, mult18x18d_bench), mode)


def test_mult18x18d_configuration():
    """Input, pipeline and output registers on CLK0, always enabled, no global set/reset: three of the lane's
    five register stages are the multiplier's own."""
    for reg in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
        assert MULT18X18D_PARAMETERS[f"REG_{reg}_CLK"] == "CLK0"
    assert MULT18X18D_PARAMETERS["GSR"] == "DISABLED"


def test_latency_and_width():
    assert PackedLaneProduct(("int8", "int4")).latency == 5
    assert PackedLaneProduct(("int4",)).format.bits == 9 and PackedLaneProduct(("int8",)).format.bits == 16


def test_bad_modes():
    with pytest.raises(ConfigError, match="lane modes must be a non-empty tuple of distinct names from int8, int4"):
        PackedLaneProduct(("int2",))


def test_w4a8_refused():
    with pytest.raises(ConfigError, match=r"^PackedLaneProduct modes must be a subset of int8, int4 \(it cannot compute "
                                          r"w4a8\), not \('int8', 'w4a8'\)$"):
        PackedLaneProduct(("int8", "w4a8"))
