"""Calibration-based post-training quantization on qmac's INT grids: static activation clips, the per-vector
scale chosen to minimise each vector's error, and GPTQ.

Host numerics only (the core is unchanged): each function returns a :class:`~qmac.sim.quantize.VsqTensor`
that the core runs like any other. Conventions are those of :mod:`qmac.sim.quantize`: weights ``W`` are
N x K and quantized along ``axis=1``, activations ``A`` are K x M and quantized along ``axis=0``; every
rounding is ``np.rint`` (half to even). The measured effect is in ``docs/models.md``.
"""

import numpy as np

from qmac.hw.spec.checks import check_int
from qmac.sim.quantize import (CLIPS, SCHEMES, VsqTensor, _check_choice, _check_format, _check_vector_scales,
                               _clip)

__all__ = ["calibrate_clip", "quantize_static", "best_vector_scales", "quantize_vsq_best", "smoothing_factors",
           "hadamard_rotation", "hessian", "gptq"]


def _vectors(rows, vector):
    """``rows`` (C x K) zero-padded to a multiple of ``vector`` and split: ``(C, K/V, V)``."""
    channels, length = rows.shape
    padded = -(-length // vector) * vector
    blocks = np.zeros((channels, padded))
    blocks[:, :length] = rows
    return blocks.reshape(channels, padded // vector, vector)


def calibrate_clip(samples, fmt, method="max", vector=None):
    """Static activation clip values from calibration activations.

    ``samples`` is a list of K x M activation matrices (one per calibration input), concatenated along M.
    Without ``vector`` one clip for the tensor: ``method`` (``max``, ``percentile`` 99.99 or ``mse``, OCTAV;
    :data:`qmac.sim.quantize.CLIPS`) over every calibration value. With ``vector`` V one clip per vector of V
    consecutive K positions (padded with zeros), over that vector's values in every column: shape ``(K/V,)``.

    Raises
    ------
    ValueError
        No samples, differing K, or a bad method or vector length; the message names it.
    """
    _check_format(fmt)
    _check_choice("method", method, CLIPS)
    if not samples:
        raise ValueError("samples must hold at least one K x M activation matrix, not none")
    ks = {np.shape(s)[0] for s in samples}
    if len(ks) != 1 or any(np.ndim(s) != 2 for s in samples):
        raise ValueError(f"samples must be 2-D with one K, not shapes {[np.shape(s) for s in samples]}")
    A = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples], axis=1)
    if vector is None:
        return float(_clip(A, method, fmt.qmax, None).item())
    check_int("vector", vector, 1, numpy=True)
    groups = _vectors(A.T, vector).transpose(1, 0, 2)          # (K/V, M, V)
    return _clip(groups.reshape(groups.shape[0], -1), method, fmt.qmax, 1)[:, 0]


def _scale_candidates(ratio, kind, top):
    """Per-vector scale fields to try for ``s_v / gamma = ratio``: the integer below and above (``int``,
    clamped to ``[1, top]``), or the exponents ``ceil(log2(ratio))`` and one less (``pow2``, ``[0, top]``)."""
    if kind == "int":
        return [np.clip(np.floor(ratio), 1, top), np.clip(np.ceil(ratio), 1, top)]
    mantissa, exponent = np.frexp(ratio)
    up = np.where(mantissa == 0.5, exponent - 1, exponent)
    return [np.clip(up - 1, 0, top), np.clip(up, 0, top)]


def best_vector_scales(blocks, ratio, gamma, qmax, kind, top):
    """Per-vector scale fields of minimal squared error.

    For each vector (last axis of ``blocks``) tries the two fields of :func:`_scale_candidates` around
    ``ratio = s_v / gamma`` (for ``int``: ``floor`` and ``ceil``, so round-to-nearest is one of them, and
    rounding up never clips the vector's largest element) and keeps the one whose codes
    ``clamp(rint(x / (sq * gamma)), -qmax, qmax)`` reproduce the vector with the smaller sum of squared errors
    (the lower field on ties).

    Parameters
    ----------
    blocks : numpy.ndarray
        ``(C, K/V, V)`` values.
    ratio : numpy.ndarray
        ``(C, K/V, 1)`` ideal scale ratios ``s_v / gamma``.
    gamma : numpy.ndarray
        Coarse scales broadcastable to ``(C, K/V, 1)``.
    qmax, kind, top
        Largest code, ``int`` or ``pow2``, largest field ``2**S - 1``.

    Returns
    -------
    numpy.ndarray of int64
        ``(C, K/V, 1)`` fields.
    """
    best = err = None
    for field in _scale_candidates(ratio, kind, top):
        sq = field if kind == "int" else np.exp2(field)
        step = sq * gamma
        e = np.sum((np.clip(np.rint(blocks / step), -qmax, qmax) * step - blocks) ** 2, axis=-1, keepdims=True)
        best = field if best is None else np.where(e < err, field, best)
        err = e if err is None else np.minimum(e, err)
    return best.astype(np.int64)


