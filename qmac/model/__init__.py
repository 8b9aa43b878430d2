"""Whole networks through qmac's arithmetic: ONNX models whose matrix products run on the golden model or the
emitted RTL of a core, compared with onnxruntime's FP32 outputs.

For notebooks::

    from qmac.model import Scheme, evaluate, load
    net = load("model.onnx")
    report = evaluate(net, {"x": X}, Scheme("int4", scale="vector", vector=16), ptq="gptq",
                      calibration=[{"x": C[i:i + 1]} for i in range(len(C))], smooth=0.5, rotate="hadamard")

:func:`load` reads the model (:mod:`qmac.model.network`), :class:`QuantizedNetwork` quantizes and runs it one
sample at a time (:mod:`qmac.model.execute`), :func:`evaluate` and :func:`sensitivity` report
(:mod:`qmac.model.report`). ``qmac model`` is the command line over the same functions.
"""

from qmac.quantized_gemm import Scheme

from .execute import ATTENTION, FORMATS, PTQ, ROTATE, QuantizedNetwork, reference_outputs
from .network import Layer, Network, load
from .report import evaluate, format_table, output_metrics, plot_layers, samples, sensitivity

__all__ = ["Scheme", "load", "Network", "Layer", "QuantizedNetwork", "reference_outputs", "evaluate", "sensitivity",
           "samples", "output_metrics", "format_table", "plot_layers", "FORMATS", "PTQ", "ATTENTION",
           "ROTATE"]
