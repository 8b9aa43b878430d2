"""Gate-level simulation with toggle counting: a Yosys netlist (:func:`qmac.toolchain.synth.gate_netlist`)
Verilated with ``--coverage-toggle`` around a C++ driver from ``qmac.tb``, built into an executable: for the core,
``verilator_harness.cpp`` with ``-DQMAC_TOGGLES`` (the beat loop of the fast RTL engine, plus a ``main`` that
reads a job file and writes the toggle counts); for a combinational probe, ``gate_probe_harness.cpp``.

Builds are cached by the netlist text, the driver source, the build flags and the Verilator version under
``<build_root>/gate-sim/<key>`` (``build_root`` defaults to ``$QMAC_BUILD_ROOT`` or ``build``); a build runs
in a temporary folder renamed into place, so concurrent builds of one netlist do not see each other's files.
A netlist of the 2x2x4 core builds in 25-80 s (the toggle counters make the C++ large) and runs 20k cycles
in a fraction of a second.
"""

import os
import re
import subprocess
import tempfile
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

from qmac.tb.runner import ToolError, verilator_build

__all__ = ["DRIVERS", "build_gate_sim", "run_core", "run_probe", "read_toggles"]

#: Driver of each kind of netlist: (C++ source in qmac.tb, top module, its preprocessor defines).
DRIVERS = {"core": ("verilator_harness.cpp", "qmac_core", ("-DQMAC_TOGGLES",)),
           "probe": ("gate_probe_harness.cpp", "probe", ())}

#: Verilator options: toggle counters on every net (private ``_`` names and wide vectors too); gate-level
#: netlists raise lint warnings (UNOPTFLAT, ...) that say nothing about the design; -O0 compiles the large
#: generated C++ (10 MB for the 2x2x4 core) in 80% of the CPU time of -O1 and runs thousands of cycles in a second;
#: as one translation unit (``VM_PARALLEL_BUILDS=0``) it takes 25% less CPU time than as a dozen files each
#: parsing Verilator's headers (INT8 2x2x4 core: 27.6 against 36.6 CPU s).
BUILD_FLAGS = ("--coverage-toggle", "--coverage-underscore", "--coverage-max-width", "1048576",
               "-Wno-fatal", "-Wno-lint", "-Wno-style", "-MAKEFLAGS",
               "OPT_FAST=-O0 OPT_GLOBAL=-O0 OPT_SLOW=-O0 VM_PARALLEL_BUILDS=0")

_EXE = "gate_sim"


def build_gate_sim(netlist_path, kind="core", defines=(), build_root=None):
    """The executable of driver ``kind`` (a :data:`DRIVERS` key) around the netlist at ``netlist_path``,
    built unless cached; returns ``(path, built)``.

    ``defines`` are preprocessor flags for the driver besides its own (``-DQMAC_LOG_SHIFT`` on a core with
    ``log_output``).
    Raises :class:`~qmac.tb.runner.ToolError` naming a missing tool, or with the tail of the build log."""
    if kind not in DRIVERS:
        raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, not {kind!r}")
    source_name, top, own = DRIVERS[kind]
    defines = [*own, *defines]
    flags = list(BUILD_FLAGS) + ["-CFLAGS", " ".join(defines)] if defines else list(BUILD_FLAGS)
    files = {"netlist.v": Path(netlist_path).read_text(),
             source_name: resources.files("qmac.tb").joinpath(source_name).read_text()}
    root = Path(build_root or os.environ.get("QMAC_BUILD_ROOT", "build")).resolve() / "gate-sim"
    return verilator_build(root, files, top, source_name, _EXE, ["-j", str(os.cpu_count() or 1), *flags],
                           "the gate-level netlist")


def _words(values, width):
    """Payload integers -> uint32 array, ``ceil(width / 32)`` little-endian words each (at least one)."""
    n = max(1, -(-width // 32))
    return np.frombuffer(b"".join(int(v).to_bytes(4 * n, "little") for v in values), dtype=np.uint32), n


def run_core(exe, w_words, a_words, widths, rows, mode_code, sparse, k_beats, repeat=1, log_shift=0):
    """Stream the beats ``w_words``/``a_words`` (payload integers) ``repeat`` times through the core's
    gate-level simulation ``exe``, valid and ready held high.

    ``widths`` are the bit widths of the w, a and y payloads; ``rows`` the result rows of one pass.
    Returns ``(payloads, cycles, toggles)``: the ``rows * repeat`` result payload integers in stream order,
    the clock cycles from the first beat until the core is idle, and :func:`read_toggles` of that window."""
    w, _ = _words(w_words, widths[0])
    a, _ = _words(a_words, widths[1])
    yw = max(1, -(-widths[2] // 32))
    head = np.array([len(w_words), rows, mode_code, int(sparse), k_beats - 1, log_shift, repeat], dtype=np.uint64)
    with tempfile.TemporaryDirectory() as tmp:
        job, out, cov = Path(tmp) / "job.bin", Path(tmp) / "out.bin", Path(tmp) / "coverage.dat"
        job.write_bytes(head.tobytes() + w.tobytes() + a.tobytes())
        done = subprocess.run([str(exe), str(job), str(out), str(cov)], capture_output=True, text=True)
        if done.returncode:
            why = "the core made no progress for 100000 cycles" if done.returncode == 4 else done.stderr.strip()
            raise ToolError(f"gate-level simulation failed (exit {done.returncode}): {why}")
        raw = out.read_bytes()
        cycles = int(np.frombuffer(raw[:8], dtype=np.uint64)[0])
        y = np.frombuffer(raw[8:], dtype=np.uint32).reshape(rows * repeat, yw)
        toggles = read_toggles(cov)
    return [int.from_bytes(r.tobytes(), "little") for r in y], cycles, toggles


def run_probe(exe, steps, seed=1):
    """Apply ``steps`` random operand pairs to the probe's gate-level simulation; returns its toggles."""
    with tempfile.TemporaryDirectory() as tmp:
        cov = Path(tmp) / "coverage.dat"
        done = subprocess.run([str(exe), str(steps), str(seed), str(cov)], capture_output=True, text=True)
        if done.returncode:
            raise ToolError(f"gate-level probe simulation failed (exit {done.returncode}): {done.stderr.strip()}")
        return read_toggles(cov)


_POINT = re.compile(r"\x01o\x02(.*?):([01])->([01])\x01")
_MANGLED = re.compile(r"__0([0-9A-Fa-f]{2})")


def read_toggles(path):
    """Verilator's toggle counts in coverage file ``path``: ``{(net name, bit): transitions}``, both
    directions summed. Names are the Verilog ones (Verilator's ``__0XX`` escapes decoded); ``bit`` is the
    index in the declared range, 0 for a scalar."""
    counts = defaultdict(int)
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.startswith("C '"):
            continue
        m = _POINT.search(line)
        if m is None:
            continue
        name = _MANGLED.sub(lambda g: chr(int(g.group(1), 16)), m.group(1))
        bit = 0
        if name.endswith("]"):
            name, index = name[:-1].rsplit("[", 1)
            bit = int(index)
        counts[(name, bit)] += int(line.rsplit(" ", 1)[1])
    return dict(counts)
