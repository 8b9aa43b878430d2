"""Golden model of the LNS datapath (:class:`qmac.hw.log_datapath.log_dot_product.LogDotProduct`, the bucket
accumulators and :class:`qmac.hw.log_datapath.log_combine.LogCombine`), and its exact-arithmetic reference.

Every function takes the :class:`qmac.hw.spec.log_sum.LogSum` that sizes the hardware (``q_min``, the
constants) and operand codes ``w`` and ``a`` of one shape ``(..., lanes)``, with an optional exponent
``scale`` that broadcasts against them (one per lane, or ``(..., 1)`` for one per beat).
"""

import numpy as np

from qmac.sim.log_format import decode
from qmac.sim.ops import NumpyOps

__all__ = ["products", "bucket_sums", "combine", "value", "reference", "error_bound", "gemm_buckets",
           "window_beat", "window_sums", "gemm_window"]


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
    """``(-1)**s * M * 2**q'`` of every kept product (0 for the others) and its bucket ``h``
    (:meth:`LogSum.term`)."""
    sign, kept, _, q, r = products(spec, w, a, scale)
    offset = (np.asarray(q, np.int64) << spec.fmt.frac_bits) + r
    h, q, mantissa = spec.term(offset, NumpyOps)
    term = np.where(kept, np.where(sign == 1, -1, 1) * np.asarray(mantissa, np.int64), 0) << np.where(kept, q, 0)
    return term, h


def bucket_sums(spec, w, a, scale=None):
    """``S[..., h]``: sum over the last axis (the lanes) of the kept product terms of bucket ``h``, shape
    ``(..., LogSum.buckets)`` (int64: LogSum formats are at most 64 bits in a core)."""
    term, h = _terms(spec, w, a, scale)
    in_bucket = h[..., None] == np.arange(spec.buckets)
    return np.where(in_bucket, term[..., None], 0).sum(axis=-2)


def window_beat(spec, w, a, scale=None):
    """``(S, e)`` of a windowed sum (``LogSum.window_bits``) over the last axis (one beat's lanes): the anchor
    ``e``, the largest ``q'`` of the kept products (0 if none), and the beat sum ``S`` of their signed
    terms (:meth:`LogSum.window_term`; int64)."""
    sign, kept, _, q, r = products(spec, w, a, scale)
    _, q, mantissa = spec.term((np.asarray(q, np.int64) << spec.fmt.frac_bits) + r, NumpyOps)
    return _window_beat_sum(spec, kept, sign == 1, q, np.asarray(mantissa, np.int64))


def _anchor(kept, q):
    """A beat's anchor over the last axis: the largest ``q'`` of its kept products, 0 if none."""
    return np.where(kept, q, 0).max(axis=-1)


def _window_beat_sum(spec, kept, negative, q, mantissa):
    """``(S, e)`` of one beat from its lanes' kept flags, signs, ``q'`` and mantissas (last axis):
    :meth:`LogSum.window_term` of each kept product at the beat's anchor, signed and summed."""
    anchor = _anchor(kept, q)
    magnitude = spec.window_term(mantissa, q, anchor[..., None], NumpyOps)
    return np.where(kept, np.where(negative, -magnitude, magnitude), 0).sum(axis=-1), anchor


def _window_accumulate(spec, beat_sums):
    """``(A, E)`` after the beat sums and anchors ``(S, e)`` of the iterable ``beat_sums``, first to last
    (:meth:`LogSum.window_accumulate` from ``(0, 0)``)."""
    acc = exponent = np.int64(0)
    for s, e in beat_sums:
        acc, exponent = spec.window_accumulate(acc, exponent, s, e, NumpyOps)
    return acc, exponent


def _beats(spec, w, a, scale):
    """The beats of ``spec.products`` lanes of ``w``, ``a`` and ``scale`` (broadcast), along the last axis
    (a shorter last beat is one whose missing lanes hold zero codes)."""
    w, a = np.asarray(w, np.int64), np.asarray(a, np.int64)
    scale = np.zeros((1,), np.int64) if scale is None else np.asarray(scale, np.int64)
    w, a, scale = np.broadcast_arrays(w, a, scale)
    lanes = spec.products
    return [(w[..., j:j + lanes], a[..., j:j + lanes], scale[..., j:j + lanes])
            for j in range(0, w.shape[-1], lanes)]


