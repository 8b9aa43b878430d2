"""``qmac model``: an ONNX network with every MatMul/Gemm/Conv on the golden model or the emitted RTL of a core,
compared with onnxruntime's FP32 outputs (docs/models.md)."""

import numpy as np

from .common import UsageError, add_config_args, config_from_args, print_report, progress_bar, stdout_to_stderr
from .inputs import number, output_file
from .quantization import add_quantization_args, check_mx_args

__all__ = ["add_parser", "run", "load_model_inputs"]


def add_parser(subparsers):
    from qmac.model import ATTENTION, FORMATS, PTQ, ROTATE
    p = subparsers.add_parser("model", help="run an ONNX model through the core's arithmetic, against FP32")
    add_config_args(p)
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--data", required=True, metavar="X.npz", help="one array per model input, samples along axis 0")
    p.add_argument("--calibrate", metavar="C.npz",
                   help="calibration inputs (as --data): static per-tensor activation clips, and GPTQ's Hessians")
    p.add_argument("--format", default="int8", choices=FORMATS, help="every layer's format (default int8)")
    add_quantization_args(p, mx=True)
    p.add_argument("--ptq", default="none", choices=PTQ, help="weights: round to nearest (none) or GPTQ")
    p.add_argument("--layer", action="append", default=[], metavar="PATTERN=FORMAT",
                   help="layers whose name matches PATTERN (fnmatch) take FORMAT; repeatable, later ones win")
    p.add_argument("--smooth", type=number(0, 1), metavar="ALPHA",
                   help="SmoothQuant: migrate activation outliers into the weights, s_j = max|X_j|^ALPHA / "
                        "max|W_j|^(1-ALPHA) from the calibration set (0 to 1, e.g. 0.5; needs --calibrate)")
    p.add_argument("--rotate", default="none", choices=ROTATE,
                   help="hadamard: rotate the K axis of both operands of every quantized product by a block "
                        "Hadamard matrix before quantizing, X W = (X H)(H^T W) (QuaRot; a host transform)")
    p.add_argument("--attention", default="quantize", choices=ATTENTION,
                   help="MatMuls between two activations: quantize both as activations (default) or keep float")
    p.add_argument("--engine", default="golden", choices=["golden", "icarus", "verilator"])
    p.add_argument("--rtl", default="*", metavar="PATTERN",
                   help="with an RTL engine: the layers run on it (first sample), default all")
    p.add_argument("--sensitivity", action="store_true",
                   help="also the output fidelity with only one layer quantized, for each layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="per-layer SQNR chart")
    p.set_defaults(func=run)


def _load_npz(path, flag):
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise UsageError(flag, path, f"cannot be read as an .npz archive ({e}); allowed: an .npz of arrays") from None


def load_model_inputs(model, data, calibrate=None):
    """``(net, data, calibration)``: the ONNX model ``MODEL``, the ``--data`` arrays by input name and the
    ``--calibrate`` samples as feed dicts (``None`` without it), each checked; a bad file raises
    :class:`UsageError` naming its flag."""
    from qmac.model import load, samples
    try:
        net = load(model)
    except ValueError as e:
        raise UsageError("MODEL", model, str(e)) from None
    arrays = _load_npz(data, "--data")
    try:
        samples(arrays, net.inputs)
    except ValueError as e:
        raise UsageError("--data", data, str(e)) from None
    calibration = None
    if calibrate:
        try:
            calibration = samples(_load_npz(calibrate, "--calibrate"), net.inputs)
        except ValueError as e:
            raise UsageError("--calibrate", calibrate, str(e)) from None
    return net, arrays, calibration


def run(args):
    from qmac.model import FORMATS, Scheme, evaluate, format_table, plot_layers, sensitivity
    overrides = []
    for item in args.layer:
        pattern, sep, fmt = item.partition("=")
        if not sep or not pattern or fmt not in FORMATS:
            raise UsageError("--layer", item, f"allowed: PATTERN=FORMAT, FORMAT one of {', '.join(FORMATS)}")
        overrides.append((pattern, fmt))
    if args.ptq == "gptq" and not args.calibrate:
        raise UsageError("--ptq", args.ptq, "needs a calibration set: give --calibrate C.npz")
    check_mx_args(args, ("int8", "fp32"))
    if args.scale == "mx" and args.ptq != "none":
        raise UsageError("--ptq", args.ptq, "is not supported with --scale mx; allowed: none")
    if args.smooth is not None and not args.calibrate:
        raise UsageError("--smooth", args.smooth, "needs a calibration set: give --calibrate C.npz")
    for flag, value in (("--vector", args.vector), ("--scale-bits", args.scale_bits), ("--scale-kind", args.scale_kind),
                        ("--scale-rounding", args.scale_rounding)):
        if value is not None and args.scale != "vector":
            raise UsageError(flag, value, "applies only to --scale vector")
    output_file("--plot", args.plot, (".png",))
    cfg = config_from_args(args)
    net, data, calibration = load_model_inputs(args.model, args.data, args.calibrate)
    scheme = None if args.format == "fp32" else Scheme(
        args.format, args.scale, args.vector or 16, args.scale_bits, args.scale_kind, args.clip or "max",
        bool(args.sparse), args.scale_rounding or "nearest")
    options = dict(config=cfg, overrides=overrides, calibration=calibration, attention=args.attention,
                   smooth=args.smooth, rotate=args.rotate, engine=args.engine, rtl=args.rtl)
    try:
        with stdout_to_stderr():
            report = evaluate(net, data, scheme, args.ptq, progress=progress_bar("samples", not args.json), **options)
            if args.sensitivity:
                report["sensitivity"] = sensitivity(net, data, scheme or Scheme(), args.ptq,
                                                    progress=progress_bar("layers", not args.json), **options)
    except ValueError as e:
        raise UsageError("MODEL", args.model, f"cannot run with these flags: {e}") from None
    if args.plot:
        plot_layers(report, args.plot)
    if args.json:
        print_report(report, True)
    else:
        print(format_table(report))
    exact = [layer["bit_exact"] for layer in report["layers"] if layer["bit_exact"] is not None]
    return 0 if all(exact) else 1
