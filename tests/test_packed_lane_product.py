"""PackedLaneProduct (the ECP5 MULT18X18D lane) against the golden lane product on every pair of lane bytes,
after its five register stages: its portable form in Amaranth's simulator, and its MULT18X18D form (the
Verilog emitted for an ECP5 platform) in Icarus Verilog with a behavioural model of the MULT18X18D written
here."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Signal
from amaranth.sim import Simulator

from qmac.hw.boards import ULX3S_85F
from qmac.hw.config import ConfigError
from qmac.hw.packed_lane_product import MULT18X18D_PARAMETERS, PackedLaneProduct
from qmac.sim.lane_product import lane_product
from qmac.sim.ops import NumpyOps
from qmac.sim.packing import signed_fields

# MULT18X18D as Lattice FPGA-TN-02205 (ECP5 sysDSP Usage Guide) describes the paths a lane may use: the A and
# B inputs, each through its input register when REG_INPUT*_CLK names a clock, a signed (SIGNEDA/SIGNEDB)
# 18x18 multiplier, then the pipeline and output registers when REG_PIPELINE_CLK / REG_OUTPUT_CLK name a
# clock; CLK0 with CE0 (clock enable) and RST0 (synchronous reset, RESETMODE "SYNC"). Anything else (C
# input, cascades, other clocks) is refused with a MODEL line.
MULT18X18D_MODEL = "module MULT18X18D(" + ", ".join(
    [f"A{i}" for i in range(18)] + [f"B{i}" for i in range(18)] + [f"C{i}" for i in range(18)] +
    ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", "CLK0", "CE0", "RST0"] + [f"P{i}" for i in range(36)]) + ");\n" + \
    "".join(f"  input {n};\n" for n in [f"{p}{i}" for p in "ABC" for i in range(18)] +
            ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", "CLK0", "CE0", "RST0"]) + \
    "".join(f"  output P{i};\n" for i in range(36)) + r"""
  parameter REG_INPUTA_CLK = "NONE", REG_INPUTA_CE = "CE0", REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE", REG_INPUTB_CE = "CE0", REG_INPUTB_RST = "RST0";
  parameter REG_PIPELINE_CLK = "NONE", REG_PIPELINE_CE = "CE0", REG_PIPELINE_RST = "RST0";
  parameter REG_OUTPUT_CLK = "NONE", REG_OUTPUT_CE = "CE0", REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED", RESETMODE = "SYNC", MULT_BYPASS = "DISABLED";
  wire [17:0] A = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] B = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
  reg [17:0] a_r, b_r;
  reg [35:0] pipe_r, out_r;
  wire [17:0] a = REG_INPUTA_CLK == "CLK0" ? a_r : A;
  wire [17:0] b = REG_INPUTB_CLK == "CLK0" ? b_r : B;
  wire [35:0] product = $signed({SIGNEDA & a[17], a}) * $signed({SIGNEDB & b[17], b});
  wire [35:0] piped = REG_PIPELINE_CLK == "CLK0" ? pipe_r : product;
  wire [35:0] P = REG_OUTPUT_CLK == "CLK0" ? out_r : piped;
  assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
          P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = P;
  always @(posedge CLK0) if (RST0) begin
    a_r <= 0; b_r <= 0; pipe_r <= 0; out_r <= 0;
  end else if (CE0) begin
    a_r <= A; b_r <= B; pipe_r <= product; out_r <= piped;
  end
  initial begin
    if ({REG_INPUTA_CE, REG_INPUTB_CE, REG_PIPELINE_CE, REG_OUTPUT_CE} != "CE0CE0CE0CE0" ||
        {REG_INPUTA_RST, REG_INPUTB_RST, REG_PIPELINE_RST, REG_OUTPUT_RST} != "RST0RST0RST0RST0" ||
        RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED")
      $display("MODEL: unsupported configuration");
    #1 if ({C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0} !== 18'd0 ||
           SOURCEA !== 1'b0 || SOURCEB !== 1'b0)
      $display("MODEL: C input or shift sources used");
  end
endmodule
"""

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


def _icarus_sweep(modes, mode, icarus_bench):
    """The lane's result for every (w, a), from the MULT18X18D instance the ECP5 build elaborates, beats
    as in :func:`_sweep` (dual-mode lanes alternate with the other mode's beat)."""
    dut = PackedLaneProduct(modes)
    src = verilog.convert(dut, name="lane", platform=ULX3S_85F(), emit_src=False)
    assert "MULT18X18D" in src
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
  lane dut(.clk(clk), .rst(1'b0), .w(w), .a(a), {".int4(int4), " if dual else ""}.p(p));
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
    raw = icarus_bench({"bench.v": bench, "lane.v": src, "model.v": MULT18X18D_MODEL})
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
def test_every_byte_pair_mult18x18d(modes, mode, icarus_bench):
    _check(_icarus_sweep(modes, mode, icarus_bench), mode)


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
