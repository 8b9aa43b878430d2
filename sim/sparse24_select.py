"""Golden twins of :class:`qmac.hw.int_datapath.sparse24_select.Sparse24Select` and
:class:`qmac.hw.int_datapath.sparse_dot_product.SparseDotProduct`, and the beats that feed them from a :class:`Sparse24`.

A beat of V kept-weight lanes holds ``E = V * per_lane`` kept elements, ``E / 2`` groups, and so covers ``2E``
dense positions held in 2V dense activation lanes (see ``docs/sparse24.md``, "Hardware").
"""

import numpy as np

from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.sim.dot_product import dot_product
from qmac.sim.packing import pack_lanes, unpack_lanes

__all__ = ["sparse24_select", "sparse_dot_product", "sparse24_beats"]


def _kept_per_beat(lanes, mode):
    return lanes * ELEMENT_FORMATS[mode].per_lane


def sparse24_select(a, meta, mode):
    """Dense activation lanes ``a`` ``(..., 2V)`` and indices ``meta`` ``(..., 2V)`` -> the selected lanes
    ``(..., V)`` (uint8), packed as the kept weights; the leading dimensions of ``a`` and ``meta`` broadcast.

    Kept element ``e`` (``e < E``) is dense element ``4 * (e // 2) + meta[e]`` of ``a``; INT8 mode reads
    ``meta[..., :V]`` only. Any index 0..3 selects what it names, valid pair or not; others raise
    ``ValueError``.
    """
    a = np.asarray(a)
    kept = _kept_per_beat(a.shape[-1] // 2, mode)
    indices = np.asarray(meta, dtype=np.int64)[..., :kept]
    if indices.size and (indices.min() < 0 or indices.max() > 3):
        raise ValueError(f"2:4 indices must lie in 0..3, not [{indices.min()}, {indices.max()}]")
    positions = 4 * (np.arange(kept) // 2) + indices
    dense = unpack_lanes(a, mode)
    batch = np.broadcast_shapes(dense.shape[:-1], positions.shape[:-1])
    selected = np.take_along_axis(np.broadcast_to(dense, batch + dense.shape[-1:]),
                                  np.broadcast_to(positions, batch + (kept,)), axis=-1)
    return pack_lanes(selected, mode)


def sparse_dot_product(w, meta, a, mode):
    """Kept weight lanes ``w`` ``(..., V)``, ``meta`` and ``a`` ``(..., 2V)`` -> ``sum`` (int64, shape ``(...)``):
    ``sum_e w_e * a[4 * (e // 2) + meta[e]]``."""
    return dot_product(w, sparse24_select(a, meta, mode), mode)


def sparse24_beats(sp, a, lanes, mode):
    """The beats of :class:`SparseDotProduct` that compute ``decompress(sp) @ a``.

    Beat ``b`` of row ``r`` carries kept elements ``[b*E, (b+1)*E)`` of the row and dense positions
    ``[b*2E, (b+1)*2E)``, with ``E = lanes * per_lane``; so ``sparse_dot_product(w, meta, a_beats, mode)``
    summed over beats equals ``decompress(sp) @ a``.

    Parameters
    ----------
    sp : Sparse24
        N rows of integer codes in the mode's range, with K a multiple of ``2E`` (pad with
        ``pad_k(W, 2 * E)`` before compressing).
    a : array_like of int, shape (K,)
        Dense activation codes in the mode's range.
    lanes : int
        V.
    mode : str
        ``"int8"`` or ``"int4"``.

    Returns
    -------
    w : numpy.ndarray of uint8, shape (N, K / 2E, V)
        Kept weight lanes.
    meta : numpy.ndarray of uint8, shape (N, K / 2E, 2V)
        Indices; in INT8 mode entries ``V .. 2V-1`` are 0.
    a : numpy.ndarray of uint8, shape (K / 2E, 2V)
        Dense activation lanes.

    Raises
    ------
    ValueError
        If K is not a multiple of ``2E``, ``a`` does not have K elements, or a code is out of range.
    """
    kept = _kept_per_beat(lanes, mode)
    a = np.asarray(a)
    if sp.k % (2 * kept):
        raise ValueError(f"K = {sp.k} is not a multiple of the {2 * kept} dense positions of a {mode} beat "
                         f"of {lanes} lanes (zero-pad it with pad_k)")
    if a.shape != (sp.k,):
        raise ValueError(f"activations must have shape ({sp.k},), not {a.shape}")
    n, beats = sp.values.shape[0], sp.k // (2 * kept)
    meta = np.zeros((n, beats, 2 * lanes), np.uint8)
    meta[..., :kept] = sp.indices.reshape(n, beats, kept)
    return (pack_lanes(sp.values.reshape(n, beats, kept), mode), meta,
            pack_lanes(a.reshape(beats, 2 * kept), mode))
