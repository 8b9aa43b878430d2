"""Hybrid LNS buckets: MAC-unit area per lane and GEMM SQNR against ``bucket_fraction_bits`` b and
``mantissa_bits`` Pm, next to INT8 and INT4 (docs/lns.md, "Hybrid buckets").

Two tables:

- **area:** a :class:`MacUnit` of a one-unit core (``rows = cols = 1``, ``max_k``) per 8-bit operand lane:
  dot product, accumulators and shadow register; for LNS plus the share ``combine / (R * V)`` of the
  column's :class:`LogCombine` (measured for ``cols = 1``, ``rows = R``). Yosys ``synth -flatten``,
  ``stat -tech cmos`` (:func:`qmac.toolchain.synth.synth_generic`, cached in ``build/synth-cache/``).
- **sqnr:** W (N x K) and A (K x M) of i.i.d. unit-variance data, quantized along K (``quantize_log``,
  clip ``mse``, per tensor or with S-bit log scales per vector of V) and multiplied by the golden model of
  the LNS datapath (``gemm_buckets``, ``combine``; with a window ``gemm_window`` in beats of V = 16) for
  each (b, Pm, q_floor[, window_bits]); the SQNR
  (dB) of that result against the float64 ``W @ A``. The INT8 and INT4 rows are the quantizers'
  float products (``bench/lns_sqnr.py``). With ``--layers DIR ...`` the columns are real layers instead of
  synthetic distributions: each DIR holds ``W.npy`` and ``A.npy`` (``bench/minilm_layer.py`` writes them).

Run from the repository root::

    python bench/lns_hybrid.py sqnr [--rows 256 --depth 1024 --cols 256] [--only 'LNS8 F=4/log scales V=16 S=6']
                                    [--layers DIR ...]
    python bench/lns_hybrid.py area [--lanes 16] [--max-k 4096] [--rows-per-column 8] [--timeout 3600]
                                    [--variants int8 int4 lns8 lns8:0:6 lns8:0:8:-4:4:6 lns8:0:8::4:6:12 ...]
                                    [--int-lanes 4074 2410]
"""

import argparse
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from qmac.hw.array.mac_unit import MacUnit
from qmac.hw.log_datapath.log_combine import LogCombine
from qmac.hw.spec.config import CoreConfig
from qmac.hw.spec.formats import INT4, INT8
from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat
from qmac.hw.spec.log_sum import LogSum
from qmac.sim import log_dot_product as model
from qmac.sim.evaluate import DISTRIBUTIONS, synthetic
from qmac.sim.log_quantize import quantize_log
from qmac.sim.quantize import quantize, quantize_vsq, sqnr_db, vsq_gemm
from qmac.toolchain.synth import synth_generic

VECTOR = 16
#: LNS8 with F = 4: 3 integer bits, steps of 2**(1/16), 7.9 octaves (config key ``frac_bits = 4``).
LNS8_F4 = LogFormat(8, 4)
#: mode:b:Pm[:q_floor[:F[:S[:W]]]] of the area table; a plain mode is INT or the exact LNS scheme.
AREA_VARIANTS = ["int8", "int4", "lns8", "lns8:2:6", "lns8:1:6", "lns8:0:6", "lns8:0:4", "lns8:0:6:-8",
                 "lns4", "lns4:1:4", "lns4:0:4"]
#: Quantizer settings of the SQNR table: (scheme label, (vector, scale_bits) or ()).
PER_TENSOR, SCALES_16_4 = ("per-tensor", ()), ("log scales V=16 S=4", (VECTOR, 4))
#: The F = 4 rows with S-bit log scales: (scheme label, (vector, scale_bits), [(b, Pm, q_floor)]).
F4_SCHEMES = [("log scales V=16 S=6", (16, 6), [(None, 0, None), (0, 6, None), (0, 8, None), (0, 6, -4)]
               + [(0, 8, q) for q in (-6, -4, -2, 0)]),
              ("log scales V=8 S=6", (8, 6), [(None, 0, None), (0, 8, None), (0, 8, -4)])]
