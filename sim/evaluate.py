"""Accuracy sweeps of the host quantizers: SQNR of weights, activations and their product.

:func:`evaluate` quantizes a weight matrix W (N x K, along K) and optionally an activation matrix A (K x M,
along K) with every combination of format, scheme, vector length, scale width and clip method, and reports the
SQNR (:func:`qmac.sim.quantize.sqnr_db`) of each. :func:`synthetic` makes test data, :func:`format_table`
renders rows as markdown. Definitions and measured numbers: ``docs/vsq.md``.
"""

import numpy as np

from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.sim.quantize import quantize, sqnr_db, vsq_gemm

__all__ = ["DISTRIBUTIONS", "synthetic", "evaluate", "format_table"]


#: Unit-variance samplers of :func:`synthetic`, by name.
DISTRIBUTIONS = {
    "gaussian": lambda rng, shape: rng.standard_normal(shape),
    "laplacian": lambda rng, shape: rng.laplace(scale=np.sqrt(0.5), size=shape),
    "student-t3": lambda rng, shape: rng.standard_t(3, size=shape) / np.sqrt(3.0),
}


def synthetic(name, shape, seed=0):
    """Independent samples of a zero-mean, unit-variance distribution.

    Parameters
    ----------
    name : str
        ``"gaussian"`` (standard normal), ``"laplacian"`` (Laplace with scale ``1/sqrt(2)``) or
        ``"student-t3"`` (Student's t with 3 degrees of freedom, divided by ``sqrt(3)``: heavy tails).
    shape : int or tuple of int
        Output shape.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same samples.

    Returns
    -------
    numpy.ndarray of float64

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    if name not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, not {name!r}")
    return DISTRIBUTIONS[name](np.random.default_rng(seed), shape)


def _configs(schemes, vectors, scale_bits):
    """``(scheme, vector, scale_bits)`` triples; the vector sizes and scale widths apply to ``"vector"`` only."""
    for scheme in schemes:
        if scheme == "vector":
            yield from ((scheme, v, s) for v in vectors for s in scale_bits)
        else:
            yield scheme, None, None


def evaluate(W, A=None, formats=("int8", "int4"), schemes=("per-tensor", "per-channel", "vector"),
             vectors=(16, 32, 64), scale_bits=(4, 6, 8), clips=("max", "percentile", "mse")):
    """SQNR of every quantizer configuration on weights W, activations A and their product ``W @ A``.

    For each format, scheme (with each vector length and scale width for ``"vector"``) and clip method, W is
    quantized along axis 1 and A along axis 0 with :func:`qmac.sim.quantize.quantize` (same settings for
    both; per-vector ``gamma`` per row of W and per column of A), and the product is computed as
    :func:`qmac.sim.quantize.vsq_gemm`.

    Parameters
    ----------
    W : array_like
        Weights, N x K.
    A : array_like or None
        Activations, K x M; ``None`` evaluates the weights only.
    formats : iterable of str
        Element format names: ``"int8"``, ``"int4"``, ``"w4a8"`` (INT4 weights, INT8 activations).
    schemes : iterable of str
        ``"per-tensor"``, ``"per-channel"``, ``"vector"``.
    vectors, scale_bits : iterable of int
        Vector lengths V and scale widths S swept by the ``"vector"`` scheme (integer scales).
    clips : iterable of str
        Clip methods: ``"max"``, ``"percentile"``, ``"mse"``.

    Returns
    -------
    list of dict
        One row per configuration, in loop order format, scheme, V, S, clip, with keys ``format``,
        ``scheme``, ``vector`` and ``scale_bits`` (``None`` unless ``"vector"``), ``clip``, ``sqnr_w_db``,
        ``sqnr_a_db`` and ``sqnr_y_db`` (``None`` without A); SQNR in dB.

    Raises
    ------
    ValueError
        If a format name is unknown, or as :func:`qmac.sim.quantize.quantize`.
    """
    W = np.asarray(W, dtype=np.float64)
    A = None if A is None else np.asarray(A, dtype=np.float64)
    Y = None if A is None else W @ A
    rows = []
    for name in formats:
        if name not in ELEMENT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(ELEMENT_FORMATS)}, not {name!r}")
        w_fmt, a_fmt = ELEMENT_FORMATS[name].operands
        for scheme, vector, bits in _configs(schemes, vectors, scale_bits):
            for clip in clips:
                qw = quantize(W, w_fmt, scheme, 1, vector, bits, clip)
                row = dict(format=name, scheme=scheme, vector=vector, scale_bits=bits, clip=clip,
                           sqnr_w_db=sqnr_db(W, qw.dequantize()), sqnr_a_db=None, sqnr_y_db=None)
                if A is not None:
                    qa = quantize(A, a_fmt, scheme, 0, vector, bits, clip)
                    row.update(sqnr_a_db=sqnr_db(A, qa.dequantize()), sqnr_y_db=sqnr_db(Y, vsq_gemm(qw, qa)))
                rows.append(row)
    return rows


#: Columns of :func:`format_table`: header and row key.
_COLUMNS = (("format", "format"), ("scheme", "scheme"), ("V", "vector"), ("S", "scale_bits"), ("clip", "clip"),
            ("SQNR W (dB)", "sqnr_w_db"), ("SQNR A (dB)", "sqnr_a_db"), ("SQNR Y (dB)", "sqnr_y_db"))


def format_table(rows):
    """Rows of :func:`evaluate` as a markdown table; SQNR with two decimals, ``None`` as ``-``."""
    def cell(value):
        if value is None:
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(head for head, _ in _COLUMNS) + " |",
             "|" + "|".join("---" for _ in _COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(row[key]) for _, key in _COLUMNS) + " |" for row in rows]
    return "\n".join(lines)
