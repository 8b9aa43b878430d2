import itertools
import math

import numpy as np
import pytest

from qmac.sim.sparse24 import (
    Sparse24, compress, decompress, from_metadata, is_2_4, metadata, pack_metadata_words, pad_k, prune_2_4,
    pruning_error, select_activations, sparse_matmul, unpack_metadata_words, validate,
)

#: The six ascending pairs of distinct positions in a group of 4.
PAIRS = list(itertools.combinations(range(4), 2))


def random_weights(dtype, shape=(16, 64), seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def brute_force_prune(W):
    """Plain loop: per group, sort positions by (descending |w|, ascending index) and keep the first two."""
    out = np.zeros_like(W)
    for r in range(W.shape[0]):
        for start in range(0, W.shape[1], 4):
            group = [W[r, start + i].item() for i in range(4)]
            for i in sorted(range(4), key=lambda i: (-abs(group[i]), i))[:2]:
                out[r, start + i] = group[i]
    return out


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.float64])
def test_round_trip(dtype):
    pruned = prune_2_4(random_weights(dtype))
    assert pruned.dtype == dtype
    assert is_2_4(pruned)
    sp = compress(pruned)
    assert sp.values.dtype == dtype and sp.values.shape == (16, 32) and sp.indices.shape == (16, 32)
    assert sp.indices.dtype == np.uint8 and sp.k == 64
    np.testing.assert_array_equal(decompress(sp), pruned)


@pytest.mark.parametrize("W", [
    random_weights(np.int8),
    random_weights(np.int8, seed=1) % 3 - 1,                # few distinct magnitudes: many ties
    random_weights(np.float32, seed=2),
    np.round(random_weights(np.float64, seed=3)),          # ties between equal floats
    np.array([[-128, 127, -127, -128]], np.int8),          # abs(-128) overflows int8
])
def test_prune_matches_brute_force(W):
    np.testing.assert_array_equal(prune_2_4(W), brute_force_prune(W))


@pytest.mark.parametrize("group, kept", [
    ([3, -3, 3, 1], [3, -3, 0, 0]),
    ([2, 2, 2, 2], [2, 2, 0, 0]),
    ([1, -5, 5, 1], [0, -5, 5, 0]),
    ([1, 0, 1, 1], [1, 0, 1, 0]),
    ([0, 0, 0, 0], [0, 0, 0, 0]),
    ([127, -128, 127, 0], [127, -128, 0, 0]),
])
def test_prune_ties_go_to_lower_index(group, kept):
    assert prune_2_4(np.array([group], np.int8)).tolist() == [kept]


def test_all_six_index_pairs():
    W = np.zeros((1, 4 * len(PAIRS)), np.int16)
    for g, (i, j) in enumerate(PAIRS):
        W[0, 4 * g + i], W[0, 4 * g + j] = -(g + 1), 10 * (g + 1)
    sp = compress(W)
    assert sp.indices.reshape(-1, 2).tolist() == [list(p) for p in PAIRS]
    assert sp.values.reshape(-1, 2).tolist() == [[-(g + 1), 10 * (g + 1)] for g in range(len(PAIRS))]
    np.testing.assert_array_equal(decompress(sp), W)


@pytest.mark.parametrize("group, indices, values", [
    ([0, 0, 0, 0], [0, 1], [0, 0]),
    ([7, 0, 0, 0], [0, 1], [7, 0]),
    ([0, 7, 0, 0], [0, 1], [0, 7]),
    ([0, 0, 7, 0], [0, 2], [0, 7]),
    ([0, 0, 0, -7], [0, 3], [0, -7]),
    ([0, 0, 4, 9], [2, 3], [4, 9]),
    ([5, 0, 0, 6], [0, 3], [5, 6]),
])
def test_sparse_groups_pad_with_lowest_unused_index(group, indices, values):
    sp = compress(np.array([group], np.int8))
    assert sp.indices.tolist() == [indices] and sp.values.tolist() == [values]
    assert decompress(sp).tolist() == [group]


