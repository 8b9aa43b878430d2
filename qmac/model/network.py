"""An ONNX network as qmac sees it: the graph, and its layers — the nodes that become matrix products on the core.

A *layer* is a MatMul or Gemm with one constant operand (an initializer or a Constant node: the weights), a
Conv with constant weights (lowered by im2col), or a MatMul between two activations (attention scores and
context). Every node gets a unique name (``<op_type>_<index>`` when it has none), which is the layer's name
in reports and in ``--layer`` patterns. An inference BatchNormalization that alone reads a Conv's output is
folded into that Conv's weights and bias first (:func:`fold_batch_norms`), as deployment flows do before
quantizing.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Layer", "Network", "load", "fold_batch_norms", "im2col", "conv_output_shape"]


@dataclass(frozen=True)
class Layer:
    """One matrix-product node.

    Members
    -------
    name : str
        Unique node name.
    op : str
        ``MatMul``, ``Gemm`` or ``Conv``.
    weight_input : int or None
        Index of the constant operand among the node's inputs; ``None`` for a MatMul between activations.
    """
    name: str
    op: str
    weight_input: int | None

    @property
    def has_weights(self):
        return self.weight_input is not None


class Network:
    """A loaded ONNX model: the proto (nodes renamed uniquely), its constants and its layers.

    Members
    -------
    proto : onnx.ModelProto
    name : str
        File stem, or the graph's name.
    constants : dict
        Initializer and Constant-node outputs by name (numpy arrays).
    layers : list of Layer
        In graph order.
    inputs, outputs : list of str
        Graph input names (initializers excluded) and output names.
    """

    def __init__(self, proto, name=None):
        self.proto = proto
        graph = proto.graph
        self.name = name or graph.name or "model"
        seen = set()
        for i, node in enumerate(graph.node):
            if not node.name or node.name in seen:
                node.name = f"{node.op_type}_{i}"
            seen.add(node.name)
        self.constants = _constants(graph)
        if fold_batch_norms(proto, self.constants):
            self.constants = _constants(graph)
        self.inputs = [i.name for i in graph.input if i.name not in self.constants]
        self.outputs = [o.name for o in graph.output]
        self.layers = []
        for node in graph.node:
            const = [len(node.input) > j and node.input[j] in self.constants for j in range(2)]
            if node.op_type == "Conv" and const[1]:
                self.layers.append(Layer(node.name, "Conv", 1))
            elif node.op_type in ("MatMul", "Gemm") and const[0] != const[1]:
                w = 0 if const[0] else 1
                if np.ndim(self.constants[node.input[w]]) == 2:
                    self.layers.append(Layer(node.name, node.op_type, w))
            elif node.op_type == "MatMul" and not any(const):
                self.layers.append(Layer(node.name, "MatMul", None))
        self._by_name = {layer.name: layer for layer in self.layers}

    def layer(self, name):
        """The layer of node ``name``, or ``None``."""
        return self._by_name.get(name)


def _constants(graph):
    """Initializer and Constant-node outputs by name (numpy arrays)."""
    from onnx import numpy_helper
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attr.t)
    return constants


def fold_batch_norms(proto, constants):
    """Fold each inference BatchNormalization into the Conv before it, in place; returns how many.

    A BatchNormalization node (one output, not in training mode) with constant scale ``g``, bias ``b``, mean
    ``mu`` and variance ``v``, whose input is the only use of a Conv's output (weights ``W``, bias ``c`` or 0,
    all constants in ``constants``), is removed and the Conv computes
    ``W' = W * k`` per output channel and ``c' = (c - mu) * k + b`` with ``k = g / sqrt(v + epsilon)`` (float64,
    stored in the weights' type as new initializers named ``<conv>/folded_W`` and ``<conv>/folded_B``), which
    equals the pair in exact arithmetic."""
    from onnx import helper, numpy_helper
    graph = proto.graph
    uses = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for out in graph.output:
        uses[out.name] = uses.get(out.name, 0) + 1
    producer = {out: node for node in graph.node for out in node.output}
    folded = []
    for bn in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
        conv = producer.get(bn.input[0]) if bn.op_type == "BatchNormalization" else None
        if (conv is None or conv.op_type != "Conv" or len(bn.output) != 1 or attrs.get("training_mode", 0)
                or uses[bn.input[0]] != 1
                or not all(name in constants for name in list(bn.input[1:5]) + [conv.input[1]])
                or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in constants)):
            continue
        g, b, mu, v = (constants[name].astype(np.float64) for name in bn.input[1:5])
        W = constants[conv.input[1]]
        k = g / np.sqrt(v + attrs.get("epsilon", 1e-5))
        c = constants[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        new_w = (W.astype(np.float64) * k.reshape((-1,) + (1,) * (W.ndim - 1))).astype(W.dtype)
        new_b = ((c - mu) * k + b).astype(W.dtype)
        names = (f"{conv.name}/folded_W", f"{conv.name}/folded_B")
        graph.initializer.extend([numpy_helper.from_array(new_w, names[0]), numpy_helper.from_array(new_b, names[1])])
        del conv.input[1:]
        conv.input.extend(names)
        conv.output[0] = bn.output[0]
        folded.append(bn)
    for bn in folded:
        graph.node.remove(bn)
    return len(folded)


def load(model):
    """A :class:`Network` from an ONNX file path or a ``ModelProto``.

    Raises
    ------
    ValueError
        The file cannot be read as an ONNX model.
    """
    import onnx
    if isinstance(model, onnx.ModelProto):
        return Network(model)
    try:
        proto = onnx.load(str(model))
    except Exception as e:  # onnx raises DecodeError, OSError, ... for a bad file
        raise ValueError(f"{model}: cannot be read as an ONNX model: {e}") from None
    return Network(proto, Path(model).stem)


def conv_output_shape(spatial, kernel, strides, pads, dilations):
    """Output extent per spatial axis: ``(in + pad_begin + pad_end - dilation * (k - 1) - 1) // stride + 1``."""
    d = len(spatial)
    return [(spatial[i] + pads[i] + pads[i + d] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
            for i in range(d)]


def im2col(X, kernel, strides, pads, dilations):
    """Conv input ``X`` (B, C, *spatial; 1-D or 2-D) -> columns ``(C * prod(kernel), B * prod(out))``, rows in
    (channel, kernel position) order as ONNX orders a Conv weight's trailing axes, columns in (batch, output
    position) order. Padding is with zeros; ``pads`` is ONNX's ``[begin..., end...]``."""
    d = X.ndim - 2
    if d == 1:
        X = X[:, :, None, :]
        kernel, strides, dilations = (1, *kernel), (1, *strides), (1, *dilations)
        pads = (0, pads[0], 0, pads[1])
    B, C, H, W = X.shape
    Xp = np.pad(X, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh, ow = conv_output_shape((H, W), kernel, strides, pads, dilations)
    kh, kw = kernel
    cols = np.empty((C, kh, kw, B, oh, ow), dtype=X.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dilations[0], j * dilations[1]
            patch = Xp[:, :, r0:r0 + strides[0] * (oh - 1) + 1:strides[0], c0:c0 + strides[1] * (ow - 1) + 1:strides[1]]
            cols[:, i, j] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, B * oh * ow)
