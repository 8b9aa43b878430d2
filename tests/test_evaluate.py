import math

import numpy as np
import pytest

from qmac.sim.evaluate import evaluate, format_table, synthetic

KEYS = {"format", "scheme", "vector", "scale_bits", "clip", "sqnr_w_db", "sqnr_a_db", "sqnr_y_db"}


def excess_kurtosis(x):
    x = x - x.mean()
    return np.mean(x ** 4) / np.mean(x ** 2) ** 2 - 3


def test_synthetic_distributions():
    g, l, t = (synthetic(name, (400, 500), seed=0) for name in ("gaussian", "laplacian", "student-t3"))
    for x in (g, l, t):
        assert x.shape == (400, 500)
        assert abs(x.mean()) < 0.02
    assert g.var() == pytest.approx(1, rel=0.02)
    assert l.var() == pytest.approx(1, rel=0.02)
    assert t.var() == pytest.approx(1, rel=0.2)          # infinite fourth moment: the sample variance wanders
    assert abs(excess_kurtosis(g)) < 0.1                 # Gaussian 0, Laplacian 3, Student-t(3) unbounded
    assert excess_kurtosis(l) == pytest.approx(3, abs=0.3)
    assert excess_kurtosis(t) > 6


def test_synthetic_is_seeded():
    np.testing.assert_array_equal(synthetic("laplacian", 100, seed=3), synthetic("laplacian", 100, seed=3))
    assert not np.array_equal(synthetic("laplacian", 100, seed=3), synthetic("laplacian", 100, seed=4))


def test_synthetic_rejects_unknown_name():
    with pytest.raises(ValueError) as info:
        synthetic("cauchy", 10)
    assert str(info.value) == "distribution must be one of gaussian, laplacian, student-t3, not 'cauchy'"


def test_evaluate_weights_only_sweep():
    W = synthetic("laplacian", (16, 128), seed=1)
    rows = evaluate(W, formats=("int4",), vectors=(16, 32), scale_bits=(4, 8), clips=("max", "mse"))
    assert len(rows) == (1 + 1 + 2 * 2) * 2
    assert all(set(row) == KEYS for row in rows)
    assert all(row["sqnr_a_db"] is None and row["sqnr_y_db"] is None for row in rows)
    assert [(r["scheme"], r["vector"], r["scale_bits"], r["clip"]) for r in rows[:6]] == [
        ("per-tensor", None, None, "max"), ("per-tensor", None, None, "mse"),
        ("per-channel", None, None, "max"), ("per-channel", None, None, "mse"),
        ("vector", 16, 4, "max"), ("vector", 16, 4, "mse")]
    assert all(math.isfinite(row["sqnr_w_db"]) for row in rows)


def test_evaluate_with_activations_measures_what_each_scheme_can_do():
    rng = np.random.default_rng(2)
    # Rows of W differ in size by up to 100x: per-channel scaling must beat per-tensor clearly.
    W = synthetic("gaussian", (32, 256), seed=2) * np.exp(rng.uniform(0, np.log(100), size=(32, 1)))
    A = synthetic("student-t3", (256, 8), seed=3)
    rows = evaluate(W, A, vectors=(16,), scale_bits=(8,), clips=("max",))
    assert len(rows) == 2 * 3
    sqnr = {(r["format"], r["scheme"]): r for r in rows}
    for key in ("sqnr_w_db", "sqnr_a_db", "sqnr_y_db"):
        for scheme in ("per-tensor", "per-channel", "vector"):
            assert sqnr["int8", scheme][key] > sqnr["int4", scheme][key] + 15    # 4 more bits: ~24 dB
    assert sqnr["int4", "per-channel"]["sqnr_w_db"] > sqnr["int4", "per-tensor"]["sqnr_w_db"] + 4
    assert sqnr["int4", "vector"]["sqnr_a_db"] > sqnr["int4", "per-channel"]["sqnr_a_db"] + 3


def test_evaluate_rejects_unknown_format():
    with pytest.raises(ValueError) as info:
        evaluate(np.ones((2, 4)), formats=("int2",))
    assert str(info.value) == "format must be one of int8, int4, w4a8, not 'int2'"


def test_format_table():
    rows = [dict(format="int4", scheme="vector", vector=16, scale_bits=4, clip="mse",
                 sqnr_w_db=19.876, sqnr_a_db=None, sqnr_y_db=None),
            dict(format="int8", scheme="per-tensor", vector=None, scale_bits=None, clip="max",
                 sqnr_w_db=33.2, sqnr_a_db=40.0, sqnr_y_db=math.inf)]
    assert format_table(rows) == (
        "| format | scheme | V | S | clip | SQNR W (dB) | SQNR A (dB) | SQNR Y (dB) |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| int4 | vector | 16 | 4 | mse | 19.88 | - | - |\n"
        "| int8 | per-tensor | - | - | max | 33.20 | 40.00 | inf |")


def test_w4a8_quantizes_weights_as_int4_and_activations_as_int8():
    rng = np.random.default_rng(4)
    W, A = rng.normal(size=(8, 64)), rng.laplace(size=(64, 5))
    rows = {r["format"]: r for r in evaluate(W, A, formats=("int8", "int4", "w4a8"), schemes=("vector",),
                                             vectors=(16,), scale_bits=(8,), clips=("max",))}
    assert rows["w4a8"]["sqnr_w_db"] == rows["int4"]["sqnr_w_db"]
    assert rows["w4a8"]["sqnr_a_db"] == rows["int8"]["sqnr_a_db"]
    assert rows["int8"]["sqnr_y_db"] > rows["w4a8"]["sqnr_y_db"] > rows["int4"]["sqnr_y_db"]
