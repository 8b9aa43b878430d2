"""LanePairProduct (two lanes on one iCE40 SB_MAC16) against the golden lane product on every pair of lane
bytes: its portable form in Amaranth's simulator, and its SB_MAC16 form (the Verilog emitted for an iCE40
platform) in Icarus Verilog with a behavioural model of the SB_MAC16 written here."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.sim import Simulator

from qmac.hw.boards import ICEBreaker
from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import mode_flags
from qmac.hw.lanes.lane_multiplicands import LaneMultiplicands
from qmac.hw.lanes.lane_pair_product import LanePairProduct, sb_mac16_parameters
from qmac.sim.lane_product import lane_product
from qmac.sim.ops import NumpyOps
from qmac.sim.packing import signed_fields

MODES = [(("int8", "int4"), "int8"), (("int8", "int4"), "int4"), (("int8",), "int8"), (("int4",), "int4"),
         (("w4a8",), "w4a8"), (("int8", "int4", "w4a8"), "w4a8"), (("int8", "int4", "w4a8"), "int8"),
         (("int4", "w4a8"), "int4")]
#: W4A8 builds take two payload activation bytes per lane (through the column's LaneMultiplicands): lane 0 sweeps
#: a0 with a1 fixed at this byte, lane 1 sweeps a1 with a0 fixed; the other modes read the low byte only, so there
#: both lanes sweep it.
FIXED = (0x80, 0x7F)
COPIES = 8  # pairs side by side in the Amaranth sweep

# The combinational paths of SB_MAC16 (Lattice iCE Technology Library, "SB_MAC16"; Lattice TN1295, DSP
# Function Usage Guide for iCE40 Devices), the ones a lane may use. Per half (top: A[15:8], B[15:8], C ->
# O[31:16]; bottom: A[7:0], B[7:0], D -> O[15:0]) the 8x8 multiplier's product F (top) or G (bottom) is
# signed when A_SIGNED / B_SIGNED are set (in MODE_8x8 the low bytes too); the adder adds its lower input
# (*ADDSUB_LOWERINPUT: 0 = A or B, 1 = the 8x8 product, 2 = the 16x16 product's half, 3 = sign fill) to its
# upper input (*ADDSUB_UPPERINPUT: 0 = the accumulator register, 1 = C or D) and a carry
# (*ADDSUB_CARRYSELECT: 0 = none, 1 = one); *OUTPUT_SELECT picks the half: 0 = adder, 1 = registered
# adder, 2 = 8x8 product, 3 = 16x16 product half. Anything registered or cascaded is refused here.
SB_MAC16_MODEL = r"""
module SB_MAC16 (input CLK, CE, input [15:0] C, A, B, D, input AHOLD, BHOLD, CHOLD, DHOLD,
                 input IRSTTOP, IRSTBOT, ORSTTOP, ORSTBOT, OLOADTOP, OLOADBOT, ADDSUBTOP, ADDSUBBOT,
                 input OHOLDTOP, OHOLDBOT, CI, ACCUMCI, SIGNEXTIN,
                 output [31:0] O, output CO, ACCUMCO, SIGNEXTOUT);
  parameter [0:0] NEG_TRIGGER = 0, C_REG = 0, A_REG = 0, B_REG = 0, D_REG = 0;
  parameter [0:0] TOP_8x8_MULT_REG = 0, BOT_8x8_MULT_REG = 0;
  parameter [0:0] PIPELINE_16x16_MULT_REG1 = 0, PIPELINE_16x16_MULT_REG2 = 0;
  parameter [1:0] TOPOUTPUT_SELECT = 0, TOPADDSUB_LOWERINPUT = 0, TOPADDSUB_CARRYSELECT = 0;
  parameter [0:0] TOPADDSUB_UPPERINPUT = 0;
  parameter [1:0] BOTOUTPUT_SELECT = 0, BOTADDSUB_LOWERINPUT = 0, BOTADDSUB_CARRYSELECT = 0;
  parameter [0:0] BOTADDSUB_UPPERINPUT = 0;
  parameter [0:0] MODE_8x8 = 0, A_SIGNED = 0, B_SIGNED = 0;
  initial begin
    if (C_REG | A_REG | B_REG | D_REG | TOP_8x8_MULT_REG | BOT_8x8_MULT_REG | PIPELINE_16x16_MULT_REG1
        | PIPELINE_16x16_MULT_REG2 | !MODE_8x8 | TOPOUTPUT_SELECT == 1 || TOPOUTPUT_SELECT == 3
        || BOTOUTPUT_SELECT == 1 || BOTOUTPUT_SELECT == 3 || TOPADDSUB_LOWERINPUT >= 2
        || BOTADDSUB_LOWERINPUT >= 2 || !TOPADDSUB_UPPERINPUT || !BOTADDSUB_UPPERINPUT
        || TOPADDSUB_CARRYSELECT >= 2 || BOTADDSUB_CARRYSELECT >= 2) begin
      $display("MODEL: configuration outside this model"); $fatal(1);
    end
  end
  wire [15:0] Ah = {{8{A_SIGNED & A[15]}}, A[15:8]}, Al = {{8{A_SIGNED & A[7]}}, A[7:0]};
  wire [15:0] Bh = {{8{B_SIGNED & B[15]}}, B[15:8]}, Bl = {{8{B_SIGNED & B[7]}}, B[7:0]};
  wire [15:0] F = Ah * Bh, G = Al * Bl;
  wire [15:0] top_x = TOPADDSUB_LOWERINPUT == 0 ? A : F, bot_z = BOTADDSUB_LOWERINPUT == 0 ? B : G;
  wire [15:0] top_sum = top_x + (C ^ {16{ADDSUBTOP}}) + TOPADDSUB_CARRYSELECT[0];
  wire [15:0] bot_sum = bot_z + (D ^ {16{ADDSUBBOT}}) + BOTADDSUB_CARRYSELECT[0];
  assign O = {TOPOUTPUT_SELECT == 2 ? F : top_sum ^ {16{ADDSUBTOP}},
              BOTOUTPUT_SELECT == 2 ? G : bot_sum ^ {16{ADDSUBBOT}}};
  assign CO = 0, ACCUMCO = 0, SIGNEXTOUT = 0;
