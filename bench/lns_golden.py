"""Speed of the golden model: one GEMM through :func:`qmac.sim.gemm.golden_gemm` in INT8 and the LNS modes.

    .venv/bin/python bench/lns_golden.py [--shape 1536x384x128] [--repeat 3] [--seed 0]

Prints a markdown table: configuration, the best wall-clock time of ``--repeat`` runs and the time of the
first run. Operands are uniformly random codes over each mode's whole code range (LNS zero codes included),
scale fields uniformly random over their whole range. Results and the command line: ``docs/lns.md``
("Golden model speed").
"""

import argparse
import time

import numpy as np

from qmac.hw.spec.config import CoreConfig
from qmac.sim.gemm import golden_gemm, plan_gemm, random_operands

#: ``(label, config, mode)`` of every row.
CONFIGS = (
    ("INT8", CoreConfig(modes=("int8",)), "int8"),
    ("LNS8", CoreConfig(modes=("lns8",)), "lns8"),
    ("LNS8, q_floor=-8", CoreConfig(modes=("lns8",), q_floor=-8), "lns8"),
    ("LNS8, 4-bit log scales", CoreConfig(modes=("lns8",), scale_bits=4, scale_kind="log", max_k=4096), "lns8"),
    ("LNS8 F=4, 6-bit log scales, b=0 Pm=8", CoreConfig(modes=("lns8",), frac_bits=4, scale_bits=6, scale_kind="log",
                                                          bucket_fraction_bits=0, mantissa_bits=8, max_k=4096), "lns8"),
    ("LNS8 F=4, 6-bit log scales, b=0 Pm=8, q_floor=-6",
     CoreConfig(modes=("lns8",), frac_bits=4, scale_bits=6, scale_kind="log", bucket_fraction_bits=0, mantissa_bits=8,
                q_floor=-6, max_k=4096), "lns8"),
    ("LNS8 F=4, 6-bit log scales, b=0 Pm=8, window_bits=14",
     CoreConfig(modes=("lns8",), frac_bits=4, scale_bits=6, scale_kind="log", bucket_fraction_bits=0, mantissa_bits=8,
                window_bits=14, max_k=4096), "lns8"),
    ("LNS4", CoreConfig(modes=("lns4",)), "lns4"),
    ("LNS4, 4-bit log scales", CoreConfig(modes=("lns4",), scale_bits=4, scale_kind="log", max_k=4096), "lns4"),
    ("LNS4, 4-bit log scales, q_floor=-2",
     CoreConfig(modes=("lns4",), scale_bits=4, scale_kind="log", q_floor=-2, max_k=4096), "lns4"),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1536x384x128", help="N x K x M (default 1536x384x128)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, k, m = map(int, args.shape.split("x"))
    rng = np.random.default_rng(args.seed)
    print(f"golden_gemm, W {n}x{k} @ A {k}x{m}\n")
    print("| configuration | best of " f"{args.repeat} (s) | first run (s) |")
    print("|---|---|---|")
    for label, cfg, mode in CONFIGS:
        plan = plan_gemm(cfg, mode, (n, k), (k, m))
        W, A, sw, sa = random_operands(plan, rng)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            golden_gemm(plan, W, A, sw, sa)
            times.append(time.perf_counter() - start)
        print(f"| {label} | {min(times):.3f} | {times[0]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