def test_compress_rejects_dense_groups():
    W = np.zeros((3, 12), np.int8)
    W[2, 4:7] = [1, 2, 3]
    W[2, 8:12] = [1, 2, 3, 4]
    assert not is_2_4(W)
    with pytest.raises(ValueError, match=r"^weights are not 2:4 sparse: row 2 group 1 has 3 non-zeros$"):
        compress(W)


@pytest.mark.parametrize("func", [prune_2_4, is_2_4, compress])
def test_k_must_be_multiple_of_4(func):
    with pytest.raises(ValueError, match=r"^K must be a multiple of 4, not 6 \(zero-pad it with pad_k\)$"):
        func(np.ones((2, 6)))


def test_pad_k():
    W = np.arange(1, 13, dtype=np.int8).reshape(2, 6)
    padded = pad_k(W)
    assert padded.dtype == np.int8
    assert padded.tolist() == [[1, 2, 3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12, 0, 0]]
    assert pad_k(W, 3) is W
    assert pad_k(W, 5).shape == (2, 10)


def test_prune_rejects_nan():
    with pytest.raises(ValueError, match=r"^weights must not contain NaN$"):
        prune_2_4(np.array([[1.0, np.nan, 2.0, 3.0]]))


def test_metadata_nibbles():
    # idx0 | idx1 << 2, by hand: (0,1) -> 4, (0,2) -> 8, (0,3) -> 12, (1,2) -> 9, (1,3) -> 13, (2,3) -> 14.
    sp = Sparse24(np.ones((1, 12), np.int8), np.array([[0, 1, 0, 2, 0, 3, 1, 2, 1, 3, 2, 3]]), 24)
    nibbles = metadata(sp)
    assert nibbles.dtype == np.uint8 and nibbles.tolist() == [[4, 8, 12, 9, 13, 14]]
    np.testing.assert_array_equal(from_metadata(sp.values, nibbles, 24).indices, sp.indices)


@pytest.mark.parametrize("word_bits, words", [
    (8, [0x84, 0x9C, 0x0D]),      # two nibbles a word; group 0 in the low nibble
    (16, [0x9C84, 0x000D]),
    (32, [0x000D9C84]),
])
def test_pack_metadata_words_by_hand(word_bits, words):
    packed = pack_metadata_words(np.array([[4, 8, 12, 9, 13]]), word_bits)
    assert packed.dtype == np.dtype(f"u{word_bits // 8}") and packed.tolist() == [words]


