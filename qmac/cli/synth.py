"""``qmac synth``: synthesize the core with Yosys and report cells and transistors."""

import time

from .common import add_config_args, config_from_args, print_report

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("synth", help="synthesize the core with Yosys and report cells / transistors")
    add_config_args(p)
    p.add_argument("--target", default="generic", choices=["generic", "ice40", "ecp5"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from qmac.toolchain.synth import synth_config
    cfg = config_from_args(args)
    start = time.perf_counter()
    res = synth_config(cfg, target=args.target)
    res = {"target": args.target, "seconds": round(time.perf_counter() - start, 1), **res}
    print_report(res, args.json)
    return 0
