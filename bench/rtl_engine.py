"""Speed of the compiled Verilator engine (qmac.tb.verilator_engine) on a core, against the bare C++ loop.

    .venv/bin/python bench/rtl_engine.py                      # default core, INT8 128x8192x128
    .venv/bin/python bench/rtl_engine.py --sweep --shape 64x2048x64   # build flags: build time and speed

Prints a Markdown table: cold build (fresh build folder) and warm build (cache hit) seconds, the simulated
cycles per second of the harness alone, of ``run_gemm(..., engine="verilator")`` and of the bare loop
(random operands, valid and ready held high), and the wall time of the whole ``qmac gemm`` command. On a
shared machine wall-clock figures swing with the load, so builds also report the CPU seconds of the build
processes and the simulations their rate per CPU second (wall-clock rate in brackets).
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qmac.hw.spec.config import code_range, preset
from qmac.sim.gemm import operand_beats, plan_gemm
from qmac.engine import run_gemm
from qmac.tb.verilator_engine import BUILD_FLAGS, Harness, build_harness

#: Build-flag variants the sweep compares with BUILD_FLAGS (each replaces the options it names).
VARIANTS = {
    "chosen": BUILD_FLAGS,
    "module inlining (Verilator's default)": tuple(f for f in BUILD_FLAGS if f != "-fno-inline"),
    "C++ -O2": BUILD_FLAGS[:-1] + ("OPT_FAST=-O2 OPT_GLOBAL=-O2",),
    "C++ -Os (verilated.mk default)": BUILD_FLAGS[:-2],
    "verilator -O1": ("-O1",) + BUILD_FLAGS[1:],
    "x-assign/x-initial 0": tuple("0" if f == "fast" else f for f in BUILD_FLAGS),
    "--threads 2": BUILD_FLAGS + ("--threads", "2"),
}


def _timed(f, *args, **kw):
    start = time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - start


def _cpu_timed(f, *args, **kw):
    """``(result, wall seconds, CPU seconds of this process and its finished children)``."""
    def cpu():
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    start, c0 = time.perf_counter(), cpu()
    out = f(*args, **kw)
    return out, time.perf_counter() - start, cpu() - c0


def _operands(mode, shape, seed=0):
    n, k, m = shape
    lo, hi = code_range(mode)
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi + 1, (n, k)), rng.integers(lo, hi + 1, (k, m))


def measure(cfg, mode, shape, flags, root, jobs):
    """Cold and warm build seconds (wall, CPU), and harness / bare-loop cycles per CPU and wall second, for
    one flag set."""
    (path, built), cold, cold_cpu = _cpu_timed(build_harness, cfg, root, flags, jobs)
    assert built, f"{root} already held this build: the cold time needs an empty build folder"
    (_, built), warm = _timed(build_harness, cfg, root, flags, jobs)
    assert not built
    W, A = _operands(mode, shape)
    plan = plan_gemm(cfg, mode, W.shape, A.shape)
    w_words, a_words = operand_beats(plan, W, A)
    harness = Harness(path, cfg)
    (_, status), run_wall, run_cpu = _cpu_timed(harness.run, plan, w_words, a_words)
    n = status["sim_cycles"]
    _, bare_wall, bare_cpu = _cpu_timed(harness.bare_loop, n, mode, plan.k_beats)
    return {"cold": cold, "cold_cpu": cold_cpu, "warm": warm, "cycles": status["cycles"],
            "harness": (n / run_cpu, n / run_wall), "bare": (n / bare_cpu, n / bare_wall)}


def _rate(r):
    return f"{r[0]:.0f} ({r[1]:.0f})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--mode", default="int8")
    p.add_argument("--shape", default="128x8192x128", help="N x K x M (default 128x8192x128)")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="make -j for the builds")
    p.add_argument("--sweep", action="store_true", help="compare the build-flag variants instead")
    p.add_argument("--variants", default=",".join(VARIANTS), help="--sweep: comma-separated variant names")
    args = p.parse_args()
    cfg, shape = preset(args.preset), tuple(int(v) for v in args.shape.split("x"))
    print(f"{args.preset} core, {args.mode} {args.shape}, make -j{args.jobs}\n")
    if args.sweep:
        print("| flags | cold build s (CPU s) | warm build s | harness cycles/s | bare loop cycles/s |")
        print("|---|---|---|---|---|")
        for name in args.variants.split(","):
            flags = VARIANTS[name]
            with tempfile.TemporaryDirectory() as root:
                r = measure(cfg, args.mode, shape, flags, root, args.jobs)
            print(f"| {name} | {r['cold']:.0f} ({r['cold_cpu']:.0f}) | {r['warm']:.2f} | {_rate(r['harness'])} | "
                  f"{_rate(r['bare'])} |", flush=True)
        return
    with tempfile.TemporaryDirectory() as root:
        r = measure(cfg, args.mode, shape, BUILD_FLAGS, root, args.jobs)
        W, A = _operands(args.mode, shape)
        res, t_gemm, cpu_gemm = _cpu_timed(run_gemm, cfg, args.mode, W, A, engine="verilator", build_root=root)
        assert res["bit_exact"], "the verilator engine disagrees with the golden model"
        np.save(Path(root) / "W.npy", W)
        np.save(Path(root) / "A.npy", A)
        cmd = [str(Path(sys.executable).parent / "qmac"), "gemm", "--preset", args.preset, "--format", args.mode,
               "--engine", "verilator", "--weights", f"{root}/W.npy", "--activations", f"{root}/A.npy"]
        done, t_cmd, cpu_cmd = _cpu_timed(subprocess.run, cmd, env=os.environ | {"QMAC_BUILD_ROOT": root}, capture_output=True,
                             text=True)
        if done.returncode:
            sys.exit(f"qmac gemm failed:\n{done.stderr}")
    cycles = res["cycles"]
    print("| measure | value |")
    print("|---|---|")
    print(f"| cold build (empty cache), make -j{args.jobs} | {r['cold']:.1f} s wall, {r['cold_cpu']:.1f} CPU s |")
    print(f"| warm build (cache hit) | {r['warm']:.2f} s |")
    print(f"| core busy cycles | {cycles} |")
    print(f"| harness alone, cycles per CPU s (per wall s) | {_rate(r['harness'])} |")
    print(f"| bare C++ loop, same library | {_rate(r['bare'])} |")
    print(f"| harness / bare loop (CPU) | {r['harness'][0] / r['bare'][0]:.2f} |")
    print(f"| run_gemm(engine='verilator'), whole call | {t_gemm:.1f} s wall, {cpu_gemm:.1f} CPU s = "
          f"{cycles / cpu_gemm:.0f} cycles per CPU s |")
    print(f"| `qmac gemm --engine verilator`, whole command | {t_cmd:.1f} s wall, {cpu_cmd:.1f} CPU s |")


if __name__ == "__main__":
    main()
