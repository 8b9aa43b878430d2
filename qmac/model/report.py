"""Model-level answers: run a network quantized and in FP32 on the same samples, compare, and report.

The report (``qmac model --json``) is one object::

    {"model", "format", "ptq",
     "output": {"cosine_mean", "cosine_min", "sqnr_db", "top1_agreement"},
     "layers": [{"name", "op", "shape": [N, K, M], "format", "sqnr_db", "bit_exact"}]}

``cosine`` is between the quantized and the onnxruntime FP32 outputs of one sample (all graph outputs
flattened and concatenated), mean and min over samples; ``sqnr_db`` over all samples' outputs;
``top1_agreement`` is the fraction of rows whose argmax agrees, over the 2-D outputs (batch x classes), or
``None`` when no output is 2-D. A layer's ``sqnr_db`` is its own error (:class:`~qmac.model.execute.LayerStats`)
and its ``shape`` that of its first GEMM; ``bit_exact`` is ``None`` unless it ran on an RTL engine. Numbers that
are not finite (an exact FP32 layer's SQNR) are ``None``, so the JSON is strict.
"""

import fnmatch
import glob
import math
from pathlib import Path

import numpy as np

from qmac.sim.quantize import sqnr_db

from .execute import QuantizedNetwork, reference_outputs

__all__ = ["samples", "evaluate", "output_metrics", "sensitivity", "format_table", "plot_layers"]


def samples(data, names):
    """Feed dicts, one per sample, from ``data`` (a mapping name -> array, samples along axis 0; each sample
    keeps a batch axis of 1).

    Raises
    ------
    ValueError
        An input is missing or the inputs hold different numbers of samples.
    """
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"holds {', '.join(data) or 'no arrays'}; allowed: an array for every model input "
                         f"({', '.join(names)}), {missing[0]!r} is missing")
    counts = {n: len(data[n]) for n in names}
    if len(set(counts.values())) != 1 or not next(iter(counts.values()), 0):
        raise ValueError(f"holds {counts} samples; allowed: the same positive number of samples for every input")
    count = next(iter(counts.values()))
    return [{n: np.asarray(data[n][i:i + 1]) for n in names} for i in range(count)]


def _finite(x):
    return float(x) if x is not None and math.isfinite(x) else None


def output_metrics(quantized, reference):
    """``{"cosine_mean", "cosine_min", "sqnr_db", "top1_agreement"}`` of per-sample output lists."""
    cos, refs, outs, agree, rows = [], [], [], 0, 0
    for q, r in zip(quantized, reference):
        qf = np.concatenate([np.ravel(x).astype(np.float64) for x in q])
        rf = np.concatenate([np.ravel(x).astype(np.float64) for x in r])
        norm = np.linalg.norm(qf) * np.linalg.norm(rf)
        cos.append(float(qf @ rf / norm) if norm > 0 else float(np.array_equal(qf, rf)))
        refs.append(rf)
        outs.append(qf)
        for qx, rx in zip(q, r):
            if np.ndim(rx) == 2:
                agree += int(np.sum(np.argmax(qx, axis=-1) == np.argmax(rx, axis=-1)))
                rows += rx.shape[0]
    return {"cosine_mean": _finite(np.mean(cos)), "cosine_min": _finite(np.min(cos)),
            "sqnr_db": _finite(sqnr_db(np.concatenate(refs), np.concatenate(outs))),
            "top1_agreement": agree / rows if rows else None}


def evaluate(net, data, scheme, ptq="none", progress=None, reference=None, **options):
    """Run ``net`` on every sample of ``data`` quantized by ``scheme`` (``None``: FP32) and in FP32 on
    onnxruntime, and return the report (module docstring). ``options`` go to
    :class:`~qmac.model.execute.QuantizedNetwork` (``config``, ``overrides``, ``calibration`` as feed
    dicts, ``attention``, ``engine``, ``rtl``, ``notify``); ``progress`` wraps the sample list (e.g.
    ``tqdm``); ``reference`` reuses onnxruntime outputs already computed."""
    feeds = samples(data, net.inputs)
    qnet = QuantizedNetwork(net, scheme, ptq=ptq, **options)
    outputs = [qnet(f) for f in (progress(feeds) if progress else feeds)]
    reference = reference if reference is not None else reference_outputs(net, feeds)
    layers = [{"name": s.name, "op": s.op, "shape": s.shape, "format": s.format, "sqnr_db": _finite(s.sqnr_db),
               "bit_exact": s.bit_exact, "engine": s.engine} for s in qnet.stats.values()]
    return {"model": net.name, "format": "fp32" if scheme is None else scheme.format, "ptq": ptq,
            "output": output_metrics(outputs, reference), "layers": layers}


