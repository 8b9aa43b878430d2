"""``qmac gemm``: ``Y = W @ A`` on the golden model or the emitted RTL, from codes or quantized floats."""

import math

import numpy as np

from qmac.hw.spec.config import MODES, ConfigError, code_range
from qmac.hw.spec.datapath import DATAPATHS, datapath_of
from qmac.sim.datapaths import GOLDEN
from qmac.sim.mx import MX_ELEMENTS
from qmac.quantized_gemm import (Scheme, core_for_mode, core_for_scales, core_for_sparse, prune_weights,
                                 quantize_activations, quantize_weights, quantized_operands, to_float)

from .common import (UsageError, add_config_args, config_from_args, print_report, saturation_status,
                     stdout_to_stderr)
from .inputs import (as_codes, as_floats, check_finite_product, e8m0_exponents, integer, load_array,
                     load_torch_sparse24, number, output_file, write_atomically)
from .quantization import add_quantization_args, check_mx_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("gemm", help="compute Y = W @ A on the golden model or the emitted RTL")
    add_config_args(p)
    p.add_argument("--weights", required=True, metavar="W.npy",
                   help="N x K: integer codes (--scale mx --format fp4: uint8 E2M1 codes 0..15), or floats; or "
                        "W.npz: PyTorch's 2:4 semi-structured int8 tensor (values, meta, shape), run as --sparse 2:4 "
                        "--format int8 with integer activations")
    p.add_argument("--activations", required=True, metavar="A.npy", help="K x M: integer codes, or floats")
    p.add_argument("--format", default="int8", choices=list(MODES) + ["fp4"],
                   help="int8/int4, w4a8 (INT4 weights x INT8 activations; added to the config's modes if needed), "
                        "or lns8/lns4 (the log datapath; the config is switched to it if needed); with --scale mx "
                        "the element format: int8 (MXINT8), int4 (MXINT4-style, INT4 lanes), fp4 (MXFP4 E2M1, "
                        "on INT8 lanes)")
    p.add_argument("--engine", default="golden", choices=["golden", "icarus", "verilator"])
    p.add_argument("--stall", type=number(0.0, 1.0, hi_open=True), metavar="P",
                   help="RTL engines: probability of a valid gap / ready drop per beat, in [0, 1) (default 0)")
    p.add_argument("--seed", type=integer(0, MAX_SEED), help="RTL engines: seed of the stalls (default 0)")
    add_quantization_args(p, mx=True)
    p.add_argument("--weight-scales", metavar="WS.npy",
                   help="--scale mx with integer codes: E8M0 biased exponents (uint8, 0..254), N x ceil(K/32)")
    p.add_argument("--activation-scales", metavar="AS.npy",
                   help="--scale mx with integer codes: E8M0 biased exponents (uint8, 0..254), ceil(K/32) x M")
    p.add_argument("--out", metavar="Y.npy",
                   help="save Y (integers for code inputs; float64 for floats and for --scale mx)")
    p.add_argument("--strict", action="store_true", help="exit with 3 when an accumulator saturated")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


#: Largest ``--seed``: what numpy's generators take.
MAX_SEED = 2 ** 63 - 1
#: What the report says for keys the golden model does not produce.
ABSENT = {"bit_exact": "not checked (golden engine)", "cycles": "not counted (golden engine)",
          "utilization": "not measured (golden engine)"}


