"""Property-based fuzzing of the ``qmac`` edge (issue #20): malformed config files, ``.npy`` inputs and command
lines always give exactly one stderr line ``qmac: error: <name>: ...`` naming the parameter, exit code 2, no
traceback and nothing written. Derandomized and bounded so the file runs in well under a minute."""

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmac.cli import main
from qmac.hw.spec.config import CoreConfig

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KEYS = [f.name for f in dataclasses.fields(CoreConfig)]
#: Keys that take a string or a list of strings; every other key takes an integer or a boolean.
TEXT_KEYS = {"modes", "scale_kind", "output_rounding", "bucket_organisation", "multiplier"}
BOOL_KEYS = {"output_stage", "sparse", "log_output"}


def _contract(argv, capsys, name, out):
    """Run ``argv`` in-process; assert the bad-input contract and that ``name`` is what the line names."""
    rc = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert rc == 2, (argv, err)
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("qmac: error: "), (argv, err)
    assert name in err, (argv, name, err)
    assert not out.exists() or list(out.iterdir()) == [], argv
    assert captured.out == ""


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v) if np.isfinite(v) else ("nan" if np.isnan(v) else "inf" if v > 0 else "-inf")
    return str(v)


def _wrong_type(key):
    """A TOML value of a type ``key`` never takes (floats for integer keys are left to the typing of
    hw/spec/config.py: only non-integral ones here)."""
    strings = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8)
    floats = st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not float(f).is_integer())
    if key in TEXT_KEYS:
        return st.one_of(st.integers(-10, 10), floats, st.booleans(),
                         st.lists(st.integers(), min_size=1, max_size=3) if key == "modes" else
                         st.lists(strings, max_size=3), st.just("no such " + key))
    if key in BOOL_KEYS:
        return st.one_of(st.integers(-3, 3), strings, floats)
    return st.one_of(strings, floats, st.lists(st.integers(0, 4), max_size=3),
                     st.integers(min_value=2 ** 40, max_value=2 ** 63 - 1), st.integers(-(2 ** 63), -(2 ** 40)))


@st.composite
def bad_configs(draw):
    """``(bytes of a config file, the name its error must give)``."""
    kind = draw(st.sampled_from(["wrong type", "unknown key", "syntax", "not utf-8", "deep", "long number"]))
    if kind == "wrong type":
        key = draw(st.sampled_from(KEYS))
        return f"{key} = {_toml_value(draw(_wrong_type(key)))}\n".encode(), key
    if kind == "unknown key":
        key = draw(st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(lambda k: k not in KEYS))
        return f"{key} = {draw(st.integers(0, 9))}\n".encode(), key
    if kind == "syntax":
        text = draw(st.sampled_from(["rows = ", "rows 4", "[rows", "rows = [1,", 'modes = ["int8"', "= 3",
                                     "rows = 4\nrows = 4", "rows = 0x", "rows = 4 4"]))
        return text.encode(), "config"  # hw/spec/config.py: "config file '...' is not valid TOML: ..."
    if kind == "not utf-8":
        head = draw(st.sampled_from(["rows = 2 # ", 'multiplier = "', "", "# "]))
        return head.encode() + draw(st.sampled_from([b"\xff", b"\xe9t\xe9", b"\xc3", b"\x80\x80"])) + b"\n", "--config"
    if kind == "deep":
        n = draw(st.integers(1000, 20000))
        return ("rows = " + "[" * n + "]" * n + "\n").encode(), "--config"
    n = draw(st.integers(4301, 20000))
    return ("rows = " + "7" * n + "\n").encode(), "--config"


@FUZZ
@given(bad_configs())
def test_bad_config_files(capsys, case):
    text, name = case
    with tempfile.TemporaryDirectory() as d:
        cfg, out = Path(d) / "c.toml", Path(d) / "gen"
        cfg.write_bytes(text)
        _contract(["generate", "--config", str(cfg), "--out", str(out)], capsys, name, out)


def _array_cases():
    """``(array or raw bytes, suffix)`` of .npy inputs that gemm must refuse for --weights."""
    bad_dtype = st.sampled_from(["?", "c8", "c16", "m8[s]", "M8[D]", "U3", "S2", [("a", "i4")]])
    dims = st.integers(0, 3)
    return st.one_of(
        st.tuples(bad_dtype, st.integers(1, 3)).map(lambda t: (np.zeros((t[1], 4), dtype=t[0]), ".npy")),
        st.lists(dims, min_size=0, max_size=4).filter(lambda s: len(s) != 2 or 0 in s)
        .map(lambda s: (np.ones(s, dtype=np.int64), ".npy")),
        st.tuples(st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 7))
        .map(lambda t: (np.where(np.arange(8).reshape(2, 4) == t[1], t[0], 0.5), ".npy")),
        st.tuples(st.sampled_from(["u1", "u2", "u4", "u8", "i2", "i4", "i8"]), st.integers(0, 7))
        .map(lambda t: (_out_of_range(t[0], t[1]), ".npy")),
        st.binary(max_size=64).map(lambda b: (b, ".npy")),
        st.just((None, ".npz")),
    )


