"""Host quantizer from float tensors to the LNS inputs of a core: log codes, a tensor exponent and signed
per-vector log scales.

An element stands for ``decode(fmt, code) * 2**((offset + s_v) / 2**F)``: the codes are those of
:func:`qmac.sim.log_format.encode`, ``offset`` is one exponent for the tensor and ``s_v`` a signed S-bit
exponent per vector of V consecutive elements along the reduction axis (the ``scale`` input of the LNS
datapath), all in units of ``2**-F``. The choice of exponents and its reasons are in ``docs/lns.md``
("Host quantizer and SQNR").
"""

from dataclasses import dataclass

import numpy as np

from qmac.hw.spec import checks
from qmac.hw.spec.checks import check_int
from qmac.hw.spec.log_format import LogFormat
from qmac.sim.log_format import decode, encode
from qmac.sim.quantize import CLIPS, clip_max, clip_percentile

__all__ = ["CLIPS", "MAX_SCALE_BITS", "MSE_SEARCH_OCTAVES", "LogTensor", "quantize_log", "log_gemm_reference"]

#: Widest per-vector log scale (the LNS datapath's ``scale_bits``).
MAX_SCALE_BITS = checks.MAX_SCALE_BITS["log"]
#: ``clip="mse"`` tries exponents from the ``"max"`` one down to this many octaves below it.
MSE_SEARCH_OCTAVES = 2


def _rows(array, axis):
    """View ``array`` with the reduction axis last: itself for ``axis=1``, its transpose for ``axis=0``."""
    return array if axis == 1 else array.T


@dataclass(frozen=True, eq=False)
class LogTensor:
    """A tensor in a log format with a tensor exponent and optional per-vector log scales.

    Element ``k`` of the reduction axis belongs to vector ``v = k // vector`` and stands for
    ``decode(fmt, code) * 2**((offset + s_v) / 2**F)`` (``s_v = 0`` without vectors).

    Members
    -------
    codes : numpy.ndarray of int64
        Codes of ``fmt`` (:func:`qmac.sim.log_format.encode` layout). With vectors, zero-padded along ``axis``
        to a multiple of ``vector``: ``(N, Kp)`` for weights, ``(Kp, M)`` for activations; else unpadded.
    fmt : LogFormat
    offset : int
        Tensor exponent in units of ``2**-F``.
    scales : numpy.ndarray of int64 or None
        Per-vector exponents ``s_v`` (units of ``2**-F``) in ``[-2**(S-1), 2**(S-1) - 1]``: shape
        ``(N, Kp // vector)`` for ``axis=1``, ``(Kp // vector, M)`` for ``axis=0``; ``None`` without vectors.
    vector : int or None
        V, or ``None`` without vectors.
    scale_bits : int
        S, 0 without vectors.
    axis : int
        Reduction axis: 1 for weights (N x K), 0 for activations (K x M).
    length : int
        K before padding.
    """
    codes: np.ndarray
    fmt: LogFormat
    offset: int
    scales: np.ndarray | None
    vector: int | None
    scale_bits: int
    axis: int
    length: int

    @property
    def padded_length(self):
        """Length of ``codes`` along ``axis``: K rounded up to a multiple of V (K without vectors)."""
        return self.codes.shape[self.axis]

    def exponents(self):
        """``offset + s_v`` of every element (units of ``2**-F``), int64, the shape of ``codes``."""
        if self.scales is None:
            return np.full(self.codes.shape, self.offset, dtype=np.int64)
        return _rows(np.repeat(_rows(self.scales, self.axis), self.vector, axis=1), self.axis) + self.offset

    def dequantize(self):
        """``decode(codes) * 2**((offset + s_v) / 2**F)`` (float64), unpadded to K."""
        values = decode(self.fmt, self.codes) * np.exp2(self.exponents() / self.fmt.buckets)
        return _rows(_rows(values, self.axis)[:, :self.length], self.axis)


