import math
import warnings

import numpy as np
import pytest

from qmac.hw.spec.formats import INT4, INT8
from qmac.sim.quantize import (
    clip_max, clip_mse, clip_percentile, quantize, quantize_symmetric, quantize_vsq, sqnr_db, vsq_gemm,
    vsq_gemm_int,
)

SAMPLERS = {
    "gaussian": lambda rng, n: rng.standard_normal(n),
    "laplacian": lambda rng, n: rng.laplace(size=n),
    "student-t3": lambda rng, n: rng.standard_t(3, size=n),
}


def true_mse(x, clips, qmax):
    """Mean squared error of quantize-dequantize of ``x`` at each clip value, by direct computation."""
    step = np.asarray(clips, dtype=np.float64)[:, None] / qmax
    return np.mean((x - np.clip(np.round(x / step), -qmax, qmax) * step) ** 2, axis=1)


def grid_min_mse(x, qmax):
    """Smallest quantization MSE over clip values in (0, max|x|]: a 100-point grid, then 100 points around its best."""
    amax = np.abs(x).max()
    coarse = np.linspace(amax / 100, amax, 100)
    best = coarse[np.argmin(np.concatenate([true_mse(x, c, qmax) for c in np.split(coarse, 10)]))]
    fine = np.linspace(best - amax / 100, best + amax / 100, 100)
    return np.concatenate([true_mse(x, c, qmax) for c in np.split(fine, 10)]).min()


@pytest.mark.parametrize("dist", SAMPLERS)
@pytest.mark.parametrize("qmax", [7, 127])
def test_octav_clip_is_within_one_percent_of_grid_minimum(dist, qmax):
    x = SAMPLERS[dist](np.random.default_rng(1), 100_000)
    s = clip_mse(x, qmax).item()
    assert true_mse(x, [s], qmax)[0] <= 1.01 * grid_min_mse(x, qmax)


def test_octav_ends_on_a_fixed_point_or_two_cycle_per_slice():
    x = np.random.default_rng(2).laplace(size=(64, 8, 16))
    s = clip_mse(x, 7, axis=2)
    assert s.shape == (64, 8, 1)

    def step(s):
        mag = np.abs(x)
        over = mag > s
        p_over = over.mean(axis=2, keepdims=True)
        return (mag * over).mean(axis=2, keepdims=True) / ((1 - p_over) / (12 * 7 ** 2) + p_over)

    fixed = np.isclose(step(s), s, rtol=1e-5, atol=0)
    assert fixed.mean() > 0.99
    # On 16 samples the map can alternate between two values on either side of one sample magnitude.
    np.testing.assert_allclose(step(step(s)), s, rtol=1e-5)
    lo, hi = np.minimum(s, step(s)), np.maximum(s, step(s))
    assert np.all(fixed | np.any((np.abs(x) > lo) & (np.abs(x) <= hi), axis=2, keepdims=True))


def test_octav_vectorized_matches_one_slice_at_a_time():
    x = np.random.default_rng(3).standard_t(3, size=(40, 32))
    per_row = clip_mse(x, 127, axis=1)
    assert per_row.shape == (40, 1)
    np.testing.assert_allclose(per_row[:, 0], [clip_mse(row, 127).item() for row in x], rtol=1e-5)
    per_col = clip_mse(x, 127, axis=0)
    assert per_col.shape == (1, 32)
    np.testing.assert_allclose(per_col[0], [clip_mse(col, 127).item() for col in x.T], rtol=1e-5)