def _out_of_range(dtype, where):
    """A 2 x 4 array of ``dtype`` with one element at its dtype's extreme, outside INT8's [-128, 127]."""
    info = np.iinfo(dtype)
    x = np.zeros((2, 4), dtype=dtype)
    x.flat[where] = info.max if info.min == 0 else info.min
    return x


@FUZZ
@given(_array_cases())
def test_bad_npy_inputs(capsys, case):
    data, suffix = case
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        w, a, out = d / f"w{suffix}", d / "a.npy", d / "out"
        out.mkdir()
        np.save(a, np.ones((4, 2), dtype=np.int64))
        if suffix == ".npz":
            np.savez(w, W=np.ones((2, 4)))
        elif isinstance(data, bytes):
            w.write_bytes(data)
        else:
            np.save(w, data)
        _contract(["gemm", "--preset", "tiny", "--weights", str(w), "--activations", str(a),
                   "--out", str(out / "Y.npy")], capsys, "--weights", out)


#: (flag, values that are never valid for it), on top of a valid gemm command with integer codes.
_TEXT = st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), min_size=1, max_size=6) \
    .filter(lambda t: not t.startswith("-"))
GEMM_OPTIONS = ("weights", "activations", "format", "engine", "stall", "scale", "scale-bits", "scale-kind",
                "scale-rounding", "vector", "clip", "sparse", "seed", "out", "strict", "json", "config", "preset",
                "help")
GEMM_FLAGS = {
    "--vector": st.integers(1, 64).map(str),                        # not applicable without --scale vector
    "--scale-bits": st.integers(1, 8).map(str),                     # idem
    "--scale-rounding": st.sampled_from(["nearest", "best"]),       # idem
    "--seed": st.integers(0, 99).map(str),                          # golden engine: no stalls to seed
    "--stall": st.one_of(st.floats(1.0, 1e9), st.floats(-1e9, -1e-9), st.sampled_from(["nan", "inf"])).map(str),
    "--clip": st.sampled_from(["max", "percentile", "mse"]),         # integer codes: no clipping
    "--format": _TEXT.filter(lambda t: t not in ("int8", "int4", "lns8", "lns4")),
    "--engine": _TEXT.filter(lambda t: t not in ("golden", "icarus", "verilator")),
    "--preset": _TEXT.filter(lambda t: t not in ("tiny", "default", "int8", "int4-wide", "vsq", "tiny-out",
                                                 "tiny-sparse", "tiny-vsq", "lns8", "tiny-lns8", "tiny-lns4-vsq")),
    "--out": st.sampled_from(["Y", "Y.npz", "nofolder/Y.npy", "out", "/proc/Y.npy"]),
}
EVAL_FLAGS = {
    "--n": st.one_of(st.integers(max_value=0), st.integers(min_value=(1 << 24) + 1)).map(str),
    "--k": st.one_of(st.integers(max_value=0), _TEXT).map(str),
    "--seed": st.integers(max_value=-1).map(str),
    "--formats": st.lists(_TEXT, min_size=1, max_size=3).map(",".join).filter(
        lambda t: not set(t.split(",")) <= {"int8", "int4"}),
    "--vectors": st.one_of(st.integers(max_value=0).map(str), _TEXT.filter(lambda t: not t.isdigit())),
    "--plot": st.sampled_from(["p.bmp", "nofolder/p.png", "p", "out"]),
}
BOARD_FLAGS = {
    "--baud": st.one_of(st.integers(max_value=0), st.integers(min_value=10 ** 9 + 1)).map(str),
    "--clock": st.one_of(st.floats(max_value=0.99), st.floats(min_value=1000.01), st.just("nan")).map(str),
}


@st.composite
def bad_command_lines(draw):
    """``(argv, the flag its error must name)``: a valid command with one flag made invalid."""
    command = draw(st.sampled_from(["gemm", "eval", "bitstream", "unknown option"]))
    if command == "unknown option":
        opt = "--" + draw(st.from_regex(r"[a-z]{3,10}", fullmatch=True).filter(
            lambda o: not any(known.startswith(o) for known in GEMM_OPTIONS)))  # not an abbreviation either
        return ["gemm", "--preset", "tiny", "--weights", "w.npy", "--activations", "a.npy", opt], opt
    flags = {"gemm": GEMM_FLAGS, "eval": EVAL_FLAGS, "bitstream": BOARD_FLAGS}[command]
    flag = draw(st.sampled_from(sorted(flags)))
    value = draw(flags[flag])
    base = {"gemm": ["gemm", "--preset", "tiny", "--weights", "w.npy", "--activations", "a.npy"],
            "eval": ["eval", "--n", "4", "--k", "16", "--m", "2"],
            "bitstream": ["bitstream", "--board", "icebreaker"]}[command]
    return [*base, f"{flag}={value}"], flag  # the last occurrence of a flag wins


@FUZZ
@given(bad_command_lines())
def test_bad_command_lines(capsys, monkeypatch, case):
    argv, flag = case
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "out").mkdir()
        np.save(d / "w.npy", np.ones((2, 4), dtype=np.int64))
        np.save(d / "a.npy", np.ones((4, 2), dtype=np.int64))
        with monkeypatch.context() as m:
            m.chdir(d)
            _contract(argv, capsys, flag, d / "out")
