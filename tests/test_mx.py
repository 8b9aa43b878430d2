"""OCP MX v1.0 (MXINT8): the quantizer against Graphcore's gfloat, the window mapping onto 4-bit pow2 scale
fields, and ``qmac gemm --scale mx`` against the MX definition computed here in exact rational arithmetic."""

import json
from fractions import Fraction

import numpy as np
import pytest
from gfloat import compute_scale_amax, decode_block, encode_block
from gfloat.formats import format_info_mxint8

from qmac.cli import main
from qmac.sim.mx import MxTensor, mx_tensor, mx_window, quantize_mx


def _gfloat_blocks(x, axis):
    """gfloat's MXINT8 encoding of ``x`` along ``axis``: ``(codes, exponents)`` laid out like an MxTensor
    (K zero-padded to a multiple of 32), codes read as two's complement, exponents as E8M0 codes."""
    codes, exps = _gfloat_encode(format_info_mxint8, x, axis)
    return np.where(codes >= 128, codes - 256, codes), exps


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
    t = quantize_mx(x, axis)
    codes, exps = _gfloat_blocks(x, axis)
    assert np.array_equal(t.exponents, exps)
    assert np.array_equal(t.codes, codes)
    assert t.codes.min() == -128 and t.codes.max() == 127                # both ends of the element range reached
    assert 0 in t.exponents and 254 in t.exponents                        # both clamps reached


def test_dequantize_matches_gfloat_decode():
    rng = np.random.default_rng(20)
    x = _hard_tensor(rng, 4, 100)
    t = quantize_mx(x, 1)
    decoded = np.array([[v for b in range(4) for v in decode_block(
        format_info_mxint8, [int(t.exponents[r, b])] + [int(c) & 0xFF for c in t.codes[r, 32 * b:32 * (b + 1)]])]
        for r in range(4)])
    assert np.array_equal(decoded[:, :100], t.dequantize())


def test_quantize_mxint8_refuses_non_finite():
    with pytest.raises(ValueError, match="x must be finite"):
        quantize_mx(np.array([[1.0, np.nan]]), 1)


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


