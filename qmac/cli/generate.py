"""``qmac generate``: write the core's Verilog and its manifest (the main job)."""

from qmac.hw.array.emit import write_core

from .common import UsageError, add_config_args, config_from_args
from .inputs import output_dir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("generate", help="write qmac_core.v and qmac_core.json (the main job)")
    add_config_args(p)
    p.add_argument("--out", default="build", metavar="DIR",
                   help="output folder, created if missing (default: build)")
    p.set_defaults(func=run)


def run(args):
    output_dir("--out", args.out)
    cfg = config_from_args(args)
    try:
        v, j, seconds = write_core(cfg, args.out)
    except OSError as e:
        raise UsageError("--out", args.out, f"cannot be written ({e.strerror or e}); allowed: a writable "
                         "folder") from None
    if cfg.lns:
        spec = cfg.log_sum
        hybrid = f" (hybrid: b = {spec.fraction_bits}, {spec.mantissa_bits}-bit mantissas)" if cfg.log_hybrid else ""
        acc = (f"{spec.buckets} exact {cfg.bucket_format.bits}-bit fraction accumulators per unit{hybrid}, "
               f"{cfg.acc_format.bits}-bit results x 2**{spec.result_exponent}")
    else:
        acc = f"{cfg.acc_format.bits}-bit {'saturating' if cfg.saturating else 'exact'} accumulators"
    print(f"wrote {v} and {j} in {seconds:.1f} s "
          f"({cfg.rows}x{cfg.cols} array, V={cfg.lanes}, modes {'/'.join(cfg.modes)}, {acc})")
    return 0
