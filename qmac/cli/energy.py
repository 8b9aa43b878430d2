"""``qmac energy``: energy per MAC of the core's gate-level netlist on real or synthetic operands (docs/energy.md)."""

from qmac.hw.spec.config import MODES

from .common import UsageError, add_config_args, config_from_args, fail, print_report, stdout_to_stderr
from .inputs import PLOT_SUFFIXES, integer, load_array, output_file, write_atomically
from .quantization import add_quantization_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    from qmac.energy import DISTRIBUTIONS
    p = subparsers.add_parser("energy", help="energy per MAC from the gate-level netlist, by component")
    add_config_args(p)
    p.add_argument("--format", default="int8", choices=list(MODES),
                   help="int8/int4/w4a8, or lns8/lns4 (the log datapath; the config is switched to it if needed)")
    add_quantization_args(p)
    p.add_argument("--weights", metavar="W.npy", help="N x K: integer codes, or floats (with --activations)")
    p.add_argument("--activations", metavar="A.npy", help="K x M: integer codes, or floats (with --weights)")
    p.add_argument("--distribution", choices=DISTRIBUTIONS,
                   help="synthetic float operands instead of files (default gaussian)")
    p.add_argument("--shape", metavar="N,K,M",
                   help="--distribution: GEMM shape (default 4 rows x 64 beats x 4 columns of the array)")
    p.add_argument("--seed", type=integer(0, 2 ** 63 - 1), default=0, help="--distribution: random seed (default 0)")
    p.add_argument("--repeat", type=integer(1, 1000), default=1, metavar="R",
                   help="stream the GEMM R times (default 1)")
    p.add_argument("--calibrate", action="store_true",
                   help="also report pj_per_mac, calibrated on Horowitz's 45 nm adder and multiplier energies")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="stacked bar of the energy per MAC by component ("
                   + ", ".join(PLOT_SUFFIXES) + ")")
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
        raise UsageError("--shape", args.shape, "allowed: three positive integers N,K,M") from None
    if min(n, k, m) < 1:
        raise UsageError("--shape", args.shape, "allowed: three positive integers N,K,M")
    return n, k, m


def run(args):
    from qmac.energy import measure_energy, synthetic_operands
    from qmac.tb.runner import ToolError
    from qmac.toolchain.synth import SynthError
    output_file("--plot", args.plot, PLOT_SUFFIXES)
    cfg = config_from_args(args)
    if (args.weights is None) != (args.activations is None):
        raise UsageError("--weights" if args.weights is None else "--activations", None,
                         "allowed: both --weights and --activations, or neither (synthetic operands)")
    if args.weights is not None and (args.distribution or args.shape):
        raise UsageError("--distribution" if args.distribution else "--shape", args.distribution or args.shape,
                         "is for synthetic operands; allowed: not with --weights/--activations")
    if args.weights is not None:
        W, A = load_array("--weights", args.weights), load_array("--activations", args.activations)
        if W.shape[1] != A.shape[0]:
            raise UsageError("--activations", args.activations, f"has shape {A.shape}; allowed: {W.shape[1]} rows, "
                             f"the K of --weights {W.shape}")
        source = {"weights": args.weights, "activations": args.activations}
    else:
        distribution = args.distribution or "gaussian"
        n, k, m = _shape(args, cfg)
        W, A = synthetic_operands(distribution, n, k, m, args.seed)
        source = {"distribution": distribution, "seed": args.seed}
    from qmac.quantized_gemm import Scheme, prepare_operands
    scheme = Scheme(args.format, args.scale, args.vector or 16, args.scale_bits, args.scale_kind, args.clip or "max",
                    bool(args.sparse), args.scale_rounding or "nearest")
    try:
        ops = prepare_operands(cfg, scheme, W, A)
    except ValueError as e:
        raise UsageError("--format", args.format, str(e)) from None
    try:
        with stdout_to_stderr():
            res = measure_energy(ops.cfg, ops.mode, ops.Wq, ops.Aq, ops.w_scales, ops.a_scales, ops.sparse,
                                 args.repeat, args.calibrate)
    except ValueError as e:   # ConfigError too: a core the gate-level driver cannot run
        raise UsageError("--preset" if args.preset else "--config", args.preset or args.config or "default",
                         str(e)) from None
    except (SynthError, ToolError) as e:
        return fail(str(e))
    report = {"format": ops.mode, **source, "shape": [int(W.shape[0]), int(W.shape[1]), int(A.shape[1])],
              "repeat": args.repeat, **ops.report,
              **{key: value for key, value in res.items() if key != "Y"},
              "units": "relative: transitions of one minimum transistor gate's capacitance (docs/energy.md)"}
    if args.plot:
        from qmac.energy import plot_breakdown
        what = source.get("distribution") or f"{args.weights}, {args.activations}"
        write_atomically("--plot", args.plot, lambda f: plot_breakdown(
            [res], [f"{ops.mode}{' 2:4' if ops.sparse else ''}, {what}"], f, args.plot.rsplit(".", 1)[-1].lower()))
    print_report(report, args.json)
    return 0 if res["bit_exact"] else 1