endmodule
"""


def _expected(mode):
    """Golden lane results for lane 0 = (w, a) and lane 1 = (~w, a ^ 0x5A), each of shape (256, 256); in W4A8
    mode lane 0's activations are (a, FIXED[0]) and lane 1's (FIXED[1], a ^ 0x5A)."""
    w, a = (x.astype(np.uint8) for x in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    a1 = a ^ 0x5A
    if mode == "w4a8":
        return (lane_product(w, np.stack([a, np.full_like(a, FIXED[0])], axis=-1), mode),
                lane_product(~w, np.stack([np.full_like(a, FIXED[1]), a1], axis=-1), mode))
    return lane_product(w, a, mode), lane_product(~w, a1, mode)


def _wide(modes):
    """Whether the lanes take two activation bytes (W4A8 built)."""
    return "w4a8" in modes


def _amaranth_sweep(modes, mode):
    m = Module()
    pairs = [LanePairProduct(modes) for _ in range(COPIES)]
    w, a_hi = Signal(8), Signal(5)
    bits = pairs[0].format.bits
    for i, pair in enumerate(pairs):
        m.submodules[f"p{i}"] = pair
        a = a_hi * COPIES + i
        a0, a1 = a[:8], (a ^ 0x5A)[:8]
        if _wide(modes):
            a0 = Cat(a0, Const(FIXED[0], 8))
            a1 = Cat(Const(FIXED[1], 8), a1) if mode == "w4a8" else Cat(a1, Const(FIXED[1], 8))
            m.submodules[f"m{i}"] = mult = LaneMultiplicands(2, modes)   # as the array column has
            m.d.comb += mult.a.eq(Cat(a0, a1))
            a0, a1 = Cat(mult.m[0], mult.m[1]), Cat(mult.m[2], mult.m[3])
            for flag in mode_flags(modes):
                m.d.comb += getattr(mult, flag).eq(mode == flag)
        m.d.comb += [pair.w[0].eq(w), pair.a[0].eq(a0), pair.w[1].eq(~w), pair.a[1].eq(a1)]
        for flag in mode_flags(modes):
            m.d.comb += getattr(pair, flag).eq(mode == flag)
    word = Signal(2 * bits * COPIES)
    m.d.comb += word.eq(Cat(Cat(pair.p[0], pair.p[1]) for pair in pairs))
    out = np.zeros((2, 256, 256), dtype=np.int64)

    async def tb(ctx):
        for wv in range(256):
            ctx.set(w, wv)
            for hi in range(256 // COPIES):
                ctx.set(a_hi, hi)
                fields = signed_fields(ctx.get(word), 2 * COPIES, bits)   # (pair i, lane j) at 2i + j
                out[:, wv, hi * COPIES:(hi + 1) * COPIES] = np.reshape(fields, (COPIES, 2)).T

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("modes,mode", MODES)
def test_every_byte_pair_portable(modes, mode):
    got = _amaranth_sweep(modes, mode)
    low, high = _expected(mode)
    assert np.array_equal(got[0], low) and np.array_equal(got[1], high)


def _icarus_sweep(modes, mode, icarus_bench):
    """Both lanes' results for every (w, a), from the SB_MAC16 instance the iCE40 build elaborates."""
    dut = LanePairProduct(modes)
    src = verilog.convert(dut, name="pair", platform=ICEBreaker(), emit_src=False)
    assert "SB_MAC16" in src
    bits = dut.format.bits
    flags = "".join(f".{f}({int(mode == f)}), " for f in mode_flags(modes))
    lane1 = f"a ^ 8'h5a, 8'd{FIXED[1]}" if mode == "w4a8" else f"8'd{FIXED[1]}, a ^ 8'h5a"
    sources = {"pair.v": src, "model.v": SB_MAC16_MODEL}
    if _wide(modes):   # the payload's bytes through the multiplicands an array column forms
        acts = "mm"
        sources["mult.v"] = verilog.convert(LaneMultiplicands(2, modes), name="mult", emit_src=False)
        mult = f"wire [31:0] mm;\n  mult m({flags}.a({{{lane1}, 8'd{FIXED[0]}, a}}), .m(mm));"
    else:
        acts, mult = "{a ^ 8'h5a, a}", ""
    bench = f"""
module bench;
  reg [7:0] w, a;
  wire [{2 * bits - 1}:0] p;
  integer i, f;
  {mult}
  pair dut({flags}.w({{~w, w}}), .a({acts}), .p(p));
  initial begin
    f = $fopen("out.txt", "w");
    for (i = 0; i < 65536; i = i + 1) begin
      w = i[15:8]; a = i[7:0]; #1;
      $fwrite(f, "%0d %0d\\n", p[{bits - 1}:0], p[{2 * bits - 1}:{bits}]);
    end
    $fclose(f); $finish;
  end
endmodule
"""
    raw = icarus_bench({"bench.v": bench, **sources})
    return NumpyOps.wrap(raw.reshape(256, 256, 2), bits, True).transpose(2, 0, 1)


