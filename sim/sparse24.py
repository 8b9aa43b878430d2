"""Host side of 2:4 structured sparsity: pruning, compression, metadata, and the sparse product.

Weights ``W`` are an N x K matrix; K (axis 1, the reduction dimension) is cut into groups of 4 consecutive
elements, group ``g`` of row ``r`` being ``W[r, 4*g : 4*g + 4]``. A matrix is 2:4 sparse when every group holds
at most 2 non-zeros. The compressed form keeps, per group, 2 values and their 2-bit positions in the group.
The bit-level spec (index choice for sparse groups, metadata nibbles, word packing) is ``docs/sparse24.md``.

Pipeline: ``prune_2_4`` -> ``compress`` -> ``metadata`` -> ``pack_metadata_words`` to the hardware, and
``unpack_metadata_words`` -> ``from_metadata`` -> ``decompress`` back.
"""

import math
import operator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Sparse24", "pad_k", "prune_2_4", "is_2_4", "compress", "decompress", "validate", "from_metadata",
    "metadata", "pack_metadata_words", "unpack_metadata_words", "pruning_error", "select_activations",
    "sparse_matmul",
]

#: Unsigned numpy type of each supported metadata word width.
_WORD_DTYPES = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}

#: ``_AHEAD_ON_TIE[i, j]``: on equal magnitude, position ``j`` ranks ahead of position ``i`` (lower index wins).
_AHEAD_ON_TIE = np.arange(4)[None, :] < np.arange(4)[:, None]


def _check_k(k):
    k = operator.index(k)
    if k < 0 or k % 4:
        raise ValueError(f"K must be a multiple of 4, not {k} (zero-pad it with pad_k)")
    return k


