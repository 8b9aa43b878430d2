"""qmac.sim.ptq on its own: calibrated clips, static activation quantization, the min-error per-vector scale,
the GPTQ Hessian and GPTQ on one layer. Expected values come from brute force over the candidates (every code,
every scale field) or from the definitions, never from the functions under test."""

import numpy as np
import pytest

from qmac.hw.spec.formats import INT4, INT8
from qmac.sim.ptq import (best_vector_scales, calibrate_clip, gptq, hessian, quantize_static,
                          quantize_vsq_best, smoothing_factors, hadamard_rotation)
from qmac.sim.quantize import quantize, quantize_vsq


def nearest_codes(x, step, qmax):
    """Brute force: for each value the code in [-qmax, qmax] whose ``code * step`` is closest to it."""
    grid = np.arange(-qmax, qmax + 1)
    x, step = np.broadcast_arrays(np.asarray(x, dtype=np.float64), step)
    return grid[np.argmin(np.abs(x[..., None] - grid * step[..., None]), axis=-1)]


def vector_sse(x, field, gamma, qmax):
    """Squared error of one vector ``x`` quantized with scale ``field * gamma`` (brute-force codes)."""
    step = field * gamma
    return float(np.sum((nearest_codes(x, step, qmax) * step - x) ** 2))


def correlated(rng, K, M, rank=None):
    """K x M activations whose K channels are strongly correlated (a random mix of few sources) with uneven
    channel magnitudes, as a transformer's post-LayerNorm inputs are."""
    rank = rank or K // 4
    X = rng.standard_normal((K, rank)) @ rng.standard_normal((rank, M)) + 0.1 * rng.standard_normal((K, M))
    return X * rng.uniform(0.2, 3.0, size=(K, 1))


# -- calibrate_clip ---------------------------------------------------------------------------------------------

def test_calibrate_clip_max_is_largest_magnitude_over_every_sample():
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((10, m)) for m in (3, 7, 5)]
    samples[1][4, 2] = -9.5
    assert calibrate_clip(samples, INT8, "max") == 9.5


def test_calibrate_clip_percentile_over_every_value():
    rng = np.random.default_rng(1)
    samples = [rng.laplace(size=(20, 300)), rng.laplace(size=(20, 200))]
    values = np.sort(np.abs(np.concatenate([s.ravel() for s in samples])))
    # 99.99th percentile with linear interpolation between order statistics (numpy's default definition)
    pos = 0.9999 * (len(values) - 1)
    lo = int(np.floor(pos))
    expected = values[lo] + (pos - lo) * (values[lo + 1] - values[lo])
    assert calibrate_clip(samples, INT8, "percentile") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fmt", [INT4, INT8])
def test_calibrate_clip_mse_is_near_the_grid_minimum(fmt):
    rng = np.random.default_rng(2)
    samples = [rng.standard_t(3, size=(16, 2000)), rng.standard_t(3, size=(16, 1000))]
    x = np.concatenate([s.ravel() for s in samples])

    def mse(c):
        step = c / fmt.qmax
        return np.mean((np.clip(np.round(x / step), -fmt.qmax, fmt.qmax) * step - x) ** 2)
    grid = np.linspace(np.abs(x).max() / 400, np.abs(x).max(), 400)
    best = min(mse(c) for c in grid)
    assert mse(calibrate_clip(samples, fmt, "mse")) <= 1.01 * best


def test_calibrate_clip_per_vector_is_each_vectors_max_over_every_column():
    rng = np.random.default_rng(3)
    samples = [rng.standard_normal((10, 4)), rng.standard_normal((10, 6))]      # K = 10, V = 4: padded to 12
    A = np.hstack(samples)
    clips = calibrate_clip(samples, INT8, "max", vector=4)
    assert clips.shape == (3,)
    for v, rows in enumerate([range(0, 4), range(4, 8), range(8, 10)]):
        assert clips[v] == max(abs(A[k, m]) for k in rows for m in range(A.shape[1]))


@pytest.mark.parametrize("samples,message", [([], "at least one"), ([np.ones((3, 2)), np.ones((4, 2))], "one K"),
                                             ([np.ones(3)], "2-D")])
