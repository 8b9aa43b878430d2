"""Energy per MAC from the gate-level netlist of the core, on real operands.

The flow (docs/energy.md):

1. Yosys maps the emitted core to generic gates module by module and flattens it
   (:func:`qmac.toolchain.synth.gate_netlist`); every cell's name keeps its instance path.
2. The netlist runs on Verilator with toggle counters on every net (:mod:`qmac.toolchain.gate_sim`): the
   GEMM's operand beats (:func:`qmac.sim.gemm.operand_beats`) are streamed ``repeat`` times with valid and
   ready held high, and the result rows are checked against the golden model, bit for bit.
3. Every net bit's transitions are weighed by its switched capacitance (:func:`net_capacitance`): the input
   capacitance of the cell pins it drives (:data:`PIN_CAP`, in units of one minimum transistor's gate), a wire
   term per load pin (:data:`WIRE_PER_LOAD`) and the driving cell's own output node (:data:`OUTPUT_CAP`). The
   clock, which Verilator does not count, toggles twice per cycle into every flip-flop's clock pin.
4. The sum, in *units* (one unit = one transition of one minimum transistor gate's capacitance, i.e.
   ``C_g * Vdd**2 / 2``), divided by the GEMM's ``N * K * M`` MACs, is the energy per MAC; it is split by
   component (:func:`component_of`, from the driving cell's instance path) and by kind of net (clock,
   flip-flop outputs, logic, inputs).
5. Optionally, :func:`calibration` maps units to picojoules with three operators synthesized and simulated the
   same way and priced by Horowitz (ISSCC 2014, 45 nm): an 8-bit adder 0.03 pJ, an 8x8 multiplier 0.2 pJ, a
   32-bit adder 0.1 pJ. The factor is their geometric mean; ``pj_per_mac`` is a calibrated estimate.
"""

import json
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from qmac.hw.spec.config import MODE_CODES
from qmac.hw.array.emit import TOP_NAME, emit_verilog
from qmac.sim.gemm import assemble, expected_results, operand_beats, plan_gemm
from qmac.sim.packing import unpack_results

__all__ = ["PIN_CAP", "FLIP_FLOP_PIN_CAP", "OUTPUT_CAP", "WIRE_PER_LOAD", "PORT_LOAD", "COMPONENTS", "DISTRIBUTIONS",
           "HOROWITZ_PJ", "component_of", "net_capacitance", "synthetic_operands", "measure_energy", "calibration",
           "plot_breakdown"]

#: Input capacitance of each pin of Yosys's generic gates, in minimum transistor gates: the transistors whose
#: gate the pin drives in the static CMOS cell that ``stat -tech cmos`` counts (NAND2 = 4 transistors, each input
#: drives one n and one p: 2; AND2 = NAND2 + inverter: 2 per input; XOR2 (12 T): each input drives its own
#: inverter and two pass transistors: 4; MUX2 (12 T): data 2, select 4 (inverter and two pass transistors)).
PIN_CAP = {
    "$_BUF_": {"A": 2}, "$_NOT_": {"A": 2},
    "$_AND_": {"A": 2, "B": 2}, "$_NAND_": {"A": 2, "B": 2}, "$_OR_": {"A": 2, "B": 2}, "$_NOR_": {"A": 2, "B": 2},
    "$_ANDNOT_": {"A": 2, "B": 2}, "$_ORNOT_": {"A": 2, "B": 2},
    "$_XOR_": {"A": 4, "B": 4}, "$_XNOR_": {"A": 4, "B": 4},
    "$_MUX_": {"A": 2, "B": 2, "S": 4}, "$_NMUX_": {"A": 2, "B": 2, "S": 4},
    "$_AOI3_": {"A": 2, "B": 2, "C": 2}, "$_OAI3_": {"A": 2, "B": 2, "C": 2},
    "$_AOI4_": {"A": 2, "B": 2, "C": 2, "D": 2}, "$_OAI4_": {"A": 2, "B": 2, "C": 2, "D": 2},
}
#: Pins of every flip-flop type (``$_DFF_P_``, ``$_SDFFE_PP0P_``, ...): D 2; clock 4 (the master and slave
#: transmission gates); synchronous reset R 2 (a gate before D); enable E 4 (the select of a hold multiplexer).
FLIP_FLOP_PIN_CAP = {"D": 2, "C": 4, "R": 2, "E": 4}
#: The driving cell's own output node per transition (drain diffusion): 2 for a gate; 8 for a flip-flop, whose
#: master and slave nodes switch with Q.
OUTPUT_CAP = {"gate": 2, "flip-flop": 8}
#: Wire capacitance per load pin (a short local wire costs about one gate input).
WIRE_PER_LOAD = 1
#: Load of a top-level output port (the block that reads it).
PORT_LOAD = 2

