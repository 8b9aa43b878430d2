"""Cost and throughput of the optional datapaths: per-vector scale units and 2:4 sparse selection.

    .venv/bin/python bench/datapaths.py [--engine icarus|verilator]

Prints (1) transistors (Yosys ``stat -tech cmos``) of one MacUnit (V = 16, dual INT8/INT4 lanes) per
variant, per lane and per dense-equivalent MAC, and (2) utilization on long GEMMs of a 4 x 4 x V16 array
with and without scales and sparsity (cycle counts are the same on both simulators).
"""

import argparse

import numpy as np
from amaranth.back import verilog

from qmac.hw.spec.config import CoreConfig
from qmac.hw.array.mac_unit import MacUnit
from qmac.sim.sparse24 import prune_2_4
from qmac.engine import run_gemm
from qmac.toolchain.synth import synth_generic

BASE = CoreConfig(rows=4, cols=4, lanes=16, modes=("int8", "int4"), max_k=4096)
VARIANTS = {
    "dense": BASE,
    "int scales S=8, 8 lanes/scale": BASE.replace(scale_bits=8),
    "int scales S=4, 8 lanes/scale": BASE.replace(scale_bits=4),
    "pow2 scales S=4, 8 lanes/scale": BASE.replace(scale_bits=4, scale_kind="pow2"),
    "pow2 scales S=3, 8 lanes/scale": BASE.replace(scale_bits=3, scale_kind="pow2"),
    "int scales S=8, 16 lanes/scale": BASE.replace(scale_bits=8, scale_lanes=16),
    "2:4 sparse": BASE.replace(sparse=True),
    "2:4 sparse + int scales S=8": BASE.replace(sparse=True, scale_bits=8),
}
RUNS = [("dense", False), ("int scales S=8, 8 lanes/scale", False), ("2:4 sparse", True),
        ("2:4 sparse", False)]


def area():
    print("| MacUnit variant (V = 16, dual) | acc bits | transistors | per lane | vs dense | "
          "INT8 MACs/cycle | transistors per MAC/cycle | MACs per transistor vs dense |")
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for name, cfg in VARIANTS.items():
        text = verilog.convert(MacUnit(cfg), name="mac_unit", emit_src=False)
        t = synth_generic(text, "mac_unit")["transistors"]
        base = base or t
        macs = cfg.lanes * (2 if cfg.sparse else 1)
        print(f"| {name} | {cfg.acc_format.bits} | {t} | {t / cfg.lanes:.0f} | {t / base:.2f}x | {macs} | "
              f"{t / macs:.0f} | {(macs / t) / (BASE.lanes / base):.2f}x |", flush=True)


def utilization(engine):
    print("\n| config | tiles | mode | GEMM | ideal cycles | cycles | utilization | bit-exact |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, sparse in RUNS:
        cfg = VARIANTS[name]
        for mode in cfg.modes:
            q = 127 if mode == "int8" else 7
            W, A = rng.integers(-q, q + 1, (32, 2048)), rng.integers(-q, q + 1, (2048, 32))
            if sparse:
                W = prune_2_4(W)
            extra = {}
            if cfg.scale_bits:
                g = -(-2048 // cfg.group_elements(mode))
                extra = {"w_scales": rng.integers(1, 256, (32, g)), "a_scales": rng.integers(1, 256, (g, 32))}
            r = run_gemm(cfg, mode, W, A, engine=engine, sparse=sparse, **extra)
            print(f"| {name} | {'sparse' if sparse else 'dense'} | {mode} | 32x2048x32 | {r['ideal_cycles']:.0f} | "
                  f"{r['cycles']} | {100 * r['utilization']:.2f}% | {r['bit_exact']} |", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--engine", default="icarus", choices=["icarus", "verilator"])
    p.add_argument("--skip-area", action="store_true")
    args = p.parse_args()
    if not args.skip_area:
        area()
    utilization(args.engine)


if __name__ == "__main__":
    main()
