"""``qmac test``: run the regression (pytest) of a source checkout."""

import argparse
import subprocess
import sys
from pathlib import Path

from .common import UsageError

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("test", help="run the regression (pytest) of a source checkout")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)
    return p


def run(args):
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests").is_dir() or not (root / "pyproject.toml").is_file():
        raise UsageError(f"the regression needs a qmac source checkout (an editable install); {root} has no tests/ "
                         f"folder: clone the repository and run 'bash .ci/setup python -m pytest' there")
    return subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args], cwd=root)
