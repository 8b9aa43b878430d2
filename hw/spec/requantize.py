"""Requantization arithmetic of the output stage, written once for the hardware and the golden model, and the
layout of its per-row parameters."""

from dataclasses import dataclass

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from qmac.hw.spec.checks import ConfigError
from qmac.hw.spec.formats import INT4, INT8, ROUNDINGS, IntFormat
from qmac.hw.spec.checks import is_int

__all__ = ["RequantizeArithmetic", "PARAMS", "MODES", "SHIFT_BITS", "OUT_FORMAT"]

#: Width of the ``shift`` field; the largest right shift is ``2**SHIFT_BITS - 1``.
SHIFT_BITS = 6
_ACC_BITS = (2, 64)

_INT32 = IntFormat(32)
_MULTIPLIER = IntFormat(32)
_ZERO_POINT = IntFormat(8)
OUT_FORMAT = IntFormat(8)
# Every variable shift is done as a fixed rounding shift by _FRAME of the value pre-shifted left by
# (_FRAME - n): x / 2**n == (x << (_FRAME - n)) / 2**_FRAME exactly, so IntFormat.rounding_shift (a wired
# shift) rounds it, ties included.
_FRAME = (1 << SHIFT_BITS) - 1
# The rounded value is saturated to this format before the zero point is added. It is wide enough that
# clamp(sat(v) + zp) == clamp(v + zp) for every zero point and both output formats.
_ROUNDED = IntFormat.for_range(INT8.code.min - _ZERO_POINT.max, INT8.code.max - _ZERO_POINT.min)

#: The ``mode`` field's values, by name: index = code. ``fixed`` (0) and ``gemmlowp`` (1) are the two modes
#: of the former one-bit ``tflite`` field at the same bit, so their words are unchanged.
MODES = ("fixed", "gemmlowp", "tflite_optimized", "tflite_reference")
_FIXED, _GEMMLOWP, _OPTIMIZED, _REFERENCE = range(len(MODES))
# Tie rule of the final rounding of each TFLite-style mode (the fixed mode's is the constructor's).
_MODE_ROUNDING = {_GEMMLOWP: "half_away", _OPTIMIZED: "half_up", _REFERENCE: "half_away"}

#: Per-row parameters (one output channel per row). Fields from bit 0 up: ``multiplier`` signed 32 bits
#: [0, 32), ``shift`` unsigned 6 bits [32, 38), ``zero_point`` signed 8 bits [38, 46), ``int4`` bit 46,
#: ``mode`` unsigned 2 bits [47, 49) (:data:`MODES`). ``docs/output_stage.md`` defines their meaning.
PARAMS = data.StructLayout({
    "multiplier": signed(_MULTIPLIER.bits),
    "shift": unsigned(SHIFT_BITS),
    "zero_point": signed(_ZERO_POINT.bits),
    "int4": unsigned(1),
    "mode": unsigned(2),
})


def _tflite(p):
    """The row reads ``shift`` as TFLite's exponent (every mode but ``fixed``)."""
    return p["mode"] != _FIXED


def _high_mul(p):
    """The row rounds twice: gemmlowp's high multiply, then a rounding right shift."""
    return (p["mode"] == _GEMMLOWP) | (p["mode"] == _OPTIMIZED)


def _left(p):
    """A TFLite-style row with a negative exponent (``shift`` >= 32 read as two's complement): it shifts
    ``acc`` left and does no right shift."""
    return _tflite(p) & (p["shift"] >= 1 << (SHIFT_BITS - 1))


