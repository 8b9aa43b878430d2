"""Two 8-bit operand lanes' products on one iCE40 SB_MAC16 in dual 8x8 mode: per lane an INT8 product, or the
sum of the lane's two INT4 products (one from the DSP, one from a 4x4 logic multiplier added in the DSP; W4A8:
INT4 x INT8, a 4x8 logic multiplier)."""

from amaranth.hdl import Cat, Const, Instance, Module, Mux, Signal, signed
from amaranth.vendor import SiliconBluePlatform

from qmac.hw.spec.formats import INT4, INT8, W4A8
from qmac.hw.lanes.lane_product import LaneProduct

__all__ = ["LanePairProduct", "sb_mac16_parameters"]


def sb_mac16_parameters(modes):
    """The SB_MAC16 configuration (Verilog parameter -> ``Const``) for lanes of ``modes``: both 8x8
    multipliers signed (``MODE_8x8``, ``A_SIGNED``, ``B_SIGNED``), nothing registered, and each half's
    output ``O[31:16] = A[15:8]*B[15:8] + C``, ``O[15:0] = A[7:0]*B[7:0] + D`` (modulo ``2**16``) through
    the unregistered adder (``*OUTPUT_SELECT = 0``: adder output; ``*ADDSUB_LOWERINPUT = 1``: the 8x8
    product; ``*ADDSUB_UPPERINPUT = 1``: C or D; ``*ADDSUB_CARRYSELECT = 0``: no carry in). INT8-only
    lanes take the 8x8 products directly (``*OUTPUT_SELECT = 2``) and add nothing.

    As the iCE40 DSP primitive is described by Lattice's iCE Technology Library and Yosys's simulation
    model of it (``techlibs/ice40/cells_sim.v``), where output select 3 is the 16x16 product's half, not
    the 8x8 product."""
    add = INT4.name in modes or W4A8.name in modes
    params = {"NEG_TRIGGER": Const(0, 1), "A_REG": Const(0, 1), "B_REG": Const(0, 1), "C_REG": Const(0, 1),
              "D_REG": Const(0, 1), "TOP_8x8_MULT_REG": Const(0, 1), "BOT_8x8_MULT_REG": Const(0, 1),
              "PIPELINE_16x16_MULT_REG1": Const(0, 1), "PIPELINE_16x16_MULT_REG2": Const(0, 1),
              "MODE_8x8": Const(1, 1), "A_SIGNED": Const(1, 1), "B_SIGNED": Const(1, 1)}
    for half in ("TOP", "BOT"):
        params[f"{half}OUTPUT_SELECT"] = Const(0 if add else 2, 2)
        params[f"{half}ADDSUB_LOWERINPUT"] = Const(1, 2)
        params[f"{half}ADDSUB_UPPERINPUT"] = Const(1, 1)
        params[f"{half}ADDSUB_CARRYSELECT"] = Const(0, 2)
    return params


