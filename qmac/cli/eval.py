"""``qmac eval``: compare quantization schemes (SQNR) on tensors or synthetic data."""

import json
import sys

import numpy as np

from .common import UsageError, json_safe
from .inputs import PLOT_SUFFIXES, as_floats, integer, load_array, output_file, write_atomically

__all__ = ["add_parser", "run"]

#: Largest synthetic tensor, in elements (``--n * --k``, ``--k * --m``): 128 MiB of float64 each.
MAX_ELEMENTS = 1 << 24
_FORMATS = ("int8", "int4")
_SCHEMES = ("per-tensor", "per-channel", "vector")
_CLIPS = ("max", "percentile", "mse")


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
    p.add_argument("--plot", metavar="OUT.png", help="SQNR against vector length, one panel per format and tensor ("
                   + ", ".join(PLOT_SUFFIXES) + ")")
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
    """SQNR (dB) against vector length V, one panel per tensor (row) and format (column): one line per scale
    width S (colour) and clip method (line style) of the vector scheme, the per-tensor and per-channel schemes as
    horizontal reference lines (their best clip), the panel's best configuration starred. The SQNR is the
    output's (W @ A) when activations were given, else the weights'."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    formats = list(dict.fromkeys(x["format"] for r in results for x in r["rows"]))
    key = "sqnr_y_db" if results[0]["rows"][0]["sqnr_y_db"] is not None else "sqnr_w_db"
    bits = sorted({x["scale_bits"] for r in results for x in r["rows"] if x["vector"]})
    clips = list(dict.fromkeys(x["clip"] for r in results for x in r["rows"]))
    colours = dict(zip(bits, plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(1, len(bits))))))
    styles = dict(zip(clips, ("-", "--", ":", "-.")))
    schemes = {x["scheme"] for r in results for x in r["rows"]}
    baselines = {s: c for s, c in (("per-tensor", "tab:red"), ("per-channel", "tab:orange")) if s in schemes}
    fig, axes = plt.subplots(len(results), len(formats), figsize=(4.6 * len(formats) + 1.2, 3.4 * len(results)),
                             squeeze=False)
    for row_axes, r in zip(axes, results):
        for ax, fmt in zip(row_axes, formats):
            rows = [x for x in r["rows"] if x["format"] == fmt and x[key] is not None and np.isfinite(x[key])]
            vectors = sorted({x["vector"] for x in rows if x["vector"]})
            for b in bits:
                for clip in clips:
                    line = sorted((x["vector"], x[key]) for x in rows
                                  if x["vector"] and x["scale_bits"] == b and x["clip"] == clip)
                    if line:
                        ax.plot(*zip(*line), color=colours[b], ls=styles[clip], marker="o", ms=4, lw=1.4)
            for scheme, colour in baselines.items():
                base = [x for x in rows if x["scheme"] == scheme]
                if base:
                    top = max(base, key=lambda x: x[key])
                    ax.axhline(top[key], color=colour, lw=1.2, ls=(0, (6, 3)))
                    # the two labels on opposite sides of their lines: close baselines stay readable
                    above = scheme == "per-channel"
                    ax.annotate(f"{scheme} ({top['clip']}) {top[key]:.1f} dB", (0.02, top[key]),
                                xycoords=("axes fraction", "data"), xytext=(0, 2 if above else -2),
                                textcoords="offset points", fontsize=7, color=colour, va="bottom" if above else "top")
            title = f"{fmt}, {r['tensor']}"
            if rows:
                best = max(rows, key=lambda x: x[key])
                if best["vector"]:
                    ax.plot(best["vector"], best[key], marker="*", ms=14, color="red", mec="black", zorder=5)
                    title += f"\nbest {best[key]:.1f} dB: V={best['vector']}, S={best['scale_bits']}, {best['clip']}"
            if vectors:
                ax.set_xscale("log", base=2)
                ax.set_xticks(vectors, [str(v) for v in vectors])
                ax.minorticks_off()
                pad = 2 ** 0.3
                ax.set_xlim(vectors[0] / pad, vectors[-1] * pad)
            else:
                ax.set_xticks([])
            ax.margins(y=0.18)
            ax.grid(True, alpha=0.3)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("vector length V (elements per scale)")
            ax.set_ylabel(("output W@A" if key == "sqnr_y_db" else "weight") + " SQNR (dB)")
    handles = ([Line2D([], [], color=colours[b], marker="o", lw=1.4, label=f"vector, S={b}-bit scales") for b in bits]
               + [Line2D([], [], color="0.3", ls=styles[c], lw=1.4, label=f"clip: {c}") for c in clips if bits]
               + [Line2D([], [], color=c, ls=(0, (6, 3)), label=f"{s} (best clip)") for s, c in baselines.items()]
               + [Line2D([], [], color="red", mec="black", marker="*", ms=12, ls="", label="best of the panel")
                  for _ in bits[:1]])
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.9 / fig.get_figwidth(), 1))
    fmt = path.rsplit(".", 1)[-1].lower()
    write_atomically("--plot", path, lambda f: fig.savefig(f, dpi=110, format=fmt))
    plt.close(fig)
