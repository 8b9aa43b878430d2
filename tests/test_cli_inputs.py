"""Bad input at the ``qmac`` command line (qmac/cli/inputs.py and the commands): one line naming the flag or key,
exit code 2, nothing written, no traceback; and the outputs that good input gets (issue #20)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from qmac.cli import main


def _files(d):
    """The input files the cases below name, written into folder ``d``."""
    rng = np.random.default_rng(1)
    arrays = {
        "W.npy": rng.integers(-100, 100, (3, 8)), "A.npy": rng.integers(-100, 100, (8, 2)),
        "Wf.npy": rng.normal(size=(3, 8)), "Af.npy": rng.normal(size=(8, 2)),
        "u64.npy": np.array([[2 ** 64 - 1] + [1] * 7] * 3, dtype=np.uint64),
        "td.npy": np.ones((3, 8), dtype="timedelta64[s]"), "bool.npy": np.ones((3, 8), dtype=bool),
        "cplx.npy": np.ones((3, 8), dtype=complex), "str.npy": np.full((3, 8), "x"),
        "rec.npy": np.zeros((3, 8), dtype=[("a", "i4")]), "1d.npy": np.ones(8, dtype=np.int64),
        "3d.npy": np.ones((1, 3, 8)), "e.npy": np.ones((0, 8)),
        "nan.npy": np.where(np.eye(3, 8) > 0, np.nan, 1.0), "inf.npy": np.full((3, 8), -np.inf),
        "big.npy": np.full((3, 8), 1e308), "zeros.npy": np.zeros((3, 8)), "zerosA.npy": np.zeros((8, 2)),
        "Wk9.npy": np.ones((3, 9), dtype=np.int64),
    }
    for name, x in arrays.items():
        np.save(d / name, x)
    np.savez(d / "W.npz", W=arrays["W.npy"])
    (d / "empty.npy").write_bytes(b"")
    (d / "junk.npy").write_bytes(b"\x93NUMPY not really")
    (d / "folder.npy").mkdir()
    (d / "latin1.toml").write_bytes("rows = 2 # caf\xe9\n".encode("latin-1"))
    (d / "deep.toml").write_text("rows = " + "[" * 5000 + "]" * 5000 + "\n")
    (d / "digits.toml").write_text("rows = " + "9" * 5000 + "\n")
    (d / "sat.toml").write_text('rows = 2\ncols = 2\nlanes = 4\nmodes = ["int8"]\nmax_k = 64\nacc_bits = 18\n')


G = ["gemm", "--preset", "tiny"]
WA = ["--weights", "W.npy", "--activations", "A.npy"]
WAF = ["--weights", "Wf.npy", "--activations", "Af.npy"]

#: (argv, line): ``line`` is the whole stderr line after "qmac: error: " (or its start, when it ends with "...").
CASES = [
    # npy inputs: dtype kinds, file kinds, shapes, values checked in the original dtype
    (G + ["--weights", "u64.npy", "--activations", "A.npy"],
     "--weights: 'u64.npy': codes span [1, 18446744073709551615]; allowed: [-128, 127]"),
    (G + ["--weights", "td.npy", "--activations", "A.npy"],
     "--weights: 'td.npy': holds timedelta64[s] elements; allowed: 2-D integers or floats"),
    (G + ["--weights", "bool.npy", "--activations", "A.npy"], "--weights: 'bool.npy': holds bool elements..."),
    (G + ["--weights", "cplx.npy", "--activations", "A.npy"], "--weights: 'cplx.npy': holds complex128 elements..."),
    (G + ["--weights", "str.npy", "--activations", "A.npy"], "--weights: 'str.npy': holds <U1 elements..."),
    (G + ["--weights", "rec.npy", "--activations", "A.npy"], "--weights: 'rec.npy': holds..."),
    (G + ["--weights", "1d.npy", "--activations", "A.npy"], "--weights: '1d.npy': has shape (8,); allowed: 2-D..."),
    (G + ["--weights", "3d.npy", "--activations", "A.npy"], "--weights: '3d.npy': has shape (1, 3, 8)..."),
    (G + ["--weights", "e.npy", "--activations", "A.npy"], "--weights: 'e.npy': has shape (0, 8)..."),
    (G + ["--weights", "W.npz", "--activations", "A.npy"],
     "--weights: 'W.npz': has no 'values'; allowed: an .npz with values (int8, N x K/2) and meta (int32, N x K/32) "
     "as PyTorch's sparse_semi_structured_from_dense_cutlass returns them, and shape = [N, K]"),
    (G + ["--weights", "empty.npy", "--activations", "A.npy"],
     "--weights: 'empty.npy': is empty; allowed: a .npy file (numpy.save)"),
    (G + ["--weights", "/dev/null", "--activations", "A.npy"], "--weights: '/dev/null': is empty..."),
    (G + ["--weights", "junk.npy", "--activations", "A.npy"], "--weights: 'junk.npy': is not a .npy array..."),
    (G + ["--weights", "folder.npy", "--activations", "A.npy"],
     "--weights: 'folder.npy': is a folder; allowed: a .npy file"),
    (G + ["--weights", "missing.npy", "--activations", "A.npy"],
     "--weights: 'missing.npy': no such file; allowed: a .npy file"),
    (G + ["--weights", "nan.npy", "--activations", "Af.npy"],
     "--weights: 'nan.npy': holds NaN at [0, 0]; allowed: finite floats"),
    (G + ["--weights", "Wf.npy", "--activations", "inf.npy"], "--activations: 'inf.npy': holds -inf at [0, 0]..."),
    (G + ["--weights", "big.npy", "--activations", "Af.npy"], "--weights: 'big.npy': holds magnitudes up to 1e+308..."),
    (G + ["--weights", "Wk9.npy", "--activations", "A.npy"],
     "--activations: 'A.npy': has shape (8, 2); allowed: 9 rows, the K of --weights (3, 9)"),
    # outputs: checked before any work
    (G + WA + ["--out", "out/Y"], "--out: 'out/Y': allowed: a file name ending in .npy"),
    (G + WA + ["--out", "out"], "--out: 'out': is a folder; allowed: a file name ending in .npy"),
    (G + WA + ["--out", "out/"], "--out: 'out/': is a folder..."),
    (G + WA + ["--out", "out/sub/Y.npy"], "--out: 'out/sub/Y.npy': folder 'out/sub' does not exist..."),
    (G + WA + ["--out", "/proc/Y.npy"], "--out: '/proc/Y.npy': cannot be written..."),
    (["generate", "--preset", "tiny", "--out", "W.npy"], "--out: 'W.npy': 'W.npy' is not a folder..."),
    (["eval", "--n", "4", "--k", "16", "--m", "2", "--plot", "out/sub/p.png"], "--plot: 'out/sub/p.png': folder..."),
    (["eval", "--n", "4", "--k", "16", "--m", "2", "--plot", "out/p.bmp"],
     "--plot: 'out/p.bmp': allowed: a file name ending in .png, ..."),
    # flags that do not apply are errors, never ignored
    (G + WA + ["--vector", "8"], "--vector: 8: applies only to --scale vector"),
    (G + WAF + ["--scale-bits", "4"], "--scale-bits: 4: applies only to --scale vector"),
    (G + WA + ["--clip", "mse"], "--clip: 'mse': applies only to float inputs; integer inputs are taken as codes"),
    (G + WA + ["--scale", "vector"], "--scale: 'vector': applies only to float inputs..."),
    (G + WAF + ["--format", "lns8", "--scale", "vector", "--scale-kind", "pow2"],
     "--scale-kind: 'pow2': applies only to --scale vector with an int format"),
    (G + WAF + ["--scale-rounding", "best"], "--scale-rounding: 'best': applies only to --scale vector with an int format"),
    (G + WA + ["--stall", "0.2"], "--stall: 0.2: applies only to an RTL engine (--engine icarus or verilator)"),
    (G + WA + ["--seed", "3"], "--seed: 3: applies only to an RTL engine..."),
    (["eval", "Wf.npy", "--n", "8"], "--n: 8: applies only to synthetic data (no W.npy given)"),
    (["run", "--port", "p", "--weights", "W.npy", "--activations", "A.npy", "--shape", "1", "2", "3"],
     "--shape: [1, 2, 3]: applies only to random codes..."),
    # values out of range, named by flag
    (G + WAF + ["--scale", "vector", "--vector", "4096"],
     "--vector: 4096: allowed: at most K = 8, the reduction length of the inputs"),
    (G + WA + ["--engine", "icarus", "--stall", "1"], "--stall: '1': allowed: a finite number >= 0 and < 1"),
    (G + WA + ["--engine", "icarus", "--stall", "nan"], "--stall: 'nan': allowed: a finite number >= 0 and < 1"),
    (["eval", "--n", "-5"], "--n: '-5': allowed: integers 1..16777216"),
    (["eval", "--seed", "-1"], "--seed: '-1': allowed: integers 0..9223372036854775807"),
    (["eval", "--k", "4096", "--n", "8192"], "--n x --k: 33554432: elements; allowed: at most 16777216"),
    (["eval", "--formats", "int8,int3"], "--formats: 'int8,int3': 'int3' is unknown; allowed: comma-separated int8, int4"),
    (["eval", "zeros.npy"], "W.npy: 'zeros.npy': holds only zeros..."),
    (["bitstream", "--board", "icebreaker", "--baud", "0"], "--baud: '0': allowed: integers 1..1000000000"),
    (["bitstream", "--board", "icebreaker", "--clock", "inf"], "--clock: 'inf': allowed: a finite number >= 1 and <= 1000"),
    (["run", "--port", "p", "--timeout", "-1"], "--timeout: '-1': allowed: a finite number >= 0.001 and <= 3600"),
    # config selection and config files the TOML parser cannot read
    (["gemm", *WA, "--config", ""], "--config: '': cannot be read: No such file or directory"),
    (["gemm", *WA, "--config", "sat.toml", "--preset", "tiny"],
     "--preset: 'tiny': allowed: --config or --preset, not both"),
    (["gemm", *WA, "--preset", ""], "--preset: '': allowed: tiny, default, ..."),
    (["generate", "--config", "latin1.toml", "--out", "out/gen"],
     "--config: 'latin1.toml': is not UTF-8 text: byte 0xe9 at offset 14"),
    (["generate", "--config", "deep.toml", "--out", "out/gen"], "--config: 'deep.toml': nests arrays or tables too deeply; allowed: at most 8 levels"),
    (["generate", "--config", "digits.toml", "--out", "out/gen"], "--config: 'digits.toml': holds an integer of thousands of digits; allowed: integers of at most 64 bits"),
    (["generate", "--config", "out", "--out", "out/gen"], "--config: 'out': cannot be read: Is a directory"),
    # argparse's own complaints, as one line
    (["gemm"], "--weights, --activations: (missing): required by 'qmac gemm'"),
    (G + WA + ["--format", "int3"], "--format: 'int3': allowed: int8, int4, w4a8, lns8, lns4, fp4"),
    (G + WA + ["--vector"], "--vector: (missing): allowed: one value"),
    (G + WA + ["--bogus"], "--bogus: unrecognized: allowed: the options 'qmac COMMAND --help' lists"),
    (["frob"], "COMMAND: 'frob': allowed: generate, gemm, eval, model, synth, energy, explore, presets, bitstream, run, test"),
]


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    _files(tmp_path)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _assert_refused(rc, err, line, out):
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    got = err.removeprefix("qmac: error: ").rstrip("\n")
    assert err.startswith("qmac: error: ")
    if line.endswith("..."):
        assert got.startswith(line[:-3]), got
    else:
        assert got == line
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("argv,line", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(inputs, capsys, argv, line):
    rc = main(argv)
    _assert_refused(rc, capsys.readouterr().err, line, inputs / "out")


@pytest.mark.parametrize("argv,line", [CASES[0], CASES[10], CASES[-4], CASES[-1]])
def test_bad_input_through_the_real_cli(inputs, argv, line):
    r = subprocess.run([sys.executable, "-m", "qmac", *argv], capture_output=True, text=True, cwd=inputs)
    _assert_refused(r.returncode, r.stderr, line, inputs / "out")
    assert r.stdout == ""


def test_float_for_an_integer_key_is_refused(inputs, capsys):
    (inputs / "f.toml").write_text("scale_bits = 4\nscale_lanes = 4.0\n")
    rc = main(["generate", "--config", "f.toml", "--out", "out/gen"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "scale_lanes" in err
    assert list((inputs / "out").iterdir()) == []


def test_generate_keeps_the_old_pair_when_the_manifest_cannot_be_written(inputs, capsys):
    assert main(["generate", "--preset", "tiny", "--out", "out"]) == 0
    v = (inputs / "out" / "qmac_core.v").read_bytes()
    (inputs / "out" / "qmac_core.json").unlink()
    (inputs / "out" / "qmac_core.json").mkdir()  # the manifest's name is taken by a folder
    capsys.readouterr()
    assert main(["generate", "--preset", "tiny-sparse", "--out", "out"]) == 2
    assert capsys.readouterr().err.startswith("qmac: error: --out: 'out': cannot be written (")
    assert (inputs / "out" / "qmac_core.v").read_bytes() == v
    assert sorted(p.name for p in (inputs / "out").iterdir()) == ["qmac_core.json", "qmac_core.v"]


def test_gemm_writes_exactly_the_named_file(inputs, capsys):
    assert main(G + WA + ["--out", "out/Y.npy"]) == 0
    assert [p.name for p in (inputs / "out").iterdir()] == ["Y.npy"]
    assert np.array_equal(np.load(inputs / "out" / "Y.npy"), np.load("W.npy") @ np.load("A.npy"))
    assert oct(os.stat(inputs / "out" / "Y.npy").st_mode & 0o777) != oct(0o600)


def test_all_zero_floats_give_null_and_a_note(inputs, capsys):
    assert main(G + ["--weights", "zeros.npy", "--activations", "zerosA.npy", "--json"]) == 0
    out = capsys.readouterr().out
    r = json.loads(out)  # strict: NaN or Infinity would not parse with parse_constant raising
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert r["sqnr_db"] is None and r["relative_error"] is None
    assert r["notes"] == ["sqnr_db, relative_error: undefined, the float product W @ A is all zeros"]


def test_human_report_has_units(inputs, capsys):
    assert main(G + WAF) == 0
    lines = {line.split()[0]: line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()}
    assert lines["bit_exact"] == "not checked (golden engine)"
    assert lines["shape"] == "3 x 8 x 2  (N x K x M)"
    assert lines["sqnr_db"].endswith(" dB") and len(lines["sqnr_db"].split()[0].split(".")[1]) == 1
    assert lines["saturated"] == "no"


def test_sparse_report_shows_the_real_k(inputs, capsys):
    np.save("Wk6.npy", np.arange(18).reshape(3, 6) - 9)
    np.save("Ak6.npy", np.ones((6, 2), dtype=np.int64))
    assert main(["gemm", "--preset", "tiny-sparse", "--weights", "Wk6.npy", "--activations", "Ak6.npy",
                 "--sparse", "2:4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["shape"] == [3, 6, 2] and r["padded_k"] == 8


def test_saturation_warns_and_strict_exits_3(inputs, capsys):
    np.save("Ws.npy", np.full((2, 64), 127))
    np.save("As.npy", np.full((64, 2), 127))
    argv = ["gemm", "--config", "sat.toml", "--weights", "Ws.npy", "--activations", "As.npy", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["saturated"] is True
    assert captured.err.startswith("qmac: warning: saturated: an accumulator at 18 bits clipped")
    assert main(argv + ["--strict"]) == 3


def test_pytest_arguments_pass_through(inputs):
    r = subprocess.run([sys.executable, "-m", "qmac", "test", "-k", "no_test_has_this_name", "-q",
                        "tests/test_cli_inputs.py", "-n", "0"], capture_output=True, text=True)
    assert r.returncode == 5, r.stdout + r.stderr  # pytest: no tests collected, not a usage error
    assert "deselected" in r.stdout


def test_closed_pipe_is_quiet(inputs):
    p = subprocess.Popen([sys.executable, "-m", "qmac", "presets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait() == 141 and err == b""
