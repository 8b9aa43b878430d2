"""``qmac gemm``: ``Y = W @ A`` on the golden model or the emitted RTL, from codes or quantized floats."""

import numpy as np

from .common import UsageError, add_config_args, config_from_args, load_npy, print_report, stdout_to_stderr
from .operands import add_operand_args, prepare_operands

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("gemm", help="compute Y = W @ A on the golden model or the emitted RTL")
    add_config_args(p)
    p.add_argument("--weights", required=True, metavar="W.npy", help="N x K: integer codes, or floats")
    p.add_argument("--activations", required=True, metavar="A.npy", help="K x M: integer codes, or floats")
    add_operand_args(p)
    p.add_argument("--engine", default="golden", choices=["golden", "icarus", "verilator"])
    p.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="RTL engines: probability of a valid gap / ready drop per beat (default 0)")
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
    ops = prepare_operands(args, cfg, W, A)
    cfg, mode, W, A = ops.cfg, ops.mode, ops.W, ops.A
    try:
        with stdout_to_stderr():
            res = run_gemm(cfg, mode, ops.Wq, ops.Aq, engine=args.engine, gap=args.stall, ready=1 - args.stall,
                           seed=args.seed, w_scales=ops.w_scales, a_scales=ops.a_scales, sparse=ops.sparse)
    except ValueError as e:
        raise UsageError(str(e)) from None
    Y = res["Y"]
    report = {"engine": args.engine, "format": mode, "shape": [int(W.shape[0]), int(W.shape[1]), int(A.shape[1])],
              "bit_exact": res["bit_exact"], "cycles": res["cycles"], "ideal_cycles": res["ideal_cycles"],
              "utilization": res["utilization"], "saturated": res["saturated"], **ops.report}
    if cfg.lns:
        report["result_exponent"] = cfg.log_sum.result_exponent
    if ops.is_float:
        Y = ops.to_float(Y)
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
