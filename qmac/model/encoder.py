"""A BERT-style transformer encoder as an ONNX graph, built with ``onnx.helper`` from numpy weights.

For real pretrained weights shipped without an ONNX file (``bench/minilm.py`` reads all-MiniLM-L6-v2 from its
safetensors) and for seeded random weights in tests. The graph is what exporters emit for BERT (opset 17):

* input ``input_ids`` (1 x S, int64); embeddings ``word[ids] + position[0:S] + token_type[0]``, then
  LayerNormalization;
* per layer: ``Q, K, V = X Wq + bq, ...`` (MatMul with constant weights, Add), heads split by Reshape and
  Transpose, scores ``Q K^T`` (MatMul between activations) times ``1/sqrt(d)``, Softmax, context ``P V``
  (MatMul between activations), output projection, residual Add, LayerNormalization; feed-forward
  ``gelu(X W1 + b1) W2 + b2`` with the exact GELU ``x/2 * (1 + erf(x / sqrt 2))`` (Erf), residual,
  LayerNormalization;
* output ``hidden`` (1 x S x H), the last layer's states. No attention mask: every token attends to every
  token (one unpadded sequence per sample).

Weight names follow the Hugging Face BERT checkpoints (``embeddings.word_embeddings.weight``,
``encoder.layer.<i>.attention.self.query.weight``, ...); Linear weights are stored ``(out, in)`` as there.
"""

import numpy as np

__all__ = ["bert_encoder", "random_bert_weights"]

def random_bert_weights(layers, hidden, heads, ffn, vocab=64, positions=64, seed=0):
    """Seeded random weights of the shapes :func:`bert_encoder` reads (normal, std 0.02 ... 0.1 like a
    trained BERT's scale; LayerNorm gains near 1)."""
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    r = np.random.default_rng(seed)
    w = {"embeddings.word_embeddings.weight": r.normal(0, 0.5, (vocab, hidden)),
         "embeddings.position_embeddings.weight": r.normal(0, 0.1, (positions, hidden)),
         "embeddings.token_type_embeddings.weight": r.normal(0, 0.1, (2, hidden)),
         "embeddings.LayerNorm.weight": 1 + r.normal(0, 0.1, hidden),
         "embeddings.LayerNorm.bias": r.normal(0, 0.1, hidden)}
    shapes = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
              "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
              "intermediate.dense": (ffn, hidden), "output.dense": (hidden, ffn)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name, shape in shapes.items():
            w[p + name + ".weight"] = r.normal(0, 1 / np.sqrt(shape[1]), shape)
            w[p + name + ".bias"] = r.normal(0, 0.05, shape[0])
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"] = 1 + r.normal(0, 0.1, hidden)
            w[p + ln + ".bias"] = r.normal(0, 0.1, hidden)
    return {k: v.astype(np.float32) for k, v in w.items()}


def bert_encoder(weights, layers, heads, eps=1e-12, name="encoder"):
    """The ONNX encoder (module docstring) of ``layers`` layers and ``heads`` heads over ``weights`` (a dict
    of numpy arrays by checkpoint name).

    Raises
    ------
    KeyError
        A weight the graph needs is missing.
    """
    from onnx import TensorProto, helper, numpy_helper
    hidden = weights["embeddings.word_embeddings.weight"].shape[1]
    d = hidden // heads
    inits, nodes = [], []

    def const(key, value):
        inits.append(numpy_helper.from_array(np.asarray(value), key))
        return key

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def w(key):
        return const(key, np.asarray(weights[key], dtype=np.float32))

    def linear(x, prefix, out):
        weight = const(prefix + ".weight_t", np.ascontiguousarray(np.asarray(weights[prefix + ".weight"]).T
                                                                  .astype(np.float32)))
        return node("Add", [node("MatMul", [x, weight], out + "/matmul"), w(prefix + ".bias")], out)

    def norm(x, prefix, out):
        return node("LayerNormalization", [x, w(prefix + ".weight"), w(prefix + ".bias")], out, axis=-1,
                    epsilon=eps)

    const("zero", np.array(0, dtype=np.int64))
    const("heads_shape", np.array([0, 0, heads, d], dtype=np.int64))
    const("hidden_shape", np.array([0, 0, hidden], dtype=np.int64))
    const("inv_sqrt_d", np.array(1 / np.sqrt(d), dtype=np.float32))
    const("inv_sqrt2", np.array(1 / np.sqrt(2), dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    const("one_f", np.array(1.0, dtype=np.float32))
    const("start0", np.array([0], dtype=np.int64))

    words = node("Gather", [w("embeddings.word_embeddings.weight"), "input_ids"], "emb/words")
    seq = node("Shape", ["input_ids"], "emb/shape", start=1, end=2)
    pos = node("Slice", [w("embeddings.position_embeddings.weight"), "start0", seq], "emb/positions")
    typ = node("Gather", [w("embeddings.token_type_embeddings.weight"), "zero"], "emb/type")
    x = node("Add", [node("Add", [words, pos], "emb/sum"), typ], "emb/total")
    x = norm(x, "embeddings.LayerNorm", "emb/norm")
    for i in range(layers):
        p, n = f"encoder.layer.{i}.", f"layer{i}/"
        split = {}
        for part in ("query", "key", "value"):
            y = linear(x, p + "attention.self." + part, n + part)
            y = node("Reshape", [y, "heads_shape"], n + part + "/heads")
            split[part] = node("Transpose", [y], n + part + "/t", perm=[0, 2, 3, 1] if part == "key" else [0, 2, 1, 3])
        scores = node("MatMul", [split["query"], split["key"]], n + "scores")
        probs = node("Softmax", [node("Mul", [scores, "inv_sqrt_d"], n + "scaled")], n + "probs", axis=-1)
        ctx = node("MatMul", [probs, split["value"]], n + "context")
        ctx = node("Reshape", [node("Transpose", [ctx], n + "context/t", perm=[0, 2, 1, 3]), "hidden_shape"],
                   n + "context/merged")
        att = linear(ctx, p + "attention.output.dense", n + "attention_out")
        x = norm(node("Add", [att, x], n + "attention_res"), p + "attention.output.LayerNorm", n + "attention_norm")
        h = linear(x, p + "intermediate.dense", n + "ffn_in")
        erf = node("Erf", [node("Mul", [h, "inv_sqrt2"], n + "gelu/scaled")], n + "gelu/erf")
        gelu = node("Mul", [node("Mul", [h, "half"], n + "gelu/half"), node("Add", [erf, "one_f"], n + "gelu/one")],
                    n + "gelu")
        out = linear(gelu, p + "output.dense", n + "ffn_out")
        x = norm(node("Add", [out, x], n + "ffn_res"), p + "output.LayerNorm", n + "out")
    nodes.append(helper.make_node("Identity", [x], ["hidden"], name="hidden"))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "S"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, "S", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
