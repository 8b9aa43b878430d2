"""A registered signed multiplication of at most 18 x 18 bits, as an ECP5 MULT18X18D with its own registers."""

from amaranth.hdl import ClockSignal, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.vendor import LatticeECP5Platform

from qmac.hw.spec.config import ConfigError

__all__ = ["Mult18", "MULT18X18D_PARAMETERS"]

#: The MULT18X18D configuration of an ECP5 build (Lattice FPGA-TN-02205, "ECP5 and ECP5-5G sysDSP Usage
#: Guide"; parameter names as Yosys's cells_bb_ecp5.v): signed 18x18 multiplier, the A and B input
#: registers, the pipeline register and the output register all clocked by CLK0 and enabled by CE0 (tied
#: high), so three of :class:`Mult18`'s four register stages are the multiplier's own.
MULT18X18D_PARAMETERS = {
    "REG_INPUTA_CLK": "CLK0", "REG_INPUTA_CE": "CE0", "REG_INPUTA_RST": "RST0",
    "REG_INPUTB_CLK": "CLK0", "REG_INPUTB_CE": "CE0", "REG_INPUTB_RST": "RST0",
    "REG_PIPELINE_CLK": "CLK0", "REG_PIPELINE_CE": "CE0", "REG_PIPELINE_RST": "RST0",
    "REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE0", "REG_OUTPUT_RST": "RST0",
    "GSR": "DISABLED", "RESETMODE": "SYNC", "MULT_BYPASS": "DISABLED",
}


class Mult18(wiring.Component):
    """``p`` = the low ``p_bits`` bits of the exact signed product ``x * y`` of 4 cycles earlier.

    On an ECP5 platform (:class:`amaranth.vendor.LatticeECP5Platform`) this is one MULT18X18D instance
    whose input, pipeline and output registers are the first three stages (:data:`MULT18X18D_PARAMETERS`),
    then a fabric register that takes the product bits with no logic in between; elsewhere (simulation,
    plain Verilog) it is ``x * y`` between four ordinary registers. The MULT18X18D sites of an ECP5 lie in
    a few rows across the die, so the wires to and from a multiplier are long: ``x`` and ``y`` should come
    straight from registers and ``p`` should go to one. (Yosys packs no registers into an inferred
    MULT18X18D, hence the instance.) No register has a reset: the contents matter only beside valid flags
    kept by the user.

    Parameters
    ----------
    x_bits, y_bits : int
        Widths of the signed operands, 1..18.
    p_bits : int
        Low product bits kept, 1..36.

    Members
    -------
    x : In(signed(x_bits))
    y : In(signed(y_bits))
    p : Out(signed(p_bits))
    """

    #: Register stages from ``x``, ``y`` to ``p``.
    LATENCY = 4

    def __init__(self, x_bits, y_bits, p_bits):
        for name, value, hi in (("x_bits", x_bits, 18), ("y_bits", y_bits, 18), ("p_bits", p_bits, 36)):
            if not isinstance(value, int) or not 1 <= value <= hi:
                raise ConfigError(f"Mult18 {name} must be an integer 1..{hi}, not {value!r}")
        super().__init__({"x": In(signed(x_bits)), "y": In(signed(y_bits)), "p": Out(signed(p_bits))})

    def elaborate(self, platform):
        m = Module()
        out = Signal.like(self.p, reset_less=True)
        if isinstance(platform, LatticeECP5Platform):
            P = Signal(36)
            m.submodules.dsp = Instance(
                "MULT18X18D", **{f"p_{k}": v for k, v in MULT18X18D_PARAMETERS.items()},
                **{f"i_A{i}": self.x[min(i, len(self.x) - 1)] for i in range(18)},
                **{f"i_B{i}": self.y[min(i, len(self.y) - 1)] for i in range(18)},
                **{f"i_C{i}": 0 for i in range(18)},
                i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0, i_CLK0=ClockSignal(), i_CE0=1, i_RST0=0,
                **{f"o_P{i}": P[i] for i in range(36)})
            m.d.sync += out.eq(P[:len(out)])
        else:
            x_q, y_q = Signal.like(self.x, reset_less=True), Signal.like(self.y, reset_less=True)
            near, far = Signal.like(out, reset_less=True), Signal.like(out, reset_less=True)
            m.d.sync += [x_q.eq(self.x), y_q.eq(self.y), near.eq(x_q * y_q), far.eq(near), out.eq(far)]
        m.d.comb += self.p.eq(out)
        return m
