"""OCP Microscaling (MX v1.0) MXINT8 on the host: the spec's quantizer, and MX blocks as the core's pow2 scales.

An MXINT8 block is 32 consecutive elements along K sharing one E8M0 scale: a biased exponent ``E`` in
``0 .. 254`` standing for ``X = 2**(E - 127)`` (``E = 255`` is NaN). Each element is an 8-bit two's-complement
code ``P`` in ``[-128, 127]`` with an implied scale of ``2**-6``, so a block holds ``P * 2**(E - 127 - 6)``.
The bit-level definition, the core mapping and its limits are in ``docs/formats.md`` ("OCP Microscaling").

The core has no E8M0 scales: its pow2 scale fields are unsigned exponents of at most 4 bits. :func:`mx_window`
writes each block's exponent as a per-channel base exponent ``B`` (kept by the host) plus a relative field
``f = X - B`` in ``0 .. 2**S - 1``; blocks too small for the window are shifted into field 0, exactly when their
low code bits are zero, else rounded and counted.
"""

from dataclasses import dataclass

import numpy as np

from qmac.sim.quantize import MAX_SCALE_BITS, VsqTensor

__all__ = ["MX_BLOCK", "E8M0_BIAS", "E8M0_NAN", "MXINT8_SCALE_BITS", "MxTensor", "quantize_mxint8", "mx_tensor",
           "MxWindowed", "mx_window"]

#: Elements per MX block (k in the spec), along the reduction axis K.
MX_BLOCK = 32
#: Bias of the E8M0 shared exponent: code ``E`` stands for ``2**(E - 127)``.
E8M0_BIAS = 127
#: The E8M0 code that means NaN; the finite codes are ``0 .. 254``.
E8M0_NAN = 255
#: MXINT8 elements are integers times ``2**-MXINT8_SCALE_BITS``.
MXINT8_SCALE_BITS = 6
#: Element code range of MXINT8: the full 8-bit two's complement, ``-2`` (code -128) included.
_CODE_MIN, _CODE_MAX = -128, 127


def _rows(array, axis):
    """``array`` with the reduction axis last (itself for ``axis=1``, its transpose for ``axis=0``)."""
    return array if axis == 1 else array.T


@dataclass(frozen=True, eq=False)
class MxTensor:
    """An MXINT8 tensor.

    Members
    -------
    codes : numpy.ndarray of int64
        Element codes in ``[-128, 127]``, zero-padded along ``axis`` to a multiple of 32: ``(N, Kp)`` for
        weights (``axis=1``), ``(Kp, M)`` for activations (``axis=0``).
    exponents : numpy.ndarray of int64
        E8M0 biased exponents in ``0 .. 254``, one per block and channel: ``(N, Kp / 32)`` or ``(Kp / 32, M)``.
    axis : int
        Reduction axis: 1 for weights, 0 for activations.
    length : int
        K before padding.
    """
    codes: np.ndarray
    exponents: np.ndarray
    axis: int
    length: int

    def dequantize(self):
        """The values ``P * 2**(E - 127 - 6)`` as float64 (exact: every one is a float64 normal number),
        unpadded to K."""
        rows = _rows(self.codes, self.axis)
        exp = np.repeat(_rows(self.exponents, self.axis), MX_BLOCK, axis=1) - (E8M0_BIAS + MXINT8_SCALE_BITS)
        return _rows(np.ldexp(rows.astype(np.float64), exp)[:, :self.length], self.axis)


def _check_axis(axis):
    if isinstance(axis, bool) or axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, not {axis!r}")


