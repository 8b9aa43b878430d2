"""Energy per MAC from the gate-level netlist (qmac/energy.py, qmac/toolchain/gate_sim.py, qmac energy).

Three gate-level builds of 2x2-unit, 4-lane cores (INT8-only, INT4-only, W4A8-only) are shared by the module;
each is cached under build/ by its netlist, so a second run of the file does not rebuild them. The INT8 and INT4
measurements are module fixtures, each made once (the module runs on one pytest-xdist worker)."""

import json

import numpy as np
import pytest

from qmac.cli import main
from qmac.energy import component_of, measure_energy
from qmac.hw.spec.config import CoreConfig

#: One pytest-xdist worker runs the module, so each module fixture (a gate-level measurement) is computed once.
pytestmark = pytest.mark.xdist_group("energy")

INT8 = CoreConfig(rows=2, cols=2, lanes=4, modes=("int8",), max_k=1024)
INT4 = INT8.replace(modes=("int4",))
W4A8 = INT8.replace(modes=("w4a8",))


def _random(rng, lo, hi, n, k, m):
    return rng.integers(lo, hi + 1, (n, k)), rng.integers(lo, hi + 1, (k, m))


@pytest.fixture(scope="module")
def int8_random():
    W, A = _random(np.random.default_rng(1), -128, 127, 4, 256, 4)
    W[0, :8], A[:8, 0] = -128, -128  # the extreme product, 2**14, eight times in one tile
    return W, A, measure_energy(INT8, "int8", W, A)


@pytest.fixture(scope="module")
def int4_random():
    W, A = _random(np.random.default_rng(2), -8, 7, 4, 512, 4)
    return W, A, measure_energy(INT4, "int4", W, A)


def test_gate_level_result_equals_the_product(int8_random):
    W, A, r = int8_random
    assert np.array_equal(r["Y"], W @ A)
    assert r["bit_exact"] is True
    assert r["macs"] == 4 * 256 * 4
    assert r["toggle_coverage"] > 0.95


def test_energy_grows_linearly_with_cycles_of_the_same_data(int8_random):
    W, A, once = int8_random
    thrice = measure_energy(INT8, "int8", W, A, repeat=3)
    assert thrice["bit_exact"] is True
    assert thrice["cycles"] == pytest.approx(3 * once["cycles"], rel=0.02)
    assert thrice["energy"] == pytest.approx(3 * once["energy"], rel=0.02)
    assert thrice["energy_per_mac"] == pytest.approx(once["energy_per_mac"], rel=0.02)


def test_zero_operands_cost_only_clock_and_control(int8_random):
    W, A, random = int8_random
    zeros = measure_energy(INT8, "int8", np.zeros_like(W), np.zeros_like(A))
    assert zeros["bit_exact"] is True and not zeros["Y"].any()
    ratio = zeros["energy"] / random["energy"]
    assert 0.05 < ratio < 0.35, ratio
    c = zeros["by_component"]
    assert c["clock"] + c.get("control", 0.0) > 0.9 * zeros["energy_per_mac"]
    # The clock costs the same per cycle whatever the data.
    assert c["clock"] == pytest.approx(random["by_component"]["clock"], rel=0.01)


def test_multipliers_dominate_on_random_int8(int8_random):
    c = int8_random[2]["by_component"]
    assert max(c, key=c.get) == "lanes"
    assert c["lanes"] > c["adder trees"] > c["accumulators"] > c.get("shadow/drain", 0.0)


def test_int4_costs_at_most_half_of_int8_per_mac(int8_random, int4_random):
    W, A, int4 = int4_random
    assert int4["bit_exact"] is True and np.array_equal(int4["Y"], W @ A)
    assert int4["energy_per_mac"] <= 0.5 * int8_random[2]["energy_per_mac"]


def test_w4a8_costs_less_than_int8_and_more_than_int4_per_mac(int8_random, int4_random):
    """A W4A8 lane multiplies a 4-bit weight by an 8-bit activation: half the partial products of an 8x8 multiply,
    and a beat carries twice the MACs of an INT8 beat through the same adder trees, accumulators and clock; so
    less than three quarters of INT8 per MAC. Its 4x8 products cost more than INT4's 4x4."""
    rng = np.random.default_rng(3)
    W, A = rng.integers(-8, 8, (4, 512)), rng.integers(-128, 128, (512, 4))
    w4a8 = measure_energy(W4A8, "w4a8", W, A)
    assert w4a8["bit_exact"] is True and np.array_equal(w4a8["Y"], W @ A)
    int8 = int8_random[2]["energy_per_mac"]
    assert w4a8["energy_per_mac"] < 0.75 * int8
    assert w4a8["energy_per_mac"] > int4_random[2]["energy_per_mac"]


