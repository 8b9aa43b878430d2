"""The requantizing output stage's pipeline: one row of C accumulators to INT8/INT4 codes per cycle, the stages of
:class:`~qmac.hw.spec.requantize.RequantizeArithmetic` registered (golden twin: :mod:`qmac.sim.requantize`)."""

from functools import reduce
from operator import or_

from amaranth.hdl import Const, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.ops import AmaranthOps
from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.requantize import OUT_FORMAT, PARAMS, RequantizeArithmetic
from qmac.hw.spec.checks import is_int

__all__ = ["Requantize"]


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
        Tie rule of the fixed-point mode (:data:`qmac.hw.spec.formats.ROUNDINGS`), ``half_even`` by default.

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
        if not is_int(columns) or not 1 <= columns <= 64:
            raise ConfigError(f"output stage columns must be an integer 1..64, not {columns!r}")
        self._columns = columns
        super().__init__({
            "i": In(wiring.Signature({"acc": Out(data.ArrayLayout(signed(acc_bits), columns)),
                                      "params": Out(PARAMS), "valid": Out(1)})),
            "o": Out(wiring.Signature({"q": Out(data.ArrayLayout(signed(OUT_FORMAT.bits), columns)),
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