#: Further F = 4 rows, run on their own (``--only``): the floors that keep Student-t(3) (S = 6: -6;
#: S = 8, whose scales lift the top product by 12 octaves: 6; without a floor its sums pass 64 bits).
F4_FLOORS = [("log scales V=16 S=6, q_floor", (16, 6), [(0, 6, -6), (0, 8, -7)]),
             ("log scales V=8 S=6, q_floor", (8, 6), [(0, 8, -6)]),
             ("log scales V=16 S=8, q_floor", (16, 8), [(None, 0, 6), (0, 8, 6), (0, 8, 4)])]
#: Windowed rows (``--only "LNS8 F=4/log scales V=16 S=6, window"``): (b, Pm, q_floor, window_bits).
F4_WINDOWS = [("log scales V=16 S=6, window", (16, 6),
               [(0, 8, None, w) for w in (10, 12, 13, 14, 16)] + [(0, 8, -6, 12)]
               + [(0, 6, None, w) for w in (8, 10, 12)])]
#: (label, format, schemes, [(b, Pm, q_floor)]) of the SQNR table; b = None is the exact scheme.
SQNR_VARIANTS = [("LNS8", LNS8, [PER_TENSOR, SCALES_16_4],
                  [(None, 0, None)] + [(b, pm, None) for b in (2, 1, 0) for pm in (3, 4, 6)]
                  + [(0, pm, q) for pm in (4, 6) for q in (-8, 0)]),
                 ("LNS8 F=4", LNS8_F4, [PER_TENSOR, SCALES_16_4],
                  [(None, 0, None), (0, 5, None), (0, 6, None), (0, 8, None), (0, 8, -4)]),
                 *(("LNS8 F=4", LNS8_F4, [scheme[:2]], scheme[2])
                   for scheme in F4_SCHEMES + F4_FLOORS + F4_WINDOWS),
                 ("LNS8 F=5", LogFormat(8, 5), [("log scales V=16 S=8", (16, 8)), ("log scales V=4 S=8", (4, 8))],
                  [(0, 10, None)]),
                 ("LNS4", LNS4, [PER_TENSOR, SCALES_16_4],
                  [(None, 0, None), (1, 3, None), (0, 3, None), (0, 4, None)]),
                 ("LNS4 F=1", LogFormat(4, 1), [PER_TENSOR, SCALES_16_4], [(None, 0, None), (0, 2, None), (0, 4, None)])]


def transistors(unit, name, timeout):
    """Yosys's transistor estimate of the Amaranth component ``unit``."""
    return synth_generic(verilog.convert(unit, name=name, emit_src=False), name, timeout=timeout)["transistors"]


def parse_variant(text):
    """``"lns8:0:6"`` -> ``("lns8", 0, 6, None, None, 0, None)``, ``"lns8:0:6:-8"`` (with ``q_floor = -8``) ->
    ``("lns8", 0, 6, -8, None, 0, None)``, ``"lns8:0:8:-4:4:6"`` (``frac_bits = 4``, 6-bit log scales per vector
    of ``lanes``) -> ``("lns8", 0, 8, -4, 4, 6, None)``, ``"lns8:0:8::4:6:12"`` (``window_bits = 12``, no floor)
    -> ``("lns8", 0, 8, None, 4, 6, 12)``, ``"lns8::"`` -> ``("lns8", None, None, None, None, 0, None)``,
    ``"int8"`` likewise."""
    mode, *rest = text.split(":") + [""] * 6
    *fields, scale_bits, window = (int(x) if x else None for x in rest[:6])
    return (mode, *fields, scale_bits or 0, window)


def area_rows(variants, lanes, max_k, rows_per_column, timeout):
    """``[(mode, b, Pm, q_floor, F, S, W, MacUnit transistors, LogCombine transistors or None,
    (accumulator bits, result bits))]``."""
    out = []
    for mode, b, pm, q_floor, frac, scale_bits, window in variants:
        scales = dict(scale_bits=scale_bits, scale_kind="log", scale_lanes=lanes) if scale_bits else {}
        config = CoreConfig(rows=1, cols=1, lanes=lanes, modes=(mode,), max_k=max_k, bucket_fraction_bits=b,
                            mantissa_bits=pm, q_floor=q_floor, frac_bits=frac, window_bits=window, **scales)
        tag = (f"{mode}_v{lanes}" + ("" if b is None else f"_b{b}_m{pm}")
               + ("" if q_floor is None else f"_q{q_floor}".replace("-", "m"))
               + ("" if frac is None else f"_f{frac}") + (f"_s{scale_bits}" if scale_bits else "")
               + ("" if window is None else f"_w{window}"))
        unit = transistors(MacUnit(config), f"mac_unit_{tag}", timeout)
        combine = bits = None
        if config.log_format is not None:
            combine = transistors(LogCombine(config.replace(rows=rows_per_column)), f"log_combine_{tag}", timeout)
            acc = config.bucket_format.bits
            bits = (f"{acc}+{config.log_sum.anchor_bits}" if window else acc, config.acc_format.bits)
        out.append((mode, b, pm, q_floor, config.log_format, scale_bits, window, unit, combine, bits))
        print(f"  measured {tag}: {unit} (+ combine {combine})", flush=True)
    return out


