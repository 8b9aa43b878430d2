"""The ``qmac`` command line: generate Verilog, run GEMMs on the golden model or the RTL, synthesize."""

import argparse
import contextlib
import os
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..hw.config import MODES, PRESETS, ConfigError, CoreConfig, code_range, load_config, per_lane, preset

__all__ = ["main"]


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


def _config(args):
    if getattr(args, "config", None) and getattr(args, "preset", None):
        raise UsageError("give --config or --preset, not both")
    if getattr(args, "config", None):
        return load_config(args.config)
    return preset(args.preset or "default")


def _add_config_args(p):
    p.add_argument("--config", metavar="FILE", help="TOML config file (see README, 'Configuration')")
    p.add_argument("--preset", metavar="NAME", help=f"embedded config: {', '.join(PRESETS)} (default: default)")


def cmd_generate(args):
    cfg = _config(args)
    v, j, seconds = _write(cfg, args.out)
    if cfg.lns:
        spec = cfg.log_sum
        acc = (f"{cfg.log_format.buckets} exact {cfg.bucket_format.bits}-bit fraction accumulators per unit, "
               f"{cfg.acc_format.bits}-bit results x 2**{spec.result_exponent}")
    else:
        acc = f"{cfg.acc_format.bits}-bit {'saturating' if cfg.saturating else 'exact'} accumulators"
    print(f"wrote {v} and {j} in {seconds:.1f} s "
          f"({cfg.rows}x{cfg.cols} array, V={cfg.lanes}, modes {'/'.join(cfg.modes)}, {acc})")
    return 0


def _write(cfg, out):
    from ..hw.emit import write_core
    return write_core(cfg, out)


def print_report(report, as_json):
    """A command's result: one JSON object, or one aligned ``key: value`` line per entry."""
    if as_json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>14}: {v}")


