"""The qmac command line, run as users run it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from qmac.hw.spec.config import PRESETS
from qmac.cli import main


def test_generate_without_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    v = (tmp_path / "build" / "qmac_core.v").read_text()
    assert "module qmac_core(" in v and "module qmac_core_mac_unit(" in v
    man = json.loads((tmp_path / "build" / "qmac_core.json").read_text())
    assert man["config"] == PRESETS["default"].to_dict()
    assert man["macs_per_cycle"] == {"int8": 1024, "int4": 2048}
    ports = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    assert ports["w__payload"] == ("in", 8 * 16 * 8) and ports["y__payload"] == ("out", 8 * 32 + 2)
    for name in ports:
        assert f" {name};" in v or f" {name} " in v or f"{name}," in v, name


@pytest.mark.parametrize("text,message", [
    ("rows = 0\n", "qmac: error: config key 'rows': 0 is out of range; allowed: integers 1..32\n"),
    ("lanes = 6\n", "qmac: error: config key 'lanes': 6 is not allowed; allowed: 4, 8, 16, 32, 64\n"),
    ("depth = 2\n", "qmac: error: config key 'depth' is unknown; allowed keys: rows, cols, lanes, modes, max_k, "
                    "acc_bits, tree_levels_per_stage, scale_bits, scale_kind, scale_lanes, output_stage, "
                    "output_rounding, sparse, frac_bits, p_bits, q_floor, bucket_organisation, bucket_fraction_bits, "
                    "mantissa_bits, window_bits, log_output, multiplier, shadow_banks\n"),
    ('modes = "int8"\n', "qmac: error: config key 'modes': 'int8' is not a non-empty list of mode names; "
                         "allowed: a non-empty subset of int8, int4, w4a8, or one of lns8, lns4\n"),
])
def test_invalid_config_exits_2_and_writes_nothing(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["generate", "--config", str(cfg), "--out", str(out)]) == 2
    assert capsys.readouterr().err == message
    assert not out.exists()


def test_console_script_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "qmac", "generate", "--preset", "nope"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr == ("qmac: error: --preset: 'nope': allowed: tiny, default, int8, int4-wide, vsq, tiny-out, "
                        "tiny-sparse, tiny-vsq, tiny-w4a8, lns8, tiny-lns8, tiny-lns4-vsq\n")


def _gemm(tmp_path, capsys, *args):
    assert main(["gemm", "--preset", "tiny", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.xdist_group("cli-engines")
@pytest.mark.parametrize("fmt,lo,hi", [("int8", -128, 128), ("int4", -8, 8)])
def test_gemm_engines_agree(tmp_path, capsys, monkeypatch, fmt, lo, hi, tb_build_root):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    rng = np.random.default_rng(4)
    W, A = rng.integers(lo, hi, (5, 37)), rng.integers(lo, hi, (37, 3))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "A.npy", A)
    files = ["--weights", "W.npy", "--activations", "A.npy", "--format", fmt]
    golden = _gemm(tmp_path, capsys, *files, "--out", "Yg.npy")
    assert golden["bit_exact"] is None and golden["cycles"] is None
    assert np.array_equal(np.load(tmp_path / "Yg.npy"), W @ A)
    for engine in ("icarus", "verilator"):
        r = _gemm(tmp_path, capsys, *files, "--engine", engine, "--stall", "0.25", "--out", f"Y{engine}.npy")
        assert r["engine"] == engine and r["bit_exact"] is True
        assert r["cycles"] >= r["ideal_cycles"] > 0 and 0 < r["utilization"] <= 1
        assert np.array_equal(np.load(tmp_path / f"Y{engine}.npy"), W @ A)


def test_gemm_float_inputs_report_sqnr(tmp_path, capsys):
    rng = np.random.default_rng(5)
    W, A = rng.normal(size=(6, 50)), rng.normal(size=(50, 4))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "A.npy", A)
    files = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy")]
    r8 = _gemm(tmp_path, capsys, *files)
    r4 = _gemm(tmp_path, capsys, *files, "--format", "int4")
    # about 6 dB per bit: INT8 is far better than INT4, and both are sane
    assert r8["sqnr_db"] > r4["sqnr_db"] + 15 and r4["sqnr_db"] > 5


def test_gemm_rejects_out_of_range_codes(tmp_path, capsys):
    np.save(tmp_path / "W.npy", np.full((2, 4), 9))
    np.save(tmp_path / "A.npy", np.ones((4, 2), dtype=np.int64))
    assert main(["gemm", "--preset", "tiny", "--format", "int4", "--weights", str(tmp_path / "W.npy"),
                 "--activations", str(tmp_path / "A.npy")]) == 2
    assert capsys.readouterr().err == (f"qmac: error: --weights: '{tmp_path / 'W.npy'}': codes span [9, 9]; "
                                       "allowed: [-8, 7]\n")


@pytest.mark.parametrize("kind,bits", [("int", 8), ("pow2", 3)])
def test_vsq_gemm_on_both_simulators(tmp_path, capsys, monkeypatch, tb_build_root, kind, bits):
    """Float operands quantized per vector (INT4, V = 16) run bit-exact on both simulators, and per-vector
    scaling beats per-tensor scaling on heavy-tailed weights."""
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    rng = np.random.default_rng(6)
    W = rng.standard_t(3, size=(5, 70)) * np.exp(rng.normal(size=(5, 70)))
    A = rng.normal(size=(70, 3))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "A.npy", A)
    files = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy"), "--format", "int4"]
    vsq = ["--scale", "vector", "--vector", "16", "--scale-bits", str(bits), "--scale-kind", kind]
    base = _gemm(tmp_path, capsys, *files)
    golden = _gemm(tmp_path, capsys, *files, *vsq, "--preset", "tiny-vsq")
    assert golden["sqnr_db"] > base["sqnr_db"] + 2
    for engine in ("icarus", "verilator"):
        r = _gemm(tmp_path, capsys, *files, *vsq, "--preset", "tiny-vsq", "--engine", engine, "--stall", "0.2")
        assert r["bit_exact"] is True and r["sqnr_db"] == golden["sqnr_db"]


@pytest.mark.parametrize("kind,bits", [("int", 4), ("pow2", 3)])
def test_scale_rounding_best_does_not_lose_to_nearest(tmp_path, capsys, kind, bits):
    """--scale-rounding best picks each vector's scale field of smaller error (weights and activations), so on
    heavy-tailed operands the product's SQNR is at least round-to-nearest's (golden model)."""
    rng = np.random.default_rng(6)
    np.save(tmp_path / "W.npy", rng.standard_t(3, size=(40, 256)) * np.exp(rng.normal(size=(40, 256))))
    np.save(tmp_path / "A.npy", rng.standard_t(3, size=(256, 24)))
    args = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy"), "--format", "int4",
            "--scale", "vector", "--vector", "16", "--scale-bits", str(bits), "--scale-kind", kind, "--preset",
            "tiny-vsq"]
    nearest = _gemm(tmp_path, capsys, *args)
    best = _gemm(tmp_path, capsys, *args, "--scale-rounding", "best")
    assert best["sqnr_db"] >= nearest["sqnr_db"]


@pytest.mark.parametrize("preset,fmt,extra,floor_db", [
    ("tiny-lns8", "lns8", [], 25.0),
    ("tiny-lns4-vsq", "lns4", ["--scale", "vector", "--vector", "16", "--scale-bits", "4"], 4.0),
])
def test_lns_gemm_on_both_simulators(tmp_path, capsys, monkeypatch, tb_build_root, preset, fmt, extra,
                                     floor_db):
    """Float operands in LNS (per tensor, or with per-vector log scales) run bit-exact on both simulators
    and report the SQNR against the float64 product; code inputs give the golden model's integers."""
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    rng = np.random.default_rng(8)
    W, A = rng.laplace(size=(3, 45)) * np.exp(rng.normal(size=(3, 1))), rng.normal(size=(45, 3))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "A.npy", A)
    files = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy"), "--format", fmt,
             "--preset", preset]
    golden = _gemm(tmp_path, capsys, *files, *extra)
    assert golden["sqnr_db"] > floor_db and golden["result_exponent"] == PRESETS[preset].log_sum.result_exponent
    for engine in ("icarus", "verilator"):
        r = _gemm(tmp_path, capsys, *files, *extra, "--engine", engine, "--stall", "0.2")
        assert r["bit_exact"] is True and r["sqnr_db"] == golden["sqnr_db"]