@dataclass(frozen=True)
class RequantizeArithmetic:
    """The output stage's arithmetic, written once against an ops backend, as a list of pipeline stages.

    Every stage is ``function(x, p, ops) -> (value, clipped)``: ``x`` is one accumulator (or the previous
    stage's value), ``p`` the row's parameters indexed by :data:`PARAMS` field name, ``clipped`` true where
    the stage saturated. :class:`Requantize` registers every stage's value; the golden model
    (:func:`qmac.sim.requantize.requantize`) chains them on numpy arrays of Python ints.

    ``mode = fixed`` (exact, one rounding)::

        q = clamp(round(acc * multiplier / 2**shift) + zero_point, qmin, qmax)

    with ``round`` the tie rule ``rounding`` and ``shift`` in 0..63.

    The other modes read ``shift`` as a 6-bit two's-complement right-shift exponent ``t`` in -32..31
    (TFLite's ``shift`` is ``-t``); ``left = max(-t, 0)``, ``right = max(t, 0)``,
    ``x = sat32(acc * 2**left)``, ``h = sat32(round_half_up(x * multiplier / 2**31))`` (gemmlowp's
    ``SaturatingRoundingDoublingHighMul``)::

        gemmlowp          r = round_half_away(h / 2**right)    # RoundingDivideByPOT: TFLite's double rounding
        tflite_optimized  r = round_half_up(h / 2**right)      # ruy's x86 and NEON kernels (int8 FC and conv)
        tflite_reference  r = round_half_away(x * multiplier / 2**(31 + right))   # one rounding
        q = clamp(r + zero_point, qmin, qmax)

    ``[qmin, qmax]`` is [-8, 7] with ``int4``, else [-128, 127].

    Parameters
    ----------
    acc_bits : int
        Accumulator width, 2..64 (it sets the stage widths, not the arithmetic).
    rounding : str
        Tie rule of the fixed-point mode, one of :data:`qmac.hw.spec.formats.ROUNDINGS`; ``half_even`` by
        default. The other modes have their own fixed tie rules.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    """
    acc_bits: int
    rounding: str = "half_even"

    def __post_init__(self):
        lo, hi = _ACC_BITS
        if not is_int(self.acc_bits) or not lo <= self.acc_bits <= hi:
            raise ConfigError(f"output stage acc_bits must be an integer {lo}..{hi}, not {self.acc_bits!r}")
        if self.rounding not in ROUNDINGS:
            raise ConfigError(f"output stage rounding must be one of {', '.join(ROUNDINGS)}, not {self.rounding!r}")

    @property
    def stages(self):
        """``(name, function, result format)`` of each pipeline stage, in order."""
        operand = IntFormat(max(self.acc_bits, _INT32.bits))
        product = IntFormat(operand.bits + _MULTIPLIER.bits)
        return (("operand", self.operand, operand),
                ("product", self.product, product),
                ("aligned", self.align, IntFormat(product.bits + _FRAME)),
                ("rounded", self.round_aligned, _ROUNDED),
                ("q", self.offset, OUT_FORMAT))

    @staticmethod
    def operand(acc, p, ops):
        """Multiplier operand: ``acc`` (fixed point), or ``sat32(acc * 2**left)`` (the TFLite-style modes),
        exact before the saturation."""
        tflite = _tflite(p)
        left = ops.where(_left(p), ops.wrap(-p["shift"], SHIFT_BITS, False), 0)
        x, clipped = _INT32.saturate(acc << left, ops)
        return ops.where(tflite, x, acc), tflite & clipped

    @staticmethod
    def product(x, p, ops):
        """``x * multiplier``, exact."""
        return x * p["multiplier"], 0

    @staticmethod
    def align(x, p, ops):
        """The value to round, times ``2**(63 - n)`` for a right shift by ``n``: fixed point: ``x``,
        ``n = shift``; gemmlowp and tflite_optimized: ``SaturatingRoundingDoublingHighMul`` (= ``x / 2**31``
        rounded half up and saturated to int32), ``n = right``; tflite_reference: ``x``, ``n = 31 + right``."""
        double = _high_mul(p)
        high, clipped = _INT32.rounding_shift(x, _INT32.bits - 1, "half_up", ops)
        right = ops.where(_left(p), 0, p["shift"])
        n = ops.where(_tflite(p), ops.where(double, right, right + (_INT32.bits - 1)), p["shift"])
        return ops.where(double, high, x) << ops.wrap(_FRAME - n, SHIFT_BITS, False), double & clipped

    def round_aligned(self, x, p, ops):
        """``x / 2**63`` rounded with the row's tie rule (fixed point: ``rounding``; gemmlowp and
        tflite_reference: half away from zero; tflite_optimized: half up), saturated to 9 bits."""
        rules = {_FIXED: self.rounding, **_MODE_ROUNDING}
        rounded = {rule: _ROUNDED.rounding_shift(x, _FRAME, rule, ops) for rule in dict.fromkeys(rules.values())}
        value, clipped = rounded[self.rounding]
        for mode, rule in _MODE_ROUNDING.items():
            if rule != self.rounding:
                selected = p["mode"] == mode
                value = ops.where(selected, rounded[rule][0], value)
                clipped = ops.where(selected, rounded[rule][1], clipped)
        return value, clipped

    @staticmethod
    def offset(x, p, ops):
        """``x + zero_point`` clamped to INT4 or INT8."""
        y = x + p["zero_point"]
        q8, clipped8 = INT8.code.saturate(y, ops)
        q4, clipped4 = INT4.code.saturate(y, ops)
        return ops.where(p["int4"], q4, q8), ops.where(p["int4"], clipped4, clipped8)
