"""``qmac run``: a GEMM on a board over its host link, checked against the golden model.

Bad arguments exit with code 2; link errors and results that differ from the golden model with code 1.
"""

import argparse

import numpy as np

from qmac.hw.spec.config import MODE_CODES, code_range

from .common import UsageError, fail, load_npy, print_report

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="compute a GEMM on a board over its host link and check it")
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    p.add_argument("--baud", type=int, default=115200, help="UART bit rate of the bitstream (default 115200)")
    p.add_argument("--format", choices=list(MODE_CODES), help="default: the core's first mode")
    p.add_argument("--shape", nargs=3, type=_dimension, default=[16, 64, 16], metavar=("N", "K", "M"),
                   help="random codes of this GEMM shape (default 16 64 16)")
    p.add_argument("--weights", metavar="W.npy", help="N x K integer codes (instead of --shape)")
    p.add_argument("--activations", metavar="A.npy", help="K x M integer codes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply (default 2)")
    p.add_argument("--out", metavar="Y.npy", help="save Y")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args):
    from qmac.host import HostLinkDriver, LinkError, SerialTransport
    rng = np.random.default_rng(args.seed)
    if (args.weights is None) != (args.activations is None):
        raise UsageError("give both --weights and --activations, or neither (random codes of --shape)")
    try:
        transport = SerialTransport(args.port, args.baud)
    except (OSError, ValueError) as e:   # serial.SerialException is an OSError
        return fail(f"cannot open {args.port}: {e}")
    try:
        driver = HostLinkDriver(transport, timeout=args.timeout)
        fields, config = driver.info
        mode = args.format or config.modes[0]
        if mode not in config.modes:
            raise UsageError(f"--format {mode!r} is not built into the board's core; allowed: "
                               f"{', '.join(config.modes)}")
        W, A = _operands(args, mode, rng)
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
        np.save(args.out, result["Y"])
        report["out"] = args.out
    print_report(report, args.json)
    return 0 if result["bit_exact"] else fail("the board's result differs from the golden model")


def _operands(args, mode, rng):
    lo, hi = code_range(mode)
    a_lo, a_hi = code_range(mode, activations=True)
    if args.weights is None:
        n, k, m = args.shape
        return rng.integers(lo, hi + 1, (n, k)), rng.integers(a_lo, a_hi + 1, (k, m))
    W, A = load_npy(args.weights, "weights"), load_npy(args.activations, "activations")
    for name, x in (("weights", W), ("activations", A)):
        lo, hi = code_range(mode, activations=name == "activations")
        if not np.issubdtype(x.dtype, np.integer):
            raise UsageError(f"--{name} must hold integer {mode} codes, not {x.dtype}")
        if x.size and (x.min() < lo or x.max() > hi):
            raise UsageError(f"--{name} codes span [{x.min()}, {x.max()}]; {mode} allows [{lo}, {hi}]")
    if W.shape[1] != A.shape[0]:
        raise UsageError(f"inner dimensions differ: weights {W.shape}, activations {A.shape}")
    return W.astype(np.int64), A.astype(np.int64)


def _dimension(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"GEMM dimensions must be positive integers, not {text!r}")
    return value
