"""The ``qmac`` command line: one module per command, each registering its own arguments.

Every command module has ``add_parser(subparsers)``, which adds its subcommand and sets ``func`` to its
``run(args)``; ``run`` returns the exit status. Bad arguments and bad configs raise :class:`UsageError`
or :class:`~qmac.hw.spec.config.ConfigError`: one line ``qmac: error: ...``, exit code 2.
"""

import argparse
import sys

from qmac.hw.spec.config import ConfigError

from . import bitstream, energy, eval, explore, gemm, generate, presets, run, synth, test
from .common import UsageError

__all__ = ["main", "COMMANDS"]

#: The command modules, in the order ``qmac --help`` lists them.
COMMANDS = (generate, gemm, eval, synth, energy, explore, presets, bitstream, run, test)


def parser():
    p = argparse.ArgumentParser(prog="qmac", description="RTL generator for low-precision MAC arrays.")
    sub = p.add_subparsers(dest="command")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command is None:
        args = parser().parse_args(["generate"] + (argv or []))
    if getattr(args, "stall", 0.0) and not 0.0 <= args.stall < 1.0:
        print(f"qmac: error: --stall must be in [0, 1), not {args.stall}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ConfigError, UsageError) as e:
        print(f"qmac: error: {e}", file=sys.stderr)
        return 2