def _vsq_tensor(codes, fields, gamma, vector, scale_bits, kind, axis, length):
    """Assemble a :class:`VsqTensor` from channel-major ``(C, Kp)`` codes and ``(C, K/V)`` fields."""
    t = (lambda x: x) if axis == 1 else np.transpose
    return VsqTensor(codes=t(codes), scales=t(fields), gamma=t(gamma), vector=vector, scale_bits=scale_bits,
                     scale_kind=kind, axis=axis, length=length)


def quantize_vsq_best(x, fmt, vector, scale_bits, axis, clip="max", scale_kind="int"):
    """:func:`qmac.sim.quantize.quantize_vsq` (per-channel ``gamma``) with each vector's scale field chosen by
    :func:`best_vector_scales` instead of round-to-nearest (``int``) or round-up (``pow2``); ``gamma`` and the
    per-vector clips are those of ``quantize_vsq``."""
    _check_format(fmt)
    _check_vector_scales(vector, scale_bits, scale_kind)
    _check_choice("clip", clip, CLIPS)
    x = np.asarray(x, dtype=np.float64)
    rows = x if axis == 1 else x.T
    blocks = _vectors(rows, vector)
    s = _clip(blocks, clip, fmt.qmax, 2) / fmt.qmax
    top = (1 << scale_bits) - 1
    peak = np.max(s, axis=1, keepdims=True)
    gamma = np.where(peak > 0, peak / (top if scale_kind == "int" else 2.0 ** top), 1.0)
    fields = best_vector_scales(blocks, s / gamma, gamma, fmt.qmax, scale_kind, top)
    sq = fields if scale_kind == "int" else np.left_shift(1, fields)
    codes = np.clip(np.rint(blocks / (sq * gamma)), -fmt.qmax, fmt.qmax).astype(np.int64)
    return _vsq_tensor(codes.reshape(len(rows), -1), fields[..., 0], gamma[..., 0], vector, scale_bits,
                       scale_kind, axis, rows.shape[1])