def test_octav_zero_and_constant_slices():
    x = np.array([[0.0, 0.0, 0.0, 0.0], [2.0, -2.0, 2.0, 2.0], [1.0, 0.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = clip_mse(x, 7, axis=1)
    assert s[0, 0] == 0.0
    assert s[1, 0] == 2.0            # constant magnitude: clip at that magnitude, no error at all
    assert 0 < s[2, 0] <= 1.0


def test_clip_shapes_and_values():
    x = np.array([[1.0, -3.0], [0.5, 2.0]])
    np.testing.assert_array_equal(clip_max(x), [[3.0]])
    np.testing.assert_array_equal(clip_max(x, axis=1), [[3.0], [2.0]])
    np.testing.assert_array_equal(clip_max(x, axis=0), [[1.0, 3.0]])
    y = np.arange(24.0).reshape(2, 3, 4) - 12
    assert clip_max(y, axis=(0, 2)).shape == (1, 3, 1)
    assert clip_percentile(y, 50, axis=(0, 2)).shape == (1, 3, 1)
    assert clip_mse(y, 7, axis=(0, 2)).shape == (1, 3, 1)
    np.testing.assert_array_equal(clip_percentile(np.array([1.0, -2.0, 3.0, -4.0]), 50), [2.5])
    np.testing.assert_array_equal(clip_percentile(x, 100, axis=1), clip_max(x, axis=1))


def test_quantize_symmetric_rounds_half_to_even_and_saturates():
    codes, scale = quantize_symmetric([0.5, 1.5, 2.5, -2.5, 3.49, 7.4, -9.0], INT4, 7.0)
    assert scale == 1.0
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(codes, [0, 2, 2, -2, 3, 7, -7])
    codes, scale = quantize_symmetric([[1.0, -1.0], [0.0, 0.0]], INT8, [[127.0], [0.0]])
    np.testing.assert_array_equal(scale, [[1.0], [1.0]])     # zero clip: scale 1, codes 0
    np.testing.assert_array_equal(codes, [[1, -1], [0, 0]])


# Hand-worked two-level examples: INT4 (qmax 7), V = 2, S = 2, K = 5 (padded to 6).
W_HAND = np.array([[7.0, -2.5, 1.4, 0.7, 0.0],
                   [0.12, 0.2, -0.3, 0.0, 0.04]])


def test_vsq_integer_scales_by_hand():
    # Row 0: s_v = [1, 0.2, 0], gamma = 1/3, sq = rint([3, 0.6, 0]) -> [3, 1, 1]; step 1 rounds -2.5 to -2.
    # Row 1: s_v = [0.2, 0.3, 0.04] / 7, gamma = 0.1 / 7, sq = rint([2, 3, 0.4]) -> [2, 3, 1].
    t = quantize_vsq(W_HAND, INT4, 2, 2, axis=1, granularity="channel")
    np.testing.assert_array_equal(t.codes, [[7, -2, 4, 2, 0, 0], [4, 7, -7, 0, 3, 0]])
    np.testing.assert_array_equal(t.scales, [[3, 1, 1], [2, 3, 1]])
    np.testing.assert_allclose(t.gamma, [[1 / 3], [0.1 / 7]])
    assert t.padded_length == 6 and t.length == 5
    np.testing.assert_allclose(t.dequantize(), [[7, -2, 4 / 3, 2 / 3, 0], [0.8 / 7, 1.4 / 7, -2.1 / 7, 0, 0.3 / 7]])
    # The same data as activations (K x M) gives the transposed result.
    ta = quantize_vsq(W_HAND.T, INT4, 2, 2, axis=0, granularity="channel")
    np.testing.assert_array_equal(ta.codes, t.codes.T)
    np.testing.assert_array_equal(ta.scales, t.scales.T)
    np.testing.assert_array_equal(ta.gamma, t.gamma.T)
    np.testing.assert_array_equal(ta.dequantize(), t.dequantize().T)


def test_vsq_pow2_scales_by_hand():
    # Row 0: gamma = 1/8, s_v / gamma = [8, 1.6, 0] -> e = [3, 1, 0]; steps [1, 1/4, 1/8].
    # Row 1: gamma = (0.3/7) / 8, s_v / gamma = [5.33, 8, 1.07] -> e = [3, 3, 1]; steps 0.3/7, 0.3/7, 0.075/7.
    t = quantize_vsq(W_HAND, INT4, 2, 2, axis=1, granularity="channel", scale_kind="pow2")
    np.testing.assert_array_equal(t.scales, [[3, 1, 0], [3, 3, 1]])
    np.testing.assert_array_equal(t.integer_scales(), [[8, 2, 1], [8, 8, 2]])
    np.testing.assert_array_equal(t.codes, [[7, -2, 6, 3, 0, 0], [3, 5, -7, 0, 4, 0]])
    np.testing.assert_allclose(t.gamma, [[1 / 8], [0.3 / 56]])


def test_vsq_tensor_granularity_shares_gamma():
    t = quantize_vsq(W_HAND, INT4, 2, 2, axis=1, granularity="tensor")
    np.testing.assert_allclose(t.gamma, [[1 / 3]])
    # Row 1's vectors are tiny next to gamma: s_v / gamma < 0.5, all clamp to sq = 1.
    np.testing.assert_array_equal(t.scales, [[3, 1, 1], [1, 1, 1]])


@pytest.mark.parametrize("scale_kind,scale_bits", [("int", 4), ("int", 8), ("pow2", 2), ("pow2", 4)])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_vsq_invariants(scale_kind, scale_bits, axis, granularity):
    fmt, vector = INT4, 16
    rng = np.random.default_rng(4)
    x = rng.laplace(size=(24, 100)) * rng.uniform(0.01, 10, size=(24, 1))   # rows of very different size
    x[3] = 0.0                                                                # an all-zero channel
    x = x if axis == 1 else x.T
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = quantize_vsq(x, fmt, vector, scale_bits, axis, granularity, scale_kind=scale_kind)
        y = t.dequantize()
    top = (1 << scale_bits) - 1
    rows, codes, sq, gamma = x if axis == 1 else x.T, t.codes, t.integer_scales(), t.gamma
    if axis == 0:
        codes, sq, gamma = codes.T, sq.T, gamma.T
    assert codes.shape == (24, 112) and t.padded_length == 112 and sq.shape == (24, 7)
    assert gamma.shape == ((24, 1) if granularity == "channel" else (1, 1)) and np.all(gamma > 0)
    assert np.abs(codes).max() <= fmt.qmax and np.all(codes[:, 100:] == 0)
    assert y.shape == x.shape and np.all(y[3] == 0 if axis == 1 else y[:, 3] == 0)
    if scale_kind == "int":
        assert np.all((t.scales >= 1) & (t.scales <= top))
    else:
        assert np.all((t.scales >= 0) & (t.scales <= top))
        np.testing.assert_array_equal(sq, 2 ** t.scales.T if axis == 0 else 2 ** t.scales)

    # The vector with the largest magnitude of each channel (of the tensor) gets the top scale.
    vmax = np.abs(np.pad(rows, ((0, 0), (0, 12))).reshape(24, 7, 16)).max(axis=2)
    if granularity == "channel":
        busy = vmax.max(axis=1) > 0
        assert np.all(sq[busy, vmax[busy].argmax(axis=1)] == (top if scale_kind == "int" else 1 << top))
    else:
        assert sq.flat[vmax.argmax()] == (top if scale_kind == "int" else 1 << top)

    # Error per element: at most half a step where the element is inside the vector's range; beyond it the
    # element saturates to +-qmax steps. Rounding an integer sq down moves the range below max|x| of the
    # vector by at most qmax * gamma / 2; the pow2 ceiling never does.
    step = np.repeat(sq, vector, axis=1)[:, :100] * gamma
    err = np.abs((y if axis == 1 else y.T) - rows)
    inside = np.abs(rows) <= fmt.qmax * step * (1 + 1e-12)     # the vector maximum may be an ulp beyond
    assert np.all(err[inside] <= step[inside] * (0.5 + 1e-9))
    beyond = ~inside
    assert np.allclose(err[beyond], np.abs(rows[beyond]) - fmt.qmax * step[beyond])
    gamma_full = np.broadcast_to(gamma, rows.shape)
    assert np.all(err[beyond] <= fmt.qmax * gamma_full[beyond] / 2 * (1 + 1e-9))
    if scale_kind == "pow2":
        assert not np.any(beyond)
        # ...and the exponent is the smallest that avoids clipping: one less would clip the vector's maximum.
        assert np.all((sq == 1) | (vmax > fmt.qmax * (sq // 2) * gamma))


@pytest.mark.parametrize("clip", ["max", "percentile", "mse"])
@pytest.mark.parametrize("axis", [0, 1])
def test_per_channel_and_per_tensor_are_symmetric_quantization(clip, axis):
    x = np.random.default_rng(5).standard_t(3, size=(12, 40))
    clipper = {"max": lambda ax: clip_max(x, ax), "percentile": lambda ax: clip_percentile(x, axis=ax),
               "mse": lambda ax: clip_mse(x, INT8.qmax, ax)}[clip]
    for scheme, clip_axis in (("per-channel", axis), ("per-tensor", None)):
        t = quantize(x, INT8, scheme, axis, clip=clip)
        codes, scale = quantize_symmetric(x, INT8, clipper(clip_axis))
        np.testing.assert_array_equal(t.codes, codes)
        np.testing.assert_array_equal(t.dequantize(), codes * scale)
        assert t.vector == (40 if axis == 1 else 12)
        assert np.all(t.integer_scales() == 1)


def naive_gemm_int(w, a):
    """Y_int by three Python loops over n, m and k, with Python integers."""
    sqw, sqa = w.integer_scales(), a.integer_scales()
    n_rows, k_len, m_cols = w.codes.shape[0], w.codes.shape[1], a.codes.shape[1]
    y = [[0] * m_cols for _ in range(n_rows)]
    for n in range(n_rows):
        for m in range(m_cols):
            for k in range(k_len):
                v = k // w.vector
                y[n][m] += int(w.codes[n, k]) * int(a.codes[k, m]) * int(sqw[n, v]) * int(sqa[v, m])
    return np.array(y, dtype=object)


@pytest.mark.parametrize("fmt,scale_kind,scale_bits", [(INT8, "int", 8), (INT4, "int", 4), (INT4, "pow2", 3)])
def test_vsq_gemm_int_matches_naive_loops(fmt, scale_kind, scale_bits):
    rng = np.random.default_rng(6)
    W = rng.laplace(size=(3, 10)) * [[1.0], [0.01], [30.0]]
    A = rng.standard_t(3, size=(10, 4))
    w = quantize_vsq(W, fmt, 4, scale_bits, 1, "channel", scale_kind=scale_kind)
    a = quantize_vsq(A, fmt, 4, scale_bits, 0, "tensor", scale_kind=scale_kind)
    y_int = vsq_gemm_int(w, a)
    assert y_int.dtype == np.int64 and y_int.shape == (3, 4)
    np.testing.assert_array_equal(y_int, naive_gemm_int(w, a))
    np.testing.assert_allclose(vsq_gemm(w, a), w.dequantize() @ a.dequantize(), rtol=1e-12, atol=1e-12)


def test_per_vector_beats_per_channel_at_int4_on_laplacian():
    W = np.random.default_rng(7).laplace(size=(64, 1024))
    channel = sqnr_db(W, quantize(W, INT4, "per-channel", 1).dequantize())
    gains = [sqnr_db(W, quantize(W, INT4, "vector", 1, v, 8).dequantize()) - channel for v in (16, 32, 64)]
    assert gains[0] > gains[1] > gains[2] > 2.0      # shorter vectors, larger gain
    assert gains[0] > 5.0                            # about the one bit (6 dB) VS-Quant reports


def test_sqnr_db():
    assert sqnr_db([1.0, 2.0], [1.0, 2.0]) == math.inf
    assert sqnr_db([1.0, 1.0], [1.0, 0.9]) == pytest.approx(10 * math.log10(2 / 0.01))
    assert sqnr_db([0.0, 0.0], [0.0, 0.1]) == -math.inf


X = np.ones((4, 8))
ERRORS = [
    (lambda: quantize_vsq(X, INT4, 0, 4, 1, "channel"), ValueError, "vector must be a positive integer, not 0"),
    (lambda: quantize_vsq(X, INT4, 16, 9, 1, "channel"), ValueError,
     "scale_bits must be an integer from 1 to 8 for scale_kind 'int', not 9"),
    (lambda: quantize_vsq(X, INT4, 16, 5, 1, "channel", scale_kind="pow2"), ValueError,
     "scale_bits must be an integer from 1 to 4 for scale_kind 'pow2', not 5"),
    (lambda: quantize_vsq(X, INT4, 16, 4, 2, "channel"), ValueError, "axis must be 0 or 1, not 2"),
    (lambda: quantize_vsq(X, INT4, 16, 4, 1, "row"), ValueError,
     "granularity must be one of channel, tensor, not 'row'"),
    (lambda: quantize_vsq(X, INT4, 16, 4, 1, "channel", clip="p99"), ValueError,
     "clip must be one of max, percentile, mse, not 'p99'"),
    (lambda: quantize_vsq(X, INT4, 16, 4, 1, "channel", scale_kind="log"), ValueError,
     "scale_kind must be one of int, pow2, not 'log'"),
    (lambda: quantize_vsq(np.ones(8), INT4, 16, 4, 1, "channel"), ValueError,
     "x must be a non-empty 2-D array, not shape (8,)"),
    (lambda: quantize_vsq(X, "int4", 16, 4, 1, "channel"), TypeError,
     "fmt must be an ElementFormat (INT8 or INT4), not 'int4'"),
    (lambda: quantize(X, INT4, "per-row", 1), ValueError,
     "scheme must be one of per-tensor, per-channel, vector, not 'per-row'"),
    (lambda: quantize(X, INT4, "per-channel", 1, vector=16), ValueError,
     "vector must be None for scheme 'per-channel', not 16"),
    (lambda: quantize(X, INT4, "per-tensor", 1, scale_kind="pow2"), ValueError,
     "scale_kind must be 'int' for scheme 'per-tensor', not 'pow2'"),
    (lambda: quantize(X, INT4, "vector", 1), ValueError, "vector must be a positive integer, not None"),
    (lambda: clip_mse(X, 0), ValueError, "qmax must be a positive integer, not 0"),
    (lambda: clip_mse(X, 7, iters=0), ValueError, "iters must be a positive integer, not 0"),
    (lambda: clip_percentile(X, 0), ValueError, "pct must be a number in (0, 100], not 0"),
    (lambda: quantize_symmetric(X, INT4, -1.0), ValueError, "clip must be finite and non-negative, not -1.0"),
    (lambda: vsq_gemm_int(quantize(X, INT4, "vector", 1, 4, 4), quantize(X.T, INT4, "vector", 1, 4, 4)),
     ValueError, "a must be quantized along axis 0 (activations, K x M), not axis 1"),
    (lambda: vsq_gemm_int(quantize(X.T, INT4, "vector", 0, 4, 4), quantize(X.T, INT4, "vector", 0, 4, 4)),
     ValueError, "w must be quantized along axis 1 (weights, N x K), not axis 0"),
    (lambda: vsq_gemm_int(quantize(X, INT4, "vector", 1, 4, 4), quantize(X.T, INT4, "vector", 0, 2, 4)),
     ValueError, "a must have the vector length and K of w (4, 8), not (2, 8)"),
]


@pytest.mark.parametrize("call,error,message", ERRORS, ids=[e[2] for e in ERRORS])
def test_error_messages(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