def _blocks(rows):
    """``(C, K)`` -> ``(C, ceil(K / 32), 32)``, zero-padded."""
    c, k = rows.shape
    nb = -(-k // MX_BLOCK)
    out = np.zeros((c, nb * MX_BLOCK), dtype=rows.dtype)
    out[:, :k] = rows
    return out.reshape(c, nb, MX_BLOCK)


def quantize_mxint8(x, axis):
    """MXINT8 quantization per OCP MX v1.0: the conversion of a block of scalars to MX, with the INT8 element.

    Along ``axis``, K is zero-padded to a multiple of 32 and split into blocks ``V`` of 32 elements. Per block:

    1. ``amax = max |V_i|``. Shared exponent ``x = floor(log2(amax)) - emax_elem`` with ``emax_elem = 0`` (the
       largest INT8 element is ``127 / 64 < 2``), computed exactly from the binary exponent (``np.frexp``), then
       clamped to the E8M0 range ``[-127, 127]``. An all-zero block gets ``x = -127`` (code 0);
    2. ``E = x + 127``;
    3. ``P_i = clamp(rint(V_i * 2**(6 - x)), -128, 127)``: round to nearest, ties to even, then saturate to
       the INT8 element's range ``[-2, 127/64]`` (scaling by a power of two is exact, so ``rint`` sees the
       exact quotient). Unclamped, ``|V_i| * 2**(6 - x) < 128``, so only positive ties at the top round to 128
       and saturate to 127; -128 is reached by rounding. With a clamped ``x`` (``amax >= 2**128`` or
       ``amax < 2**-127``) elements saturate or round to 0 as the spec's clamped scale implies.

    Parameters
    ----------
    x : array_like
        2-D finite float tensor (NaN and infinities are refused: qmac never produces E8M0 NaN).
    axis : int
        Reduction axis: 1 for weights W (N x K), 0 for activations A (K x M).

    Returns
    -------
    MxTensor

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty 2-D finite array or ``axis`` is not 0 or 1.
    """
    _check_axis(axis)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty 2-D array, not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite; MX blocks holding NaN or infinities are not produced")
    blocks = _blocks(_rows(x, axis))
    amax = np.max(np.abs(blocks), axis=2)
    _, e = np.frexp(amax)                              # amax = m * 2**e, m in [0.5, 1): floor(log2) = e - 1
    shared = np.where(amax > 0, np.clip(e - 1, -E8M0_BIAS, E8M0_BIAS), -E8M0_BIAS)
    scaled = np.ldexp(blocks, (MXINT8_SCALE_BITS - shared)[..., None])
    codes = np.clip(np.rint(scaled), _CODE_MIN, _CODE_MAX).astype(np.int64)
    c = codes.shape[0]
    return MxTensor(codes=_rows(codes.reshape(c, -1), axis), exponents=_rows(shared + E8M0_BIAS, axis),
                    axis=axis, length=x.shape[axis])


def mx_tensor(codes, exponents, axis):
    """An :class:`MxTensor` from precomputed element codes and E8M0 exponents (e.g. another tool's MXINT8).

    Parameters
    ----------
    codes : array_like of int
        2-D codes in ``[-128, 127]``; K along ``axis`` (any K: the last block is zero-padded).
    exponents : array_like of int
        E8M0 biased exponents in ``0 .. 254`` (255, NaN, is refused), ``ceil(K / 32)`` along ``axis`` and as
        many channels as ``codes``.
    axis : int
        1 for weights (N x K, exponents N x K/32), 0 for activations (K x M, exponents K/32 x M).

    Raises
    ------
    ValueError
        If a shape or value is outside the above; the message names it.
    """
    _check_axis(axis)
    codes, exponents = np.asarray(codes), np.asarray(exponents)
    if codes.ndim != 2 or codes.size == 0 or codes.dtype.kind not in "iu":
        raise ValueError(f"codes must be a non-empty 2-D integer array, not {codes.dtype} of shape {codes.shape}")
    if exponents.dtype.kind not in "iu":
        raise ValueError(f"exponents must be integers, not {exponents.dtype}")
    rows = _rows(codes, axis)
    want = _rows(np.empty((rows.shape[0], -(-rows.shape[1] // MX_BLOCK))), axis).shape
    if exponents.shape != want:
        raise ValueError(f"exponents must have shape {want} (one per {MX_BLOCK} K elements), not {exponents.shape}")
    if int(codes.min()) < _CODE_MIN or int(codes.max()) > _CODE_MAX:
        raise ValueError(f"codes must lie in [{_CODE_MIN}, {_CODE_MAX}], not [{codes.min()}, {codes.max()}]")
    if int(exponents.min()) < 0 or int(exponents.max()) >= E8M0_NAN:
        raise ValueError(f"exponents must lie in [0, {E8M0_NAN - 1}] ({E8M0_NAN} is NaN in E8M0), "
                         f"not [{exponents.min()}, {exponents.max()}]")
    padded = _blocks(rows.astype(np.int64))
    return MxTensor(codes=_rows(padded.reshape(padded.shape[0], -1), axis),
                    exponents=exponents.astype(np.int64), axis=axis, length=codes.shape[axis])


@dataclass(frozen=True, eq=False)
class MxWindowed(VsqTensor):
    """An MXINT8 tensor as the core's pow2 VSQ operand (a :class:`~qmac.sim.quantize.VsqTensor` with
    ``vector = 32``, ``scale_kind = "pow2"``, ``gamma = 2**(base - 6)``), plus what the window did.

    Members
    -------
    base : numpy.ndarray of int64
        Per-channel base exponent ``B`` (unbiased, ``(N, 1)`` or ``(1, M)``): a block with field ``f`` stands
        for ``P' * 2**(B + f - 6)``.
    shifted_blocks : int
        Blocks below the window represented exactly (their codes shifted right without losing a bit).
    rounded_blocks : int
        Blocks below the window whose shifted codes were rounded (ties to even): the only inexact step.
    """
    base: np.ndarray
    shifted_blocks: int
    rounded_blocks: int


def mx_window(t, scale_bits=MAX_SCALE_BITS["pow2"]):
    """Map MX blocks onto S-bit pow2 scale fields: ``X = B + f`` with ``f`` in ``0 .. 2**S - 1``.

    Per channel (a weight row, an activation column), with ``x_b = E_b - 127`` the unbiased exponent of
    block ``b`` and "live" blocks those with a non-zero code:

    1. ``top = max(x_b)`` over live blocks (``-127`` if none); base ``B = top - (2**S - 1)``;
    2. a live block with ``x_b >= B`` gets field ``f = x_b - B`` and its codes unchanged (exact);
    3. a live block with ``x_b < B`` (below the window) gets ``f = 0`` and codes
       ``P' = rint(P / 2**(B - x_b))`` (ties to even). It is *shifted* (exact) when every ``P`` is a multiple
       of ``2**(B - x_b)``, else *rounded* and counted;
    4. a block of zero codes gets ``f = 0`` and stays zero (exact whatever its exponent).

    The core then computes ``Y = sum_b 2**(f_w + f_a) * sum_i P'_w P'_a`` exactly (the pow2 VSQ path), and
    the value is ``Y * 2**(B_w - 6) * 2**(B_a - 6)``: with no rounded block it equals the MX dot product
    ``sum_b 2**(x_w + x_a - 12) * sum_i P_w P_a`` exactly.

    Parameters
    ----------
    t : MxTensor
        MXINT8 operand.
    scale_bits : int
        S, width of the core's pow2 fields: 1 to 4 (default 4: a 16-octave window).

    Returns
    -------
    MxWindowed
    """
    if not isinstance(t, MxTensor):
        raise TypeError(f"t must be an MxTensor, not {t!r}")
    top_field = MAX_SCALE_BITS["pow2"]
    if (isinstance(scale_bits, bool) or not isinstance(scale_bits, (int, np.integer))
            or not 1 <= scale_bits <= top_field):
        raise ValueError(f"scale_bits must be an integer between 1 and {top_field}, not {scale_bits!r}")
    blocks = _rows(t.codes, t.axis).reshape(t.codes.shape[1 - t.axis], -1, MX_BLOCK)
    x = _rows(t.exponents, t.axis) - E8M0_BIAS
    live = np.any(blocks != 0, axis=2)
    top = np.max(np.where(live, x, -E8M0_BIAS), axis=1, keepdims=True)
    base = top - ((1 << scale_bits) - 1)
    # |P| <= 128, so a shift beyond 9 rounds every code to 0 exactly as a shift of 9 does.
    shift = np.where(live, np.clip(base - x, 0, 9), 0)
    fields = np.where(live, np.maximum(x - base, 0), 0)
    shifted = np.rint(np.ldexp(blocks.astype(np.float64), -shift[..., None])).astype(np.int64)
    kept = np.all(np.left_shift(shifted, shift[..., None]) == blocks, axis=2)
    below = live & (shift > 0)
    return MxWindowed(
        codes=_rows(shifted.reshape(blocks.shape[0], -1), t.axis), scales=_rows(fields, t.axis),
        gamma=_rows(np.ldexp(1.0, base - MXINT8_SCALE_BITS), t.axis), vector=MX_BLOCK, scale_bits=int(scale_bits),
        scale_kind="pow2", axis=t.axis, length=t.length, base=_rows(base, t.axis),
        shifted_blocks=int(np.sum(below & kept)), rounded_blocks=int(np.sum(below & ~kept)))
