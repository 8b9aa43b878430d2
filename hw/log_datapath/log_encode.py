"""Linear fixed point to log codes in hardware: the stages of
:class:`~qmac.hw.spec.log_encode.LogEncodeArithmetic`, registered (golden twin: :mod:`qmac.sim.log_encode`)."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.ops import AmaranthOps
from qmac.hw.spec.log_encode import LogEncodeArithmetic

__all__ = ["LogEncode"]


class LogEncode(wiring.Component):
    """Converts a signed fixed-point value to a code of a log format (:class:`LogEncodeArithmetic`).

    Pipeline: three register stages (magnitude, normalize, code), so ``code`` follows ``x`` by
    :attr:`latency` = 3 cycles, one value per cycle. ``valid`` travels with its value and has no other
    effect; wrap the unit in ``EnableInserter`` to stall it.

    As the output converter of an LNS core column: ``in_bits = config.acc_format.bits``,
    ``in_exponent = config.log_sum.result_exponent``, and ``shift`` the output scale (an exponent in units of
    ``2**-F`` subtracted before rounding).

    Parameters
    ----------
    fmt : LogFormat
        Output format.
    in_bits : int
        Width of ``x``, 2 to 128.
    in_exponent : int
        ``x`` stands for ``x * 2**in_exponent``.
    shift_bits : int
        Width of the ``shift`` input, 0 (no port) to 16.

    Members
    -------
    x : In(signed(in_bits))
    shift : In(signed(shift_bits))
        Only if ``shift_bits > 0``: the code is that of ``x * 2**in_exponent * 2**(-shift / 2**F)``.
    valid : In(1)
    code : Out(unsigned(fmt.bits))
        Nearest code in the log domain, saturating; zero and values below half a step under the smallest
        magnitude give 0.
    code_valid : Out(1)
        ``valid``, :attr:`latency` cycles later.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    """

    def __init__(self, fmt, in_bits, in_exponent=0, shift_bits=0):
        self._arith = LogEncodeArithmetic(fmt, in_bits, in_exponent, shift_bits)
        ports = {"x": In(signed(in_bits)), "valid": In(1),
                 "code": Out(unsigned(fmt.bits)), "code_valid": Out(1)}
        if shift_bits:
            ports["shift"] = In(signed(shift_bits))
        super().__init__(ports)

    @property
    def format(self):
        return self._arith.fmt

    @property
    def in_bits(self):
        return self._arith.in_bits

    @property
    def in_exponent(self):
        return self._arith.in_exponent

    @property
    def shift_bits(self):
        return self._arith.shift_bits

    @property
    def midpoints(self):
        """The mantissa thresholds :attr:`LogEncodeArithmetic.midpoints`."""
        return self._arith.midpoints

    @property
    def latency(self):
        """Cycles from ``x`` to ``code``: one register per stage."""
        return len(self._arith.stages)

    def elaborate(self, platform):
        m = Module()
        values = {"x": self.x, "shift": self.shift if self.shift_bits else 0}
        valid = self.valid
        for name, stage, fields in self._arith.stages:
            results = stage(values, AmaranthOps)
            regs = {key: Signal(shape, name=f"{name}_{key}") for key, shape in fields.items()}
            next_valid = Signal(name=f"{name}_valid")
            m.d.sync += [regs[key].eq(results[key]) for key in regs]
            m.d.sync += next_valid.eq(valid)
            values = {"shift": 0, **regs}
            valid = next_valid
        m.d.comb += [self.code.eq(values["code"]), self.code_valid.eq(valid)]
        return m