def test_calibrate_clip_rejects_bad_samples(samples, message):
    with pytest.raises(ValueError, match=message):
        calibrate_clip(samples, INT8)


# -- quantize_static ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [INT4, INT8])
def test_quantize_static_per_tensor_codes_are_nearest_on_the_clip_grid(fmt):
    rng = np.random.default_rng(4)
    A = rng.standard_normal((12, 9))
    clip = 1.5                                              # some values beyond it: they saturate
    q = quantize_static(A, fmt, clip)
    step = clip / fmt.qmax
    assert np.array_equal(q.codes, nearest_codes(A, step, fmt.qmax))
    assert np.all(np.abs(q.codes[np.abs(A) > clip + step / 2]) == fmt.qmax)
    assert np.allclose(q.dequantize(), q.codes * step)


def test_quantize_static_per_vector_scales_are_fixed_and_nearest():
    """Static: the same clips give the same fields and gamma for any activations; each field is the integer in
    [1, 255] nearest to s_v / gamma, the largest vector gets 255, and each code is nearest on its vector's grid."""
    rng = np.random.default_rng(5)
    K, V, fmt = 20, 8, INT8
    clip = np.array([4.0, 0.013, 1.7])                      # K = 20 padded to 24: 3 vectors
    q1 = quantize_static(rng.standard_normal((K, 5)), fmt, clip, vector=V)
    A = rng.standard_normal((K, 7)) * 2
    q2 = quantize_static(A, fmt, clip, vector=V)
    assert np.array_equal(q1.scales[:, :1], q2.scales[:, :1]) and np.array_equal(q1.gamma, q2.gamma)
    assert np.all(q2.scales == q2.scales[:, :1])            # the same field for every column
    gamma = q2.gamma.item()
    s = clip / fmt.qmax
    assert gamma == pytest.approx(s.max() / 255)
    fields = np.arange(1, 256)
    expected = fields[np.argmin(np.abs(s[:, None] - fields * gamma), axis=1)]
    assert np.array_equal(q2.scales[:, 0], expected)
    steps = np.repeat(expected * gamma, V)[:K, None]
    assert np.array_equal(q2.codes[:K], nearest_codes(A, steps, fmt.qmax))
    assert np.all(q2.codes[K:] == 0)


@pytest.mark.parametrize("clip,vector,message", [(-1.0, None, "non-negative"), (np.inf, None, "finite"),
                                                 (np.ones(3), None, "one number"), (np.ones(2), 8, r"shape \(3,\)")])
def test_quantize_static_rejects_bad_clips(clip, vector, message):
    with pytest.raises(ValueError, match=message):
        quantize_static(np.ones((20, 2)), INT8, clip, vector=vector)


# -- best_vector_scales ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,top", [(INT4, 15), (INT8, 255), (INT4, 3)])
def test_best_vector_scales_int_is_the_better_of_floor_and_ceil_and_never_worse_than_nearest(fmt, top):
    rng = np.random.default_rng(6)
    C, G, V = 6, 10, 16
    blocks = rng.standard_t(4, size=(C, G, V)) * rng.uniform(0.01, 5, size=(C, G, 1))
    s = np.abs(blocks).max(axis=-1, keepdims=True) / fmt.qmax
    gamma = s.max(axis=1, keepdims=True) / top
    ratio = s / gamma
    fields = best_vector_scales(blocks, ratio, gamma, fmt.qmax, "int", top)
    assert fields.shape == (C, G, 1)
    strictly_better = 0
    for c in range(C):
        for g in range(G):
            r, x, gm = ratio[c, g, 0], blocks[c, g], gamma[c, 0, 0]
            candidates = sorted({int(np.clip(np.floor(r), 1, top)), int(np.clip(np.ceil(r), 1, top))})
            errors = {f: vector_sse(x, f, gm, fmt.qmax) for f in candidates}
            best = min(errors.values())
            assert errors[fields[c, g, 0]] == pytest.approx(best, rel=1e-12, abs=0)
            nearest = int(np.clip(np.floor(r + 0.5), 1, top))
            rtn = vector_sse(x, nearest, gm, fmt.qmax)
            assert errors[fields[c, g, 0]] <= rtn * (1 + 1e-12)
            strictly_better += errors[fields[c, g, 0]] < rtn * (1 - 1e-9)
    assert strictly_better > 0                              # the choice matters on some vectors


