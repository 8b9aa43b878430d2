"""Golden model of the LNS datapath (:class:`qmac.hw.log_dot_product.LogDotProduct`, the bucket
accumulators and :class:`qmac.hw.log_combine.LogCombine`), and its exact-arithmetic reference.

Every function takes the :class:`qmac.hw.log_sum.LogSum` that sizes the hardware (``q_min``, the
constants) and operand codes ``w`` and ``a`` of one shape ``(..., lanes)``, with an optional exponent
``scale`` that broadcasts against them (one per lane, or ``(..., 1)`` for one per beat).
"""

import numpy as np

from qmac.sim.log_format import decode
from qmac.sim.ops import NumpyOps

__all__ = ["products", "bucket_sums", "combine", "value", "reference", "error_bound", "gemm_buckets"]


def products(spec, w, a, scale=None):
    """Per product: ``(sign, kept, dropped, q', r)`` as the unit's first stage computes them."""
    fmt = spec.fmt
    w, a = np.asarray(w, np.int64), np.asarray(a, np.int64)
    scale = 0 if scale is None else np.asarray(scale, np.int64)
    sign, zero, t = fmt.product(w, a, scale)
    offset = t - (spec.q_min << fmt.frac_bits)
    q, r = fmt.split(offset, NumpyOps)
    return sign, ~zero & (offset >= 0), ~zero & (offset < 0), q, r


def _terms(spec, w, a, scale):
    """``(-1)**s * 2**q'`` of every kept product (0 for the others) and its bucket ``r``."""
    sign, kept, _, q, r = products(spec, w, a, scale)
    term = np.where(kept, np.where(sign == 1, -1, 1), 0).astype(np.int64) << np.where(kept, q, 0)
    return term, r


def bucket_sums(spec, w, a, scale=None):
    """``S[..., r]``: sum over the last axis (the lanes) of the kept products with fraction ``r``, shape
    ``(..., 2**F)`` (int64: LogSum formats are at most 64 bits in a core)."""
    term, r = _terms(spec, w, a, scale)
    in_bucket = r[..., None] == np.arange(spec.fmt.buckets)
    return np.where(in_bucket, term[..., None], 0).sum(axis=-2)


def combine(spec, acc):
    """``sum_r A_r * C_r`` over the last axis of the bucket accumulators ``acc`` (exact, int64)."""
    return (np.asarray(acc, np.int64) * np.asarray(spec.constants, np.int64)).sum(axis=-1)


def value(spec, result):
    """The real value of a combined result: ``result * 2**(q_min - P)`` (float64)."""
    return np.asarray(result, np.float64) * 2.0 ** spec.result_exponent


def reference(fmt, w, a, scale=None):
    """The exact dot product of the codes over the last axis, in float64:
    ``sum decode(w) * decode(a) * 2**(scale / 2**F)``. Each decoded value, product and partial sum is
    rounded to float64 (relative error below ``2**-52`` each)."""
    p = decode(fmt, w) * decode(fmt, a)
    if scale is not None:
        p = p * np.exp2(np.asarray(scale, np.float64) / fmt.buckets)
    return p.sum(axis=-1)


def error_bound(spec, w, a, scale=None):
    """Bound on ``|value(combine(...)) - exact|`` of the sums over the last axis, in exact arithmetic.

    ``value = 2**(q_min - P) * sum_r A_r * C_r`` while the kept products sum to
    ``2**q_min * sum_r A_r * 2**(r / 2**F)``; ``C_0 = 2**P`` exactly and ``|C_r - 2**(P + r/2**F)| < 1/2``,
    so the constants err by at most ``2**(q_min - P - 1) * sum_{r >= 1} |A_r|``. Each product dropped by
    ``q_floor`` has ``t < q_min * 2**F``, so a magnitude below ``2**q_min``.
    """
    acc = bucket_sums(spec, w, a, scale)
    dropped = products(spec, w, a, scale)[2].sum(axis=-1)
    return (np.abs(acc[..., 1:]).sum(axis=-1) * 2.0 ** (spec.result_exponent - 1)
            + dropped * 2.0 ** spec.q_min)


def _exact_windows(w, a, q_min, span):
    """Pairs of integer-exponent intervals ``((w_lo, w_hi), (a_lo, a_hi))`` that tile the part of the
    rectangle ``w x a`` with ``q_w + q_a >= q_min`` (the kept products), each pair spanning at most ``span``
    octaves: ``(w_hi - w_lo) + (a_hi - a_lo) <= span`` and ``w_lo + a_lo >= q_min``.

    A pair that is too wide, or that holds both kept and dropped products, is split at the middle of its
    wider interval; a pair of single exponents is always either wholly kept or wholly dropped.
    """
    (w_lo, w_hi), (a_lo, a_hi) = w, a
    if w_hi + a_hi < q_min:
        return []
    if (w_hi - w_lo) + (a_hi - a_lo) <= span and w_lo + a_lo >= q_min:
        return [(w, a)]
    if w_hi - w_lo >= a_hi - a_lo:
        mid = (w_lo + w_hi) // 2
        return (_exact_windows((w_lo, mid), a, q_min, span) + _exact_windows((mid + 1, w_hi), a, q_min, span))
    mid = (a_lo + a_hi) // 2
    return _exact_windows(w, (a_lo, mid), q_min, span) + _exact_windows(w, (mid + 1, a_hi), q_min, span)


def _powers(sign, exponent, inside, lo):
    """``(-1)**sign * 2**(exponent - lo)`` where ``inside``, else 0 (float64, exact)."""
    return np.where(inside, np.ldexp(np.where(sign == 1, -1.0, 1.0), np.where(inside, exponent - lo, 0)), 0.0)


