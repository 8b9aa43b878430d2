"""PaddleOCR's text-line direction classifier (a real pretrained MobileNetV3 CNN) and rendered text-line images
as inputs for ``qmac model``.

The model is ``ch_ppocr_mobile_v2.0_cls_infer.onnx`` from the PyPI package ``rapidocr-onnxruntime`` (1.4.4, a
15 MB wheel holding three ONNX files; only its files are used, so install it without its dependencies): input
``x`` (N x 3 x 48 x 192, pixels scaled to [-1, 1]), output the two class probabilities (0 and 180 degrees).
53 Conv (with squeeze-and-excitation blocks: GlobalAveragePool, 1x1 Conv, HardSigmoid), BatchNormalization,
Clip/HardSwish, one MatMul classifier, Softmax. ``model.onnx`` is written without the final Softmax (and the
Identity after it): its output is the two logits, so that cosine and SQNR see the margins rather than
probabilities saturated at 0 and 1 (top-1 is the same); ``--softmax`` keeps the file as shipped. The inputs
are lines of text (written below) rendered with Pillow's built-in font, dark on a light background (grey levels
drawn per line), every other one rotated by 180 degrees, preprocessed as RapidOCR does (resize to height 48 keeping the aspect ratio, width at most 192, ``(x / 255 - 0.5) / 0.5``,
zero padding on the right). Samples and calibration lines are disjoint.

    pip install --no-deps rapidocr-onnxruntime==1.4.4
    python bench/ppocr_cls.py --out build/ppocr_cls --samples 16 --calibration 14
    python bench/ppocr_cls.py --out build/ppocr_cls --samples 16 --calibration 14 --mixed 114 \
        --calibration-out C128.npz
    qmac model build/ppocr_cls/model.onnx --data build/ppocr_cls/X.npz --calibrate build/ppocr_cls/C.npz
"""

import argparse
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import onnx

LINES = """Hardware for deep learning
spends most of its energy
moving numbers around
Per-vector scaling gives
each short vector its own scale
The weather changed quickly
Clouds rolled over the ridge
A library is a quiet machine
for remembering things
Bread rises because yeast
eats sugar and breathes out
Invoice 2026-12-06 total 418.50
Structured sparsity keeps two
of every four weights
Calibration sets are small
Quantize column by column
Meeting room B, 14:30 sharp
Please keep this door closed
Fresh vegetables daily
The quick brown fox jumps
over the lazy dog again
Platform 7 for the 09:15 train
Turn left at the second light
Total due within 30 days
Batteries not included
Handle with care, fragile
Open Monday to Friday
Log numbers add exponents
Keep the accumulator exact
Round half to even""".splitlines()


def model_path():
    """The classifier's ONNX file inside the installed ``rapidocr_onnxruntime`` package (found without
    importing it: the package imports OpenCV)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        raise SystemExit("install the model package first: pip install --no-deps rapidocr-onnxruntime==1.4.4")
    return Path(spec.submodule_search_locations[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"


def logits(model):
    """``model`` with its output taken before the final Softmax (that node and any Identity after it removed)."""
    graph = model.graph
    out = graph.output[0]
    producer = {o: n for n in graph.node for o in n.output}
    node = producer[out.name]
    while node.op_type == "Identity":
        graph.node.remove(node)
        node = producer[node.input[0]]
    if node.op_type != "Softmax":
        raise SystemExit(f"expected a Softmax before the output, found {node.op_type}")
    graph.node.remove(node)
    out.name = node.input[0]
    return model


def render(text, rotate, rng):
    """One text line as RapidOCR's classifier input (3 x 48 x 192 float32): dark text on a light background
    (grey levels drawn from ``rng``), rotated by 180 degrees when ``rotate``."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(size=28)
    left, top, right, bottom = font.getbbox(text)
    pad = 6
    paper = int(rng.integers(200, 256))
    ink = int(rng.integers(0, 60))
    img = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), (paper,) * 3)
    ImageDraw.Draw(img).text((pad - left, pad - top), text, font=font, fill=(ink,) * 3)
    if rotate:
        img = img.rotate(180)
    width = min(192, int(np.ceil(48 * img.width / img.height)))
    pixels = np.asarray(img.resize((width, 48), Image.BILINEAR), dtype=np.float32)
    x = np.zeros((3, 48, 192), dtype=np.float32)
    x[:, :, :width] = (pixels.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    return x


def images(lines, seed):
    rng = np.random.default_rng(seed)
    return np.stack([render(text, i % 2 == 1, rng) for i, text in enumerate(lines)])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/ppocr_cls")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--calibration", type=int, default=14)
    p.add_argument("--softmax", action="store_true", help="keep the final Softmax (output probabilities)")
    p.add_argument("--mixed", type=int, default=0, metavar="N",
                   help="add N calibration lines of 3-6 words drawn (seeded) from the calibration lines' words: "
                        "GPTQ's Hessians of the squeeze-and-excitation convs and the classifier get one column "
                        "per image")
    p.add_argument("--calibration-out", default="C.npz", help="file name of the calibration set in --out")
    args = p.parse_args()
    if args.samples + args.calibration > len(LINES):
        raise SystemExit(f"--samples + --calibration: at most {len(LINES)} lines")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.softmax:
        shutil.copyfile(model_path(), out / "model.onnx")
    else:
        onnx.save(logits(onnx.load(str(model_path()))), out / "model.onnx")
    np.savez(out / "X.npz", x=images(LINES[:args.samples], 1))
    calibration = LINES[args.samples:args.samples + args.calibration]
    words = " ".join(calibration).split()
    rng = np.random.default_rng(3)
    calibration += [" ".join(rng.choice(words, rng.integers(3, 7))) for _ in range(args.mixed)]
    np.savez(out / args.calibration_out, x=images(calibration, 2))
    print(f"{out / 'model.onnx'}: X.npz {args.samples}, {args.calibration_out} {len(calibration)} text lines "
          f"(3 x 48 x 192)")


if __name__ == "__main__":
    main()
