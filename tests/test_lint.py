"""The emitted Verilog passes Verilator's -Wall lint with only the documented Amaranth waivers, and
Icarus with -Wall, for every preset."""

import shutil
import subprocess

import pytest

from qmac.hw.spec.config import PRESETS
from qmac.hw.array.emit import TOP_NAME, write_core
from qmac.tb.runner import VERILATOR_WAIVERS, prepare_simulator


@pytest.mark.parametrize("name", PRESETS)
def test_lint(tmp_path, name):
    v, _, _ = write_core(PRESETS[name], tmp_path)
    prepare_simulator("verilator")
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *(f"-Wno-{w}" for w in VERILATOR_WAIVERS),
                        "--top-module", TOP_NAME, str(v)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[:3000]
    assert "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[:3000]
    prepare_simulator("icarus")
    r = subprocess.run(["iverilog", "-g2012", "-Wall", "-s", TOP_NAME, "-o", str(tmp_path / "a.vvp"), str(v)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr[:3000]


def test_lint_catches_a_real_problem(tmp_path):
    """The waivers do not hide real defects: a multiply-driven net still fails."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, input b, output y); assign y = a; assign y = b; endmodule\n")
    prepare_simulator("verilator")
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *(f"-Wno-{w}" for w in VERILATOR_WAIVERS), str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0
