"""One 8-bit operand lane's product: an INT8 product, or the sum of the lane's two INT4 products."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import ELEMENT_FORMATS, INT4, IntFormat, lane_range, modes_valid
from qmac.hw.ops import adder_tree

__all__ = ["LaneProduct", "lane_format"]


def lane_format(modes):
    """Format of a lane result for ``modes``: the narrowest signed width holding every mode's range.
    Raises :class:`ConfigError` unless ``modes`` is a non-empty tuple of distinct element format names."""
    if not modes_valid(modes):
        raise ConfigError(f"lane modes must be a non-empty tuple of distinct names from "
                          f"{', '.join(ELEMENT_FORMATS)}, not {modes!r}")
    return IntFormat.for_range(*lane_range(modes))


class LaneProduct(wiring.Component):
    """Combinational product of one weight lane and one activation lane.

    INT8 mode: ``p = w * a`` with ``w, a`` the lanes read as INT8 (exact, in [-16256, 16384]).
    INT4 mode: ``p = w0*a0 + w1*a1`` where element ``j`` of a lane is bits ``[4j, 4j+4)`` read as INT4
    (exact, in [-112, 128]).

    The multiplier is one shift-and-add array of eight rows, each row the 8-bit two's complement value
    ``r_i = w[i] ? x_i : 0`` weighted ``2**i``. In INT8 mode every ``x_i`` is ``a`` (INT8); in INT4 mode
    ``x_i`` is ``16*a0`` (``a0`` in bits 4-7, zeros below) for rows 0-3 and ``a1`` for rows 4-7. Both modes
    thus keep every row 8 bits wide at its INT8 bit position: the array sums ``w*a`` in INT8 mode and
    ``16*(w0*a0 + w1*a1)`` in INT4 mode, and ``p`` is that sum, or the sum shifted right by 4 in INT4 mode.
    Row 7 is subtracted (bit 7 of ``w`` weighs ``-2**7``), and so is row 3 in INT4 mode (bit 3 weighs
    ``-2**3`` there), as ``-r = ~r + 1``: row 7 is complemented, row 3 XORed with ``int4``. Every row is
    added as the unsigned number ``r ^ 0x80``, which is ``r + 128``, so no row is sign-extended. The
    ``-128 * 2**i`` of the eight rows and the ``+2**7`` of row 7 are one constant, ``0x8100`` modulo
    ``2**16``, and in INT4 mode row 3's ``+2**3`` joins it (``0x8108``). The sum is taken modulo ``2**16``,
    exact since both modes' sums fit 16 signed bits: rows 0-3 and rows 4-7 as two balanced four-row
    sums, then their sum plus the mode's constant (:class:`~qmac.hw.lanes.pipelined_lane_product.PipelinedLaneProduct`
    registers the two halves).

    With a single mode built in, ``int4`` is a constant: the multiplexers, row 3's XOR and the output
    shift fold away, leaving the INT8 or the INT4 array above. A dual-mode lane costs the multiplicand
    multiplexers, row 3's XOR and carry-in bit and the output multiplexer more than an INT8 lane.

    Parameters
    ----------
    modes : tuple of str
        Non-empty subset of ``("int8", "int4")``.

    Members
    -------
    w, a : In(8)
        Operand lanes.
    int4 : In(1)
        Present only when both modes are built: 1 selects INT4.
    p : Out(signed)
        The lane result, of the narrowest signed width holding every mode's range.
    """

    #: Lanes one unit computes; with more than one (a subclass), ``w``, ``a`` and ``p`` are arrays of them.
    LANES = 1
    #: Register stages inside the shift-and-add array (a subclass sets 1: :class:`PipelinedLaneProduct`).
    STAGES = 0

    def __init__(self, modes):
        self._format = lane_format(modes)
        self._modes = modes
        lane, result = unsigned(8), signed(self._format.bits)
        if self.LANES > 1:
            lane, result = data.ArrayLayout(lane, self.LANES), data.ArrayLayout(result, self.LANES)
        ports = {"w": In(lane), "a": In(lane), "p": Out(result)}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def modes(self):
        return self._modes

    @property
    def format(self):
        """Format of ``p`` (of each lane's ``p[j]`` when ``LANES > 1``)."""
        return self._format

    def elaborate(self, platform):
        m = Module()
        int4 = self.int4 if len(self._modes) > 1 else Const(self._modes[0] == INT4.name)
        a = self.a
        # Multiplicands of rows 0-3 (a, or 16*a0) and 4-7 (a, or a1) as 8-bit two's complement patterns.
        # Signals, so that the Verilog names each once instead of repeating it in every row.
        low = Signal(8)
        high = Signal(8)
        m.d.comb += [low.eq(Cat(a[0:4] & ~int4.replicate(4), Mux(int4, a[0:4], a[4:8]))),
                     high.eq(Mux(int4, a[4:8].as_signed(), a.as_signed()))]
        rows = [Mux(self.w[i], low if i < 4 else high, 0) for i in range(8)]
        # -r = ~r + 1 for row 7 (always) and row 3 (INT4 mode); the sum starts with their +1s.
        rows[3] = rows[3] ^ int4.replicate(8)
        rows[7] = ~rows[7]
        # Row r adds as r ^ 0x80 = r + 128, with no sign extension; the -128s and the +1s fold into one
        # constant per mode (row 3's +1 weighs 2**3), a constant in the final sum, not a fifth term in a half.
        offset = (1 << 7) - sum(1 << (7 + i) for i in range(8))
        terms = [(row ^ 0x80) << i for i, row in enumerate(rows)]
        # Rows 0-3 and rows 4-7 as two balanced sums, registered when STAGES = 1.
        halves = [adder_tree(terms[:4]), adder_tree(terms[4:])]
        if self.STAGES:
            regs = [Signal(16, name=f"half{j}", reset_less=True) for j in range(2)]
            m.d.sync += [regs[0].eq(halves[0]), regs[1].eq(halves[1])]
            halves = regs
            if len(self._modes) > 1:   # else a constant
                int4_q = Signal(name="int4_q", reset_less=True)
                m.d.sync += int4_q.eq(int4)
                int4 = int4_q
        constant = Mux(int4, (offset + (1 << 3)) % (1 << 16), offset % (1 << 16))
        p16 = Signal(signed(16))
        m.d.comb += [p16.eq(halves[0] + halves[1] + constant),
                     self.p.eq(Mux(int4, p16[4:].as_signed(), p16))]
        return m