def quantize_static(A, fmt, clip, vector=None, scale_bits=8, scale_kind="int"):
    """Activations ``A`` (K x M) with calibrated (static) clips.

    * ``clip`` a number: per tensor, ``gamma = clip / qmax`` (1 if ``clip == 0``), codes
      ``clamp(rint(A / gamma), -qmax, qmax)``; stored as :func:`qmac.sim.quantize.quantize` stores per-tensor
      tensors (``vector = K``, ``sq_v = 1``);
    * ``clip`` of shape ``(K/V,)`` from :func:`calibrate_clip` with ``vector``: two-level per-vector scales
      fixed for every column, ``s_v = clip_v / qmax``, ``gamma = max_v(s_v) / (2**S - 1)`` (int) or
      ``/ 2**(2**S - 1)`` (pow2) for the tensor, fields ``clamp(rint(s_v / gamma), 1, 2**S - 1)`` (int) or
      ``clamp(ceil(log2(s_v / gamma)), 0, 2**S - 1)`` (pow2), codes clamped as above.

    Raises
    ------
    ValueError
        A clip of the wrong shape, negative or not finite.
    """
    _check_format(fmt)
    A = np.asarray(A, dtype=np.float64)
    clip = np.asarray(clip, dtype=np.float64)
    if not (np.all(np.isfinite(clip)) and np.all(clip >= 0)):
        raise ValueError(f"clip must be finite and non-negative, not {clip!r}")
    K, M = A.shape
    if vector is None:
        if clip.ndim:
            raise ValueError(f"clip must be one number without vector, not shape {clip.shape}")
        gamma = np.full((1, 1), clip / fmt.qmax if clip > 0 else 1.0)
        codes = np.clip(np.rint(A / gamma), -fmt.qmax, fmt.qmax).astype(np.int64)
        return VsqTensor(codes=codes, scales=np.ones((1, M), dtype=np.int64), gamma=gamma, vector=K, scale_bits=1,
                         scale_kind="int", axis=0, length=K)
    _check_vector_scales(vector, scale_bits, scale_kind)
    groups = -(-K // vector)
    if clip.shape != (groups,):
        raise ValueError(f"clip must have shape ({groups},) for K = {K}, vector {vector}, not {clip.shape}")
    top = (1 << scale_bits) - 1
    s = clip / fmt.qmax
    peak = s.max()
    gamma = peak / (top if scale_kind == "int" else 2.0 ** top) if peak > 0 else 1.0
    if scale_kind == "int":
        fields = np.clip(np.rint(s / gamma), 1, top).astype(np.int64)
        sq = fields
    else:
        fields = _scale_candidates(s / gamma, "pow2", top)[1].astype(np.int64)
        sq = np.left_shift(1, fields)
    blocks = _vectors(A.T, vector)                              # (M, K/V, V)
    codes = np.clip(np.rint(blocks / (sq[None, :, None] * gamma)), -fmt.qmax, fmt.qmax).astype(np.int64)
    return VsqTensor(codes=codes.reshape(M, -1).T, scales=np.tile(fields[:, None], (1, M)),
                     gamma=np.full((1, 1), gamma), vector=vector, scale_bits=scale_bits, scale_kind=scale_kind,
                     axis=0, length=K)


def smoothing_factors(samples, W, alpha=0.5):
    """SmoothQuant's per-input-channel factors (Xiao et al., ICML 2023): ``s_j = max|X_j|**alpha /
    max|W_j|**(1 - alpha)``.

    ``X_j`` is row j of the calibration activations (``samples``: K x M matrices, concatenated along M) and
    ``W_j`` column j of the weights ``W`` (N x K). Then ``(W * s) @ (X / s[:, None]) == W @ X`` in exact
    arithmetic while the activations' per-channel range is pulled towards the weights': ``alpha`` = 0 leaves
    activations alone up to the weights' range, 1 moves all of it into the weights. A channel whose
    activations or weights are all zero gets ``s_j = 1``.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` float64 factors, positive and finite.

    Raises
    ------
    ValueError
        No samples, a K that differs from the weights', or ``alpha`` outside [0, 1]; the message names it.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number from 0 to 1, not {alpha!r}")
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (N x K), not shape {W.shape}")
    if not samples:
        raise ValueError("samples must hold at least one K x M activation matrix, not none")
    if any(np.ndim(x) != 2 or np.shape(x)[0] != W.shape[1] for x in samples):
        raise ValueError(f"samples must be K x M with K = {W.shape[1]} (the weights' columns), not shapes "
                         f"{[np.shape(x) for x in samples]}")
    a = np.max([np.max(np.abs(np.asarray(x, dtype=np.float64)), axis=1) for x in samples], axis=0)
    w = np.max(np.abs(W), axis=0)
    live = (a > 0) & (w > 0)
    s = np.ones(W.shape[1])
    s[live] = a[live] ** alpha / w[live] ** (1 - alpha)
    return s


def hadamard_rotation(k, block=None):
    """An orthonormal K x K rotation for the reduction axis (QuaRot, Ashkboos et al. 2024): block-diagonal,
    each block the Sylvester Hadamard matrix of size ``b`` divided by ``sqrt(b)``, ``b`` the largest power of
    two dividing ``k`` (at most ``block`` if given). ``(W @ R) @ (R.T @ A) == W @ A`` in exact arithmetic;
    each rotated element mixes ``b`` originals, so an outlier channel is spread over its block.

    Raises
    ------
    ValueError
        ``k`` or ``block`` not a positive integer.
    """
    check_int("k", k, 1, numpy=True)
    b = k & -k
    if block is not None:
        check_int("block", block, 1, numpy=True)
        while b > block:
            b //= 2
    H = np.ones((1, 1))
    while len(H) < b:
        H = np.block([[H, H], [H, -H]])
    return np.kron(np.eye(k // b), H / np.sqrt(b))


def hessian(samples):
    """GPTQ's layer Hessian ``H = 2 / n * sum X X^T`` (K x K, float64) over calibration activation matrices
    ``X`` (K x M each), ``n`` the total number of columns."""
    if not samples:
        raise ValueError("samples must hold at least one K x M activation matrix, not none")
    X = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples], axis=1)
    return 2.0 / X.shape[1] * (X @ X.T)


def gptq(W, H, fmt, scheme, vector=None, scale_bits=None, clip="max", scale_kind="int", block=128, damp=0.01,
         keep=None):
    """GPTQ (Frantar et al., ICLR 2023) on qmac's INT grids.

    Columns of ``W`` (N x K) are quantized one by one along K; each column's rounding error ``e`` is spread
    over the columns not yet quantized through the upper Cholesky factor ``U`` of ``H^-1`` (``H^-1 = U^T U``):
    ``W[:, j] -= e / U[i, i] * U[i, j]`` for ``j > i``, applied at once inside a block of ``block`` columns
    and lazily (one matrix product) to the columns after it. ``H`` is damped first,
    ``H + damp * mean(diag H) * I``; a column with ``H[i, i] == 0`` (an input that is always zero) is set to
    zero and its diagonal to 1.

    Grids:

    * ``"per-tensor"`` / ``"per-channel"``: ``gamma`` from ``clip`` over the original ``W`` (tensor or row),
      as :func:`qmac.sim.quantize.quantize`;
    * ``"vector"``: ``gamma`` per row from the original ``W`` as :func:`qmac.sim.quantize.quantize_vsq`; each
      vector's field is fixed when its first column is reached, from the updated weights of the vector
      (clip by ``clip``, field by :func:`best_vector_scales`). ``block`` is rounded up to a multiple of V.

    ``keep`` (N x K bool, e.g. a 2:4 mask) marks the weights that may be non-zero; the others are quantized to 0
    and their error fed forward like any other.

    Parameters
    ----------
    W : array_like
        N x K float weights.
    H : array_like
        K x K Hessian (:func:`hessian`).
    fmt : ElementFormat
    scheme : str
        One of :data:`qmac.sim.quantize.SCHEMES`.
    vector, scale_bits, scale_kind, clip
        As :func:`qmac.sim.quantize.quantize`.
    block : int
        Columns per lazy batch.
    damp : float
        Relative dampening, positive.
    keep : array_like of bool or None
        Weights allowed to be non-zero.

    Returns
    -------
    VsqTensor
        Along ``axis=1``, stored as :func:`qmac.sim.quantize.quantize` stores the same scheme.
    """
    _check_format(fmt)
    _check_choice("scheme", scheme, SCHEMES)
    _check_choice("clip", clip, CLIPS)
    check_int("block", block, 1, numpy=True)
    if not (isinstance(damp, (int, float)) and damp > 0):
        raise ValueError(f"damp must be a positive number, not {damp!r}")
    W = np.array(W, dtype=np.float64)
    if W.ndim != 2 or W.size == 0:
        raise ValueError(f"W must be a non-empty 2-D array, not shape {W.shape}")
    N, K = W.shape
    H = np.array(H, dtype=np.float64)
    if H.shape != (K, K):
        raise ValueError(f"H must be {K} x {K} for K = {K}, not shape {H.shape}")
    if scheme == "vector":
        _check_vector_scales(vector, scale_bits, scale_kind)
        V, top = int(vector), (1 << scale_bits) - 1
    else:
        V, top, scale_kind, scale_bits = K, 1, "int", 1
    Kp = -(-K // V) * V
    Wp, Hp = np.zeros((N, Kp)), np.zeros((Kp, Kp))
    Wp[:, :K], Hp[:K, :K] = W, H
    mask = np.ones((N, Kp), dtype=bool)
    if keep is not None:
        mask[:, :K] = np.asarray(keep, dtype=bool)
    dead = np.diag(Hp) == 0
    Hp[dead, dead] = 1.0
    Wp[:, dead] = 0.0
    Wp[~mask] = 0.0
    Hp += damp * np.mean(np.diag(Hp)) * np.eye(Kp)
    U = np.linalg.cholesky(np.linalg.inv(Hp)).T

    qmax = fmt.qmax
    if scheme == "vector":
        peak = np.max(_clip(_vectors(Wp, V), clip, qmax, 2) / qmax, axis=1)                  # (N, 1)
        gamma = np.where(peak > 0, peak / (top if scale_kind == "int" else 2.0 ** top), 1.0)
    else:
        c = _clip(Wp, clip, qmax, None if scheme == "per-tensor" else 1)
        gamma = np.broadcast_to(np.where(c > 0, c / qmax, 1.0), (N, 1))
    fields = np.ones((N, Kp // V), dtype=np.int64)
    codes = np.zeros((N, Kp), dtype=np.int64)
    step = gamma[:, 0]
    block = -(-block // V) * V if scheme == "vector" else block
    for i1 in range(0, Kp, block):
        i2 = min(i1 + block, Kp)
        W1, err = Wp[:, i1:i2].copy(), np.zeros((N, i2 - i1))
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if scheme == "vector" and col % V == 0:
                vec = W1[:, None, i:i + V]
                ratio = _clip(vec, clip, qmax, 2) / qmax / gamma[:, :, None]
                f = best_vector_scales(vec, ratio, gamma[:, :, None], qmax, scale_kind, top)[:, 0, 0]
                fields[:, col // V] = f
                step = (f if scale_kind == "int" else np.exp2(f)) * gamma[:, 0]
            w = W1[:, i]
            q = np.where(mask[:, col], np.clip(np.rint(w / step), -qmax, qmax), 0)
            codes[:, col] = q
            e = (w - q * step) / U1[i, i]
            W1[:, i:] -= e[:, None] * U1[i, i:][None, :]
            err[:, i] = e
        Wp[:, i2:] -= err @ U[i1:i2, i2:]
    if scheme != "vector":
        return VsqTensor(codes=codes, scales=fields, gamma=gamma[:1] if scheme == "per-tensor" else gamma.copy(),
                         vector=K, scale_bits=1, scale_kind="int", axis=1, length=K)
    return _vsq_tensor(codes, fields, gamma, V, scale_bits, scale_kind, 1, K)