def test_best_vector_scales_pow2_never_worse_than_rounding_up():
    rng = np.random.default_rng(7)
    C, G, V, top, qmax = 4, 12, 8, 15, INT4.qmax
    blocks = rng.standard_normal((C, G, V)) * np.exp2(rng.uniform(-6, 0, size=(C, G, 1)))
    s = np.abs(blocks).max(axis=-1, keepdims=True) / qmax
    gamma = s.max(axis=1, keepdims=True) / 2.0 ** top
    fields = best_vector_scales(blocks, s / gamma, gamma, qmax, "pow2", top)
    for c in range(C):
        for g in range(G):
            x, gm, r = blocks[c, g], gamma[c, 0, 0], s[c, g, 0] / gamma[c, 0, 0]
            up = next(e for e in range(top + 1) if 2.0 ** e >= r)      # smallest exponent that clips nothing
            chosen = vector_sse(x, 2.0 ** fields[c, g, 0], gm, qmax)
            assert fields[c, g, 0] in (up - 1, up)
            assert chosen <= vector_sse(x, 2.0 ** up, gm, qmax) * (1 + 1e-12)
            assert chosen <= vector_sse(x, 2.0 ** max(up - 1, 0), gm, qmax) * (1 + 1e-12)


@pytest.mark.parametrize("fmt,bits", [(INT4, 4), (INT8, 8)])
def test_quantize_vsq_best_never_worse_than_quantize_vsq_per_vector(fmt, bits):
    rng = np.random.default_rng(8)
    W = rng.standard_t(3, size=(8, 70))
    best = quantize_vsq_best(W, fmt, 16, bits, 1)
    rtn = quantize_vsq(W, fmt, 16, bits, 1, "channel")
    assert np.array_equal(best.gamma, rtn.gamma)
    pad = np.pad(W, ((0, 0), (0, best.padded_length - W.shape[1])))
    e_best = ((np.pad(best.dequantize(), ((0, 0), (0, pad.shape[1] - 70))) - pad) ** 2).reshape(8, -1, 16).sum(-1)
    e_rtn = ((np.pad(rtn.dequantize(), ((0, 0), (0, pad.shape[1] - 70))) - pad) ** 2).reshape(8, -1, 16).sum(-1)
    assert np.all(e_best <= e_rtn * (1 + 1e-12))
    assert e_best.sum() < e_rtn.sum()


# -- hessian and gptq --------------------------------------------------------------------------------------------

def test_hessian_is_twice_the_mean_outer_product_of_the_columns():
    rng = np.random.default_rng(9)
    samples = [rng.standard_normal((5, 3)), rng.standard_normal((5, 4))]
    columns = [s[:, m] for s in samples for m in range(s.shape[1])]
    expected = 2 * sum(np.outer(c, c) for c in columns) / len(columns)
    assert np.allclose(hessian(samples), expected, rtol=1e-13)


@pytest.mark.parametrize("fmt,scheme,vector,bits", [(INT4, "per-channel", None, None), (INT8, "per-tensor", None, None),
                                                   (INT4, "vector", 16, 8), (INT4, "vector", 16, 4)])
def test_gptq_with_an_identity_hessian_has_no_error_feedback(fmt, scheme, vector, bits):
    """H = I: every column's error is orthogonal to the others, so nothing is fed forward; per tensor / per channel
    the codes are round-to-nearest's, and per vector each vector is reproduced as well as by the min-error scale
    choice (quantize_vsq_best) of the same weights."""
    rng = np.random.default_rng(10)
    W = rng.standard_normal((6, 64))
    g = gptq(W, np.eye(64), fmt, scheme, vector, bits)
    if scheme == "vector":
        ref = quantize_vsq_best(W, fmt, vector, bits, 1)
    else:
        ref = quantize(W, fmt, scheme, 1)
    assert np.array_equal(g.codes, ref.codes) and np.array_equal(g.scales, ref.scales)
    assert np.allclose(g.gamma, ref.gamma)


