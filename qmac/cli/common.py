"""What every ``qmac`` command shares: the usage error, the config flags, printing reports."""

import contextlib
import json
import math
import os
import sys

from qmac.hw.spec.config import PRESETS, ConfigError, load_config, preset

__all__ = ["UsageError", "add_config_args", "config_from_args", "print_report", "json_safe", "stdout_to_stderr",
           "saturation_status", "fail", "progress_bar"]

class UsageError(Exception):
    """A bad argument, printed as one line ``<flag or key>: <value>: <what is allowed>``; exit code 2.

    ``value`` is shown with ``repr`` when it is a string (the text as given), else with ``str``.
    """

    def __init__(self, name, value, allowed):
        shown = repr(value) if isinstance(value, str) else str(value)
        super().__init__(f"{name}: {shown}: {allowed}")


def config_from_args(args, default=None):
    """The config ``--config FILE`` or ``--preset NAME`` names; without either, ``default`` (a
    :class:`~qmac.hw.spec.config.CoreConfig`), or the ``default`` preset."""
    if args.config is not None and args.preset is not None:
        raise UsageError("--preset", args.preset, "allowed: --config or --preset, not both")
    if args.config is not None:
        return _load_config_file(args.config)
    if args.preset is not None or default is None:
        return preset(args.preset or "default")
    return default


def _load_config_file(path):
    """:func:`~qmac.hw.spec.config.load_config`; a file that cannot be read as a config (missing, a folder, too
    large, not UTF-8, not TOML, too deeply nested) is named as the ``--config`` flag's value, bad keys by key."""
    try:
        return load_config(path)
    except ConfigError as e:
        prefix = f"config file {str(path)!r} "
        if str(e).startswith(prefix):
            raise UsageError("--config", path, str(e).removeprefix(prefix)) from None
        raise


def add_config_args(p, default="default"):
    """``--config`` and ``--preset`` on the subcommand parser ``p``; ``default`` says what neither gives."""
    p.add_argument("--config", metavar="FILE", help="TOML config file (see README, 'Configuration')")
    p.add_argument("--preset", metavar="NAME", choices=list(PRESETS),
                   help=f"embedded config: {', '.join(PRESETS)} (default: {default})")


def json_safe(value, notes, key="result"):
    """``value`` with every NaN or infinity (not valid JSON) replaced by ``None``, each one noted in ``notes``."""
    if isinstance(value, float) and not math.isfinite(value):
        notes.append(f"{key}: {value} is not a JSON number; reported as null")
        return None
    if isinstance(value, dict):
        return {k: json_safe(v, notes, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, notes, key) for v in value]
    return value


def _db(v):
    return f"{v:.1f} dB"


def _ratio(v):
    return f"{v:.3g}"


#: How a person reads the report keys the commands share: value -> text with its unit and meaningful digits.
_TEXT = {
    "shape": lambda v: " x ".join(str(d) for d in v) + "  (N x K x M)",
    "bit_exact": lambda v: "yes, every row equals the golden model" if v else "NO: differs from the golden model",
    "cycles": lambda v: f"{v} cycles",
    "ideal_cycles": lambda v: (f"{v:.0f}" if v >= 100 else f"{v:.3g}") + " cycles",
    "utilization": lambda v: f"{100 * v:.1f} %",
    "saturated": lambda v: "YES: an accumulator clipped; the results are not the exact W @ A" if v else "no",
    "sqnr_db": _db, "pruning_sqnr_db": _db,
    "relative_error": _ratio, "pruning_relative_error": _ratio,
    "seconds": lambda v: f"{v:.3g} s",
    "clock_mhz": lambda v: f"{v:g} MHz",
    "baud": lambda v: f"{v} baud",
    "vector": lambda v: f"{v} elements",
    "scale_bits": lambda v: f"{v} bits",
    "result_exponent": lambda v: f"results are integers x 2**{v}",
    "config": lambda v: ", ".join(f"{k} = {x}" for k, x in v.items()),
    "link_errors": lambda v: ", ".join(v) or "none",
}


def report_lines(report, absent=None):
    """``(key, text)`` pairs for a person: known keys with units and meaningful digits; ``None`` values as
    ``absent[key]`` says (e.g. ``"not checked (golden engine)"``), else ``"n/a"``."""
    absent = absent or {}
    for key, value in report.items():
        if key == "notes":
            continue
        if value is None:
            yield key, absent.get(key, "n/a")
        else:
            yield key, _TEXT.get(key, str)(value)


def print_report(report, as_json, absent=None):
    """A command's result: one strict JSON object (every key; NaN and infinities as null, each with an entry
    in ``notes``), or :func:`report_lines` and the notes, for a person."""
    if as_json:
        notes = list(report.get("notes", []))
        safe = json_safe({k: v for k, v in report.items() if k != "notes"}, notes)
        if notes:
            safe["notes"] = notes
        print(json.dumps(safe, allow_nan=False))
        return
    for key, text in report_lines(report, absent):
        print(f"{key:>22}  {text}")
    for note in report.get("notes", []):
        print(f"{'note':>22}  {note}")


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


def progress_bar(what, enabled=True):
    """A wrapper ``bar(items, total=None)`` that shows a progress bar named ``what`` on stderr while ``items`` is
    iterated, when ``enabled`` and stderr is a terminal (never in CI logs or pipes, never on stdout): tqdm's if
    it is installed, else one line rewritten in place. Otherwise ``items`` is returned unchanged."""
    if not (enabled and sys.stderr.isatty()):
        return lambda items, total=None: items
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda items, total=None: _line_progress(items, what, len(items) if total is None else total)
    return lambda items, total=None: tqdm(items, desc=what, total=total, file=sys.stderr, dynamic_ncols=True)


def _line_progress(items, what, total):
    for i, item in enumerate(items, 1):
        yield item
        print(f"\r{what} {i}/{total}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


#: Exit status of ``--strict`` when an accumulator saturated (README.md, "Exit codes").
EXIT_SATURATED = 3


def saturation_status(saturated, strict, where="an accumulator"):
    """Say on stderr (one ``qmac: warning:`` line) that ``where`` clipped; the exit status that implies:
    :data:`EXIT_SATURATED` with ``strict``, else 0."""
    if not saturated:
        return 0
    print(f"qmac: warning: saturated: {where} clipped, so Y is not the exact W @ A"
          + ("" if strict else " (--strict makes this exit 3)"), file=sys.stderr)
    return EXIT_SATURATED if strict else 0


def fail(message):
    print(f"qmac: error: {message}", file=sys.stderr)
    return 1
