"""Host-side quantizers: clipping, symmetric quantization and two-level per-vector scaled quantization (VSQ).

Everything here is numpy on ``float64`` values and ``int64`` codes; nothing is hardware. The definitions, the
rounding rules and the measured accuracy are in ``docs/vsq.md``. Two rules hold throughout:

* every rounding to an integer is ``np.rint``: round to nearest, ties to the even integer;
* a zero scale never reaches a division: a slice whose clip value is 0 (all zeros) gets scale 1, so its codes
  are 0 and it dequantizes to 0.

Tensors are 2-D: weights ``W`` (N x K) are quantized along ``axis=1``, activations ``A`` (K x M) along
``axis=0``, so that ``Y = W @ A`` reduces over K. The "channel" of a weight is a row of ``W``, of an activation a
column of ``A``.
"""

import math
from dataclasses import dataclass

import numpy as np

from qmac.hw.spec import checks
from qmac.hw.spec.checks import check_int
from qmac.hw.spec.datapath import IntDatapath
from qmac.hw.spec.formats import ElementFormat

__all__ = [
    "CLIPS", "SCHEMES", "GRANULARITIES", "SCALE_KINDS", "MAX_SCALE_BITS",
    "clip_max", "clip_percentile", "clip_mse", "quantize_symmetric",
    "VsqTensor", "quantize_vsq", "quantize", "sqnr_db", "vsq_gemm_int", "vsq_gemm",
]

#: Clip methods of :func:`quantize_vsq` and :func:`quantize`.
CLIPS = ("max", "percentile", "mse")
#: Schemes of :func:`quantize`.
SCHEMES = ("per-tensor", "per-channel", "vector")
#: Extent of the coarse scale ``gamma`` of :func:`quantize_vsq`.
GRANULARITIES = ("channel", "tensor")
#: Encodings of the per-vector scale: an integer ``sq_v``, or an exponent ``e_v`` with ``sq_v = 2**e_v`` (the
#: INT datapath's scale kinds).
SCALE_KINDS = IntDatapath.scale_kinds
#: Widest per-vector scale of each kind. ``sq_w * sq_a`` stays below 2**30, so :func:`vsq_gemm_int` is exact in
#: int64 for any reduction length below 2**19 (INT8 codes, pow2 scales) and far beyond for integer scales.
MAX_SCALE_BITS = {kind: checks.MAX_SCALE_BITS[kind] for kind in SCALE_KINDS}


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def _check_format(fmt):
    if not isinstance(fmt, ElementFormat):
        raise TypeError(f"fmt must be an ElementFormat (INT8 or INT4), not {fmt!r}")


def _check_vector_scales(vector, scale_bits, scale_kind):
    """Per-vector scale arguments: ``vector`` a positive integer, ``scale_kind`` one of :data:`SCALE_KINDS`,
    ``scale_bits`` from 1 to that kind's :data:`MAX_SCALE_BITS`."""
    check_int("vector", vector, 1, numpy=True)
    _check_choice("scale_kind", scale_kind, SCALE_KINDS)
    check_int("scale_bits", scale_bits, 1, MAX_SCALE_BITS[scale_kind], numpy=True,
              context=f" for scale_kind {scale_kind!r}")


def clip_max(x, axis=None):
    """Largest magnitude: ``max |x|`` over ``axis``.

    Parameters
    ----------
    x : array_like
        Values.
    axis : None, int or tuple of int
        Axes reduced over, as in numpy: ``None`` clips the whole tensor, ``axis=1`` of an N x K tensor gives
        one clip per row.

    Returns
    -------
    numpy.ndarray
        Clip values, with the reduced axes kept as size 1 (broadcastable to ``x``).
    """
    return np.max(np.abs(x), axis=axis, keepdims=True)


def clip_percentile(x, pct=99.99, axis=None):
    """Percentile of the magnitudes: ``np.percentile(|x|, pct)`` over ``axis`` (linear interpolation).

    Parameters
    ----------
    x : array_like
        Values.
    pct : float
        Percentile in ``(0, 100]``; 100 is :func:`clip_max`.
    axis : None, int or tuple of int
        Axes reduced over, as in :func:`clip_max`.

    Returns
    -------
    numpy.ndarray
        Clip values, broadcastable to ``x``.

    Raises
    ------
    ValueError
        If ``pct`` is outside ``(0, 100]``.
    """
    if isinstance(pct, bool) or not isinstance(pct, (int, float, np.number)) or not 0 < pct <= 100:
        raise ValueError(f"pct must be a number in (0, 100], not {pct!r}")
    return np.percentile(np.abs(x), pct, axis=axis, keepdims=True)


