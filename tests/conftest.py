import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tb_build_root():
    """Shared cocotb build folder: one build per (simulator, config), reused across tests and runs."""
    return str(ROOT / "build" / "tb")


@pytest.fixture
def icarus_bench(tmp_path):
    """A function ``run(sources)``: write ``sources`` (file name -> Verilog text, top module ``bench``,
    which writes ``out.txt``) to ``tmp_path``, compile them with Icarus Verilog and run; returns the
    integers of ``out.txt`` as an int64 array (one row per line). A behavioural model that prints a line
    holding ``MODEL`` (a use it does not support) fails the test. Skips without Icarus."""
    if shutil.which("iverilog") is None:
        pytest.skip("needs Icarus Verilog")

    def run(sources):
        for name, text in sources.items():
            (tmp_path / name).write_text(text)
        subprocess.run(["iverilog", "-g2012", "-s", "bench", "-o", "sim.vvp", *sources], cwd=tmp_path, check=True,
                       capture_output=True, text=True)
        sim = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, capture_output=True, text=True)
        assert sim.returncode == 0 and "MODEL" not in sim.stdout, sim.stdout + sim.stderr
        return np.loadtxt(tmp_path / "out.txt", dtype=np.int64)

    return run
