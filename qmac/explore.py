"""Design-space exploration: accuracy x area x energy x throughput of core configs and formats on one workload.

A space (a TOML file, docs/explore.md) lists formats (config keys and the operand flags of ``qmac gemm``), config
keys to sweep (their cross product with the formats is the list of points) and a workload (operand files or a
synthetic distribution, and the GEMM shapes utilization is measured on). Every point is evaluated by
:func:`evaluate_point`: transistors per MAC (Yosys ``stat -tech cmos`` of the whole core, :func:`synth_config`,
over its MACs per cycle), MACs per cycle, utilization on the workload's shapes (:class:`GemmPlan`: useful MACs
over beats x MACs per cycle), energy per MAC on the workload's data (:func:`qmac.energy.measure_energy`) and
accuracy (GEMM SQNR in dB of the golden model's dequantized result against the float product, or, with an ONNX
model (:class:`ModelAccuracy`), the model flow's output cosine similarity to FP32). Results are cached by the
Verilog text and a hash of the data (and of the model), so a re-run is instant. Points run in a local process
pool, or on a Dask distributed scheduler.
"""

import csv
import hashlib
import itertools
import json
import math
import tomllib
from pathlib import Path

import numpy as np

from qmac.hw.spec.config import CoreConfig

__all__ = ["SpaceError", "load_space", "points", "ModelAccuracy", "model_workload", "evaluate_point", "pareto",
           "explore", "plot"]

#: Operand flags a format may set (those of ``qmac gemm``), with their defaults.
FLAGS = {"format": "int8", "scale": "per-tensor", "vector": 16, "scale_bits": None, "scale_kind": None,
         "clip": "max", "sparse": None}
#: Columns of points.csv, in order (swept config keys follow ``format``).
COLUMNS = ("point", "format", "mode", "transistors_per_mac", "macs_per_cycle", "utilization", "energy_per_mac",
           "accuracy", "accuracy_metric", "pareto", "transistors", "bit_exact", "cached")
#: What ``accuracy`` measures (column ``accuracy_metric``): the plots' axis label and how close to the most
#: accurate point the marked best point must be (:func:`_best`).
METRICS = {"sqnr_db": ("accuracy: GEMM SQNR (dB)", 1.0),
           "cosine": ("accuracy: model output cosine similarity to FP32", 0.001)}
#: With a model: the energy run keeps at most this many output rows of W and columns (tokens) of A.
ENERGY_TILE = (16, 16)


class SpaceError(ValueError):
    """A space file's key or value is wrong; the message names it."""


def load_space(path):
    """Read a space file: ``{"base": dict, "sweep": {key: list}, "formats": [{"name", "config", "flags"}],
    "workload": dict}`` with file paths resolved against the file's folder."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise SpaceError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"{path}: not valid TOML: {e}") from None
    unknown = set(raw) - {"base", "sweep", "format", "workload"}
    if unknown:
        raise SpaceError(f"{sorted(unknown)[0]}: unknown table; allowed: base, sweep, format, workload")
    formats = raw.get("format")
    if not formats:
        raise SpaceError("format: missing; allowed: one or more [[format]] tables with name, config, flags")
    for i, fmt in enumerate(formats):
        if set(fmt) - {"name", "config", "flags"} or "name" not in fmt:
            raise SpaceError(f"format[{i}]: {sorted(fmt)}: allowed keys name (required), config, flags")
        bad = set(fmt.get("flags", {})) - set(FLAGS)
        if bad:
            raise SpaceError(f"format[{i}].flags.{sorted(bad)[0]}: unknown; allowed: {', '.join(FLAGS)}")
    sweep = raw.get("sweep", {})
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise SpaceError(f"sweep.{key}: {values!r}: a non-empty list of values")
    workload = dict(raw.get("workload", {}))
    bad = set(workload) - {"distribution", "shape", "seed", "weights", "activations", "shapes", "energy"}
    if bad:
        raise SpaceError(f"workload.{sorted(bad)[0]}: unknown; allowed: distribution, shape, seed, weights, "
                         f"activations, shapes, energy")
    for key in ("weights", "activations"):
        if key in workload:
            workload[key] = str(Path(path).parent / workload[key])
    return {"base": raw.get("base", {}), "sweep": sweep, "formats": formats, "workload": workload}


def points(space):
    """The space's points in order: ``(name, format name, config dict, flags dict, swept values)``."""
    keys = list(space["sweep"])
    out = []
    for fmt in space["formats"]:
        for values in itertools.product(*(space["sweep"][k] for k in keys)):
            swept = dict(zip(keys, values))
            name = fmt["name"] + "".join(f" {k}={v}" for k, v in swept.items())
            config = {**space["base"], **swept, **fmt.get("config", {})}
            out.append((name, fmt["name"], config, {**FLAGS, **fmt.get("flags", {})}, swept))
    return out


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


