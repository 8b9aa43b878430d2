"""The compiled Verilator engine (qmac.tb.verilator_engine): bit-exact against the golden model on small
cores of every kind of datapath, with and without stalls; its cycle count equals the cocotb testbench's;
its build cache is hit on a second build. The engine's builds go to the build root of the cocotb builds
(``tb_build_root``), which the CLI and model tests give it too, so each core is built once per run."""

import numpy as np
import pytest

from qmac.hw.spec.config import PRESETS, CoreConfig, code_range
from qmac.sim.sparse24 import prune_2_4
from qmac.engine import run_gemm
from qmac.tb.runner import ToolError
from qmac.tb.verilator_engine import build_harness

# name -> (config, mode, sparse GEMM, scale kind: None, "int" or "log")
CASES = {
    "tiny-int8": (PRESETS["tiny"], "int8", False, None),
    "tiny-int4": (PRESETS["tiny"], "int4", False, None),
    "tiny-vsq": (PRESETS["tiny-vsq"], "int8", False, "int"),
    "tiny-sparse": (PRESETS["tiny-sparse"], "int4", True, None),
    "tiny-out": (PRESETS["tiny-out"], "int8", False, None),
    "tiny-lns8": (PRESETS["tiny-lns8"], "lns8", False, None),
    "lns8-logout": (CoreConfig(rows=3, cols=2, lanes=4, modes=("lns8",), max_k=256, log_output=True), "lns8",
                    False, None),
}


def _operands(cfg, mode, sparse, scales, n=5, k=72, m=3, seed=3):
    rng = np.random.default_rng(seed)
    lo, hi = code_range(mode)
    W, A = rng.integers(lo, hi + 1, (n, k)), rng.integers(lo, hi + 1, (k, m))
    if sparse:
        W = prune_2_4(W)
    if scales is None:
        return W, A, None, None
    g = -(-k // (cfg.group_elements(mode) * (2 if sparse else 1)))
    s_lo, s_hi = (-(1 << (cfg.scale_bits - 1)), 1 << (cfg.scale_bits - 1)) if scales == "log" else (0, 256)
    return W, A, rng.integers(s_lo, s_hi, (n, g)), rng.integers(s_lo, s_hi, (g, m))


# One pytest-xdist group per core: its tests run on one worker, one after the other, instead of the second
# waiting for the first's build on the other worker.
@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"verilator-engine-{n}")) for n in CASES])
def test_bit_exact(name, stall, tb_build_root):
    cfg, mode, sparse, scales = CASES[name]
    W, A, ws, as_ = _operands(cfg, mode, sparse, scales)
    res = run_gemm(cfg, mode, W, A, engine="verilator", gap=stall, ready=1 - stall, seed=7, build_root=tb_build_root,
                   w_scales=ws, a_scales=as_, sparse=sparse)
    assert res["bit_exact"]
    golden = run_gemm(cfg, mode, W, A, w_scales=ws, a_scales=as_, sparse=sparse)
    np.testing.assert_array_equal(res["Y"], golden["Y"])
    # Stalls only lengthen the run: the busy cycles never fall below the stall-free pipeline's.
    assert res["cycles"] >= res["beats"]


def test_saturating_accumulators(tb_build_root):
    cfg = PRESETS["tiny"].replace(acc_bits=20, max_k=512)
    W, A = np.full((3, 256), 127), np.full((256, 3), 127)
    W[1] = -127  # one row saturates low, one high, one not at all
    W[2, 16:] = 0
    res = run_gemm(cfg, "int8", W, A, engine="verilator", gap=0.2, ready=0.8, build_root=tb_build_root)
    assert res["bit_exact"] and res["saturated"]
    assert res["Y"][0, 0] == (1 << 19) - 1 and res["Y"][1, 0] == -(1 << 19) and res["Y"][2, 0] == 16 * 127 * 127


@pytest.mark.xdist_group("verilator-engine-tiny-int8")
def test_cycles_match_cocotb(tb_build_root):
    """The core's own counter, read by the harness at the end, equals what the cocotb testbench reads."""
    cfg, mode, _, _ = CASES["tiny-int8"]
    W, A, _, _ = _operands(cfg, mode, False, None, n=4, k=64, m=4)
    fast = run_gemm(cfg, mode, W, A, engine="verilator", build_root=tb_build_root)
    slow = run_gemm(cfg, mode, W, A, engine="icarus", build_root=tb_build_root)
    assert fast["bit_exact"] and slow["bit_exact"]
    assert fast["cycles"] == slow["cycles"] > fast["beats"]


@pytest.mark.xdist_group("verilator-engine-tiny-int8")
def test_warm_build_is_a_cache_hit(tb_build_root):
    path, _ = build_harness(CASES["tiny-int8"][0], tb_build_root)
    mtime = path.stat().st_mtime_ns
    again, built = build_harness(CASES["tiny-int8"][0], tb_build_root)
    assert (again, built) == (path, False) and again.stat().st_mtime_ns == mtime


def test_missing_compiler_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # the verilator package's bin is put back; make and c++ are not
    with pytest.raises(ToolError, match="^make not found on PATH"):
        build_harness(PRESETS["tiny"], tmp_path)
