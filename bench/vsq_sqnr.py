"""SQNR of INT4/INT8 weight quantizers: per tensor, per channel, per vector (integer and power-of-two scales).

Prints two markdown tables. The first has one row per quantizer and one column per distribution and clip
method: the SQNR (dB) of a synthetic weight matrix W (N x K, i.i.d., unit variance) quantized along K. The
second is the headline: how much per-vector scaling gains over per-channel scaling at INT4, same clip method.
Results and the command line that produced them: ``docs/vsq.md``.

Usage: ``python bench/vsq_sqnr.py [--rows N] [--cols K] [--seed SEED]``
"""

import argparse

from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.sim.evaluate import DISTRIBUTIONS, evaluate, synthetic
from qmac.sim.quantize import quantize_vsq, sqnr_db

FORMATS = ("int4", "int8")
VECTORS = (16, 32, 64)
SCALE_BITS = (4, 6, 8)
POW2_SCALE_BITS = (2, 3)
CLIPS = ("max", "mse")


def measure(W):
    """``{(format, scheme, V, S, clip): SQNR}`` for every quantizer of the benchmark on weights W."""
    results = {(r["format"], r["scheme"], r["vector"], r["scale_bits"], r["clip"]): r["sqnr_w_db"]
               for r in evaluate(W, formats=FORMATS, vectors=VECTORS, scale_bits=SCALE_BITS, clips=CLIPS)}
    for name in FORMATS:
        for vector in VECTORS:
            for bits in POW2_SCALE_BITS:
                for clip in CLIPS:
                    t = quantize_vsq(W, ELEMENT_FORMATS[name], vector, bits, 1, "channel", clip, "pow2")
                    results[name, "vector-pow2", vector, bits, clip] = sqnr_db(W, t.dequantize())
    return results


def table(header, lines):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(line) + " |" for line in lines])


def bits_per_element(name, vector, bits):
    """Element bits plus the per-vector scale amortized over V (the per-channel ``gamma`` is left out)."""
    return ELEMENT_FORMATS[name].bits + (bits / vector if vector else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256, help="N, output channels of W (default 256)")
    parser.add_argument("--cols", type=int, default=1024, help="K, reduction length of W (default 1024)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    args = parser.parse_args()

    results = {dist: measure(synthetic(dist, (args.rows, args.cols), args.seed)) for dist in DISTRIBUTIONS}
    columns = [(dist, clip) for dist in DISTRIBUTIONS for clip in CLIPS]
    heads = [f"{dist} {clip}" for dist, clip in columns]
    quantizers = sorted(dict.fromkeys(config[:4] for config in results["gaussian"]),
                        key=lambda quantizer: FORMATS.index(quantizer[0]))

    def sqnr(quantizer, dist, clip):
        return results[dist][(*quantizer, clip)]

    print(f"W: {args.rows} x {args.cols}, i.i.d., unit variance, seed {args.seed}; SQNR of W in dB\n")
    print(table(["format", "scheme", "V", "S", "bits/elem"] + heads,
                [[name, scheme, str(vector or "-"), str(bits or "-"), f"{bits_per_element(name, vector, bits):.3g}"]
                 + [f"{sqnr((name, scheme, vector, bits), dist, clip):.2f}" for dist, clip in columns]
                 for name, scheme, vector, bits in quantizers]))

    print("\nINT4: per-vector SQNR minus per-channel SQNR with the same clip, in dB\n")
    channel = ("int4", "per-channel", None, None)
    print(table(["scheme", "V", "S"] + heads,
                [[q[1], str(q[2]), str(q[3])]
                 + [f"{sqnr(q, dist, clip) - sqnr(channel, dist, clip):+.2f}" for dist, clip in columns]
                 for q in quantizers if q[0] == "int4" and q[2]]))


if __name__ == "__main__":
    main()
