"""One 8-bit operand lane's product: an INT8 product, or the sum of the lane's two INT4 products (W4A8: of its
two INT4 weights with two INT8 activations)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import ELEMENT_FORMATS, INT4, W4A8, IntFormat, lane_range, mode_flags, modes_valid
from qmac.hw.ops import adder_tree

__all__ = ["LaneProduct", "lane_format", "mode_running"]


def lane_format(modes):
    """Format of a lane result for ``modes``: the narrowest signed width holding every mode's range.
    Raises :class:`ConfigError` unless ``modes`` is a non-empty tuple of distinct element format names."""
    if not modes_valid(modes):
        raise ConfigError(f"lane modes must be a non-empty tuple of distinct names from "
                          f"{', '.join(ELEMENT_FORMATS)}, not {modes!r}")
    return IntFormat.for_range(*lane_range(modes))


def mode_running(unit, modes, mode):
    """1 while ``mode`` runs on ``unit`` (a component built with ``modes`` and the ports of
    :func:`~qmac.hw.spec.formats.mode_flags`): its flag port, a constant when it is the only mode or not
    built, or for the first of several modes, no other flag high."""
    flags = mode_flags(modes)
    if mode in flags:
        return getattr(unit, mode)
    if mode not in modes or len(modes) == 1:
        return Const(mode in modes)
    return ~Cat(getattr(unit, f) for f in flags).any()


class LaneProduct(wiring.Component):
    """Combinational product of one weight lane and one activation lane.

    INT8 mode: ``p = w * a`` with ``w, a`` the lanes read as INT8 (exact, in [-16256, 16384]).
    INT4 mode: ``p = w0*a0 + w1*a1`` where element ``j`` of a lane is bits ``[4j, 4j+4)`` read as INT4
    (exact, in [-112, 128]).
    W4A8 mode: ``p = w0*a0 + w1*a1`` with ``w0, w1`` the INT4 elements of ``w`` and ``a0 = a[0:8]``,
    ``a1 = a[8:16]`` INT8 (exact, in [-2032, 2048]); ``a`` is then two bytes wide.

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

    W4A8 mode keeps INT4 mode's split (rows 0-3 from ``w0``, rows 4-7 from ``w1``, row 3 subtracted) with
    INT8 multiplicands: ``a0`` for rows 0-3 (INT8 mode's multiplicand, ``a[0:8]``) and ``a1`` for rows 4-7.
    The rows 4-7 sum is then ``16 * w1*a1`` (plus its rows' offsets), a multiple of 16: the lane adds it
    divided by 16 (its bits from 4 up, wiring only), ``p`` = rows 0-3 + (rows 4-7) / 16 + the mode's
    constant ``-128*15 - 128*15 + 2**3 + 2**7 / 16`` (rows' offsets, row 3's and row 7's +1s), modulo
    ``2**16``. A build with W4A8 computes INT4 mode the same way, with the INT4 activations sign-extended
    to 8 bits as multiplicands: INT4 and W4A8 then share the rows, row 3's XOR, the re-alignment and the
    constant, and no mode shifts the result. Such a build keeps the rows 4-7 sum as that quotient (INT8
    mode shifts it back by 4), also in the register of :class:`PipelinedLaneProduct`. The partial products
    are those of one 8x8 array: a W4A8-only lane is an INT8 lane with row 3 subtracted and the upper half
    re-aligned.

    **Input contract with W4A8 built:** ``a`` holds the two multiplicands themselves, ``a[0:8]`` for rows
    0-3 and ``a[8:16]`` for rows 4-7, as :class:`~qmac.hw.lanes.lane_multiplicands.LaneMultiplicands`
    forms them from the payload (once per array column): INT8 mode ``a[0:8] = a[8:16]`` = the INT8
    activation; INT4 mode ``a[0:8]``, ``a[8:16]`` = the INT4 activations ``a0``, ``a1`` sign-extended to 8
    bits; W4A8 mode the INT8 activations ``a0``, ``a1``. The lane thus has no multiplicand multiplexer;
    the flags only select row 3's subtraction, the re-alignment and the constant (INT4 and W4A8 alike).
    Without W4A8 built, ``a`` is the payload's activation lane as it is.

    With a single mode built in, the mode flags are constants: the multiplexers, row 3's XOR and the
    output shift fold away, leaving the INT8, the INT4 or the W4A8 array above. A dual-mode lane costs
    the multiplicand multiplexers, row 3's XOR and carry-in bit and the output multiplexer more than an
    INT8 lane; with W4A8 built beside INT8 the lane has, instead, row 3's XOR and carry-in bit and the
    re-alignment multiplexer (its multiplicands come chosen).

    Parameters
    ----------
    modes : tuple of str
        Non-empty subset of ``("int8", "int4", "w4a8")``.

    Members
    -------
    w : In(8)
        Weight lane.
    a : In(8), or In(16) with W4A8 built
        Activation lane, or with W4A8 built the two multiplicands of the input contract above (low byte
        for rows 0-3).
    int4, w4a8 : In(1)
        Mode flags (:func:`~qmac.hw.spec.formats.mode_flags`), present when that mode is built beside
        others: 1 selects it; all low selects the first built mode.
    p : Out(signed)
        The lane result, of the narrowest signed width holding every mode's range.
    """

    #: Lanes one unit computes; with more than one (a subclass), ``w``, ``a`` and ``p`` are arrays of them.
    LANES = 1
    #: Register stages inside the shift-and-add array (a subclass sets 1: :class:`PipelinedLaneProduct`).
    STAGES = 0
    #: Whether the lane computes W4A8 (a subclass whose multiplier cannot sets False and refuses the mode).
    W4A8 = True

    def __init__(self, modes):
        self._format = lane_format(modes)
        if W4A8.name in modes and not self.W4A8:
            raise ConfigError(f"{type(self).__name__} modes must be a subset of int8, int4 (it cannot compute w4a8), "
                              f"not {modes!r}")
        self._modes = modes
        lane, result = unsigned(8), signed(self._format.bits)
        a_lane = unsigned(8 * max(ELEMENT_FORMATS[m].activation_lanes for m in modes))
        if self.LANES > 1:
            lane, result = data.ArrayLayout(lane, self.LANES), data.ArrayLayout(result, self.LANES)
            a_lane = data.ArrayLayout(a_lane, self.LANES)
        ports = {"w": In(lane), "a": In(a_lane), "p": Out(result)}
        for flag in mode_flags(modes):
            ports[flag] = In(1)
        super().__init__(ports)

    @property
    def modes(self):
        return self._modes

    @property
    def format(self):
        """Format of ``p`` (of each lane's ``p[j]`` when ``LANES > 1``)."""
        return self._format

    def flag(self, mode):
        """1 while ``mode`` runs (:func:`mode_running`)."""
        return mode_running(self, self._modes, mode)

    def elaborate(self, platform):
        m = Module()
        w4a8_built = W4A8.name in self._modes
        int4 = self.flag(INT4.name)
        # The modes that split the rows in two halves (rows 0-3 from w0, 4-7 from w1): INT4, and W4A8, which
        # a W4A8 build also runs INT4 tiles as, with the INT4 activations sign-extended.
        split = int4 | self.flag(W4A8.name) if w4a8_built else int4
        a = self.a
        # Multiplicands of rows 0-3 and 4-7 as 8-bit two's complement patterns. Signals, so that the Verilog
        # names each once instead of repeating it in every row.
        low = Signal(8)
        high = Signal(8)
        if w4a8_built:   # the column's LaneMultiplicands chose them
            m.d.comb += [low.eq(a[0:8]), high.eq(a[8:16])]
        else:   # a or 16*a0; a or a1
            m.d.comb += [low.eq(Cat(a[0:4] & ~int4.replicate(4), Mux(int4, a[0:4], a[4:8]))),
                         high.eq(Mux(int4, a[4:8].as_signed(), a.as_signed()))]
        rows = [Mux(self.w[i], low if i < 4 else high, 0) for i in range(8)]
        # -r = ~r + 1 for row 7 (always) and row 3 (split modes); the sum starts with their +1s.
        rows[3] = rows[3] ^ split.replicate(8)
        rows[7] = ~rows[7]
        # Row r adds as r ^ 0x80 = r + 128, with no sign extension; the -128s and the +1s fold into one
        # constant per mode (row 3's +1 weighs 2**3), a constant in the final sum, not a fifth term in a half.
        offset = (1 << 7) - sum(1 << (7 + i) for i in range(8))
        split_offset = offset + (1 << 3)
        if w4a8_built:   # rows 4-7 enter divided by 16: their -128s and row 7's +1 too
            split_offset = -128 * 15 + (1 << 3) + (-128 * 15 * 16 + (1 << 7)) // 16
        terms = [(row ^ 0x80) << i for i, row in enumerate(rows)]
        # Rows 0-3 and rows 4-7 as two balanced sums, registered when STAGES = 1.
        halves = [adder_tree(terms[:4]), adder_tree(terms[4:])]
        if w4a8_built:   # rows 4-7 sum / 16 (its low bits are zero): split modes add it as it is
            halves[1] = halves[1][4:]
        if self.STAGES:
            regs = [Signal(16, name=f"half{j}", reset_less=True) for j in range(2)]
            m.d.sync += [regs[0].eq(halves[0]), regs[1].eq(halves[1])]
            halves = regs
            if len(self._modes) > 1:   # else a constant
                split_q = Signal(name="split_q", reset_less=True)
                m.d.sync += split_q.eq(split)
                split = split_q
        if w4a8_built:   # INT8 mode shifts the rows 4-7 sum back
            halves[1] = Mux(split, halves[1], halves[1] << 4)
        p16 = Signal(signed(16))
        m.d.comb += p16.eq(halves[0] + halves[1] + Mux(split, split_offset % (1 << 16), offset % (1 << 16)))
        # A W4A8 build's split modes sum at bit 0; otherwise INT4 mode sums 16*(w0*a0 + w1*a1).
        m.d.comb += self.p.eq(p16 if w4a8_built else Mux(split, p16[4:].as_signed(), p16))
        return m