def clip_mse(x, qmax, axis=None, iters=30, rtol=1e-6):
    """MSE-optimal clip value by the OCTAV fixed-point iteration.

    For symmetric quantization to ``[-qmax, qmax]`` with clip ``s`` (step ``s / qmax``) the mean-squared error is
    modelled as ``(s / qmax)**2 / 12 * P(|x| <= s) + E[(|x| - s)**2 ; |x| > s]``. Its stationary point is
    iterated from ``s = mean |x|``::

        s <- E[|x| ; |x| > s] / (P(|x| <= s) / (12 * qmax**2) + P(|x| > s))

    where ``E[|x| ; |x| > s]`` is the partial mean ``sum(|x| * (|x| > s)) / n`` over the ``n`` values of the
    slice. A slice in which no value exceeds ``s`` (nothing would be clipped) sets ``s <- max |x|`` instead:
    this is the exact optimum of a constant-magnitude slice, and gives 0 for an all-zero slice. From
    ``s = mean |x|`` every later iterate lies in ``(0, max |x|]``.

    All slices iterate together (masked sums along ``axis``). The iteration stops after ``iters`` steps, or
    earlier once every slice changed by at most ``rtol * s`` in one step. On a finite sample the map can end in
    a 2-cycle between two values straddling one sample magnitude; the iterate after ``iters`` steps is returned
    (the two differ by well under 1%).

    Parameters
    ----------
    x : array_like
        Values.
    qmax : int
        Largest code magnitude: 127 for INT8, 7 for INT4 (``ElementFormat.qmax``).
    axis : None, int or tuple of int
        Axes reduced over, as in :func:`clip_max`.
    iters : int
        Most iteration steps.
    rtol : float
        Relative change at which a slice counts as converged.

    Returns
    -------
    numpy.ndarray
        Clip values, broadcastable to ``x``.

    Raises
    ------
    ValueError
        If ``qmax`` or ``iters`` is not a positive integer.
    """
    check_int("qmax", qmax, 1, numpy=True)
    check_int("iters", iters, 1, numpy=True)
    mag = np.abs(np.asarray(x, dtype=np.float64))
    s = np.mean(mag, axis=axis, keepdims=True)
    count = mag.size // s.size
    amax = np.max(mag, axis=axis, keepdims=True)
    inside_weight = 1.0 / (12.0 * qmax * qmax)
    for _ in range(iters):
        over = mag > s
        n_over = np.sum(over, axis=axis, keepdims=True)
        sum_over = np.sum(mag * over, axis=axis, keepdims=True)
        s_next = np.where(n_over > 0, sum_over / ((count - n_over) * inside_weight + n_over), amax)
        done = np.all(np.abs(s_next - s) <= rtol * s_next)
        s = s_next
        if done:
            break
    return s


def _clip(x, method, qmax, axis):
    """Clip values of ``x`` over ``axis`` by ``method`` (one of :data:`CLIPS`, with default settings)."""
    if method == "max":
        return clip_max(x, axis)
    if method == "percentile":
        return clip_percentile(x, axis=axis)
    return clip_mse(x, qmax, axis)


def _round_clamp(x, step, qmax):
    """``clamp(rint(x / step), -qmax, qmax)`` as int64; ``rint`` rounds half to even."""
    return np.clip(np.rint(x / step), -qmax, qmax).astype(np.int64)


def quantize_symmetric(x, fmt, clip):
    """Symmetric uniform quantization with a given clip value.

    ``scale = clip / qmax`` (``scale = 1`` where ``clip == 0``) and
    ``codes = clamp(rint(x / scale), -qmax, qmax)``; ``x`` is approximated by ``codes * scale``.

    Parameters
    ----------
    x : array_like
        Values.
    fmt : ElementFormat
        Code format; sets ``qmax`` (127 for INT8, 7 for INT4).
    clip : float or array_like
        Non-negative clip values broadcastable to ``x`` (e.g. from :func:`clip_mse` with ``axis``).

    Returns
    -------
    codes : numpy.ndarray of int64
        Shape of ``x``.
    scale : numpy.ndarray of float64
        Shape of ``clip``.

    Raises
    ------
    ValueError
        If a clip value is negative or not finite.
    """
    _check_format(fmt)
    clip = np.asarray(clip, dtype=np.float64)
    bad = ~(np.isfinite(clip) & (clip >= 0))
    if np.any(bad):
        raise ValueError(f"clip must be finite and non-negative, not {float(clip[bad].flat[0])!r}")
    scale = np.where(clip > 0, clip / fmt.qmax, 1.0)
    return _round_clamp(np.asarray(x, dtype=np.float64), scale, fmt.qmax), scale