def _load_npy(path, name):
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"--{name} {path!r} cannot be read as a .npy array: {e}") from None
    if x.ndim != 2:
        raise UsageError(f"--{name} {path!r} must be a 2-D array, not shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UsageError(f"--{name} {path!r} must hold integers (codes) or floats, not {x.dtype}")
    return x


@contextlib.contextmanager
def _stdout_to_stderr():
    """Simulator chatter goes to stderr so that stdout carries only the report (``--json``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _with(cfg, note, **changes):
    """``cfg`` with ``changes`` (what the flags need), announced on stderr. If the widths then pass 64
    bits, ``max_k`` is lowered to the GEMM's K (``changes['k']``) as a second try."""
    k = changes.pop("k")
    try:
        new = cfg.replace(**changes)
    except ConfigError as first:
        lo = 2 * cfg.lanes * min(per_lane(m) for m in changes.get("modes", cfg.modes))
        max_k = max(lo, 1 << (k - 1).bit_length())
        try:
            new = cfg.replace(max_k=max_k, **changes)
        except ConfigError:
            raise UsageError(f"{note}: {first}") from None
        changes["max_k"] = max_k
    if new != cfg:
        print(f"qmac: note: {note}; using the config with "
              + ", ".join(f"{key} = {value!r}" for key, value in changes.items()), file=sys.stderr)
    return new


def _quantize_operands(args, cfg, W, A, mode):
    """Float operands -> ``(config, W codes, A codes, W tensor or None, A tensor or None, to_float)``
    per the --scale options (INT: :class:`VsqTensor`; LNS: :class:`LogTensor`, also per tensor), where
    ``to_float(Y)`` turns the core's results into floats; the config gains scale units when the scheme
    needs them and it has none."""
    vector = args.vector if args.scale == "vector" else None
    bits = args.scale_bits if args.scale == "vector" else None
    if cfg.lns:
        from ..sim.log_dot_product import value
        from ..sim.log_quantize import quantize_log
        if args.scale == "per-channel":
            raise UsageError(f"--scale per-channel is not supported with --format {mode}; allowed: per-tensor, vector")
        bits = bits if bits is not None else 0
        try:
            qw = quantize_log(W, cfg.log_format, 1, vector, bits, args.clip)
            qa = quantize_log(A, cfg.log_format, 0, vector, bits, args.clip)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if vector and (cfg.scale_bits != bits or cfg.scale_kind != "log"):
            cfg = _with(cfg, f"--scale vector --scale-bits {bits} needs {bits}-bit log scale units",
                        scale_bits=bits, scale_kind="log", k=W.shape[1])
        factor = 2.0 ** ((qw.offset + qa.offset) / cfg.log_format.buckets)
        return (cfg, qw.codes, qa.codes, qw if vector else None, qa if vector else None,
                lambda Y, cfg=cfg: value(cfg.log_sum, Y) * factor)
    from ..hw.formats import ELEMENT_FORMATS
    from ..sim.quantize import quantize
    kind = args.scale_kind if args.scale == "vector" else "int"
    try:
        qw = quantize(W, ELEMENT_FORMATS[mode], args.scale, 1, vector, bits, args.clip, kind)
        qa = quantize(A, ELEMENT_FORMATS[mode], args.scale, 0, vector, bits, args.clip, kind)
    except ValueError as e:
        raise UsageError(str(e)) from None
    gamma = qw.gamma * qa.gamma  # (N, 1) * (1, M)
    if args.scale != "vector":
        return cfg, qw.codes, qa.codes, None, None, lambda Y: Y * gamma
    if not cfg.scale_bits or cfg.scale_kind != kind or cfg.scale_bits < bits:
        cfg = _with(cfg, f"--scale-bits {bits} --scale-kind {kind} needs {kind} scales of {bits} bits",
                    scale_bits=bits, scale_kind=kind, k=W.shape[1])
    return cfg, qw.codes, qa.codes, qw, qa, lambda Y: Y * gamma


def cmd_gemm(args):
    from ..sim.gemm import core_scales, plan_gemm
    from ..sim.quantize import sqnr_db
    from .engine import run_gemm
    cfg = _config(args)
    W, A = _load_npy(args.weights, "weights"), _load_npy(args.activations, "activations")
    if W.shape[1] != A.shape[0]:
        raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
    mode = args.format
    if mode not in cfg.modes:
        if mode in ("int8", "int4") and not cfg.lns:
            raise UsageError(f"--format {mode!r} is not built into this core; allowed: {', '.join(cfg.modes)}")
        # A different datapath: the same array with this mode's lanes (and no INT-only extras).
        extras = {"scale_bits": 0, "scale_kind": "int", "scale_lanes": None, "sparse": False, "output_stage": False,
                  "acc_bits": None, "p_bits": None, "q_floor": None, "bucket_organisation": None}
        cfg = _with(cfg, f"--format {mode} is not built into this core", modes=(mode,), k=W.shape[1],
                    **{key: value for key, value in extras.items() if getattr(cfg, key) != value})
    if args.sparse and cfg.lns:
        raise UsageError(f"--sparse 2:4 is not supported with --format {mode}; allowed: the int8 and int4 formats")
    if args.scale_kind is not None and cfg.lns:
        raise UsageError(f"--scale-kind applies to the int formats; {mode} takes log scales")
    args.scale_kind = args.scale_kind or "int"
    args.scale_bits = args.scale_bits if args.scale_bits is not None else 4 if cfg.lns else 8
    is_float = np.issubdtype(W.dtype, np.floating) or np.issubdtype(A.dtype, np.floating)
    w_scales = a_scales = None
    sparse_report = {}
    if args.sparse:
        from ..sim.sparse24 import is_2_4, pad_k, pruning_error, prune_2_4
        if W.shape[1] % 4:
            W, A = pad_k(W, 4), np.pad(A, ((0, -W.shape[1] % 4), (0, 0)))
        if is_2_4(W):
            sparse_report = {"sparse": "2:4", "pruned": False}
        else:
            err = pruning_error(W.astype(np.float64))
            sparse_report = {"sparse": "2:4", "pruned": True, "pruning_sqnr_db": err["sqnr_db"],
                             "pruning_relative_error": err["relative_l2"]}
            W = prune_2_4(W)
        if not cfg.sparse:
            cfg = cfg.replace(sparse=True)
            print("qmac: note: this config has no 2:4 operand selection; using it with sparse = true",
                  file=sys.stderr)
    if is_float:
        cfg, Wq, Aq, qw, qa, to_float = _quantize_operands(args, cfg, W, A, mode)
        if qw is not None:
            try:
                plan = plan_gemm(cfg, mode, Wq.shape, Aq.shape, bool(args.sparse))
                w_scales, a_scales = core_scales(qw, plan), core_scales(qa, plan)
            except ValueError as e:
                raise UsageError(str(e)) from None
    else:
        if args.scale != "per-tensor":
            raise UsageError("--scale applies to float inputs; integer inputs are taken as codes")
        Wq, Aq = W.astype(np.int64), A.astype(np.int64)
        lo, hi = code_range(mode)
        for name, x in (("weights", Wq), ("activations", Aq)):
            if x.size and (x.min() < lo or x.max() > hi):
                raise UsageError(f"--{name} codes span [{x.min()}, {x.max()}]; {mode} allows [{lo}, {hi}]")
    try:
        with _stdout_to_stderr():
            res = run_gemm(cfg, mode, Wq, Aq, engine=args.engine, gap=args.stall, ready=1 - args.stall,
                           seed=args.seed, w_scales=w_scales, a_scales=a_scales, sparse=bool(args.sparse))
    except ValueError as e:
        raise UsageError(str(e)) from None
    Y = res["Y"]
    report = {"engine": args.engine, "format": mode, "shape": [int(W.shape[0]), int(W.shape[1]), int(A.shape[1])],
              "bit_exact": res["bit_exact"], "cycles": res["cycles"], "ideal_cycles": res["ideal_cycles"],
              "utilization": res["utilization"], "saturated": res["saturated"], **sparse_report}
    if cfg.lns:
        report["result_exponent"] = cfg.log_sum.result_exponent
    if is_float:
        Y = to_float(Y)
        ref = W.astype(np.float64) @ A.astype(np.float64)
        report.update(scale=args.scale, sqnr_db=float(sqnr_db(ref, Y)),
                      relative_error=float(np.linalg.norm(Y - ref) / np.linalg.norm(ref)))
        if args.scale == "vector":
            report.update(vector=args.vector, scale_bits=args.scale_bits,
                          scale_kind="log" if cfg.lns else args.scale_kind)
        report["clip"] = args.clip
    if args.out:
        np.save(args.out, Y)
        report["out"] = args.out
    print_report(report, args.json)
    return 0 if res["bit_exact"] in (None, True) else 1


def cmd_eval(args):
    from ..sim.evaluate import evaluate, format_table, synthetic
    if args.weights:
        tensors = {"W": (_load_npy(args.weights, "weights").astype(np.float64),
                         _load_npy(args.activations, "activations").astype(np.float64) if args.activations else None)}
    else:
        tensors = {name: (synthetic(name, (args.n, args.k), args.seed), synthetic("gaussian", (args.k, args.m), args.seed + 1))
                   for name in ("gaussian", "laplacian", "student-t3")}
    results = []
    for name, (W, A) in tensors.items():
        if A is not None and W.shape[1] != A.shape[0]:
            raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
        extra = {}
        if args.sparse:
            from ..sim.sparse24 import pad_k, pruning_error, prune_2_4
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


def cmd_synth(args):
    from .synth import synth_config
    cfg = _config(args)
    start = time.perf_counter()
    res = synth_config(cfg, target=args.target)
    res = {"target": args.target, "seconds": round(time.perf_counter() - start, 1), **res}
    print_report(res, args.json)
    return 0


def cmd_presets(args):
    for name, cfg in PRESETS.items():
        print(f"# --preset {name}: {cfg.macs_per_cycle(cfg.modes[0])} {cfg.modes[0]} MACs/cycle")
        print(cfg.to_toml())
    return 0


def cmd_test(args):
    root = Path(__file__).resolve().parent.parent
    if not (root / "tests").is_dir():
        raise UsageError(f"no tests/ folder next to {root / 'tb'}: run from a qmac source checkout")
    return subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args], cwd=root)


