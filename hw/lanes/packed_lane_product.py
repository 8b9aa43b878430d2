"""One 8-bit operand lane's product as one signed multiplication, sized for an ECP5 MULT18X18D: an INT8
product, or the lane's two INT4 products packed into one multiplication whose middle bits are their sum."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed

from qmac.hw.spec.multipliers import Mult18 as Mult18Multiplier
from qmac.hw.spec.formats import INT4
from qmac.hw.lanes.lane_product import LaneProduct
from qmac.hw.lanes.mult18 import Mult18

__all__ = ["PackedLaneProduct"]

#: Bit offset of the second element in an INT4 mode's packed operands.
_SHIFT = 9

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

    Pipeline (:attr:`latency` = 5): the packed operands ``x``, ``y`` are registered (the packing, a small
    adder, ends in a register), then multiplied by a :class:`~qmac.hw.lanes.mult18.Mult18` (4 stages: on ECP5 a
    MULT18X18D with its own input, pipeline and output registers, then a fabric register); ``p`` is
    combinational from the last register.

    Parameters and members are :class:`~qmac.hw.lanes.lane_product.LaneProduct`'s, but ``p`` is the result of
    the operands (and ``int4``) of :attr:`latency` cycles earlier.
    """

    #: Two INT4 x INT8 products do not pack into one 18x18 multiplication (docs/fpga.md).
    W4A8 = False

    @property
    def latency(self):
        """Register stages from the operands to ``p``."""
        return Mult18Multiplier.stages

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
        m.submodules.mult = mult = Mult18(len(x), len(y), _SHIFT + 9)   # p reads bits [0, 16) and [8, 18)
        m.d.comb += [mult.x.eq(x), mult.y.eq(y)]
        product = mult.p
        # INT4: bits [9, 18) of product + 256, as P[8:18] + 1 without its lowest bit.
        middle = (product[_SHIFT - 1:_SHIFT + 9] + 1)[1:10].as_signed()
        if not dual:
            m.d.comb += self.p.eq(middle if self._modes == (INT4.name,) else product[:16].as_signed())
        else:
            m.d.comb += self.p.eq(Mux(int4_q[4], middle, product[:16].as_signed()))
        return m
