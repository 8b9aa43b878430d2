"""SQNR of a GEMM W @ A with both operands quantized: INT8/INT4 (per channel, VSQ) against LNS8/LNS4.

Prints one markdown table: one row per quantizer, one column per distribution, the SQNR (dB) of the float
product of the dequantized operands against the float64 product of the originals. W (N x K) is quantized
along K per row, A (K x M) along K per column, with the same settings. Results and the command line that
produced them: ``docs/lns.md`` ("Host quantizer and SQNR").

Usage: ``python bench/lns_sqnr.py [--rows N] [--depth K] [--cols M] [--seed SEED]``
"""

import argparse

from qmac.hw.spec.formats import INT4, INT8
from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat
from qmac.sim.evaluate import DISTRIBUTIONS, synthetic
from qmac.sim.log_quantize import log_gemm_reference, quantize_log
from qmac.sim.quantize import quantize, quantize_vsq, sqnr_db, vsq_gemm

VECTOR = 16
INT_FORMATS = (("INT8", INT8), ("INT4", INT4))
LOG_FORMATS = (("LNS8", LNS8), ("LNS8 F=4", LogFormat(8, 4)), ("LNS4", LNS4), ("LNS4 F=1", LogFormat(4, 1)))


def int_quantizers():
    """``(label, scheme, V, S, clip, function(x, fmt, axis))`` of the INT rows."""
    for name, fmt in INT_FORMATS:
        for clip in ("max", "mse"):
            yield (name, "per-channel", "-", "-", clip,
                   lambda x, axis, fmt=fmt, clip=clip: quantize(x, fmt, "per-channel", axis, clip=clip))
        for bits in (4, 8):
            for clip in ("max", "mse"):
                yield (name, "VSQ int scales", VECTOR, bits, clip,
                       lambda x, axis, fmt=fmt, bits=bits, clip=clip:
                       quantize_vsq(x, fmt, VECTOR, bits, axis, "channel", clip))


def log_quantizers():
    """``(label, scheme, V, S, clip, function(x, axis))`` of the LNS rows."""
    for name, fmt in LOG_FORMATS:
        for clip in ("max", "mse"):
            yield (name, "per-tensor", "-", "-", clip,
                   lambda x, axis, fmt=fmt, clip=clip: quantize_log(x, fmt, axis, clip=clip))
        for bits in (4, 6, 8):
            for clip in ("max", "mse"):
                yield (name, "log scales", VECTOR, bits, clip,
                       lambda x, axis, fmt=fmt, bits=bits, clip=clip: quantize_log(x, fmt, axis, VECTOR, bits, clip))


def measure(W, A):
    """``[(label, scheme, V, S, clip, SQNR of W @ A)]`` for every quantizer."""
    Y = W @ A
    rows = [(*q[:5], sqnr_db(Y, vsq_gemm(q[5](W, 1), q[5](A, 0)))) for q in int_quantizers()]
    rows += [(*q[:5], sqnr_db(Y, log_gemm_reference(q[5](W, 1), q[5](A, 0)))) for q in log_quantizers()]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256, help="N, rows of W (default 256)")
    parser.add_argument("--depth", type=int, default=1024, help="K, the reduction length (default 1024)")
    parser.add_argument("--cols", type=int, default=256, help="M, columns of A (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of W; A uses seed + 1 (default 0)")
    args = parser.parse_args()

    results = {dist: measure(synthetic(dist, (args.rows, args.depth), args.seed),
                             synthetic(dist, (args.depth, args.cols), args.seed + 1))
               for dist in DISTRIBUTIONS}
    print(f"W: {args.rows} x {args.depth} (seed {args.seed}), A: {args.depth} x {args.cols} (seed {args.seed + 1}), "
          f"i.i.d., unit variance; SQNR of W @ A in dB\n")
    header = ["format", "scheme", "V", "S", "clip", *DISTRIBUTIONS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for i, row in enumerate(results["gaussian"]):
        cells = [str(c) for c in row[:5]] + [f"{results[dist][i][5]:.2f}" for dist in DISTRIBUTIONS]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