#: Components of the breakdown, in report order (see :func:`component_of`).
COMPONENTS = ("lanes", "adder trees", "scale units", "sparse select", "accumulators", "shadow/drain", "output",
              "control", "inputs", "clock")

#: Synthetic operand distributions: weights and activations drawn independently (relu: Gaussian weights,
#: activations ``max(x, 0)`` of a Gaussian, half zeros; zeros: all-zero codes).
DISTRIBUTIONS = ("gaussian", "laplace", "t3", "uniform", "zeros", "relu")

#: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, 0.9 V: pJ per operation.
HOROWITZ_PJ = {"add8": 0.03, "mul8": 0.2, "add32": 0.1}

_PROBES = {
    "add8": "module probe(input [7:0] a, input [7:0] b, output [8:0] y);\n  assign y = a + b;\nendmodule\n",
    "mul8": ("module probe(input signed [7:0] a, input signed [7:0] b, output signed [15:0] y);\n"
             "  assign y = a * b;\nendmodule\n"),
    "add32": "module probe(input [31:0] a, input [31:0] b, output [32:0] y);\n  assign y = a + b;\nendmodule\n",
}
_PROBE_STEPS = 20000

_SEGMENT = re.compile(r"\\([^\\]+?)\.")
_GENERATED = re.compile(r"^n\d+_$")


def _is_flip_flop(cell_type):
    return bool(re.match(r"^\$_(S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DFFSR)", cell_type))


def component_of(cell_name, output_net=""):
    """The component of a cell, from its instance path in the flattened netlist (``$flatten\\array.\\u0_1.
    \\dot0.\\lane2.$abc$...``; no ``$flatten`` prefix: the top level) and, for cells of the MAC unit itself,
    the name of the net it drives.

    ``lane<i>`` -> lanes (the multipliers); ``select`` -> sparse select; ``scale``/``scales`` -> scale units;
    ``dot<i>``/``dot`` -> adder trees (the lanes' sum; in an LNS unit the whole log dot product: exponent
    adders, shifts and bucket adders); a MAC unit ``u<r>_<c>`` itself -> shadow/drain when the net it drives
    is named ``shadow...``, else accumulators; ``combine``/``output``/``requantize`` -> output; the array's
    control, the flag pipelines and the top level's counters -> control."""
    path = _SEGMENT.findall(cell_name) if cell_name.startswith("$flatten") else []
    for seg in reversed(path):
        if re.fullmatch(r"lane\d+", seg):
            return "lanes"
        if seg == "select":
            return "sparse select"
        if seg in ("scale", "scales"):
            return "scale units"
        if re.fullmatch(r"dot\d*", seg):
            return "adder trees"
        if re.fullmatch(r"u\d+_\d+", seg):
            return "shadow/drain" if output_net.rsplit(".", 1)[-1].startswith("shadow") else "accumulators"
        if seg in ("combine", "output", "requantize"):
            return "output"
    return "control"


def _load_netlist(path):
    return json.loads(Path(path).read_text())["modules"][TOP_NAME]