def _rows(array, axis):
    """View ``array`` with the reduction axis last: itself for ``axis=1``, its transpose for ``axis=0``."""
    return array if axis == 1 else array.T


@dataclass(frozen=True, eq=False)
class VsqTensor:
    """A tensor quantized with two-level per-vector scales.

    Element ``k`` of the reduction axis belongs to vector ``v = k // vector``; it stands for
    ``x = codes * sq_v * gamma``.

    Members
    -------
    codes : numpy.ndarray of int64
        Element codes in ``[-qmax, qmax]``, zero-padded along ``axis`` to :attr:`padded_length`, a multiple of
        ``vector``: shape ``(N, padded_length)`` for weights (``axis=1``), ``(padded_length, M)`` for
        activations (``axis=0``).
    scales : numpy.ndarray of int64
        Per-vector scales, one per vector and channel: shape ``(N, padded_length // vector)`` or
        ``(padded_length // vector, M)``. Integer scales ``sq_v`` in ``[1, 2**scale_bits - 1]`` when
        ``scale_kind == "int"``; exponents ``e_v`` in ``[0, 2**scale_bits - 1]`` when ``"pow2"``.
    gamma : numpy.ndarray of float64
        Coarse scale, positive, broadcastable to ``scales``: ``(N, 1)`` or ``(1, M)`` per channel,
        ``(1, 1)`` per tensor.
    vector : int
        Vector length V.
    scale_bits : int
        Width S of a per-vector scale.
    scale_kind : str
        ``"int"`` or ``"pow2"``.
    axis : int
        Reduction axis: 1 for weights, 0 for activations.
    length : int
        Length K of the reduction axis before padding.
    """
    codes: np.ndarray
    scales: np.ndarray
    gamma: np.ndarray
    vector: int
    scale_bits: int
    scale_kind: str
    axis: int
    length: int

    @property
    def padded_length(self):
        """K rounded up to a multiple of ``vector``: ``ceil(K / V) * V``."""
        return self.codes.shape[self.axis]

    def integer_scales(self):
        """Integer per-vector scales ``sq_v``: ``scales`` itself, or ``2**e_v`` for ``"pow2"`` (int64)."""
        return self.scales if self.scale_kind == "int" else np.left_shift(1, self.scales)

    def dequantize(self):
        """The float tensor ``(codes * sq_v) * gamma``, unpadded to the original K (one float rounding)."""
        sq = np.repeat(_rows(self.integer_scales(), self.axis), self.vector, axis=1)
        rows = (_rows(self.codes, self.axis) * sq) * _rows(self.gamma, self.axis)
        return _rows(rows[:, :self.length], self.axis)


