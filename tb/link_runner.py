"""Runs cocotb testbenches on the emitted host link (:class:`qmac.hw.link.host_link.HostLink`).

Like :mod:`qmac.tb.runner` for the bare core: one build directory per (simulator, config, link
parameters); the config travels to the testbench as JSON in ``QMAC_CONFIG`` and the link parameters in
``QMAC_LINK``.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

from amaranth.back import verilog

from qmac.hw.spec.config import CoreConfig
from qmac.hw.link.host_link import HostLink
from qmac.hw.array.mac_unit import MacUnit
from qmac.tb.runner import TIMESCALE, VERILATOR_WAIVERS, build_cocotb, emit_once, prepare_simulator

__all__ = ["HOST_LINK_TOP", "LINK_VERILATOR_WAIVERS", "emit_host_link", "run_host_link_cocotb", "link_from_env"]

#: Module and file name of the emitted host link.
HOST_LINK_TOP = "qmac_host_link"

#: The core's waivers plus three that Amaranth's FSMs, switches, variable part-selects and small FIFOs
#: trigger in the host link's Verilog: CASEINCOMPLETE (a ``case`` over an FSM state without ``default``,
#: always after a default assignment, so no latch), WIDTHTRUNC (Yosys writes ``x == 0`` as ``!x`` and a
#: variable part-select as a shift assigned to a narrower wire) and ASCRANGE (the zero-width address of
#: a two-entry ``SyncFIFOBuffered`` written as ``[-1:0]``). Latches, multiple drivers, loops stay errors.
LINK_VERILATOR_WAIVERS = VERILATOR_WAIVERS + ("CASEINCOMPLETE", "WIDTHTRUNC", "ASCRANGE")


def emit_host_link(config, link):
    """Verilog of ``HostLink(config, **link)`` as module ``qmac_host_link``, its processing element
    emitted once as ``qmac_host_link_mac_unit`` (as :func:`qmac.hw.array.emit.emit_verilog` does for the core)."""
    unit_name = f"{HOST_LINK_TOP}_mac_unit"
    unit = verilog.convert(MacUnit(config), name=unit_name, emit_src=False)
    top = HostLink(config, unit_module=unit_name, **link)
    return verilog.convert(top, name=HOST_LINK_TOP, emit_src=False) + "\n" + unit


def run_host_link_cocotb(config, link, sim, test_module, *, build_root="build/tb", testcase=None, seed=None,
                         waves=None):
    """Emit ``HostLink(config, **link)``, build it for ``sim`` and run cocotb ``test_module`` on it;
    returns ``(tests, failed, results_xml)``. The Verilog is emitted once per generator sources (:func:`~qmac.tb.runner.emit_once`)."""
    from cocotb_tools.runner import get_results
    if not isinstance(config, CoreConfig):
        raise TypeError(f"run_host_link_cocotb needs a CoreConfig, not {config!r}")
    prepare_simulator(sim)
    env = {"QMAC_CONFIG": json.dumps(config.to_dict()), "QMAC_LINK": json.dumps(link, sort_keys=True)}
    key = hashlib.sha256((env["QMAC_CONFIG"] + env["QMAC_LINK"]).encode()).hexdigest()[:12]
    root = Path(build_root).resolve()
    folder = root / f"link-rtl-{key}"
    emit_once(folder, lambda tmp: (tmp / f"{HOST_LINK_TOP}.v").write_text(emit_host_link(config, link)))
    source = folder / f"{HOST_LINK_TOP}.v"
    build_dir = root / f"{sim}-link-{key}"
    args = ["-Wall"] + [f"-Wno-{w}" for w in LINK_VERILATOR_WAIVERS] if sim == "verilator" else []
    runner = build_cocotb(sim, source, HOST_LINK_TOP, build_dir, args, root)
    test_dir = build_dir / (test_module.rsplit(".", 1)[-1] + (f"-{testcase}" if testcase else ""))
    test_dir.mkdir(parents=True, exist_ok=True)
    waves = os.environ.get("WAVES") == "1" if waves is None else waves
    xml = runner.test(test_module=test_module, hdl_toplevel=HOST_LINK_TOP, testcase=testcase, extra_env=env,
                      build_dir=build_dir, test_dir=test_dir, results_xml=str(test_dir / "results.xml"), seed=seed,
                      waves=waves, timescale=TIMESCALE, log_file=test_dir / "sim.log")
    tests, failed = get_results(xml)
    return tests, failed, xml


def link_from_env():
    """Inside a testbench: the HostLink parameters the runner passed."""
    try:
        return json.loads(os.environ["QMAC_LINK"])
    except KeyError:
        sys.exit("QMAC_LINK is not set: run testbenches through qmac.tb.link_runner.run_host_link_cocotb")
