"""Run an ONNX network with every layer's matrix product on a qmac core.

The graph runs on ``onnx.reference.ReferenceEvaluator`` (numpy, every standard op) with MatMul, Gemm and Conv
replaced: a node that is a layer (:mod:`qmac.model.network`) is lowered to ``Y = W @ A`` (W: N x K weights,
one row per output channel; A: K x M activations, one column per token / output position) and computed by
the same functions as ``qmac gemm`` (:mod:`qmac.quantized_gemm`: quantize both operands, the golden model or
the emitted RTL of the core, back to floats), then bias, ``alpha``/``beta`` and layout are applied in float.
Every other node, and every layer left in FP32, is computed in float64 and cast back to the graph's type.
BatchNormalization (when not folded into its Conv at load) is computed here in inference form, with the stored
mean and variance: onnx.reference's version 9 uses the batch's statistics whenever ``momentum`` is set.

* MatMul ``X (..., K) @ B (K, N)``: ``W = B^T``, ``A = X`` reshaped to ``(rows, K)`` and transposed; a
  constant left operand ``B (M, K) @ X (K, N)`` is ``W = B``, ``A = X``.
* Gemm: the same after ``transA``/``transB``; ``alpha * Y + beta * C`` in float.
* Conv (1-D and 2-D, any ``group``): per group ``W = weights`` reshaped to ``(O/g, C/g * prod(kernel))`` and
  ``A = im2col(X)`` (:func:`qmac.model.network.im2col`); the bias is added in float.
* MatMul between two activations (attention scores ``Q K^T`` and context ``P V``): each item of the batch
  dimensions is one GEMM with ``W = X1[i]`` (quantized along K like weights, per row = per token) and
  ``A = X2[i]``, both quantized dynamically as activations; ``attention="float"`` keeps them in float. In W4A8
  both run at the activation width: such a layer's format is ``int8``.

Activations are quantized per input (dynamic), except per-tensor INT activation scales when a calibration
set is given: then their clip is fixed by ``--clip`` over the layer's calibration activations
(:func:`qmac.sim.ptq.calibrate_clip`). Weights are quantized once per layer; with ``ptq="gptq"`` by
:func:`qmac.sim.ptq.gptq` with the Hessian of the layer's FP32 calibration inputs (INT layers; LNS layers
keep round-to-nearest in the log domain).
"""

import fnmatch
import sys
from dataclasses import dataclass, replace

import numpy as np

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.datapath import datapath_of
from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.quantized_gemm import (Scheme, core_for_mode, core_for_scales, core_for_sparse, quantize_activations,
                                 quantize_weights, quantized_operands, to_float)

from .network import conv_output_shape, im2col

__all__ = ["FORMATS", "PTQ", "ATTENTION", "ROTATE", "LayerStats", "QuantizedNetwork", "reference_outputs",
           "first_products"]

#: Per-layer formats of ``--format`` / ``--layer``: no quantization, or a datapath mode.
FORMATS = ("fp32", "int8", "int4", "w4a8", "lns8", "lns4")
#: Post-training quantization of the weights.
PTQ = ("none", "gptq")
#: What happens to MatMuls between two activations.
ATTENTION = ("quantize", "float")
#: Rotation of the reduction axis of every quantized product.
ROTATE = ("none", "hadamard")


@dataclass
class LayerStats:
    """What one layer did over a run: its GEMM shape (first call), format, where it ran and its error.

    ``signal`` and ``noise`` are sums of ``ref**2`` and ``(ref - y)**2`` over every call, where ``ref`` is the
    float64 product of the same (unquantized) operands and ``y`` the quantized one: the layer's own error.
    ``bit_exact`` is ``None`` unless the layer ran on an RTL engine, then whether every result equalled the
    golden model's.
    """
    name: str
    op: str
    format: str
    shape: list | None = None
    engine: str = "golden"
    signal: float = 0.0
    noise: float = 0.0
    bit_exact: bool | None = None
    calls: int = 0

    @property
    def sqnr_db(self):
        """``10 log10(signal / noise)``; ``inf`` when exact (FP32), ``None`` before any call."""
        if not self.calls:
            return None
        if self.noise == 0:
            return float("inf")
        return 10 * np.log10(self.signal / self.noise) if self.signal > 0 else float("-inf")


