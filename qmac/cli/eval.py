"""``qmac eval``: compare quantization schemes (SQNR) on tensors or synthetic data."""

import json

import numpy as np

from .common import UsageError, load_npy

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("eval", help="compare quantization schemes (SQNR) on tensors or synthetic data")
    p.add_argument("weights", nargs="?", metavar="W.npy", help="N x K float weights (default: synthetic)")
    p.add_argument("activations", nargs="?", metavar="A.npy", help="K x M float activations (optional)")
    p.add_argument("--formats", default="int8,int4")
    p.add_argument("--schemes", default="per-tensor,per-channel,vector")
    p.add_argument("--vectors", default="16,32,64")
    p.add_argument("--scale-bits", default="4,6,8")
    p.add_argument("--clips", default="max,percentile,mse")
    p.add_argument("--sparse", choices=["2:4"], help="prune W to 2:4 first and report the pruning error alone")
    p.add_argument("--n", type=int, default=256, help="synthetic: rows of W (256)")
    p.add_argument("--k", type=int, default=1024, help="synthetic: K (1024)")
    p.add_argument("--m", type=int, default=64, help="synthetic: columns of A (64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", metavar="OUT.png", help="bar chart of the SQNRs")
    p.set_defaults(func=run)


def run(args):
    from qmac.sim.evaluate import evaluate, format_table, synthetic
    if args.weights:
        tensors = {"W": (load_npy(args.weights, "weights").astype(np.float64),
                         load_npy(args.activations, "activations").astype(np.float64) if args.activations else None)}
    else:
        tensors = {name: (synthetic(name, (args.n, args.k), args.seed), synthetic("gaussian", (args.k, args.m), args.seed + 1))
                   for name in ("gaussian", "laplacian", "student-t3")}
    results = []
    for name, (W, A) in tensors.items():
        if A is not None and W.shape[1] != A.shape[0]:
            raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
        extra = {}
        if args.sparse:
            from qmac.sim.sparse24 import pad_k, pruning_error, prune_2_4
            W = pad_k(W, 4)
            if A is not None:
                A = np.pad(A, ((0, W.shape[1] - A.shape[0]), (0, 0)))
            extra = {"pruning_" + k: v for k, v in pruning_error(W).items()}
            W = prune_2_4(W)
        try:
            rows = evaluate(W, A, formats=args.formats.split(","), schemes=args.schemes.split(","),
                            vectors=_int_list("--vectors", args.vectors),
                            scale_bits=_int_list("--scale-bits", args.scale_bits), clips=args.clips.split(","))
        except ValueError as e:
            raise UsageError(str(e)) from None
        results.append({"tensor": name, **extra, "rows": rows})
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"## {r['tensor']}" + (f" (2:4 pruning alone: SQNR {r['pruning_sqnr_db']:.2f} dB, relative L2 "
                                         f"error {r['pruning_relative_l2']:.4f})" if args.sparse else ""))
            print(format_table(r["rows"]) + "\n")
    if args.plot:
        _plot_eval(results, args.plot)
    return 0


def _int_list(flag, text):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} must be comma-separated integers, not {text!r}") from None


def _plot_eval(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        labels = [f"{x['format']} {x['scheme']}" + (f" V{x['vector']} S{x['scale_bits']}" if x["vector"] else "")
                  + f" {x['clip']}" for x in r["rows"]]
        key = "sqnr_y_db" if r["rows"][0]["sqnr_y_db"] is not None else "sqnr_w_db"
        ax.barh(range(len(labels)), [x[key] for x in r["rows"]])
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xlabel(("output" if key == "sqnr_y_db" else "weight") + " SQNR (dB)")
        ax.set_title(r["tensor"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
