"""The ``qmac bitstream`` and ``qmac run`` commands: FPGA builds of the host link, and GEMMs on a board.

:func:`add_commands` registers both on the ``qmac`` parser (:mod:`qmac.tb.cli`). Bad arguments exit
with code 2 (through the CLI's ``UsageError``), failed builds, missed timing, link errors and results
that differ from the golden model with code 1.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..hw.boards import BOARDS
from ..hw.config import MODE_CODES, PRESETS, code_range, load_config, preset

__all__ = ["add_commands"]


def _usage_error(message):
    from .cli import UsageError   # at call time: cli imports this module
    return UsageError(message)


def _fail(message):
    print(f"qmac: error: {message}", file=sys.stderr)
    return 1


def _board_config(args):
    if args.config and args.preset:
        raise _usage_error("give --config or --preset, not both")
    if args.config:
        return load_config(args.config)
    if args.preset:
        return preset(args.preset)
    return BOARDS[args.board].default_config


def cmd_bitstream(args):
    from .bitstream import BuildError, build_bitstream
    config = _board_config(args)
    out = args.out or str(Path("build") / "bitstream" / args.board)
    try:
        summary = build_bitstream(args.board, config, clock_mhz=args.clock, baud=args.baud, out_dir=out,
                                  program=args.program)
    except ValueError as e:
        raise _usage_error(str(e)) from None
    except BuildError as e:
        return _fail(str(e))
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    if not summary["timing_met"]:
        return _fail(f"timing not met: Fmax {summary['fmax_mhz']} MHz < {summary['clock_mhz']} MHz"
                     + ("; not programmed" if args.program else ""))
    return 0


def _print_summary(s):
    cfg = s["config"]
    macs = ", ".join(f"{n} {mode.upper()}" for mode, n in s["macs_per_cycle"].items())
    verdict = "met" if s["timing_met"] else "NOT MET"
    device = ", ".join(f"{cell} {used}/{avail} ({100 * used / avail:.0f} %)"
                       for cell, (used, avail) in s["utilization"].items())
    rows = [
        ("board", f"{s['board']} ({s['device']})"),
        ("core", f"{cfg['rows']}x{cfg['cols']} array, V={cfg['lanes']}, {'/'.join(cfg['modes'])}"
                 f"{', ' + cfg['multiplier'] + ' lanes' if 'multiplier' in cfg else ''}: {macs} MACs/cycle"),
        ("clock", f"requested {s['requested_mhz']:g} MHz, PLL {s['clock_mhz']:g} MHz, "
                  f"Fmax {s['fmax_mhz']:g} MHz: {verdict}"),
        ("UART", f"{s['baud']} baud ({s['divisor']} clocks per bit)"),
        ("LUT", s["luts"]), ("FF", s["ffs"]), ("DSP", s["dsps"]), ("BRAM", s["brams"]),
        ("device", device),
        ("bitstream", s["bitstream"] + (" (programmed)" if s["programmed"] else "")),
    ]
    for key, value in rows:
        print(f"{key:>10}  {value}")


def cmd_run(args):
    from ..host import HostLinkDriver, LinkError, SerialTransport
    from .cli import print_report
    rng = np.random.default_rng(args.seed)
    if (args.weights is None) != (args.activations is None):
        raise _usage_error("give both --weights and --activations, or neither (random codes of --shape)")
    try:
        transport = SerialTransport(args.port, args.baud)
    except (OSError, ValueError) as e:   # serial.SerialException is an OSError
        return _fail(f"cannot open {args.port}: {e}")
    try:
        driver = HostLinkDriver(transport, timeout=args.timeout)
        fields, config = driver.info
        mode = args.format or config.modes[0]
        if mode not in config.modes:
            raise _usage_error(f"--format {mode!r} is not built into the board's core; allowed: "
                               f"{', '.join(config.modes)}")
        W, A = _operands(args, mode, rng)
        result = driver.gemm(mode, W, A)
    except LinkError as e:
        return _fail(f"host link: {e}")
    finally:
        transport.close()
    report = {
        "port": args.port, "clock_mhz": fields["clock_hz"] / 1e6, "baud": round(fields["clock_hz"] / fields["divisor"]),
        "config": config.to_dict(), "format": mode, "shape": [int(W.shape[0]), int(W.shape[1]), int(A.shape[1])],
        "bit_exact": result["bit_exact"], "saturated": result["saturated"], "cycles": result["cycles"],
        "ideal_cycles": result["ideal_cycles"], "utilization": result["utilization"],
        "seconds": round(result["seconds"], 3), "link_errors": [s.name for s in driver.link_errors],
    }
    if args.out:
        np.save(args.out, result["Y"])
        report["out"] = args.out
    print_report(report, args.json)
    return 0 if result["bit_exact"] else _fail("the board's result differs from the golden model")


def _operands(args, mode, rng):
    lo, hi = code_range(mode)
    if args.weights is None:
        n, k, m = args.shape
        return rng.integers(lo, hi + 1, (n, k)), rng.integers(lo, hi + 1, (k, m))
    from .cli import _load_npy
    W, A = _load_npy(args.weights, "weights"), _load_npy(args.activations, "activations")
    for name, x in (("weights", W), ("activations", A)):
        if not np.issubdtype(x.dtype, np.integer):
            raise _usage_error(f"--{name} must hold integer {mode} codes, not {x.dtype}")
        if x.size and (x.min() < lo or x.max() > hi):
            raise _usage_error(f"--{name} codes span [{x.min()}, {x.max()}]; {mode} allows [{lo}, {hi}]")
    if W.shape[1] != A.shape[0]:
        raise _usage_error(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
    return W.astype(np.int64), A.astype(np.int64)


def _dimension(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"GEMM dimensions must be positive integers, not {text!r}")
    return value


def add_commands(subparsers):
    """Register ``bitstream`` and ``run`` on the ``qmac`` subcommand parser."""
    b = subparsers.add_parser("bitstream", help="build an FPGA bitstream of the host link with the YoWASP tools")
    b.add_argument("--board", required=True, choices=list(BOARDS))
    b.add_argument("--config", metavar="FILE", help="TOML config file (see README, 'Configuration')")
    b.add_argument("--preset", metavar="NAME",
                   help=f"embedded config: {', '.join(PRESETS)} (default: the board's own core, docs/fpga.md)")
    b.add_argument("--clock", type=float, metavar="MHZ",
                   help="sync clock (default: constraints/<board>.toml), made by the board's PLL")
    b.add_argument("--baud", type=int, default=115200, help="UART bit rate (default 115200)")
    b.add_argument("--out", metavar="DIR", help="build folder (default build/bitstream/<board>)")
    b.add_argument("--program", action="store_true", help="program the board after a build that meets timing")
    b.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    b.set_defaults(func=cmd_bitstream)

    r = subparsers.add_parser("run", help="compute a GEMM on a board over its host link and check it")
    r.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    r.add_argument("--baud", type=int, default=115200, help="UART bit rate of the bitstream (default 115200)")
    r.add_argument("--format", choices=list(MODE_CODES), help="default: the core's first mode")
    r.add_argument("--shape", nargs=3, type=_dimension, default=[16, 64, 16], metavar=("N", "K", "M"),
                   help="random codes of this GEMM shape (default 16 64 16)")
    r.add_argument("--weights", metavar="W.npy", help="N x K integer codes (instead of --shape)")
    r.add_argument("--activations", metavar="A.npy", help="K x M integer codes")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply (default 2)")
    r.add_argument("--out", metavar="Y.npy", help="save Y")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=cmd_run)
