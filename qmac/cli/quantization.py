"""The flags that say how float operands are quantized, shared by ``qmac gemm`` and ``qmac model``."""

from qmac.sim.mx import MX_ELEMENTS

from .common import UsageError
from .inputs import integer

__all__ = ["add_quantization_args", "check_mx_args"]


def add_quantization_args(p, mx=False):
    """The flags that say how float operands are quantized, meaning the same in every command that takes them
    (``qmac gemm``, ``qmac model``); ``mx`` adds ``--scale mx`` (OCP MXINT8)."""
    p.add_argument("--scale", default="per-tensor", choices=["per-tensor", "per-channel", "vector"] + ["mx"] * mx,
                   help="float inputs: scale granularity (default per-tensor; lns: per-tensor or vector, in the "
                        "log domain)" + ("; mx: OCP MX, 32-element blocks with E8M0 scales"
                                         if mx else ""))
    p.add_argument("--vector", type=integer(1, None), metavar="V",
                   help="--scale vector: elements per vector, at most K (default 16, or K if smaller)")
    p.add_argument("--scale-bits", type=integer(1, 64), metavar="S",
                   help="--scale vector: scale width (default 8 for int formats, 4 for lns: log scales are exponents)")
    p.add_argument("--scale-kind", choices=["int", "pow2"], help="--scale vector, int formats: int (default) or pow2")
    p.add_argument("--clip", choices=["max", "percentile", "mse"], help="float inputs: clip method (default max)")
    p.add_argument("--scale-rounding", choices=["nearest", "best"],
                   help="--scale vector, int formats: each vector's scale field rounded to nearest (default; pow2: "
                        "up) or the one below/above of smaller error (best)")
    p.add_argument("--sparse", choices=["2:4"], help="2:4 sparse weights: prune (or verify), compress, run sparse")


def check_mx_args(args, formats=("int8",)):
    """With ``--scale mx``: the flags MX does not combine with, as one-line usage errors (``--format`` other
    than ``formats``, ``--clip``, ``--sparse``)."""
    if args.scale != "mx":
        return
    if args.format not in formats:
        raise UsageError("--format", args.format, "allowed with --scale mx: " +
                         ", ".join(f"{k} ({MX_ELEMENTS[k].name})" if k in MX_ELEMENTS else k for k in formats))
    if args.clip is not None:
        raise UsageError("--clip", args.clip, "does not apply to --scale mx; allowed: MX scales come from max|v| "
                         "(OCP MX v1.0)")
    if args.sparse:
        raise UsageError("--sparse", args.sparse, "is not supported with --scale mx; allowed: dense MX blocks")
