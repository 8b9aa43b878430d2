"""What every ``qmac`` command shares: the usage error, the config flags, reading arrays, printing reports."""

import contextlib
import json
import os
import sys

import numpy as np

from qmac.hw.spec.config import PRESETS, load_config, preset

__all__ = ["UsageError", "add_config_args", "config_from_args", "print_report", "load_npy", "stdout_to_stderr",
           "fail"]


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


def config_from_args(args, default=None):
    """The config ``--config FILE`` or ``--preset NAME`` names; without either, ``default`` (a
    :class:`~qmac.hw.spec.config.CoreConfig`), or the ``default`` preset."""
    if args.config and args.preset:
        raise UsageError("give --config or --preset, not both")
    if args.config:
        return load_config(args.config)
    if args.preset or default is None:
        return preset(args.preset or "default")
    return default


def add_config_args(p, default="default"):
    """``--config`` and ``--preset`` on the subcommand parser ``p``; ``default`` says what neither gives."""
    p.add_argument("--config", metavar="FILE", help="TOML config file (see README, 'Configuration')")
    p.add_argument("--preset", metavar="NAME", help=f"embedded config: {', '.join(PRESETS)} (default: {default})")


def print_report(report, as_json):
    """A command's result: one JSON object, or one aligned ``key: value`` line per entry."""
    if as_json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>14}: {v}")


def load_npy(path, name):
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"--{name} {path!r} cannot be read as a .npy array: {e}") from None
    if x.ndim != 2:
        raise UsageError(f"--{name} {path!r} must be a 2-D array, not shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UsageError(f"--{name} {path!r} must hold integers (codes) or floats, not {x.dtype}")
    return x


@contextlib.contextmanager
def stdout_to_stderr():
    """Simulator chatter goes to stderr so that stdout carries only the report (``--json``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def fail(message):
    print(f"qmac: error: {message}", file=sys.stderr)
    return 1