@pytest.mark.parametrize("modes,mode", MODES)
def test_every_byte_pair_sb_mac16(modes, mode, icarus_bench):
    got = _icarus_sweep(modes, mode, icarus_bench)
    low, high = _expected(mode)
    assert np.array_equal(got[0], low) and np.array_equal(got[1], high)
    # The extremes, spelled out (lane 0): -128 * -128, -128 * 127; nibbles -8 * -8 twice; mixed signs.
    if mode == "int8":
        assert got[0, 0x80, 0x80] == 16384 and got[0, 0x80, 0x7F] == -16256
    elif mode == "w4a8":   # a1 = -128 (FIXED[0]): -8 * -128 twice; -8 * 127 + -8 * -128
        assert got[0, 0x88, 0x80] == 2048 and got[0, 0x88, 0x7F] == 8
    else:
        assert got[0, 0x88, 0x88] == 128 and got[0, 0x88, 0x77] == -112 and got[0, 0x8F, 0x71] == -57


def test_sb_mac16_configuration():
    """Dual 8x8, signed, unregistered; the 8x8 products through the adder (C, D) when an INT4 product is
    added, else straight out."""
    dual = sb_mac16_parameters(("int8", "int4"))
    assert dual["MODE_8x8"].value == dual["A_SIGNED"].value == dual["B_SIGNED"].value == 1
    assert dual["TOPOUTPUT_SELECT"].value == dual["BOTOUTPUT_SELECT"].value == 0
    assert dual["TOPADDSUB_LOWERINPUT"].value == 1 and dual["TOPADDSUB_UPPERINPUT"].value == 1
    assert not any(dual[k].value for k in ("A_REG", "B_REG", "C_REG", "D_REG", "TOP_8x8_MULT_REG",
                                           "BOT_8x8_MULT_REG", "TOPADDSUB_CARRYSELECT"))
    assert sb_mac16_parameters(("int8",))["TOPOUTPUT_SELECT"].value == 2


def test_bad_modes():
    with pytest.raises(ConfigError, match="lane modes must be a non-empty tuple of distinct names from int8, int4"):
        LanePairProduct(())
