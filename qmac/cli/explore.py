"""``qmac explore``: sweep core configs and formats over a workload; accuracy, area, energy and throughput per
point, with Pareto plots (docs/explore.md)."""

from .common import UsageError, fail, print_report, progress_bar, stdout_to_stderr
from .inputs import integer, load_array, output_dir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("explore", help="design-space sweep: accuracy x transistors x energy x throughput")
    p.add_argument("space", metavar="SPACE.toml", help="formats, swept config keys and workload (docs/explore.md)")
    p.add_argument("--weights", metavar="W.npy", help="N x K floats (with --activations): overrides the workload's")
    p.add_argument("--activations", metavar="A.npy", help="K x M floats (with --weights)")
    p.add_argument("--out", required=True, metavar="DIR", help="where points.csv, points.json and the plots go")
    p.add_argument("--workers", type=integer(1, 256), default=1, metavar="N", help="local worker processes (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run the points on this Dask distributed scheduler")
    p.add_argument("--cache", default="build/explore-cache", metavar="DIR",
                   help="result cache (default build/explore-cache)")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    p.set_defaults(func=run)


def run(args):
    from qmac.explore import SpaceError, explore, load_space
    from qmac.tb.runner import ToolError
    from qmac.toolchain.synth import SynthError
    if (args.weights is None) != (args.activations is None):
        raise UsageError("--weights" if args.weights is None else "--activations", None,
                         "allowed: both --weights and --activations, or neither (the workload's operands)")
    try:
        space = load_space(args.space)
    except SpaceError as e:
        raise UsageError("SPACE", args.space, str(e)) from None
    output_dir("--out", args.out)
    W = A = None
    if args.weights is not None:
        W, A = load_array("--weights", args.weights), load_array("--activations", args.activations)
        if W.shape[1] != A.shape[0]:
            raise UsageError("--activations", args.activations, f"has shape {A.shape}; allowed: {W.shape[1]} rows, "
                             f"the K of --weights {W.shape}")
    try:
        with stdout_to_stderr():
            rows = explore(space, args.out, W, A, args.workers, args.scheduler, args.cache,
                           progress_bar("points"))
    except (SynthError, ToolError) as e:
        return fail(str(e))
    print_report({"out": args.out, "points": rows} if args.json else
                 {r["point"]: f"accuracy {r['accuracy']} dB, {r['transistors_per_mac']:.0f} T/MAC, energy "
                              f"{r['energy_per_mac']} /MAC{' (pareto)' if r['pareto'] else ''}" for r in rows},
                 args.json)
    return 0
