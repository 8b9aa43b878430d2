"""One MatMul layer of all-MiniLM-L6-v2 as ``W.npy`` (N x K float weights) and ``A.npy`` (K x M float input
activations, one column per token) for ``qmac energy --weights W.npy --activations A.npy`` (docs/energy.md,
"Real-layer data").

The graph and its token inputs are those of ``bench/minilm.py`` (run it first); the layer runs in FP32 on the
first sample of ``X.npz`` through :class:`qmac.model.execute.QuantizedNetwork`, which hands every layer's
product to one method as ``W @ A`` in qmac's orientation; that call's operands are captured. ``--rows`` and
``--tokens`` keep the first output rows of W and the first tokens of A, ``--k`` the first K (all by default: a
core's ``max_k`` may be smaller than a layer's K), so that a gate-level run of a small core stays short; the
values are the layer's own.

    python bench/minilm.py --out build/minilm --tokens 64
    python bench/minilm_layer.py --layer layer0/query/matmul --rows 16 --tokens 16 --out build/minilm/query0
"""

import argparse
from pathlib import Path

import numpy as np

from qmac.model import load, samples
from qmac.model.execute import first_products


def capture(model, data, layer_name):
    """``(W, A)`` of the first product of layer ``layer_name`` on the first sample of ``data`` (an .npz path)."""
    net = load(model)
    names = [layer.name for layer in net.layers]
    if layer_name not in names:
        raise SystemExit(f"--layer: {layer_name!r}: allowed: {', '.join(names)}")
    with np.load(data) as f:
        feeds = samples({k: f[k] for k in f.files}, net.inputs)
    return first_products(net, feeds[0])[layer_name]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="build/minilm/minilm.onnx")
    p.add_argument("--data", default="build/minilm/X.npz")
    p.add_argument("--layer", default="layer0/query/matmul", help="the MatMul's layer name (qmac model's table)")
    p.add_argument("--rows", type=int, default=16, help="first output rows of W kept (default 16)")
    p.add_argument("--tokens", type=int, default=16, help="first tokens (columns of A) kept (default 16)")
    p.add_argument("--k", type=int, help="first K (inner dimension) kept (default all)")
    p.add_argument("--out", required=True, help="folder for W.npy and A.npy")
    args = p.parse_args()
    W, A = capture(args.model, args.data, args.layer)
    W, A = W[:args.rows, :args.k], A[:args.k, :args.tokens]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "W.npy", W)
    np.save(out / "A.npy", A)
    kurt = {name: float(((x - x.mean()) ** 4).mean() / x.var() ** 2) for name, x in (("W", W), ("A", A))}
    print(f"{args.layer}: W {W.shape} (kurtosis {kurt['W']:.1f}), A {A.shape} (kurtosis {kurt['A']:.1f}, "
          f"{np.mean(A == 0):.0%} zeros) -> {out}")


if __name__ == "__main__":
    main()