@pytest.mark.parametrize("word_bits", [8, 16, 32, 64])
@pytest.mark.parametrize("k", [4, 28, 64, 68])
def test_metadata_words_round_trip(word_bits, k):
    sp = compress(prune_2_4(random_weights(np.int8, (5, k), seed=k)))
    words = pack_metadata_words(metadata(sp), word_bits)
    assert words.shape == (5, math.ceil(k // 4 / (word_bits // 4)))
    nibbles = unpack_metadata_words(words, k, word_bits)
    np.testing.assert_array_equal(nibbles, metadata(sp))
    np.testing.assert_array_equal(decompress(from_metadata(sp.values, nibbles, k)), decompress(sp))


def test_metadata_word_errors():
    with pytest.raises(ValueError, match=r"^metadata word width must be 8, 16, 32 or 64 bits, not 12$"):
        pack_metadata_words(np.array([[4]]), 12)
    with pytest.raises(ValueError, match=r"^malformed 2:4 metadata: row 0 group 1 has nibble 16, not in 0\.\.15$"):
        pack_metadata_words(np.array([[4, 16]]))
    with pytest.raises(ValueError, match=r"^K = 40 packs into 3 metadata word\(s\) of 16 bits per row, not 2$"):
        unpack_metadata_words(np.zeros((1, 2), np.uint16), 40)


@pytest.mark.parametrize("meta, k, message", [
    ([[0, 1, 2, 2]], 8, "row 0 group 1 has equal indices (2, 2)"),
    ([[0, 1], [3, 1]], 4, "row 1 group 0 has descending indices (3, 1)"),
    ([[0, 1, 1, 4]], 8, "row 0 group 1 has indices (1, 4), not in 0..3"),
    ([[-1, 1]], 4, "row 0 group 0 has indices (-1, 1), not in 0..3"),
    ([[0, 1, 2]], 8, "rows of 3 columns, but K = 8 needs 4 (indices) or 2 (nibbles)"),
    ([[4, 5]], 8, "row 0 group 1 has equal indices (1, 1)"),              # nibble 5 = 1 | 1 << 2
    ([[4, 6]], 8, "row 0 group 1 has descending indices (2, 1)"),          # nibble 6 = 2 | 1 << 2
    ([[4, 17]], 8, "row 0 group 1 has nibble 17, not in 0..15"),
])
def test_validate_messages(meta, k, message):
    for build in (lambda: validate(np.array(meta), k), lambda: Sparse24(np.zeros(np.shape(meta)), meta, k)):
        with pytest.raises(ValueError) as info:
            build()
        assert str(info.value) == f"malformed 2:4 metadata: {message}"


def test_validate_names_first_offending_group():
    meta = np.array([[0, 1, 0, 1, 0, 1], [0, 1, 2, 1, 3, 0]])
    with pytest.raises(ValueError, match=r"row 1 group 1 has descending indices \(2, 1\)$"):
        validate(meta, 12)


def test_validate_returns_indices():
    indices = validate([[1, 3, 0, 2]], 8)
    assert indices.dtype == np.uint8 and indices.tolist() == [[1, 3, 0, 2]]
    assert validate([[13, 8]], 8).tolist() == [[1, 3, 0, 2]]


def test_sparse24_checks_values_and_is_read_only():
    with pytest.raises(ValueError, match=r"^2:4 values have shape \(1, 4\), but their indices have shape \(1, 2\)$"):
        Sparse24(np.zeros((1, 4)), [[0, 1]], 4)
    with pytest.raises(TypeError, match=r"^2:4 metadata must be integers, not float64$"):
        Sparse24(np.zeros((1, 2)), np.array([[0.0, 1.0]]), 4)
    sp = Sparse24(np.array([[1, 2]]), [[0, 3]], 4)
    with pytest.raises(ValueError):
        sp.values[0, 0] = 5
    with pytest.raises(ValueError):
        sp.indices[0, 0] = 1


def test_select_activations_is_the_multiplexer_output():
    rng = np.random.default_rng(4)
    sp = compress(prune_2_4(random_weights(np.int8, (3, 16), seed=5)))
    A = rng.integers(-128, 128, size=(16, 5))
    selected = select_activations(sp, A)
    assert selected.shape == (3, 8, 5)
    for r in range(3):
        for c in range(8):
            np.testing.assert_array_equal(selected[r, c], A[4 * (c // 2) + sp.indices[r, c]])
    with pytest.raises(ValueError, match=r"^activations must have K = 16 rows, not 12$"):
        select_activations(sp, A[:12])


@pytest.mark.parametrize("w_dtype, a_dtype", [(np.int8, np.int8), (np.int16, np.int16), (np.int32, np.int8)])
def test_sparse_matmul_equals_dense_product(w_dtype, a_dtype):
    W = prune_2_4(random_weights(w_dtype, (8, 128), seed=6))
    A = random_weights(a_dtype, (128, 7), seed=7)
    out = sparse_matmul(compress(W), A)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, W.astype(np.int64) @ A.astype(np.int64))


def test_sparse_matmul_needs_integers():
    with pytest.raises(TypeError, match=r"^sparse_matmul needs integer weights and activations, not float32 and int8$"):
        sparse_matmul(compress(np.zeros((1, 4), np.float32)), np.zeros((4, 1), np.int8))


def test_pruning_error():
    # Pruning [3, 4, 1, 0] drops the 1: error norm 1, signal norm sqrt(9 + 16 + 1) = sqrt(26).
    error = pruning_error(np.array([[3, 4, 1, 0]], np.int8))
    assert error["relative_l2"] == pytest.approx(1 / math.sqrt(26))
    assert error["sqnr_db"] == pytest.approx(10 * math.log10(26))
    for sparse in (prune_2_4(random_weights(np.float32)), np.zeros((2, 8))):
        assert pruning_error(sparse) == {"relative_l2": 0.0, "sqnr_db": math.inf}
