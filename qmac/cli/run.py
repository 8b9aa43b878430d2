"""``qmac run``: a GEMM on a board over its host link, checked against the golden model.

Bad arguments exit with code 2; link errors and results that differ from the golden model with code 1.
"""

import numpy as np

from qmac.hw.spec.config import MODE_CODES, code_range

from .common import UsageError, fail, print_report, saturation_status
from .gemm import MAX_SEED
from .inputs import as_codes, integer, load_array, number, output_file, write_atomically

#: Largest GEMM dimension ``--shape`` takes (random codes are made on the host).
MAX_DIMENSION = 1 << 14

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="compute a GEMM on a board over its host link and check it")
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    p.add_argument("--baud", type=integer(1, 10 ** 9), default=115200, help="UART bit rate of the bitstream (default 115200)")
    p.add_argument("--format", choices=list(MODE_CODES), help="default: the core's first mode")
    p.add_argument("--shape", nargs=3, type=integer(1, MAX_DIMENSION), metavar=("N", "K", "M"),
                   help="random codes of this GEMM shape (default 16 64 16)")
    p.add_argument("--weights", metavar="W.npy", help="N x K integer codes (instead of --shape)")
    p.add_argument("--activations", metavar="A.npy", help="K x M integer codes")
    p.add_argument("--seed", type=integer(0, MAX_SEED), help="seed of the random codes of --shape (default 0)")
    p.add_argument("--timeout", type=number(0.001, 3600.0), default=2.0,
                   help="seconds to wait for each reply (default 2)")
    p.add_argument("--out", metavar="Y.npy", help="save Y")
    p.add_argument("--strict", action="store_true", help="exit with 3 when an accumulator saturated")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args):
    from qmac.host import HostLinkDriver, LinkError, SerialTransport
    output_file("--out", args.out, (".npy",))
    if (args.weights is None) != (args.activations is None):
        flag, value = ("--weights", args.weights) if args.weights is not None else ("--activations", args.activations)
        raise UsageError(flag, value, "allowed: both --weights and --activations, or neither (random codes of "
                         "--shape)")
    if args.weights is not None:
        for flag, value in (("--shape", args.shape), ("--seed", args.seed)):
            if value is not None:
                raise UsageError(flag, value, "applies only to random codes (no --weights, --activations)")
        operands = [(flag, path, load_array(flag, path, ("int",)))
                    for flag, path in (("--weights", args.weights), ("--activations", args.activations))]
        if operands[0][2].shape[1] != operands[1][2].shape[0]:
            raise UsageError("--activations", args.activations, f"has shape {operands[1][2].shape}; allowed: "
                             f"{operands[0][2].shape[1]} rows, the K of --weights {operands[0][2].shape}")
    try:
        transport = SerialTransport(args.port, args.baud)
    except (OSError, ValueError) as e:   # serial.SerialException is an OSError
        return fail(f"cannot open {args.port}: {e}")
    try:
        driver = HostLinkDriver(transport, timeout=args.timeout)
        fields, config = driver.info
        mode = args.format or config.modes[0]
        if mode not in config.modes:
            raise UsageError("--format", mode, f"is not built into the board's core; allowed: "
                             f"{', '.join(config.modes)}")
        (lo, hi), (a_lo, a_hi) = code_range(mode), code_range(mode, activations=True)
        if args.weights is None:
            n, k, m = args.shape or (16, 64, 16)
            rng = np.random.default_rng(args.seed or 0)
            W, A = rng.integers(lo, hi + 1, (n, k)), rng.integers(a_lo, a_hi + 1, (k, m))
        else:
            W, A = (as_codes(flag, path, x, code_range(mode, activations=flag == "--activations"))
                    for flag, path, x in operands)
        result = driver.gemm(mode, W, A)
    except LinkError as e:
        return fail(f"host link: {e}")
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
        write_atomically("--out", args.out, lambda f: np.save(f, result["Y"]))
        report["out"] = args.out
    print_report(report, args.json)
    status = saturation_status(result["saturated"], args.strict)
    return fail("the board's result differs from the golden model") if not result["bit_exact"] else status