class LanePairProduct(LaneProduct):
    """Combinational products of two lane pairs, ``p[j]`` of ``w[j]`` and ``a[j]`` as
    :class:`~qmac.hw.lanes.lane_product.LaneProduct` defines them, from one signed 8x8 multiplier per lane (the
    SB_MAC16's two in dual 8x8 mode) and, with INT4, one 4x4 multiplier per lane in logic.

    Lane ``j`` drives one half of the DSP (lane 0 the bottom: ``A[7:0]``, ``B[7:0]``, ``D`` -> ``O[15:0]``;
    lane 1 the top: ``A[15:8]``, ``B[15:8]``, ``C`` -> ``O[31:16]``) with::

        INT8 mode:  A_j = a,     B_j = w,     addend = 0            half = w*a
        INT4 mode:  A_j = a1,    B_j = w1,    addend = w0*a0        half = w1*a1 + w0*a0
        W4A8 mode:  A_j = a1,    B_j = w1,    addend = w0*a0        half = w1*a1 + w0*a0

    where ``a1, w1`` (bits 4-7, sign-extended to 8 bits) meet in the DSP and the 4x4 product ``w0*a0``
    (bits 0-3) is formed in logic and added by the DSP's adder (``C`` or ``D``). In W4A8 mode ``a0`` and
    ``a1`` are the lane's two INT8 activations and the logic product is 4x8. With W4A8 built the lane
    takes its multiplicands chosen (the input contract of :class:`~qmac.hw.lanes.lane_product.LaneProduct`:
    ``a[0:8]`` for ``w0``, ``a[8:16]`` for the DSP; INT4 nibbles arrive sign-extended, an INT8 activation
    in both bytes), so one 4x8 multiplier serves INT4 and W4A8 with no multiplicand multiplexer.
    ``p[j]`` is the half read as signed, exact in every mode (an INT8 product fits 16 bits, an INT4 lane sum
    9, a W4A8 lane sum 13).

    On an iCE40 platform (:class:`amaranth.vendor.SiliconBluePlatform`) this is an
    ``Instance("SB_MAC16")`` configured by :func:`sb_mac16_parameters`: Yosys infers only the DSP's 16x16
    mode. Elsewhere (simulation, plain Verilog) the same halves are computed with ``*`` and ``+``.

    Parameters
    ----------
    modes : tuple of str
        Non-empty subset of ``("int8", "int4", "w4a8")``.

    Members
    -------
    w : In(ArrayLayout(8, 2))
    a : In(ArrayLayout(8, 2)), or In(ArrayLayout(16, 2)) with W4A8 built
        Operand lanes, as :class:`~qmac.hw.lanes.lane_product.LaneProduct`'s (its input contract with W4A8).
    int4, w4a8 : In(1)
        Mode flags, as :class:`~qmac.hw.lanes.lane_product.LaneProduct`'s.
    p : Out(ArrayLayout(signed, 2))
        The lane results, each of the narrowest signed width holding every mode's range.
    """

    LANES = 2

    def elaborate(self, platform):
        m = Module()
        if W4A8.name in self._modes:
            int4, w4a8 = self.flag(INT4.name), self.flag(W4A8.name)
        else:
            int4, w4a8 = self.int4 if len(self._modes) > 1 else Const(self._modes[0] == INT4.name), None
        add = INT4.name in self._modes or w4a8 is not None
        # The DSP's inputs, lane 0 in the bottom half (A[7:0], B[7:0], D), lane 1 in the top (A[15:8], B[15:8], C).
        ports = {"A": Signal(16), "B": Signal(16), "C": Signal(16), "D": Signal(16)}
        for j, addend in enumerate(("D", "C")):
            w, a = self.w[j], self.a[j]
            half = slice(8 * j, 8 * j + 8)
            mul_a, mul_b = Signal(signed(8), name=f"mul_a{j}"), Signal(signed(8), name=f"mul_b{j}")
            if w4a8 is not None:   # W4A8 beside other modes, or alone: the flags pick
                m.d.comb += [mul_a.eq(a[8:16]), mul_b.eq(Mux(int4 | w4a8, w[4:8].as_signed(), w.as_signed()))]
            elif INT8.name in self._modes:
                m.d.comb += [mul_a.eq(Mux(int4, a[4:8].as_signed(), a.as_signed())),
                             mul_b.eq(Mux(int4, w[4:8].as_signed(), w.as_signed()))]
            else:
                m.d.comb += [mul_a.eq(a[4:8].as_signed()), mul_b.eq(w[4:8].as_signed())]
            m.d.comb += [ports["A"][half].eq(mul_a), ports["B"][half].eq(mul_b)]
            if w4a8 is not None:
                low = Signal(signed(12), name=f"w0a0_{j}")   # the 4x8 product, in [-1016, 1024]
                m.d.comb += [low.eq(w[0:4].as_signed() * a[0:8].as_signed()),
                             ports[addend].eq(Mux(int4 | w4a8, low, 0))]
            elif add:
                low = Signal(signed(8), name=f"w0a0_{j}")   # the 4x4 product, in [-56, 64]
                m.d.comb += [low.eq(w[0:4].as_signed() * a[0:4].as_signed()),
                             ports[addend].eq(Mux(int4, low, 0))]
        O = Signal(32)
        if isinstance(platform, SiliconBluePlatform):
            m.submodules.dsp = Instance(
                "SB_MAC16", **{f"p_{k}": v for k, v in sb_mac16_parameters(self._modes).items()},
                **{f"i_{k}": v for k, v in ports.items()},
                i_CLK=0, i_CE=0, i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0, i_IRSTTOP=0, i_IRSTBOT=0,
                i_ORSTTOP=0, i_ORSTBOT=0, i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
                i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0, o_O=O)
        else:
            halves = []
            for lo, addend in ((0, ports["D"]), (8, ports["C"])):
                product = ports["A"][lo:lo + 8].as_signed() * ports["B"][lo:lo + 8].as_signed()
                halves.append((product + addend)[:16] if add else product[:16])
            m.d.comb += O.eq(Cat(*halves))
        for j in range(2):
            m.d.comb += self.p[j].eq(O[16 * j:16 * j + self._format.bits].as_signed())
        return m