@pytest.mark.parametrize("window", ["", "window_bits = 12\n"], ids=["exact", "window"])
def test_lns8_with_frac_bits_4_from_a_config_file(tmp_path, capsys, window):
    """A config with ``frac_bits = 4`` and 6-bit log scales: the host quantizer picks F = 4 codes (and the
    summary the F = 4 result exponent), and on heavy tails it beats the F = 3 preset by more than 5 dB; the
    same with a 12-bit window (``window_bits``), whose results carry the same exponent."""
    (tmp_path / "f4.toml").write_text('rows = 2\ncols = 2\nlanes = 4\nmodes = ["lns8"]\nmax_k = 1024\nfrac_bits = 4\n'
                                      'scale_bits = 6\nscale_kind = "log"\nbucket_fraction_bits = 0\n'
                                      'mantissa_bits = 8\nq_floor = -6\n' + window)
    rng = np.random.default_rng(9)
    np.save(tmp_path / "W.npy", rng.standard_t(3, size=(16, 256)))
    np.save(tmp_path / "A.npy", rng.standard_t(3, size=(256, 8)))
    files = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy"), "--format", "lns8"]
    assert main(["gemm", "--json", *files, "--config", str(tmp_path / "f4.toml"), "--scale", "vector", "--vector", "4",
                 "--scale-bits", "6"]) == 0
    f4 = json.loads(capsys.readouterr().out)
    f3 = _gemm(tmp_path, capsys, *files, "--preset", "tiny-lns8")
    # q_min = -6, P = 12, Pm = 8: results weigh 2**-26.
    assert f4["result_exponent"] == -26 and f4["scale_bits"] == 6
    assert f4["sqnr_db"] > f3["sqnr_db"] + 5


