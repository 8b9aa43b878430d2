"""An int8 FULLY_CONNECTED layer read from a TFLite flatbuffer, as the parameters qmac's output stage needs to
reproduce the TFLite runtime's output bytes (docs/output_stage.md, "TFLite runtime")."""

from dataclasses import dataclass

import numpy as np

from qmac.hw.spec.requantize import MODES
from qmac.sim.requantize import quantize_multiplier, requantize, tflite_shift_field

__all__ = ["TFLiteFullyConnected", "read_fully_connected", "find_operator", "int8_layer"]

# Modes whose parameters come from a TFLite model, and the runtime kernel each reproduces.
_KERNELS = ("gemmlowp", "tflite_optimized", "tflite_reference")


@dataclass(frozen=True)
class TFLiteFullyConnected:
    """One int8 FULLY_CONNECTED operator: ``out = requant(W @ (x - input_zero_point) + bias)``.

    Members
    -------
    weights : ndarray of int64, (N, K)
        The filter's int8 codes (TFLite's filter is N x K, output channels first).
    bias : ndarray of int64, (N,)
        The int32 bias (zeros when the operator has none).
    input_zero_point, output_zero_point : int
    input_scale, output_scale : float
        The float32 scales, as Python floats.
    filter_scales : ndarray of float64, (N,)
        The filter's float32 scales, one per channel (a per-tensor scale repeated).
    per_channel : bool
        Whether the filter has one scale per output channel.
    """
    weights: np.ndarray
    bias: np.ndarray
    input_zero_point: int
    output_zero_point: int
    input_scale: float
    output_scale: float
    filter_scales: np.ndarray
    per_channel: bool

    def real_multipliers(self, mode):
        """The real factor per channel that ``mode``'s kernel quantizes, computed as the runtime does in double:
        ``input_scale * filter_scale / output_scale``, except the per-tensor optimized kernel, whose
        ``GetQuantizedConvolutionMultipler`` rounds ``input_scale * filter_scale`` to float32 first."""
        _check_mode(mode)
        if mode != "tflite_reference" and not self.per_channel:
            product = np.float64(np.float32(self.input_scale) * np.float32(self.filter_scales))
        else:
            product = np.float64(self.input_scale) * self.filter_scales
        return product / np.float64(self.output_scale)

    def requant_params(self, mode):
        """Per-channel :data:`qmac.hw.spec.requantize.PARAMS` fields (arrays of length N) of ``mode``:
        :func:`quantize_multiplier` of :meth:`real_multipliers`, its shift as :func:`tflite_shift_field`,
        the output zero point, INT8 output."""
        pairs = [quantize_multiplier(r) for r in self.real_multipliers(mode)]
        n = len(pairs)
        return {"multiplier": np.array([m for m, _ in pairs], dtype=np.int64),
                "shift": tflite_shift_field(np.array([s for _, s in pairs], dtype=np.int64)),
                "zero_point": np.full(n, self.output_zero_point, dtype=np.int64),
                "int4": np.zeros(n, dtype=np.int64), "mode": np.full(n, MODES.index(mode), dtype=np.int64)}

    def accumulator_offset(self):
        """What the runtime adds to ``W @ x`` before requantizing: ``bias - input_zero_point * sum_k W``
        (per channel, int64). qmac's core computes ``W @ x``; this offset is the host's part."""
        return self.bias - self.input_zero_point * self.weights.sum(axis=1)

    def output(self, x, mode, products=None):
        """The operator's int8 output for inputs ``x`` (B x K int8 codes), as ``mode``'s kernel computes it.

        ``products`` is ``W @ x.T`` (N x B) from a qmac engine; by default it is computed here exactly. The
        output stage (golden model, 64-bit accumulators) requantizes ``products + accumulator_offset()``.

        Returns
        -------
        ndarray of int8, (B, N)
        """
        x = np.asarray(x, dtype=np.int64)
        if products is None:
            products = self.weights @ x.T
        acc = np.asarray(products, dtype=np.int64) + self.accumulator_offset()[:, None]
        p = self.requant_params(mode)
        q, _ = requantize(acc, *(p[f] for f in ("multiplier", "shift", "zero_point", "int4", "mode")), acc_bits=64)
        return q.T.astype(np.int8)


def _check_mode(mode):
    if mode not in _KERNELS:
        raise ValueError(f"TFLite mode must be one of {', '.join(_KERNELS)}, not {mode!r}")


def read_fully_connected(model, index=0):
    """The ``index``-th FULLY_CONNECTED operator of the first subgraph of a ``.tflite`` model.

    Reads the flatbuffer with the schema module shipped in the ``ai-edge-litert`` package.

    Parameters
    ----------
    model : bytes
        The flatbuffer.
    index : int
        Which FULLY_CONNECTED operator, counted from 0 in execution order.

    Raises
    ------
    ValueError
        The operator is missing, or is not an int8 FC with a constant int8 filter of zero zero point, int32
        bias, no fused activation and 2-D shapes.
    """
    from ai_edge_litert import schema_py_generated as schema

    m, graph, op = find_operator(model, "FULLY_CONNECTED", index)
    t_w = graph.tensors[op.inputs[1]]
    if len(t_w.shape) != 2:
        raise ValueError("filter must be a constant 2-D tensor")
    return int8_layer(schema, m, graph, op, TFLiteFullyConnected, {})


def find_operator(model, name, index):
    """``(model, subgraph, operator)``: the ``index``-th operator ``name`` (a ``BuiltinOperator`` name) of the
    first subgraph of the flatbuffer ``model``, unpacked with ``ai-edge-litert``'s schema module; its fused
    activation must be NONE."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    graph = m.subgraphs[0]
    codes = [c.builtinCode if c.builtinCode else c.deprecatedBuiltinCode for c in m.operatorCodes]
    ops = [op for op in graph.operators if codes[op.opcodeIndex] == getattr(schema.BuiltinOperator, name)]
    if not 0 <= index < len(ops):
        raise ValueError(f"{name} index must be within [0, {len(ops) - 1}], not {index}")
    op = ops[index]
    activation = op.builtinOptions.fusedActivationFunction if op.builtinOptions else 0
    if activation != schema.ActivationFunctionType.NONE:
        raise ValueError(f"fused activation must be NONE, not {activation}")
    return m, graph, op


def int8_layer(schema, m, graph, op, cls, extra):
    """``cls(**fields, **extra)``: the int8 tensors of ``op`` (input 0, constant filter 1 with output channels
    first, optional int32 bias 2, output 0) as :class:`TFLiteFullyConnected`'s fields, the filter flattened to
    N x K in its own (row-major) order."""
    t_in, t_w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    t_b = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    t_out = graph.tensors[op.outputs[0]]
    for name, t in (("input", t_in), ("filter", t_w), ("output", t_out)):
        if t.type != schema.TensorType.INT8:
            raise ValueError(f"{name} tensor type must be INT8, not {t.type}")
    w_buf = m.buffers[t_w.buffer].data
    if w_buf is None:
        raise ValueError("filter must be a constant tensor")
    n = int(t_w.shape[0])
    weights = np.frombuffer(bytes(bytearray(w_buf)), dtype=np.int8).reshape(n, -1).astype(np.int64)
    if any(t_w.quantization.zeroPoint):
        raise ValueError("filter zero points must be 0")
    bias = np.zeros(n, dtype=np.int64)
    if t_b is not None:
        if t_b.type != schema.TensorType.INT32:
            raise ValueError(f"bias tensor type must be INT32, not {t_b.type}")
        bias = np.frombuffer(bytes(bytearray(m.buffers[t_b.buffer].data)), dtype="<i4").astype(np.int64)
    w_scales = np.asarray(t_w.quantization.scale, dtype=np.float32)
    return cls(
        weights=weights, bias=bias,
        input_zero_point=int(t_in.quantization.zeroPoint[0]), output_zero_point=int(t_out.quantization.zeroPoint[0]),
        input_scale=float(np.float32(t_in.quantization.scale[0])),
        output_scale=float(np.float32(t_out.quantization.scale[0])),
        filter_scales=np.broadcast_to(w_scales.astype(np.float64), (n,)).copy(), per_channel=w_scales.size > 1,
        **extra)
