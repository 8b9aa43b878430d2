"""How often the TFLite runtime's int8 FULLY_CONNECTED kernels and qmac's output-stage modes disagree, on random
one-operator models (tests/test_tflite_runtime.py builds them): prints one markdown table of differing outputs.

Run from the repository root (needs ai-edge-litert)::

    python bench/tflite_runtime.py [--models 150]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_tflite_runtime import _case, litert, run_runtime  # noqa: E402

from qmac.sim.tflite_fc import read_fully_connected  # noqa: E402


def _default_interpreter(model, x):
    it = litert.Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=150)
    args = parser.parse_args()
    rng = np.random.default_rng(123)
    pairs = {"qmac tflite_reference vs BUILTIN_REF": 0, "qmac tflite_optimized vs WITHOUT_DEFAULT_DELEGATES": 0,
             "qmac gemmlowp vs WITHOUT_DEFAULT_DELEGATES": 0, "BUILTIN_REF vs WITHOUT_DEFAULT_DELEGATES": 0,
             "AUTO (XNNPACK) vs BUILTIN_REF": 0, "AUTO (XNNPACK) vs WITHOUT_DEFAULT_DELEGATES": 0}
    total = 0
    for i in range(args.models):
        model, x = _case(rng, "random", bool(i % 2), n=16, k=64, batch=400)
        fc = read_fully_connected(model)
        ref, opt = run_runtime(model, x, "tflite_reference"), run_runtime(model, x, "tflite_optimized")
        auto = _default_interpreter(model, x)
        total += ref.size
        for key, (a, b) in zip(pairs, [(fc.output(x, "tflite_reference"), ref), (fc.output(x, "tflite_optimized"), opt),
                                       (fc.output(x, "gemmlowp"), opt), (ref, opt), (auto, ref), (auto, opt)]):
            pairs[key] += int((a != b).sum())
    print(f"{args.models} random models (16 channels, K = 64, batch 400, half per-channel): {total} outputs\n")
    print("| pair | differing outputs |\n|---|---|")
    for key, count in pairs.items():
        print(f"| {key} | {count} ({100 * count / total:.3f}%) |")


if __name__ == "__main__":
    main()
