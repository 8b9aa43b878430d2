"""Time to pack a GEMM's operand beats (:func:`qmac.sim.gemm.operand_beats`), the words a simulator or the
host link streams, and to unpack its result rows (:func:`qmac.sim.packing.unpack_results`).

Random codes; CPU seconds (process time, robust on a shared machine), best of 5 calls per case. Prints a markdown table.

Run: ``python bench/operand_beats.py``
"""

import time

import numpy as np

from qmac.hw.spec.config import PRESETS
from qmac.sim.gemm import expected_results, operand_beats, plan_gemm, random_operands
from qmac.sim.packing import result_arrays, result_format, unpack_results

#: (preset, mode, sparse, (N, K, M)).
CASES = (("default", "int8", False, (128, 8192, 128)), ("default", "int4", False, (128, 8192, 128)),
         ("vsq", "int8", False, (128, 8192, 128)), ("tiny-sparse", "int4", True, (64, 2048, 64)),
         ("tiny-lns4-vsq", "lns4", False, (64, 1024, 64)))


def best(f, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.process_time()
        f()
        times.append(time.process_time() - start)
    return min(times)


def case(preset, mode, sparse, shape, rng):
    cfg = PRESETS[preset]
    n, k, m = shape
    plan = plan_gemm(cfg, mode, (n, k), (k, m), sparse)
    W, A, w_scales, a_scales = random_operands(plan, rng)
    scales = {"w_scales": w_scales, "a_scales": a_scales} if cfg.scale_bits else {}
    return plan, W, A, scales


def main():
    rng = np.random.default_rng(0)
    print("| preset | mode | N x K x M | beats | operand_beats CPU s | beats/s | result rows | unpack_results CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for preset, mode, sparse, shape in CASES:
        plan, W, A, scales = case(preset, mode, sparse, shape, rng)
        seconds = best(lambda: operand_beats(plan, W, A, **scales))
        fmt = result_format(plan.config)
        rows = expected_results(plan, W, A, **scales)
        words = fmt.pack_words(result_arrays(rows))
        unpack = best(lambda: unpack_results(words, plan.config))
        print(f"| {preset} | {mode}{' sparse' if sparse else ''} | {' x '.join(map(str, shape))} | {plan.beats} | "
              f"{seconds:.3f} | {plan.beats / seconds / 1e6:.2f} M | {len(rows)} | {unpack:.3f} |", flush=True)


if __name__ == "__main__":
    main()
