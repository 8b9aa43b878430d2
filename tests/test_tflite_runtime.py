"""qmac's TFLite modes against the TFLite runtime itself (ai-edge-litert): int8 FULLY_CONNECTED and CONV_2D models
built here as flatbuffers (the runtime's own schema module, no TensorFlow), run by the runtime's reference kernels
(BUILTIN_REF) and optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES), read back by
:func:`qmac.sim.tflite_fc.read_fully_connected` / :func:`qmac.sim.tflite_conv.read_conv_2d` and computed with
qmac's output stage (golden model; CONV_2D through im2col)."""

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


def _model(tensors, buffers, builtin, options_type, options, code_version):
    """A one-operator model: tensors 0 (input), 1 (filter), 2 (bias) -> 3 (output)."""
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType, op.builtinOptions = options_type, options
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [3], [op]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = code_version
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], buffers
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _filter_tensors(w, bias, input_scale, input_zp, filter_scales, output_scale, output_zp, in_shape, out_shape):
    """Tensors and buffers of an int8 layer: input, filter (``w``, output channels first; symmetric, one scale or
    one per channel), int32 bias of scale input_scale * filter_scale, output."""
    ws = np.atleast_1d(np.float32(filter_scales))
    buffers = [schema.BufferT() for _ in range(4)]
    buffers[1].data = list(np.asarray(w, dtype=np.int8).tobytes())
    buffers[2].data = list(np.asarray(bias, dtype="<i4").tobytes())
    T = schema.TensorType
    n = w.shape[0]
    tensors = [_tensor(b"input", in_shape, T.INT8, 0, _quant(input_scale, input_zp)),
               _tensor(b"filter", w.shape, T.INT8, 1, _quant(ws, np.zeros(ws.size, dtype=int))),
               _tensor(b"bias", [n], T.INT32, 2, _quant(np.float32(input_scale) * ws, np.zeros(ws.size, dtype=int))),
               _tensor(b"output", out_shape, T.INT8, 3, _quant(output_scale, output_zp))]
    return tensors, buffers


def fc_model(w, bias, input_scale, input_zp, filter_scales, output_scale, output_zp, batch):
    """A one-operator model: int8 input (batch x K) -> FULLY_CONNECTED (filter N x K int8) -> int8 output
    (batch x N)."""
    n, k = w.shape
    tensors, buffers = _filter_tensors(w, bias, input_scale, input_zp, filter_scales, output_scale, output_zp,
                                       [batch, k], [batch, n])
    return _model(tensors, buffers, schema.BuiltinOperator.FULLY_CONNECTED,
                  schema.BuiltinOptions.FullyConnectedOptions, schema.FullyConnectedOptionsT(), 4)


def conv_model(w, bias, input_scale, input_zp, filter_scales, output_scale, output_zp, in_shape, stride, padding):
    """A one-operator model: int8 input (NHWC ``in_shape``) -> CONV_2D (filter OHWI int8, ``stride`` on both axes,
    ``padding`` SAME or VALID) -> int8 output (NHWC, its size from TFLite's padding rule)."""
    from qmac.sim.tflite_conv import conv_output_size
    b, h, wd, _ = in_shape
    n, kh, kw, _ = w.shape
    out_shape = [b, conv_output_size(h, kh, stride, padding)[0], conv_output_size(wd, kw, stride, padding)[0], n]
    tensors, buffers = _filter_tensors(w, bias, input_scale, input_zp, filter_scales, output_scale, output_zp,
                                       in_shape, out_shape)
    options = schema.Conv2DOptionsT()
    options.padding = getattr(schema.Padding, padding)
    options.strideH = options.strideW = stride
    return _model(tensors, buffers, schema.BuiltinOperator.CONV_2D, schema.BuiltinOptions.Conv2DOptions, options, 3)


def run_runtime(model, x, mode):
    it = litert.Interpreter(model_content=model, experimental_op_resolver_type=RESOLVERS[mode])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _quantization(rng, kind, channels):
    """``(weight scales, input scale, output scale, input zero point, output zero point)``: ``ties`` has
    power-of-two scales (every output a multiple of 1/16: many exact ties of both signs), ``random`` generic
    float32 scales, ``saturate`` outputs far beyond int8."""
    if kind == "ties":
        ws, in_s, out_s = 2.0 ** rng.integers(-10, -6, channels), 0.25, 1.0
    elif kind == "random":
        ws, in_s, out_s = rng.uniform(0.0005, 0.01, channels), rng.uniform(0.005, 0.05), rng.uniform(0.05, 0.5)
    else:
        ws, in_s, out_s = rng.uniform(0.01, 0.05, channels), 0.05, 0.02
    return ws, in_s, out_s, int(rng.integers(-20, 21)), int(rng.integers(-30, 31))