class ModelAccuracy:
    """A point's model-level accuracy: ``accuracy(config, scheme)`` runs the ONNX model ``model`` on the samples
    of ``data`` (an .npz, one array per model input) through :func:`qmac.model.evaluate` (what ``qmac model``
    runs) with every layer in ``scheme`` on ``config`` (per-tensor activation clips from ``calibrate``, an .npz
    like ``data``, if given) and returns the output's ``cosine_mean`` against onnxruntime FP32, in [-1, 1].
    Holds file paths only, so it pickles to worker processes; ``key`` hashes the three files' bytes."""

    metric = "cosine"

    def __init__(self, model, data, calibrate=None):
        self.model, self.data, self.calibrate = str(model), str(data), calibrate and str(calibrate)
        self.key = _digest(*(hashlib.sha256(Path(p).read_bytes()).hexdigest() if p else None
                             for p in (model, data, calibrate)))

    def inputs(self):
        """``(net, data arrays, calibration feed dicts or None)``."""
        from qmac.model import load, samples
        net = load(self.model)
        with np.load(self.data, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        calibration = None
        if self.calibrate:
            with np.load(self.calibrate, allow_pickle=False) as f:
                calibration = samples({k: f[k] for k in f.files}, net.inputs)
        return net, data, calibration

    def __call__(self, config, scheme):
        from qmac.model import evaluate
        net, data, calibration = self.inputs()
        report = evaluate(net, data, scheme, config=config, calibration=calibration)
        return report["output"]["cosine_mean"]


def model_workload(accuracy, max_k):
    """``(W, A, shapes)`` of a model (a :class:`ModelAccuracy`), from one FP32 run on its first data sample
    (:func:`qmac.model.execute.first_products`): ``shapes``, every layer's first GEMM ``[N, K, M]`` (as the
    ``qmac model`` report lists them), for utilization; ``W``, ``A``, the real operands of the constant-weight
    layer with the most MACs (N x K x M), for energy: its float weights and its input activations on that
    sample, cut to the first :data:`ENERGY_TILE` rows of W and columns of A and the first ``max_k`` of K, so a
    gate-level run stays short. Each point quantizes them with its own scheme."""
    from qmac.model import samples
    from qmac.model.execute import first_products
    net, data, _ = accuracy.inputs()
    products = first_products(net, samples(data, net.inputs)[0])
    shapes = [(W.shape[0], W.shape[1], A.shape[1]) for W, A in products.values()]
    weighted = [layer.name for layer in net.layers if layer.has_weights and layer.name in products]
    W, A = products[max(weighted, key=lambda n: np.prod(products[n][0].shape) * products[n][1].shape[1])]
    rows, cols = ENERGY_TILE
    return W[:rows, :max_k], A[:max_k, :cols], shapes


def evaluate_point(name, fmt, config, flags, W, A, shapes, energy=True, cache_dir="build/explore-cache",
                   accuracy=None):
    """One point's row (see :data:`COLUMNS`); cached in ``cache_dir`` by the Verilog text and the data.

    ``W`` and ``A`` are the workload's operands; accuracy is the SQNR of the dequantized result against their
    float product, so 2:4 pruning error counts.

    ``accuracy``, if given, is ``accuracy(config, scheme)`` (a model-level metric, e.g. :class:`ModelAccuracy`:
    the point's :class:`~qmac.hw.spec.config.CoreConfig` before any per-mode adaptation and its
    :class:`~qmac.quantized_gemm.Scheme`), called instead of the GEMM SQNR; its ``metric`` names it in
    ``accuracy_metric`` and its ``key`` (a hash of the model and data) enters the cache key."""
    from qmac.quantized_gemm import Scheme, prepare_operands
    from qmac.engine import run_gemm
    from qmac.hw.array.emit import emit_verilog
    from qmac.sim.gemm import plan_gemm
    from qmac.sim.quantize import sqnr_db
    from qmac.toolchain.synth import synth_config
    point_cfg = CoreConfig.from_dict(config)
    scheme = Scheme(flags["format"], flags["scale"], flags["vector"], flags["scale_bits"], flags["scale_kind"],
                    flags["clip"], bool(flags["sparse"]))
    ops = prepare_operands(point_cfg, scheme, W, A)
    cfg, mode = ops.cfg, ops.mode
    verilog, _ = emit_verilog(cfg)
    key = _digest(verilog, mode, ops.sparse, ops.Wq, ops.Aq, ops.w_scales, ops.a_scales,
                  np.asarray(W), np.asarray(A), shapes, energy, accuracy and accuracy.key)
    cached = Path(cache_dir) / f"{key}.json"
    if cached.is_file():
        return {**json.loads(cached.read_text()), "point": name, "cached": True}
    synth = synth_config(cfg, "generic")
    macs = cfg.macs_per_cycle(mode, ops.sparse)
    plans = [plan_gemm(cfg, mode, (n, k), (k, m), ops.sparse) for n, k, m in shapes]
    utilization = sum(p.useful_macs for p in plans) / sum(p.beats * macs for p in plans)
    row = {"format": fmt, "mode": mode, "transistors": synth["transistors"],
           "transistors_per_mac": synth["transistors"] / macs, "macs_per_cycle": macs, "utilization": utilization,
           "energy_per_mac": None, "bit_exact": None, "accuracy_metric": "sqnr_db"}
    if energy:
        from qmac.energy import measure_energy
        e = measure_energy(cfg, mode, ops.Wq, ops.Aq, ops.w_scales, ops.a_scales, ops.sparse)
        row.update(energy_per_mac=e["energy_per_mac"], bit_exact=e["bit_exact"])
    if accuracy is not None:
        row.update(accuracy=float(accuracy(point_cfg, scheme)), accuracy_metric=accuracy.metric)
    elif ops.is_float:
        Y = run_gemm(cfg, mode, ops.Wq, ops.Aq, w_scales=ops.w_scales, a_scales=ops.a_scales, sparse=ops.sparse)["Y"]
        # Against the product of the operands as given: 2:4 pruning error counts (ops.W is the pruned W).
        row["accuracy"] = float(sqnr_db(np.asarray(W, np.float64) @ np.asarray(A, np.float64), ops.to_float(Y)))
    else:
        row.update(accuracy=None, accuracy_metric=None)  # integer codes: exact, no float reference
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(row))
    return {**row, "point": name, "cached": False}