def _notify_once():
    seen = set()

    def notify(message):
        if message not in seen:
            seen.add(message)
            print(f"qmac: note: {message}", file=sys.stderr)
    return notify


@dataclass
class _Prepared:
    """A layer's core, scheme and (constant-weight layers) quantized weights, made at its first call."""
    cfg: object
    scheme: Scheme
    qw: object = None
    clip: float | None = None
    smooth: np.ndarray | None = None
    rotation: np.ndarray | None = None


class QuantizedNetwork:
    """A :class:`~qmac.model.network.Network` whose layers run on a qmac core.

    Parameters
    ----------
    net : Network
    scheme : Scheme or None
        Quantization of every layer (``None``: FP32, no quantization).
    config : CoreConfig or None
        The core (default preset when ``None``); each layer gets the variant its format needs
        (:func:`qmac.quantized_gemm.core_for_mode`, ``core_for_sparse``, ``core_for_scales``).
    overrides : sequence of (str, str)
        ``(pattern, format)`` pairs: layers whose name matches the ``fnmatch`` pattern take ``format`` (one of
        :data:`FORMATS`) instead; later pairs win.
    ptq : str
        ``none`` or ``gptq`` (needs ``calibration``).
    calibration : list of dict or None
        Calibration inputs, one feed dict per sample.
    attention : str
        ``quantize`` or ``float`` (MatMuls between two activations).
    smooth : float or None
        SmoothQuant's ``alpha`` (needs ``calibration``): each quantized layer with weights computes
        ``(W * s) @ (A / s)`` with :func:`qmac.sim.ptq.smoothing_factors` ``s`` from its FP32 calibration
        inputs (a host transform, exact in float; a deployment folds ``1 / s`` into the producer of ``A``,
        e.g. the LayerNorm before it). GPTQ then sees the smoothed weights and Hessian, static clips the
        smoothed activations.
    rotate : str
        ``none``, or ``hadamard``: every quantized product computes ``(W R) @ (R^T A)`` with
        :func:`qmac.sim.ptq.hadamard_rotation` ``R`` of its K (after smoothing; exact in float, a host
        transform: online on the activations, offline on the weights).
    engine : str
        ``golden``, ``icarus`` or ``verilator``.
    rtl : str
        With an RTL engine: ``fnmatch`` pattern of the layers run on it (on the first sample; the golden
        model computes the rest).
    notify : callable or None
        Receives config notes (default: once each on stderr).

    Members
    -------
    stats : dict
        :class:`LayerStats` by layer name.
    calibration_inputs : dict
        Per weight key ``(layer name, group)``: ``"A"``, the list of FP32 calibration activation matrices
        (K x M), and ``"H"`` / ``"n"``, the sum of ``2 A A^T`` and of M (GPTQ's Hessian is ``H / n``).

    Raises
    ------
    ValueError
        A bad option; the message names it.
    """

    def __init__(self, net, scheme, config=None, overrides=(), ptq="none", calibration=None, attention="quantize",
                 smooth=None, rotate="none", engine="golden", rtl="*", notify=None):
        from onnx.reference import ReferenceEvaluator
        from qmac.hw.spec.config import preset
        for name, value, allowed in (("ptq", ptq, PTQ), ("attention", attention, ATTENTION), ("rotate", rotate, ROTATE),
                                     ("engine", engine, ("golden", "icarus", "verilator"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        for pattern, fmt in overrides:
            if fmt not in FORMATS:
                raise ValueError(f"--layer {pattern}={fmt}: format must be one of {', '.join(FORMATS)}")
        if ptq == "gptq" and not calibration:
            raise ValueError("--ptq gptq needs a calibration set (--calibrate)")
        if smooth is not None and not (isinstance(smooth, (int, float)) and not isinstance(smooth, bool)
                                       and 0 <= smooth <= 1):
            raise ValueError(f"smooth must be a number from 0 to 1, not {smooth!r}")
        if smooth is not None and not calibration:
            raise ValueError("--smooth needs a calibration set (--calibrate)")
        self.net = net
        self.scheme = scheme
        self.config = config if config is not None else preset("default")
        self.overrides = tuple(overrides)
        self.ptq = ptq
        self.attention = attention
        self.smooth = smooth
        self.rotate = rotate
        self.engine = engine
        self.rtl = rtl
        self.notify = notify or _notify_once()
        self.stats = {layer.name: LayerStats(layer.name, layer.op, self._format(layer)) for layer in net.layers}
        self._prepared = {}
        self.calibration_inputs = {}
        self._mode = "record" if calibration else "run"
        self._first = True
        self._evaluator = ReferenceEvaluator(net.proto, new_ops=self._ops())
        if calibration:
            for feeds in calibration:
                self._evaluator.run(None, feeds)
            self._mode = "run"

    # -- layer schemes ----------------------------------------------------------------------------------------

    def _format(self, layer):
        fmt = "fp32" if self.scheme is None else self.scheme.format
        for pattern, f in self.overrides:
            if fnmatch.fnmatchcase(layer.name, pattern):
                fmt = f
        if not layer.has_weights and self.attention == "float":
            fmt = "fp32"
        if not layer.has_weights and fmt in ELEMENT_FORMATS:
            # both operands are activations: W4A8 runs them at its activation width (INT8)
            fmt = ELEMENT_FORMATS[fmt].operands[1].name
        return fmt

    def layer_scheme(self, layer):
        """The :class:`Scheme` of ``layer``, or ``None`` when it stays FP32."""
        fmt = self.stats[layer.name].format
        if fmt == "fp32":
            return None
        base = self.scheme or Scheme()
        scheme = replace(base, format=fmt)
        if base.scale_kind not in datapath_of(fmt).scale_kinds:
            scheme = replace(scheme, scale_kind=None)
        if not layer.has_weights:
            scheme = replace(scheme, sparse=False)
        return scheme

    def _prepare(self, layer, key, W, A):
        scheme = self.layer_scheme(layer)
        k = W.shape[1]
        cfg = core_for_mode(self.config, scheme.format, k, self.notify)
        if scheme.sparse:
            if cfg.datapath.sparse_reason:
                raise ConfigError(f"--sparse 2:4 is not supported with --format {scheme.format}: "
                                  f"{cfg.datapath.sparse_reason}")
            cfg = core_for_sparse(cfg, self.notify)
        cfg = core_for_scales(cfg, scheme, k + (-k % 4 if scheme.sparse else 0), self.notify)
        prep = _Prepared(cfg, scheme)
        if self.rotate == "hadamard":
            from qmac.sim.ptq import hadamard_rotation
            prep.rotation = hadamard_rotation(k)
        if layer.has_weights:
            recorded = self.calibration_inputs.get(key)
            samples = recorded["A"] if recorded else None
            if recorded and self.smooth is not None:
                from qmac.sim.ptq import smoothing_factors
                prep.smooth = smoothing_factors(recorded["A"], W, self.smooth)
                W = W * prep.smooth
                samples = [a / prep.smooth[:, None] for a in samples]
            if prep.rotation is not None:
                W = W @ prep.rotation
                samples = samples and [prep.rotation.T @ a for a in samples]
            prep.qw = self._quantize_weights(prep, key, W)
            if recorded and scheme.format in ELEMENT_FORMATS and scheme.scale == "per-tensor":
                from qmac.sim.ptq import calibrate_clip
                prep.clip = calibrate_clip(samples, ELEMENT_FORMATS[scheme.format].operands[1], scheme.clip)
        return prep

    def _quantize_weights(self, prep, key, W):
        cfg, scheme = prep.cfg, prep.scheme
        keep = None
        if scheme.sparse:
            from qmac.sim.sparse24 import is_2_4, pad_k, prune_2_4
            W = pad_k(W, 4) if W.shape[1] % 4 else W
            if not is_2_4(W):
                W = prune_2_4(W)
            keep = W != 0
        recorded = self.calibration_inputs.get(key)
        if self.ptq == "gptq" and scheme.format in ELEMENT_FORMATS and recorded:
            from qmac.sim.ptq import gptq
            H = recorded["H"] / recorded["n"]
            if prep.smooth is not None:                     # the Hessian of the smoothed inputs A / s
                H = H / np.outer(prep.smooth, prep.smooth)
            if prep.rotation is not None:                   # ... and of the rotated inputs R^T A
                H = prep.rotation.T @ H @ prep.rotation
            H = np.pad(H, ((0, W.shape[1] - len(H)),) * 2)
            return gptq(W, H, ELEMENT_FORMATS[scheme.format].operands[0], scheme.scale, scheme.vector_length,
                        scheme.bits, scheme.clip, scheme.kind if scheme.scale == "vector" else "int", keep=keep)
        return quantize_weights(cfg, scheme, W)

    # -- the product of one layer -----------------------------------------------------------------------------

    def _record(self, key, A):
        rec = self.calibration_inputs.setdefault(key, {"A": [], "H": 0.0, "n": 0})
        rec["A"].append(A)
        rec["H"] = rec["H"] + 2.0 * (A @ A.T)
        rec["n"] += A.shape[1]

    def _gemm(self, layer, key, W, A):
        """``W @ A`` (float64) of ``layer`` as its scheme says; ``key`` names the weights (layer, group)."""
        W, A = np.asarray(W, dtype=np.float64), np.asarray(A, dtype=np.float64)
        ref = W @ A
        stats = self.stats[layer.name]
        if self._mode == "record":
            if layer.has_weights:
                self._record(key, A)
            return ref
        if stats.format == "fp32":
            y = ref
        else:
            y = self._quantized(layer, key, W, A)
        if stats.shape is None:
            stats.shape = [int(W.shape[0]), int(W.shape[1]), int(A.shape[1])]
        stats.calls += 1
        stats.signal += float(np.sum(ref * ref))
        stats.noise += float(np.sum((ref - y) ** 2))
        return y

    def _quantized(self, layer, key, W, A):
        from qmac.engine import run_gemm
        prep = self._prepared.get(key) if layer.has_weights else None
        if prep is None:
            prep = self._prepare(layer, key, W, A)
            if layer.has_weights:
                self._prepared[key] = prep
        cfg, scheme = prep.cfg, prep.scheme
        if prep.rotation is not None and not layer.has_weights:
            W = W @ prep.rotation
        qw = prep.qw if layer.has_weights else quantize_weights(cfg, scheme, W)
        if prep.smooth is not None:
            A = A / prep.smooth[:, None]
        if prep.rotation is not None:
            A = prep.rotation.T @ A
        if qw.length != A.shape[0]:                        # K padded for 2:4
            A = np.pad(A, ((0, qw.length - A.shape[0]), (0, 0)))
        if prep.clip is not None:
            from qmac.sim.ptq import quantize_static
            qa = quantize_static(A, ELEMENT_FORMATS[scheme.format].operands[1], prep.clip)
        else:
            qa = quantize_activations(cfg, scheme, A)
        ops = quantized_operands(cfg, scheme, qw, qa)
        stats = self.stats[layer.name]
        engine = "golden"
        if self.engine != "golden" and self._first and fnmatch.fnmatchcase(layer.name, self.rtl):
            engine = stats.engine = self.engine
        res = run_gemm(cfg, scheme.format, ops.W, ops.A, engine=engine, w_scales=ops.w_scales,
                       a_scales=ops.a_scales, sparse=scheme.sparse)
        if res["bit_exact"] is not None:
            stats.bit_exact = res["bit_exact"] and stats.bit_exact is not False
        return to_float(cfg, ops, res["Y"])

    # -- the ONNX ops -----------------------------------------------------------------------------------------

    def _matmul(self, node, a, b):
        layer = self.net.layer(node.name)
        if layer is None:
            return np.matmul(a, b)
        if not layer.has_weights:
            shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            a2 = np.broadcast_to(a, shape + a.shape[-2:]).reshape((-1,) + a.shape[-2:])
            b2 = np.broadcast_to(b, shape + b.shape[-2:]).reshape((-1,) + b.shape[-2:])
            out = [self._gemm(layer, (layer.name, None), x, y) for x, y in zip(a2, b2)]
            return np.stack(out).reshape(shape + out[0].shape)
        if layer.weight_input == 1:
            k = a.shape[-1]
            y = self._gemm(layer, (layer.name, 0), b.T, a.reshape(-1, k).T)
            return y.T.reshape(a.shape[:-1] + (b.shape[1],))
        if b.ndim != 2:
            raise ValueError(f"{node.name}: a constant left MatMul operand needs a 2-D right operand, "
                             f"not shape {b.shape}")
        return self._gemm(layer, (layer.name, 0), a, b)

    def _gemm_node(self, node, a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0, **_):
        layer = self.net.layer(node.name)
        a = a.T if transA else a
        b = b.T if transB else b
        if layer is None:
            y = a.astype(np.float64) @ b.astype(np.float64)
        elif layer.weight_input == 1:
            y = self._gemm(layer, (layer.name, 0), b.T, a.T).T
        else:
            y = self._gemm(layer, (layer.name, 0), a, b)
        y = alpha * y
        if c is not None:
            y = y + beta * c
        return y

    def _conv(self, node, X, Wt, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
              strides=None, **_):
        layer = self.net.layer(node.name)
        d = X.ndim - 2
        if d not in (1, 2):
            raise ValueError(f"{node.name}: Conv with {d} spatial axes; allowed: 1 or 2")
        kernel = list(kernel_shape or Wt.shape[2:])
        strides = list(strides or [1] * d)
        dilations = list(dilations or [1] * d)
        pads = list(pads or [0] * (2 * d))
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            for i in range(d):
                out = -(-X.shape[2 + i] // strides[i])
                total = max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - X.shape[2 + i])
                small, big = total // 2, total - total // 2
                pads[i], pads[i + d] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        elif auto_pad == "VALID":
            pads = [0] * (2 * d)
        out_shape = conv_output_shape(X.shape[2:], kernel, strides, pads, dilations)
        g, cin = group, X.shape[1] // group
        cout = Wt.shape[0] // g
        outs = []
        for i in range(g):
            A = im2col(X[:, i * cin:(i + 1) * cin], kernel, strides, pads, dilations)
            W = Wt[i * cout:(i + 1) * cout].reshape(cout, -1)
            y = self._gemm(layer, (node.name, i), W, A) if layer is not None else W.astype(np.float64) @ A
            outs.append(y.reshape(cout, X.shape[0], *out_shape))
        Y = np.concatenate(outs, axis=0).swapaxes(0, 1)
        if B is not None:
            Y = Y + B.reshape((1, -1) + (1,) * d)
        return Y

    @staticmethod
    def _batch_norm(node, X, scale, bias, mean, var, epsilon=1e-5, training_mode=0, **_):
        # onnx.reference's BatchNormalization-9 uses batch statistics whenever `momentum` is set; inference
        # (one output) uses the stored mean and variance, as onnxruntime does
        if training_mode or len(node.output) != 1:
            raise ValueError(f"{node.name}: BatchNormalization in training mode; allowed: inference (one output)")
        shape = (1, -1) + (1,) * (X.ndim - 2)
        k = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
        return (X - mean.reshape(shape)) * k.reshape(shape) + bias.reshape(shape)

    def _ops(self):
        from onnx.reference.op_run import OpRun
        impls = {"MatMul": self._matmul, "Gemm": self._gemm_node, "Conv": self._conv,
                 "BatchNormalization": self._batch_norm}

        def make(op, impl):
            def _run(op_self, *inputs, **attrs):
                y = impl(op_self.onnx_node, *inputs, **attrs)
                return (np.asarray(y).astype(inputs[0].dtype),)
            return type(op, (OpRun,), {"op_domain": "", "_run": _run})
        return [make(op, impl) for op, impl in impls.items()]

    # -- running ----------------------------------------------------------------------------------------------

    def __call__(self, feeds):
        """Outputs (list of arrays, in graph output order) for one feed dict."""
        try:
            return self._evaluator.run(None, feeds)
        finally:
            self._first = False


def reference_outputs(net, feeds_list):
    """FP32 outputs of onnxruntime (CPU) for each feed dict."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(net.proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return [session.run(None, feeds) for feeds in feeds_list]


def first_products(net, feeds):
    """``{layer name: (W, A)}``: the float64 operands of each layer's first product ``W @ A`` (qmac's
    orientation, N x K and K x M; a Conv's first group, an attention MatMul's first head) when ``net`` runs in
    FP32 on the feed dict ``feeds``, in layer order."""
    seen = {}

    class Capture(QuantizedNetwork):
        def _gemm(self, layer, key, W, A):
            if layer.name not in seen:
                seen[layer.name] = (np.array(W, dtype=np.float64), np.array(A, dtype=np.float64))
            return super()._gemm(layer, key, W, A)

    Capture(net, None)(feeds)
    return {layer.name: seen[layer.name] for layer in net.layers if layer.name in seen}
