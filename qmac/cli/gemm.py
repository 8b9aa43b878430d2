"""``qmac gemm``: ``Y = W @ A`` on the golden model or the emitted RTL, from codes or quantized floats."""

import numpy as np

from qmac.hw.spec.config import MODES, code_range
from qmac.quantized_gemm import (Scheme, core_for_mode, core_for_scales, core_for_sparse, prune_weights,
                                 quantize_activations, quantize_weights, quantized_operands, to_float)

from .common import UsageError, add_config_args, config_from_args, load_npy, print_report, stdout_to_stderr

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("gemm", help="compute Y = W @ A on the golden model or the emitted RTL")
    add_config_args(p)
    p.add_argument("--weights", required=True, metavar="W.npy", help="N x K: integer codes, or floats")
    p.add_argument("--activations", required=True, metavar="A.npy", help="K x M: integer codes, or floats")
    p.add_argument("--format", default="int8", choices=list(MODES),
                   help="int8/int4, or lns8/lns4 (the log datapath; the config is switched to it if needed)")
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


def run(args):
    from qmac.sim.quantize import sqnr_db
    from qmac.engine import run_gemm
    cfg = config_from_args(args)
    W, A = load_npy(args.weights, "weights"), load_npy(args.activations, "activations")
    if W.shape[1] != A.shape[0]:
        raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
    mode = args.format
    cfg = core_for_mode(cfg, mode, W.shape[1])
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
        W, A, sparse_report = prune_weights(W, A)
        cfg = core_for_sparse(cfg)
    if is_float:
        scheme = Scheme(mode, args.scale, args.vector, args.scale_bits, args.scale_kind, args.clip, bool(args.sparse))
        try:
            qw, qa = quantize_weights(cfg, scheme, W), quantize_activations(cfg, scheme, A)
            cfg = core_for_scales(cfg, scheme, W.shape[1])
            ops = quantized_operands(cfg, scheme, qw, qa)
        except ValueError as e:
            raise UsageError(str(e)) from None
        Wq, Aq, w_scales, a_scales = ops.W, ops.A, ops.w_scales, ops.a_scales
    else:
        if args.scale != "per-tensor":
            raise UsageError("--scale applies to float inputs; integer inputs are taken as codes")
        Wq, Aq = W.astype(np.int64), A.astype(np.int64)
        lo, hi = code_range(mode)
        for name, x in (("weights", Wq), ("activations", Aq)):
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
        Y = to_float(cfg, ops, Y)
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
