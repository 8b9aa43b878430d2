"""``qmac presets``: print the embedded configs as TOML."""

from qmac.hw.spec.config import PRESETS

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("presets", help="print the embedded configs as TOML")
    p.set_defaults(func=run)


def run(args):
    for name, cfg in PRESETS.items():
        print(f"# --preset {name}: {cfg.macs_per_cycle(cfg.modes[0])} {cfg.modes[0]} MACs/cycle")
        print(cfg.to_toml())
    return 0
