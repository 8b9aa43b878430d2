"""PyTorch's semi-structured (2:4) sparse representation of int8 matrices, to and from :class:`Sparse24`.

PyTorch's ``torch.sparse._semi_structured_conversions.sparse_semi_structured_from_dense_cutlass(dense)`` turns an
int8 N x K matrix into ``(values, meta)``: ``values`` (int8, N x K/2) holds two entries per group of 4 along K,
``meta`` (int32, N x K/32) their 2-bit positions, reordered for CUTLASS's sparse tensor-core GEMM.
``docs/sparse24.md`` ("PyTorch's semi-structured tensors") states the layout bit by bit.
"""

import numpy as np

from qmac.sim.sparse24 import from_metadata, is_2_4, pack_metadata_words, unpack_metadata_words

__all__ = ["TORCH_NIBBLE", "to_torch", "from_torch", "meta_order"]

#: PyTorch's metadata nibble ``idx0 | idx1 << 2`` for each non-zero mask of a group (bit ``i`` set when position
#: ``i`` is non-zero), for masks of at most two non-zeros. Two non-zeros: their positions. Fewer, the fill rule
#: of PyTorch's encoder: none, only 2 or only 3 -> (2, 3); only 1 -> (1, 2); only 0 -> (0, 2).
TORCH_NIBBLE = {0b0011: 0b0100, 0b0101: 0b1000, 0b0110: 0b1001, 0b1001: 0b1100, 0b1010: 0b1101, 0b1100: 0b1110,
                0b0000: 0b1110, 0b1000: 0b1110, 0b0100: 0b1110, 0b0010: 0b1001, 0b0001: 0b1000}

_GROUPS_PER_WORD = 8  # int32 metadata: 8 nibbles per word


def _check_shape(n, k):
    if n % 16 or n < 16:
        raise ValueError(f"N must be a positive multiple of 16 for PyTorch's int8 layout, not {n}")
    if k % 64 or k < 64:
        raise ValueError(f"K must be a positive multiple of 64 for PyTorch's int8 layout, not {k}")


def meta_order(n, cols):
    """Where each word of the row-major N x ``cols`` metadata matrix goes in PyTorch's reordered ``meta``: flat
    offsets, shape (N, cols), a permutation of ``range(N * cols)``.

    CUTLASS's ``reorder_meta`` for int32 metadata (``_calculate_meta_reordering_scatter_offsets``): row ``r``
    goes to row ``16 (r // 16) + 2 (r % 8) + (r % 16) // 8``; then in each 2 x 2 block of (row, column) the
    off-diagonal words swap (an even destination row with an odd column moves down a row and left a column,
    an odd row with an even column up and right); the result is stored ``ColumnMajorInterleaved<2>``:
    offset ``(c // 2) * 2N + 2 row + c % 2``.
    """
    rows, c = np.meshgrid(np.arange(n), np.arange(cols), indexing="ij")
    r = rows // 16 * 16 + (rows % 8) * 2 + (rows % 16) // 8
    swap = ((r % 2 == 0) & (c % 2 == 1)).astype(np.int64) - ((r % 2 == 1) & (c % 2 == 0))
    r, c = r + swap, c - swap
    return (c // 2) * 2 * n + 2 * r + c % 2


def to_torch(W):
    """A 2:4 sparse int8 matrix as PyTorch's ``sparse_semi_structured_from_dense_cutlass`` returns it.

    Parameters
    ----------
    W : array_like of int, shape (N, K)
        INT8 weights, at most two non-zeros per group of 4 along K; N a multiple of 16, K of 64.

    Returns
    -------
    values : ndarray of int8, (N, K/2)
        Per group, the entries at the nibble's two positions (zeros where the fill rule picked them).
    meta : ndarray of int32, (N, K/32)
        The nibbles (:data:`TORCH_NIBBLE`), 8 per word little-endian, words reordered by :func:`meta_order`.

    Raises
    ------
    ValueError
        A shape or value is out of range, or a group holds more than two non-zeros.
    """
    w = np.asarray(W)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise ValueError(f"weights must be a 2-D integer matrix, not {w.ndim}-D {w.dtype}")
    n, k = w.shape
    _check_shape(n, k)
    if w.size and not (-128 <= w.min() and w.max() <= 127):
        raise ValueError(f"weights must be INT8 codes in [-128, 127], not {w.min()}..{w.max()}")
    if not is_2_4(w):
        raise ValueError("weights are not 2:4 sparse: some group of 4 along K has more than 2 non-zeros")
    groups = w.reshape(n, k // 4, 4)
    mask = ((groups != 0) * (1 << np.arange(4))).sum(axis=-1)
    table = np.zeros(16, dtype=np.int64)
    for m, nibble in TORCH_NIBBLE.items():
        table[m] = nibble
    nibbles = table[mask]
    idx = np.stack([nibbles & 3, nibbles >> 2], axis=-1)
    values = np.take_along_axis(groups, idx, axis=-1).reshape(n, k // 2).astype(np.int8)
    words = pack_metadata_words(nibbles, 32).astype(np.uint32)
    meta = np.empty(n * words.shape[1], dtype=np.uint32)
    meta[meta_order(n, words.shape[1]).ravel()] = words.ravel()
    return values, meta.view(np.int32).reshape(words.shape)


def from_torch(values, meta, shape):
    """PyTorch's ``(values, meta)`` of an int8 N x K matrix as a :class:`Sparse24` (exactly PyTorch's choice of
    positions, fill included).

    Parameters
    ----------
    values : array_like of int, (N, K/2)
    meta : array_like of int, (N, K/32)
        int32 words (any integer dtype holding the same 32 bits).
    shape : (int, int)
        ``(N, K)``.

    Raises
    ------
    ValueError
        A shape or value is out of range, or a nibble is not two ascending positions.
    """
    n, k = (int(d) for d in shape)
    _check_shape(n, k)
    values = np.asarray(values)
    meta = np.asarray(meta)
    if values.shape != (n, k // 2):
        raise ValueError(f"values must have shape ({n}, {k // 2}), not {values.shape}")
    if meta.shape != (n, k // 32):
        raise ValueError(f"meta must have shape ({n}, {k // 32}), not {meta.shape}")
    if not np.issubdtype(values.dtype, np.integer) or values.size and not (-128 <= values.min() and values.max() <= 127):
        raise ValueError("values must be INT8 codes in [-128, 127]")
    words = (meta.astype(np.int64) & 0xFFFFFFFF).ravel()[meta_order(n, k // 32).ravel()].reshape(n, k // 32)
    return from_metadata(values.astype(np.int64), unpack_metadata_words(words.astype(np.uint32), k, 32), k)

