"""FPGA builds of the host link (qmac/toolchain/bitstream.py) with the YoWASP tools: one small build per board in
the default run, the boards' default cores (the docs/fpga.md table) with -m slow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qmac.hw.boards import BOARDS
from qmac.hw.spec.config import CoreConfig
from qmac.toolchain.bitstream import build_bitstream, uart_divisor

#: 8 INT4 MACs per cycle: enough to exercise every part of the build in well under two minutes; on each
#: board's DSP blocks (4 lanes: 2 SB_MAC16, 2 MULT18X18D computing Winograd pair terms, as the boards'
#: default cores), so the build proves they are mapped.
SMALL = CoreConfig(rows=1, cols=1, lanes=4, modes=("int4",), max_k=64)
SMALL_DSP = {"icebreaker": (SMALL.replace(multiplier="sb_mac16"), 2),
             "ulx3s-85f": (SMALL.replace(multiplier="mult18_fip"), 2)}
ROOT = Path(__file__).resolve().parent.parent


def test_uart_divisor():
    assert uart_divisor(30e6, 115200) == 260 and uart_divisor(50e6, 1_000_000) == 50
    with pytest.raises(ValueError, match=r"^baud rate 3000000 is not reachable within 2 % from a 10 MHz clock"):
        uart_divisor(10e6, 3_000_000)
    with pytest.raises(ValueError, match=r"^baud rate 4000000 is not reachable"):
        uart_divisor(30e6, 4_000_000)   # 7.5 clocks per bit: 7 or 8 are both more than 2 % off


def test_arguments_checked(tmp_path):
    with pytest.raises(ValueError, match=r"^board must be one of icebreaker, ulx3s-85f, not 'arty'$"):
        build_bitstream("arty", SMALL, out_dir=tmp_path)
    with pytest.raises(TypeError, match=r"^build_bitstream needs a CoreConfig, not 'tiny'$"):
        build_bitstream("icebreaker", "tiny", out_dir=tmp_path)


def _check(summary, board, dsps):
    assert summary["board"] == board and summary["timing_met"], summary
    assert summary["fmax_mhz"] >= summary["clock_mhz"]
    assert Path(summary["bitstream"]).stat().st_size > 10_000
    assert summary["luts"] > 500 and summary["ffs"] > 200 and summary["brams"] >= 1 and summary["dsps"] == dsps


@pytest.mark.xdist_group("fpga-build")
@pytest.mark.parametrize("board", list(BOARDS))
def test_small_build(board, tmp_path):
    lines = []
    config, dsps = SMALL_DSP[board]
    summary = build_bitstream(board, config, out_dir=tmp_path, queue_depth=16, progress=lines.append)
    _check(summary, board, dsps)
    assert summary["macs_per_cycle"] == {"int4": 8}
    assert any(line.startswith("place and route") and "done" in line for line in lines), lines


@pytest.mark.slow
@pytest.mark.xdist_group("fpga-build")
@pytest.mark.parametrize("board", list(BOARDS))
def test_default_build_through_cli(board, tmp_path):
    """The docs/fpga.md command: ``qmac bitstream --board BOARD`` (the board's default core and clock)."""
    proc = subprocess.run([sys.executable, "-m", "qmac.cli", "bitstream", "--board", board, "--out",
                           str(tmp_path), "--json"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    config = BOARDS[board].default_config
    lanes = config.rows * config.cols * config.lanes
    _check(summary, board, {"logic": 0, "sb_mac16": lanes // 2, "mult18": lanes, "mult18_fip": lanes // 2}[config.multiplier])
    assert summary["config"] == config.to_dict()