def _parser():
    p = argparse.ArgumentParser(prog="qmac", description="RTL generator for low-precision MAC arrays.")
    sub = p.add_subparsers(dest="command")
    g = sub.add_parser("generate", help="write qmac_core.v and qmac_core.json (the main job)")
    _add_config_args(g)
    g.add_argument("--out", default="build", metavar="DIR", help="output folder (default: build)")
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("gemm", help="compute Y = W @ A on the golden model or the emitted RTL")
    _add_config_args(m)
    m.add_argument("--weights", required=True, metavar="W.npy", help="N x K: integer codes, or floats")
    m.add_argument("--activations", required=True, metavar="A.npy", help="K x M: integer codes, or floats")
    m.add_argument("--format", default="int8", choices=list(MODES),
                   help="int8/int4, or lns8/lns4 (the log datapath; the config is switched to it if needed)")
    m.add_argument("--engine", default="golden", choices=["golden", "icarus", "verilator"])
    m.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="RTL engines: probability of a valid gap / ready drop per beat (default 0)")
    m.add_argument("--scale", default="per-tensor", choices=["per-tensor", "per-channel", "vector"],
                   help="float inputs: scale granularity (default per-tensor; lns: per-tensor or vector, in the "
                        "log domain)")
    m.add_argument("--vector", type=int, default=16, metavar="V", help="--scale vector: elements per vector (16)")
    m.add_argument("--scale-bits", type=int, metavar="S",
                   help="--scale vector: scale width (default 8 for int formats, 4 for lns: log scales are exponents)")
    m.add_argument("--scale-kind", choices=["int", "pow2"], help="--scale vector, int formats: int (default) or pow2")
    m.add_argument("--clip", default="max", choices=["max", "percentile", "mse"], help="float inputs: clip method")
    m.add_argument("--sparse", choices=["2:4"], help="2:4 sparse weights: prune (or verify), compress, run sparse")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", metavar="Y.npy", help="save Y (integers for code inputs, floats otherwise)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_gemm)

    e = sub.add_parser("eval", help="compare quantization schemes (SQNR) on tensors or synthetic data")
    e.add_argument("weights", nargs="?", metavar="W.npy", help="N x K float weights (default: synthetic)")
    e.add_argument("activations", nargs="?", metavar="A.npy", help="K x M float activations (optional)")
    e.add_argument("--formats", default="int8,int4")
    e.add_argument("--schemes", default="per-tensor,per-channel,vector")
    e.add_argument("--vectors", default="16,32,64")
    e.add_argument("--scale-bits", default="4,6,8")
    e.add_argument("--clips", default="max,percentile,mse")
    e.add_argument("--sparse", choices=["2:4"], help="prune W to 2:4 first and report the pruning error alone")
    e.add_argument("--n", type=int, default=256, help="synthetic: rows of W (256)")
    e.add_argument("--k", type=int, default=1024, help="synthetic: K (1024)")
    e.add_argument("--m", type=int, default=64, help="synthetic: columns of A (64)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true")
    e.add_argument("--plot", metavar="OUT.png", help="bar chart of the SQNRs")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("synth", help="synthesize the core with Yosys and report cells / transistors")
    _add_config_args(s)
    s.add_argument("--target", default="generic", choices=["generic", "ice40", "ecp5"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_synth)

    pr = sub.add_parser("presets", help="print the embedded configs as TOML")
    pr.set_defaults(func=cmd_presets)

    from .board_cli import add_commands
    add_commands(sub)

    t = sub.add_parser("test", help="run the regression (pytest) of a source checkout")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER)
    t.set_defaults(func=cmd_test)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command is None:
        args = _parser().parse_args(["generate"] + (argv or []))
    if getattr(args, "stall", 0.0) and not 0.0 <= args.stall < 1.0:
        print(f"qmac: error: --stall must be in [0, 1), not {args.stall}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ConfigError, UsageError) as e:
        print(f"qmac: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