def _quantize_blocks(x, fmt, vector, scale_bits, axis, granularity, clip, scale_kind, clip_whole):
    """Two-level quantization of checked arguments; clips per vector, or over the whole tensor if ``clip_whole``."""
    rows = _rows(x, axis)
    channels, length = rows.shape
    padded = -(-length // vector) * vector
    blocks = np.zeros((channels, padded))
    blocks[:, :length] = rows
    blocks = blocks.reshape(channels, padded // vector, vector)

    s = np.broadcast_to(_clip(blocks, clip, fmt.qmax, None if clip_whole else 2) / fmt.qmax,
                        (*blocks.shape[:2], 1))
    top = np.max(s, axis=1 if granularity == "channel" else (0, 1), keepdims=True)
    top_scale = (1 << scale_bits) - 1
    if scale_kind == "int":
        gamma = np.where(top > 0, top / top_scale, 1.0)
        scales = np.clip(np.rint(s / gamma), 1, top_scale).astype(np.int64)
        sq = scales
    else:
        gamma = np.where(top > 0, top / 2.0 ** top_scale, 1.0)
        # ceil(log2(r)) exactly: r = m * 2**p with m in [0.5, 1) gives p - 1 when m == 0.5, else p.
        mantissa, exponent = np.frexp(s / gamma)
        scales = np.clip(np.where(mantissa == 0.5, exponent - 1, exponent), 0, top_scale).astype(np.int64)
        sq = np.left_shift(1, scales)
    codes = _round_clamp(blocks, sq * gamma, fmt.qmax)
    return VsqTensor(
        codes=_rows(codes.reshape(channels, padded), axis),
        scales=_rows(scales[..., 0], axis),
        gamma=_rows(gamma[..., 0], axis),
        vector=vector, scale_bits=scale_bits, scale_kind=scale_kind, axis=axis, length=length)


def _check_tensor(x, axis):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty 2-D array, not shape {x.shape}")
    if isinstance(axis, bool) or axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, not {axis!r}")
    return x


def quantize_vsq(x, fmt, vector, scale_bits, axis, granularity, clip="max", scale_kind="int"):
    """Two-level per-vector scaled quantization (VSQ).

    The reduction axis (length K) is zero-padded to ``ceil(K / V) * V`` and split into vectors of ``V``
    consecutive elements. With ``qmax`` of ``fmt`` and ``T = 2**S - 1``:

    1. per-vector clip ``c_v`` by ``clip`` over the V elements (padding zeros included) and float scale
       ``s_v = c_v / qmax``;
    2. coarse scale ``gamma`` per channel (``granularity="channel"``: row of W, column of A) or per tensor;
    3. per-vector integer scale ``sq_v``:

       * ``scale_kind="int"``: ``gamma = max_v(s_v) / T`` and ``sq_v = clamp(rint(s_v / gamma), 1, T)``, so the
         largest vector gets ``sq_v = T``. Rounding ``sq_v`` down can clip a vector's largest element by up to
         ``qmax * gamma / 2``;
       * ``scale_kind="pow2"``: ``gamma = max_v(s_v) / 2**T``, exponent
         ``e_v = clamp(ceil(log2(s_v / gamma)), 0, T)`` and ``sq_v = 2**e_v``, so the largest vector gets
         ``e_v = T``. The ceiling makes ``sq_v * gamma >= s_v``: no element is clipped beyond its clip value;

       where ``max_v(s_v) == 0`` (an all-zero channel or tensor) ``gamma = 1``;
    4. codes ``q = clamp(rint(x / (sq_v * gamma)), -qmax, qmax)``.

    Parameters
    ----------
    x : array_like
        2-D float tensor.
    fmt : ElementFormat
        Code format (INT8: qmax 127, INT4: qmax 7).
    vector : int
        Vector length V, positive.
    scale_bits : int
        Width S of the per-vector scale: 1 to ``MAX_SCALE_BITS[scale_kind]`` (8 for ``"int"``, 4 for
        ``"pow2"``).
    axis : int
        Reduction axis: 1 for weights W (N x K), 0 for activations A (K x M).
    granularity : str
        ``"channel"`` or ``"tensor"``: extent of ``gamma``.
    clip : str
        Per-vector clip: ``"max"`` (:func:`clip_max`), ``"percentile"`` (:func:`clip_percentile`, 99.99) or
        ``"mse"`` (:func:`clip_mse`).
    scale_kind : str
        ``"int"`` or ``"pow2"``.

    Returns
    -------
    VsqTensor

    Raises
    ------
    ValueError
        If an argument is out of its range; the message names it.
    TypeError
        If ``fmt`` is not an :class:`ElementFormat`.
    """
    x = _check_tensor(x, axis)
    _check_format(fmt)
    _check_vector_scales(vector, scale_bits, scale_kind)
    _check_choice("granularity", granularity, GRANULARITIES)
    _check_choice("clip", clip, CLIPS)
    return _quantize_blocks(x, fmt, int(vector), int(scale_bits), axis, granularity, clip, scale_kind,
                            clip_whole=False)


def quantize(x, fmt, scheme, axis, vector=None, scale_bits=None, clip="max", scale_kind="int"):
    """Quantize a 2-D tensor per tensor, per channel or per vector; all three return a :class:`VsqTensor`.

    * ``"per-tensor"``: one clip ``c`` over the whole tensor, codes ``clamp(rint(x / (c / qmax)), -qmax, qmax)``;
      stored as one vector per channel (``vector = K``), ``scale_bits = 1``, ``sq_v = 1``,
      ``gamma = c / qmax`` of shape ``(1, 1)``;
    * ``"per-channel"``: the same with one clip per channel, ``gamma`` per channel. This is exactly
      :func:`quantize_vsq` with ``vector = K``, ``scale_bits = 1``, ``granularity="channel"``;
    * ``"vector"``: :func:`quantize_vsq` with ``granularity="channel"``.

    Parameters
    ----------
    x, fmt, axis, clip
        As :func:`quantize_vsq`.
    scheme : str
        ``"per-tensor"``, ``"per-channel"`` or ``"vector"``.
    vector, scale_bits, scale_kind
        As :func:`quantize_vsq` for ``"vector"`` (required there); the other schemes have no per-vector
        scale and take ``None``, ``None`` and ``"int"``.

    Returns
    -------
    VsqTensor

    Raises
    ------
    ValueError
        If an argument is out of its range or does not apply to ``scheme``; the message names it.
    TypeError
        If ``fmt`` is not an :class:`ElementFormat`.
    """
    _check_choice("scheme", scheme, SCHEMES)
    if scheme == "vector":
        return quantize_vsq(x, fmt, vector, scale_bits, axis, "channel", clip, scale_kind)
    for name, value, default in (("vector", vector, None), ("scale_bits", scale_bits, None),
                                 ("scale_kind", scale_kind, "int")):
        if value != default:
            raise ValueError(f"{name} must be {default!r} for scheme {scheme!r}, not {value!r}")
    x = _check_tensor(x, axis)
    _check_format(fmt)
    _check_choice("clip", clip, CLIPS)
    whole = scheme == "per-tensor"
    return _quantize_blocks(x, fmt, x.shape[axis], 1, axis, "tensor" if whole else "channel", clip, "int",
                            clip_whole=whole)


def sqnr_db(ref, approx):
    """Signal-to-quantization-noise ratio ``10 * log10(sum(ref**2) / sum((ref - approx)**2))`` in dB.

    ``inf`` when ``approx`` equals ``ref``; ``-inf`` when ``ref`` is all zeros and ``approx`` is not.
    """
    ref = np.asarray(ref, dtype=np.float64)
    signal = float(np.sum(ref * ref))
    noise = float(np.sum((ref - approx) ** 2))
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def vsq_gemm_int(w, a):
    """Exact integer part of a VSQ matrix product, as the hardware accumulates it.

    ``Y_int[n, m] = sum_v (sum_{k in v} qw[n, k] * qa[k, m]) * sqw[n, v] * sqa[v, m]`` in int64, where
    ``sq`` are the integer scales (``2**e_v`` for pow2). Each V-element partial sum is multiplied by
    ``sqw * sqa`` before accumulation. Exact while ``K * qmax**2 * max(sqw) * max(sqa) < 2**63``, which
    :data:`MAX_SCALE_BITS` keeps true for every realistic K.

    Parameters
    ----------
    w : VsqTensor
        Weights, N x K, quantized along ``axis=1``.
    a : VsqTensor
        Activations, K x M, quantized along ``axis=0``, with the same ``vector`` and K.

    Returns
    -------
    numpy.ndarray of int64
        N x M.

    Raises
    ------
    ValueError
        If the operands are not weights and activations of the same K and vector length.
    """
    if w.axis != 1:
        raise ValueError(f"w must be quantized along axis 1 (weights, N x K), not axis {w.axis}")
    if a.axis != 0:
        raise ValueError(f"a must be quantized along axis 0 (activations, K x M), not axis {a.axis}")
    if (w.vector, w.length) != (a.vector, a.length):
        raise ValueError(f"a must have the vector length and K of w ({w.vector}, {w.length}), "
                         f"not ({a.vector}, {a.length})")
    vectors = w.padded_length // w.vector
    qw = w.codes.reshape(-1, vectors, w.vector).transpose(1, 0, 2)      # (K/V, N, V)
    qa = a.codes.reshape(vectors, a.vector, -1)                          # (K/V, V, M)
    partial = np.matmul(qw, qa)                                          # (K/V, N, M), exact
    sqw = w.integer_scales().T[:, :, None]                               # (K/V, N, 1)
    sqa = a.integer_scales()[:, None, :]                                 # (K/V, 1, M)
    return np.sum(partial * sqw * sqa, axis=0)


def vsq_gemm(w, a):
    """Float VSQ matrix product ``gamma_w * gamma_a * vsq_gemm_int(w, a)`` (N x M, float64)."""
    return vsq_gemm_int(w, a) * (w.gamma * a.gamma)
