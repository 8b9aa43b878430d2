"""Transistors of LogDotProduct units of both bucket organisations, next to INT8/INT4 dot products.

Area is Yosys's static-CMOS estimate (``stat -tech cmos`` after ``synth -flatten``, see
:mod:`qmac.tb.synth`; results are cached in ``build/synth-cache/``). Yosys runs one unit at a time. Each
LogDotProduct is a whole unit: product registers, bucket adders, ``2**F`` accumulators, the shadow bank,
the constant multipliers and the result register. The INT references are :class:`DotProduct` units (lane
products, adder tree and output register, no accumulator). Measuring two or more lane counts separates the
cost that grows with V from the fixed cost of the accumulators and the combine stage: the table's last column
is the added cost per added lane against the previous lane count.

Run from the repository root: ``python bench/lns_area.py [--lanes 4 8] [--k-beats 256] [--timeout 1800]``
"""

import argparse

from amaranth.back import verilog

from qmac.hw.dot_product import DotProduct
from qmac.hw.log_dot_product import ORGANISATIONS, LogDotProduct
from qmac.hw.log_format import LNS4, LNS8
from qmac.tb.synth import synth_generic


def units(lanes, k_beats):
    """``{label: unit}`` for one lane count: INT8 and INT4 DotProduct, LNS4 and LNS8 in each organisation."""
    out = {"DotProduct INT8": DotProduct(lanes, ("int8",)), "DotProduct INT4": DotProduct(lanes, ("int4",))}
    for fmt, name in ((LNS4, "LNS4"), (LNS8, "LNS8")):
        for org in ORGANISATIONS:
            out[f"LogDotProduct {name} {org}"] = LogDotProduct(lanes, fmt, max_k_beats=k_beats, organisation=org)
    return out


def measure(lane_counts, k_beats, timeout):
    """``{label: {V: transistors}}``."""
    results = {}
    for lanes in lane_counts:
        for label, unit in units(lanes, k_beats).items():
            name = label.lower().replace(" ", "_") + f"_v{lanes}"
            text = verilog.convert(unit, name=name, emit_src=False)
            results.setdefault(label, {})[lanes] = synth_generic(text, name, timeout=timeout)["transistors"]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--k-beats", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    results = measure(args.lanes, args.k_beats, args.timeout)
    print("| unit | V | transistors | per lane | added per added lane |\n|---|---|---|---|---|")
    for label, by_lanes in results.items():
        previous = None
        for lanes, n in by_lanes.items():
            added = f"{(n - by_lanes[previous]) / (lanes - previous):.0f}" if previous else ""
            print(f"| {label} | {lanes} | {n} | {n / lanes:.0f} | {added} |")
            previous = lanes


if __name__ == "__main__":
    main()