def sensitivity(net, data, scheme, ptq="none", progress=None, **options):
    """Per layer, the output fidelity when only that layer is quantized (all others FP32): a list of
    ``{"name", "cosine_mean", "sqnr_db"}`` in layer order."""
    feeds = samples(data, net.inputs)
    reference = reference_outputs(net, feeds)
    names = [layer.name for layer in net.layers]
    rows = []
    for name in (progress(names) if progress else names):
        fmt = scheme.format
        for pattern, f in options.get("overrides", ()):
            fmt = f if fnmatch.fnmatchcase(name, pattern) else fmt
        only = [("*", "fp32"), (glob.escape(name), fmt)]
        report = evaluate(net, data, scheme, ptq, reference=reference, **{**options, "overrides": only})
        rows.append({"name": name, "cosine_mean": report["output"]["cosine_mean"],
                     "sqnr_db": report["output"]["sqnr_db"]})
    return rows


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_table(report):
    """The report as text: the output metrics, then one line per layer."""
    out = report["output"]
    lines = [f"model {report['model']}  format {report['format']}  ptq {report['ptq']}",
             f"output: cosine mean {_fmt(out['cosine_mean'], '.6f')}  min {_fmt(out['cosine_min'], '.6f')}  "
             f"SQNR {_fmt(out['sqnr_db'], '.2f')} dB  top-1 agreement {_fmt(out['top1_agreement'], '.4f')}",
             f"{'layer':<32} {'op':<7} {'N x K x M':<18} {'format':<7} {'SQNR dB':>8}  {'engine':<9} bit-exact"]
    for layer in report["layers"]:
        shape = "x".join(map(str, layer["shape"])) if layer["shape"] else "-"
        exact = "-" if layer["bit_exact"] is None else "yes" if layer["bit_exact"] else "NO"
        lines.append(f"{layer['name']:<32} {layer['op']:<7} {shape:<18} {layer['format']:<7} "
                     f"{_fmt(layer['sqnr_db'], '8.2f'):>8}  {layer['engine']:<9} {exact}")
    if "sensitivity" in report:
        lines.append(f"{'sensitivity: only this layer quantized':<40} {'cosine':>10} {'SQNR dB':>8}")
        for row in report["sensitivity"]:
            lines.append(f"{row['name']:<40} {_fmt(row['cosine_mean'], '10.6f')} {_fmt(row['sqnr_db'], '8.2f')}")
    return "\n".join(lines)


def plot_layers(report, path):
    """Each quantized layer's SQNR (dB), one horizontal bar per layer in graph order (names on the left, coloured
    by format), the model output's SQNR as a vertical reference line and the weakest layer marked; with
    ``report["sensitivity"]`` a second panel gives the output SQNR with only that layer quantized. PNG at ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    layers = [layer for layer in report["layers"] if layer["sqnr_db"] is not None]
    sens = {row["name"]: row["sqnr_db"] for row in report.get("sensitivity", ())}
    panels = 2 if any(sens.get(layer["name"]) is not None for layer in layers) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 + 3.5 * panels, 1.6 + 0.24 * max(1, len(layers))), sharey=True,
                             squeeze=False)
    y = list(range(len(layers)))[::-1]
    formats = list(dict.fromkeys(layer["format"] for layer in layers))
    colours = dict(zip(formats, plt.get_cmap("tab10").colors))
    ax = axes[0][0]
    ax.barh(y, [layer["sqnr_db"] for layer in layers], color=[colours[layer["format"]] for layer in layers],
            height=0.7)
    handles = [Patch(color=colours[fmt], label=f"layer format {fmt}") for fmt in formats]
    out = report["output"]["sqnr_db"]
    if out is not None:
        ax.axvline(out, color="black", ls="--", lw=1.2)
        handles.append(Line2D([], [], color="black", ls="--", label=f"model output SQNR: {out:.1f} dB"))
    if layers:
        worst = min(range(len(layers)), key=lambda i: layers[i]["sqnr_db"])
        ax.barh([y[worst]], [layers[worst]["sqnr_db"]], height=0.7, fill=False, edgecolor="red", lw=2)
        handles.append(Patch(fill=False, edgecolor="red", lw=2,
                             label=f"weakest layer: {layers[worst]['name']} ({layers[worst]['sqnr_db']:.1f} dB)"))
    ax.set_yticks(y, [layer["name"] for layer in layers], fontsize=7)
    ax.set_xlabel("layer output SQNR against FP32 (dB)")
    ax.grid(True, axis="x", alpha=0.3)
    if panels == 2:
        ax2 = axes[0][1]
        values = [sens.get(layer["name"]) for layer in layers]
        ax2.barh([yi for yi, v in zip(y, values) if v is not None], [v for v in values if v is not None],
                 color="0.55", height=0.7)
        ax2.set_xlabel("model output SQNR, only this layer quantized (dB)")
        ax2.grid(True, axis="x", alpha=0.3)
    fig.suptitle(f"{Path(report['model']).name}: {report['format']}, ptq {report['ptq']}, output cosine "
                 f"{_fmt(report['output']['cosine_mean'], '.5f')}", fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
