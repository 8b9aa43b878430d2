"""Speed of ``qmac model`` on the golden model: a 6-layer, 384-wide, 12-head BERT encoder (seeded random
weights of all-MiniLM-L6-v2's shapes, so no package is needed) on one sample of 256 tokens, per scheme.

    python bench/model_speed.py [--tokens 256] [--layers 6]

Prints one row per scheme: wall time of the quantized run (graph, quantizers and golden GEMMs; the FP32
onnxruntime reference and model building excluded) and the output cosine against FP32.
"""

import argparse
import time

import numpy as np

from qmac.model import QuantizedNetwork, Scheme, load, output_metrics, reference_outputs
from qmac.model.encoder import bert_encoder, random_bert_weights

SCHEMES = {
    "fp32": None,
    "int8 per-tensor": Scheme("int8"),
    "int8 vsq16": Scheme("int8", "vector", 16),
    "int4 per-channel": Scheme("int4", "per-channel"),
    "int4 vsq16": Scheme("int4", "vector", 16),
    "int8 2:4": Scheme("int8", sparse=True),
    "lns8": Scheme("lns8"),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    args = p.parse_args()
    net = load(bert_encoder(random_bert_weights(args.layers, 384, 12, 1536, vocab=1000, positions=512), args.layers,
                            12))
    feeds = {"input_ids": np.random.default_rng(0).integers(0, 1000, (1, args.tokens))}
    ref = reference_outputs(net, [feeds])
    print(f"{'scheme':<18} {'seconds':>8} {'cosine':>10}")
    for name, scheme in SCHEMES.items():
        qnet = QuantizedNetwork(net, scheme, notify=lambda message: None)
        t = time.perf_counter()
        out = qnet(feeds)
        seconds = time.perf_counter() - t
        print(f"{name:<18} {seconds:8.2f} {output_metrics([out], ref)['cosine_mean']:10.6f}", flush=True)


if __name__ == "__main__":
    main()