@pytest.mark.parametrize("fmt,scheme,vector,bits", [(INT4, "per-channel", None, None), (INT8, "per-tensor", None, None),
                                                   (INT8, "per-channel", None, None), (INT4, "vector", 16, 8),
                                                   (INT4, "vector", 32, 4)])
def test_gptq_beats_round_to_nearest_on_correlated_inputs(fmt, scheme, vector, bits):
    """One random layer with correlated calibration inputs: GPTQ's layer-output error ||W X - Q(W) X|| is below
    round-to-nearest's, on the calibration inputs and on fresh inputs of the same distribution."""
    rng = np.random.default_rng(11)
    K, N = 128, 32
    mix = rng.standard_normal((K, K // 4))
    gain = rng.uniform(0.2, 3.0, size=(K, 1))

    def inputs(m):
        return (mix @ rng.standard_normal((K // 4, m)) + 0.1 * rng.standard_normal((K, m))) * gain
    X, X_test = inputs(512), inputs(512)
    W = rng.standard_normal((N, K))
    g = gptq(W, hessian([X]), fmt, scheme, vector, bits)
    rtn = quantize(W, fmt, scheme, 1, vector, bits)
    assert np.all(np.abs(g.codes) <= fmt.qmax)
    for x in (X, X_test):
        err_gptq = np.linalg.norm(W @ x - g.dequantize() @ x)
        err_rtn = np.linalg.norm(W @ x - rtn.dequantize() @ x)
        assert err_gptq < 0.9 * err_rtn


def test_gptq_keeps_the_2_4_mask_and_zeroes_dead_inputs():
    rng = np.random.default_rng(12)
    K, N = 32, 8
    X = correlated(rng, K, 200)
    X[5] = 0.0                                              # an input that is always zero
    W = rng.standard_normal((N, K))
    keep = np.zeros((N, K), dtype=bool)
    for n in range(N):
        for g in range(0, K, 4):
            keep[n, g + rng.choice(4, 2, replace=False)] = True
    q = gptq(W, hessian([X]), INT8, "per-channel", keep=keep)
    assert np.all(q.codes[~keep] == 0)
    assert np.all(q.codes[:, 5] == 0)
    assert np.any(q.codes[keep] != 0)


@pytest.mark.parametrize("kwargs,message", [({"damp": 0}, "damp"), ({"H": np.eye(3)}, "H must be 4 x 4"),
                                            ({"scheme": "rows"}, "scheme"), ({"block": 0}, "block")])
def test_gptq_rejects_bad_arguments(kwargs, message):
    args = {"W": np.ones((2, 4)), "H": np.eye(4), "fmt": INT8, "scheme": "per-channel"} | kwargs
    with pytest.raises(ValueError, match=message):
        gptq(**args)


# -- smoothing_factors ------------------------------------------------------------------------------------------

def outlier_layer(rng, K=64, N=32, M=256):
    """Weights and calibration/test activations of a layer whose inputs have three outlier channels (40x), as a
    transformer's post-LayerNorm activations do."""
    W = rng.standard_normal((N, K)) * 0.1
    scale = np.ones((K, 1))
    scale[[3, 17, 40]] = 40.0
    return W, [rng.standard_normal((K, M)) * scale for _ in range(2)], rng.standard_normal((K, M)) * scale


def test_smoothing_factors_follow_the_definition():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((5, 4))
    W[:, 2] = 0
    samples = [rng.standard_normal((4, 6)), rng.standard_normal((4, 3)) * 5]
    samples[0][1] = 0
    samples[1][1] = 0
    for alpha in (0, 0.5, 0.8, 1):
        s = smoothing_factors(samples, W, alpha)
        for j in range(4):
            a = max(abs(x[j, i]) for x in samples for i in range(x.shape[1]))
            w = max(abs(W[n, j]) for n in range(5))
            expected = 1.0 if a == 0 or w == 0 else a ** alpha / w ** (1 - alpha)
            assert s[j] == pytest.approx(expected, rel=1e-12), (alpha, j)


def test_smoothing_is_exact_in_float_and_balances_the_ranges():
    rng = np.random.default_rng(4)
    W, cal, X = outlier_layer(rng)
    s = smoothing_factors(cal, W, 0.5)
    np.testing.assert_allclose((W * s) @ (X / s[:, None]), W @ X, rtol=1e-10, atol=1e-10)
    # alpha 0.5: the smoothed activations' and weights' channel maxima are equal on the calibration set
    a = np.max(np.abs(np.concatenate(cal, axis=1)), axis=1) / s
    np.testing.assert_allclose(a, np.max(np.abs(W * s), axis=0), rtol=1e-12)


@pytest.mark.parametrize("fmt,w_scheme,a_scheme", [(INT8, "per-tensor", "per-tensor"),
                                                   (INT8, "per-channel", "per-channel"),
                                                   (INT4, "per-channel", "per-channel")])
def test_smoothing_lowers_the_error_of_a_layer_with_activation_outliers(fmt, w_scheme, a_scheme):
    """W8A8 / W4A4 (per tensor, or per output channel and per token): on held-out inputs of a layer with three
    outlier input channels, SmoothQuant (alpha 0.5) lowers ||W X - Q(W s) Q(X / s)|| below ||W X - Q(W) Q(X)||."""
    rng = np.random.default_rng(5)
    W, cal, X = outlier_layer(rng)

    def error(Wt, Xt):
        y = quantize(Wt, fmt, w_scheme, 1).dequantize() @ quantize(Xt, fmt, a_scheme, 0).dequantize()
        return np.linalg.norm(W @ X - y)
    s = smoothing_factors(cal, W, 0.5)
    plain, smooth = error(W, X), error(W * s, X / s[:, None])
    assert smooth < 0.7 * plain


@pytest.mark.parametrize("args,message", [
    ((1.5,), "alpha must be a number from 0 to 1, not 1.5"),
    ((True,), "alpha must be a number from 0 to 1, not True"),
    ((0.5, np.zeros((3, 5))), "samples must be K x M with K = 5 (the weights' columns), not shapes [(4, 6)]"),
])
def test_smoothing_factors_reject_bad_input(args, message):
    W = args[1] if len(args) > 1 else np.ones((3, 4))
    with pytest.raises(ValueError) as e:
        smoothing_factors([np.ones((4, 6))], W, args[0])
    assert str(e.value) == message


# -- hadamard_rotation ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,block,b", [(8, None, 8), (384, None, 128), (384, 16, 16), (24, None, 8), (27, None, 1)])
def test_hadamard_rotation_is_orthonormal_block_hadamard(k, block, b):
    R = hadamard_rotation(k, block)
    np.testing.assert_allclose(R @ R.T, np.eye(k), atol=1e-12)
    # block-diagonal with b x b blocks of entries +-1/sqrt(b); the first row and column of a block all positive
    for i in range(k):
        for j in range(k):
            assert abs(R[i, j]) == pytest.approx(1 / np.sqrt(b) if i // b == j // b else 0.0, abs=1e-15)
    assert np.all(R[::b, :][np.arange(k // b), np.arange(0, k, b)] > 0)


def test_hadamard_rotation_spreads_an_outlier_channel_and_lowers_int4_error():
    """W4A4 per channel / per token on a layer with outlier input channels: rotating K (exact in float) lowers the
    error of the quantized product."""
    rng = np.random.default_rng(6)
    W, _, X = outlier_layer(rng)
    R = hadamard_rotation(W.shape[1])
    np.testing.assert_allclose((W @ R) @ (R.T @ X), W @ X, rtol=1e-10, atol=1e-9)

    def error(Wt, Xt):
        y = quantize(Wt, INT4, "per-channel", 1).dequantize() @ quantize(Xt, INT4, "per-channel", 0).dequantize()
        return np.linalg.norm(W @ X - y)
    assert error(W @ R, R.T @ X) < 0.85 * error(W, X)          # measured 0.79


def test_hadamard_rotation_rejects_bad_sizes():
    with pytest.raises(ValueError, match="k"):
        hadamard_rotation(0)