def test_lns_gemm_rejects_what_the_log_datapath_lacks(tmp_path, capsys):
    np.save(tmp_path / "W.npy", np.ones((2, 8)))
    np.save(tmp_path / "A.npy", np.ones((8, 2)))
    files = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy"), "--format", "lns8"]
    assert main(["gemm", *files, "--scale", "per-channel"]) == 2
    assert capsys.readouterr().err.endswith("qmac: error: --scale: 'per-channel': is not supported with --format "
                                            "lns8; allowed: per-tensor, vector\n")
    assert main(["gemm", *files, "--sparse", "2:4"]) == 2
    assert capsys.readouterr().err.endswith("qmac: error: --sparse: '2:4': is not supported with --format lns8; "
                                            "allowed: the int8 and int4 formats\n")
    np.save(tmp_path / "W.npy", np.full((2, 8), 256))
    np.save(tmp_path / "A.npy", np.ones((8, 2), dtype=np.int64))
    assert main(["gemm", "--preset", "tiny-lns8", *files]) == 2
    assert capsys.readouterr().err == (f"qmac: error: --weights: '{tmp_path / 'W.npy'}': codes span [256, 256]; "
                                       "allowed: [0, 255]\n")


def test_vsq_vector_must_cover_whole_scale_groups(tmp_path, capsys):
    np.save(tmp_path / "W.npy", np.ones((2, 32)))
    np.save(tmp_path / "A.npy", np.ones((32, 2)))
    assert main(["gemm", "--preset", "tiny-vsq", "--format", "int4", "--scale", "vector", "--vector", "4",
                 "--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy")]) == 2
    assert capsys.readouterr().err == ("qmac: error: --vector: 4: vector length 4 must be a multiple of the 8 int4 "
                                       "elements one scale field covers on this core\n")


def test_eval_table_json_and_plot(tmp_path, capsys):
    assert main(["eval", "--formats", "int4", "--vectors", "16", "--scale-bits", "8", "--clips", "max",
                 "--n", "32", "--k", "128", "--m", "8", "--json", "--plot", str(tmp_path / "p.png")]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["tensor"] for r in results] == ["gaussian", "laplacian", "student-t3"]
    for r in results:
        by = {row["scheme"]: row["sqnr_y_db"] for row in r["rows"]}
        assert by["vector"] > by["per-tensor"]
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    W = np.random.default_rng(1).normal(size=(8, 30))
    np.save(tmp_path / "W.npy", W)
    assert main(["eval", str(tmp_path / "W.npy"), "--sparse", "2:4", "--formats", "int8", "--schemes",
                 "per-channel", "--clips", "max"]) == 0
    out = capsys.readouterr().out
    assert "2:4 pruning alone: SQNR" in out and "| int8 | per-channel |" in out


