"""Cost and throughput of the per-vector scale units.

    .venv/bin/python bench/vsq_hw.py

Prints (1) transistors per lane (Yosys ``stat -tech cmos``) of one MacUnit without scales, with integer
scales and with power-of-two scales, and (2) utilization on a long GEMM with and without scales
(Verilator, a 4x4 array with V = 16).
"""

import numpy as np
from amaranth.back import verilog

from qmac.hw.config import CoreConfig
from qmac.hw.mac_unit import MacUnit
from qmac.tb.engine import run_gemm
from qmac.tb.synth import synth_generic

BASE = CoreConfig(rows=4, cols=4, lanes=16, modes=("int8", "int4"), max_k=4096)
VARIANTS = {
    "no scales": BASE,
    "int S=8, 8 lanes/scale": BASE.replace(scale_bits=8),
    "int S=4, 8 lanes/scale": BASE.replace(scale_bits=4),
    "pow2 S=4, 8 lanes/scale": BASE.replace(scale_bits=4, scale_kind="pow2"),
    "pow2 S=3, 8 lanes/scale": BASE.replace(scale_bits=3, scale_kind="pow2"),
    "int S=8, 16 lanes/scale": BASE.replace(scale_bits=8, scale_lanes=16),
}


def main():
    print("| MacUnit (V = 16, dual INT8/INT4, max_k 4096) | acc bits | transistors | per lane | vs no scales |")
    print("|---|---|---|---|---|")
    base = None
    for name, cfg in VARIANTS.items():
        text = verilog.convert(MacUnit(cfg), name="mac_unit", emit_src=False)
        t = synth_generic(text, "mac_unit")["transistors"]
        base = base or t
        print(f"| {name} | {cfg.acc_format.bits} | {t} | {t / cfg.lanes:.0f} | {t / base:.2f}x |", flush=True)
    print()
    print("| config | mode | GEMM | ideal cycles | cycles | utilization |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name in ("no scales", "int S=8, 8 lanes/scale"):
        cfg = VARIANTS[name]
        for mode in cfg.modes:
            q = 127 if mode == "int8" else 7
            W, A = rng.integers(-q, q + 1, (16, 2048)), rng.integers(-q, q + 1, (2048, 16))
            scales = {}
            if cfg.scale_bits:
                g = -(-2048 // cfg.group_elements(mode))
                scales = {"w_scales": rng.integers(1, 256, (16, g)), "a_scales": rng.integers(1, 256, (g, 16))}
            r = run_gemm(cfg, mode, W, A, engine="verilator", **scales)
            assert r["bit_exact"]
            print(f"| {name} | {mode} | 16x2048x16 | {r['ideal_cycles']:.0f} | {r['cycles']} | "
                  f"{100 * r['utilization']:.2f}% |", flush=True)


if __name__ == "__main__":
    main()
