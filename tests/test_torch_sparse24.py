"""qmac.sim.torch_sparse24 against a numpy transliteration of PyTorch's own conversion
(torch/sparse/_semi_structured_conversions.py: ``sparse_semi_structured_from_dense_cutlass`` and
``_calculate_meta_reordering_scatter_offsets``, int8 path, read from PyTorch's source; torch itself is not
installed: its wheel pulls gigabytes). The port keeps PyTorch's statements one for one — boolean bit formulas,
gather, stack, scatter — so it is independent of the table-driven code under test."""

import numpy as np
import pytest

from qmac.sim.sparse24 import decompress, metadata, prune_2_4, sparse_matmul
from qmac.sim.torch_sparse24 import TORCH_NIBBLE, from_torch, meta_order, to_torch


def torch_scatter_offsets(m, meta_ncols):
    """PyTorch's ``_calculate_meta_reordering_scatter_offsets`` for int32 metadata (itemsize 4)."""
    dst_rows = np.repeat(np.arange(m)[:, None], meta_ncols, axis=1)
    dst_cols = np.tile(np.arange(meta_ncols), (m, 1))
    group, interweave = 16, 2
    dst_rows = dst_rows // group * group + (dst_rows % 8) * interweave + (dst_rows % group) // 8
    topright = ((dst_rows % 2 == 0) & (dst_cols % 2 == 1)).astype(np.int8)
    bottomleft = ((dst_rows % 2 == 1) & (dst_cols % 2 == 0)).astype(np.int8)
    dst_rows = dst_rows + topright - bottomleft
    dst_cols = dst_cols - (topright - bottomleft)
    interleave = 2
    cols_maj = dst_cols // interleave
    cols_min = dst_cols % interleave
    return (cols_maj * m * interleave + dst_rows * interleave + cols_min).reshape(-1)