def _check_flags(args, is_float, kinds):
    """Refuse flags that do not apply to these inputs, this format or this engine (never ignore them)."""
    rtl = args.engine != "golden"
    mx = args.scale == "mx"
    for flag, value, applies, where in [
        ("--stall", args.stall, rtl, "an RTL engine (--engine icarus or verilator)"),
        ("--seed", args.seed, rtl, "an RTL engine (--engine icarus or verilator)"),
        ("--scale", args.scale if args.scale not in ("per-tensor", "mx") else None, is_float, "float inputs"),
        ("--clip", args.clip, is_float, "float inputs"),
        ("--weight-scales", args.weight_scales, mx and not is_float, "--scale mx with integer codes"),
        ("--activation-scales", args.activation_scales, mx and not is_float, "--scale mx with integer codes"),
        ("--vector", args.vector, args.scale == "vector", "--scale vector"),
        ("--scale-bits", args.scale_bits, args.scale == "vector", "--scale vector"),
        ("--scale-kind", args.scale_kind, args.scale == "vector" and len(kinds) > 1,
         "--scale vector with an int format"),
        ("--scale-rounding", args.scale_rounding, args.scale == "vector" and "int" in kinds,
         "--scale vector with an int format"),
    ]:
        if value is not None and not applies:
            raise UsageError(flag, value, f"applies only to {where}; integer inputs are taken as codes"
                             if where == "float inputs" else f"applies only to {where}")
    check_mx_args(args, tuple(MX_ELEMENTS))
    for flag, value in (("--weight-scales", args.weight_scales), ("--activation-scales", args.activation_scales)):
        if mx and not is_float and value is None:
            raise UsageError(flag, value, "is required with --scale mx and integer codes: E8M0 biased exponents "
                             "(uint8), one per 32 K elements")


def _check_torch_sparse(args, A):
    """``--weights W.npz`` (PyTorch's 2:4 int8 tensor) is INT8 2:4 codes: it implies ``--sparse 2:4`` and takes
    integer activation codes and no quantization flags."""
    if A.dtype.kind not in "iu":
        raise UsageError("--activations", args.activations, f"holds {A.dtype} elements; allowed with --weights "
                         "W.npz: integer INT8 codes")
    if args.format != "int8":
        raise UsageError("--format", args.format, "allowed with --weights W.npz: int8 (PyTorch's int8 "
                         "semi-structured layout)")
    if args.scale != "per-tensor":
        raise UsageError("--scale", args.scale, "applies only to float inputs or --weights W.npy; "
                         "--weights W.npz holds INT8 codes")
    args.sparse = "2:4"


def _mx_element(args):
    """The MX element format of ``--scale mx --format``, ``None`` without ``--scale mx``; ``fp4`` only with it."""
    if args.scale != "mx":
        if args.format == "fp4":
            raise UsageError("--format", args.format, "applies only to --scale mx (MXFP4: E2M1 elements on INT8 "
                             "lanes)")
        return None
    if args.format not in MX_ELEMENTS:
        raise UsageError("--format", args.format, "allowed with --scale mx: " +
                         ", ".join(f"{k} ({e.name})" for k, e in MX_ELEMENTS.items()))
    return MX_ELEMENTS[args.format]


def _mx_codes(flag, path, x, element):
    """Precomputed MX element codes: two's complement in the element's range, or E2M1 codes (uint8, 0..15)."""
    if element.e2m1 and x.dtype != np.uint8:
        raise UsageError(flag, path, f"holds {x.dtype} elements; allowed: uint8 E2M1 codes 0..15 (bit 3 sign, "
                         "bits 2..1 exponent, bit 0 mantissa)")
    return as_codes(flag, path, x, element.code_range)