def gemm_buckets(spec, W, A, w_exp=None, a_exp=None, block=1 << 22):
    """Bucket accumulators of ``W @ A`` in the log domain: ``(N, M, 2**F)`` int64, equal to
    ``bucket_sums(spec, W[:, None, :], A.T[None, :, :], w_exp[:, None, :] + a_exp.T[None, :, :])``.

    ``W`` (N x K) and ``A`` (K x M) are codes; ``w_exp`` (N x K) and ``a_exp`` (K x M) optional exponents
    added to every product that element takes part in (the per-vector scales, spread over K). The bucket
    sums must fit in int64, as they do for every :class:`~qmac.hw.log_sum.LogSum` of a core.

    Computed with float64 matrix products that are exact. Each non-zero weight has the exponent
    ``x_w = e_w + w_exp = 2**F * q_w + r_w`` and each non-zero activation ``x_a = e_a + a_exp``; their
    product has ``t = x_w + x_a``, so with ``u = (r_w + x_a) >> F`` and ``r = (r_w + x_a) mod 2**F`` it
    adds ``(-1)**s * 2**(q_w + u - q_min)`` to bucket ``r`` when ``q_w + u >= q_min``. Hence

        ``S[n, m, r] = sum_k sum_c [r_w[n, k] == c] * w_c[n, k] * a_{c, r}[k, m]``

    with ``w_c = (-1)**s_w * 2**q_w`` and ``a_{c, r} = (-1)**s_a * 2**u`` where ``(c + x_a) mod 2**F = r``
    (``u`` taken for ``r_w = c``): one matrix product of the weights spread over ``2**F`` copies of K
    (``N x 2**F K``, copy ``c`` holding the weights with ``r_w = c``) by the activations shifted by every
    ``c`` (``2**F K x 2**F M``). To keep it exact, :func:`_exact_windows` splits the exponents into
    windows ``q_w in [w_lo, w_hi]``, ``u in [a_lo, a_hi]``, each holding only kept products and spanning
    at most ``53 - K.bit_length()`` octaves, and the matrices hold ``2**(q_w - w_lo)`` and
    ``2**(u - a_lo)``. Every product of two entries is then an integer below ``2**span``, and at most K of
    them are non-zero per output (one ``c`` per ``k``), so every partial sum, in any order the BLAS adds
    them, is an integer of magnitude below ``2**53``: exact in float64. A window's sum, shifted left by
    ``w_lo + a_lo - q_min >= 0`` in int64, is its exact share of the buckets. Without ``q_floor`` and
    with exponents spanning at most ``53 - K.bit_length()`` octaves (LNS8 and LNS4, with or without
    scales of up to 4 bits, for K below ``2**12``) there is one window.

    ``block`` bounds the elements of each float64 operand: N and M are worked through in tiles of about
    ``block / (2**F K)`` rows and ``block / (4**F K)`` columns.
    """
    fmt = spec.fmt
    buckets = fmt.buckets
    W, A = np.asarray(W, np.int64), np.asarray(A, np.int64)
    (n, k), m = W.shape, A.shape[1]
    x_w = fmt.exponent(W) + (0 if w_exp is None else np.asarray(w_exp, np.int64))
    x_a = fmt.exponent(A) + (0 if a_exp is None else np.asarray(a_exp, np.int64))
    q_w, r_w = fmt.split(x_w, NumpyOps)
    # For each weight fraction c: u and the bucket r of every activation, (2**F, K, M).
    u, r = fmt.split(x_a[None] + np.arange(buckets)[:, None, None], NumpyOps)
    w_nz, a_nz = ~fmt.is_zero(W), ~fmt.is_zero(A)
    out = np.zeros((n, m, buckets), np.int64)
    if not w_nz.any() or not a_nz.any():
        return out
    a_nz = np.broadcast_to(a_nz, u.shape)
    windows = _exact_windows((int(q_w[w_nz].min()), int(q_w[w_nz].max())),
                             (int(u[a_nz].min()), int(u[a_nz].max())), spec.q_min, 53 - k.bit_length())
    spread = r_w[:, None, :] == np.arange(buckets)[:, None]                  # (N, 2**F, K)
    to_bucket = r[:, :, None, :] == np.arange(buckets)[:, None]             # (2**F, K, 2**F, M)
    rows, cols = max(1, block // (buckets * k)), max(1, block // (buckets * buckets * k))
    for m0 in range(0, m, cols):
        ms = slice(m0, min(m, m0 + cols))
        for (w_lo, w_hi), (a_lo, a_hi) in windows:
            a = _powers(fmt.sign(A[None, :, ms]), u[..., ms], a_nz[..., ms] & (u[..., ms] >= a_lo)
                        & (u[..., ms] <= a_hi), a_lo)
            a = np.where(to_bucket[..., ms], a[:, :, None, :], 0.0).reshape(buckets * k, -1)
            inside = w_nz & (q_w >= w_lo) & (q_w <= w_hi)
            for n0 in range(0, n, rows):
                ns = slice(n0, min(n, n0 + rows))
                w = _powers(fmt.sign(W[ns]), q_w[ns], inside[ns], w_lo)
                w = np.where(spread[ns], w[:, None, :], 0.0).reshape(ns.stop - n0, -1)
                s = (w @ a).astype(np.int64).reshape(ns.stop - n0, buckets, -1).transpose(0, 2, 1)
                out[ns, ms] += s << (w_lo + a_lo - spec.q_min)
    return out