@pytest.mark.xdist_group("cli-mx")
def test_gemm_mx_on_both_simulators(tmp_path, capsys, monkeypatch, tb_build_root):
    """Precomputed MXINT8 with blocks spanning 20 octaves (some out of window) on a tiny core switched to
    4-bit pow2 scales: both simulators bit-exact with the golden model."""
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
    (["--scale", "mx", "--format", "lns8", "--weight-scales", "WS.npy", "--activation-scales", "WS.npy"],
     "--format: 'lns8': allowed with --scale mx: int8 (MXINT8), int4 (MXINT4), fp4 (MXFP4)"),
    (["--format", "fp4"], "--format: 'fp4': applies only to --scale mx (MXFP4: E2M1 elements on INT8 lanes)"),
])
def test_gemm_mx_refuses_flags_that_do_not_fit(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    _save(tmp_path, W=np.ones((2, 4), dtype=np.int8), A=np.ones((4, 2), dtype=np.int8),
          WS=np.ones((2, 1), dtype=np.uint8))
    assert main(["gemm", "--preset", "tiny", "--weights", "W.npy", "--activations", "A.npy", *args]) == 2
    assert capsys.readouterr().err == f"qmac: error: {message}\n"


def test_mx_tensor_is_what_quantize_returns():
    t = quantize_mx(np.ones((2, 3)), 1)
    assert isinstance(t, MxTensor) and t.codes.shape == (2, 32) and t.exponents.tolist() == [[127], [127]]
    assert t.codes[0, :3].tolist() == [64, 64, 64]


# --- MXFP4 (E2M1) and MXINT4-style elements -------------------------------------------------------------------

from gfloat import BlockFormatInfo, FormatInfo, decode_float  # noqa: E402
from gfloat.formats import format_info_mxfp4_e2m1, format_info_ocp_e2m1, format_info_ocp_e8m0  # noqa: E402
from gfloat.types import Domain  # noqa: E402

from qmac.sim.mx import MXFP4, MXINT4  # noqa: E402

#: An INT4 block format built exactly like gfloat's own ``format_info_ocp_int8`` (k = 4 instead of 8): gfloat's
#: reading of "MXINT4" (OCP MX v1.0 defines no such format).
GFLOAT_MXINT4 = BlockFormatInfo("mxint4", FormatInfo("int4", k=4, precision=4, bias=0, is_signed=True,
                                                     domain=Domain.Finite, has_nz=False, num_high_nans=0,
                                                     has_subnormals=True, is_twos_complement=True),
                                32, format_info_ocp_e8m0)
GFLOAT = {"MXFP4": format_info_mxfp4_e2m1, "MXINT4": GFLOAT_MXINT4}


def _gfloat_encode(fi, x, axis):
    """gfloat's encoding of ``x`` in block format ``fi`` along ``axis``: ``(element codes, E8M0 exponents)``
    laid out like an MxTensor's ``elements`` and ``exponents`` (codes as gfloat returns them: 0..15)."""
    rows = x if axis == 1 else x.T
    k = rows.shape[1]
    padded = np.zeros((rows.shape[0], -(-k // 32) * 32))
    padded[:, :k] = rows
    codes = np.zeros(padded.shape, dtype=np.int64)
    exps = np.zeros((rows.shape[0], padded.shape[1] // 32), dtype=np.int64)
    for r in range(rows.shape[0]):
        for b in range(exps.shape[1]):
            v = padded[r, 32 * b:32 * (b + 1)]
            scale = compute_scale_amax(fi.etype.emax, v)
            enc = list(encode_block(fi, scale, v / scale))
            exps[r, b], codes[r, 32 * b:32 * (b + 1)] = enc[0], enc[1:]
    return (codes, exps) if axis == 1 else (codes.T, exps.T)


def _fp4_hard_tensor(rng, channels, k):
    """Every E2M1 rounding case: each tie of the grid (0.25, 0.75, ..., 5) of both signs, values in [6, 8) that
    saturate to 6, -0.0 and negatives rounding to -0, all-zero blocks, clamped scales, a partial last block."""
    x = rng.standard_normal((channels, k)) * np.exp2(rng.integers(-40, 40, (channels, k)))
    scale = np.exp2(rng.integers(-20, 20, (channels, 1)))
    ties = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, 6.5, 7.99, 4.0, 6.0, 0.5, 3.0])
    block = np.concatenate([ties, -ties, [-0.0, -0.1, 0.1, 0.0]])
    x[:, 32:64] = block * scale
    x[0, :32] = 0.0
    x[1, :32] = -0.0
    x[2, 64:96] = np.exp2(rng.integers(-150, -128, 32)) * rng.standard_normal(32)   # scale clamps at 2**-127
    x[3, 64:96] = np.exp2(rng.integers(130, 150, 32)) * rng.standard_normal(32)     # clamps at 2**127: saturates
    return x


@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("element", [MXFP4, MXINT4], ids=["mxfp4", "mxint4"])
def test_quantize_mx_bit_identical_to_gfloat(element, axis):
    rng = np.random.default_rng(41)
    x = _fp4_hard_tensor(rng, 6, 100) if element is MXFP4 else _hard_tensor(rng, 6, 100)
    x = x if axis == 1 else x.T
    t = quantize_mx(x, axis, element)
    codes, exps = _gfloat_encode(GFLOAT[element.name], x, axis)
    assert np.array_equal(t.exponents, exps)
    if element is MXINT4:
        codes = np.where(codes >= 8, codes - 16, codes)          # gfloat's nibble as two's complement
    assert np.array_equal(t.elements, codes)
    assert set(np.unique(t.elements)) == set(range(16) if element is MXFP4 else range(-8, 8))  # every code
    decoded = [[decode_float(GFLOAT[element.name].etype, int(c) % 16).fval for c in row] for row in
               (t.elements if axis == 1 else t.elements.T)]
    lanes = t.codes if axis == 1 else t.codes.T
    assert np.array_equal(lanes, np.array(decoded) * 2 ** element.scale_bits)   # lane code = value * 2**s


def test_e2m1_lane_codes_are_twice_gfloats_values():
    """The lane code of every E2M1 code is 2 * its value (gfloat's decoding), an integer in [-12, 12]."""
    got = MXFP4.lanes(np.arange(16))
    assert got.tolist() == [2 * decode_float(format_info_ocp_e2m1, c).fval for c in range(16)]
    assert got.tolist() == [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]


def test_dequantize_mxfp4_matches_gfloat_decode():
    rng = np.random.default_rng(42)
    x = _fp4_hard_tensor(rng, 4, 128)
    t = quantize_mx(x, 1, MXFP4)
    for r in range(4):
        for b in range(4):
            block = [int(t.exponents[r, b])] + [int(c) for c in t.elements[r, 32 * b:32 * (b + 1)]]
            ref = np.fromiter(decode_block(format_info_mxfp4_e2m1, block), float)
            assert np.array_equal(t.dequantize()[r, 32 * b:32 * (b + 1)], ref)


def _element_values(element, codes):
    """Exact element values (Fractions) of element codes, by gfloat's decoding for E2M1."""
    if element is MXFP4:
        return [[Fraction(decode_float(format_info_ocp_e2m1, int(c)).fval) for c in row] for row in codes]
    return [[Fraction(int(c), 2 ** element.scale_bits) for c in row] for row in codes]


def _exact_mx_values(Wv, WS, Av, AS):
    """The MX definition on element values: Y[n, m] = sum_k 2**(Ew - 127) Vw * 2**(Ea - 127) Va, as Fractions."""
    n, k, m = len(Wv), len(Wv[0]), len(Av[0])
    return [[sum(Wv[i][kk] * Av[kk][j] * Fraction(2) ** (int(WS[i, kk // 32]) + int(AS[kk // 32, j]) - 254)
                 for kk in range(k)) for j in range(m)] for i in range(n)]


def _precomputed_elements(rng, element, n, k, m, span):
    lo, hi = element.code_range
    dtype = np.uint8 if element is MXFP4 else np.int8
    Wc, Ac = rng.integers(lo, hi + 1, (n, k)).astype(dtype), rng.integers(lo, hi + 1, (k, m)).astype(dtype)
    _, WS, _, AS = _precomputed(rng, n, k, m, span)
    return Wc, WS, Ac, AS


@pytest.mark.parametrize("fmt,element", [("fp4", MXFP4), ("int4", MXINT4)])
def test_gemm_mx_precomputed_elements_equal_the_mx_definition(tmp_path, capsys, monkeypatch, fmt, element):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(43)
    Wc, WS, Ac, AS = _precomputed_elements(rng, element, 5, 100, 3, 16)
    _save(tmp_path, W=Wc, A=Ac, WS=WS, AS=AS)
    r, err = _run(tmp_path, capsys, "--weights", "W.npy", "--activations", "A.npy", "--scale", "mx", "--format", fmt,
                  "--weight-scales", "WS.npy", "--activation-scales", "AS.npy", "--out", "Y.npy")
    assert r["mx_exact"] is True and r["mx_element"] == element.name and r["format"] == fmt
    ref = _exact_mx_values(_element_values(element, Wc), WS, _element_values(element, Ac), AS)
    assert [[Fraction(v) for v in row] for row in np.load(tmp_path / "Y.npy").tolist()] == ref


@pytest.mark.parametrize("fmt,element", [("fp4", MXFP4), ("int4", MXINT4)])
def test_gemm_mx_floats_equal_the_definition_on_gfloat_elements(tmp_path, capsys, monkeypatch, fmt, element):
    """Float inputs quantized on the host (MXFP4 / MXINT4), run on the core, equal to the MX product of gfloat's
    own encoding of the same floats, exactly."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(44)
    W = rng.standard_normal((4, 70)) * np.exp2(rng.integers(-6, 6, (4, 70)))
    A = rng.standard_normal((70, 3))
    _save(tmp_path, W=W, A=A)
    r, _ = _run(tmp_path, capsys, "--weights", "W.npy", "--activations", "A.npy", "--scale", "mx", "--format", fmt,
                "--out", "Y.npy")
    assert r["mx_exact"] is True and r["sqnr_db"] > 5
    fi = GFLOAT[element.name]
    (Wc, WS), (Ac, AS) = _gfloat_encode(fi, W, 1), _gfloat_encode(fi, A, 0)
    values = (lambda c: [[Fraction(decode_float(fi.etype, int(v)).fval) for v in row] for row in c])
    ref = _exact_mx_values(values(Wc[:, :70]), WS, values(Ac[:70]), AS)
    assert [[Fraction(v) for v in row] for row in np.load(tmp_path / "Y.npy").tolist()] == ref


@pytest.mark.xdist_group("cli-mx")
@pytest.mark.parametrize("fmt,element", [("fp4", MXFP4), ("int4", MXINT4)])
def test_gemm_mx_elements_on_verilator(tmp_path, capsys, monkeypatch, tb_build_root, fmt, element):
    """Precomputed MXFP4 (on INT8 lanes) and MXINT4 (on INT4 lanes) with blocks spanning 20 octaves (some out of
    window), on a tiny core switched to 4-bit pow2 scales: the compiled Verilator core is bit-exact with the golden
    model, with stalls."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    rng = np.random.default_rng(45)
    Wc, WS, Ac, AS = _precomputed_elements(rng, element, 3, 80, 3, 20)
    _save(tmp_path, W=Wc, A=Ac, WS=WS, AS=AS)
    files = ["--weights", "W.npy", "--activations", "A.npy", "--scale", "mx", "--format", fmt, "--weight-scales",
             "WS.npy", "--activation-scales", "AS.npy"]
    golden, _ = _run(tmp_path, capsys, *files, "--out", "Yg.npy")
    r, _ = _run(tmp_path, capsys, *files, "--engine", "verilator", "--stall", "0.2", "--out", "Yv.npy")
    assert r["bit_exact"] is True and r["mx_blocks_out_of_window"] == golden["mx_blocks_out_of_window"] > 0
    assert np.array_equal(np.load(tmp_path / "Yv.npy"), np.load(tmp_path / "Yg.npy"))


@pytest.mark.parametrize("W,message", [
    (np.ones((2, 40), dtype=np.int8), "--weights: 'W.npy': holds int8 elements; allowed: uint8 E2M1 codes 0..15 "
     "(bit 3 sign, bits 2..1 exponent, bit 0 mantissa)"),
    (np.full((2, 40), 16, dtype=np.uint8), "--weights: 'W.npy': codes span [16, 16]; allowed: [0, 15]"),
])
def test_gemm_mxfp4_refuses_bad_codes(tmp_path, capsys, monkeypatch, W, message):
    monkeypatch.chdir(tmp_path)
    _save(tmp_path, W=W, A=np.ones((40, 2), dtype=np.uint8), WS=np.ones((2, 2), dtype=np.uint8),
          AS=np.ones((2, 2), dtype=np.uint8))
    assert main(["gemm", "--preset", "tiny", "--weights", "W.npy", "--activations", "A.npy", "--scale", "mx",
                 "--format", "fp4", "--weight-scales", "WS.npy", "--activation-scales", "AS.npy",
                 "--out", "Y.npy"]) == 2
    assert capsys.readouterr().err == f"qmac: error: {message}\n"
    assert not (tmp_path / "Y.npy").exists()


def test_quantize_mx_refuses_an_unknown_element():
    with pytest.raises(TypeError, match=r"^element must be an MxElement \(MXINT8, MXINT4, MXFP4\), not 'fp4'$"):
        quantize_mx(np.ones((1, 4)), 1, "fp4")
    with pytest.raises(TypeError, match=r"^element must be an MxElement"):
        mx_tensor(np.ones((1, 4), dtype=np.int8), np.ones((1, 1), dtype=np.uint8), 1, None)
