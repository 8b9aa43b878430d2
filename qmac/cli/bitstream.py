"""``qmac bitstream``: an FPGA build of the core behind its UART host link, with the YoWASP tools.

Bad arguments exit with code 2; failed builds and missed timing with code 1.
"""

import json
import sys
from pathlib import Path

from qmac.hw.boards import BOARDS
from qmac.hw.spec.config import ConfigError

from .common import UsageError, add_config_args, config_from_args, fail
from .inputs import integer, number, output_dir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("bitstream", help="build an FPGA bitstream of the host link with the YoWASP tools")
    p.add_argument("--board", required=True, choices=list(BOARDS))
    add_config_args(p, default="the board's own core, docs/fpga.md")
    p.add_argument("--clock", type=number(1.0, 1000.0), metavar="MHZ",
                   help="sync clock (default: constraints/<board>.toml), made by the board's PLL")
    p.add_argument("--baud", type=integer(1, 10 ** 9), default=115200,
                   help="UART bit rate (default 115200; within 2 %% of the clock over 4..65535)")
    p.add_argument("--out", metavar="DIR", help="build folder (default build/bitstream/<board>)")
    p.add_argument("--program", action="store_true", help="program the board after a build that meets timing")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def run(args):
    from qmac.toolchain.bitstream import BuildError, build_bitstream, uart_divisor
    out = output_dir("--out", args.out or str(Path("build") / "bitstream" / args.board))
    config = _board_config(args, BOARDS[args.board])
    # the checks build_bitstream makes first, made here to name the flag
    try:
        platform = BOARDS[args.board](args.clock)
    except ValueError as e:
        raise UsageError("--clock", args.clock, str(e)) from None
    try:
        uart_divisor(platform.sync_frequency, args.baud)
    except ValueError as e:
        raise UsageError("--baud", args.baud, str(e)) from None
    try:
        summary = build_bitstream(args.board, config, clock_mhz=args.clock, baud=args.baud, out_dir=out,
                                  program=args.program)
    except ValueError as e:
        raise UsageError("--config", args.config or args.preset, str(e)) from None
    except BuildError as e:
        return fail(str(e))
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    if not summary["timing_met"]:
        return fail(f"timing not met: Fmax {summary['fmax_mhz']} MHz < {summary['clock_mhz']} MHz"
                     + ("; not programmed" if args.program else ""))
    return 0


def _board_config(args, board):
    """The config to build: ``--config`` as written; ``--preset`` with INT lanes in logic moved onto the board's
    DSP blocks (the first of ``board.dsp_multipliers`` the config allows; results are identical), with a note —
    logic lanes beside the host link overflow the iCE40 UP5K even for the tiny preset."""
    config = config_from_args(args, board.default_config)
    if not args.preset or config.multiplier != "logic":
        return config
    for multiplier in board.dsp_multipliers:
        try:
            dsp = config.replace(multiplier=multiplier)
        except ConfigError:   # e.g. a log datapath (no multiplier) or a sparse build (no mult18_fip)
            continue
        print(f"qmac: note: --board {args.board} builds the INT lanes of --preset {args.preset} on its DSP blocks; "
              f"using the config with multiplier = {multiplier!r} (bit-identical results)", file=sys.stderr)
        return dsp
    return config


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