def window_sums(spec, w, a, scale=None):
    """``(A, E)``: the windowed accumulator (``LogSum.window_bits``) of the products over the last axis, in
    beats of ``spec.products`` lanes (:func:`_beats`), beat 0 first; its result word is
    ``LogSum.window_place(A, E)``."""
    return _window_accumulate(spec, (window_beat(spec, *beat) for beat in _beats(spec, w, a, scale)))


def gemm_window(spec, W, A, w_exp=None, a_exp=None, block=1 << 17):
    """Result words ``(N, M)`` of ``W @ A`` summed in a window (``LogSum.window_bits``): equal to
    ``window_place(*window_sums(spec, W[:, None, :], A.T[None, :, :], w_exp[:, None, :] + a_exp.T[None]))``,
    computed one beat of ``spec.products`` elements of K at a time over every (row, column) at once.
    ``W`` (N x K) and ``A`` (K x M) are codes (a shorter last beat as in :func:`_beats`); ``w_exp`` (N x K) and
    ``a_exp`` (K x M) optional exponents added to the products of each element. Rows are worked through in
    blocks of ``max(1, block // (M * spec.products))`` (each beat's arrays hold about ``block`` elements).

    Faster than :func:`window_sums` on a GEMM: each element's exponent ``x = e + exp``, zero flag and sign
    are found once, so a beat's products are ``t' = (x_w - q_min 2**F) + x_a`` and its mantissas a lookup
    of :attr:`LogSum.mantissas` by the fraction (``b = 0``); anchor, terms and accumulation are
    :func:`_window_beat_sum` and :meth:`LogSum.window_accumulate`, as in :func:`window_beat`."""
    fmt = spec.fmt
    W, A = np.asarray(W, np.int64), np.asarray(A, np.int64)
    x_w = fmt.exponent(W) - (spec.q_min << fmt.frac_bits) + (0 if w_exp is None else np.asarray(w_exp, np.int64))
    x_a = (fmt.exponent(A) + (0 if a_exp is None else np.asarray(a_exp, np.int64))).T
    live_w, live_a = ~fmt.is_zero(W), ~fmt.is_zero(A).T
    sign_w, sign_a = fmt.sign(W).astype(bool), fmt.sign(A).T.astype(bool)
    mantissas, lanes = np.asarray(spec.mantissas, np.int64), spec.products

    def beats(rows):
        for j in range(0, W.shape[1], lanes):
            ks = slice(j, j + lanes)
            offset = x_w[rows, None, ks] + x_a[None, :, ks]
            kept = live_w[rows, None, ks] & live_a[None, :, ks] & (offset >= 0)
            q, r = fmt.split(offset, NumpyOps)
            yield _window_beat_sum(spec, kept, sign_w[rows, None, ks] ^ sign_a[None, :, ks], q, mantissas[r])

    step = max(1, block // (A.shape[1] * lanes))
    return np.concatenate([spec.window_place(*_window_accumulate(spec, beats(slice(n, n + step))), NumpyOps)
                           for n in range(0, W.shape[0], step)]).reshape(W.shape[0], A.shape[1])


def combine(spec, acc):
    """``sum_h A_h * C_h`` over the last axis of the bucket accumulators ``acc`` (exact, int64)."""
    return (np.asarray(acc, np.int64) * np.asarray(spec.constants, np.int64)).sum(axis=-1)


def value(spec, result):
    """The real value of a combined result: ``result * 2**(q_min - P - Pm)`` (float64)."""
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

    ``value = 2**(q_min - P - Pm) * sum_h A_h * C_h``. With exact constants it would be
    ``2**(q_min - Pm) * sum_h A_h * 2**(h / 2**b)``; ``C_0 = 2**P`` exactly and
    ``|C_h - 2**(P + h/2**b)| < 1/2``, so the constants err by at most
    ``2**(q_min - P - Pm - 1) * sum_{h >= 1} |A_h|``. In the hybrid scheme each kept product
    ``±2**(q_min + q') * 2**(h/2**b) * 2**(l/2**F)`` enters as ``±2**(q_min + q' - Pm) * 2**(h/2**b) * M_l``, and
    ``|M_l - 2**(Pm + l/2**F)| < 1/2`` (0 for ``l = 0``), so it errs by less than
    ``2**(q_min + q' - Pm - 1) * 2**(h/2**b)`` when ``l > 0``: at most ``2**-(Pm+1)`` of its magnitude. Each
    product dropped by ``q_floor`` has ``t < q_min * 2**F``, so a magnitude below ``2**q_min``.
    Windowed (``window_bits``; the value is ``value(window_place(*window_sums(...)))``), the window's
    truncations add :func:`_window_error`.
    """
    acc = bucket_sums(spec, w, a, scale)
    sign, kept, dropped, q, r = products(spec, w, a, scale)
    window = _window_error(spec, w, a, scale) if spec.windowed else 0.0
    bound = (np.abs(acc[..., 1:]).sum(axis=-1) * 2.0 ** (spec.result_exponent - 1)
             + dropped.sum(axis=-1) * 2.0 ** spec.q_min)
    if spec.low_bits:
        h, low = r >> spec.low_bits, r & ((1 << spec.low_bits) - 1)
        each = np.ldexp(np.exp2(h / spec.buckets), np.asarray(q + spec.q_min - spec.mantissa_bits - 1, np.int64))
        bound = bound + np.where(kept & (low > 0), each, 0.0).sum(axis=-1)
    return bound + window


def _window_error(spec, w, a, scale):
    """The window's share of :func:`error_bound`, in exact arithmetic: with ``u = 2**(q_min - Pm)`` and ``g``
    the guard bits, beat ``j`` at anchor ``e_j`` truncates each kept product with ``e_j - q' > g`` by less
    than ``2**(e_j - g) u`` (the others are exact); from the second beat on, when ``e_j`` differs from the
    running exponent ``E_{j-1}``, the shifted one of accumulator and beat sum loses less than
    ``2**(E_j - g) u`` (``E_j = max(E_{j-1}, e_j)``). Placing the accumulator is exact."""
    unit, g = spec.q_min - spec.mantissa_bits - spec.guard_bits, spec.guard_bits
    bound, exponent = 0.0, None
    for w_j, a_j, scale_j in _beats(spec, w, a, scale):
        _, kept, _, q, _ = products(spec, w_j, a_j, scale_j)
        anchor = _anchor(kept, q)
        truncated = (kept & (anchor[..., None] - q > g)).sum(axis=-1)
        bound = bound + truncated * np.ldexp(1.0, anchor + unit)
        if exponent is not None:
            new = np.maximum(exponent, anchor)
            bound = bound + np.where(anchor != exponent, np.ldexp(1.0, new + unit), 0.0)
            exponent = new
        else:
            exponent = anchor
    return bound


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


def _powers(sign, exponent, keep):
    """``(-1)**sign * 2**exponent`` where ``keep``, else 0 (float64, exact)."""
    return np.where(keep, np.ldexp(np.where(sign == 1, -1.0, 1.0), np.where(keep, exponent, 0)), 0.0)


def _weight_matrix(fmt, W, x_w, window):
    """``(N, 2**F K)``: copy ``c`` of K holds ``(-1)**s_w * 2**(q_w - w_lo)`` of every non-zero weight with
    ``r_w = c`` and ``q_w`` in ``window = (w_lo, w_hi)``, 0 elsewhere."""
    q, r = fmt.split(x_w, NumpyOps)
    lo, hi = window
    value = _powers(fmt.sign(W), q - lo, ~fmt.is_zero(W) & (q >= lo) & (q <= hi))
    return np.where(r[:, None, :] == np.arange(fmt.buckets)[:, None], value[:, None, :], 0.0).reshape(len(W), -1)


def _activation_matrix(spec, A, x_a, window):
    """``(2**F K, 2**b M)``: block ``(c, h)`` holds ``(-1)**s_a * M_l * 2**(u - a_lo)`` of every non-zero
    activation whose product with a weight of fraction ``c`` has the fraction ``(c + x_a) mod 2**F =
    h * 2**(F - b) + l`` and ``u = (c + x_a) >> F`` in ``window = (a_lo, a_hi)``, 0 elsewhere (``M_l`` =
    :attr:`LogSum.mantissas`; 1 in the exact scheme, where ``b = F``)."""
    fmt = spec.fmt
    u, r = fmt.split(x_a + np.arange(fmt.buckets)[:, None, None], NumpyOps)      # (2**F, K, M)
    lo, hi = window
    mantissa = np.asarray(spec.mantissas, np.float64)[r & ((1 << spec.low_bits) - 1)]
    value = mantissa * _powers(fmt.sign(A), u - lo, ~fmt.is_zero(A) & (u >= lo) & (u <= hi))
    in_bucket = (r >> spec.low_bits)[:, :, None, :] == np.arange(spec.buckets)[:, None]   # (2**F, K, 2**b, M)
    return np.where(in_bucket, value[:, :, None, :], 0.0).reshape(fmt.buckets * len(A), -1)


def _packing(buckets, largest, k):
    """``(fields, chunk)``: ``fields`` bucket sums share an int64 word, each in a signed field of
    ``63 // fields`` bits, and the words are unpacked every ``chunk`` steps of K, so that a field's sum of
    ``chunk`` terms of magnitude at most ``largest`` stays below ``2**(63 // fields - 1)``. Chosen for the
    least work as measured on the bench's floored LNS8 and LNS4 rows: a lookup of ``words`` words costs
    about ``4 + words`` word operations, and unpacking adds about ``6 * fields`` per word every chunk."""
    costs = []
    for fields in range(1, buckets + 1):
        chunk = min(k, ((1 << (63 // fields - 1)) - 1) // largest)
        if chunk >= 1:
            costs.append(((4 + -(-buckets // fields)) * (1 + 6 * fields / chunk), fields, chunk))
    return min(costs)[1:]


def _floored_sums(spec, R, x_r, C, x_c, rows, block):
    """Bucket sums ``(P, Q, LogSum.buckets)`` over K of the products of the elements of ``R`` (P x K codes,
    exponents ``x_r``) where ``rows`` is true with every element of ``C`` (K x Q codes, exponents ``x_c``),
    the floor applied; elementwise in int64, exact.

    A product's offset ``t' = x_r + x_c - q_min * 2**F`` gives its term ``(-1)**s * M_l * 2**q'`` in bucket
    ``h`` (:meth:`LogSum.term`; none if ``t' < 0``). Both operands become indices into one table of terms,
    ``i_r = x_r - min x_r + D * s_r`` and ``i_c = x_c - min x_c + D * s_c`` (``D`` the number of values of
    ``x_r + x_c``; a zero code of ``C`` at ``3 * D``), so ``i_r + i_c`` names the offset and the number of
    negative operands (its parity is the sign), or a zero product. Each row of ``R`` looks its selected
    elements up against the matching rows of ``C`` (``|ks| x Q`` indices, at most about ``block`` looked-up
    words at a time) and sums them over K in chunks.

    Packing: bucket ``h`` has field ``j = h mod fields`` of word ``h // fields`` (:func:`_packing`), one
    table per word; an entry holds its term times ``2**(j * width)``, ``width = 63 // fields``. A chunk
    adds at most ``chunk`` terms to a field, so every field's sum ``S_j`` stays below ``2**(width - 1)`` in
    magnitude and the chunk's word, ``sum_j S_j * 2**(j * width)``, below ``2**63``: int64 never overflows.
    The fields are read back from the lowest, each as the sign-extended low ``width`` bits, the word then
    shifted down by ``width`` (exact), and the chunks' fields added in int64 (a bucket sum fits in int64).
    """
    fmt = spec.fmt
    (p, k), q = x_r.shape, x_c.shape[1]
    nz_r, nz_c = rows & ~fmt.is_zero(R), ~fmt.is_zero(C)
    if not nz_r.any() or not nz_c.any():
        return np.zeros((p, q, spec.buckets), np.int64)
    lo_r, lo_c = int(x_r[nz_r].min()), int(x_c[nz_c].min())
    span = int(x_r[nz_r].max()) - lo_r + int(x_c[nz_c].max()) - lo_c + 1
    itype = np.int16 if 5 * span < 1 << 15 else np.int32
    # Step K of both is a zero product: it pads a row's steps to whole chunks.
    i_r = np.where(nz_r, x_r - lo_r + span * fmt.sign(R), 0).astype(itype)             # (P, K)
    i_r = np.concatenate([i_r, np.zeros((p, 1), itype)], axis=1)
    i_c = np.where(nz_c, x_c - lo_c + span * fmt.sign(C), 3 * span).astype(itype)      # (K, Q)
    i_c = np.concatenate([i_c, np.full((1, q), 3 * span, itype)])
    offset = np.arange(span) + lo_r + lo_c - (spec.q_min << fmt.frac_bits)
    h, shift, mantissa = spec.term(np.maximum(offset, 0), NumpyOps)
    term = np.where(offset >= 0, np.asarray(mantissa, np.int64) << shift, 0)            # (span,)
    fields, chunk = _packing(spec.buckets, max(1, int(term.max())), k)
    width, words = 63 // fields, -(-spec.buckets // fields)
    word = np.zeros((words, span), np.int64)
    np.add.at(word, (h // fields, np.arange(span)), term << (h % fields * width))
    table = np.concatenate([word.T, -word.T, word.T, np.zeros((2 * span, words), np.int64)])
    out = np.zeros((p, q, fields, words), np.int64)
    for row in range(p):
        ks = np.flatnonzero(nz_r[row])
        if not ks.size:
            continue
        size = min(chunk, ks.size)
        ks = np.concatenate([ks, np.full(-ks.size % size, k)])
        slab = max(1, block // (size * q * words)) * size
        for part in (ks[s:s + slab] for s in range(0, ks.size, slab)):
            index = i_c[part] + i_r[row, part][:, None]                                # (|part|, Q)
            acc = table.take(index, axis=0).reshape(-1, size, q, words).sum(axis=1)    # (chunks, Q, words)
            for j in range(fields):
                field = ((acc + (1 << (width - 1))) & ((1 << width) - 1)) - (1 << (width - 1))
                out[row, :, j] += field.sum(axis=0)
                acc = (acc - field) >> width
    return out.transpose(0, 1, 3, 2).reshape(p, q, -1)[..., :spec.buckets]


def gemm_buckets(spec, W, A, w_exp=None, a_exp=None, block=1 << 23):
    """Bucket accumulators of ``W @ A`` in the log domain: ``(N, M, LogSum.buckets)`` int64, equal to
    ``bucket_sums(spec, W[:, None, :], A.T[None, :, :], w_exp[:, None, :] + a_exp.T[None, :, :])``.

    ``W`` (N x K) and ``A`` (K x M) are codes; ``w_exp`` (N x K) and ``a_exp`` (K x M) optional exponents
    added to every product that element takes part in (the per-vector scales, spread over K). The bucket
    sums must fit in int64, as they do for every :class:`~qmac.hw.log_sum.LogSum` of a core.

    Computed with float64 matrix products that are exact. A non-zero weight has the exponent
    ``x_w = e_w + w_exp = 2**F * q_w + r_w``, a non-zero activation ``x_a = e_a + a_exp``; their product
    has ``t = x_w + x_a``, so with ``u = (r_w + x_a) >> F`` and ``r = (r_w + x_a) mod 2**F = h * 2**(F - b) + l``
    it adds ``(-1)**s * M_l * 2**(q_w + u - q_min)`` to bucket ``h`` when ``q_w + u >= q_min`` (the exact
    scheme: ``b = F``, ``h = r``, ``M_l = 1``). So one matrix product gives every bucket: the weights spread
    over ``2**F`` copies of K (copy ``c`` holds those with ``r_w = c``; :func:`_weight_matrix`,
    ``N x 2**F K``) times the activations shifted by every ``c`` (row block ``c``, column block ``h`` of
    ``(c + x_a) mod 2**F`` holds ``(-1)**s_a * M_l * 2**u``; :func:`_activation_matrix`,
    ``2**F K x 2**b M``). A hybrid sum with ``b = 0`` thus costs ``2**F`` times the MACs of the GEMM, the
    exact scheme ``4**F`` times.

    Exactness: :func:`_exact_windows` splits the exponents into windows ``q_w in [w_lo, w_hi]``,
    ``u in [a_lo, a_hi]``, each holding only kept products (``w_lo + a_lo >= q_min``) and spanning
    ``(w_hi - w_lo) + (a_hi - a_lo) <= span = 53 - (K * max M_l).bit_length()`` octaves, and the matrices of
    a window hold ``2**(q_w - w_lo)`` and ``M_l * 2**(u - a_lo)``. Every product of two entries is then an
    integer of magnitude at most ``max M_l * 2**span`` or 0, and an output has at most K non-zero products
    (one copy ``c`` per ``k``), so every partial sum, in whatever order the BLAS adds them, is an integer
    below ``K * max M_l * 2**span <= 2**53`` in magnitude:
    exact in float64. Its int64 value shifted left by ``w_lo + a_lo - q_min`` is the window's exact share
    of the buckets. When every product is kept there is one window if the exponents allow it: LNS8 and
    LNS4, with or without 4-bit log scales, LNS8 F = 4 with 6-bit log scales, for K below ``2**12``.

    The floor (``t = x_w + x_a >= q_min * 2**F``, joint in both operands) is not a window: split along it,
    the kept products would need a window per exponent level that straddles it, each a full matrix
    product. So when some product may be dropped (``min x_w + min x_a < q_min * 2**F``), the elements of one
    side that may meet a partner below the floor, weights with ``q_w < q_min - min(x_a >> F)`` or
    activations with ``x_a >> F < q_min - min q_w`` (whichever side has fewer such elements times the other
    side's length), are taken out of the matrix product and summed elementwise in int64 with every element
    of the other side, the floor applied product by product (:func:`_floored_sums`, exact). With the
    elements left every product is kept (``q_w + u >= q_w + (x_a >> F) >= q_min``), and the windows test
    the same bound (``w_lo + a_lo >= q_min``), so the matrix products need no more windows than without a
    floor. Every product is in exactly one part.

    ``block`` bounds the elements of each float64 matrix: N and M are worked through in tiles of
    ``max(1, block // (2**F K))`` rows and ``max(1, block // (2**F 2**b K))`` columns; the elementwise part
    looks up about ``block`` int64 words at a time.
    """
    fmt = spec.fmt
    W, A = np.asarray(W, np.int64), np.asarray(A, np.int64)
    (n, k), m = W.shape, A.shape[1]
    x_w = fmt.exponent(W) + (0 if w_exp is None else np.asarray(w_exp, np.int64))
    x_a = fmt.exponent(A) + (0 if a_exp is None else np.asarray(a_exp, np.int64))
    out = np.zeros((n, m, spec.buckets), np.int64)
    nz_w, nz_a = ~fmt.is_zero(W), ~fmt.is_zero(A)
    if not nz_w.any() or not nz_a.any():
        return out
    if int(x_w[nz_w].min()) + int(x_a[nz_a].min()) < spec.q_min << fmt.frac_bits:
        # Some product is dropped. The elements of one side that may meet a partner below the floor go
        # elementwise; with the others every product is kept: q_w + u >= q_min for all of them.
        q_w, u_a = x_w >> fmt.frac_bits, x_a >> fmt.frac_bits
        low_w = nz_w & (q_w < spec.q_min - int(u_a[nz_a].min()))
        low_a = nz_a & (u_a < spec.q_min - int(q_w[nz_w].min()))
        if np.count_nonzero(low_w) * m < np.count_nonzero(low_a) * n:
            out += _floored_sums(spec, W, x_w, A, x_a, low_w, block)
            W, nz_w = np.where(low_w, 0, W), nz_w & ~low_w
        else:
            out += _floored_sums(spec, A.T, x_a.T, W.T, x_w.T, low_a.T, block).transpose(1, 0, 2)
            A, nz_a = np.where(low_a, 0, A), nz_a & ~low_a
        if not nz_w.any() or not nz_a.any():
            return out
    x_w_nz, x_a_nz = x_w[nz_w], x_a[nz_a]
    # q_w = x_w >> F; u = (r_w + x_a) >> F runs from min(x_a) >> F to (max(x_a) + 2**F - 1) >> F.
    w_range = tuple(int(q) for q in fmt.split(np.array([x_w_nz.min(), x_w_nz.max()]), NumpyOps)[0])
    a_range = tuple(int(u) for u in fmt.split(np.array([x_a_nz.min(), x_a_nz.max() + fmt.buckets - 1]),
                                              NumpyOps)[0])
    windows = _exact_windows(w_range, a_range, spec.q_min, 53 - (k * max(spec.mantissas)).bit_length())
    rows, cols = max(1, block // (fmt.buckets * k)), max(1, block // (fmt.buckets * spec.buckets * k))
    for m0 in range(0, m, cols):
        ms = slice(m0, min(m, m0 + cols))
        for w_window, a_window in windows:
            a = _activation_matrix(spec, A[:, ms], x_a[:, ms], a_window)
            for n0 in range(0, n, rows):
                ns = slice(n0, min(n, n0 + rows))
                s = _weight_matrix(fmt, W[ns], x_w[ns], w_window) @ a        # (rows, 2**b * cols), bucket-major
                s = s.astype(np.int64).reshape(ns.stop - n0, spec.buckets, -1).transpose(0, 2, 1)
                out[ns, ms] += s << (w_window[0] + a_window[0] - spec.q_min)
    return out
