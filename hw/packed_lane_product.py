"""One 8-bit operand lane's product as one signed multiplication, sized for an ECP5 MULT18X18D: an INT8
product, or the lane's two INT4 products packed into one multiplication whose middle bits are their sum."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed
from amaranth.vendor import LatticeECP5Platform

from .config import MULTIPLIERS
from .formats import INT4
from .lane_product import LaneProduct

__all__ = ["PackedLaneProduct", "MULT18X18D_PARAMETERS"]

#: Bit offset of the second element in an INT4 mode's packed operands.
_SHIFT = 9

#: The MULT18X18D configuration of an ECP5 build (Lattice FPGA-TN-02205, "ECP5 and ECP5-5G sysDSP Usage
#: Guide"; parameter names as Yosys's cells_bb_ecp5.v): signed 18x18 multiplier, the A and B input
#: registers, the pipeline register and the output register all clocked by CLK0 and enabled by CE0 (tied
#: high), so the three register stages of the lane are the multiplier's own.
MULT18X18D_PARAMETERS = {
    "REG_INPUTA_CLK": "CLK0", "REG_INPUTA_CE": "CE0", "REG_INPUTA_RST": "RST0",
    "REG_INPUTB_CLK": "CLK0", "REG_INPUTB_CE": "CE0", "REG_INPUTB_RST": "RST0",
    "REG_PIPELINE_CLK": "CLK0", "REG_PIPELINE_CE": "CE0", "REG_PIPELINE_RST": "RST0",
    "REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE0", "REG_OUTPUT_RST": "RST0",
    "GSR": "DISABLED", "RESETMODE": "SYNC", "MULT_BYPASS": "DISABLED",
}


class PackedLaneProduct(LaneProduct):
    """Product of one weight lane and one activation lane from one signed multiplication ``x * y`` of at
    most 14 x 14 bits, which Yosys's ``synth_ecp5`` maps to one MULT18X18D.

    INT8 mode: ``x = a``, ``y = w`` (the lanes read as INT8) and ``p = x * y``.

    INT4 mode, with ``a0, a1, w0, w1`` the lanes' INT4 elements (bits ``[4j, 4j+4)``)::

        x = a0 + 2**9 * a1          in [-4104, 3591]: 14 bits
        y = w1 + 2**9 * w0
        x * y = a0*w1 + 2**9 * (a0*w0 + a1*w1) + 2**18 * a1*w0

    The middle term is ``p``. The low term ``a0*w1`` lies in ``[-56, 64]``, so ``a0*w1 + 256`` lies in
    ``[0, 512)`` and ``floor((x*y + 256) / 2**9) = p + 2**9 * a1*w0`` exactly; ``p`` in ``[-112, 128]`` is
    that value's low 9 bits read as signed (9 bits are needed: with a 2**8 spacing the top term would
    overlap ``p``'s sign bit). In hardware: ``p = (P[8:18] + 1) >> 1`` with ``P = x * y``.

    Why not two INT8 products per 18 x 18 multiplier: a product of two INT8 values spans 16 bits
    (``[-16256, 16384]``), so packing two of them into one operand, ``a + 2**k * a'`` (or the dot-product
    form above, ``(a + 2**k a')(w' + 2**k w)``), needs ``k >= 16`` to keep the terms apart, an operand of
    ``8 + 16 = 24`` bits: more than 18. An 18-bit operand allows ``k <= 10``, where the terms overlap in 6
    bits that only another multiplication could separate. So a MULT18X18D computes one INT8 product, or
    two INT4 products (one lane) in INT4 mode.

    Pipeline (:attr:`latency` = 5): the packed operands ``x``, ``y`` are registered, then registered
    again, then the product is registered three times; ``p`` is combinational from the last register. On
    an ECP5 platform (:class:`amaranth.vendor.LatticeECP5Platform`) the lane instantiates MULT18X18D and
    stages 2-4 are the multiplier's own input, pipeline and output registers
    (:data:`MULT18X18D_PARAMETERS`); elsewhere (simulation, plain Verilog) they are ``x * y`` between
    ordinary registers. The MULT18X18D sites of an ECP5 lie in a few rows across the whole die, so a
    multiplier is often 40 tiles from the logic around it, and Yosys merges equal registers: the packed
    activation register of a column feeds the multipliers of all the column's units. So no logic may
    sit on the long wires: the packing (a small adder) ends in a register, the multiplier's registers
    take the wire in and drive the wire out, and the fifth register takes the product bits with no logic
    in between. (Yosys does not pack registers into an inferred MULT18X18D.)

    Parameters and members are :class:`~qmac.hw.lane_product.LaneProduct`'s, but ``p`` is the result of
    the operands (and ``int4``) of :attr:`latency` cycles earlier.
    """

    @property
    def latency(self):
        """Register stages from the operands to ``p``."""
        return MULTIPLIERS["mult18"]

    def elaborate(self, platform):
        m = Module()
        dual = len(self._modes) > 1
        int4 = self.int4 if dual else Const(self._modes[0] == INT4.name)

        def operand(lane, low, high):
            """The lane read as INT8, or its INT4 elements ``low + 2**9 * high`` (``low``, ``high``: 0 or 1)."""
            e = [lane[0:4].as_signed(), lane[4:8].as_signed()]
            pair = e[low] + (e[high] << _SHIFT)
            if not dual:
                return pair if self._modes == (INT4.name,) else lane.as_signed()
            return Mux(int4, pair, lane.as_signed())

        # Data registers without reset, as DotProduct's.
        x = Signal(signed(14 if INT4.name in self._modes else 8), reset_less=True)
        y = Signal.like(x)
        m.d.sync += [x.eq(operand(self.a, 0, 1)), y.eq(operand(self.w, 1, 0))]
        int4_q = Signal(5)   # int4 of 1 .. 5 cycles ago
        m.d.sync += int4_q.eq(Cat(int4, int4_q[:4]))
        product = Signal(signed(_SHIFT + 9), reset_less=True)   # the bits p reads: [0, 16) and [8, 18)
        if isinstance(platform, LatticeECP5Platform):
            P = Signal(36)
            m.submodules.dsp = Instance(
                "MULT18X18D", **{f"p_{k}": v for k, v in MULT18X18D_PARAMETERS.items()},
                **{f"i_A{i}": x.as_signed()[min(i, len(x) - 1)] for i in range(18)},
                **{f"i_B{i}": y.as_signed()[min(i, len(y) - 1)] for i in range(18)},
                **{f"i_C{i}": 0 for i in range(18)},
                i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0, i_CLK0=ClockSignal(), i_CE0=1, i_RST0=0,
                **{f"o_P{i}": P[i] for i in range(36)})
            m.d.sync += product.eq(P[:len(product)])
        else:
            x_q, y_q, near, far = Signal.like(x), Signal.like(y), Signal.like(product), Signal.like(product)
            m.d.sync += [x_q.eq(x), y_q.eq(y), near.eq(x_q * y_q), far.eq(near), product.eq(far)]
        # INT4: bits [9, 18) of product + 256, as P[8:18] + 1 without its lowest bit.
        middle = (product[_SHIFT - 1:_SHIFT + 9] + 1)[1:10].as_signed()
        if not dual:
            m.d.comb += self.p.eq(middle if self._modes == (INT4.name,) else product[:16].as_signed())
        else:
            m.d.comb += self.p.eq(Mux(int4_q[4], middle, product[:16].as_signed()))
        return m