def test_cli_plot_writes_a_stacked_bar(tmp_path, capsys):
    """The breakdown chart of a run (the INT8 core of the module, cached): a PNG file, and the JSON report."""
    toml = tmp_path / "core.toml"
    toml.write_text(INT8.to_toml())
    plot = tmp_path / "energy.png"
    assert main(["energy", "--config", str(toml), "--distribution", "relu", "--shape", "4,64,4", "--json",
                 "--plot", str(plot)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bit_exact"] is True and report["macs"] == 4 * 64 * 4
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10000


@pytest.mark.parametrize("name, net, component", [
    ("$flatten\\array.\\u0_1.\\dot0.\\lane2.$abc$7423$auto$blifparse.cc:397:parse_blif$7562", "", "lanes"),
    ("$flatten\\array.\\u0_1.\\dot0.$abc$8443$auto$blifparse.cc:397:parse_blif$8557", "", "adder trees"),
    ("$flatten\\array.\\u1_0.$auto$ff.cc:337:slice$3015", "array.u1_0.acc", "accumulators"),
    ("$flatten\\array.\\u1_0.$auto$ff.cc:337:slice$3016", "array.u1_0.shadow", "shadow/drain"),
    ("$flatten\\array.\\u1_0.\\scales.$abc$1$x", "", "scale units"),
    ("$flatten\\array.\\u1_0.\\select.$abc$1$x", "", "sparse select"),
    ("$flatten\\combine.$abc$1$x", "", "output"),
    ("$flatten\\array.\\flags0_1.$abc$1$x", "", "control"),
    ("$abc$8980$auto$blifparse.cc:397:parse_blif$8981", "", "control"),
])
def test_component_from_instance_path(name, net, component):
    assert component_of(name, net) == component


@pytest.mark.parametrize("args, message", [
    (["--weights", "W.npy"], "qmac: error: --activations: None: allowed: both --weights and --activations, or "
                             "neither (synthetic operands)\n"),
    (["--shape", "4,8"], "qmac: error: --shape: '4,8': allowed: three positive integers N,K,M\n"),
    (["--repeat", "0"], "qmac: error: --repeat: '0': allowed: integers 1..1000\n"),
    (["--plot", "nofolder/p.png"], "qmac: error: --plot: 'nofolder/p.png': folder 'nofolder' does not exist; "
                                   "allowed: a file in an existing folder\n"),
    (["--plot", "p.bmp"], "qmac: error: --plot: 'p.bmp': allowed: a file name ending in .png, .pdf, .svg, .svgz, "
                          ".eps, .ps, .jpg, .jpeg, .tif, .tiff, .webp\n"),
    (["--preset", "tiny-out"], "qmac: error: --preset: 'tiny-out': energy: cores with output_stage = true are not "
                               "supported (the gate-level driver streams no requant parameters)\n"),
])
def test_cli_rejects_bad_arguments(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["energy", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("distribution", ["gaussian", "laplace", "t3", "uniform", "relu", "zeros"])
def test_synthetic_operands(distribution):
    from qmac.energy import synthetic_operands
    W, A = synthetic_operands(distribution, 3, 4000, 5, seed=7)
    assert W.shape == (3, 4000) and A.shape == (4000, 5)
    if distribution == "zeros":
        assert not W.any() and not A.any() and W.dtype == np.int64
        return
    kurtosis = ((W - W.mean()) ** 4).mean() / W.var() ** 2
    expected = {"gaussian": 3, "relu": 3, "laplace": 6, "uniform": 1.8}
    if distribution in expected:
        assert kurtosis == pytest.approx(expected[distribution], rel=0.2)
    else:
        assert kurtosis > 6  # Student-t(3): heavier tails than the Laplacian (infinite kurtosis)
    zeros = np.mean(A == 0)
    assert zeros == pytest.approx(0.5, abs=0.03) if distribution == "relu" else zeros == 0
