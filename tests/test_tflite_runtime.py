"""qmac's TFLite modes against the TFLite runtime itself (ai-edge-litert): int8 FULLY_CONNECTED models built here
as flatbuffers (the runtime's own schema module, no TensorFlow), run by the runtime's reference kernels
(BUILTIN_REF) and optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES), read back by
:func:`qmac.sim.tflite_fc.read_fully_connected` and computed with qmac's output stage (golden model)."""

import flatbuffers
import numpy as np
import pytest

litert = pytest.importorskip("ai_edge_litert.interpreter")
schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

from qmac.sim.tflite_fc import read_fully_connected  # noqa: E402

RESOLVERS = {"tflite_reference": litert.OpResolverType.BUILTIN_REF,
             "tflite_optimized": litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def _quant(scale, zero_point):
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(np.float32(scale))]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = 0
    return q


def _tensor(name, shape, ttype, buffer, quant):
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer, t.quantization = name, list(shape), ttype, buffer, quant
    return t


def fc_model(w, bias, input_scale, input_zp, filter_scales, output_scale, output_zp, batch):
    """A one-operator model: int8 input (batch x K) -> FULLY_CONNECTED (filter N x K int8, symmetric, one
    scale or one per channel; int32 bias of scale input_scale * filter_scale) -> int8 output (batch x N)."""
    n, k = w.shape
    ws = np.atleast_1d(np.float32(filter_scales))
    buffers = [schema.BufferT() for _ in range(4)]
    buffers[1].data = list(np.asarray(w, dtype=np.int8).tobytes())
    buffers[2].data = list(np.asarray(bias, dtype="<i4").tobytes())
    T = schema.TensorType
    tensors = [_tensor(b"input", [batch, k], T.INT8, 0, _quant(input_scale, input_zp)),
               _tensor(b"filter", [n, k], T.INT8, 1, _quant(ws, np.zeros(ws.size, dtype=int))),
               _tensor(b"bias", [n], T.INT32, 2, _quant(np.float32(input_scale) * ws, np.zeros(ws.size, dtype=int))),
               _tensor(b"output", [batch, n], T.INT8, 3, _quant(output_scale, output_zp))]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [3], [op]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 4
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], buffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_runtime(model, x, mode):
    it = litert.Interpreter(model_content=model, experimental_op_resolver_type=RESOLVERS[mode])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _case(rng, kind, per_channel, n=12, k=40, batch=300):
    """(model, inputs): ``ties`` has power-of-two scales (every output a multiple of 1/16: many exact ties of
    both signs), ``random`` generic float32 scales, ``saturate`` outputs far beyond int8."""
    channels = n if per_channel else 1
    w = rng.integers(-127, 128, (n, k))
    bias = rng.integers(-4000, 4000, n)
    if kind == "ties":
        ws, in_s, out_s = 2.0 ** rng.integers(-10, -6, channels), 0.25, 1.0
    elif kind == "random":
        ws, in_s, out_s = rng.uniform(0.0005, 0.01, channels), rng.uniform(0.005, 0.05), rng.uniform(0.05, 0.5)
    else:
        ws, in_s, out_s = rng.uniform(0.01, 0.05, channels), 0.05, 0.02
    in_zp, out_zp = int(rng.integers(-20, 21)), int(rng.integers(-30, 31))
    x = rng.integers(-128, 128, (batch, k)).astype(np.int8)
    return fc_model(w, bias, in_s, in_zp, ws, out_s, out_zp, batch), x


@pytest.mark.parametrize("mode", list(RESOLVERS))
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("kind", ["ties", "random", "saturate"])
def test_fully_connected_bytes_equal_the_runtime(mode, per_channel, kind):
    rng = np.random.default_rng(["ties", "random", "saturate"].index(kind) * 2 + per_channel)
    for _ in range(3):
        model, x = _case(rng, kind, per_channel)
        expected = run_runtime(model, x, mode)
        got = read_fully_connected(model).output(x, mode)
        assert got.dtype == np.int8 and got.tobytes() == expected.tobytes()
    if kind == "saturate":
        assert (expected == 127).any() and (expected == -128).any()


def test_the_kernels_differ_on_ties():
    """The two kernels are not interchangeable: on tie-heavy models each mode misses the other kernel."""
    rng = np.random.default_rng(11)
    model, x = _case(rng, "ties", True)
    fc = read_fully_connected(model)
    for mode, other in (("tflite_reference", "tflite_optimized"), ("tflite_optimized", "tflite_reference")):
        assert (fc.output(x, mode) != run_runtime(model, x, other)).any()
    assert (fc.output(x, "gemmlowp") != run_runtime(model, x, "tflite_optimized")).any()


def test_products_from_the_engine_give_the_same_bytes():
    """W @ x from qmac's golden GEMM (INT8 default core), then the offset and the output stage."""
    from qmac.engine import run_gemm
    from qmac.hw.spec.config import preset
    rng = np.random.default_rng(5)
    model, x = _case(rng, "random", True, n=8, k=32, batch=16)
    fc = read_fully_connected(model)
    Y = run_gemm(preset("default"), "int8", fc.weights, x.T.astype(np.int64))["Y"]
    assert fc.output(x, "tflite_optimized", Y).tobytes() == run_runtime(model, x, "tflite_optimized").tobytes()


def test_reader_rejects_what_it_cannot_reproduce():
    rng = np.random.default_rng(0)
    model, _ = _case(rng, "random", False)
    with pytest.raises(ValueError, match=r"^FULLY_CONNECTED index must be within \[0, 0\], not 1$"):
        read_fully_connected(model, 1)
    with pytest.raises(ValueError, match=r"^TFLite mode must be one of gemmlowp, tflite_optimized, tflite_reference, "
                                         r"not 'fixed'$"):
        read_fully_connected(model).requant_params("fixed")
