"""OCP Microscaling (MX v1.0) on the host: the spec's quantizer for MXINT8, MXFP4 (E2M1) and an MXINT4-style
format, and MX blocks as the core's pow2 scales.

An MX block is 32 consecutive elements along K sharing one E8M0 scale: a biased exponent ``E`` in ``0 .. 254``
standing for ``X = 2**(E - 127)`` (``E = 255`` is NaN). Each element format (:class:`MxElement`) is carried on
the core's integer lanes as a *lane code* ``P`` with an implied scale ``2**-s``, so a block holds
``P * 2**(E - 127 - s)``: MXINT8 ``P`` is the INT8 code (``s = 6``), MXINT4 the INT4 code (``s = 2``), MXFP4
``P = 2 * v`` for the E2M1 value ``v`` (``s = 1``, ``P`` in ``[-12, 12]``, on INT8 lanes). The bit-level
definition, the core mapping and its limits are in ``docs/formats.md`` ("OCP Microscaling").

The core has no E8M0 scales: its pow2 scale fields are unsigned exponents of at most 4 bits. :func:`mx_window`
writes each block's exponent as a per-channel base exponent ``B`` (kept by the host) plus a relative field
``f = X - B`` in ``0 .. 2**S - 1``; blocks too small for the window are shifted into field 0, exactly when their
low code bits are zero, else rounded and counted.
"""

from dataclasses import dataclass

import numpy as np

from qmac.sim.quantize import MAX_SCALE_BITS, VsqTensor

__all__ = ["MX_BLOCK", "E8M0_BIAS", "E8M0_NAN", "MxElement", "MXINT8", "MXINT4", "MXFP4", "MX_ELEMENTS",
           "E2M1_LANE", "MxTensor", "quantize_mx", "mx_tensor", "MxWindowed", "mx_window"]

#: Elements per MX block (k in the spec), along the reduction axis K.
MX_BLOCK = 32
#: Bias of the E8M0 shared exponent: code ``E`` stands for ``2**(E - 127)``.
E8M0_BIAS = 127
#: The E8M0 code that means NaN; the finite codes are ``0 .. 254``.
E8M0_NAN = 255
#: Lane code ``2 * |v|`` of each E2M1 magnitude code ``c & 7`` (``v`` = 0, 0.5, 1, 1.5, 2, 3, 4, 6).
E2M1_LANE = np.array([0, 1, 2, 3, 4, 6, 8, 12], dtype=np.int64)


@dataclass(frozen=True)
class MxElement:
    """An MX element format as the core's lanes carry it.

    Members
    -------
    name : str
        ``MXINT8``, ``MXINT4`` or ``MXFP4``.
    emax : int
        ``emax_elem``: the exponent of the format's largest power of two; the shared exponent is
        ``floor(log2(amax)) - emax``.
    scale_bits : int
        ``s``: lane code = element value ``* 2**s`` (an integer for every element).
    lane_mode : str
        The core mode whose lanes carry the lane codes (``int8`` or ``int4``).
    code_range : (int, int)
        Element codes as files hold them: two's-complement integers, or E2M1 codes ``0 .. 15``.
    e2m1 : bool
        Whether elements are E2M1 codes (sign bit 3, exponent bits 2..1 with bias 1, mantissa bit 0).
    """
    name: str
    emax: int
    scale_bits: int
    lane_mode: str
    code_range: tuple
    e2m1: bool = False

    def encode(self, scaled):
        """Element codes of ``scaled`` = the block's values times ``2**(s - X)`` (lane units, exact powers of
        two away from the values): INT formats ``clamp(rint(scaled), lo, hi)`` (ties to even); E2M1 the
        nearest of the lane grid ``0, 1, 2, 3, 4, 6, 8, 12`` to ``|scaled|`` with ties to the even mantissa bit
        (steps 1 below 4, 2 below 8, 4 above: ``step * rint(|scaled| / step)``), saturated to 12, the sign
        bit set for negative values and ``-0.0`` (as gfloat does: negative values that round to zero give
        code 8)."""
        if not self.e2m1:
            return np.clip(np.rint(scaled), *self.code_range).astype(np.int64)
        u = np.abs(scaled)
        step = np.where(u < 4, 1.0, np.where(u < 8, 2.0, 4.0))
        lane = np.minimum(step * np.rint(u / step), 12).astype(np.int64)
        magnitude = np.searchsorted(E2M1_LANE, lane)                       # lane is on the grid: exact index
        return (magnitude | np.where(np.signbit(scaled), 8, 0)).astype(np.int64)

    def lanes(self, codes):
        """Lane codes of element ``codes``: the codes themselves (INT), or ``(-1)**S * E2M1_LANE[c & 7]``."""
        codes = np.asarray(codes, dtype=np.int64)
        if not self.e2m1:
            return codes
        return np.where(codes & 8, -1, 1) * E2M1_LANE[codes & 7]


