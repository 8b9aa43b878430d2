"""``qmac gemm``: ``Y = W @ A`` on the golden model or the emitted RTL, from codes or quantized floats."""

import math
import sys

import numpy as np

from qmac.hw.spec.config import MODES, ConfigError, code_range, per_lane

from .common import (UsageError, add_config_args, config_from_args, print_report, saturation_status,
                     stdout_to_stderr)
from .inputs import (as_codes, as_floats, check_finite_product, integer, load_array, number, output_file,
                     write_atomically)

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("gemm", help="compute Y = W @ A on the golden model or the emitted RTL")
    add_config_args(p)
    p.add_argument("--weights", required=True, metavar="W.npy", help="N x K: integer codes, or floats")
    p.add_argument("--activations", required=True, metavar="A.npy", help="K x M: integer codes, or floats")
    p.add_argument("--format", default="int8", choices=list(MODES),
                   help="int8/int4, or lns8/lns4 (the log datapath; the config is switched to it if needed)")
    p.add_argument("--engine", default="golden", choices=["golden", "icarus", "verilator"])
    p.add_argument("--stall", type=number(0.0, 1.0, hi_open=True), metavar="P",
                   help="RTL engines: probability of a valid gap / ready drop per beat, in [0, 1) (default 0)")
    p.add_argument("--seed", type=integer(0, MAX_SEED), help="RTL engines: seed of the stalls (default 0)")
    p.add_argument("--scale", default="per-tensor", choices=["per-tensor", "per-channel", "vector"],
                   help="float inputs: scale granularity (default per-tensor; lns: per-tensor or vector, in the "
                        "log domain)")
    p.add_argument("--vector", type=integer(1, None), metavar="V",
                   help="--scale vector: elements per vector, at most K (default 16, or K if smaller)")
    p.add_argument("--scale-bits", type=integer(1, 64), metavar="S",
                   help="--scale vector: scale width (default 8 for int formats, 4 for lns: log scales are exponents)")
    p.add_argument("--scale-kind", choices=["int", "pow2"], help="--scale vector, int formats: int (default) or pow2")
    p.add_argument("--clip", choices=["max", "percentile", "mse"], help="float inputs: clip method (default max)")
    p.add_argument("--sparse", choices=["2:4"], help="2:4 sparse weights: prune (or verify), compress, run sparse")
    p.add_argument("--out", metavar="Y.npy", help="save Y (integers for code inputs, floats otherwise)")
    p.add_argument("--strict", action="store_true", help="exit with 3 when an accumulator saturated")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


#: Largest ``--seed``: what numpy's generators take.
MAX_SEED = 2 ** 63 - 1
#: What the report says for keys the golden model does not produce.
ABSENT = {"bit_exact": "not checked (golden engine)", "cycles": "not counted (golden engine)",
          "utilization": "not measured (golden engine)"}


