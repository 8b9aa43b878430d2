"""OCP MX v1.0 (MXINT8): the quantizer against Graphcore's gfloat, the window mapping onto 4-bit pow2 scale
fields, and ``qmac gemm --scale mx`` against the MX definition computed here in exact rational arithmetic."""

import json
from fractions import Fraction

import numpy as np
import pytest
from gfloat import compute_scale_amax, decode_block, encode_block
from gfloat.formats import format_info_mxint8

from qmac.cli import main
from qmac.sim.mx import MxTensor, mx_tensor, mx_window, quantize_mxint8


def _gfloat_blocks(x, axis):
    """gfloat's MXINT8 encoding of ``x`` along ``axis``: ``(codes, exponents)`` laid out like an MxTensor
    (K zero-padded to a multiple of 32), codes read as two's complement, exponents as E8M0 codes."""
    rows = x if axis == 1 else x.T
    k = rows.shape[1]
    padded = np.zeros((rows.shape[0], -(-k // 32) * 32))
    padded[:, :k] = rows
    codes = np.zeros(padded.shape, dtype=np.int64)
    exps = np.zeros((rows.shape[0], padded.shape[1] // 32), dtype=np.int64)
    for r in range(rows.shape[0]):
        for b in range(exps.shape[1]):
            v = padded[r, 32 * b:32 * (b + 1)]
            scale = compute_scale_amax(format_info_mxint8.etype.emax, v)
            enc = list(encode_block(format_info_mxint8, scale, v / scale))
            exps[r, b] = enc[0]
            codes[r, 32 * b:32 * (b + 1)] = [c - 256 if c >= 128 else c for c in enc[1:]]
    return (codes, exps) if axis == 1 else (codes.T, exps.T)


def _hard_tensor(rng, channels, k):
    """Values that exercise every rule: magnitudes over 2**-150 .. 2**150, all-zero blocks, exact ties at the
    element step, values rounding up to 128 (saturate to 127), negatives reaching -128, a partial last block
    (K = 100)."""
    x = rng.standard_normal((channels, k)) * np.exp2(rng.integers(-60, 60, (channels, k)))
    x[0, :32] = 0.0                                                     # an all-zero block
    step = np.exp2(rng.integers(-20, 20, (channels, 1)) - 6.0)          # element step of a block with x = e
    ties = (rng.integers(-127, 127, (channels, 32)) + 0.5) * step
    ties[:, 0] = 127.75 * step[:, 0]                                    # sets amax; 127.75 -> 128 -> 127
    x[:, 32:64] = ties
    x[1, 64:96] = -np.linspace(1.9999, 0.1, 32) * 2.0 ** 5              # -1.9999 * 2**5 rounds to -128
    x[2, 64:96] = np.exp2(rng.integers(-150, -128, 32)) * rng.standard_normal(32)  # scale clamps at 2**-127
    x[3, 64:96] = np.exp2(rng.integers(128, 150, 32)) * rng.standard_normal(32)    # scale clamps at 2**127
    return x


@pytest.mark.parametrize("axis", [1, 0])
def test_quantize_mxint8_bit_identical_to_gfloat(axis):
    rng = np.random.default_rng(19)
    x = _hard_tensor(rng, 6, 100)
    x = x if axis == 1 else x.T
    t = quantize_mxint8(x, axis)
    codes, exps = _gfloat_blocks(x, axis)
    assert np.array_equal(t.exponents, exps)
    assert np.array_equal(t.codes, codes)
    assert t.codes.min() == -128 and t.codes.max() == 127                # both ends of the element range reached
    assert 0 in t.exponents and 254 in t.exponents                        # both clamps reached


def test_dequantize_matches_gfloat_decode():
    rng = np.random.default_rng(20)
    x = _hard_tensor(rng, 4, 100)
    t = quantize_mxint8(x, 1)
    decoded = np.array([[v for b in range(4) for v in decode_block(
        format_info_mxint8, [int(t.exponents[r, b])] + [int(c) & 0xFF for c in t.codes[r, 32 * b:32 * (b + 1)]])]
        for r in range(4)])
    assert np.array_equal(decoded[:, :100], t.dequantize())


def test_quantize_mxint8_refuses_non_finite():
    with pytest.raises(ValueError, match="x must be finite"):
        quantize_mxint8(np.array([[1.0, np.nan]]), 1)


def test_mx_tensor_refuses_nan_scale():
    with pytest.raises(ValueError, match=r"\[0, 254\] \(255 is NaN in E8M0\)"):
        mx_tensor(np.zeros((1, 32), dtype=np.int8), np.array([[255]], dtype=np.uint8), 1)


def test_window_keeps_16_octaves_shifts_exactly_and_rounds_the_rest():
    """One weight row of six blocks, top exponent 2**10 (E = 137), written out by hand."""
    codes = np.zeros((1, 6 * 32), dtype=np.int64)
    codes[0, 0:32] = 100                   # x = 10: the top, field 15
    codes[0, 32:64] = -3                   # x = -5: field 0, the bottom of the window
    codes[0, 64:96] = [4, -8] * 16         # x = -7: 2 below the window, multiples of 4: exact shift to 1, -2
    codes[0, 96:128] = [6, 2] * 16         # x = -6: 1 below; 6/2 = 3, 2/2 = 1: exact
    codes[0, 128:160] = [3, 5] * 16        # x = -6: 1 below; 3/2 = 1.5 -> 2, 5/2 = 2.5 -> 2 (ties to even): rounded
    # block 5 is all zero with the largest exponent: it must not move the window
    exps = np.array([[137, 122, 120, 121, 121, 254]])
    w = mx_window(mx_tensor(codes, exps, 1))
    assert w.base.tolist() == [[-5]]
    assert w.scales.tolist() == [[15, 0, 0, 0, 0, 0]]
    assert w.gamma.tolist() == [[2.0 ** -11]]
    assert w.codes[0, 0] == 100 and w.codes[0, 32] == -3
    assert w.codes[0, 64:66].tolist() == [1, -2] and w.codes[0, 96:98].tolist() == [3, 1]
    assert w.codes[0, 128:130].tolist() == [2, 2]
    assert (w.shifted_blocks, w.rounded_blocks) == (2, 1)


@pytest.mark.parametrize("axis", [1, 0])
def test_window_preserves_every_value_it_does_not_count(axis):
    """Blocks spanning 40 octaves, codes with random trailing zeros: every block the window did not count as
    rounded dequantizes to exactly the same values through the core's fields (``codes * 2**f * 2**(B - 6)``)."""
    rng = np.random.default_rng(24)
    codes = rng.integers(-128, 128, (8, 320)) >> rng.integers(0, 8, (8, 10)).repeat(32, axis=1)
    codes = codes << rng.integers(0, 8, (8, 10)).repeat(32, axis=1)
    codes = np.clip(codes, -128, 127)
    codes[:, 64:96] = 0
    exps = rng.integers(60, 100, (8, 10))
    t = mx_tensor(codes if axis == 1 else codes.T, exps if axis == 1 else exps.T, axis)
    w = mx_window(t)
    assert w.shifted_blocks > 0 and w.rounded_blocks > 0
    assert w.scales.min() >= 0 and w.scales.max() == 15
    ref, got = t.dequantize(), w.dequantize()
    ref, got = (ref, got) if axis == 1 else (ref.T, got.T)
    same = np.all((ref == got).reshape(8, 10, 32), axis=2)
    assert np.sum(~same) == w.rounded_blocks


def _exact_mx_product(Wc, WS, Ac, AS):
    """The MX definition, exactly: Y[n, m] = sum_k 2**(Ew + Ea - 254) * 2**-12 * Pw Pa, as Fractions."""
    n, k = Wc.shape
    m = Ac.shape[1]
    out = [[Fraction(0)] * m for _ in range(n)]
    for i in range(n):
        for j in range(m):
            for kk in range(k):
                e = int(WS[i, kk // 32]) + int(AS[kk // 32, j]) - 254 - 12
                out[i][j] += int(Wc[i, kk]) * int(Ac[kk, j]) * Fraction(2) ** e
    return out


def _run(tmp_path, capsys, *args, preset="tiny"):
    assert main(["gemm", "--preset", preset, "--json", *args]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def _save(tmp_path, **arrays):
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a)


def _precomputed(rng, n, k, m, span):
    """Random MXINT8 codes (int8) and E8M0 exponents (uint8) spanning ``span`` octaves per row and column."""
    nb = -(-k // 32)
    Wc = rng.integers(-128, 128, (n, k)).astype(np.int8)
    Ac = rng.integers(-128, 128, (k, m)).astype(np.int8)
    WS = (rng.integers(20, 200, (n, 1)) + rng.integers(0, span, (n, nb))).astype(np.uint8)
    AS = (rng.integers(20, 200, (1, m)) + rng.integers(0, span, (nb, m))).astype(np.uint8)
    return Wc, WS, Ac, AS


def test_gemm_mx_precomputed_equals_the_mx_definition(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(21)
    Wc, WS, Ac, AS = _precomputed(rng, 5, 100, 3, 16)
    _save(tmp_path, W=Wc, A=Ac, WS=WS, AS=AS)
    r, err = _run(tmp_path, capsys, "--weights", "W.npy", "--activations", "A.npy", "--scale", "mx",
                  "--weight-scales", "WS.npy", "--activation-scales", "AS.npy", "--out", "Y.npy")
    assert "scale_bits = 4, scale_kind = 'pow2'" in err
    assert r["mx_exact"] is True and r["mx_blocks_out_of_window"] == 0 and r["mx_outputs_rounded"] == 0
    Y = np.load(tmp_path / "Y.npy")
    assert Y.dtype == np.float64
    ref = _exact_mx_product(Wc, WS, Ac, AS)
    assert [[Fraction(v) for v in row] for row in Y.tolist()] == ref   # exact, not merely close


def test_gemm_mx_counts_blocks_out_of_window(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Wc = np.ones((1, 64), dtype=np.int8)           # odd codes: a shift loses bits
    WS = np.array([[150, 150 - 16]], dtype=np.uint8)
    Ac = np.ones((64, 1), dtype=np.int8)
    AS = np.array([[127], [127]], dtype=np.uint8)
    _save(tmp_path, W=Wc, A=Ac, WS=WS, AS=AS)
    r, err = _run(tmp_path, capsys, "--weights", "W.npy", "--activations", "A.npy", "--scale", "mx",
                  "--weight-scales", "WS.npy", "--activation-scales", "AS.npy", "--out", "Y.npy")
    assert r["mx_blocks_out_of_window"] == 1 and r["mx_exact"] is False
    # the second block, 16 octaves down, is 1 * 2**-1 per element: rint(0.5) = 0 (ties to even)
    assert np.load(tmp_path / "Y.npy").tolist() == [[32 * 2.0 ** (23 - 12)]]


def test_gemm_mx_floats_equal_the_definition_on_gfloat_codes(tmp_path, capsys, monkeypatch):
    """Float inputs: quantized on the host, run on the core, equal to the MX product of gfloat's encoding."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(22)
    W = rng.standard_normal((4, 70)) * np.exp2(rng.integers(-6, 6, (4, 70)))
    A = rng.standard_normal((70, 3))
    _save(tmp_path, W=W, A=A)
    r, _ = _run(tmp_path, capsys, "--weights", "W.npy", "--activations", "A.npy", "--scale", "mx", "--out", "Y.npy")
    assert r["mx_exact"] is True and r["sqnr_db"] > 30
    (Wc, WS), (Ac, AS) = _gfloat_blocks(W, 1), _gfloat_blocks(A, 0)
    ref = _exact_mx_product(Wc, WS, Ac, AS)
    assert [[Fraction(v) for v in row] for row in np.load(tmp_path / "Y.npy").tolist()] == ref


def test_gemm_mx_on_both_simulators(request, tmp_path, capsys, monkeypatch, tb_build_root):
    """Precomputed MXINT8 with blocks spanning 20 octaves (some out of window) on a tiny core switched to
    4-bit pow2 scales: both simulators bit-exact with the golden model."""
    request.node.add_marker(pytest.mark.xdist_group("cli-mx"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    rng = np.random.default_rng(23)
    Wc, WS, Ac, AS = _precomputed(rng, 3, 80, 3, 20)
    _save(tmp_path, W=Wc, A=Ac, WS=WS, AS=AS)
    files = ["--weights", "W.npy", "--activations", "A.npy", "--scale", "mx", "--weight-scales", "WS.npy",
             "--activation-scales", "AS.npy"]
    golden, _ = _run(tmp_path, capsys, *files, "--out", "Yg.npy")
    for engine in ("icarus", "verilator"):
        r, _ = _run(tmp_path, capsys, *files, "--engine", engine, "--stall", "0.2", "--out", f"Y{engine}.npy")
        assert r["bit_exact"] is True and r["mx_blocks_out_of_window"] == golden["mx_blocks_out_of_window"] > 0
        assert np.array_equal(np.load(tmp_path / f"Y{engine}.npy"), np.load(tmp_path / "Yg.npy"))


@pytest.mark.parametrize("change,message", [
    ({"WS": np.zeros((2, 2), dtype=np.int64)},
     "--weight-scales: 'WS.npy': holds int64 elements; allowed: uint8 E8M0 biased exponents (0..254)"),
    ({"WS": np.zeros((2, 1), dtype=np.uint8)},
     "--weight-scales: 'WS.npy': has shape (2, 1); allowed: (2, 2), one E8M0 exponent per 32 K elements"),
    ({"AS": np.array([[1, 2], [3, 255]], dtype=np.uint8)},
     "--activation-scales: 'AS.npy': holds 255 (NaN in E8M0) at [1, 1]; allowed: 0..254, finite scales "
     "2**-127..2**127"),
    ({"AS": np.ones((2, 2))}, "--activation-scales: 'AS.npy': holds float64 elements; allowed: 2-D integers"),
])
def test_gemm_mx_refuses_bad_scale_files(tmp_path, capsys, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    arrays = {"W": np.ones((2, 40), dtype=np.int8), "A": np.ones((40, 2), dtype=np.int8),
              "WS": np.ones((2, 2), dtype=np.uint8), "AS": np.ones((2, 2), dtype=np.uint8)} | change
    _save(tmp_path, **arrays)
    assert main(["gemm", "--preset", "tiny", "--weights", "W.npy", "--activations", "A.npy", "--scale", "mx",
                 "--weight-scales", "WS.npy", "--activation-scales", "AS.npy", "--out", "Y.npy"]) == 2
    assert capsys.readouterr().err == f"qmac: error: {message}\n"
    assert not (tmp_path / "Y.npy").exists()


@pytest.mark.parametrize("args,message", [
    (["--scale", "mx", "--weight-scales", "WS.npy"],
     "--activation-scales: None: is required with --scale mx and integer codes: E8M0 biased exponents (uint8), "
     "one per 32 K elements"),
    (["--weight-scales", "WS.npy", "--activation-scales", "WS.npy"],
     "--weight-scales: 'WS.npy': applies only to --scale mx with integer codes"),
    (["--scale", "mx", "--format", "int4", "--weight-scales", "WS.npy", "--activation-scales", "WS.npy"],
     "--format: 'int4': allowed with --scale mx: int8 (MXINT8 elements)"),
])
def test_gemm_mx_refuses_flags_that_do_not_fit(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    _save(tmp_path, W=np.ones((2, 4), dtype=np.int8), A=np.ones((4, 2), dtype=np.int8),
          WS=np.ones((2, 1), dtype=np.uint8))
    assert main(["gemm", "--preset", "tiny", "--weights", "W.npy", "--activations", "A.npy", *args]) == 2
    assert capsys.readouterr().err == f"qmac: error: {message}\n"


def test_mx_tensor_is_what_quantize_returns():
    t = quantize_mxint8(np.ones((2, 3)), 1)
    assert isinstance(t, MxTensor) and t.codes.shape == (2, 32) and t.exponents.tolist() == [[127], [127]]
    assert t.codes[0, :3].tolist() == [64, 64, 64]
