"""Golden model of :class:`qmac.hw.log_dot_product.LogDotProduct`, and its exact-arithmetic reference.

Every function takes the unit itself (it is only read: widths, ``q_min`` and constants are its
properties) and one tile of operand codes, ``w`` and ``a`` of shape ``(beats, V)``, with an optional
per-beat ``scale`` of shape ``(beats,)``.
"""

import numpy as np

from qmac.sim.log_format import decode
from qmac.sim.ops import NumpyOps

__all__ = ["bucket_sums", "accumulators", "combine", "dot", "value", "reference", "error_bound"]


def _dtype(unit):
    # Every intermediate is bounded by the result; wider results need Python integers.
    return np.int64 if unit.result_format.bits <= 63 else object


def _lanes(unit, w, a, scale):
    """Per lane: ``(sign, kept, dropped, q', r)`` as the unit's first stage computes them."""
    fmt = unit.format
    w, a = np.asarray(w, np.int64), np.asarray(a, np.int64)
    scale = 0 if scale is None else np.asarray(scale, np.int64)[..., None]
    sign, zero, t = fmt.product(w, a, scale)
    offset = t - (unit.q_min << fmt.frac_bits)
    q, r = fmt.split(offset, NumpyOps)
    return sign, ~zero & (offset >= 0), ~zero & (offset < 0), q, r


def bucket_sums(unit, w, a, scale=None):
    """``S[b, r]``: sum over the lanes of beat ``b`` with fraction ``r`` of ``(-1)**s * 2**q'``
    (shape ``(beats, 2**F)``)."""
    sign, kept, _, q, r = _lanes(unit, w, a, scale)
    dtype = _dtype(unit)
    term = np.where(kept, np.where(sign == 1, -1, 1), 0).astype(dtype) << np.where(kept, q, 0).astype(dtype)
    in_bucket = r[..., None] == np.arange(unit.format.buckets)
    return np.where(in_bucket, term[..., None], 0).astype(dtype).sum(axis=-2)


def accumulators(unit, w, a, scale=None):
    """``A_r`` at the end of the tile (shape ``(2**F,)``)."""
    return bucket_sums(unit, w, a, scale).sum(axis=0)


def combine(unit, acc):
    """The unit's ``result``: ``sum_r A_r * C_r`` (exact integer)."""
    return np.sum(np.asarray(acc, dtype=_dtype(unit)) * np.asarray(unit.constants, dtype=_dtype(unit)),
                  axis=-1)


def dot(unit, w, a, scale=None):
    """The unit's ``result`` for one tile."""
    return combine(unit, accumulators(unit, w, a, scale))


def value(unit, result):
    """The real value of a ``result``: ``result * 2**(q_min - P)``."""
    return float(result) * 2.0 ** unit.result_exponent


def reference(fmt, w, a, scale=None):
    """The exact dot product of the codes, in float64: ``sum decode(w) * decode(a) * 2**(scale / 2**F)``.

    Each decoded value and product is rounded to float64 (relative error below ``2**-52`` per product),
    and so is each partial sum of the tile.
    """
    p = decode(fmt, w) * decode(fmt, a)
    if scale is not None:
        p = p * np.exp2(np.asarray(scale, np.float64) / fmt.buckets)[..., None]
    return float(p.sum())


def error_bound(unit, w, a, scale=None):
    """Bound on ``|value(dot(...)) - exact|`` for one tile, in exact arithmetic.

    ``value = 2**(q_min - P) * sum_r A_r * C_r`` while the kept products sum to
    ``2**q_min * sum_r A_r * 2**(r / 2**F)``; ``C_0 = 2**P`` exactly and ``|C_r - 2**(P + r/2**F)| < 1/2``,
    so the constants err by at most ``2**(q_min - P - 1) * sum_{r >= 1} |A_r|``. Each product dropped by
    ``q_floor`` has ``q < q_min``, so a magnitude below ``2**(q + 1) <= 2**q_min``.
    """
    acc = accumulators(unit, w, a, scale)
    dropped = int(_lanes(unit, w, a, scale)[2].sum())
    return (float(np.abs(acc[1:]).sum()) * 2.0 ** (unit.result_exponent - 1)
            + dropped * 2.0 ** unit.q_min)
