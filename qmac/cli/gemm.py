"""``qmac gemm``: ``Y = W @ A`` on the golden model or the emitted RTL, from codes or quantized floats."""

import sys

import numpy as np

from qmac.hw.spec.config import MODES, W4A8_MULTIPLIERS, ConfigError, code_range, per_lane

from .common import UsageError, add_config_args, config_from_args, load_npy, print_report, stdout_to_stderr

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("gemm", help="compute Y = W @ A on the golden model or the emitted RTL")
    add_config_args(p)
    p.add_argument("--weights", required=True, metavar="W.npy", help="N x K: integer codes, or floats")
    p.add_argument("--activations", required=True, metavar="A.npy", help="K x M: integer codes, or floats")
    p.add_argument("--format", default="int8", choices=list(MODES),
                   help="int8/int4, w4a8 (INT4 weights x INT8 activations; added to the config's modes if needed), "
                        "or lns8/lns4 (the log datapath; the config is switched to it if needed)")
    p.add_argument("--engine", default="golden", choices=["golden", "icarus", "verilator"])
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="RTL engines: probability of a valid gap / ready drop per beat (default 0)")
    p.add_argument("--scale", default="per-tensor", choices=["per-tensor", "per-channel", "vector"],
                   help="float inputs: scale granularity (default per-tensor; lns: per-tensor or vector, in the "
                        "log domain)")
    p.add_argument("--vector", type=int, default=16, metavar="V", help="--scale vector: elements per vector (16)")
    p.add_argument("--scale-bits", type=int, metavar="S",
                   help="--scale vector: scale width (default 8 for int formats, 4 for lns: log scales are exponents)")
    p.add_argument("--scale-kind", choices=["int", "pow2"], help="--scale vector, int formats: int (default) or pow2")
    p.add_argument("--clip", default="max", choices=["max", "percentile", "mse"], help="float inputs: clip method")
    p.add_argument("--sparse", choices=["2:4"], help="2:4 sparse weights: prune (or verify), compress, run sparse")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="Y.npy", help="save Y (integers for code inputs, floats otherwise)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


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
        from qmac.sim.log_dot_product import value
        from qmac.sim.log_quantize import quantize_log
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
    from qmac.hw.spec.formats import ELEMENT_FORMATS
    from qmac.sim.quantize import quantize
    kind = args.scale_kind if args.scale == "vector" else "int"
    try:
        w_fmt, a_fmt = ELEMENT_FORMATS[mode].operands   # W4A8: INT4 weights, INT8 activations
        qw = quantize(W, w_fmt, args.scale, 1, vector, bits, args.clip, kind)
        qa = quantize(A, a_fmt, args.scale, 0, vector, bits, args.clip, kind)
    except ValueError as e:
        raise UsageError(str(e)) from None
    gamma = qw.gamma * qa.gamma  # (N, 1) * (1, M)
    if args.scale != "vector":
        return cfg, qw.codes, qa.codes, None, None, lambda Y: Y * gamma
    if not cfg.scale_bits or cfg.scale_kind != kind or cfg.scale_bits < bits:
        cfg = _with(cfg, f"--scale-bits {bits} --scale-kind {kind} needs {kind} scales of {bits} bits",
                    scale_bits=bits, scale_kind=kind, k=W.shape[1])
    return cfg, qw.codes, qa.codes, qw, qa, lambda Y: Y * gamma


def run(args):
    from qmac.sim.gemm import core_scales, plan_gemm
    from qmac.sim.quantize import sqnr_db
    from qmac.engine import run_gemm
    cfg = config_from_args(args)
    W, A = load_npy(args.weights, "weights"), load_npy(args.activations, "activations")
    if W.shape[1] != A.shape[0]:
        raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
    mode = args.format
    if mode in ("int8", "int4") and mode not in cfg.modes and not cfg.lns:
        raise UsageError(f"--format {mode!r} is not built into this core; allowed: {', '.join(cfg.modes)}")
    if mode == "w4a8" and mode not in cfg.modes and not cfg.lns:
        # W4A8 lanes beside the config's INT modes (dense, on lanes that compute it).
        extras = {"sparse": False} | ({} if cfg.multiplier in W4A8_MULTIPLIERS else {"multiplier": "logic"})
        cfg = _with(cfg, "--format w4a8 is not built into this core", modes=cfg.modes + (mode,), k=W.shape[1],
                    **{key: value for key, value in extras.items() if getattr(cfg, key) != value})
    elif mode not in cfg.modes:
        # A different datapath: the same array with this mode's lanes (and no INT-only extras).
        extras = {"scale_bits": 0, "scale_kind": "int", "scale_lanes": None, "sparse": False, "output_stage": False,
                  "acc_bits": None, "p_bits": None, "q_floor": None, "bucket_organisation": None}
        cfg = _with(cfg, f"--format {mode} is not built into this core", modes=(mode,), k=W.shape[1],
                    **{key: value for key, value in extras.items() if getattr(cfg, key) != value})
    if args.sparse and (cfg.lns or mode == "w4a8"):
        raise UsageError(f"--sparse 2:4 is not supported with --format {mode}; allowed: the int8 and int4 formats")
    if args.scale_kind is not None and cfg.lns:
        raise UsageError(f"--scale-kind applies to the int formats; {mode} takes log scales")
    args.scale_kind = args.scale_kind or "int"
    args.scale_bits = args.scale_bits if args.scale_bits is not None else 4 if cfg.lns else 8
    is_float = np.issubdtype(W.dtype, np.floating) or np.issubdtype(A.dtype, np.floating)
    w_scales = a_scales = None
    sparse_report = {}
    if args.sparse:
        from qmac.sim.sparse24 import is_2_4, pad_k, pruning_error, prune_2_4
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
        for name, x in (("weights", Wq), ("activations", Aq)):
            lo, hi = code_range(mode, activations=name == "activations")
            if x.size and (x.min() < lo or x.max() > hi):
                raise UsageError(f"--{name} codes span [{x.min()}, {x.max()}]; {mode} allows [{lo}, {hi}]")
    try:
        with stdout_to_stderr():
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
