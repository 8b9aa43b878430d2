"""The ``qmac`` command line: generate Verilog, run GEMMs on the golden model or the RTL, synthesize."""

import argparse
import contextlib
import os
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..hw.config import PRESETS, ConfigError, CoreConfig, load_config, preset

__all__ = ["main"]


class UsageError(Exception):
    """A bad argument: printed as one line, exit code 2."""


def _config(args):
    if getattr(args, "config", None) and getattr(args, "preset", None):
        raise UsageError("give --config or --preset, not both")
    if getattr(args, "config", None):
        return load_config(args.config)
    return preset(args.preset or "default")


def _add_config_args(p):
    p.add_argument("--config", metavar="FILE", help="TOML config file (see README, 'Configuration')")
    p.add_argument("--preset", metavar="NAME", help=f"embedded config: {', '.join(PRESETS)} (default: default)")


def cmd_generate(args):
    cfg = _config(args)
    v, j, seconds = _write(cfg, args.out)
    print(f"wrote {v} and {j} in {seconds:.1f} s "
          f"({cfg.rows}x{cfg.cols} array, V={cfg.lanes}, modes {'/'.join(cfg.modes)}, "
          f"{cfg.acc_format.bits}-bit {'saturating' if cfg.saturating else 'exact'} accumulators)")
    return 0


def _write(cfg, out):
    from ..hw.emit import write_core
    return write_core(cfg, out)


def _load_npy(path, name):
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"--{name} {path!r} cannot be read as a .npy array: {e}") from None
    if x.ndim != 2:
        raise UsageError(f"--{name} {path!r} must be a 2-D array, not shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UsageError(f"--{name} {path!r} must hold integers (codes) or floats, not {x.dtype}")
    return x


@contextlib.contextmanager
def _stdout_to_stderr():
    """Simulator chatter goes to stderr so that stdout carries only the report (``--json``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_gemm(args):
    from ..hw.formats import ELEMENT_FORMATS
    from ..sim.quantize import clip_max, quantize_symmetric, sqnr_db
    from .engine import run_gemm
    cfg = _config(args)
    W, A = _load_npy(args.weights, "weights"), _load_npy(args.activations, "activations")
    if W.shape[1] != A.shape[0]:
        raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
    mode = args.format
    if mode not in cfg.modes:
        raise UsageError(f"--format {mode!r} is not built into this core; allowed: {', '.join(cfg.modes)}")
    fmt = ELEMENT_FORMATS[mode]
    is_float = np.issubdtype(W.dtype, np.floating) or np.issubdtype(A.dtype, np.floating)
    if is_float:
        Wq, sw = quantize_symmetric(W, fmt, clip_max(W))
        Aq, sa = quantize_symmetric(A, fmt, clip_max(A))
    else:
        Wq, Aq = W.astype(np.int64), A.astype(np.int64)
        for name, x in (("weights", Wq), ("activations", Aq)):
            if x.size and (x.min() < fmt.code.min or x.max() > fmt.code.max):
                raise UsageError(f"--{name} codes span [{x.min()}, {x.max()}]; {mode} allows "
                                 f"[{fmt.code.min}, {fmt.code.max}]")
    try:
        with _stdout_to_stderr():
            res = run_gemm(cfg, mode, Wq, Aq, engine=args.engine, gap=args.stall, ready=1 - args.stall,
                           seed=args.seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    Y = res["Y"]
    report = {"engine": args.engine, "format": mode, "shape": [int(W.shape[0]), int(W.shape[1]), int(A.shape[1])],
              "bit_exact": res["bit_exact"], "cycles": res["cycles"], "ideal_cycles": res["ideal_cycles"],
              "utilization": res["utilization"], "saturated": res["saturated"]}
    if is_float:
        Yf = Y * (np.asarray(sw).item() * np.asarray(sa).item())
        ref = W.astype(np.float64) @ A.astype(np.float64)
        report["sqnr_db"] = float(sqnr_db(ref, Yf))
        Y = Yf
    if args.out:
        np.save(args.out, Y)
        report["out"] = args.out
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>13}: {v}")
    return 0 if res["bit_exact"] in (None, True) else 1


def cmd_synth(args):
    from .synth import synth_config
    cfg = _config(args)
    start = time.perf_counter()
    res = synth_config(cfg, target=args.target)
    res = {"target": args.target, "seconds": round(time.perf_counter() - start, 1), **res}
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>14}: {v}")
    return 0


def cmd_presets(args):
    for name, cfg in PRESETS.items():
        print(f"# --preset {name}: {cfg.macs_per_cycle(cfg.modes[0])} {cfg.modes[0]} MACs/cycle")
        print(cfg.to_toml())
    return 0


def cmd_test(args):
    root = Path(__file__).resolve().parent.parent
    if not (root / "tests").is_dir():
        raise UsageError(f"no tests/ folder next to {root / 'tb'}: run from a qmac source checkout")
    return subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args], cwd=root)


def _parser():
    p = argparse.ArgumentParser(prog="qmac", description="RTL generator for low-precision MAC arrays.")
    sub = p.add_subparsers(dest="command")
    g = sub.add_parser("generate", help="write qmac_core.v and qmac_core.json (the main job)")
    _add_config_args(g)
    g.add_argument("--out", default="build", metavar="DIR", help="output folder (default: build)")
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("gemm", help="compute Y = W @ A on the golden model or the emitted RTL")
    _add_config_args(m)
    m.add_argument("--weights", required=True, metavar="W.npy", help="N x K: integer codes, or floats")
    m.add_argument("--activations", required=True, metavar="A.npy", help="K x M: integer codes, or floats")
    m.add_argument("--format", default="int8", choices=["int8", "int4"])
    m.add_argument("--engine", default="golden", choices=["golden", "icarus", "verilator"])
    m.add_argument("--stall", type=float, default=0.0, metavar="P",
                   help="RTL engines: probability of a valid gap / ready drop per beat (default 0)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", metavar="Y.npy", help="save Y (integers for code inputs, floats otherwise)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_gemm)

    s = sub.add_parser("synth", help="synthesize the core with Yosys and report cells / transistors")
    _add_config_args(s)
    s.add_argument("--target", default="generic", choices=["generic", "ice40", "ecp5"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_synth)

    pr = sub.add_parser("presets", help="print the embedded configs as TOML")
    pr.set_defaults(func=cmd_presets)

    t = sub.add_parser("test", help="run the regression (pytest) of a source checkout")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER)
    t.set_defaults(func=cmd_test)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command is None:
        args = _parser().parse_args(["generate"] + (argv or []))
    if getattr(args, "stall", 0.0) and not 0.0 <= args.stall < 1.0:
        print(f"qmac: error: --stall must be in [0, 1), not {args.stall}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ConfigError, UsageError) as e:
        print(f"qmac: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
