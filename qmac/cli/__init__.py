"""The ``qmac`` command line: one module per command, each registering its own arguments.

Every command module has ``add_parser(subparsers)``, which adds its subcommand and sets ``func`` to its
``run(args)``; ``run`` returns the exit status. Bad arguments, bad input files and bad configs raise
:class:`UsageError` or :class:`~qmac.hw.spec.config.ConfigError`: one line
``qmac: error: <flag or key>: <value>: <what is allowed>``, exit code 2, nothing written. The exit codes are
listed in README.md ("Exit codes").
"""

import argparse
import os
import re
import sys

from qmac.hw.spec.config import ConfigError

from . import bitstream, energy, eval, explore, gemm, generate, model, presets, run, synth, test
from .common import UsageError

__all__ = ["main", "COMMANDS"]

#: The command modules, in the order ``qmac --help`` lists them.
COMMANDS = (generate, gemm, eval, model, synth, energy, explore, presets, bitstream, run, test)

#: Exit status when stdout is closed early (``qmac presets | head``): 128 + SIGPIPE, as shell tools give.
EXIT_BROKEN_PIPE = 141


class _UsageLine(Exception):
    """argparse's complaint, already rewritten as one line."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors as one line ``<flag>: <value>: <what is allowed>`` instead of a usage block."""

    def error(self, message):
        raise _UsageLine(_one_line(message, self.prog))


def _unquote(choices):
    return ", ".join(c.strip(" '") for c in choices.split(","))


def _one_line(message, prog):
    """argparse's messages (Python 3.11 texts) in the ``<flag>: <value>: <allowed>`` form."""
    m = re.fullmatch(r"argument (.+?): (.*)", message, re.S)
    if m:
        arg, rest = m.group(1).split("/")[-1], m.group(2)
        if c := re.fullmatch(r"invalid choice: (.*) \(choose from (.*)\)", rest, re.S):
            return f"{arg}: {c.group(1)}: allowed: {_unquote(c.group(2))}"
        if c := re.fullmatch(r"invalid (\w+) value: (.*)", rest, re.S):
            kind = {"int": "an integer", "float": "a number"}.get(c.group(1), c.group(1))
            return f"{arg}: {c.group(2)}: allowed: {kind}"
        if c := re.fullmatch(r"expected (.*)", rest, re.S):
            return f"{arg}: (missing): allowed: {c.group(1).replace('argument', 'value')}"
        return f"{arg}: {rest}"
    if m := re.fullmatch(r"the following arguments are required: (.*)", message, re.S):
        return f"{m.group(1)}: (missing): required by '{prog}'"
    if m := re.fullmatch(r"unrecognized arguments: (.*)", message, re.S):
        return f"{m.group(1)}: unrecognized: allowed: the options 'qmac COMMAND --help' lists"
    if m := re.fullmatch(r"ambiguous option: (\S+) could match (.*)", message, re.S):
        return f"{m.group(1)}: ambiguous: allowed: one of {m.group(2)}"
    return " ".join(message.split())


def parser():
    p = ArgumentParser(prog="qmac", description="RTL generator for low-precision MAC arrays.",
                       epilog="Exit codes: 0 ok, 1 RTL mismatch or build/link failure, 2 bad input, "
                              "3 saturation with --strict (README.md, 'Exit codes').")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _parse(argv):
    if argv[:1] == ["test"]:  # everything after 'test' belongs to pytest, options included
        return argparse.Namespace(command="test", func=test.run, pytest_args=argv[1:])
    args = parser().parse_args(argv)
    if args.command is None:
        args = parser().parse_args(["generate", *argv])
    return args


def main(argv=None):
    """Run ``qmac`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parse(argv)
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except _UsageLine as e:
        print(f"qmac: error: {e}", file=sys.stderr)
        return 2
    except (ConfigError, UsageError) as e:
        print(f"qmac: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left (``| head``): say nothing, and keep Python's exit-time flush from complaining.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE
