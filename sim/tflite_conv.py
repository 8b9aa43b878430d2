"""An int8 CONV_2D layer read from a TFLite flatbuffer, run as im2col + ``W @ cols`` + qmac's output stage, with
the TFLite runtime's output bytes (docs/output_stage.md, "CONV_2D").

TFLite's layouts: input and output NHWC, filter OHWI (``N x Kh x Kw x C``). The im2col matrix has one column
per output pixel (batch-major, then row, then column) and rows in the filter's own ``(kh, kw, c)`` order, so
the filter flattened row-major is the GEMM's ``N x K`` weights (``K = Kh * Kw * C``).
"""

from dataclasses import dataclass

import numpy as np

from qmac.sim.tflite_fc import TFLiteFullyConnected, find_operator, int8_layer

__all__ = ["TFLiteConv2D", "read_conv_2d", "conv_output_size"]

#: TFLite's ``Padding`` enum values.
_PADDINGS = {0: "SAME", 1: "VALID"}


def conv_output_size(size, kernel, stride, padding):
    """``(out, pad_before)`` of one spatial axis, as TFLite's ``ComputePaddingHeightWidth`` (dilation 1):
    SAME: ``out = ceil(size / stride)``, total padding ``max((out - 1) * stride + kernel - size, 0)``, of
    which ``total // 2`` before (the odd one after); VALID: ``out = (size - kernel) // stride + 1``, none."""
    if padding == "SAME":
        out = -(-size // stride)
        return out, max((out - 1) * stride + kernel - size, 0) // 2
    return (size - kernel) // stride + 1, 0


@dataclass(frozen=True)
class TFLiteConv2D(TFLiteFullyConnected):
    """One int8 CONV_2D operator (dilation 1):
    ``out[b, y, x, n] = requant(sum_{i,j,c} W[n, i, j, c] * (in[b, y*s + i - p, x*s + j - p, c] - input_zp)
    + bias[n])``, out-of-image inputs contributing 0 (as if they held ``input_zero_point``).

    The :class:`~qmac.sim.tflite_fc.TFLiteFullyConnected` members describe the GEMM (``weights`` N x
    ``Kh * Kw * C``); the requantization is the same, except that every int8 CONV_2D kernel uses per-channel
    multipliers of the factor computed in double (``PopulateConvolutionQuantizationParams``), per-tensor
    filters included.

    Members
    -------
    kernel : (int, int)
        ``(Kh, Kw)``.
    stride : (int, int)
        ``(stride_h, stride_w)``.
    padding : str
        ``SAME`` or ``VALID``.
    """
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: str = "VALID"

    def real_multipliers(self, mode):
        """``(double)input_scale * (double)filter_scale / (double)output_scale`` per channel, every mode."""
        super().real_multipliers(mode)   # checks the mode
        return np.float64(self.input_scale) * self.filter_scales / np.float64(self.output_scale)

    def im2col(self, x):
        """``(cols, (B, Ho, Wo))``: the K x (B * Ho * Wo) int64 matrix of input patches of ``x`` (B x H x W x C
        int8 codes), out-of-image positions filled with ``input_zero_point``."""
        x = np.asarray(x, dtype=np.int64)
        b, h, w, c = x.shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        (ho, ph), (wo, pw) = (conv_output_size(h, kh, sh, self.padding), conv_output_size(w, kw, sw, self.padding))
        padded = np.full((b, max((ho - 1) * sh + kh, ph + h), max((wo - 1) * sw + kw, pw + w), c),
                         self.input_zero_point, dtype=np.int64)
        padded[:, ph:ph + h, pw:pw + w] = x
        patches = np.stack([padded[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
                            for i in range(kh) for j in range(kw)], axis=3)     # (B, Ho, Wo, Kh*Kw, C)
        return patches.reshape(b * ho * wo, kh * kw * c).T, (b, ho, wo)

    def output(self, x, mode, products=None):
        """The operator's int8 output (B x Ho x Wo x N) for ``x`` (B x H x W x C int8 codes), as ``mode``'s
        kernel computes it. ``products`` is ``weights @ im2col(x)`` (N x B*Ho*Wo) from a qmac engine;
        by default it is computed here exactly."""
        cols, (b, ho, wo) = self.im2col(x)
        flat = super().output(cols.T, mode, products)                           # (B*Ho*Wo, N)
        return flat.reshape(b, ho, wo, -1)


def read_conv_2d(model, index=0):
    """The ``index``-th CONV_2D operator of the first subgraph of a ``.tflite`` model (``bytes``).

    Raises
    ------
    ValueError
        The operator is missing, or is not an int8 CONV_2D with a constant 4-D int8 filter of zero zero point,
        int32 bias, no fused activation and dilation 1.
    """
    from ai_edge_litert import schema_py_generated as schema

    m, graph, op = find_operator(model, "CONV_2D", index)
    o = op.builtinOptions
    if (o.dilationHFactor, o.dilationWFactor) != (1, 1):
        raise ValueError(f"dilation must be 1, not {(o.dilationHFactor, o.dilationWFactor)}")
    shape = graph.tensors[op.inputs[1]].shape
    if shape is None or len(shape) != 4:
        raise ValueError("filter must be a constant 4-D tensor (OHWI)")
    return int8_layer(schema, m, graph, op, TFLiteConv2D,
                      {"kernel": (int(shape[1]), int(shape[2])), "stride": (int(o.strideH), int(o.strideW)),
                       "padding": _PADDINGS[o.padding]})