#: OCP MXINT8: INT8 two's complement with implied scale 2**-6 (values -2 .. 127/64), emax_elem 0.
MXINT8 = MxElement("MXINT8", emax=0, scale_bits=6, lane_mode="int8", code_range=(-128, 127))
#: MXINT4-style (not in OCP MX v1.0): INT4 two's complement with implied scale 2**-2 (values -2 .. 7/4), emax_elem
#: 0, as MXINT8 scaled down to 4 bits; on INT4 lanes.
MXINT4 = MxElement("MXINT4", emax=0, scale_bits=2, lane_mode="int4", code_range=(-8, 7))
#: OCP MXFP4: E2M1 elements (values 0, ±0.5 .. ±6), emax_elem 2; lane code 2v on INT8 lanes.
MXFP4 = MxElement("MXFP4", emax=2, scale_bits=1, lane_mode="int8", code_range=(0, 15), e2m1=True)
#: The element formats by their ``qmac gemm --scale mx --format`` name.
MX_ELEMENTS = {"int8": MXINT8, "int4": MXINT4, "fp4": MXFP4}


def _rows(array, axis):
    """``array`` with the reduction axis last (itself for ``axis=1``, its transpose for ``axis=0``)."""
    return array if axis == 1 else array.T


@dataclass(frozen=True, eq=False)
class MxTensor:
    """An MX tensor.

    Members
    -------
    codes : numpy.ndarray of int64
        Lane codes (:meth:`MxElement.lanes`), zero-padded along ``axis`` to a multiple of 32: ``(N, Kp)`` for
        weights (``axis=1``), ``(Kp, M)`` for activations (``axis=0``).
    exponents : numpy.ndarray of int64
        E8M0 biased exponents in ``0 .. 254``, one per block and channel: ``(N, Kp / 32)`` or ``(Kp / 32, M)``.
    axis : int
        Reduction axis: 1 for weights, 0 for activations.
    length : int
        K before padding.
    element : MxElement
    elements : numpy.ndarray of int64
        The element codes, padded like ``codes`` (two's complement, or E2M1 codes ``0 .. 15``).
    """
    codes: np.ndarray
    exponents: np.ndarray
    axis: int
    length: int
    element: MxElement
    elements: np.ndarray

    def dequantize(self):
        """The values ``P * 2**(E - 127 - s)`` as float64 (exact: every one is a float64 normal number),
        unpadded to K."""
        rows = _rows(self.codes, self.axis)
        exp = np.repeat(_rows(self.exponents, self.axis), MX_BLOCK, axis=1) - (E8M0_BIAS + self.element.scale_bits)
        return _rows(np.ldexp(rows.astype(np.float64), exp)[:, :self.length], self.axis)


def _check_axis(axis):
    if isinstance(axis, bool) or axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, not {axis!r}")


def _check_element(element):
    if not isinstance(element, MxElement):
        raise TypeError(f"element must be an MxElement (MXINT8, MXINT4, MXFP4), not {element!r}")