def _mx_operands(args, W, A, element):
    """Precomputed MX operands: element codes ``W``, ``A`` and the E8M0 exponent files, checked, as
    :class:`~qmac.sim.mx.MxWindowed` tensors."""
    from qmac.sim.mx import MX_BLOCK, mx_tensor, mx_window
    blocks = -(-W.shape[1] // MX_BLOCK)
    shapes = ((W.shape[0], blocks), (blocks, A.shape[1]))
    flags = (("--weight-scales", args.weight_scales), ("--activation-scales", args.activation_scales))
    ws, as_ = (e8m0_exponents(flag, path, load_array(flag, path, ("int",)), shape)
               for (flag, path), shape in zip(flags, shapes))
    return mx_window(mx_tensor(W, ws, 1, element)), mx_window(mx_tensor(A, as_, 0, element))


def run(args):
    from qmac.sim.quantize import sqnr_db
    from qmac.engine import run_gemm
    output_file("--out", args.out, (".npy",))
    cfg = config_from_args(args)
    files = (("--weights", args.weights), ("--activations", args.activations))
    if args.weights.lower().endswith(".npz"):
        W, A = load_torch_sparse24(*files[0]), load_array(*files[1])
        _check_torch_sparse(args, A)
    else:
        W, A = (load_array(flag, path) for flag, path in files)
    if W.shape[1] != A.shape[0]:
        raise UsageError("--activations", args.activations, f"has shape {A.shape}; allowed: {W.shape[1]} rows, "
                         f"the K of --weights {W.shape}")
    element = _mx_element(args)
    mode = element.lane_mode if element else args.format
    is_float = W.dtype.kind == "f" or A.dtype.kind == "f"
    datapath, host = datapath_of(mode), GOLDEN[datapath_of(mode)]
    _check_flags(args, is_float, datapath.scale_kinds)
    if args.scale not in host.schemes + ("mx",):
        raise UsageError("--scale", args.scale, f"is not supported with --format {mode}; allowed: "
                         f"{', '.join(host.schemes)}")
    if is_float:
        W, A = as_floats(W), as_floats(A)
        check_finite_product(files, W, A)
    elif element:
        W, A = (_mx_codes(flag, path, x, element) for (flag, path), x in zip(files, (W, A)))
    else:
        W, A = (as_codes(flag, path, x, code_range(mode, activations=flag == "--activations"))
                for (flag, path), x in zip(files, (W, A)))
    k = W.shape[1]
    if args.vector is not None and args.vector > k:
        raise UsageError("--vector", args.vector, f"allowed: at most K = {k}, the reduction length of the inputs")
    try:
        cfg = core_for_mode(cfg, mode, k)
    except ConfigError as e:
        raise UsageError("--format", mode, str(e)) from None
    if args.sparse and datapath.sparse_reason_of(mode):
        sparse = [m for cls in DATAPATHS for m in cls.modes if not cls.sparse_reason_of(m)]
        raise UsageError("--sparse", args.sparse, f"is not supported with --format {mode}; "
                         f"allowed: the {' and '.join(sparse)} formats")
    if args.scale == "vector":
        args.vector = args.vector if args.vector is not None else min(16, k)
        args.scale_kind = args.scale_kind or datapath.scale_kinds[0]
        args.scale_bits = args.scale_bits if args.scale_bits is not None else host.default_scale_bits
    args.clip = args.clip or "max"
    w_scales = a_scales = None
    sparse_report = {}
    if args.sparse:
        W, A, sparse_report = prune_weights(W, A)
        cfg = core_for_sparse(cfg)
    mx = args.scale == "mx"
    if is_float or mx:
        scheme = Scheme(args.format, args.scale, args.vector, args.scale_bits, args.scale_kind, args.clip,
                        bool(args.sparse), args.scale_rounding or "nearest")
        if not is_float:
            qw, qa = _mx_operands(args, W, A, element)
        else:
            try:
                qw, qa = quantize_weights(cfg, scheme, W), quantize_activations(cfg, scheme, A)
            except ValueError as e:
                raise UsageError("--scale-bits" if args.scale == "vector" else "--scale", args.scale_bits
                                 if args.scale == "vector" else args.scale, str(e)) from None
        try:
            cfg = core_for_scales(cfg, scheme, k)
        except ConfigError as e:
            raise UsageError("--scale" if mx else "--scale-bits", args.scale if mx else args.scale_bits,
                             str(e)) from None
        try:
            ops = quantized_operands(cfg, scheme, qw, qa)
        except ValueError as e:
            raise UsageError("--vector", args.vector, str(e)) from None
        Wq, Aq, w_scales, a_scales = ops.W, ops.A, ops.w_scales, ops.a_scales
    else:
        Wq, Aq = W, A
    try:
        with stdout_to_stderr():
            res = run_gemm(cfg, mode, Wq, Aq, engine=args.engine, gap=args.stall or 0.0,
                           ready=1 - (args.stall or 0.0), seed=args.seed or 0, w_scales=w_scales,
                           a_scales=a_scales, sparse=bool(args.sparse))
    except ValueError as e:
        raise UsageError("--weights", args.weights, str(e)) from None
    Y = res["Y"]
    report = {"engine": args.engine, "format": mode, "shape": [int(W.shape[0]), k, int(A.shape[1])],
              "bit_exact": res["bit_exact"], "cycles": res["cycles"], "ideal_cycles": res["ideal_cycles"],
              "utilization": res["utilization"], "saturated": res["saturated"], **sparse_report}
    notes = []
    report.update(cfg.datapath.result_fields())
    if mx:
        report.update(_mx_report(res["Y"], res["saturated"], ops, notes))
        report["format"] = args.format
    if is_float or mx:
        Y = to_float(cfg, ops, Y)
        report["scale"] = args.scale
    if is_float:
        ref = W.astype(np.float64) @ A.astype(np.float64)
        report.update(_accuracy(ref, Y, sqnr_db, notes))
        if args.scale == "vector":
            report.update(vector=args.vector, scale_bits=args.scale_bits,
                          scale_kind=args.scale_kind)
        if not mx:
            report["clip"] = args.clip
    if args.out:
        write_atomically("--out", args.out, lambda f: np.save(f, Y))
        report["out"] = args.out
    if notes:
        report["notes"] = notes
    print_report(report, args.json, ABSENT)
    status = saturation_status(res["saturated"], args.strict, f"an accumulator at {cfg.acc_format.bits} bits")
    return 1 if res["bit_exact"] is False else status


def _mx_report(Y, saturated, ops, notes):
    """What the MX mapping (:func:`qmac.sim.mx.mx_window`) and the float64 output did: blocks below the 16-octave
    window shifted exactly or rounded, and results whose integer ``|Y|`` passes ``2**53`` (then ``Y * 2**(B_w +
    B_a - 12)`` may round once in float64). ``mx_exact``: neither happened and no accumulator saturated, so the
    output is the MX definition's value exactly."""
    rounded = ops.qw.rounded_blocks + ops.qa.rounded_blocks
    wide = int(np.sum(np.abs(Y) > 2 ** 53))
    if rounded:
        notes.append(f"mx_blocks_out_of_window: {rounded} blocks lie more than {2 ** ops.qw.scale_bits - 1} octaves "
                     "below their row's (column's) largest block and lost low bits (rounded, ties to even)")
    if wide:
        notes.append(f"mx_outputs_rounded: {wide} results pass 2**53 in magnitude and may be rounded (once, to "
                     "nearest even) in float64")
    return {"mx_element": ops.qw.element.name, "mx_block": ops.qw.vector, "mx_blocks_out_of_window": rounded,
            "mx_blocks_shifted": ops.qw.shifted_blocks + ops.qa.shifted_blocks, "mx_outputs_rounded": wide,
            "mx_exact": not rounded and not wide and not saturated}


def _accuracy(ref, Y, sqnr_db, notes):
    """``sqnr_db`` and ``relative_error`` of ``Y`` against the float64 product ``ref``; ``None`` (with a note)
    where they are undefined (``ref`` all zeros) or infinite (no error at all). Both are ratios, so they are
    computed on ``ref`` and ``Y`` divided by ``max|ref|``: no square overflows."""
    peak = float(np.max(np.abs(ref)))
    if peak == 0:
        notes.append("sqnr_db, relative_error: undefined, the float product W @ A is all zeros")
        return {"sqnr_db": None, "relative_error": None}
    r, y = ref / peak, Y / peak
    sqnr = float(sqnr_db(r, y))
    if math.isinf(sqnr):
        notes.append("sqnr_db: infinite, Y equals the float product W @ A exactly")
        sqnr = None
    return {"sqnr_db": sqnr, "relative_error": float(np.linalg.norm(y - r) / np.linalg.norm(r))}