def area_table(rows, lanes, rows_per_column, int8, int4):
    """Markdown rows; ``int8`` and ``int4`` are the per-lane transistors of the INT MacUnits."""
    lines = [f"| mode | F | S | b | Pm | q_floor | W | accumulators x bits | result bits | MacUnit "
             f"| LogCombine (R = {rows_per_column}) | per lane | / INT8 lane | / INT4 lane |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, b, pm, q_floor, fmt, scale_bits, window, unit, combine, bits in rows:
        per_lane = (unit + (combine or 0) / rows_per_column) / lanes
        buckets = "" if fmt is None else f"{1 << (fmt.frac_bits if b is None else b)} x {bits[0]}"
        lines.append(f"| {mode.upper()} | {'' if fmt is None else fmt.frac_bits} | {scale_bits or ''} "
                     f"| {'' if b is None else b} | {'' if pm is None else pm} "
                     f"| {'' if q_floor is None else q_floor} | {'' if window is None else window} | {buckets} "
                     f"| {'' if bits is None else bits[1]} | {unit} | {'' if combine is None else combine} "
                     f"| {per_lane:.0f} | {per_lane / int8:.2f} | {per_lane / int4:.2f} |")
    return "\n".join(lines)


def hybrid_gemm(w, a, b, pm, q_floor=None, window=None):
    """The LNS core's result for the quantized operands ``w`` (N x K) and ``a`` (K x M), as float64: the
    golden buckets (:func:`~qmac.sim.log_dot_product.gemm_buckets`) of a LogSum with ``b``, ``pm`` and
    ``q_floor`` over K products, combined and scaled. The LogSum spans the S-bit scale fields, as the
    core's does. With ``window`` (``window_bits``) the products are summed in beats of :data:`VECTOR` by
    :func:`~qmac.sim.log_dot_product.gemm_window`, as a V = 16 core sums them."""
    fmt = w.fmt
    w_exp = None if w.scales is None else np.repeat(w.scales, w.vector, axis=1)
    a_exp = None if a.scales is None else np.repeat(a.scales, a.vector, axis=0)
    lo = hi = 0
    if w.scales is not None:
        lo, hi = -(1 << w.scale_bits), (1 << w.scale_bits) - 2
    k = w.codes.shape[1]
    products, beats = (VECTOR, -(-k // VECTOR)) if window else (k, 1)
    spec = LogSum(fmt, products, beats, lo, hi, q_floor, bucket_fraction_bits=b, mantissa_bits=pm, window_bits=window)
    if spec.result_format.bits > 64:
        raise ValueError(f"b = {b}, Pm = {pm}, q_floor = {q_floor}: {spec.result_format.bits}-bit results, "
                         f"no core has them (at most 64 bits)")
    if window:
        y = model.value(spec, model.gemm_window(spec, w.codes, a.codes, w_exp, a_exp))
        return y * 2.0 ** ((w.offset + a.offset) / fmt.buckets)
    acc = model.gemm_buckets(spec, w.codes, a.codes, w_exp, a_exp)
    y = model.value(spec, model.combine(spec, acc))
    return y * 2.0 ** ((w.offset + a.offset) / fmt.buckets)


def sqnr_rows(W, A, only=None):
    """``[(format, scheme, b, Pm, q_floor, W, SQNR)]``: the INT rows, then the LNS rows (with ``only``, a list,
    just those whose label or ``label/scheme`` is in it, e.g. ``"LNS8 F=4/log scales V=16 S=6"``)."""
    Y = W @ A
    rows = [("INT8", scheme, "", "", "", "", sqnr_db(Y, vsq_gemm(
        *(quantize(x, INT8, scheme, axis, clip="mse") for x, axis in ((W, 1), (A, 0))))))
        for scheme in ("per-tensor", "per-channel")]
    for fmt, label, bits in ((INT8, "INT8", 4), (INT8, "INT8", 8), (INT4, "INT4", 4)):
        rows.append((label, f"VSQ int scales V=16 S={bits}", "", "", "", "", sqnr_db(Y, vsq_gemm(
            *(quantize_vsq(x, fmt, VECTOR, bits, axis, "channel", "mse") for x, axis in ((W, 1), (A, 0)))))))
    for label, fmt, schemes, variants in SQNR_VARIANTS:
        for scheme, args in schemes:
            if only and label not in only and f"{label}/{scheme}" not in only:
                continue
            w, a = quantize_log(W, fmt, 1, *args, clip="mse"), quantize_log(A, fmt, 0, *args, clip="mse")
            rows += [(label, scheme, "F" if b is None else b, "" if b is None else pm, "" if q is None else q,
                      window[0] if window else "", _lns_sqnr(Y, w, a, b, pm, q, *window))
                     for b, pm, q, *window in variants]
    return rows


def _lns_sqnr(Y, w, a, *variant):
    """SQNR (dB) of :func:`hybrid_gemm` against ``Y``; NaN where no core has the variant's results (more
    than 64 bits at this K: a long layer with wide scales and no floor)."""
    try:
        return sqnr_db(Y, hybrid_gemm(w, a, *variant))
    except ValueError:
        return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=("sqnr", "area"))
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--depth", type=int, default=1024)
    parser.add_argument("--cols", type=int, default=256)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--max-k", type=int, default=4096)
    parser.add_argument("--rows-per-column", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--variants", nargs="+", default=AREA_VARIANTS,
                        help=f"mode or mode:b:Pm[:q_floor[:F[:S[:W]]]] (default: {' '.join(AREA_VARIANTS)})")
    parser.add_argument("--int-lanes", type=float, nargs=2, metavar=("INT8", "INT4"),
                        help="per-lane transistors of the INT8 and INT4 MacUnits, when not measured here")
    parser.add_argument("--only", nargs="+", help="sqnr: only the LNS rows of these format labels or "
                                                  "label/scheme (e.g. 'LNS8 F=4/log scales V=16 S=6')")
    parser.add_argument("--layers", nargs="+", metavar="DIR",
                        help="sqnr: real layers instead of synthetic data, each DIR with W.npy (N x K) and A.npy (K x M)")
    args = parser.parse_args()
    if args.table == "area":
        rows = area_rows([parse_variant(v) for v in args.variants], args.lanes, args.max_k, args.rows_per_column,
                         args.timeout)
        measured = {r[0]: r[7] / args.lanes for r in rows if r[0] in ("int8", "int4")}
        int8, int4 = args.int_lanes or (measured["int8"], measured["int4"])
        print(area_table(rows, args.lanes, args.rows_per_column, int8, int4))
        return
    if args.layers:
        data = {Path(d).name: (np.load(Path(d) / "W.npy"), np.load(Path(d) / "A.npy")) for d in args.layers}
        print(", ".join(f"{name}: W {W.shape[0]} x {W.shape[1]}, A {A.shape[0]} x {A.shape[1]}"
                        for name, (W, A) in data.items()) + "; clip mse; SQNR of W @ A in dB\n")
    else:
        data = {d: (synthetic(d, (args.rows, args.depth), 0), synthetic(d, (args.depth, args.cols), 1))
                for d in DISTRIBUTIONS}
        print(f"W: {args.rows} x {args.depth} (seed 0), A: {args.depth} x {args.cols} (seed 1), clip mse; "
              f"SQNR of W @ A in dB\n")
    results = {name: sqnr_rows(W, A, args.only) for name, (W, A) in data.items()}
    print("| format | scheme | b | Pm | q_floor | W | " + " | ".join(results) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(results))
    for i, row in enumerate(results[next(iter(results))]):
        print("| " + " | ".join(map(str, row[:6])) + " | "
              + " | ".join("n/a" if np.isnan(v := results[d][i][6]) else f"{v:.2f}" for d in results) + " |")


if __name__ == "__main__":
    main()
