"""Golden model of the LNS datapath (:class:`qmac.hw.log_datapath.log_dot_product.LogDotProduct`, the bucket
accumulators and :class:`qmac.hw.log_datapath.log_combine.LogCombine`), and its exact-arithmetic reference.

Every function takes the :class:`qmac.hw.spec.log_sum.LogSum` that sizes the hardware (``q_min``, the
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


def gemm_buckets(spec, W, A, w_exp=None, a_exp=None, chunk=1 << 22):
    """Bucket accumulators of ``W @ A`` in the log domain: ``(N, M, 2**F)`` int64.

    ``W`` (N x K) and ``A`` (K x M) are codes; ``w_exp`` (N x K) and ``a_exp`` (K x M) optional exponents
    added to every product that element takes part in (the per-vector scales, spread over K). Works
    through K in blocks of about ``chunk`` products.
    """
    W, A = np.asarray(W, np.int64), np.asarray(A, np.int64)
    n, k = W.shape
    m = A.shape[1]
    out = np.zeros((n, m, spec.fmt.buckets), np.int64)
    step = max(1, chunk // max(1, n * m))
    for k0 in range(0, k, step):
        ks = slice(k0, min(k, k0 + step))
        w, a = W[:, ks][:, None, :], A[ks, :].T[None, :, :]      # (N, 1, kb), (1, M, kb)
        scale = None
        if w_exp is not None or a_exp is not None:
            scale = 0
            if w_exp is not None:
                scale = scale + np.asarray(w_exp, np.int64)[:, ks][:, None, :]
            if a_exp is not None:
                scale = scale + np.asarray(a_exp, np.int64)[ks, :].T[None, :, :]
        out += bucket_sums(spec, w, a, scale)
    return out
