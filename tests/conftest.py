import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from qmac.hw.boards import ULX3S_85F

ROOT = Path(__file__).resolve().parent.parent

# MULT18X18D as Lattice FPGA-TN-02205 (ECP5 sysDSP Usage Guide) describes the paths our designs use: the A and
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

# TRELLIS_FF (the ECP5 slice flip-flop as Yosys's cells_sim.v names it) in the one configuration
# qmac.hw.local_register.LocalRegister uses: clock CLK, CE and LSR as given (CEMUX "1": always enabled),
# synchronous LSR over CE resetting to 0. Other configurations are refused with a MODEL line.
TRELLIS_FF_MODEL = r"""module TRELLIS_FF(input CLK, input LSR, input CE, input DI, output reg Q);
  parameter GSR = "ENABLED", CEMUX = "CE", CLKMUX = "CLK", LSRMUX = "LSR", SRMODE = "LSR_OVER_CE";
  parameter REGSET = "RESET";
  always @(posedge CLK) Q <= LSR ? 1'b0 : DI;
  initial if (CEMUX != "1" || CLKMUX != "CLK" || LSRMUX != "LSR" || SRMODE != "LSR_OVER_CE" || REGSET != "RESET")
    $display("MODEL: unsupported configuration");
endmodule
"""


#: Test files whose tests build or run a simulator or an FPGA toolchain (tens of seconds each in the clean-clone
#: runs' ``--durations``, docs/benchmarks.md), heaviest first. They run before all others, so that none of them
#: starts near the end of the suite with the other pytest-xdist worker left idle. (``--dist loadgroup`` hands out
#: multi-test groups first, then single tests in collection order.)
HEAVY_FILES = ("test_verilator_engine.py", "test_tb.py", "test_host_link.py", "test_bitstream.py", "test_energy.py",
               "test_log_formal.py", "test_sparse24_formal.py", "test_cli.py", "test_model.py", "test_mx.py",
               "test_torch_sparse24.py", "test_lint.py", "test_synth.py", "test_explore.py")


def pytest_collection_modifyitems(items):
    """Heavy test files first (:data:`HEAVY_FILES`), each file's tests in their own order."""
    rank = {name: i for i, name in enumerate(HEAVY_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY_FILES)))


@pytest.fixture(scope="session")
def tb_build_root():
    """Shared cocotb build folder: one build per (simulator, config), reused across tests and runs."""
    return str(ROOT / "build" / "tb")


@pytest.fixture
def pysim_stream():
    """A function ``run(dut, beats, output)``: run the pipelined component ``dut`` in Amaranth's simulator, one
    clock cycle per beat (a list of ``(port, value)`` pairs set before the cycle's clock edge; ports keep their
    values from beat to beat), and return the value of ``output`` :attr:`dut.latency` cycles after each beat
    (a list of int, one per beat)."""

    def run(dut, beats, output):
        got = []

        async def tb(ctx):
            for t in range(len(beats) + dut.latency - 1):
                for port, value in beats[t] if t < len(beats) else ():
                    ctx.set(port, value)
                await ctx.tick()
                if t >= dut.latency - 1:
                    got.append(ctx.get(output))

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(tb)
        sim.run()
        return got

    return run


@pytest.fixture
def icarus_bench(tmp_path):
    """A function ``run(sources)``: write ``sources`` (file name -> text: the ``.v`` files are Verilog, top
    module ``bench``, which writes ``out.txt``; others are data the bench reads, e.g. with ``$readmemh``) to
    ``tmp_path``, compile the Verilog with Icarus Verilog and run; returns the integers of ``out.txt`` as an
    int64 array (one row per line). A behavioural model that prints a line holding ``MODEL`` (a use it does
    not support) fails the test. Skips without Icarus."""
    if shutil.which("iverilog") is None:
        pytest.skip("needs Icarus Verilog")

    def run(sources):
        for name, text in sources.items():
            (tmp_path / name).write_text(text)
        verilog_files = [name for name in sources if name.endswith(".v")]
        subprocess.run(["iverilog", "-g2012", "-s", "bench", "-o", "sim.vvp", *verilog_files], cwd=tmp_path,
                       check=True, capture_output=True, text=True)
        sim = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, capture_output=True, text=True)
        assert sim.returncode == 0 and "MODEL" not in sim.stdout, sim.stdout + sim.stderr
        return np.loadtxt(tmp_path / "out.txt", dtype=np.int64)

    return run


@pytest.fixture
def mult18x18d_bench(icarus_bench):
    """A function ``run(dut, sources)``: the component ``dut`` as the Verilog an ECP5 build elaborates (module
    ``dut``, for :class:`~qmac.hw.boards.ULX3S_85F`), which must instantiate MULT18X18D, run by
    ``icarus_bench(sources)`` with :data:`MULT18X18D_MODEL` and :data:`TRELLIS_FF_MODEL` standing in for
    the primitives."""

    def run(dut, sources):
        src = verilog.convert(dut, name="dut", platform=ULX3S_85F(), emit_src=False)
        assert "MULT18X18D" in src
        return icarus_bench({**sources, "dut.v": src, "mult18x18d.v": MULT18X18D_MODEL,
                             "trellis_ff.v": TRELLIS_FF_MODEL})

    return run
