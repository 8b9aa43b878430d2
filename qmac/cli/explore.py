"""``qmac explore``: sweep core configs and formats over a workload; accuracy, area, energy and throughput per
point, with Pareto plots (docs/explore.md)."""

from .common import UsageError, fail, print_report, progress_bar, stdout_to_stderr
from .inputs import integer, load_array, output_dir
from .model import load_model_inputs

__all__ = ["add_parser", "run"]

#: How the text report names an accuracy metric's unit.
UNITS = {"sqnr_db": "dB", "cosine": "cosine", None: ""}


def add_parser(subparsers):
    p = subparsers.add_parser("explore", help="design-space sweep: accuracy x transistors x energy x throughput")
    p.add_argument("space", metavar="SPACE.toml", help="formats, swept config keys and workload (docs/explore.md)")
    p.add_argument("--weights", metavar="W.npy", help="N x K floats (with --activations): overrides the workload's")
    p.add_argument("--activations", metavar="A.npy", help="K x M floats (with --weights)")
    p.add_argument("--model", metavar="MODEL.onnx",
                   help="accuracy = this model's output cosine to FP32 (qmac model); energy and utilization on its "
                        "layers (docs/explore.md); needs --data, excludes --weights/--activations")
    p.add_argument("--data", metavar="X.npz", help="with --model: one array per model input, samples along axis 0")
    p.add_argument("--calibrate", metavar="C.npz", help="with --model: calibration inputs (static activation clips)")
    p.add_argument("--out", required=True, metavar="DIR", help="where points.csv, points.json and the plots go")
    p.add_argument("--workers", type=integer(1, 256), default=1, metavar="N", help="local worker processes (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run the points on this Dask distributed scheduler")
    p.add_argument("--cache", default="build/explore-cache", metavar="DIR",
                   help="result cache (default build/explore-cache)")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    p.set_defaults(func=run)


def run(args):
    from qmac.explore import ModelAccuracy, SpaceError, explore, load_space
    from qmac.tb.runner import ToolError
    from qmac.toolchain.synth import SynthError
    if (args.weights is None) != (args.activations is None):
        raise UsageError("--weights" if args.weights is None else "--activations", None,
                         "allowed: both --weights and --activations, or neither (the workload's operands)")
    if args.model is not None and args.weights is not None:
        raise UsageError("--model", args.model, "allowed: --model or --weights/--activations, not both")
    if args.model is not None and args.data is None:
        raise UsageError("--data", None, "allowed: an .npz of the model's inputs; required with --model")
    for flag, value in (("--data", args.data), ("--calibrate", args.calibrate)):
        if value is not None and args.model is None:
            raise UsageError(flag, value, "applies only with --model")
    try:
        space = load_space(args.space)
    except SpaceError as e:
        raise UsageError("SPACE", args.space, str(e)) from None
    output_dir("--out", args.out)
    W = A = model = None
    if args.model is not None:
        net, _, _ = load_model_inputs(args.model, args.data, args.calibrate)
        if not any(layer.has_weights for layer in net.layers):
            raise UsageError("--model", args.model, "has no MatMul, Gemm or Conv with constant weights to measure "
                             "energy on; allowed: a model with at least one")
        model = ModelAccuracy(args.model, args.data, args.calibrate)
    if args.weights is not None:
        W, A = load_array("--weights", args.weights), load_array("--activations", args.activations)
        if W.shape[1] != A.shape[0]:
            raise UsageError("--activations", args.activations, f"has shape {A.shape}; allowed: {W.shape[1]} rows, "
                             f"the K of --weights {W.shape}")
    try:
        with stdout_to_stderr():
            rows = explore(space, args.out, W, A, args.workers, args.scheduler, args.cache,
                           progress_bar("points"), model)
    except SpaceError as e:
        raise UsageError("SPACE", args.space, str(e)) from None
    except (SynthError, ToolError) as e:
        return fail(str(e))
    print_report({"out": args.out, "points": rows} if args.json else
                 {r["point"]: f"accuracy {r['accuracy']} {UNITS[r['accuracy_metric']]}, "
                              f"{r['transistors_per_mac']:.0f} T/MAC, energy "
                              f"{r['energy_per_mac']} /MAC{' (pareto)' if r['pareto'] else ''}" for r in rows},
                 args.json)
    return 0
