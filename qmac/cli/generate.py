"""``qmac generate``: write the core's Verilog and its manifest (the main job)."""

from qmac.hw.array.emit import write_core

from .common import add_config_args, config_from_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("generate", help="write qmac_core.v and qmac_core.json (the main job)")
    add_config_args(p)
    p.add_argument("--out", default="build", metavar="DIR", help="output folder (default: build)")
    p.set_defaults(func=run)


def run(args):
    cfg = config_from_args(args)
    v, j, seconds = write_core(cfg, args.out)
    acc = cfg.datapath.describe()
    print(f"wrote {v} and {j} in {seconds:.1f} s "
          f"({cfg.rows}x{cfg.cols} array, V={cfg.lanes}, modes {'/'.join(cfg.modes)}, {acc})")
    return 0