def net_capacitance(module):
    """Per net bit of a Yosys JSON module: ``({bit: (capacitance, component, kind)}, clock capacitance)``.

    Capacitance = sum of the load pins' :data:`PIN_CAP` + :data:`WIRE_PER_LOAD` per load pin + the driver's
    :data:`OUTPUT_CAP` (+ :data:`PORT_LOAD` for a top-level output). The component is the driver's
    (:func:`component_of`); a net driven by an input port is ``inputs``. ``kind``: ``flip-flop``, ``gate`` or
    ``input``. The clock's capacitance is returned apart (the clock is not counted by the simulator)."""
    names = {}
    for name, net in module["netnames"].items():
        for b in net["bits"]:
            # Prefer a design name to the n<i>_ names the netlist gave private wires.
            if isinstance(b, int) and (b not in names or _GENERATED.match(names[b]) and not _GENERATED.match(name)):
                names[b] = name
    load = defaultdict(float)
    driver = {}
    for cname, cell in module["cells"].items():
        ctype = cell["type"]
        ff = _is_flip_flop(ctype)
        pins = FLIP_FLOP_PIN_CAP if ff else PIN_CAP.get(ctype)
        if pins is None:
            raise ValueError(f"cell {cname!r} has type {ctype!r}, which the energy cost table does not price")
        for port, bits in cell["connections"].items():
            if cell["port_directions"][port] == "output":
                for b in bits:
                    if isinstance(b, int):
                        driver[b] = (cname, "flip-flop" if ff else "gate")
            else:
                for b in bits:
                    if isinstance(b, int):
                        load[b] += pins[port] + WIRE_PER_LOAD
    clock_bits = set(module["ports"].get("clk", {}).get("bits", []))
    for name, port in module["ports"].items():
        for b in port["bits"]:
            if not isinstance(b, int):
                continue
            if port["direction"] == "input":
                driver.setdefault(b, (None, "input"))
            else:
                load[b] += PORT_LOAD
    nets = {}
    clock = 0.0
    for b in set(load) | set(driver):
        cname, kind = driver.get(b, (None, "input"))
        cap = load[b] + OUTPUT_CAP.get(kind, 0)
        if b in clock_bits:
            clock += cap
            continue
        component = "inputs" if cname is None else component_of(cname, names.get(b, ""))
        nets[b] = (cap, component, kind)
    return nets, clock


def _bit_toggles(module, toggles):
    """Verilator's ``{(name, index): transitions}`` -> ``{bit: transitions}`` over the JSON netlist's bits."""
    out = {}
    for name, net in module["netnames"].items():
        offset = net.get("offset", 0)
        for i, b in enumerate(net["bits"]):
            if isinstance(b, int):
                t = toggles.get((name, offset + i))
                if t is not None:
                    out[b] = max(out.get(b, 0), t)
    return out


def _energy(module, toggles, cycles):
    """Energy in units by component and by kind, and the fraction of driven net bits the simulator counted."""
    nets, clock = net_capacitance(module)
    counted = _bit_toggles(module, toggles)
    by_component = dict.fromkeys(COMPONENTS, 0.0)
    by_kind = {"clock": 0.0, "flip-flop": 0.0, "gate": 0.0, "input": 0.0}
    for b, (cap, component, kind) in nets.items():
        e = counted.get(b, 0) * cap
        by_component[component] += e
        by_kind[kind] += e
    by_component["clock"] = by_kind["clock"] = 2 * cycles * clock
    seen = sum(1 for b in nets if b in counted) / max(1, len(nets))
    return by_component, by_kind, seen


