"""The host LNS quantizer: exponents, round trips, padding, clips, errors and the reference product."""

import numpy as np
import pytest

from qmac.hw.spec.log_format import LNS4, LNS8, LogFormat
from qmac.sim.evaluate import synthetic
from qmac.sim.log_format import decode, thresholds
from qmac.sim.log_quantize import LogTensor, log_gemm_reference, quantize_log
from qmac.sim.quantize import sqnr_db

#: LNS8 with F = 4 (the ``frac_bits = 4`` variant of the lns8 mode): steps of 2**(1/16) over 7.9 octaves.
LNS8_F4 = LogFormat(8, 4)
FORMATS = (LNS8, LNS4, LogFormat(4, 1), LNS8_F4)


def _exponents(t):
    """``offset + s_v`` of every element of ``t.codes``, computed here from the members."""
    if t.scales is None:
        return np.full(t.codes.shape, t.offset)
    s = t.scales if t.axis == 1 else t.scales.T
    e = t.offset + np.repeat(s, t.vector, axis=1)
    return e if t.axis == 1 else e.T


def _cut(t, values):
    """``values`` (the shape of ``t.codes``) without the padding."""
    return values[:, :t.length] if t.axis == 1 else values[:t.length, :]


def _scaled(t, x):
    """``x``, zero-padded like ``t.codes``, divided by each element's scale ``2**((offset + s_v) / 2**F)``."""
    padded = np.zeros(t.codes.shape)
    _cut(t, padded)[...] = x
    return padded / np.exp2(_exponents(t) / t.fmt.buckets)


def _vectors(t, values):
    """``values`` (the shape of ``t.codes``) as ``(channels, vectors, V)``."""
    rows = values if t.axis == 1 else values.T
    return rows.reshape(rows.shape[0], -1, t.vector)


def _upper(fmt):
    """Half a log-domain step above the largest magnitude: beyond it rounding turns into saturation."""
    return 2.0 ** ((fmt.max_exponent + 0.5) / fmt.buckets)


def _scale_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


CASES = [(None, 0), (16, 4), (8, 8), (5, 2)]