def _case(rng, kind, per_channel, n=12, k=40, batch=300):
    """(model, inputs) of a FULLY_CONNECTED with the scales of :func:`_quantization` for ``kind``."""
    channels = n if per_channel else 1
    w = rng.integers(-127, 128, (n, k))
    bias = rng.integers(-4000, 4000, n)
    ws, in_s, out_s, in_zp, out_zp = _quantization(rng, kind, channels)
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


def _conv_case(rng, kind, per_channel, stride, padding, n=6, c=5, kernel=3, shape=(2, 9, 8)):
    """(model, input) of a CONV_2D with the scales of :func:`_quantization` for ``kind``."""
    channels = n if per_channel else 1
    w = rng.integers(-127, 128, (n, kernel, kernel, c))
    bias = rng.integers(-4000, 4000, n)
    ws, in_s, out_s, in_zp, out_zp = _quantization(rng, kind, channels)
    x = rng.integers(-128, 128, (*shape, c)).astype(np.int8)
    return conv_model(w, bias, in_s, in_zp, ws, out_s, out_zp, list(x.shape), stride, padding), x


#: Which qmac output-stage mode reproduces each runtime kernel on CONV_2D.
CONV_MODES = {"tflite_reference": "gemmlowp", "tflite_optimized": "tflite_optimized"}


@pytest.mark.parametrize("kernel", list(RESOLVERS))
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("kind", ["ties", "random", "saturate"])
@pytest.mark.parametrize("stride,padding", [(1, "SAME"), (2, "SAME"), (1, "VALID"), (2, "VALID")])
def test_conv_2d_bytes_equal_the_runtime(kernel, per_channel, kind, stride, padding):
    from qmac.sim.tflite_conv import read_conv_2d
    rng = np.random.default_rng(["ties", "random", "saturate"].index(kind) * 8 + per_channel * 4 + stride)
    for _ in range(3):
        model, x = _conv_case(rng, kind, per_channel, stride, padding)
        expected = run_runtime(model, x, kernel)
        got = read_conv_2d(model).output(x, CONV_MODES[kernel])
        assert got.dtype == np.int8 and got.shape == expected.shape and got.tobytes() == expected.tobytes()
    if kind == "saturate":
        assert (expected == 127).any() and (expected == -128).any()


def test_conv_kernels_differ_on_ties():
    """On tie-heavy CONV_2D models each runtime kernel is missed by the other kernel's mode, and by the FC
    reference kernel's mode (reference CONV_2D rounds twice, as gemmlowp)."""
    from qmac.sim.tflite_conv import read_conv_2d
    rng = np.random.default_rng(11)
    models = [_conv_case(rng, "ties", True, 1, "SAME") for _ in range(4)]
    for kernel, other in (("tflite_reference", "tflite_optimized"), ("tflite_optimized", "tflite_reference")):
        assert any((read_conv_2d(m).output(x, CONV_MODES[kernel]) != run_runtime(m, x, other)).any()
                   for m, x in models)
    assert any((read_conv_2d(m).output(x, "tflite_reference") != run_runtime(m, x, "tflite_reference")).any()
               for m, x in models)


@pytest.mark.parametrize("stride,padding", [(2, "SAME"), (1, "VALID")])
def test_conv_products_from_the_engine_give_the_same_bytes(stride, padding):
    """im2col on the host, ``W @ cols`` on qmac's golden GEMM (INT8 default core), then the offset and the
    output stage: the runtime's bytes."""
    from qmac.engine import run_gemm
    from qmac.hw.spec.config import preset
    from qmac.sim.tflite_conv import read_conv_2d
    rng = np.random.default_rng(6)
    model, x = _conv_case(rng, "random", True, stride, padding)
    conv = read_conv_2d(model)
    cols, _ = conv.im2col(x)
    Y = run_gemm(preset("default"), "int8", conv.weights, cols)["Y"]
    for kernel, mode in CONV_MODES.items():
        assert conv.output(x, mode, Y).tobytes() == run_runtime(model, x, kernel).tobytes()


def test_conv_reader_rejects_what_it_cannot_reproduce():
    from qmac.sim.tflite_conv import read_conv_2d
    rng = np.random.default_rng(0)
    model, _ = _conv_case(rng, "random", False, 1, "SAME")
    with pytest.raises(ValueError, match=r"^CONV_2D index must be within \[0, 0\], not 1$"):
        read_conv_2d(model, 1)
    with pytest.raises(ValueError, match=r"^CONV_2D index must be within \[0, -1\], not 0$"):
        read_conv_2d(_case(rng, "random", False)[0])
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    m.subgraphs[0].operators[0].builtinOptions.dilationHFactor = 2
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(ValueError, match=r"^dilation must be 1, not \(2, 1\)$"):
        read_conv_2d(bytes(b.Output()))
