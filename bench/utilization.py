"""Utilization and simulation speed: GEMMs streamed through the emitted core on Icarus and Verilator.

    .venv/bin/python bench/utilization.py [--preset default] [--modes int8,int4,w4a8] [--shadow-banks 2]
        [--sims icarus,verilator] [--shapes 64x2048x64,...]

Prints a markdown table: GEMM shape, mode, beats (ideal cycles), measured busy cycles, utilization,
simulated beats per wall-clock second, and whether the result was bit-exact.
"""

import argparse
import time

import numpy as np

from qmac.hw.spec.config import code_range, preset
from qmac.engine import run_gemm


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="default")
    p.add_argument("--modes", help="comma-separated modes replacing the preset's (e.g. int8,int4,w4a8)")
    p.add_argument("--shadow-banks", type=int, help="shadow_banks replacing the preset's (1 or 2)")
    p.add_argument("--sims", default="icarus,verilator")
    p.add_argument("--shapes", default="64x2048x64,64x256x64,64x128x64,64x64x64")
    args = p.parse_args()
    cfg = preset(args.preset)
    if args.modes:
        cfg = cfg.replace(modes=tuple(args.modes.split(",")))
    if args.shadow_banks is not None:
        cfg = cfg.replace(shadow_banks=args.shadow_banks)
    rng = np.random.default_rng(0)
    print(f"preset {args.preset}: {cfg.rows}x{cfg.cols} array, V={cfg.lanes}, modes {'/'.join(cfg.modes)}, "
          f"{cfg.shadow_banks} shadow bank(s): tiles of {cfg.streaming_tile_beats} beats or more stream\n")
    print("| simulator | mode | N x K x M | K / V | ideal cycles | measured cycles | utilization | beats/s | bit-exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sim in args.sims.split(","):
        for mode in cfg.modes:
            for shape in args.shapes.split(","):
                n, k, m = map(int, shape.split("x"))
                (lo, hi), (a_lo, a_hi) = code_range(mode), code_range(mode, activations=True)
                W, A = rng.integers(lo, hi + 1, (n, k)), rng.integers(a_lo, a_hi + 1, (k, m))
                run_gemm(cfg, mode, W[:1, :k], A[:k, :1], engine=sim)  # build outside the timing
                start = time.perf_counter()
                r = run_gemm(cfg, mode, W, A, engine=sim)
                wall = time.perf_counter() - start
                print(f"| {sim} | {mode} | {n}x{k}x{m} | {k // cfg.lanes} | {r['ideal_cycles']:.0f} | {r['cycles']} | "
                      f"{100 * r['utilization']:.2f}% | {r['beats'] / wall:.0f} | {r['bit_exact']} |", flush=True)


if __name__ == "__main__":
    main()