def _check(x, fmt, axis, vector, scale_bits, clip):
    if not isinstance(fmt, LogFormat):
        raise TypeError(f"fmt must be a LogFormat, not {fmt!r}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty 2-D array, not shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"x must be finite, not {float(x[~np.isfinite(x)][0])!r}")
    if isinstance(axis, bool) or axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, not {axis!r}")
    if vector is None:
        if scale_bits != 0:
            raise ValueError(f"scale_bits must be 0 without vectors, not {scale_bits!r}")
    else:
        check_int("vector", vector, 1, numpy=True)
        check_int("scale_bits", scale_bits, 1, MAX_SCALE_BITS, numpy=True)
    if clip not in CLIPS:
        raise ValueError(f"clip must be one of {', '.join(CLIPS)}, not {clip!r}")
    return x


def _top_exponent(fmt, clip):
    """Exponent ``u`` (units of ``2**-F``) that maps ``clip > 0`` onto the largest code: ``clip / 2**(u/2**F)``
    is within half a log-domain step of the largest magnitude, ``u = floor(2**F * log2(clip) + 1/2) - top``.
    0 where ``clip == 0``."""
    with np.errstate(divide="ignore"):
        nearest = np.floor(fmt.buckets * np.log2(clip) + 0.5)
    return np.where(clip > 0, nearest - fmt.max_exponent, 0).astype(np.int64)


def _encode(fmt, groups, exponents):
    """Codes of ``groups`` (``(..., n)``) under per-group exponents (``(..., 1)``)."""
    return encode(fmt, groups / np.exp2(exponents / fmt.buckets))


def _error(fmt, groups, exponents):
    """Squared quantization error of each group (``(..., 1)``) under per-group exponents."""
    approx = decode(fmt, _encode(fmt, groups, exponents)) * np.exp2(exponents / fmt.buckets)
    return np.sum((approx - groups) ** 2, axis=2, keepdims=True)


def quantize_log(x, fmt, axis, vector=None, scale_bits=0, clip="max"):
    """Quantize a 2-D float tensor to a log format with a tensor exponent and per-vector log scales.

    A *group* is a vector of V consecutive elements along ``axis`` (the axis zero-padded to a multiple of
    V), or the whole tensor without vectors. Per group:

    1. clip value ``c_g``: ``max |x|`` (``"max"``), the 99.99th percentile of ``|x|`` (``"percentile"``),
       or for ``"mse"`` the ``"max"`` clip refined below;
    2. ideal exponent ``u_g = floor(2**F * log2(c_g) + 1/2) - max_exponent``: ``c_g / 2**(u_g / 2**F)``
       lies within half a log-domain step of the largest magnitude, so with ``"max"`` nothing saturates
       beyond rounding;
    3. with vectors, the tensor exponent is anchored at the largest vector,
       ``offset = max_g(u_g) - (2**(S-1) - 1)`` (over non-zero vectors), and
       ``s_g = clamp(u_g - offset, -2**(S-1), 2**(S-1) - 1)``: no vector is clamped from above (which
       would saturate its largest elements); vectors more than ``2**S - 1`` steps below the largest are
       clamped from below and lose their smallest elements to zero instead. Without vectors,
       ``offset = u`` of the tensor. Zero vectors get ``s_g = 0``, a zero tensor ``offset = 0``;
    4. ``"mse"``: with vectors, the anchor is first lowered by ``d`` steps, ``d = 0 .. min(max(spread -
       (2**S - 1), 0), 2**S - 1)`` (``spread = max_g(u_g) - min_g(u_g)`` over non-zero vectors; so only
       while some vector is clamped from below), to the ``d`` of smallest total squared error (the first
       on ties). Then each group takes, of the exponents ``u_g - c`` for ``c = 0 ..`` :data:`MSE_SEARCH_OCTAVES`
       ``* 2**F`` (clamped to the S-bit range), the one with the smallest squared error of the group (the
       first on ties). Without vectors this picks the tensor exponent;
    5. codes ``encode(fmt, x / 2**((offset + s_g) / 2**F))`` (nearest in the log domain, zero below half a
       step under the smallest magnitude); padding has code 0.

    Parameters
    ----------
    x : array_like
        2-D float tensor, finite.
    fmt : LogFormat
    axis : int
        Reduction axis: 1 for weights W (N x K), 0 for activations A (K x M).
    vector : int or None
        V, a positive integer, or ``None`` for one exponent per tensor.
    scale_bits : int
        S, 1 to :data:`MAX_SCALE_BITS` with vectors, 0 without.
    clip : str
        One of :data:`CLIPS`.

    Returns
    -------
    LogTensor

    Raises
    ------
    ValueError
        An argument is out of range; the message names it.
    TypeError
        ``fmt`` is not a :class:`LogFormat`.
    """
    x = _check(x, fmt, axis, vector, scale_bits, clip)
    rows = _rows(x, axis)
    channels, length = rows.shape
    if vector is None:
        groups = rows.reshape(1, 1, -1)
    else:
        padded = -(-length // vector) * vector
        blocks = np.zeros((channels, padded))
        blocks[:, :length] = rows
        groups = blocks.reshape(channels, padded // vector, vector)

    peak = clip_max(groups, axis=2)
    # A percentile of a sparse vector can be 0 while the vector is not: fall back to its peak.
    u = _top_exponent(fmt, np.where(clip_percentile(groups, axis=2) > 0, clip_percentile(groups, axis=2), peak)
                      if clip == "percentile" else peak)
    nonzero = peak > 0
    if vector is None:
        offset, lo, hi = int(u.item()), -(1 << 62), 1 << 62      # the tensor exponent itself is free
    else:
        hi = (1 << (scale_bits - 1)) - 1
        lo = -hi - 1
        offset = int(u[nonzero].max()) - hi if nonzero.any() else 0
    scale = np.where(nonzero, np.clip(u - offset, lo, hi), 0)
    if clip == "mse":
        if vector is not None and nonzero.any():
            # Lower the anchor while vectors are clamped from below, to the smallest total error.
            spread = int(u[nonzero].max() - u[nonzero].min())
            tries = [offset - d for d in range(min(max(spread - (hi - lo), 0), hi - lo) + 1)]
            totals = [np.sum(_error(fmt, groups, t + np.where(nonzero, np.clip(u - t, lo, hi), 0))) for t in tries]
            offset = tries[int(np.argmin(totals))]
            scale = np.where(nonzero, np.clip(u - offset, lo, hi), 0)
        candidates = np.stack([np.clip(scale - c, lo, hi) for c in range(MSE_SEARCH_OCTAVES * fmt.buckets + 1)])
        errors = np.stack([_error(fmt, groups, offset + c) for c in candidates])
        scale = np.where(nonzero, np.take_along_axis(candidates, np.argmin(errors, axis=0)[None], 0)[0], 0)
    if vector is None:
        offset, scale = offset + int(scale.item()), None
        codes = _encode(fmt, rows, offset)
    else:
        codes = _encode(fmt, groups, offset + scale).reshape(channels, -1)
        scale = _rows(scale[..., 0], axis)
    return LogTensor(codes=_rows(codes, axis), fmt=fmt, offset=offset, scales=scale, vector=vector,
                     scale_bits=scale_bits, axis=axis, length=length)


def log_gemm_reference(w, a):
    """``w.dequantize() @ a.dequantize()`` in float64: the product the LNS core approximates.

    Parameters
    ----------
    w : LogTensor
        Weights, N x K, quantized along ``axis=1``.
    a : LogTensor
        Activations, K x M, quantized along ``axis=0``, of the same K.

    Raises
    ------
    ValueError
        If the operands are not weights and activations of the same K.
    """
    if w.axis != 1:
        raise ValueError(f"w must be quantized along axis 1 (weights, N x K), not axis {w.axis}")
    if a.axis != 0:
        raise ValueError(f"a must be quantized along axis 0 (activations, K x M), not axis {a.axis}")
    if w.length != a.length:
        raise ValueError(f"a must have the K of w ({w.length}), not {a.length}")
    return w.dequantize() @ a.dequantize()
