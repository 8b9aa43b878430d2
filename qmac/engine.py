"""Where a GEMM runs: the golden model, or the emitted Verilog under a simulator (host side of qmac gemm)."""

import os
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from qmac.sim.gemm import assemble, expected_results, golden_gemm, plan_gemm
from qmac.sim.packing import ResultRow, result_rows

__all__ = ["ENGINES", "run_gemm"]

ENGINES = ("golden", "icarus", "verilator")


def run_gemm(config, mode, W, A, engine="golden", gap=0.0, ready=1.0, seed=0, build_root=None,
             w_scales=None, a_scales=None, sparse=False):
    """Compute ``W @ A`` (integer codes, with per-group scale fields on a core with scale units) on
    ``engine``.

    Returns a dict: ``Y`` (N x M int64), ``saturated`` (any accumulator clipped), ``cycles`` (busy cycles
    counted by the core; ``None`` for the golden model, which is not cycle-accurate), ``ideal_cycles``
    (``N*K*M`` over the array's MACs per cycle), ``utilization`` and, for simulator engines, ``bit_exact``:
    whether every result row equals the golden model's. Simulator builds go to ``build_root``, default
    ``$QMAC_BUILD_ROOT``, else ``build/tb`` for cocotb (icarus) and ``build`` for the compiled Verilator
    engine (:mod:`qmac.tb.verilator_engine`).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    plan = plan_gemm(config, mode, np.shape(W), np.shape(A), sparse)
    ideal = plan.useful_macs / config.macs_per_cycle(mode, sparse)
    Yg, sat = golden_gemm(plan, W, A, w_scales, a_scales)
    result = {"ideal_cycles": ideal, "beats": plan.beats, "k_beats": plan.k_beats, "tiles": plan.tiles}
    if engine == "golden":
        return result | {"Y": Yg[:plan.n, :plan.m], "saturated": bool(sat.any()), "cycles": None,
                         "utilization": None, "bit_exact": None}
    if engine == "verilator":
        from qmac.tb.verilator_engine import stream_gemm
        rows, cycles = stream_gemm(plan, W, A, w_scales, a_scales, gap, ready, seed, build_root)
    else:
        rows, cycles = _cocotb_gemm(config, mode, W, A, engine, gap, ready, seed, build_root, w_scales, a_scales,
                                    sparse)
    return result | {
        "Y": assemble(plan, [r.data for r in rows]),
        "saturated": any(r.saturated for r in rows),
        "cycles": cycles,
        "utilization": ideal / cycles if cycles else None,
        "bit_exact": rows == expected_results(plan, W, A, w_scales, a_scales),
    }


def _cocotb_gemm(config, mode, W, A, engine, gap, ready, seed, build_root, w_scales, a_scales, sparse):
    """The GEMM through the cocotb testbench (qmac.tb.cocotb_gemm_job): ``(result rows, busy cycles)``."""
    from qmac.tb.runner import run_cocotb
    build_root = build_root or os.environ.get("QMAC_BUILD_ROOT", "build/tb")
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.npz", Path(tmp) / "out.npz"
        scales = {} if w_scales is None else {"w_scales": np.asarray(w_scales, dtype=np.int64),
                                              "a_scales": np.asarray(a_scales, dtype=np.int64)}
        np.savez(job, W=np.asarray(W, dtype=np.int64), A=np.asarray(A, dtype=np.int64), mode=mode, gap=gap,
                 ready=ready, seed=seed, sparse=sparse, **scales)
        tests, failed, xml = run_cocotb(config, engine, "qmac.tb.cocotb_gemm_job", build_root=build_root,
                                        extra_env={"QMAC_JOB": str(job), "QMAC_JOB_OUT": str(out)})
        if failed or not out.exists():
            raise RuntimeError(f"{engine} simulation failed; see {Path(xml).parent / 'sim.log'}")
        res = np.load(out)
        rows = result_rows({f.name: res[f.name] for f in fields(ResultRow) if f.name in res})
        return rows, int(res["cycles"])
