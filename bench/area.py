"""Transistors per MAC lane and per MAC of INT8-only, INT4-only, dual-mode, W4A8-only and INT8+INT4+W4A8 lanes.

Area is Yosys's static-CMOS estimate (``stat -tech cmos`` after generic synthesis, see
:mod:`qmac.toolchain.synth`), measured on small units and divided by their lane count: a lone combinational
:class:`~qmac.hw.lanes.lane_product.LaneProduct`, and pipelined :class:`~qmac.hw.int_datapath.dot_product.DotProduct` units
(registered lane products, adder tree, output register). Prints markdown tables and checks the targets:
an INT4 MAC costs 1/4 to 1/3 of an INT8 MAC; a dual-mode lane at most 1.25x, a W4A8-only lane at most 1.1x and
an INT8+INT4+W4A8 lane at most 1.3x an INT8-only lane.

Run from the repository root (results are cached in ``build/synth-cache/``)::

    python bench/area.py [--lanes 4 16] [--cache-dir DIR]
"""

import argparse

from amaranth.back import verilog

from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.hw.lanes.lane_product import LaneProduct
from qmac.toolchain.synth import synth_generic

#: Lane kinds compared: table label -> modes built in.
LANE_KINDS = {"INT8-only": ("int8",), "INT4-only": ("int4",), "dual": ("int8", "int4"), "W4A8-only": ("w4a8",),
              "INT8+INT4+W4A8": ("int8", "int4", "w4a8")}

#: Targets: INT4 MAC / INT8 MAC about the first value and at most the second (below the first is better
#: than expected, not a miss); dual lane / INT8-only lane at most this.
INT4_MAC_RATIO = (1 / 4, 1 / 3)
#: Lane kind -> largest cost relative to an INT8-only lane.
LANE_RATIOS = {"dual": 1.25, "W4A8-only": 1.1, "INT8+INT4+W4A8": 1.3}


def transistors_per_lane(unit, lanes, cache_dir):
    """Transistor estimate of ``unit`` (an Amaranth component with ``lanes`` lanes) divided by ``lanes``."""
    name = type(unit).__name__.lower()
    text = verilog.convert(unit, name=name, emit_src=False)
    return synth_generic(text, name, cache_dir=cache_dir)["transistors"] / lanes


def measure(dot_lanes, cache_dir):
    """``{unit label: {lane kind: transistors per lane}}`` for a lone lane and each DotProduct size."""
    results = {"LaneProduct (combinational)": {
        kind: transistors_per_lane(LaneProduct(modes), 1, cache_dir) for kind, modes in LANE_KINDS.items()}}
    for v in dot_lanes:
        results[f"DotProduct V={v} (pipelined)"] = {
            kind: transistors_per_lane(DotProduct(v, modes), v, cache_dir) for kind, modes in LANE_KINDS.items()}
    return results


def _verdict(ok, note=""):
    return ("met" + note) if ok else "**missed**"


def lane_table(results):
    """Markdown table of transistors per lane and each kind's ratio to an INT8-only lane."""
    targets = " | ".join(f"{kind} / INT8-only (target <= {hi})" for kind, hi in LANE_RATIOS.items())
    lines = [f"| unit | {' | '.join(LANE_KINDS)} | {targets} |",
             "|---" * (len(LANE_KINDS) + len(LANE_RATIOS) + 1) + "|"]
    for unit, per_lane in results.items():
        ratios = {kind: per_lane[kind] / per_lane["INT8-only"] for kind in LANE_RATIOS}
        cells = " | ".join(f"{per_lane[kind]:.0f}" for kind in LANE_KINDS)
        verdicts = " | ".join(f"{r:.2f} {_verdict(r <= LANE_RATIOS[kind])}" for kind, r in ratios.items())
        lines.append(f"| {unit} | {cells} | {verdicts} |")
    return "\n".join(lines)


def mac_table(results):
    """Markdown table of transistors per MAC (lane cost / MACs per lane per cycle) and the INT4/INT8 ratio."""
    columns = [(kind, mode) for kind, modes in LANE_KINDS.items() for mode in modes]
    lo, hi = INT4_MAC_RATIO
    header = " | ".join(f"{kind}, {mode.upper()} ({ELEMENT_FORMATS[mode].per_lane} MAC/lane)"
                        for kind, mode in columns)
    lines = [f"| unit | {header} | INT4-only / INT8-only per MAC (target {lo:.2f} to {hi:.2f}) |",
             "|---" * (len(columns) + 2) + "|"]
    for unit, per_lane in results.items():
        per_mac = {(kind, mode): per_lane[kind] / ELEMENT_FORMATS[mode].per_lane for kind, mode in columns}
        ratio = per_mac["INT4-only", "int4"] / per_mac["INT8-only", "int8"]
        cells = " | ".join(f"{per_mac[c]:.0f}" for c in columns)
        note = f" (below {lo:.2f})" if ratio < lo else ""
        lines.append(f"| {unit} | {cells} | {ratio:.2f} {_verdict(ratio <= hi, note)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="*", default=[4],
                        help="DotProduct sizes to measure (default: 4)")
    parser.add_argument("--cache-dir", default=None, help="synthesis cache (default: build/synth-cache)")
    args = parser.parse_args(argv)
    results = measure(args.lanes, args.cache_dir)
    print("Transistors per lane (Yosys `stat -tech cmos`)\n")
    print(lane_table(results))
    print("\nTransistors per MAC\n")
    print(mac_table(results))


if __name__ == "__main__":
    main()
