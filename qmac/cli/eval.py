"""``qmac eval``: compare quantization schemes (SQNR) on tensors or synthetic data."""

import json
import sys

import numpy as np

from .common import UsageError, json_safe
from .inputs import as_floats, integer, load_array, output_file, write_atomically

__all__ = ["add_parser", "run"]

#: Largest synthetic tensor, in elements (``--n * --k``, ``--k * --m``): 128 MiB of float64 each.
MAX_ELEMENTS = 1 << 24
_FORMATS = ("int8", "int4")
_SCHEMES = ("per-tensor", "per-channel", "vector")
_CLIPS = ("max", "percentile", "mse")
#: What ``--plot`` can write (matplotlib's Agg canvas).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def add_parser(subparsers):
    p = subparsers.add_parser("eval", help="compare quantization schemes (SQNR) on tensors or synthetic data")
    p.add_argument("weights", nargs="?", metavar="W.npy", help="N x K float weights (default: synthetic)")
    p.add_argument("activations", nargs="?", metavar="A.npy", help="K x M float activations (optional)")
    p.add_argument("--formats", default="int8,int4", help=f"comma-separated: {', '.join(_FORMATS)}")
    p.add_argument("--schemes", default="per-tensor,per-channel,vector", help=f"comma-separated: {', '.join(_SCHEMES)}")
    p.add_argument("--vectors", default="16,32,64", help="comma-separated vector lengths V (vector scheme)")
    p.add_argument("--scale-bits", default="4,6,8", help="comma-separated scale widths S, 1..8 (vector scheme)")
    p.add_argument("--clips", default="max,percentile,mse", help=f"comma-separated: {', '.join(_CLIPS)}")
    p.add_argument("--sparse", choices=["2:4"], help="prune W to 2:4 first and report the pruning error alone")
    p.add_argument("--n", type=integer(1, MAX_ELEMENTS), help="synthetic: rows of W (256)")
    p.add_argument("--k", type=integer(1, MAX_ELEMENTS), help="synthetic: K (1024)")
    p.add_argument("--m", type=integer(1, MAX_ELEMENTS), help="synthetic: columns of A (64)")
    p.add_argument("--seed", type=integer(0, 2 ** 63 - 1), help="synthetic: seed (0)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", metavar="OUT.png", help="bar chart of the SQNRs (" + ", ".join(PLOT_SUFFIXES) + ")")
    p.set_defaults(func=run)


def _inputs(args):
    """``{name: (W, A or None)}``: the files given, or the three synthetic weight distributions.

    Every tensor is divided by a power of two near its largest magnitude (exact in floating point): SQNRs
    are unchanged, and no square or product of huge or tiny inputs can overflow or underflow."""
    from qmac.sim.evaluate import synthetic
    if args.weights:
        for flag in ("--n", "--k", "--m", "--seed"):
            if getattr(args, flag[2:]) is not None:
                raise UsageError(flag, getattr(args, flag[2:]), "applies only to synthetic data (no W.npy given)")
        W = _read("W.npy", args.weights)
        A = _read("A.npy", args.activations) if args.activations else None
        if A is not None and W.shape[1] != A.shape[0]:
            raise UsageError("A.npy", args.activations, f"has shape {A.shape}; allowed: {W.shape[1]} rows, the K "
                             f"of W.npy {W.shape}")
        return {"W": (W, A)}
    n, k, m, seed = (args.n or 256), (args.k or 1024), (args.m or 64), (args.seed or 0)
    for flags, size in (("--n x --k", n * k), ("--k x --m", k * m)):
        if size > MAX_ELEMENTS:
            raise UsageError(flags, size, f"elements; allowed: at most {MAX_ELEMENTS}")
    return {name: (synthetic(name, (n, k), seed), synthetic("gaussian", (k, m), seed + 1))
            for name in ("gaussian", "laplacian", "student-t3")}


def _read(flag, path):
    x = as_floats(load_array(flag, path))
    peak = float(np.max(np.abs(x)))
    if peak == 0:
        raise UsageError(flag, path, "holds only zeros; allowed: a tensor with a non-zero element (the SQNR "
                         "of zeros is undefined)")
    return np.ldexp(x, -np.frexp(peak)[1])


def run(args):
    from qmac.sim.evaluate import evaluate, format_table
    plot = output_file("--plot", args.plot, PLOT_SUFFIXES)
    options = dict(formats=_choices("--formats", args.formats, _FORMATS),
                   schemes=_choices("--schemes", args.schemes, _SCHEMES),
                   vectors=_int_list("--vectors", args.vectors, 1 << 20),
                   scale_bits=_int_list("--scale-bits", args.scale_bits, 8),
                   clips=_choices("--clips", args.clips, _CLIPS))
    results = []
    for name, (W, A) in _inputs(args).items():
        extra = {}
        if args.sparse:
            from qmac.sim.sparse24 import pad_k, pruning_error, prune_2_4
            W = pad_k(W, 4)
            if A is not None:
                A = np.pad(A, ((0, W.shape[1] - A.shape[0]), (0, 0)))
            extra = {"pruning_" + k: v for k, v in pruning_error(W).items()}
            W = prune_2_4(W)
        try:
            rows = evaluate(W, A, **options)
        except ValueError as e:
            raise UsageError("--vectors", args.vectors, str(e)) from None
        results.append({"tensor": name, **extra, "rows": rows})
    if args.json:
        notes = []
        print(json.dumps(json_safe(results, notes), allow_nan=False))
        for note in dict.fromkeys(notes):
            print(f"qmac: note: {note}", file=sys.stderr)
    else:
        for r in results:
            print(f"## {r['tensor']}" + (f" (2:4 pruning alone: SQNR {r['pruning_sqnr_db']:.1f} dB, relative L2 "
                                         f"error {r['pruning_relative_l2']:.3g})" if args.sparse else ""))
            print(format_table(r["rows"]) + "\n")
    if plot:
        _plot_eval(results, plot)
    return 0


def _choices(flag, text, allowed):
    values = text.split(",")
    for v in values:
        if v not in allowed:
            raise UsageError(flag, text, f"{v!r} is unknown; allowed: comma-separated {', '.join(allowed)}")
    return values


def _int_list(flag, text, hi):
    try:
        values = [int(v, 10) for v in text.split(",")]
    except ValueError:
        values = None
    if values is None or not all(1 <= v <= hi for v in values):
        raise UsageError(flag, text, f"allowed: comma-separated integers 1..{hi}")
    return values


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
    fmt = path.rsplit(".", 1)[-1].lower()
    write_atomically("--plot", path, lambda f: fig.savefig(f, dpi=120, format=fmt))
    plt.close(fig)
