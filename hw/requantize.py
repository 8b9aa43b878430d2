"""The requantizing output stage: one row of C accumulators to INT8/INT4 codes per cycle, pipelined."""

from dataclasses import dataclass
from functools import reduce
from operator import or_

from amaranth.hdl import Const, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .formats import INT4, INT8, ROUNDINGS, IntFormat
from .ops import AmaranthOps

__all__ = ["RequantizeArithmetic", "Requantize", "PARAMS", "SHIFT_BITS"]

#: Width of the ``shift`` field; the largest right shift is ``2**SHIFT_BITS - 1``.
SHIFT_BITS = 6
_ACC_BITS = (2, 64)

_INT32 = IntFormat(32)
_MULTIPLIER = IntFormat(32)
_ZERO_POINT = IntFormat(8)
_OUT = IntFormat(8)
# Every variable shift is done as a fixed rounding shift by _FRAME of the value pre-shifted left by
# (_FRAME - n): x / 2**n == (x << (_FRAME - n)) / 2**_FRAME exactly, so IntFormat.rounding_shift (a wired
# shift) rounds it, ties included.
_FRAME = (1 << SHIFT_BITS) - 1
# The rounded value is saturated to this format before the zero point is added. It is wide enough that
# clamp(sat(v) + zp) == clamp(v + zp) for every zero point and both output formats.
_ROUNDED = IntFormat.for_range(INT8.code.min - _ZERO_POINT.max, INT8.code.max - _ZERO_POINT.min)

#: Per-row parameters (one output channel per row). Fields from bit 0 up: ``multiplier`` signed 32 bits
#: [0, 32), ``shift`` unsigned 6 bits [32, 38), ``zero_point`` signed 8 bits [38, 46), ``int4`` bit 46,
#: ``tflite`` bit 47. ``docs/output_stage.md`` defines their meaning.
PARAMS = data.StructLayout({
    "multiplier": signed(_MULTIPLIER.bits),
    "shift": unsigned(SHIFT_BITS),
    "zero_point": signed(_ZERO_POINT.bits),
    "int4": unsigned(1),
    "tflite": unsigned(1),
})


def _left(p):
    """TFLite mode with a negative exponent (``shift`` >= 32 read as two's complement): the row shifts
    ``acc`` left and does no right shift."""
    return p["tflite"] & (p["shift"] >= 1 << (SHIFT_BITS - 1))


@dataclass(frozen=True)
class RequantizeArithmetic:
    """The output stage's arithmetic, written once against an ops backend, as a list of pipeline stages.

    Every stage is ``function(x, p, ops) -> (value, clipped)``: ``x`` is one accumulator (or the previous
    stage's value), ``p`` the row's parameters indexed by :data:`PARAMS` field name, ``clipped`` true where
    the stage saturated. :class:`Requantize` registers every stage's value; the golden model
    (:func:`qmac.sim.requantize.requantize`) chains them on numpy arrays of Python ints.

    ``tflite = 0`` (fixed point, exact)::

        q = clamp(round(acc * multiplier / 2**shift) + zero_point, qmin, qmax)

    with ``round`` the tie rule ``rounding`` and ``shift`` in 0..63.

    ``tflite = 1`` (TFLite / gemmlowp ``MultiplyByQuantizedMultiplier``, double rounding): ``shift`` is
    read as a 6-bit two's-complement right-shift exponent ``t`` in -32..31 (TFLite's ``shift`` is
    ``-t``); ``left = max(-t, 0)``, ``right = max(t, 0)``::

        x = sat32(acc * 2**left)
        h = sat32(round_half_up(x * multiplier / 2**31))       # SaturatingRoundingDoublingHighMul
        r = round_half_away(h / 2**right)                      # RoundingDivideByPOT
        q = clamp(r + zero_point, qmin, qmax)

    ``[qmin, qmax]`` is [-8, 7] with ``int4``, else [-128, 127].

    Parameters
    ----------
    acc_bits : int
        Accumulator width, 2..64 (it sets the stage widths, not the arithmetic).
    rounding : str
        Tie rule of the fixed-point mode, one of :data:`qmac.hw.formats.ROUNDINGS`; ``half_even`` by
        default. The TFLite mode always uses gemmlowp's rules.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    """
    acc_bits: int
    rounding: str = "half_even"

    def __post_init__(self):
        lo, hi = _ACC_BITS
        if not isinstance(self.acc_bits, int) or isinstance(self.acc_bits, bool) or not lo <= self.acc_bits <= hi:
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
                ("q", self.offset, _OUT))

    @staticmethod
    def operand(acc, p, ops):
        """Multiplier operand: ``acc`` (fixed point), or ``sat32(acc * 2**left)`` (TFLite), exact before
        the saturation."""
        tflite = p["tflite"]
        left = ops.where(_left(p), ops.wrap(-p["shift"], SHIFT_BITS, False), 0)
        x, clipped = _INT32.saturate(acc << left, ops)
        return ops.where(tflite, x, acc), tflite & clipped

    @staticmethod
    def product(x, p, ops):
        """``x * multiplier``, exact."""
        return x * p["multiplier"], 0

    @staticmethod
    def align(x, p, ops):
        """The value to round, times ``2**(63 - n)`` for a right shift by ``n``: fixed point ``x``,
        ``n = shift``; TFLite ``SaturatingRoundingDoublingHighMul`` (= ``x / 2**31`` rounded half up and
        saturated to int32), ``n = right``."""
        tflite = p["tflite"]
        high, clipped = _INT32.rounding_shift(x, _INT32.bits - 1, "half_up", ops)
        right = ops.where(_left(p), 0, p["shift"])
        return ops.where(tflite, high, x) << ops.wrap(_FRAME - right, SHIFT_BITS, False), tflite & clipped

    def round_aligned(self, x, p, ops):
        """``x / 2**63`` rounded (``rounding``; TFLite: half away from zero, gemmlowp's
        ``RoundingDivideByPOT``), saturated to 9 bits."""
        fixed, fixed_clipped = _ROUNDED.rounding_shift(x, _FRAME, self.rounding, ops)
        if self.rounding == "half_away":
            return fixed, fixed_clipped
        tfl, tfl_clipped = _ROUNDED.rounding_shift(x, _FRAME, "half_away", ops)
        return ops.where(p["tflite"], tfl, fixed), ops.where(p["tflite"], tfl_clipped, fixed_clipped)

    @staticmethod
    def offset(x, p, ops):
        """``x + zero_point`` clamped to INT4 or INT8."""
        y = x + p["zero_point"]
        q8, clipped8 = INT8.code.saturate(y, ops)
        q4, clipped4 = INT4.code.saturate(y, ops)
        return ops.where(p["int4"], q4, q8), ops.where(p["int4"], clipped4, clipped8)


