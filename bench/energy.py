"""Energy per MAC of 2x2-unit cores of every format on synthetic operands and real layers (docs/energy.md,
'Results').

Runs ``qmac energy --config ... --distribution D --calibrate --json`` for each core and distribution (and
``--weights L/W.npy --activations L/A.npy`` for each ``--layer`` folder L, e.g. from bench/minilm_layer.py) and
prints a Markdown table (relative units per MAC, calibrated pJ per MAC, the share of the largest components).
The first run synthesizes and Verilates every core (minutes each on a busy 2-core machine); later runs hit the
caches. ``--plot`` draws the runs as bars stacked by component (qmac.energy.plot_breakdown).

    python bench/energy.py [--cores NAME ...] [--distributions D ...] [--layer DIR ...] [--out results.json]
                           [--plot breakdown.png]
"""

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from qmac.cli import main
from qmac.hw.spec.config import CoreConfig

GEOMETRY = {"rows": 2, "cols": 2, "lanes": 4, "max_k": 1024}

#: name -> (config keys, qmac energy flags)
CORES = {
    "INT8": ({"modes": ["int8"]}, ["--format", "int8"]),
    "INT4": ({"modes": ["int4"]}, ["--format", "int4"]),
    "W4A8": ({"modes": ["w4a8"]}, ["--format", "w4a8"]),
    "INT8 VSQ (int scales, S=8, V=16)": ({"modes": ["int8"], "scale_bits": 8, "scale_lanes": 4},
                                         ["--format", "int8", "--scale", "vector", "--vector", "16",
                                          "--scale-bits", "8"]),
    "INT4 VSQ (pow2 scales, S=4, V=16)": ({"modes": ["int4"], "scale_bits": 4, "scale_kind": "pow2", "scale_lanes": 4},
                                          ["--format", "int4", "--scale", "vector", "--vector", "16",
                                           "--scale-bits", "4", "--scale-kind", "pow2"]),
    "LNS8": ({"modes": ["lns8"]}, ["--format", "lns8"]),
    "LNS4 VSQ (log scales, S=4, V=16)": ({"modes": ["lns4"], "scale_bits": 4, "scale_kind": "log", "scale_lanes": 4},
                                         ["--format", "lns4", "--scale", "vector", "--vector", "16",
                                          "--scale-bits", "4"]),
    "INT8 2:4 sparse": ({"modes": ["int8"], "sparse": True}, ["--format", "int8", "--sparse", "2:4"]),
}
DISTRIBUTIONS = ("gaussian", "laplace", "t3", "relu", "zeros")


def energy(config_path, flags, source):
    """The report of one run; ``source`` is a distribution name or a folder holding W.npy and A.npy."""
    if Path(source).is_dir():
        data = ["--weights", str(Path(source) / "W.npy"), "--activations", str(Path(source) / "A.npy")]
    else:
        data = ["--distribution", source]
    if source == "zeros":  # integer zero codes: no float scaling to choose (scale fields stay neutral)
        flags = [f for f, prev in zip(flags, [None] + flags) if not (f.startswith("--scale") or f == "--vector"
                 or prev is not None and (prev.startswith("--scale") or prev == "--vector"))]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["energy", "--config", str(config_path), *flags, *data, "--calibrate", "--json"])
    if status:
        raise SystemExit(f"qmac energy failed ({status}) for {config_path} {flags} {source}")
    return json.loads(out.getvalue())


def layer_sqnr(config_path, flags, folder):
    """SQNR (dB) of ``qmac gemm`` (golden model) on the layer in ``folder`` with the same core and flags: what
    the energy buys."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["gemm", "--config", str(config_path), *flags, "--weights", str(Path(folder) / "W.npy"),
                       "--activations", str(Path(folder) / "A.npy"), "--json"])
    if status:
        raise SystemExit(f"qmac gemm failed ({status}) for {config_path} {flags} {folder}")
    return json.loads(out.getvalue())["sqnr_db"]


def main_():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write every report as JSON")
    ap.add_argument("--cores", nargs="*", default=list(CORES), help="subset of the core names")
    ap.add_argument("--distributions", nargs="*", default=list(DISTRIBUTIONS), help="synthetic data sets")
    ap.add_argument("--layer", nargs="*", default=[], help="folders with a real layer's W.npy and A.npy")
    ap.add_argument("--plot", help="also draw the runs as stacked bars (PNG)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.cores):
            keys, flags = CORES[name]
            path = Path(tmp) / f"core{i}.toml"
            path.write_text(CoreConfig.from_dict({**GEOMETRY, **keys}).to_toml())
            for d in [*args.distributions, *args.layer]:
                r = energy(path, flags, d)
                if Path(d).is_dir():
                    r["sqnr_db"] = layer_sqnr(path, flags, d)
                    d = Path(d).name
                results.append({"core": name, "distribution": d, **r})
                print(f"{name} {d}: {r['energy_per_mac']:.0f} units/MAC, {r['pj_per_mac']:.3f} pJ/MAC",
                      file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if args.plot:
        from qmac.energy import plot_breakdown
        plot_breakdown(results, [f"{r['core']}, {r['distribution']}" for r in results], args.plot)
    print("| core | data | units/MAC | pJ/MAC | lanes | adder trees | accumulators | clock | inputs | other "
          "| SQNR (dB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        c = r["by_component"]
        e = r["energy_per_mac"]
        share = {k: c.get(k, 0.0) / e for k in ("lanes", "adder trees", "accumulators", "clock", "inputs")}
        other = 1 - sum(share.values())
        print(f"| {r['core']} | {r['distribution']} | {e:.0f} | {r['pj_per_mac']:.3f} | "
              + " | ".join(f"{100 * v:.0f}%" for v in share.values()) + f" | {100 * other:.0f}% | "
              + (f"{r['sqnr_db']:.1f} |" if "sqnr_db" in r else "- |"))


if __name__ == "__main__":
    main_()
