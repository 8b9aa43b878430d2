"""Transistors per MAC lane and per MAC of INT8-only, INT4-only, dual-mode, W4A8-only and INT8+INT4+W4A8 lanes.

Area is Yosys's static-CMOS estimate (``stat -tech cmos`` after generic synthesis, see
:mod:`qmac.toolchain.synth`), measured on small units and divided by their lane count: a lone combinational
:class:`~qmac.hw.lanes.lane_product.LaneProduct`, and pipelined :class:`~qmac.hw.int_datapath.dot_product.DotProduct` units
(registered lane products, adder tree, output register). Lanes built with W4A8 read multiplicands that their
array column forms once (:class:`~qmac.hw.lanes.lane_multiplicands.LaneMultiplicands`, one per V lanes); each
such lane is charged its share of that conversion, amortized over ``--rows`` units per column (the table
shows the share separately). Prints markdown tables and checks the targets:
an INT4 MAC costs 1/4 to 1/3 of an INT8 MAC; a dual-mode lane at most 1.25x, a W4A8-only lane at most 1.1x and
an INT8+INT4+W4A8 lane at most 1.3x an INT8-only lane.

Run from the repository root (results are cached in ``build/synth-cache/``)::

    python bench/area.py [--lanes 4 16] [--rows 8] [--cache-dir DIR]
"""

import argparse

from amaranth.back import verilog

from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.spec.formats import ELEMENT_FORMATS, W4A8
from qmac.hw.lanes.lane_multiplicands import LaneMultiplicands
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


def column_share(modes, lanes, rows, cache_dir):
    """Transistors per lane of the column's :class:`LaneMultiplicands` for ``lanes`` lanes, divided by the
    ``rows`` units sharing it; 0 without W4A8 (no conversion)."""
    if W4A8.name not in modes:
        return 0.0
    return transistors_per_lane(LaneMultiplicands(lanes, modes), lanes, cache_dir) / rows


def measure(dot_lanes, rows, cache_dir):
    """``({unit label: {lane kind: transistors per lane}}, {unit label: {lane kind: column share}})`` for a
    lone lane and each DotProduct size; the first includes the second."""
    units = {"LaneProduct (combinational)": (1, LaneProduct)}
    units.update({f"DotProduct V={v} (pipelined)": (v, lambda modes, v=v: DotProduct(v, modes)) for v in dot_lanes})
    results, shares = {}, {}
    for label, (lanes, make) in units.items():
        shares[label] = {kind: column_share(modes, lanes, rows, cache_dir) for kind, modes in LANE_KINDS.items()}
        results[label] = {kind: transistors_per_lane(make(modes), lanes, cache_dir) + shares[label][kind]
                          for kind, modes in LANE_KINDS.items()}
    return results, shares


def _verdict(ok, note=""):
    return ("met" + note) if ok else "**missed**"


def lane_table(results, shares, rows):
    """Markdown table of transistors per lane (with W4A8, ``total (column share)``) and each kind's ratio to
    an INT8-only lane."""
    targets = " | ".join(f"{kind} / INT8-only (target <= {hi})" for kind, hi in LANE_RATIOS.items())
    lines = [f"| unit (column share: R = {rows}) | {' | '.join(LANE_KINDS)} | {targets} |",
             "|---" * (len(LANE_KINDS) + len(LANE_RATIOS) + 1) + "|"]
    for unit, per_lane in results.items():
        ratios = {kind: per_lane[kind] / per_lane["INT8-only"] for kind in LANE_RATIOS}
        cells = " | ".join(f"{per_lane[kind]:.0f}" + (f" ({shares[unit][kind]:.1f})" if shares[unit][kind] else "")
                           for kind in LANE_KINDS)
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
    parser.add_argument("--rows", type=int, default=8,
                        help="units per array column sharing its W4A8 multiplicand conversion (default: 8)")
    parser.add_argument("--cache-dir", default=None, help="synthesis cache (default: build/synth-cache)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows: {args.rows}: a positive integer")
    results, shares = measure(args.lanes, args.rows, args.cache_dir)
    print("Transistors per lane (Yosys `stat -tech cmos`; with W4A8 including, in parentheses, the lane's share "
          f"of its column's multiplicand conversion over R = {args.rows} rows)\n")
    print(lane_table(results, shares, args.rows))
    print("\nTransistors per MAC\n")
    print(mac_table(results))


if __name__ == "__main__":
    main()