# -- round trips ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("vector, scale_bits", CASES)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("clip", ["max", "percentile", "mse"])
def test_round_trip(fmt, vector, scale_bits, axis, clip):
    x = synthetic("student-t3", (24, 70), seed=3)
    t = quantize_log(x, fmt, axis, vector, scale_bits, clip)
    y, field = _scaled(t, x), t.codes & ((1 << fmt.field_bits) - 1)
    thr = thresholds(fmt)
    inside = (np.abs(y) >= thr[0]) & (np.abs(y) <= _upper(fmt))
    half_step = 2.0 ** (1 / (2 * fmt.buckets)) - 1
    got = decode(fmt, t.codes)
    assert np.all(np.abs(got - y)[inside] <= half_step * np.abs(y)[inside] * (1 + 1e-12))
    assert np.all(np.sign(got)[inside] == np.sign(y)[inside])
    assert np.all(t.codes[np.abs(y) < thr[0]] == 0)
    assert np.all(field[np.abs(y) > thr[-1]] == (1 << fmt.field_bits) - 1)
    # dequantize() is decode(codes) times the element's scale, cut back to K.
    np.testing.assert_array_equal(t.dequantize(), _cut(t, got * np.exp2(_exponents(t) / fmt.buckets)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("vector, scale_bits", CASES)
def test_max_clip_puts_vector_peaks_on_the_top_code(fmt, vector, scale_bits):
    x = synthetic("laplacian", (16, 96), seed=4) * np.exp2(np.arange(96) // 16)[None, :]
    t = quantize_log(x, fmt, 1, vector, scale_bits)
    y = np.abs(_scaled(t, x))
    thr = thresholds(fmt)
    assert y.max() <= _upper(fmt) * (1 + 1e-12)      # nothing saturates beyond rounding
    top = (1 << fmt.field_bits) - 1
    field = t.codes & top
    if vector is None:
        assert field.max() == top
        return
    lo, hi = _scale_range(scale_bits)
    assert t.scales.max() == hi                      # anchored at the largest vector
    peaks = _vectors(t, field).max(axis=2)
    # Only a vector clamped to the smallest scale may fall short of the top code.
    assert np.all(peaks[t.scales > lo] == top)


@pytest.mark.parametrize("vector, scale_bits", [(16, 4), (16, 1), (4, 8)])
def test_scales_in_range_and_padding(vector, scale_bits):
    x = synthetic("gaussian", (7, 37), seed=5) * np.exp2(np.linspace(-12, 12, 37))[None, :]
    for axis, data in ((1, x), (0, x.T)):
        t = quantize_log(data, LNS8, axis, vector, scale_bits)
        vectors = -(-37 // vector)
        assert t.padded_length == vectors * vector and t.length == 37
        assert t.codes.shape == ((7, vectors * vector) if axis == 1 else (vectors * vector, 7))
        assert t.scales.shape == ((7, vectors) if axis == 1 else (vectors, 7))
        assert t.codes.dtype == t.scales.dtype == np.int64
        lo, hi = _scale_range(scale_bits)
        assert lo <= t.scales.min() and t.scales.max() <= hi
        pad = t.codes[:, 37:] if axis == 1 else t.codes[37:, :]
        assert pad.size and not pad.any()
        assert t.dequantize().shape == data.shape


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("vector, scale_bits", CASES)
@pytest.mark.parametrize("clip", ["max", "mse"])
def test_axes_are_transposes(fmt, vector, scale_bits, clip):
    x = synthetic("laplacian", (9, 40), seed=6)
    w, a = quantize_log(x, fmt, 1, vector, scale_bits, clip), quantize_log(x.T, fmt, 0, vector, scale_bits, clip)
    assert w.offset == a.offset
    np.testing.assert_array_equal(w.codes, a.codes.T)
    if vector is not None:
        np.testing.assert_array_equal(w.scales, a.scales.T)
    np.testing.assert_array_equal(w.dequantize(), a.dequantize().T)


# -- choices of the exponents --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, octaves", [(LNS8, 40), (LNS4, 6), (LogFormat(4, 1), 6)])
def test_vector_scales_beat_one_tensor_exponent(fmt, octaves):
    # Vectors whose magnitudes spread over more octaves than the format spans: a tensor exponent flushes
    # the small ones to zero, per-vector scales keep every vector at full precision.
    rng = np.random.default_rng(7)
    x = synthetic("gaussian", (32, 256), seed=7) * np.repeat(np.exp2(rng.uniform(-octaves, 0, (32, 16))), 16, 1)
    # SQNR over the whole tensor is set by the largest vectors, so compare the median vector's SQNR.
    def median_vector_sqnr(t):
        pairs = zip(x.reshape(-1, 16), t.dequantize().reshape(-1, 16))
        return np.median([sqnr_db(ref, approx) for ref, approx in pairs])

    tensor = median_vector_sqnr(quantize_log(x, fmt, 1))
    vector = median_vector_sqnr(quantize_log(x, fmt, 1, 16, 8))
    assert vector > tensor + 3


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("vector, scale_bits", CASES)
@pytest.mark.parametrize("dist", ["gaussian", "student-t3"])
def test_mse_clip_never_loses_to_max(fmt, vector, scale_bits, dist):
    x = synthetic(dist, (16, 64), seed=8)
    error = {clip: np.sum((quantize_log(x, fmt, 1, vector, scale_bits, clip).dequantize() - x) ** 2)
             for clip in ("max", "mse")}
    assert error["mse"] <= error["max"] * (1 + 1e-12)


def test_lns8_f4_needs_vector_scales_on_heavy_tails():
    # Log rounding errs by a relative amount uniform in [2**(-1/(2 * 2**F)), 2**(1/(2 * 2**F))]: an element
    # SQNR of -10 log10((ln 2 / 2**F)**2 / 12), 32.04 dB at F = 3 and 38.06 dB at F = 4, whatever the data,
    # as long as the format's range holds it. F = 4 spans 7.9 octaves: per tensor a Student-t(3) tensor's
    # outliers push most samples towards the bottom, 6-bit scales (4 octaves in sixteenths) per vector of 16
    # recentre every vector and reach the limit.
    limit = {f.frac_bits: -10 * np.log10((np.log(2) / f.buckets) ** 2 / 12) for f in (LNS8, LNS8_F4)}
    assert round(limit[3], 2) == 32.04 and round(limit[4], 2) == 38.06
    for dist in ("gaussian", "laplacian", "student-t3"):
        x = synthetic(dist, (64, 1024), seed=12)
        f3 = sqnr_db(x, quantize_log(x, LNS8, 1, clip="mse").dequantize())
        f4 = sqnr_db(x, quantize_log(x, LNS8_F4, 1, 16, 6, "mse").dequantize())
        assert limit[3] - 0.3 < f3 < limit[3] + 0.3 and limit[4] - 0.3 < f4 < limit[4] + 0.3, dist
    tensor = sqnr_db(x, quantize_log(x, LNS8_F4, 1, clip="mse").dequantize())
    assert tensor < limit[4] - 8


def test_mse_clip_helps_narrow_formats():
    # LNS4 spans 1.5 octaves: a tensor exponent at the peak flushes most Gaussian samples to zero.
    x = synthetic("gaussian", (64, 256), seed=9)
    error = {clip: np.sum((quantize_log(x, LNS4, 1, clip=clip).dequantize() - x) ** 2) for clip in ("max", "mse")}
    assert error["mse"] < 0.5 * error["max"]


def test_percentile_clip_is_not_above_max():
    x = synthetic("student-t3", (64, 256), seed=10)
    assert quantize_log(x, LNS8, 1, clip="percentile").offset < quantize_log(x, LNS8, 1).offset


def test_zero_tensor_and_zero_vectors():
    zero = quantize_log(np.zeros((3, 20)), LNS8, 1, 8, 4)
    assert zero.offset == 0 and not zero.scales.any() and not zero.codes.any()
    assert not zero.dequantize().any()
    assert quantize_log(np.zeros((3, 20)), LNS4, 0).offset == 0

    x = synthetic("gaussian", (4, 32), seed=11)
    x[1, 8:16] = 0.0                                   # vector 1 of row 1
    x[:, 24:] = 0.0                                    # vector 3 of every row
    for clip in ("max", "percentile", "mse"):
        t = quantize_log(x, LNS8, 1, 8, 4, clip)
        assert t.scales[1, 1] == 0 and not t.scales[:, 3].any()
        assert not t.codes[1, 8:16].any() and not t.dequantize()[:, 24:].any()
        # the other vectors are quantized as without the zero ones
        rest = quantize_log(x[:, :24][[0, 2, 3]], LNS8, 1, 8, 4, clip)
        np.testing.assert_array_equal(t.codes[[0, 2, 3], :24], rest.codes)


def test_powers_of_the_step_are_exact_and_the_reference_product():
    # Every element a signed power of 2**(1/2**F) within the format's range: quantized exactly, so the
    # reference product is the float product of the originals.
    fmt, rng = LNS8, np.random.default_rng(12)
    k = 48

    def exact(shape):
        return rng.choice([-1, 1], shape) * np.exp2(rng.integers(-40, 41, shape) / fmt.buckets)

    W, A = exact((6, k)), exact((k, 5))
    for vector, bits in ((None, 0), (16, 4)):
        w, a = quantize_log(W, fmt, 1, vector, bits), quantize_log(A, fmt, 0, vector, bits)
        np.testing.assert_allclose(w.dequantize(), W, rtol=1e-14)
        np.testing.assert_allclose(log_gemm_reference(w, a), W @ A, rtol=1e-12, atol=1e-12)


def test_reference_product_checks_operands():
    W = synthetic("gaussian", (4, 32), seed=13)
    w, a = quantize_log(W, LNS8, 1), quantize_log(W.T, LNS8, 0)
    with pytest.raises(ValueError, match="^w must be quantized along axis 1 \\(weights, N x K\\), not axis 0$"):
        log_gemm_reference(a, a)
    with pytest.raises(ValueError, match="^a must be quantized along axis 0 \\(activations, K x M\\), not axis 1$"):
        log_gemm_reference(w, w)
    with pytest.raises(ValueError, match="^a must have the K of w \\(32\\), not 4$"):
        log_gemm_reference(w, quantize_log(W, LNS8, 0))


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((np.zeros(4), LNS8, 1), {}, ValueError, r"x must be a non-empty 2-D array, not shape \(4,\)"),
    ((np.zeros((0, 3)), LNS8, 1), {}, ValueError, r"x must be a non-empty 2-D array, not shape \(0, 3\)"),
    ((np.array([[1.0, np.nan]]), LNS8, 1), {}, ValueError, "x must be finite, not nan"),
    ((np.array([[np.inf]]), LNS8, 1), {}, ValueError, "x must be finite, not inf"),
    ((np.ones((2, 2)), "lns8", 1), {}, TypeError, "fmt must be a LogFormat, not 'lns8'"),
    ((np.ones((2, 2)), LNS8, 2), {}, ValueError, "axis must be 0 or 1, not 2"),
    ((np.ones((2, 2)), LNS8, True), {}, ValueError, "axis must be 0 or 1, not True"),
    ((np.ones((2, 2)), LNS8, 1), {"vector": 0, "scale_bits": 4}, ValueError,
     "vector must be a positive integer, not 0"),
    ((np.ones((2, 2)), LNS8, 1), {"vector": 2.0, "scale_bits": 4}, ValueError,
     "vector must be a positive integer, not 2.0"),
    ((np.ones((2, 2)), LNS8, 1), {"vector": 16}, ValueError, "scale_bits must be an integer from 1 to 8, not 0"),
    ((np.ones((2, 2)), LNS8, 1), {"vector": 16, "scale_bits": 9}, ValueError,
     "scale_bits must be an integer from 1 to 8, not 9"),
    ((np.ones((2, 2)), LNS8, 1), {"scale_bits": 4}, ValueError, "scale_bits must be 0 without vectors, not 4"),
    ((np.ones((2, 2)), LNS8, 1), {"clip": "octav"}, ValueError,
     "clip must be one of max, percentile, mse, not 'octav'"),
])
def test_arguments_are_checked(args, kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        quantize_log(*args, **kwargs)


def test_log_tensor_is_the_documented_record():
    t = quantize_log(synthetic("gaussian", (10, 3), seed=14), LNS4, 0, 4, 3)
    assert isinstance(t, LogTensor)
    assert (t.fmt, t.vector, t.scale_bits, t.axis, t.length) == (LNS4, 4, 3, 0, 10)
    assert isinstance(t.offset, int)
    with pytest.raises(AttributeError):
        t.offset = 0
