"""Transistors of the LNS datapath: bucket-adder organisations, and MAC units with accumulators against INT.

Area is Yosys's static-CMOS estimate (``stat -tech cmos`` after ``synth -flatten``, see
:mod:`qmac.toolchain.synth`; results are cached in ``build/synth-cache/``). Yosys runs one unit at a time.
Three tables:

- **organisations:** a per-beat :class:`LogDotProduct` (lane registers and bucket adders, latency 2) of each
  organisation, LNS8 and LNS4, per product (lane) and V; with ``--q-floors`` also LNS8 ``tree`` units that
  drop the products below ``2**q_floor``.
- **q_floor accuracy:** the error each floor of ``--error-q-floors`` adds to LNS8 sums of 1024 products of
  standard-normal values (golden model only, :func:`q_floor_rows`).
- **units:** a :class:`MacUnit` of a one-unit core (``rows = cols = 1``, ``max_k``): dot product,
  accumulators (for LNS the ``2**F`` bucket accumulators) and shadow register, per 8-bit operand lane, for
  INT8, INT4, LNS8 and LNS4 (an INT4 or LNS4 lane holds two elements). For LNS, the column's
  :class:`LogCombine` (one per column of R units, here for ``cols = 1``) is measured apart and its share
  ``combine / (R * V)`` added per lane.

Run from the repository root::

    python bench/lns_area.py [--lanes 4 8 16] [--max-k 4096] [--rows 8] [--q-floors -8 -4 0] [--timeout 1800]
"""

import argparse

import numpy as np
from amaranth.back import verilog

from qmac.hw.spec.config import CoreConfig
from qmac.hw.array.datapaths import hardware
from qmac.hw.log_datapath.log_dot_product import ORGANISATIONS, LogDotProduct
from qmac.hw.spec.log_format import LNS4, LNS8
from qmac.hw.spec.log_sum import LogSum
from qmac.hw.array.mac_unit import MacUnit
from qmac.sim import log_dot_product as model
from qmac.sim.log_format import encode
from qmac.toolchain.synth import synth_generic

FORMATS = {"LNS8": LNS8, "LNS4": LNS4}
UNIT_MODES = ("int8", "int4", "lns8", "lns4")


def transistors(unit, name, timeout):
    """Yosys's transistor estimate of the Amaranth component ``unit``."""
    text = verilog.convert(unit, name=name, emit_src=False)
    return synth_generic(text, name, timeout=timeout)["transistors"]


def organisation_rows(lane_counts, q_floors, timeout):
    """``[(format, organisation, q_floor, V, transistors)]`` of per-beat LogDotProducts."""
    rows = []
    variants = [(name, org, None) for name in FORMATS for org in ORGANISATIONS]
    variants += [("LNS8", "tree", q) for q in q_floors]
    for name, org, q_floor in variants:
        for lanes in lane_counts:
            unit = LogDotProduct(lanes, FORMATS[name], org, q_floor=q_floor)
            label = f"log_dot_{name}_{org}_v{lanes}" + ("" if q_floor is None else f"_q{q_floor}".replace("-", "m"))
            rows.append((name, org, q_floor, lanes, transistors(unit, label.lower(), timeout)))
    return rows


def unit_rows(lane_counts, max_k, rows_per_column, timeout):
    """``[(mode, V, MacUnit transistors, LogCombine transistors or None)]`` of one-unit cores."""
    out = []
    for mode in UNIT_MODES:
        for lanes in lane_counts:
            config = CoreConfig(rows=1, cols=1, lanes=lanes, modes=(mode,), max_k=max_k)
            unit = transistors(MacUnit(config), f"mac_unit_{mode}_v{lanes}", timeout)
            combine = None
            post_array = hardware(config).post_array   # LogCombine for the LNS modes
            if post_array:
                column = config.replace(rows=rows_per_column)
                combine = transistors(post_array(column), f"log_combine_{mode}_v{lanes}", timeout)
            out.append((mode, lanes, unit, combine))
    return out


def q_floor_rows(q_floors, products=1024, tiles=200, seed=1):
    """``[(q_floor, dropped fraction, mean and worst |error| / sum|p|, worst bound / sum|p|)]`` of LNS8 dot
    products of ``products`` standard-normal values encoded to LNS8 (no scales), P = 12."""
    rng = np.random.default_rng(seed)
    w, a = encode(LNS8, rng.standard_normal((tiles, products))), encode(LNS8, rng.standard_normal((tiles, products)))
    magnitudes = np.abs(model.reference(LNS8, w[..., None], a[..., None])).sum(axis=-1)
    rows = []
    for q_floor in [None, *q_floors]:
        spec = LogSum(LNS8, products, q_floor=q_floor)
        value = model.value(spec, model.combine(spec, model.bucket_sums(spec, w, a)))
        err = np.abs(value - model.reference(LNS8, w, a)) / magnitudes
        dropped = model.products(spec, w, a)[2].mean()
        bound = model.error_bound(spec, w, a) / magnitudes
        rows.append((q_floor, dropped, err.mean(), err.max(), bound.max()))
    return rows


def q_floor_table(rows):
    lines = ["| q_floor | products dropped | mean error / sum abs(p) | worst error / sum abs(p) "
             "| worst bound / sum abs(p) |", "|---|---|---|---|---|"]
    for q_floor, dropped, mean, worst, bound in rows:
        lines.append(f"| {'none' if q_floor is None else q_floor} | {100 * dropped:.2f}% | {mean:.2e} | {worst:.2e} "
                     f"| {bound:.2e} |")
    return "\n".join(lines)


def organisation_table(rows):
    lines = ["| format | organisation | q_floor | V | transistors | per lane |", "|---|---|---|---|---|---|"]
    for name, org, q_floor, lanes, n in rows:
        lines.append(f"| {name} | {org} | {'' if q_floor is None else q_floor} | {lanes} | {n} | {n / lanes:.0f} |")
    return "\n".join(lines)


def unit_table(rows, rows_per_column):
    lines = [f"| mode | V | MacUnit | per lane | LogCombine (per column) | per lane with combine / {rows_per_column} |",
             "|---|---|---|---|---|---|"]
    for mode, lanes, unit, combine in rows:
        shared = "" if combine is None else f"{(unit + combine / rows_per_column) / lanes:.0f}"
        lines.append(f"| {mode.upper()} | {lanes} | {unit} | {unit / lanes:.0f} | {'' if combine is None else combine} "
                     f"| {shared} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--max-k", type=int, default=4096, help="max_k of the one-unit cores")
    parser.add_argument("--rows", type=int, default=8, help="units sharing one LogCombine (R)")
    parser.add_argument("--q-floors", type=int, nargs="*", default=[], help="LNS8 tree units with these q_floor")
    parser.add_argument("--error-q-floors", type=int, nargs="*", default=[-12, -10, -8, -6, -4, -2, 0],
                        help="q_floor values of the accuracy table")
    parser.add_argument("--no-units", action="store_true", help="no MacUnit table")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    print(organisation_table(organisation_rows(args.lanes, args.q_floors, args.timeout)))
    print()
    print(q_floor_table(q_floor_rows(args.error_q_floors)))
    if not args.no_units:
        print()
        print(unit_table(unit_rows(args.lanes, args.max_k, args.rows, args.timeout), args.rows))


if __name__ == "__main__":
    main()