def _with(cfg, flag, value, need, **changes):
    """``cfg`` with ``changes`` (what ``flag`` = ``value`` needs, said by ``need``), announced on stderr. If the
    widths then pass 64 bits, ``max_k`` is lowered to the GEMM's K (``changes['k']``) as a second try."""
    k = changes.pop("k")
    try:
        new = cfg.replace(**changes)
    except ConfigError as first:
        lo = 2 * cfg.lanes * min(per_lane(m) for m in changes.get("modes", cfg.modes))
        max_k = max(lo, 1 << (k - 1).bit_length())
        try:
            new = cfg.replace(max_k=max_k, **changes)
        except ConfigError:
            raise UsageError(flag, value, f"{need}, but the config cannot take it ({first})") from None
        changes["max_k"] = max_k
    if new != cfg:
        print(f"qmac: note: {flag} {value} {need}; using the config with "
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
        from qmac.sim.log_dot_product import value
        from qmac.sim.log_quantize import quantize_log
        if args.scale == "per-channel":
            raise UsageError("--scale", args.scale, f"is not supported with --format {mode}; "
                             "allowed: per-tensor, vector")
        bits = bits if bits is not None else 0
        try:
            qw = quantize_log(W, cfg.log_format, 1, vector, bits, args.clip)
            qa = quantize_log(A, cfg.log_format, 0, vector, bits, args.clip)
        except ValueError as e:
            raise UsageError("--scale-bits", bits, str(e)) from None
        if vector and (cfg.scale_bits != bits or cfg.scale_kind != "log"):
            cfg = _with(cfg, "--scale-bits", bits, f"needs {bits}-bit log scale units (--scale vector)",
                        scale_bits=bits, scale_kind="log", k=W.shape[1])
        factor = 2.0 ** ((qw.offset + qa.offset) / cfg.log_format.buckets)
        return (cfg, qw.codes, qa.codes, qw if vector else None, qa if vector else None,
                lambda Y, cfg=cfg: value(cfg.log_sum, Y) * factor)
    from qmac.hw.spec.formats import ELEMENT_FORMATS
    from qmac.sim.quantize import quantize
    kind = args.scale_kind if args.scale == "vector" else "int"
    try:
        qw = quantize(W, ELEMENT_FORMATS[mode], args.scale, 1, vector, bits, args.clip, kind)
        qa = quantize(A, ELEMENT_FORMATS[mode], args.scale, 0, vector, bits, args.clip, kind)
    except ValueError as e:
        raise UsageError("--scale-bits", bits, str(e)) from None
    gamma = qw.gamma * qa.gamma  # (N, 1) * (1, M)
    if args.scale != "vector":
        return cfg, qw.codes, qa.codes, None, None, lambda Y: Y * gamma
    if not cfg.scale_bits or cfg.scale_kind != kind or cfg.scale_bits < bits:
        cfg = _with(cfg, "--scale-bits", bits, f"needs {kind} scales of {bits} bits (--scale-kind {kind})",
                    scale_bits=bits, scale_kind=kind, k=W.shape[1])
    return cfg, qw.codes, qa.codes, qw, qa, lambda Y: Y * gamma


def _check_flags(args, is_float, lns):
    """Refuse flags that do not apply to these inputs, this format or this engine (never ignore them)."""
    rtl = args.engine != "golden"
    for flag, value, applies, where in [
        ("--stall", args.stall, rtl, "an RTL engine (--engine icarus or verilator)"),
        ("--seed", args.seed, rtl, "an RTL engine (--engine icarus or verilator)"),
        ("--scale", args.scale if args.scale != "per-tensor" else None, is_float, "float inputs"),
        ("--clip", args.clip, is_float, "float inputs"),
        ("--vector", args.vector, args.scale == "vector", "--scale vector"),
        ("--scale-bits", args.scale_bits, args.scale == "vector", "--scale vector"),
        ("--scale-kind", args.scale_kind, args.scale == "vector" and not lns, "--scale vector with an int format"),
    ]:
        if value is not None and not applies:
            raise UsageError(flag, value, f"applies only to {where}; integer inputs are taken as codes"
                             if where == "float inputs" else f"applies only to {where}")


def run(args):
    from qmac.sim.gemm import core_scales, plan_gemm
    from qmac.sim.quantize import sqnr_db
    from qmac.engine import run_gemm
    output_file("--out", args.out, (".npy",))
    cfg = config_from_args(args)
    files = (("--weights", args.weights), ("--activations", args.activations))
    W, A = (load_array(flag, path) for flag, path in files)
    if W.shape[1] != A.shape[0]:
        raise UsageError("--activations", args.activations, f"has shape {A.shape}; allowed: {W.shape[1]} rows, "
                         f"the K of --weights {W.shape}")
    mode = args.format
    is_float = W.dtype.kind == "f" or A.dtype.kind == "f"
    _check_flags(args, is_float, mode.startswith("lns"))
    if is_float:
        W, A = as_floats(W), as_floats(A)
        check_finite_product(files, W, A)
    else:
        W, A = (as_codes(flag, path, x, code_range(mode)) for (flag, path), x in zip(files, (W, A)))
    k = W.shape[1]
    if args.vector is not None and args.vector > k:
        raise UsageError("--vector", args.vector, f"allowed: at most K = {k}, the reduction length of the inputs")
    if mode not in cfg.modes:
        if mode in ("int8", "int4") and not cfg.lns:
            raise UsageError("--format", mode, f"is not built into this core; allowed: {', '.join(cfg.modes)}")
        # A different datapath: the same array with this mode's lanes (and no INT-only extras).
        extras = {"scale_bits": 0, "scale_kind": "int", "scale_lanes": None, "sparse": False, "output_stage": False,
                  "acc_bits": None, "p_bits": None, "q_floor": None, "bucket_organisation": None}
        cfg = _with(cfg, "--format", mode, "is not built into this core", modes=(mode,), k=k,
                    **{key: value for key, value in extras.items() if getattr(cfg, key) != value})
    if args.sparse and cfg.lns:
        raise UsageError("--sparse", args.sparse, f"is not supported with --format {mode}; "
                         "allowed: the int8 and int4 formats")
    if args.scale == "vector":
        args.vector = args.vector if args.vector is not None else min(16, k)
        args.scale_kind = args.scale_kind or "int"
        args.scale_bits = args.scale_bits if args.scale_bits is not None else 4 if cfg.lns else 8
    args.clip = args.clip or "max"
    w_scales = a_scales = None
    sparse_report = {}
    if args.sparse:
        from qmac.sim.sparse24 import is_2_4, pad_k, pruning_error, prune_2_4
        if k % 4:
            W, A = pad_k(W, 4), np.pad(A, ((0, -k % 4), (0, 0)))
            sparse_report["padded_k"] = int(W.shape[1])
        if is_2_4(W):
            sparse_report.update(sparse="2:4", pruned=False)
        else:
            err = pruning_error(W.astype(np.float64))
            sparse_report.update(sparse="2:4", pruned=True, pruning_sqnr_db=err["sqnr_db"],
                                 pruning_relative_error=err["relative_l2"])
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
                raise UsageError("--vector", args.vector, str(e)) from None
    else:
        Wq, Aq = W, A
    try:
        with stdout_to_stderr():
            res = run_gemm(cfg, mode, Wq, Aq, engine=args.engine, gap=args.stall or 0.0,
                           ready=1 - (args.stall or 0.0), seed=args.seed or 0, w_scales=w_scales,
                           a_scales=a_scales, sparse=bool(args.sparse))
    except ValueError as e:
        raise UsageError("--weights", args.weights, str(e)) from None
    Y = res["Y"]
    report = {"engine": args.engine, "format": mode, "shape": [int(W.shape[0]), k, int(A.shape[1])],
              "bit_exact": res["bit_exact"], "cycles": res["cycles"], "ideal_cycles": res["ideal_cycles"],
              "utilization": res["utilization"], "saturated": res["saturated"], **sparse_report}
    notes = []
    if cfg.lns:
        report["result_exponent"] = cfg.log_sum.result_exponent
    if is_float:
        Y = to_float(Y)
        ref = W.astype(np.float64) @ A.astype(np.float64)
        report["scale"] = args.scale
        report.update(_accuracy(ref, Y, sqnr_db, notes))
        if args.scale == "vector":
            report.update(vector=args.vector, scale_bits=args.scale_bits,
                          scale_kind="log" if cfg.lns else args.scale_kind)
        report["clip"] = args.clip
    if args.out:
        write_atomically("--out", args.out, lambda f: np.save(f, Y))
        report["out"] = args.out
    if notes:
        report["notes"] = notes
    print_report(report, args.json, ABSENT)
    status = saturation_status(res["saturated"], args.strict, f"an accumulator at {cfg.acc_format.bits} bits")
    return 1 if res["bit_exact"] is False else status


def _accuracy(ref, Y, sqnr_db, notes):
    """``sqnr_db`` and ``relative_error`` of ``Y`` against the float64 product ``ref``; ``None`` (with a note)
    where they are undefined (``ref`` all zeros) or infinite (no error at all). Both are ratios, so they are
    computed on ``ref`` and ``Y`` divided by ``max|ref|``: no square overflows."""
    peak = float(np.max(np.abs(ref)))
    if peak == 0:
        notes.append("sqnr_db, relative_error: undefined, the float product W @ A is all zeros")
        return {"sqnr_db": None, "relative_error": None}
    r, y = ref / peak, Y / peak
    sqnr = float(sqnr_db(r, y))
    if math.isinf(sqnr):
        notes.append("sqnr_db: infinite, Y equals the float product W @ A exactly")
        sqnr = None
    return {"sqnr_db": sqnr, "relative_error": float(np.linalg.norm(y - r) / np.linalg.norm(r))}
