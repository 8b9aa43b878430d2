"""qmac model: small ONNX networks built here with onnx.helper and seeded weights, run through the core's
arithmetic and compared with onnxruntime, with a numpy re-implementation of INT8 per-tensor quantization, and
layer by layer with the emitted RTL."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qmac.cli import main
from qmac.hw.spec.config import preset
from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.model import QuantizedNetwork, Scheme, evaluate, load, reference_outputs, samples
from qmac.model.encoder import bert_encoder, random_bert_weights
from qmac.sim.ptq import gptq
from qmac.sim.quantize import quantize


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "test", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def mlp(seed=0):
    """x (1 x 16) -> MatMul W1 (16 x 24) + b1 -> Relu -> Gemm(W2 (10 x 24), b2, transB) -> logits (1 x 10)."""
    r = np.random.default_rng(seed)
    w = {"W1": r.normal(0, 0.3, (16, 24)), "b1": r.normal(0, 0.1, 24), "W2": r.normal(0, 0.3, (10, 24)),
         "b2": r.normal(0, 0.1, 10)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
             helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h"]),
             helper.make_node("Gemm", ["h", "W2", "b2"], ["logits"], name="fc2", transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], w), w


def cnn(seed=0):
    """img (1 x 2 x 8 x 8) -> Conv 3x3 pad 1 (4 ch) -> Relu -> MaxPool 2 -> Conv 3x3 stride 2, 2 groups
    (4 ch) -> Relu -> Flatten -> Gemm (10 x 16) -> logits."""
    r = np.random.default_rng(seed)
    w = {"C1": r.normal(0, 0.4, (4, 2, 3, 3)), "c1": r.normal(0, 0.1, 4), "C2": r.normal(0, 0.4, (4, 2, 3, 3)),
         "c2": r.normal(0, 0.1, 4), "G": r.normal(0, 0.3, (10, 16)), "g": r.normal(0, 0.1, 10)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("Conv", ["img", "C1", "c1"], ["a1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "C2", "c2"], ["a2"], name="conv2", strides=[2, 2], group=2,
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]),
             helper.make_node("Gemm", ["f", "G", "g"], ["logits"], name="fc", transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 2, 8, 8])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], w), w


def encoder():
    """A one-layer BERT block (MatMul, LayerNormalization, Softmax, Erf GELU, attention) of width 32."""
    return bert_encoder(random_bert_weights(1, 32, 2, 64, seed=3), 1, 2), None


MODELS = {"mlp": mlp, "cnn": cnn, "encoder": encoder}


def _data(name, count=4, seed=1):
    r = np.random.default_rng(seed)
    if name == "mlp":
        return {"x": r.normal(0, 1, (count, 16)).astype(np.float32)}
    if name == "cnn":
        return {"img": r.normal(0, 1, (count, 2, 8, 8)).astype(np.float32)}
    return {"input_ids": r.integers(0, 64, (count, 12))}


@pytest.mark.parametrize("name", MODELS)
def test_fp32_matches_onnxruntime(name):
    net = load(MODELS[name]()[0])
    feeds = samples(_data(name), net.inputs)
    qnet = QuantizedNetwork(net, None)
    for ours, ref in zip([qnet(f) for f in feeds], reference_outputs(net, feeds)):
        np.testing.assert_allclose(ours[0], ref[0], rtol=1e-5, atol=1e-6)
    assert {layer.op for layer in net.layers} >= ({"Conv", "Gemm"} if name == "cnn" else {"MatMul"})


def cnn_bn(seed=0):
    """opset 11, as exported by Paddle: img -> Conv -> BatchNormalization (momentum set) -> Relu -> Conv, whose
    output feeds both a BatchNormalization and an Add (so that one cannot be folded) -> logits."""
    r = np.random.default_rng(seed)
    w = {"C1": r.normal(0, 0.4, (4, 2, 3, 3)), "C2": r.normal(0, 0.4, (4, 4, 1, 1)), "c2": r.normal(0, 0.1, 4)}
    for i in (1, 2):
        w |= {f"g{i}": r.uniform(0.5, 2, 4), f"b{i}": r.normal(0, 0.3, 4), f"m{i}": r.normal(0, 0.5, 4),
              f"v{i}": r.uniform(0.2, 3, 4)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("Conv", ["img", "C1"], ["a1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["a1", "g1", "b1", "m1", "v1"], ["n1"], epsilon=1e-3,
                              momentum=0.9),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("Conv", ["r1", "C2", "c2"], ["a2"], name="conv2"),
             helper.make_node("BatchNormalization", ["a2", "g2", "b2", "m2", "v2"], ["n2"], momentum=0.9),
             helper.make_node("Add", ["n2", "a2"], ["logits"])]
    return _model(nodes, [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 2, 8, 8])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 8, 8])], w, opset=11), w


def test_batch_norm_is_folded_or_computed_with_stored_statistics():
    """The first BatchNormalization folds into conv1; the second (conv2's output has two uses) stays and runs in
    inference form; FP32 equals onnxruntime on the original graph, and INT8 per channel stays close."""
    model, _ = cnn_bn()
    feeds = samples({"img": np.random.default_rng(1).normal(0, 1, (3, 2, 8, 8)).astype(np.float32)}, ["img"])
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    refs = [session.run(None, f)[0] for f in feeds]
    net = load(model.__deepcopy__())
    assert [n.op_type for n in net.proto.graph.node] == ["Conv", "Relu", "Conv", "BatchNormalization", "Add"]
    qnet = QuantizedNetwork(net, None)
    for f, ref in zip(feeds, refs):
        np.testing.assert_allclose(qnet(f)[0], ref, rtol=1e-5, atol=1e-5)
    r = evaluate(net, {"img": np.stack([f["img"][0] for f in feeds])}, Scheme("int8", "per-channel"))
    assert r["output"]["cosine_min"] > 0.999


def _q(x, qmax=127):
    """Per-tensor symmetric INT8 (INT4: qmax 7), written out: scale max|x| / qmax, codes rint(x / scale) (half to
    even)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.max(np.abs(x)) / qmax
    return np.clip(np.rint(x / s), -qmax, qmax).astype(np.int64), s


def _dense(x, w, w_qmax=127):
    """x (M x K) @ w (K x N) with both operands quantized per tensor (weights to ``w_qmax``); float64."""
    qx, sx = _q(x)
    qw, sw = _q(w, w_qmax)
    return (qx @ qw) * (sw * sx)


def _relu(x):
    return np.maximum(x, np.float32(0))


def _conv(x, w, b, stride, pad, groups):
    """2-D convolution by explicit loops over output positions, each group's product quantized per tensor
    (weights of the group, all patches of the group)."""
    B, C, H, W = x.shape
    O, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    out = np.zeros((B, O, oh, ow), dtype=np.float32)
    og = O // groups
    for g in range(groups):
        patches = np.array([xp[0, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw].ravel()
                            for i in range(oh) for j in range(ow)])                      # (positions, K)
        y = _dense(patches, w[g * og:(g + 1) * og].reshape(og, -1).T).astype(np.float32)  # (positions, og)
        out[0, g * og:(g + 1) * og] = y.T.reshape(og, oh, ow)
    return out + b.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_int8_per_tensor_equals_a_numpy_reimplementation(name):
    model, w = MODELS[name]()
    net = load(model)
    data = _data(name)
    qnet = QuantizedNetwork(net, Scheme("int8"))
    for feeds in samples(data, net.inputs):
        ours = qnet(feeds)[0]
        if name == "mlp":
            ref = _mlp_reference(feeds["x"], w, 127)
        else:
            a = _relu(_conv(feeds["img"], w["C1"], w["c1"], 1, 1, 1))
            p = a.reshape(1, 4, 4, 2, 4, 2).max(axis=(3, 5))
            a = _relu(_conv(p, w["C2"], w["c2"], 2, 1, 2))
            ref = (_dense(a.reshape(1, -1), w["G"].T) + w["g"]).astype(np.float32)
        np.testing.assert_array_equal(ours, ref)


def _mlp_reference(x, w, w_qmax):
    h = _relu(_dense(x, w["W1"], w_qmax).astype(np.float32) + w["b1"])
    return (_dense(h, w["W2"].T, w_qmax) + w["b2"]).astype(np.float32)


def test_w4a8_per_tensor_is_int4_weights_and_int8_activations():
    """W4A8: weights on the INT4 grid (qmax 7), activations on the INT8 grid (qmax 127), exactly; also per layer
    through ``--layer PATTERN=w4a8``."""
    model, w = MODELS["mlp"]()
    net = load(model)
    feeds = samples(_data("mlp"), net.inputs)
    qnet = QuantizedNetwork(net, Scheme("w4a8"))
    mixed = QuantizedNetwork(net, Scheme("int8"), overrides=[("fc*", "w4a8")])
    for f in feeds:
        ref = _mlp_reference(f["x"], w, 7)
        np.testing.assert_array_equal(qnet(f)[0], ref)
        np.testing.assert_array_equal(mixed(f)[0], ref)
    assert {s.format for s in mixed.stats.values()} == {"w4a8"}


def test_w4a8_static_activation_clips_use_the_int8_grid():
    """With a calibration set, W4A8 per-tensor activations take a static clip, max|x| over the FP32 calibration
    activations of the layer, on INT8 codes (qmax 127, not INT4's 7); weights per tensor on INT4 codes."""
    model, w = MODELS["mlp"]()
    net = load(model)
    cal = _data("mlp", 6, seed=9)["x"]
    qnet = QuantizedNetwork(net, Scheme("w4a8"), calibration=samples({"x": cal}, net.inputs))
    h_cal = _relu((cal.astype(np.float64) @ w["W1"].astype(np.float64)).astype(np.float32) + w["b1"])

    def dense(x, x_clip, wt):
        s = x_clip / 127
        qx = np.clip(np.rint(x.astype(np.float64) / s), -127, 127)
        qw, sw = _q(wt, 7)
        return (qx @ qw) * (sw * s)
    for f in samples(_data("mlp"), net.inputs):
        h = _relu(dense(f["x"], np.abs(cal).max(), w["W1"]).astype(np.float32) + w["b1"])
        ref = (dense(h, np.abs(h_cal).max(), w["W2"].T) + w["b2"]).astype(np.float32)
        np.testing.assert_array_equal(qnet(f)[0], ref)


@pytest.mark.parametrize("flags", [["--format", "int8"], ["--format", "int4", "--scale", "per-channel"]])
def test_smoothing_lowers_the_error_of_a_layer_with_outlier_inputs(tmp_path, capsys, flags):
    """The MLP with two outlier input features (30x larger, their weights 30x smaller, so that they do not
    dominate the output): with --smooth 0.5 fc1's own error (W8A8 per tensor with static clips, or W4A4 per
    channel and per token) drops by more than 10 dB."""
    import onnx
    args = _write(tmp_path, "mlp")
    model = onnx.load(args[0])
    for t in model.graph.initializer:
        if t.name == "W1":
            w = numpy_helper.to_array(t).copy()
            w[[3, 9]] /= 30
            t.CopyFrom(numpy_helper.from_array(w, "W1"))
    onnx.save(model, args[0])
    np.savez(tmp_path / "X.npz", **_data("mlp", 3))
    np.savez(tmp_path / "C.npz", **_data("mlp", 32, seed=9))
    for name in ("X", "C"):
        x = np.load(tmp_path / f"{name}.npz")["x"]
        x[:, [3, 9]] *= 30
        np.savez(tmp_path / f"{name}.npz", x=x)
    sqnr = {}
    for smooth in ([], ["--smooth", "0.5"]):
        assert main(["model", *args, "--calibrate", str(tmp_path / "C.npz"), *flags, *smooth, "--json"]) == 0
        sqnr[bool(smooth)] = {row["name"]: row["sqnr_db"] for row in json.loads(capsys.readouterr().out)["layers"]}
    assert sqnr[True]["fc1"] > sqnr[False]["fc1"] + 10


def test_hadamard_rotation_equals_a_numpy_reimplementation():
    """--rotate hadamard on the MLP, INT8 per tensor: each layer is q(x R) @ q(R^T W) with R the block Hadamard
    rotation of its K (16: one block of 16; 24: three blocks of 8), written out here; and it is exact in float
    (the encoder's outputs at INT8 per channel move by less than 1e-3 in cosine)."""
    from qmac.sim.ptq import hadamard_rotation
    model, w = MODELS["mlp"]()
    net = load(model)
    qnet = QuantizedNetwork(net, Scheme("int8"), rotate="hadamard")
    r1, r2 = hadamard_rotation(16), hadamard_rotation(24)
    for f in samples(_data("mlp"), net.inputs):
        h = _relu(_dense(f["x"] @ r1, r1.T @ w["W1"]).astype(np.float32) + w["b1"])
        ref = (_dense(h @ r2, r2.T @ w["W2"].T) + w["b2"]).astype(np.float32)
        np.testing.assert_array_equal(qnet(f)[0], ref)
    net = load(MODELS["encoder"]()[0])
    data = _data("encoder", 2)
    plain = evaluate(net, data, Scheme("int8", "per-channel"))["output"]["cosine_min"]
    rotated = evaluate(net, data, Scheme("int8", "per-channel"), rotate="hadamard")["output"]["cosine_min"]
    assert rotated > 0.999 and abs(rotated - plain) < 1e-3


@pytest.mark.xdist_group("model-rtl")
@pytest.mark.parametrize("name,layer,scheme,config,engines", [
    ("mlp", "fc2", Scheme("int8"), "tiny", ("icarus", "verilator")),
    ("cnn", "conv2", Scheme("int8"), "tiny", ("icarus", "verilator")),
    ("encoder", "layer0/scores", Scheme("int8"), "tiny", ("icarus", "verilator")),
    ("mlp", "fc1", Scheme("w4a8", "vector", 8), "tiny-w4a8", ("verilator",))],
    ids=["mlp-int8", "cnn-int8", "encoder-int8", "mlp-w4a8-vsq8"])
def test_one_layer_bit_exact_on_the_simulators(monkeypatch, tb_build_root, name, layer, scheme, config,
                                               engines):
    monkeypatch.setenv("QMAC_BUILD_ROOT", tb_build_root)
    net = load(MODELS[name]()[0])
    data = {k: v[:1] for k, v in _data(name).items()}
    golden = evaluate(net, data, scheme, config=preset(config))
    for engine in engines:
        r = evaluate(net, data, scheme, config=preset(config), engine=engine, rtl=layer)
        ran = {row["name"]: row for row in r["layers"]}
        assert ran[layer]["engine"] == engine and ran[layer]["bit_exact"] is True
        assert all(row["engine"] == "golden" and row["bit_exact"] is None for row in r["layers"] if row["name"] != layer)
        assert r["output"] == golden["output"]


def _write(tmp_path, name, count=3):
    model, _ = MODELS[name]()
    import onnx
    onnx.save(model, tmp_path / f"{name}.onnx")
    np.savez(tmp_path / "X.npz", **_data(name, count))
    np.savez(tmp_path / "C.npz", **_data(name, 6, seed=9))
    return [str(tmp_path / f"{name}.onnx"), "--data", str(tmp_path / "X.npz")]


def test_cli_json_contract(tmp_path, capsys):
    args = _write(tmp_path, "mlp")
    assert main(["model", *args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r) == {"model", "format", "ptq", "output", "layers"}
    assert set(r["output"]) == {"cosine_mean", "cosine_min", "sqnr_db", "top1_agreement"}
    assert r["model"] == "mlp" and r["format"] == "int8" and r["ptq"] == "none"
    assert 0.99 < r["output"]["cosine_min"] <= r["output"]["cosine_mean"] <= 1
    assert 0 <= r["output"]["top1_agreement"] <= 1
    assert [(layer["name"], layer["op"], layer["shape"], layer["format"]) for layer in r["layers"]] == \
        [("fc1", "MatMul", [24, 16, 1], "int8"), ("fc2", "Gemm", [10, 24, 1], "int8")]
    assert all(layer["sqnr_db"] > 30 and layer["bit_exact"] is None for layer in r["layers"])


def test_cli_fp32_is_strict_json_and_exact_layers(tmp_path, capsys):
    args = _write(tmp_path, "cnn")
    assert main(["model", *args, "--format", "fp32", "--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    r = json.loads(text)
    assert r["output"]["cosine_min"] > 1 - 1e-6 and r["output"]["top1_agreement"] == 1.0
    assert all(layer["sqnr_db"] is None and layer["format"] == "fp32" for layer in r["layers"])


def test_cli_layer_overrides_sensitivity_and_plot(tmp_path, capsys):
    args = _write(tmp_path, "encoder")
    plot = tmp_path / "layers.png"
    assert main(["model", *args, "--format", "int4", "--layer", "layer0/ffn*=int8", "--layer", "*scores=fp32",
                 "--sensitivity", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert plot.stat().st_size > 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("layer0/") and len(line.split()) > 3}
    assert rows["layer0/ffn_in/matmul"][3] == "int8" and rows["layer0/scores"][3] == "fp32"
    assert rows["layer0/query/matmul"][3] == "int4"
    assert "sensitivity" in out


@pytest.mark.parametrize("flags", [["--ptq", "gptq", "--scale", "vector", "--vector", "16", "--format", "int4"],
                                   ["--format", "lns8"], ["--sparse", "2:4"], ["--scale", "per-channel"],
                                   ["--scale", "mx"], ["--format", "w4a8", "--scale", "vector", "--ptq", "gptq"],
                                   ["--format", "int4", "--scale", "vector", "--smooth", "0.5", "--ptq", "gptq"],
                                   ["--format", "int4", "--scale", "per-channel", "--rotate", "hadamard", "--ptq",
                                    "gptq"]])
def test_cli_schemes_run(tmp_path, capsys, flags):
    args = _write(tmp_path, "encoder")
    assert main(["model", *args, "--calibrate", str(tmp_path / "C.npz"), *flags, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["output"]["cosine_min"] > 0.9


def test_gptq_improves_the_encoder_output(tmp_path, capsys):
    args = _write(tmp_path, "encoder", 4)
    cos = {}
    for ptq in ("none", "gptq"):
        assert main(["model", *args, "--calibrate", str(tmp_path / "C.npz"), "--format", "int4", "--scale",
                     "per-channel", "--attention", "float", "--ptq", ptq, "--json"]) == 0
        cos[ptq] = json.loads(capsys.readouterr().out)["output"]["cosine_mean"]
    assert cos["gptq"] > cos["none"]


@pytest.mark.parametrize("extra,message", [
    (["--layer", "fc1"], "qmac: error: --layer: 'fc1': allowed: PATTERN=FORMAT, FORMAT one of fp32, int8, int4, "
                         "w4a8, lns8, lns4\n"),
    (["--layer", "fc1=int2"], "qmac: error: --layer: 'fc1=int2': allowed: PATTERN=FORMAT, FORMAT one of fp32, int8, "
                              "int4, w4a8, lns8, lns4\n"),
    (["--ptq", "gptq"], "qmac: error: --ptq: 'gptq': needs a calibration set: give --calibrate C.npz\n"),
    (["--plot", "x.svg"], "qmac: error: --plot: 'x.svg': allowed: a file name ending in .png\n"),
    (["--scale", "mx", "--format", "int4"], "qmac: error: --format: 'int4': allowed with --scale mx: int8 (MXINT8), "
                                            "fp32\n"),
    (["--scale", "mx", "--sparse", "2:4"], "qmac: error: --sparse: '2:4': is not supported with --scale mx; allowed: "
                                           "dense MX blocks\n"),
    (["--smooth", "1.5"], "qmac: error: --smooth: '1.5': allowed: a finite number >= 0 and <= 1\n"),
    (["--smooth", "0.5"], "qmac: error: --smooth: 0.5: needs a calibration set: give --calibrate C.npz\n"),
    (["--vector", "8"], "qmac: error: --vector: 8: applies only to --scale vector\n"),
])
def test_cli_bad_input_exits_2(tmp_path, capsys, extra, message):
    args = _write(tmp_path, "mlp")
    assert main(["model", *args, *extra]) == 2
    assert capsys.readouterr().err == message


def test_cli_data_must_name_every_input(tmp_path, capsys):
    args = _write(tmp_path, "mlp")
    np.savez(tmp_path / "X.npz", y=np.zeros((2, 16), dtype=np.float32))
    assert main(["model", *args]) == 2
    assert capsys.readouterr().err == (f"qmac: error: --data: {str(tmp_path / 'X.npz')!r}: holds y; allowed: an array "
                                       "for every model input (x), 'x' is missing\n")
