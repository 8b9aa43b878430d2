"""Design-space explorer (qmac/explore.py, qmac explore): points, Pareto flags, cache, CSV/JSON/plots, and the
same rows from a Dask LocalCluster, and the ONNX model workload (--model). The two points are the 2x2x4 INT8-only
and INT4-only cores whose gate-level builds tests/test_energy.py makes (cached under build/)."""

import csv
import json

import numpy as np
import onnx
import pytest

from qmac.cli import main
from qmac.explore import ModelAccuracy, SpaceError, explore, load_space, pareto
from test_model import mlp

SPACE = """
[base]
rows = 2
cols = 2
lanes = 4
max_k = 1024

[[format]]
name = "INT8"
config = { modes = ["int8"] }
flags = { format = "int8" }

[[format]]
name = "INT4"
config = { modes = ["int4"] }
flags = { format = "int4" }

[workload]
distribution = "gaussian"
shape = [4, 512, 4]
shapes = [[4, 512, 4], [3, 512, 5]]
"""


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "space.toml"
    path.write_text(SPACE)
    return load_space(path)


@pytest.fixture(scope="module")
def local(space, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = explore(space, tmp_path_factory.mktemp("out1"), cache_dir=cache)
    out = tmp_path_factory.mktemp("out2")
    again = explore(space, out, cache_dir=cache)
    return first, again, out


def test_points_measure_what_the_formats_trade(local):
    rows = local[0]
    assert [r["point"] for r in rows] == ["INT8", "INT4"]
    int8, int4 = rows
    assert int8["macs_per_cycle"] == 2 * 2 * 4 and int4["macs_per_cycle"] == 2 * 2 * 8
    # 512 = 128 INT8 beats or 64 INT4 beats exactly; N = 3 and M = 5 pad to 4 and 6: 15 of 24 outputs.
    assert int8["utilization"] == pytest.approx((4 * 512 * 4 + 3 * 512 * 5) / (4 * 512 * 4 + 4 * 512 * 6))
    assert int8["accuracy"] > int4["accuracy"] + 15  # about 6 dB per bit
    assert int4["energy_per_mac"] < 0.5 * int8["energy_per_mac"]
    assert int4["transistors_per_mac"] < int8["transistors_per_mac"]
    assert int8["bit_exact"] and int4["bit_exact"]
    assert int8["pareto"] and int4["pareto"]  # one is accurate, the other cheap


def test_rerun_hits_the_cache_and_writes_the_files(local):
    first, again, out = local
    assert not any(r["cached"] for r in first) and all(r["cached"] for r in again)
    strip = [{k: v for k, v in r.items() if k != "cached"} for r in first]
    assert [{k: v for k, v in r.items() if k != "cached"} for r in again] == strip
    with open(out / "points.csv") as f:
        table = list(csv.DictReader(f))
    for column in ("point", "format", "transistors_per_mac", "macs_per_cycle", "utilization", "energy_per_mac",
                   "accuracy", "pareto"):
        assert column in table[0]
    assert [r["point"] for r in table] == ["INT8", "INT4"]
    assert json.loads((out / "points.json").read_text())[1]["format"] == "INT4"
    for png in ("accuracy_vs_energy.png", "accuracy_vs_transistors.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dask_local_cluster_gives_the_same_rows(space, local, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        rows = explore(space, tmp_path / "out", scheduler=cluster.scheduler_address, cache_dir=tmp_path / "cache")
    assert not any(r["cached"] for r in rows)
    drop = ("cached",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == \
           [{k: v for k, v in r.items() if k not in drop} for r in local[0]]


def test_pareto_flags():
    rows = [{"accuracy": 40, "energy_per_mac": 10, "transistors_per_mac": 5},
            {"accuracy": 20, "energy_per_mac": 3, "transistors_per_mac": 2},
            {"accuracy": 20, "energy_per_mac": 4, "transistors_per_mac": 2},   # worse than the second
            {"accuracy": 41, "energy_per_mac": 12, "transistors_per_mac": 1}]
    assert pareto(rows) == [True, True, False, True]


@pytest.mark.parametrize("text, message", [
    ("[workload]\n", "format: missing; allowed: one or more [[format]] tables with name, config, flags"),
    ("[[format]]\nname = 'a'\nflags = { bits = 3 }\n", "format[0].flags.bits: unknown; allowed: format, scale, "
                                                       "vector, scale_bits, scale_kind, clip, sparse"),
    ("[[format]]\nname = 'a'\n[sweep]\nlanes = 4\n", "sweep.lanes: 4: a non-empty list of values"),
    ("[model]\n", "model: unknown table; allowed: base, sweep, format, workload"),
])
def test_bad_space(tmp_path, text, message, capsys):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value) == message
    assert main(["explore", str(path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"qmac: error: SPACE: {str(path)!r}: {message}\n"
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """The MLP of tests/test_model.py (x 1x16 -> fc1 24x16 -> Relu -> fc2 10x24) and 3 samples of x."""
    folder = tmp_path_factory.mktemp("model")
    onnx.save(mlp()[0], folder / "mlp.onnx")
    np.savez(folder / "X.npz", x=np.random.default_rng(1).normal(0, 1, (3, 16)).astype(np.float32))
    return folder / "mlp.onnx", folder / "X.npz"


def test_model_workload(space, model_files, tmp_path):
    model, data = model_files
    cache = tmp_path / "cache"
    first = explore(space, tmp_path / "out", cache_dir=cache, model=ModelAccuracy(model, data))
    int8, int4 = first
    for r in first:
        assert -1 <= r["accuracy"] <= 1 and r["accuracy_metric"] == "cosine" and r["bit_exact"]
        # fc1 is 24 x 16 x 1 and fc2 10 x 24 x 1 (one sample, batch 1): N pads to the 2 rows, M = 1 fills one of
        # the 2 columns, K to a beat of 4 (INT8) or 8 (INT4) elements.
        lanes = 4 if r is int8 else 8
        useful = 24 * 16 + 10 * 24
        beats = 12 * -(-16 // lanes) + 5 * -(-24 // lanes)
        assert r["utilization"] == pytest.approx(useful / (beats * r["macs_per_cycle"]))
    assert int8["accuracy"] > int4["accuracy"]
    assert int4["energy_per_mac"] < int8["energy_per_mac"]
    table = list(csv.DictReader(open(tmp_path / "out" / "points.csv")))
    assert [r["accuracy_metric"] for r in table] == ["cosine", "cosine"]
    again = explore(space, tmp_path / "out", cache_dir=cache, model=ModelAccuracy(model, data))
    assert all(r["cached"] for r in again)
    np.savez(tmp_path / "X2.npz", x=np.load(data)["x"][:2])  # other data: another key
    assert not any(r["cached"] for r in explore(space, tmp_path / "out", cache_dir=cache,
                                                 model=ModelAccuracy(model, tmp_path / "X2.npz")))


@pytest.mark.parametrize("extra, message", [
    (["--weights", "W.npy", "--activations", "A.npy"],
     "--model: '{model}': allowed: --model or --weights/--activations, not both"),
    ([], "--data: None: allowed: an .npz of the model's inputs; required with --model"),
    (["--data", "missing.npz"], "--data: 'missing.npz': cannot be read as an .npz archive ([Errno 2] No such file "
                                "or directory: 'missing.npz'); allowed: an .npz of arrays"),
    (["--data", "{data}", "--calibrate", "{model}"], "--calibrate: '{model}': cannot be read as an .npz archive"),
])
def test_model_usage_errors(tmp_path, model_files, capsys, monkeypatch, extra, message):
    model, data = model_files
    space = tmp_path / "s.toml"
    space.write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    extra = [e.format(model=model, data=data) for e in extra]
    assert main(["explore", str(space), "--out", "out", "--model", str(model), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qmac: error: {message.format(model=model)}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_data_without_model(tmp_path, model_files, capsys):
    space = tmp_path / "s.toml"
    space.write_text(SPACE)
    assert main(["explore", str(space), "--out", str(tmp_path / "out"), "--data", str(model_files[1])]) == 2
    assert capsys.readouterr().err == f"qmac: error: --data: {str(model_files[1])!r}: applies only with --model\n"


def test_model_wider_than_max_k(tmp_path, model_files, capsys):
    space = tmp_path / "s.toml"
    space.write_text(SPACE.replace("max_k = 1024", "max_k = 16"))  # fc2 has K = 24
    model, data = model_files
    assert main(["explore", str(space), "--out", str(tmp_path / "out"), "--model", str(model), "--data",
                 str(data)]) == 2
    assert capsys.readouterr().err == (f"qmac: error: SPACE: {str(space)!r}: max_k: 16 (point 'INT8'): the model "
                                       "has a layer with K = 24; allowed: max_k >= 24\n")
    assert not (tmp_path / "out").exists()


def test_model_without_weight_layers(tmp_path, model_files, capsys):
    """A model whose only op is a Relu has no layer to measure energy on: one line, nothing written."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = tmp_path / "relu.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), model)
    space = tmp_path / "s.toml"
    space.write_text(SPACE)
    assert main(["explore", str(space), "--out", str(tmp_path / "out"), "--model", str(model), "--data",
                 str(model_files[1])]) == 2
    assert capsys.readouterr().err == (f"qmac: error: --model: {str(model)!r}: has no MatMul, Gemm or Conv with "
                                       "constant weights to measure energy on; allowed: a model with at least one\n")
    assert not (tmp_path / "out").exists()