def torch_from_dense_cutlass(dense):
    """PyTorch's ``sparse_semi_structured_from_dense_cutlass`` for an int8 ``dense`` (meta int32)."""
    m, k = dense.shape
    quadbits_per_meta_elem = 8
    ksparse = 4
    dense_4 = dense.reshape(-1, k // ksparse, ksparse)
    m0, m1, m2, m3 = np.moveaxis(dense_4 != 0, -1, 0)
    meta_ncols = k // (ksparse * quadbits_per_meta_elem)
    expr0 = m0 & m1
    expr1 = ~m0 & m1
    expr2 = ~m0 & ~m1
    bit0 = expr1
    bit1 = expr2
    bit2 = expr0 | expr2 | m3
    bit3 = expr1 | ~m1
    idxs0 = bit0 | (bit1.astype(np.int64) << 1)
    idxs1 = bit2 | (bit3.astype(np.int64) << 1)
    sparse0 = np.take_along_axis(dense_4, idxs0[..., None], axis=-1)
    sparse1 = np.take_along_axis(dense_4, idxs1[..., None], axis=-1)
    sparse = np.stack((sparse0, sparse1), axis=-1).reshape(m, k // 2)
    meta_4 = idxs0 | (idxs1 << 2)
    meta_n = meta_4.reshape(-1, meta_ncols, quadbits_per_meta_elem).astype(np.int32)
    meta = meta_n[:, :, 0]
    for i in range(1, 8):
        meta = meta | (meta_n[:, :, i] << (4 * i))  # int32 arithmetic: bit 31 becomes the sign, as in torch
    meta_reordered = np.empty(m * meta_ncols, dtype=np.int32)
    meta_reordered[torch_scatter_offsets(m, meta_ncols)] = meta.reshape(-1)
    return sparse, meta_reordered.reshape(m, meta_ncols)


def _sparse_int8(rng, n, k, empty=0.3):
    """Random INT8 2:4 weights with many groups of fewer than two non-zeros (every fill case)."""
    W = prune_2_4(rng.integers(-128, 128, (n, k)))
    return np.where(rng.random((n, k)) < empty, 0, W)


@pytest.mark.parametrize("n,k", [(16, 64), (32, 128), (48, 192)])
def test_export_equals_pytorch(n, k):
    rng = np.random.default_rng(n + k)
    W = _sparse_int8(rng, n, k)
    values, meta = to_torch(W)
    ref_values, ref_meta = torch_from_dense_cutlass(W.astype(np.int8))
    assert values.dtype == np.int8 and meta.dtype == np.int32
    assert values.tobytes() == ref_values.tobytes() and meta.tobytes() == ref_meta.tobytes()


@pytest.mark.parametrize("n,k", [(16, 64), (32, 128)])
def test_import_round_trips_and_computes_the_dense_product(n, k):
    rng = np.random.default_rng(7)
    W = _sparse_int8(rng, n, k)
    values, meta = torch_from_dense_cutlass(W.astype(np.int8))
    sp = from_torch(values, meta, (n, k))
    assert (decompress(sp) == W).all()
    A = rng.integers(-128, 128, (k, 5))
    assert (sparse_matmul(sp, A) == W @ A).all()


def test_fill_rule_of_every_group_pattern():
    """Each mask of at most two non-zeros, in one row of 16 groups: PyTorch's positions, and qmac's own
    compress (lowest unused positions) picks other ones for the sparse groups."""
    masks = [m for m in range(16) if bin(m).count("1") <= 2]
    assert sorted(TORCH_NIBBLE) == masks
    row = np.concatenate([[(3 * i + 1) * ((m >> i) & 1) for i in range(4)] for m in masks])
    W = np.tile(np.concatenate([row, np.zeros(64 - row.size, dtype=np.int64)]), (16, 1))
    values, meta = to_torch(W)
    ref_values, ref_meta = torch_from_dense_cutlass(W.astype(np.int8))
    assert meta.tobytes() == ref_meta.tobytes() and values.tobytes() == ref_values.tobytes()
    nib = metadata(from_torch(values, meta, W.shape))[0]
    expected = {0b0000: (2, 3), 0b0001: (0, 2), 0b0010: (1, 2), 0b0100: (2, 3), 0b1000: (2, 3)}
    for g, m in enumerate(masks):
        if m in expected:
            assert (nib[g] & 3, nib[g] >> 2) == expected[m], bin(m)
        else:
            assert [i for i in range(4) if (m >> i) & 1] == [nib[g] & 3, nib[g] >> 2], bin(m)


def test_meta_order_is_a_permutation():
    for n, cols in ((16, 2), (32, 4), (64, 6)):
        order = meta_order(n, cols)
        assert sorted(order.ravel()) == list(range(n * cols))
        assert (order.ravel() == torch_scatter_offsets(n, cols)).all()


def test_bad_input_is_named():
    W = np.zeros((16, 64), dtype=np.int64)
    with pytest.raises(ValueError, match=r"^N must be a positive multiple of 16 for PyTorch's int8 layout, not 8$"):
        to_torch(W[:8])
    with pytest.raises(ValueError, match=r"^K must be a positive multiple of 64 for PyTorch's int8 layout, not 32$"):
        to_torch(W[:, :32])
    W[0, :3] = 1
    with pytest.raises(ValueError, match=r"^weights are not 2:4 sparse"):
        to_torch(W)
    with pytest.raises(ValueError, match=r"^meta must have shape \(16, 2\), not \(16, 1\)$"):
        from_torch(np.zeros((16, 32), np.int8), np.zeros((16, 1), np.int32), (16, 64))


def test_golden_sparse_gemm_from_pytorch_layout():
    """Weights imported from PyTorch's layout, run through the golden engine's sparse path (computed from the
    compressed form), equal the dense product."""
    from qmac.engine import run_gemm
    from qmac.hw.spec.config import PRESETS
    rng = np.random.default_rng(3)
    W = _sparse_int8(rng, 16, 64)
    values, meta = torch_from_dense_cutlass(W.astype(np.int8))
    sp = from_torch(values, meta, W.shape)
    A = rng.integers(-128, 128, (64, 7))
    res = run_gemm(PRESETS["tiny-sparse"], "int8", decompress(sp), A, sparse=True)
    assert (res["Y"] == W @ A).all()


def _gemm(capsys, *args):
    import json
    from qmac.cli import main
    assert main(["gemm", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _torch_npz(path, W, **change):
    """``W`` exported by PyTorch's own conversion (the transliteration above) into ``qmac gemm``'s .npz."""
    values, meta = torch_from_dense_cutlass(W.astype(np.int8))
    arrays = {"values": values, "meta": meta, "shape": np.array(W.shape)} | change
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


@pytest.mark.xdist_group("cli-sparse")
@pytest.mark.parametrize("engine", ["golden", "verilator"])
def test_gemm_runs_pytorch_npz_exactly(tmp_path, capsys, monkeypatch, tb_build_root, engine):
    """``qmac gemm --weights W.npz``: our exporter's (values, meta) (equal to PyTorch's, above) saved as .npz and
    run sparse on the golden model and the compiled Verilator core: ``Y == W_dense @ A`` exactly, every fill
    case of PyTorch's encoder present."""
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    rng = np.random.default_rng(19)
    W = _sparse_int8(rng, 16, 128, empty=0.5)
    W[0, :4] = [-128, 0, 0, 127]
    values, meta = to_torch(W)
    np.savez(tmp_path / "W.npz", values=values, meta=meta, shape=np.array([16, 128]))
    A = rng.integers(-128, 128, (128, 5)).astype(np.int8)
    np.save(tmp_path / "A.npy", A)
    args = ["--preset", "tiny-sparse", "--weights", str(tmp_path / "W.npz"), "--activations",
            str(tmp_path / "A.npy"), "--engine", engine, "--out", str(tmp_path / "Y.npy")]
    r = _gemm(capsys, *args, *(["--stall", "0.2"] if engine != "golden" else []))
    assert r["sparse"] == "2:4" and r["pruned"] is False
    assert r["bit_exact"] is (None if engine == "golden" else True)
    Y = np.load(tmp_path / "Y.npy")
    assert Y.dtype == np.int64 and np.array_equal(Y, W.astype(np.int64) @ A.astype(np.int64))


@pytest.mark.parametrize("change,message", [
    ({"values": None, "meta": None, "shape": None, "X": np.ones(2)}, "has no 'values'; allowed:"),
    ({"meta": None}, "has no 'meta'; allowed: an .npz with values (int8, N x K/2) and meta (int32, N x K/32) as "
     "PyTorch's sparse_semi_structured_from_dense_cutlass returns them, and shape = [N, K]"),
    ({"shape": None}, "has no 'shape'; allowed:"),
    ({"extra": np.zeros(1)}, "has unknown keys ['extra']; allowed:"),
    ({"values": np.zeros((16, 32), np.int16)}, "values holds int16 elements; allowed:"),
    ({"meta": np.zeros((16, 2), np.uint32)}, "meta holds uint32 elements; allowed:"),
    ({"shape": np.array([16.0, 64.0])}, "shape is float64 of shape (2,); allowed:"),
    ({"shape": np.array([16, 64, 1])}, "shape is int64 of shape (3,); allowed:"),
    ({"shape": np.array([16, 96])}, "shape is [16, 96]; allowed: N a positive multiple of 16 and K of 64 "
     "(PyTorch's int8 semi-structured layout)"),
    ({"shape": np.array([8, 64])}, "shape is [8, 64]; allowed: N a positive multiple of 16 and K of 64"),
    ({"shape": np.array([16, 128])}, "values has shape (16, 32); allowed: (16, 64) for shape [16, 128]"),
    ({"meta": np.zeros((16, 1), np.int32)}, "meta has shape (16, 1); allowed: (16, 2) for shape [16, 64]"),
    ({"meta": np.full((16, 2), 0x55555555, np.int32)},
     "meta: malformed 2:4 metadata: row 0 group 0 has equal indices (1, 1); allowed: nibbles of two ascending "
     "positions in 0..3, in PyTorch's reordered layout"),
    ({"meta": np.full((16, 2), 0x11111111, np.int32)}, "meta: malformed 2:4 metadata: row 0 group 0 has "
     "descending indices (1, 0)"),
])
def test_gemm_refuses_bad_pytorch_npz(tmp_path, capsys, change, message):
    from qmac.cli import main
    W = _sparse_int8(np.random.default_rng(1), 16, 64)
    _torch_npz(tmp_path / "W.npz", W, **change)
    np.save(tmp_path / "A.npy", np.ones((64, 2), np.int8))
    out = tmp_path / "Y.npy"
    assert main(["gemm", "--weights", str(tmp_path / "W.npz"), "--activations", str(tmp_path / "A.npy"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qmac: error: --weights: {str(tmp_path / 'W.npz')!r}: {message}") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("args,a,message", [
    (["--format", "int4"], np.ones((64, 2), np.int8),
     "--format: 'int4': allowed with --weights W.npz: int8 (PyTorch's int8 semi-structured layout)"),
    ([], np.ones((64, 2)), "--activations: '{A}': holds float64 elements; allowed with --weights W.npz: integer "
     "INT8 codes"),
    (["--scale", "mx"], np.ones((64, 2), np.int8),
     "--scale: 'mx': applies only to float inputs or --weights W.npy; --weights W.npz holds INT8 codes"),
    ([], np.ones((32, 2), np.int8), "--activations: '{A}': has shape (32, 2); allowed: 64 rows, the K of "
     "--weights (16, 64)"),
])
def test_gemm_pytorch_npz_refuses_flags_that_do_not_fit(tmp_path, capsys, args, a, message):
    from qmac.cli import main
    _torch_npz(tmp_path / "W.npz", _sparse_int8(np.random.default_rng(2), 16, 64))
    np.save(tmp_path / "A.npy", a)
    assert main(["gemm", "--weights", str(tmp_path / "W.npz"), "--activations", str(tmp_path / "A.npy"),
                 *args]) == 2
    assert capsys.readouterr().err == f"qmac: error: {message.format(A=tmp_path / 'A.npy')}\n"


def test_gemm_refuses_npy_named_npz(tmp_path, capsys):
    from qmac.cli import main
    with open(tmp_path / "W.npz", "wb") as f:
        np.save(f, np.ones((16, 64), np.int8))
    np.save(tmp_path / "A.npy", np.ones((64, 2), np.int8))
    assert main(["gemm", "--weights", str(tmp_path / "W.npz"), "--activations", str(tmp_path / "A.npy")]) == 2
    assert capsys.readouterr().err.startswith(f"qmac: error: --weights: {str(tmp_path / 'W.npz')!r}: is not an "
                                              ".npz archive; allowed: an .npz with values")