@pytest.mark.xdist_group("cli-sparse")
def test_sparse_gemm_on_both_simulators(tmp_path, capsys, monkeypatch, tb_build_root):
    """qmac gemm --sparse 2:4: dense integer weights are pruned (pruning error reported), compressed and run
    sparse; the RTL equals the golden model and the dense product of the pruned weights, bit for bit."""
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    from qmac.sim.sparse24 import prune_2_4
    rng = np.random.default_rng(8)
    W, A = rng.integers(-128, 128, (5, 40)), rng.integers(-128, 128, (40, 3))
    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "A.npy", A)
    files = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy"), "--sparse", "2:4",
             "--preset", "tiny-sparse"]
    for engine in ("golden", "icarus", "verilator"):
        r = _gemm(tmp_path, capsys, *files, "--engine", engine, "--out", str(tmp_path / "Y.npy"))
        assert r["pruned"] is True and 0 < r["pruning_relative_error"] < 1
        assert r["bit_exact"] is (None if engine == "golden" else True)
        assert np.array_equal(np.load(tmp_path / "Y.npy"), prune_2_4(W) @ A)
    np.save(tmp_path / "W.npy", prune_2_4(W))
    assert _gemm(tmp_path, capsys, *files)["pruned"] is False


def test_eval_rejects_bad_lists(capsys):
    assert main(["eval", "--vectors", "16,x"]) == 2
    assert capsys.readouterr().err == "qmac: error: --vectors: '16,x': allowed: comma-separated integers 1..1048576\n"



def test_gemm_w4a8_codes_and_floats(tmp_path, capsys):
    """W4A8 on a config without it: the lanes are added (with a note); INT4 weight codes x INT8 activation
    codes are exact; float inputs quantized per vector land between INT4 and INT8 in SQNR."""
    rng = np.random.default_rng(9)
    np.save(tmp_path / "W.npy", rng.integers(-8, 8, (5, 70)))
    np.save(tmp_path / "A.npy", rng.integers(-128, 128, (70, 3)))
    codes = ["--weights", str(tmp_path / "W.npy"), "--activations", str(tmp_path / "A.npy")]
    out = tmp_path / "Y.npy"
    assert main(["gemm", "--preset", "tiny", "--format", "w4a8", "--out", str(out), *codes]) == 0
    assert "qmac: note: --format w4a8 is not built into this core" in capsys.readouterr().err
    assert np.array_equal(np.load(out), np.load(tmp_path / "W.npy") @ np.load(tmp_path / "A.npy"))
    W, A = rng.normal(size=(6, 64)), rng.standard_t(3, size=(64, 4))
    np.save(tmp_path / "Wf.npy", W)
    np.save(tmp_path / "Af.npy", A)
    floats = ["--weights", str(tmp_path / "Wf.npy"), "--activations", str(tmp_path / "Af.npy"), "--scale", "vector"]
    sqnr = {fmt: json.loads((main(["gemm", "--preset", "tiny-w4a8", "--json", "--format", fmt, *floats]),
                             capsys.readouterr().out)[1])["sqnr_db"] for fmt in ("int8", "int4", "w4a8")}
    assert sqnr["int8"] > sqnr["w4a8"] > sqnr["int4"] + 2, sqnr


@pytest.mark.parametrize("args,message", [
    (["--weights", "W9.npy", "--activations", "A.npy"], "qmac: error: --weights: 'W9.npy': codes span [-9, 7]; allowed: [-8, 7]\n"),
    (["--weights", "W.npy", "--activations", "A200.npy"],
     "qmac: error: --activations: 'A200.npy': codes span [-128, 200]; allowed: [-128, 127]\n"),
    (["--weights", "W.npy", "--activations", "A.npy", "--sparse", "2:4"],
     "qmac: error: --sparse: '2:4': is not supported with --format w4a8; allowed: the int8 and int4 formats\n"),
])
def test_gemm_w4a8_rejects(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    np.save("W.npy", np.full((2, 4), 7))
    np.save("W9.npy", np.array([[-9, 7, 0, 0]] * 2))
    np.save("A.npy", np.full((4, 2), -128))
    np.save("A200.npy", np.array([[-128, 200]] * 4))
    assert main(["gemm", "--preset", "tiny-w4a8", "--format", "w4a8", *args]) == 2
    assert capsys.readouterr().err == message


def test_progress_bar_only_on_a_terminal(monkeypatch):
    """qmac explore's and qmac model's progress bar: on stderr when it is a terminal, nothing otherwise."""
    import io
    from qmac.cli.common import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, enabled, shown in ((io.StringIO(), True, False), (Terminal(), False, False), (Terminal(), True, True)):
        monkeypatch.setattr(sys, "stderr", stream)
        assert list(progress_bar("points", enabled)(iter("abc"), 3)) == ["a", "b", "c"]
        assert ("3/3" in stream.getvalue()) is shown and (stream.getvalue() == "") is not shown