def pareto(rows):
    """Flags: a row is on the Pareto front if no other row has at least its accuracy, at most its energy and at
    most its transistors per MAC, and is better in one (missing values are left out of the comparison)."""
    keys = [("accuracy", -1), ("energy_per_mac", 1), ("transistors_per_mac", 1)]

    def vec(r):
        return [s * r[k] for k, s in keys if all(q.get(k) is not None for q in rows)]

    vecs = [vec(r) for r in rows]
    return [not any(all(o <= s for o, s in zip(v2, v)) and v2 != v for v2 in vecs) for v in vecs]


def _best(rows):
    """The marked point: among the Pareto points within 1 dB (GEMM SQNR) or 0.001 (cosine; :data:`METRICS`) of the
    best accuracy, the lowest energy per MAC (transistors per MAC without energy)."""
    front = [r for r in rows if r["pareto"] and r.get("accuracy") is not None]
    if not front:
        return None
    top = max(r["accuracy"] for r in front)
    near = [r for r in front if r["accuracy"] >= top - METRICS[front[0]["accuracy_metric"]][1]]
    key = "energy_per_mac" if all(r["energy_per_mac"] is not None for r in near) else "transistors_per_mac"
    return min(near, key=lambda r: r[key])


def plot(rows, out_dir):
    """``accuracy_vs_energy.png`` and ``accuracy_vs_transistors.png`` in ``out_dir``: one marker colour per
    format, the Pareto front of each pair as a step line with its points named, the best point (:func:`_best`)
    ringed. Returns the paths written (none without accuracies)."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if r.get("accuracy") is not None and math.isfinite(r["accuracy"])]
    best = _best(rows)
    written = []
    for key, label, file in (("energy_per_mac", "energy per MAC (relative units, docs/energy.md)",
                              "accuracy_vs_energy.png"),
                             ("transistors_per_mac", "transistors per MAC/cycle (Yosys stat -tech cmos)",
                              "accuracy_vs_transistors.png")):
        have = [r for r in rows if r.get(key) is not None]
        if not have:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
        for fmt in dict.fromkeys(r["format"] for r in have):
            pts = [r for r in have if r["format"] == fmt]
            ax.scatter([r[key] for r in pts], [r["accuracy"] for r in pts], s=40, label=fmt, zorder=3)
        front, top = [], -math.inf
        for r in sorted(have, key=lambda r: (r[key], -r["accuracy"])):
            if r["accuracy"] > top:
                front.append(r)
                top = r["accuracy"]
        ax.step([r[key] for r in front], [r["accuracy"] for r in front], where="post", color="0.4", lw=1,
                ls="--", label="Pareto front (better: up and left)", zorder=2)
        for r in front:  # the front's points named where they are; the rest by colour
            ax.annotate(r["point"], (r[key], r["accuracy"]), xytext=(6, -10), textcoords="offset points",
                        fontsize=7, color="0.25")
        if best is not None and best.get(key) is not None:
            ax.scatter([best[key]], [best["accuracy"]], s=260, facecolors="none", edgecolors="red", lw=2,
                       label=f"best: {best['point']}", zorder=4)
        ax.set_xlabel(label)
        ax.set_ylabel(METRICS[have[0]["accuracy_metric"]][0])
        ax.set_xscale("log")
        ax.margins(x=0.12)  # room on the right for the last front point's name
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.set_title(f"accuracy vs {'energy' if key == 'energy_per_mac' else 'transistors'} per MAC "
                     f"({len(have)} points)")
        fig.tight_layout()
        path = Path(out_dir) / file
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _submit_all(tasks, workers, scheduler):
    """Run ``evaluate_point(*args)`` for every task; yields ``(index, row)`` as they finish."""
    if scheduler:
        from distributed import Client, as_completed
        with Client(scheduler) as client:
            futures = {client.submit(evaluate_point, *args, pure=False): i for i, args in enumerate(tasks)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        return
    if workers == 1:
        for i, args in enumerate(tasks):
            yield i, evaluate_point(*args)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    with ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(evaluate_point, *args): i for i, args in enumerate(tasks)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def explore(space, out_dir, W=None, A=None, workers=1, scheduler=None, cache_dir="build/explore-cache",
            progress=None, model=None):
    """Evaluate every point of ``space`` (:func:`load_space`) and write ``points.csv``, ``points.json`` and the
    plots in ``out_dir``. ``W``/``A`` override the workload's operands; ``model`` (a :class:`ModelAccuracy`)
    replaces them and the workload's ``shapes`` with the model's (:func:`model_workload`, K cut to the
    ``max_k`` of ``[base]``) and the GEMM SQNR with its accuracy. ``progress``, if given, wraps the iterator of
    finished points as ``progress(iterator, total)`` (a progress bar). Returns the rows in point order."""
    from qmac.energy import synthetic_operands
    wl = space["workload"]
    if model is not None:
        W, A, shapes = model_workload(model, CoreConfig.from_dict(space["base"]).max_k)
        wl = {**wl, "shapes": shapes}
    if W is None and "weights" in wl:
        W, A = np.load(wl["weights"]), np.load(wl["activations"])
    if W is None:
        n, k, m = wl.get("shape", (8, 256, 8))
        W, A = synthetic_operands(wl.get("distribution", "gaussian"), n, k, m, wl.get("seed", 0))
    shapes = [tuple(s) for s in wl.get("shapes", [(W.shape[0], W.shape[1], A.shape[1])])]
    pts = points(space)
    if model is not None:
        k = max(s[1] for s in shapes)
        for name, _, config, _, _ in pts:
            if CoreConfig.from_dict(config).max_k < k:
                raise SpaceError(f"max_k: {CoreConfig.from_dict(config).max_k} (point {name!r}): the model has a "
                                 f"layer with K = {k}; allowed: max_k >= {k}")
    tasks = [(name, fmt, config, flags, W, A, shapes, wl.get("energy", True), str(Path(cache_dir).resolve()), model)
             for name, fmt, config, flags, _ in pts]
    rows = [None] * len(tasks)
    finished = _submit_all(tasks, workers, scheduler)
    for i, row in (progress(finished, len(tasks)) if progress else finished):
        rows[i] = {**pts[i][4], **row}
    for row, flag in zip(rows, pareto(rows)):
        row["pareto"] = flag
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    swept = list(space["sweep"])
    columns = ["point", "format", *swept, *COLUMNS[2:]]
    with open(out / "points.csv", "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "points.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, out)
    return rows