def _matrix(x, what, integer=False):
    x = np.asarray(x)
    if integer and not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{what} must be integers, not {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-D, not {x.ndim}-D")
    return x


def _weight_groups(W):
    """``W`` as an (N, K/4, 4) view of its groups, after checking it is a matrix with K a multiple of 4."""
    w = _matrix(W, "weights")
    n, k = w.shape
    return w.reshape(n, _check_k(k) // 4, 4)


def _raise_at_first(bad, message):
    """Raise ``ValueError(message(r, g))`` for the first ``(r, g)`` in row-major order where ``bad`` is true."""
    hits = np.argwhere(bad)
    if len(hits):
        raise ValueError(message(*hits[0]))


def _kept_mask(groups):
    """Mask of the two largest ``|w|`` of each group of ``groups`` (N, G, 4); ties go to the lower index.

    Each position's rank is the number of positions of its group that come before it in the order "larger
    ``|w|`` first, then lower index"; a strict total order, so the ranks of a group are 0..3 and the mask is
    ``rank < 2``, exactly two per group. Magnitudes are compared exactly in the input's own type.
    """
    magnitude = np.abs(groups)
    if groups.dtype.kind == "i":
        # abs() of the most negative integer wraps back to itself; read as unsigned it is the true magnitude.
        magnitude = magnitude.astype(np.dtype(f"u{groups.dtype.itemsize}"))
    elif magnitude.dtype.kind == "f" and np.isnan(magnitude).any():
        raise ValueError("weights must not contain NaN")
    other, this = magnitude[..., None, :], magnitude[..., :, None]
    ahead = (other > this) | ((other == this) & _AHEAD_ON_TIE)
    return ahead.sum(axis=-1) < 2


def pad_k(W, multiple=4):
    """Zero-pad ``W`` (N x K) along K up to the next multiple of ``multiple``.

    Returns
    -------
    numpy.ndarray, shape (N, K + (-K mod multiple)), the dtype of ``W``
        ``W`` followed by zero columns; ``W`` itself (not a copy) when K is already a multiple.
    """
    w = _matrix(W, "weights")
    multiple = operator.index(multiple)
    if multiple < 1:
        raise ValueError(f"padding multiple must be a positive integer, not {multiple}")
    padding = -w.shape[1] % multiple
    return np.pad(w, ((0, 0), (0, padding))) if padding else w


def prune_2_4(W):
    """Keep the two largest ``|w|`` of every group of 4 along K and set the other two to zero.

    Ties go to the lower index: the order is descending ``|w|``, then ascending position, and the first two
    positions of each group are kept (``[3, -3, 3, 1]`` keeps positions 0 and 1). Magnitudes are compared
    exactly in the input type (the most negative integer is the largest magnitude).

    Parameters
    ----------
    W : array_like, shape (N, K)
        Integer or float weights; K a multiple of 4.

    Returns
    -------
    numpy.ndarray, shape (N, K), the dtype of ``W``

    Raises
    ------
    ValueError
        If ``W`` is not 2-D, K is not a multiple of 4, or ``W`` contains NaN.
    """
    groups = _weight_groups(W)
    return np.where(_kept_mask(groups), groups, 0).reshape(groups.shape[0], -1)


def is_2_4(W):
    """Whether every group of 4 consecutive elements along K of ``W`` (N x K) holds at most 2 non-zeros."""
    return bool((np.count_nonzero(_weight_groups(W), axis=-1) <= 2).all())


@dataclass(frozen=True, eq=False)
class Sparse24:
    """2:4 sparse weights in compressed form.

    Group ``g`` of row ``r`` of the dense matrix is ``W[r, 4*g : 4*g + 4]``; its two kept weights are
    ``values[r, 2*g : 2*g + 2]``, at positions ``indices[r, 2*g : 2*g + 2]`` inside the group, so
    ``W[r, 4*g + indices[r, c]] == values[r, c]`` for ``c`` in ``2*g, 2*g + 1`` and the other two elements of
    the group are zero.

    Parameters
    ----------
    values : array_like, shape (N, K/2)
        Kept weights, any dtype. Copied.
    indices : array_like of int, shape (N, K/2)
        Positions 0..3, strictly ascending within each group. An (N, K/4) array of metadata nibbles is
        accepted too and decoded (see :func:`validate`).
    k : int
        Dense width K, a multiple of 4.

    Members
    -------
    values : numpy.ndarray, read-only, shape (N, K/2)
    indices : numpy.ndarray of uint8, read-only, shape (N, K/2)
    k : int

    Raises
    ------
    ValueError
        As :func:`validate`, or if ``values`` does not have the shape of the indices.
    """
    values: np.ndarray
    indices: np.ndarray
    k: int

    def __post_init__(self):
        indices = validate(self.indices, self.k)
        values = np.array(self.values)
        if values.shape != indices.shape:
            raise ValueError(f"2:4 values have shape {values.shape}, but their indices have shape {indices.shape}")
        for name, array in ("values", values), ("indices", indices):
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        object.__setattr__(self, "k", operator.index(self.k))


def compress(W):
    """Compress 2:4 sparse weights.

    Per group, the non-zero positions are kept; a group with fewer than 2 non-zeros is filled up with its
    lowest unused positions (holding zero values); the 2 positions are listed in ascending order. So an
    all-zero group gives indices (0, 1), a group whose only non-zero is at position 2 gives (0, 2), one whose
    only non-zero is at position 0 gives (0, 1).

    Parameters
    ----------
    W : array_like, shape (N, K)
        2:4 sparse weights (e.g. from :func:`prune_2_4`); K a multiple of 4.

    Returns
    -------
    Sparse24
        ``values`` in the dtype of ``W``, ``k = K``; :func:`decompress` gives back ``W`` exactly.

    Raises
    ------
    ValueError
        If ``W`` is not 2-D, K is not a multiple of 4, or a group has more than 2 non-zeros (the first such
        group in row-major order is named), or ``W`` contains NaN.
    """
    groups = _weight_groups(W)
    nonzeros = np.count_nonzero(groups, axis=-1)
    _raise_at_first(nonzeros > 2, lambda r, g:
                    f"weights are not 2:4 sparse: row {r} group {g} has {nonzeros[r, g]} non-zeros")
    # With at most 2 non-zeros per group, "two largest |w|, ties to the lower index" is exactly the rule above.
    kept = _kept_mask(groups)
    n, k = groups.shape[0], 4 * groups.shape[1]
    # Boolean indexing and nonzero() both walk in row-major order, so values and indices stay paired, ascending.
    return Sparse24(groups[kept].reshape(n, k // 2), np.nonzero(kept)[-1].reshape(n, k // 2), k)


def decompress(sp):
    """Dense N x K weights of ``sp``: ``values`` scattered to their positions, zeros elsewhere, dtype of values."""
    n, groups = sp.values.shape[0], sp.k // 4
    dense = np.zeros((n, groups, 4), sp.values.dtype)
    np.put_along_axis(dense, sp.indices.reshape(n, groups, 2), sp.values.reshape(n, groups, 2), axis=-1)
    return dense.reshape(n, sp.k)


def _check_nibbles(nibbles):
    _raise_at_first((nibbles < 0) | (nibbles > 15), lambda r, g:
                    f"malformed 2:4 metadata: row {r} group {g} has nibble {nibbles[r, g]}, not in 0..15")
    return nibbles


def validate(metadata, k):
    """Check 2:4 metadata for dense width ``k`` and return it as indices.

    The form is told by the number of columns: K/2 columns are indices (two per group, as
    :attr:`Sparse24.indices`), K/4 columns are nibbles ``idx0 | idx1 << 2`` (as :func:`metadata`). Checks, in
    this order, each naming the first offending group in row-major order: integer dtype; 2-D; column count;
    nibbles in 0..15 or indices in 0..3; the two indices of a group differ; they ascend.

    Parameters
    ----------
    metadata : array_like of int, shape (N, K/2) or (N, K/4)
    k : int
        Dense width K, a multiple of 4.

    Returns
    -------
    numpy.ndarray of uint8, shape (N, K/2)
        The indices.

    Raises
    ------
    TypeError
        If ``metadata`` is not of an integer dtype.
    ValueError
        With a one-line message starting ``malformed 2:4 metadata:`` for malformed metadata, or if K is not a
        multiple of 4.
    """
    k = _check_k(k)
    meta = _matrix(metadata, "2:4 metadata", integer=True)
    n, columns = meta.shape
    if columns == k // 2:
        pairs = meta.reshape(n, k // 4, 2)
    elif columns == k // 4:
        nibbles = _check_nibbles(meta)
        pairs = np.stack([nibbles & 3, nibbles >> 2], axis=-1)
    else:
        raise ValueError(f"malformed 2:4 metadata: rows of {columns} columns, but K = {k} needs {k // 2} "
                         f"(indices) or {k // 4} (nibbles)")

    def pair(r, g):
        return f"({pairs[r, g, 0]}, {pairs[r, g, 1]})"

    first, second = pairs[..., 0], pairs[..., 1]
    _raise_at_first(((pairs < 0) | (pairs > 3)).any(axis=-1), lambda r, g:
                    f"malformed 2:4 metadata: row {r} group {g} has indices {pair(r, g)}, not in 0..3")
    _raise_at_first(first == second, lambda r, g:
                    f"malformed 2:4 metadata: row {r} group {g} has equal indices {pair(r, g)}")
    _raise_at_first(first > second, lambda r, g:
                    f"malformed 2:4 metadata: row {r} group {g} has descending indices {pair(r, g)}")
    return pairs.reshape(n, k // 2).astype(np.uint8)


def from_metadata(values, nibbles, k):
    """:class:`Sparse24` from values (N x K/2) and metadata nibbles (N x K/4, as :func:`metadata`), validated."""
    return Sparse24(values, nibbles, k)


def metadata(sp):
    """Metadata nibble of every group: ``idx0 | idx1 << 2`` (uint8, N x K/4), as PyTorch's 2:4 tensors use."""
    pairs = sp.indices.reshape(sp.indices.shape[0], sp.k // 4, 2)
    return (pairs[..., 0] | pairs[..., 1] << 2).astype(np.uint8)


def _nibbles_per_word(word_bits):
    if word_bits not in _WORD_DTYPES:
        raise ValueError(f"metadata word width must be 8, 16, 32 or 64 bits, not {word_bits!r}")
    return word_bits // 4


def pack_metadata_words(nibbles, word_bits=16):
    """Pack each row's metadata nibbles little-endian into words of ``word_bits`` bits.

    With ``n = word_bits / 4`` nibbles per word, group ``j`` of a row occupies bits ``[4*(j mod n), 4*(j mod n)
    + 4)`` of word ``j // n`` of that row. The unused high nibbles of a row's last word are zero.

    Parameters
    ----------
    nibbles : array_like of int, shape (N, G)
        Values 0..15, e.g. from :func:`metadata`.
    word_bits : {8, 16, 32, 64}

    Returns
    -------
    numpy.ndarray of uint8/16/32/64 (``word_bits`` wide), shape (N, ceil(G / n))
    """
    per_word = _nibbles_per_word(word_bits)
    nib = _check_nibbles(_matrix(nibbles, "2:4 metadata nibbles", integer=True))
    n, groups = nib.shape
    words = -(-groups // per_word)
    padded = np.zeros((n, words * per_word), np.uint64)
    padded[:, :groups] = nib
    shifted = padded.reshape(n, words, per_word) << (4 * np.arange(per_word, dtype=np.uint64))
    return np.bitwise_or.reduce(shifted, axis=-1).astype(_WORD_DTYPES[word_bits])


def unpack_metadata_words(words, k, word_bits=16):
    """Inverse of :func:`pack_metadata_words` for dense width ``k``: the K/4 nibbles of each row (uint8, N x K/4).

    ``words`` (N x ceil(K/4 / n)) may be of any integer type; only their low ``word_bits`` bits are read, and
    the padding nibbles of each row's last word are ignored. The nibbles are not validated here; pass them to
    :func:`from_metadata` or :func:`validate`.
    """
    per_word = _nibbles_per_word(word_bits)
    groups = _check_k(k) // 4
    w = _matrix(words, "2:4 metadata words", integer=True)
    n, count = w.shape
    if count != -(-groups // per_word):
        raise ValueError(f"K = {k} packs into {-(-groups // per_word)} metadata word(s) of {word_bits} bits "
                         f"per row, not {count}")
    shifted = w.astype(np.uint64)[..., None] >> (4 * np.arange(per_word, dtype=np.uint64))
    return (shifted & 0xF).astype(np.uint8).reshape(n, count * per_word)[:, :groups]


def pruning_error(W):
    """Error that 2:4 pruning alone adds to ``W`` (N x K), computed in float64.

    Returns
    -------
    dict
        ``relative_l2``: ``||W - P|| / ||W||`` with ``P = prune_2_4(W)`` and ``||.||`` the Frobenius norm;
        ``sqnr_db``: ``20 * log10(||W|| / ||W - P||)``. When ``W == P`` (already 2:4 sparse, including all
        zero) they are 0.0 and ``inf``.
    """
    pruned = prune_2_4(W)
    w = np.asarray(W, dtype=np.float64)
    signal, error = np.linalg.norm(w), np.linalg.norm(w - pruned)
    if error == 0:
        return {"relative_l2": 0.0, "sqnr_db": math.inf}
    return {"relative_l2": float(error / signal), "sqnr_db": float(20 * np.log10(signal / error))}


def select_activations(sp, A):
    """The activation each kept weight multiplies: what the hardware's 4:1 multiplexers pick.

    Parameters
    ----------
    sp : Sparse24
    A : array_like, shape (K, M)
        Dense activations.

    Returns
    -------
    numpy.ndarray, shape (N, K/2, M), the dtype of ``A``
        ``out[r, c] = A[4 * (c // 2) + sp.indices[r, c]]``.
    """
    a = _matrix(A, "activations")
    if a.shape[0] != sp.k:
        raise ValueError(f"activations must have K = {sp.k} rows, not {a.shape[0]}")
    group_base = 4 * (np.arange(sp.k // 2) // 2)
    return a[group_base + sp.indices]


def sparse_matmul(sp, A):
    """Product of the compressed weights and dense activations ``A`` (K x M), as the sparse array computes it.

    ``out[r, m] = sum_c values[r, c] * select_activations(sp, A)[r, c, m]``, in int64: exact, and equal to
    ``decompress(sp) @ A``, while every partial sum fits in 64 bits (wraps beyond, as numpy int64 does).

    Raises
    ------
    TypeError
        If the values or the activations are not of an integer dtype.
    """
    a = np.asarray(A)
    if not (np.issubdtype(sp.values.dtype, np.integer) and np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"sparse_matmul needs integer weights and activations, "
                        f"not {sp.values.dtype} and {a.dtype}")
    selected = select_activations(sp, a).astype(np.int64)
    return (sp.values.astype(np.int64)[:, :, None] * selected).sum(axis=1)
