"""``qmac energy``: energy per MAC of the core's gate-level netlist on real or synthetic operands (docs/energy.md)."""

from qmac.hw.spec.config import ConfigError

from .common import UsageError, add_config_args, config_from_args, fail, load_npy, print_report, stdout_to_stderr
from .operands import add_operand_args, prepare_operands

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    from qmac.energy import DISTRIBUTIONS
    p = subparsers.add_parser("energy", help="energy per MAC from the gate-level netlist, by component")
    add_config_args(p)
    add_operand_args(p)
    p.add_argument("--weights", metavar="W.npy", help="N x K: integer codes, or floats (with --activations)")
    p.add_argument("--activations", metavar="A.npy", help="K x M: integer codes, or floats (with --weights)")
    p.add_argument("--distribution", choices=DISTRIBUTIONS,
                   help="synthetic float operands instead of files (default gaussian)")
    p.add_argument("--shape", metavar="N,K,M",
                   help="--distribution: GEMM shape (default 4 rows x 64 beats x 4 columns of the array)")
    p.add_argument("--seed", type=int, default=0, help="--distribution: random seed (default 0)")
    p.add_argument("--repeat", type=int, default=1, metavar="R", help="stream the GEMM R times (default 1)")
    p.add_argument("--calibrate", action="store_true",
                   help="also report pj_per_mac, calibrated on Horowitz's 45 nm adder and multiplier energies")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _shape(args, cfg):
    """``(N, K, M)`` of a synthetic GEMM: ``--shape``, else 4R x 64 beats x 4C."""
    if args.shape is None:
        from qmac.hw.spec.config import per_lane
        elements = cfg.lanes * per_lane(args.format) * (2 if args.sparse else 1)
        return 4 * cfg.rows, 64 * elements, 4 * cfg.cols
    try:
        n, k, m = (int(v) for v in args.shape.split(","))
    except ValueError:
        raise UsageError(f"--shape: {args.shape!r}: three positive integers N,K,M") from None
    if min(n, k, m) < 1:
        raise UsageError(f"--shape: {args.shape!r}: three positive integers N,K,M")
    return n, k, m


def run(args):
    from qmac.energy import measure_energy, synthetic_operands
    from qmac.tb.runner import ToolError
    from qmac.toolchain.synth import SynthError
    cfg = config_from_args(args)
    if (args.weights is None) != (args.activations is None):
        raise UsageError("give both --weights and --activations, or neither")
    if args.weights is not None and (args.distribution or args.shape):
        raise UsageError("--distribution and --shape are for synthetic operands; not with --weights/--activations")
    if args.repeat < 1:
        raise UsageError(f"--repeat: {args.repeat}: a positive integer")
    if args.weights is not None:
        W, A = load_npy(args.weights, "weights"), load_npy(args.activations, "activations")
        if W.shape[1] != A.shape[0]:
            raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
        source = {"weights": args.weights, "activations": args.activations}
    else:
        distribution = args.distribution or "gaussian"
        n, k, m = _shape(args, cfg)
        W, A = synthetic_operands(distribution, n, k, m, args.seed)
        source = {"distribution": distribution, "seed": args.seed}
    ops = prepare_operands(args, cfg, W, A)
    try:
        with stdout_to_stderr():
            res = measure_energy(ops.cfg, ops.mode, ops.Wq, ops.Aq, ops.w_scales, ops.a_scales, ops.sparse,
                                 args.repeat, args.calibrate)
    except (ValueError, ConfigError) as e:
        raise UsageError(str(e)) from None
    except (SynthError, ToolError) as e:
        return fail(str(e))
    report = {"format": ops.mode, **source, "shape": [int(W.shape[0]), int(W.shape[1]), int(A.shape[1])],
              "repeat": args.repeat, **ops.report,
              **{key: value for key, value in res.items() if key != "Y"},
              "units": "relative: transitions of one minimum transistor gate's capacitance (docs/energy.md)"}
    print_report(report, args.json)
    return 0 if res["bit_exact"] else 1
