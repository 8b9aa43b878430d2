"""SQNR of W4A8-VSQ (INT4 weights, INT8 activations) against INT8-VSQ and INT4-VSQ GEMMs.

Prints one markdown table: per format (``int8``, ``w4a8``, ``int4``), quantizer scheme and clip method, the
SQNR (dB) of the weights W (N x K), the activations A (K x M) and the product ``Y = W @ A`` quantized as the
core computes it (:func:`qmac.sim.evaluate.evaluate`: W along K, A along K, per-vector integer scales), for
i.i.d. unit-variance Gaussian, Laplacian and Student-t(3) data. Results and the command: ``docs/vsq.md``.

Usage: ``python bench/w4a8_sqnr.py [--n N] [--k K] [--m M] [--seed SEED]``
"""

import argparse

from qmac.sim.evaluate import DISTRIBUTIONS, evaluate, synthetic

FORMATS = ("int8", "w4a8", "int4")
SCHEMES = ("per-channel", "vector")
CLIPS = ("max", "mse")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="N, output channels (default 256)")
    parser.add_argument("--k", type=int, default=1024, help="K, reduction length (default 1024)")
    parser.add_argument("--m", type=int, default=64, help="M, activation columns (default 64)")
    parser.add_argument("--vector", type=int, default=16, help="V of the vector scheme (default 16)")
    parser.add_argument("--scale-bits", type=int, default=8, help="S of the vector scheme (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    args = parser.parse_args()
    print(f"W: {args.n} x {args.k}, A: {args.k} x {args.m}, i.i.d. unit variance, seed {args.seed} (A: seed + 1); "
          f"vector scheme V = {args.vector}, S = {args.scale_bits} (integer scales); SQNR in dB\n")
    heads = [f"{dist} {what}" for dist in DISTRIBUTIONS for what in ("W", "A", "Y")]
    print("| format | scheme | clip | " + " | ".join(heads) + " |")
    print("|" + "---|" * (3 + len(heads)))
    rows = {}
    for dist in DISTRIBUTIONS:
        W = synthetic(dist, (args.n, args.k), args.seed)
        A = synthetic(dist, (args.k, args.m), args.seed + 1)
        for r in evaluate(W, A, formats=FORMATS, schemes=SCHEMES, vectors=(args.vector,),
                          scale_bits=(args.scale_bits,), clips=CLIPS):
            rows.setdefault((r["format"], r["scheme"], r["clip"]), []).extend(
                [r["sqnr_w_db"], r["sqnr_a_db"], r["sqnr_y_db"]])
    for (fmt, scheme, clip), values in rows.items():
        print(f"| {fmt} | {scheme} | {clip} | " + " | ".join(f"{v:.2f}" for v in values) + " |")


if __name__ == "__main__":
    main()