def _blocks(rows):
    """``(C, K)`` -> ``(C, ceil(K / 32), 32)``, zero-padded."""
    c, k = rows.shape
    nb = -(-k // MX_BLOCK)
    out = np.zeros((c, nb * MX_BLOCK), dtype=rows.dtype)
    out[:, :k] = rows
    return out.reshape(c, nb, MX_BLOCK)


def quantize_mx(x, axis, element=MXINT8):
    """MX quantization per OCP MX v1.0 (section 6.3, the conversion of a block of scalars), for ``element``.

    Along ``axis``, K is zero-padded to a multiple of 32 and split into blocks ``V`` of 32 elements. Per block:

    1. ``amax = max |V_i|``. Shared exponent ``x = floor(log2(amax)) - emax_elem`` (0 for MXINT8 and MXINT4,
       2 for MXFP4), computed exactly from the binary exponent (``np.frexp``), then clamped to the E8M0 range
       ``[-127, 127]``. An all-zero block gets ``x = -127`` (code 0);
    2. ``E = x + 127``;
    3. element codes ``P_i = element.encode(V_i * 2**(s - x))``: round to nearest, ties to even, saturate
       (:meth:`MxElement.encode`; scaling by a power of two is exact, so rounding sees the exact quotient).
       Unclamped, ``|V_i| * 2**-x < 2**(emax_elem + 1)``: MXINT8 reaches 128 only on positive ties at the top
       (saturated to 127), MXFP4 values in ``[6, 8)`` saturate to 6. With a clamped ``x`` (``amax`` beyond
       ``2**(127 + emax_elem + 1)`` or below ``2**-127``) elements saturate or round to 0 as the clamped scale
       implies.

    Parameters
    ----------
    x : array_like
        2-D finite float tensor (NaN and infinities are refused: qmac never produces E8M0 NaN).
    axis : int
        Reduction axis: 1 for weights W (N x K), 0 for activations A (K x M).
    element : MxElement
        :data:`MXINT8` (default), :data:`MXINT4` or :data:`MXFP4`.

    Returns
    -------
    MxTensor

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty 2-D finite array or ``axis`` is not 0 or 1.
    """
    _check_axis(axis)
    _check_element(element)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty 2-D array, not shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite; MX blocks holding NaN or infinities are not produced")
    blocks = _blocks(_rows(x, axis))
    amax = np.max(np.abs(blocks), axis=2)
    _, e = np.frexp(amax)                              # amax = m * 2**e, m in [0.5, 1): floor(log2) = e - 1
    shared = np.where(amax > 0, np.clip(e - 1 - element.emax, -E8M0_BIAS, E8M0_BIAS), -E8M0_BIAS)
    codes = element.encode(np.ldexp(blocks, (element.scale_bits - shared)[..., None]))
    c = codes.shape[0]
    elements = _rows(codes.reshape(c, -1), axis)
    return MxTensor(codes=element.lanes(elements), exponents=_rows(shared + E8M0_BIAS, axis), axis=axis,
                    length=x.shape[axis], element=element, elements=elements)


def mx_tensor(codes, exponents, axis, element=MXINT8):
    """An :class:`MxTensor` from precomputed element codes and E8M0 exponents (e.g. another tool's MX data).

    Parameters
    ----------
    codes : array_like of int
        2-D element codes in ``element.code_range`` (two's complement, or E2M1 codes 0..15); K along ``axis``
        (any K: the last block is zero-padded).
    exponents : array_like of int
        E8M0 biased exponents in ``0 .. 254`` (255, NaN, is refused), ``ceil(K / 32)`` along ``axis`` and as
        many channels as ``codes``.
    axis : int
        1 for weights (N x K, exponents N x K/32), 0 for activations (K x M, exponents K/32 x M).
    element : MxElement
        :data:`MXINT8` (default), :data:`MXINT4` or :data:`MXFP4`.

    Raises
    ------
    ValueError
        If a shape or value is outside the above; the message names it.
    """
    _check_axis(axis)
    _check_element(element)
    codes, exponents = np.asarray(codes), np.asarray(exponents)
    if codes.ndim != 2 or codes.size == 0 or codes.dtype.kind not in "iu":
        raise ValueError(f"codes must be a non-empty 2-D integer array, not {codes.dtype} of shape {codes.shape}")
    if exponents.dtype.kind not in "iu":
        raise ValueError(f"exponents must be integers, not {exponents.dtype}")
    rows = _rows(codes, axis)
    want = _rows(np.empty((rows.shape[0], -(-rows.shape[1] // MX_BLOCK))), axis).shape
    if exponents.shape != want:
        raise ValueError(f"exponents must have shape {want} (one per {MX_BLOCK} K elements), not {exponents.shape}")
    lo, hi = element.code_range
    if int(codes.min()) < lo or int(codes.max()) > hi:
        raise ValueError(f"codes must lie in [{lo}, {hi}], not [{codes.min()}, {codes.max()}]")
    if int(exponents.min()) < 0 or int(exponents.max()) >= E8M0_NAN:
        raise ValueError(f"exponents must lie in [0, {E8M0_NAN - 1}] ({E8M0_NAN} is NaN in E8M0), "
                         f"not [{exponents.min()}, {exponents.max()}]")
    padded = _blocks(rows.astype(np.int64))
    elements = _rows(padded.reshape(padded.shape[0], -1), axis)
    return MxTensor(codes=element.lanes(elements), exponents=exponents.astype(np.int64), axis=axis,
                    length=codes.shape[axis], element=element, elements=elements)


@dataclass(frozen=True, eq=False)
class MxWindowed(VsqTensor):
    """An MX tensor as the core's pow2 VSQ operand (a :class:`~qmac.sim.quantize.VsqTensor` with
    ``vector = 32``, ``scale_kind = "pow2"``, ``gamma = 2**(base - s)``), plus what the window did.

    Members
    -------
    base : numpy.ndarray of int64
        Per-channel base exponent ``B`` (unbiased, ``(N, 1)`` or ``(1, M)``): a block with field ``f`` stands
        for ``P' * 2**(B + f - s)`` (``s`` the element's ``scale_bits``).
    shifted_blocks : int
        Blocks below the window represented exactly (their codes shifted right without losing a bit).
    rounded_blocks : int
        Blocks below the window whose shifted codes were rounded (ties to even): the only inexact step.
    element : MxElement
        The element format (its lane codes are ``codes``).
    """
    base: np.ndarray
    shifted_blocks: int
    rounded_blocks: int
    element: MxElement


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
    the value is ``Y * 2**(B_w - s_w) * 2**(B_a - s_a)``: with no rounded block it equals the MX dot product
    ``sum_b 2**(x_w + x_a - s_w - s_a) * sum_i P_w P_a`` exactly. Shifted codes stay in the element's lane
    range (a right shift with rounding never grows a magnitude past the unshifted one's bound).

    Parameters
    ----------
    t : MxTensor
        MX operand.
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
    # |P| <= 128 for every element format, so a shift beyond 9 rounds every code to 0 exactly as a shift of 9 does.
    shift = np.where(live, np.clip(base - x, 0, 9), 0)
    fields = np.where(live, np.maximum(x - base, 0), 0)
    shifted = np.rint(np.ldexp(blocks.astype(np.float64), -shift[..., None])).astype(np.int64)
    kept = np.all(np.left_shift(shifted, shift[..., None]) == blocks, axis=2)
    below = live & (shift > 0)
    return MxWindowed(
        codes=_rows(shifted.reshape(blocks.shape[0], -1), t.axis), scales=_rows(fields, t.axis),
        gamma=_rows(np.ldexp(1.0, base - t.element.scale_bits), t.axis), vector=MX_BLOCK, scale_bits=int(scale_bits),
        scale_kind="pow2", axis=t.axis, length=t.length, base=_rows(base, t.axis),
        shifted_blocks=int(np.sum(below & kept)), rounded_blocks=int(np.sum(below & ~kept)), element=t.element)