def synthetic_operands(distribution, n, k, m, seed=0):
    """Float operands ``W`` (n x k) and ``A`` (k x m) of a :data:`DISTRIBUTIONS` name (``zeros``: int64 zero
    codes), drawn with numpy's default generator from ``seed``."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, not {distribution!r}")
    if distribution == "zeros":
        return np.zeros((n, k), dtype=np.int64), np.zeros((k, m), dtype=np.int64)
    rng = np.random.default_rng(seed)
    draw = {"gaussian": rng.standard_normal, "relu": rng.standard_normal,
            "laplace": lambda shape: rng.laplace(size=shape), "t3": lambda shape: rng.standard_t(3, shape),
            "uniform": lambda shape: rng.uniform(-1, 1, shape)}
    W, A = draw[distribution]((n, k)), draw[distribution]((k, m))
    if distribution == "relu":
        A = np.maximum(A, 0.0)
    return W, A


def _gate_sim(config, build_root, cache_dir):
    from qmac.toolchain.gate_sim import build_gate_sim
    from qmac.toolchain.synth import gate_netlist
    verilog, _ = emit_verilog(config)
    gates = gate_netlist(verilog, TOP_NAME, cache_dir=cache_dir)
    exe, _ = build_gate_sim(gates["files"]["netlist.v"], "core",
                            ["-DQMAC_LOG_SHIFT"] if config.log_output else [], build_root)
    return gates, exe


def measure_energy(config, mode, W, A, w_scales=None, a_scales=None, sparse=False, repeat=1, calibrate=False,
                   build_root=None, cache_dir=None):
    """Energy of ``W @ A`` (codes of ``mode``, scale fields on a core with scale units) on the gate-level
    netlist of ``config``, streamed ``repeat`` times back to back.

    Returns a dict: ``energy_per_mac`` (units per MAC, see the module docstring), ``energy`` (units),
    ``pj_per_mac`` (calibrated estimate, or None without ``calibrate``), ``macs`` (``N*K*M*repeat``),
    ``cycles`` (clock cycles from the first beat until the core is idle), ``by_component`` and ``by_kind``
    (units per MAC), ``bit_exact`` (the netlist's result rows equal the golden model's, every pass),
    ``toggle_coverage`` (fraction of driven net bits the simulator counted), ``cells`` and ``transistors``
    (of the gate-level netlist, flip-flops with reset or enable not counted: a lower bound) and ``Y`` (the
    netlist's N x M result of the first pass, int64).

    Raises ValueError for a config the driver cannot run (output stage) or bad operands, and
    :class:`~qmac.toolchain.synth.SynthError` / :class:`~qmac.tb.runner.ToolError` from the tools."""
    if config.output_stage:
        raise ValueError("energy: cores with output_stage = true are not supported (the gate-level driver "
                         "streams no requant parameters)")
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive integer, not {repeat!r}")
    from qmac.toolchain.gate_sim import run_core
    plan = plan_gemm(config, mode, np.shape(W), np.shape(A), sparse)
    w_words, a_words = operand_beats(plan, W, A, w_scales, a_scales)
    gates, exe = _gate_sim(config, build_root, cache_dir)
    module = _load_netlist(gates["files"]["netlist.json"])
    width = {name: len(module["ports"][f"{name}__payload"]["bits"]) for name in ("w", "a", "y")}
    rows = plan.tiles * config.rows
    payloads, cycles, toggles = run_core(exe, w_words, a_words, (width["w"], width["a"], width["y"]), rows,
                                         MODE_CODES[mode], sparse, plan.k_beats, repeat)
    expected = expected_results(plan, W, A, w_scales, a_scales)
    got = unpack_results(payloads, config)
    bit_exact = all(got[i * rows:(i + 1) * rows] == expected for i in range(repeat))
    Y = assemble(plan, [row.data for row in got[:rows]])
    by_component, by_kind, seen = _energy(module, toggles, cycles)
    macs = plan.useful_macs * repeat
    energy = sum(by_component.values())
    factor = calibration(build_root, cache_dir)["pj_per_unit"] if calibrate else None
    return {
        "energy_per_mac": energy / macs,
        "pj_per_mac": None if factor is None else energy / macs * factor,
        "energy": energy,
        "macs": macs,
        "cycles": cycles,
        "by_component": {k: v / macs for k, v in by_component.items() if v},
        "by_kind": {k: v / macs for k, v in by_kind.items()},
        "bit_exact": bit_exact,
        "toggle_coverage": seen,
        "cells": gates["cells"],
        "transistors": gates["transistors"],
        "Y": Y,
    }


def calibration(build_root=None, cache_dir=None):
    """Units -> picojoules: each :data:`HOROWITZ_PJ` operator (a combinational Verilog probe) is mapped to
    generic gates and simulated on 20,000 uniformly random operand pairs; its energy per operation in units
    (:func:`net_capacitance` of the probe's nets, inputs included) prices it. Returns ``pj_per_unit`` (the
    geometric mean of the operators' pJ per unit) and ``units`` (per operation, by operator)."""
    from qmac.toolchain.gate_sim import build_gate_sim, run_probe
    from qmac.toolchain.synth import gate_netlist
    units = {}
    for name, verilog in _PROBES.items():
        gates = gate_netlist(verilog, "probe", cache_dir=cache_dir)
        exe, _ = build_gate_sim(gates["files"]["netlist.v"], "probe", build_root=build_root)
        module = json.loads(Path(gates["files"]["netlist.json"]).read_text())["modules"]["probe"]
        toggles = run_probe(exe, _PROBE_STEPS)
        nets, _ = net_capacitance(module)
        counted = _bit_toggles(module, toggles)
        units[name] = sum(counted.get(b, 0) * cap for b, (cap, _, _) in nets.items()) / _PROBE_STEPS
    factor = math.exp(sum(math.log(HOROWITZ_PJ[n] / u) for n, u in units.items()) / len(units))
    return {"pj_per_unit": factor, "units": units}


def plot_breakdown(reports, labels, file, fmt="png"):
    """A stacked horizontal bar per report of :func:`measure_energy` (``labels`` name them, top to bottom):
    energy per MAC split by :data:`COMPONENTS` (one colour each, the share printed in segments wide enough for it),
    the total (and the calibrated pJ per MAC, when present) at the bar's end. Written to ``file`` (a path or a
    binary file object) as ``fmt``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = dict(zip(COMPONENTS, plt.get_cmap("tab10").colors))
    legend_rows = 2
    height = 1.3 + 0.4 * len(reports) + 0.25 * legend_rows
    fig, ax = plt.subplots(figsize=(10, height))
    present = [c for c in COMPONENTS if any(r["by_component"].get(c) for r in reports)]
    y = list(range(len(reports)))[::-1]
    top = max(r["energy_per_mac"] for r in reports)
    for component in present:
        values = [r["by_component"].get(component, 0.0) for r in reports]
        left = [sum(r["by_component"].get(c, 0.0) for c in present[:present.index(component)]) for r in reports]
        ax.barh(y, values, left=left, color=colours[component], label=component, height=0.7)
        for yi, v, x0, r in zip(y, values, left, reports):
            if v >= 0.04 * r["energy_per_mac"] and v >= 0.06 * top:  # room for the text
                ax.text(x0 + v / 2, yi, f"{100 * v / r['energy_per_mac']:.0f}%", ha="center", va="center",
                        fontsize=7, color="white")
    for yi, r in zip(y, reports):
        pj = f" ({r['pj_per_mac']:.3f} pJ)" if r.get("pj_per_mac") is not None else ""
        ax.text(r["energy_per_mac"], yi, f" {r['energy_per_mac']:.0f}{pj}", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, top * 1.25)
    ax.set_xlabel("energy per MAC (relative units, docs/energy.md; calibrated pJ in brackets)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("energy per MAC by component", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=-(-len(present) // legend_rows),
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.1 + 0.25 * legend_rows) / height, 1, 1))
    fig.savefig(file, dpi=120, format=fmt)
    plt.close(fig)
