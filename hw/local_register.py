"""A register that synthesis keeps as its own copy, for fanning a far signal out to local users."""

from amaranth.hdl import ClockSignal, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.vendor import LatticeECP5Platform

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.checks import is_int

__all__ = ["LocalRegister"]


class LocalRegister(wiring.Component):
    """``q`` = ``d`` of one cycle earlier (no reset, no enable), kept apart from equal registers.

    A signal that comes from far away to many users (an operand lane to every unit of an array row) is
    best registered next to each group of users: the long wire then ends in a register and the logic
    after it is local. Yosys merges registers that have the same input, which would undo this, and a
    ``keep`` attribute on the register's signal does not stop it. So on an ECP5 platform
    (:class:`amaranth.vendor.LatticeECP5Platform`) each bit is a ``TRELLIS_FF`` instance, which Yosys
    leaves alone (nextpnr places each copy near its users); elsewhere (simulation, plain Verilog) it is
    an ordinary register, which may merge harmlessly.

    Parameters
    ----------
    width : int
        Bits, at least 1.

    Members
    -------
    d : In(width)
    q : Out(width)
    """

    def __init__(self, width):
        if not is_int(width) or width < 1:
            raise ConfigError(f"LocalRegister width must be a positive integer, not {width!r}")
        super().__init__({"d": In(width), "q": Out(width)})

    @property
    def latency(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        if isinstance(platform, LatticeECP5Platform):
            for i in range(len(self.d)):
                m.submodules[f"ff{i}"] = Instance(
                    "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR",
                    p_SRMODE="LSR_OVER_CE", p_REGSET="RESET", i_CLK=ClockSignal(), i_LSR=0, i_CE=1,
                    i_DI=self.d[i], o_Q=self.q[i])
        else:
            m.d.sync += self.q.eq(self.d)
        return m