class Requantize(wiring.Component):
    """Requantizes one row of C accumulators per cycle to INT8 or INT4 codes (:class:`RequantizeArithmetic`).

    Pipeline: five register stages (operand, product, aligned, rounded, q), so ``o`` follows ``i`` by
    :attr:`latency` = 5 cycles and one row enters per cycle. ``i.params`` travels with its row, so every
    row may use its own parameters. Every register advances together: wrap the unit in
    ``EnableInserter`` to stall it (a row is taken, and ``o`` moves on, only on enabled cycles).

    Parameters
    ----------
    acc_bits : int
        Accumulator width, 2..64.
    columns : int
        C, accumulators per row, 1..64.
    rounding : str
        Tie rule of the fixed-point mode (:data:`qmac.hw.formats.ROUNDINGS`), ``half_even`` by default.

    Members
    -------
    i.acc : In(ArrayLayout(signed(acc_bits), C))
        The row's accumulators.
    i.params : In(:data:`PARAMS`)
        The row's multiplier, shift, zero point, output format and mode.
    i.valid : In(1)
        The row is valid; it travels with the row and has no other effect.
    o.q : Out(ArrayLayout(signed(8), C))
        Output codes; INT4 codes are sign-extended to 8 bits.
    o.clipped : Out(1)
        Some element of the row saturated: output clamp, or (TFLite mode) the int32 saturation of
        ``acc * 2**left`` or of the high multiply.
    o.valid : Out(1)
        ``i.valid``, ``latency`` cycles later.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    """

    def __init__(self, acc_bits, columns, rounding="half_even"):
        self._arith = RequantizeArithmetic(acc_bits, rounding)
        if not isinstance(columns, int) or isinstance(columns, bool) or not 1 <= columns <= 64:
            raise ConfigError(f"output stage columns must be an integer 1..64, not {columns!r}")
        self._columns = columns
        super().__init__({
            "i": In(wiring.Signature({"acc": Out(data.ArrayLayout(signed(acc_bits), columns)),
                                      "params": Out(PARAMS), "valid": Out(1)})),
            "o": Out(wiring.Signature({"q": Out(data.ArrayLayout(signed(_OUT.bits), columns)),
                                       "clipped": Out(1), "valid": Out(1)})),
        })

    @property
    def acc_bits(self):
        return self._arith.acc_bits

    @property
    def columns(self):
        return self._columns

    @property
    def rounding(self):
        return self._arith.rounding

    @property
    def latency(self):
        """Cycles from ``i`` to ``o``: one register per stage."""
        return len(self._arith.stages)

    def elaborate(self, platform):
        m = Module()
        values = [self.i.acc[c] for c in range(self._columns)]
        params, valid, clipped = self.i.params, self.i.valid, Const(0, 1)
        for name, stage, fmt in self._arith.stages:
            results = [stage(x, params, AmaranthOps) for x in values]
            regs = [Signal(signed(fmt.bits), name=f"{name}{c}") for c in range(self._columns)]
            next_params = Signal(PARAMS, name=f"{name}_params")
            next_valid = Signal(name=f"{name}_valid")
            next_clipped = Signal(name=f"{name}_clipped")
            m.d.sync += [r.eq(value) for r, (value, _) in zip(regs, results)]
            m.d.sync += [next_params.eq(params), next_valid.eq(valid),
                         next_clipped.eq(reduce(or_, (flag for _, flag in results), clipped))]
            values, params, valid, clipped = regs, next_params, next_valid, next_clipped
        m.d.comb += [self.o.q[c].eq(values[c]) for c in range(self._columns)]
        m.d.comb += [self.o.clipped.eq(clipped), self.o.valid.eq(valid)]
        return m
