"""How often the TFLite runtime's int8 FULLY_CONNECTED kernels and qmac's output-stage modes disagree, on random
one-operator models (tests/test_tflite_runtime.py builds them): prints one markdown table of differing outputs.
``--conv`` does the same for CONV_2D (tie-heavy models: power-of-two scales, SAME/VALID, stride 1/2).

Run from the repository root (needs ai-edge-litert)::

    python bench/tflite_runtime.py [--models 150] [--conv]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_tflite_runtime import CONV_MODES, _case, _conv_case, litert, run_runtime  # noqa: E402

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
    parser.add_argument("--conv", action="store_true", help="CONV_2D models instead of FULLY_CONNECTED")
    args = parser.parse_args()
    if args.conv:
        return _conv(args.models)
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


def _conv(models):
    from qmac.sim.tflite_conv import read_conv_2d
    rng = np.random.default_rng(124)
    modes = ("gemmlowp", "tflite_optimized", "tflite_reference")
    counts = {(kernel, mode): 0 for kernel in CONV_MODES for mode in modes}
    total = 0
    for i in range(models):
        model, x = _conv_case(rng, "ties", bool(i % 2), 1 + i // 2 % 2, ("SAME", "VALID")[i // 4 % 2])
        conv = read_conv_2d(model)
        for kernel in CONV_MODES:
            expected = run_runtime(model, x, kernel)
            for mode in modes:
                counts[kernel, mode] += int((conv.output(x, mode) != expected).sum())
        total += expected.size
    print(f"{models} tie-heavy CONV_2D models (3x3 over 5 channels, 6 filters, input 2x9x8, half per-channel, "
          f"SAME/VALID, stride 1/2): {total} outputs per kernel\n")
    print("| runtime kernel | " + " | ".join(f"qmac {m}" for m in modes) + " |\n|---|" + "---|" * len(modes))
    for kernel in CONV_MODES:
        print(f"| {kernel} | " + " | ".join(str(counts[kernel, m]) for m in modes) + " |")


if __name__ == "__main__":
    main()
