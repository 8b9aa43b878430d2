"""Yosys runner: transistor estimate, FPGA counts, cache and errors (qmac/toolchain/synth.py)."""

import json

import pytest

from qmac.hw.spec.config import CoreConfig, preset
from qmac.hw.array.emit import TOP_NAME, emit_verilog
from qmac.toolchain.synth import SynthError, synth_config, synth_fpga, synth_generic

ADDER = """
module adder4(input [3:0] a, input [3:0] b, output [4:0] s);
  assign s = a + b;
endmodule
"""

REGISTERED_MULTIPLIER = """
module mul2(input clk, input rst, input [1:0] a, input [1:0] b, output reg [3:0] p);
  always @(posedge clk) if (rst) p <= 0; else p <= a * b;
endmodule
"""


def test_generic_counts_transistors_and_caches(tmp_path):
    cache = tmp_path / "cache"
    first = synth_generic(ADDER, "adder4", tmp_path / "run1", cache_dir=cache)
    assert first["target"] == "generic"
    assert first["transistors"] > 0 and first["transistors_complete"]
    assert first["cells"] == sum(first["cell_types"].values())
    assert (tmp_path / "run1" / "log.txt").is_file()
    # A hit returns the same dict without running Yosys (its work directory is never created).
    again = synth_generic(ADDER, "adder4", tmp_path / "run2", cache_dir=cache)
    assert again == first
    assert not (tmp_path / "run2").exists()


def test_generic_counts_flip_flops(tmp_path):
    result = synth_generic(REGISTERED_MULTIPLIER, "mul2", tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result["cell_types"]["$_DFF_P_"] == 4
    assert result["transistors_complete"]


def test_ice40_counts_luts(tmp_path):
    result = synth_fpga(ADDER, "adder4", "ice40", tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result["target"] == "ice40"
    assert result["luts"] >= 1
    assert result["dsps"] == 0 and result["brams"] == 0


def test_failure_names_log(tmp_path):
    expected = r"^yosys failed \(exit code \d+\): design.v:1: ERROR: syntax error.*; log: "
    with pytest.raises(SynthError, match=expected) as info:
        synth_generic("module broken(input a;\nendmodule\n", "broken", tmp_path / "run",
                      cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(str(tmp_path / "run" / "log.txt"))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^FPGA target must be one of ice40, ecp5, not 'generic'$"):
        synth_fpga(ADDER, "adder4", "generic")
    with pytest.raises(ValueError, match=r"^synthesis target must be one of generic, ice40, ecp5, not 'gowin'$"):
        synth_config(preset("tiny"), "gowin")
    with pytest.raises(TypeError, match=r"^synth_config needs a CoreConfig, not 'tiny'$"):
        synth_config("tiny")


@pytest.mark.slow
def test_tiny_core_on_ice40(tmp_path):
    result = synth_config(preset("tiny"), "ice40", tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result["luts"] >= 1
    assert result["ffs"] >= 1


def test_sb_mac16_lanes_on_ice40(tmp_path):
    """``sb_mac16`` lanes synthesize to one SB_MAC16 per two lanes (dual 8x8 mode), not to LUT multipliers
    or 16x16 inferred ones (one per product)."""
    cfg = CoreConfig(rows=1, cols=2, lanes=4, modes=("int8",), max_k=64, multiplier="sb_mac16")
    result = synth_config(cfg, "ice40", tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result["dsps"] == cfg.rows * cfg.cols * cfg.lanes // 2


@pytest.mark.parametrize("multiplier,lanes_per_block", [("mult18", 1), ("mult18_fip", 2)])
def test_mult18_lanes_on_ecp5(tmp_path, multiplier, lanes_per_block):
    """``mult18`` lanes synthesize to one MULT18X18D per lane, ``mult18_fip`` to one per two lanes (the
    Winograd corrections stay in logic), and the multipliers' registers are their own: fewer fabric
    flip-flops than the same core's portable Verilog, where Yosys infers bare multipliers."""
    cfg = CoreConfig(rows=1, cols=2, lanes=4, modes=("int8", "int4"), max_k=64, multiplier=multiplier)
    board = synth_config(cfg, "ecp5", tmp_path / "board", cache_dir=tmp_path / "cache")
    portable = synth_fpga(emit_verilog(cfg)[0], TOP_NAME, "ecp5", tmp_path / "portable", cache_dir=tmp_path / "cache")
    assert board["dsps"] == portable["dsps"] == cfg.rows * cfg.cols * cfg.lanes // lanes_per_block
    assert board["ffs"] < portable["ffs"]


def test_scale_products_in_logic_on_ecp5(tmp_path):
    """With integer scales, a unit's MULT18X18D are its pair terms and its group sums' scaling
    (``psum * product``); the product of the two few-bit scale fields is logic (``AmaranthOps.mul``), not a
    whole 18x18 block with long wires to it."""
    cfg = CoreConfig(rows=1, cols=2, lanes=4, modes=("int8",), max_k=64, scale_bits=4, scale_lanes=4,
                     multiplier="mult18_fip")
    result = synth_config(cfg, "ecp5", tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result["dsps"] == cfg.rows * cfg.cols * (cfg.lanes // 2 + cfg.scale_groups)


HIERARCHY = """
module half(input clk, input [3:0] a, output reg [3:0] q);
  always @(posedge clk) q <= a + 4'd1;
endmodule
module top(input clk, input [3:0] a, output [3:0] q);
  half inner (.clk(clk), .a(a), .q(q));
endmodule
"""


def test_gate_netlist_keeps_instance_paths_and_caches_its_files(tmp_path):
    from qmac.toolchain.synth import gate_netlist
    cache = tmp_path / "cache"
    first = gate_netlist(HIERARCHY, "top", tmp_path / "run1", cache_dir=cache)
    assert first["target"] == "gates"
    files = first["files"]
    assert set(files) == {"netlist.v", "netlist.json"} and all(p.parent.parent == cache for p in files.values())
    module = json.loads(files["netlist.json"].read_text())["modules"]
    assert list(module) == ["top"]  # flattened
    cells = module["top"]["cells"]
    assert cells and all(name.startswith("$flatten\\inner.") for name in cells)
    assert sum(c["type"] == "$_DFF_P_" for c in cells.values()) == 4
    assert "module top" in files["netlist.v"].read_text()
    again = gate_netlist(HIERARCHY, "top", tmp_path / "run2", cache_dir=cache)
    assert again == first and not (tmp_path / "run2").exists()
