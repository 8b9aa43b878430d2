"""One 8-bit operand lane's product: an INT8 product, or the sum of the lane's two INT4 products."""

from amaranth.hdl import Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .formats import ELEMENT_FORMATS, INT4, IntFormat

__all__ = ["LaneProduct"]


class LaneProduct(wiring.Component):
    """Combinational product of one weight lane and one activation lane.

    INT8 mode: ``p = w * a`` with ``w, a`` the lanes read as INT8 (exact, in [-16256, 16384]).
    INT4 mode: ``p = w0*a0 + w1*a1`` where element ``j`` of a lane is bits ``[4j, 4j+4)`` read as INT4
    (exact, in [-112, 128]).

    The multiplier is a shift-and-add array over the bits of ``w`` in which the mode only changes the
    multiplicands (``a`` or its low nibble for rows 0-3, ``16*a`` or its high nibble for rows 4-7) and the
    sign of row 3. With a single mode built in, ``int4`` is a constant and the array folds to a plain INT8
    or a pair of INT4 multipliers; a dual-mode lane costs one multiplicand multiplexer and one
    conditional negation more than an INT8 lane.

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

    def __init__(self, modes):
        if (not isinstance(modes, tuple) or not modes or len(set(modes)) != len(modes)
                or any(m not in ELEMENT_FORMATS for m in modes)):
            raise ConfigError(f"lane modes must be a non-empty tuple of distinct names from "
                              f"{', '.join(ELEMENT_FORMATS)}, not {modes!r}")
        self._modes = modes
        fmts = [ELEMENT_FORMATS[m] for m in modes]
        self._format = IntFormat.for_range(min(f.per_lane * f.product[0] for f in fmts),
                                           max(f.per_lane * f.product[1] for f in fmts))
        ports = {"w": In(8), "a": In(8), "p": Out(signed(self._format.bits))}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def modes(self):
        return self._modes

    @property
    def format(self):
        """Format of ``p``."""
        return self._format

    def elaborate(self, platform):
        m = Module()
        int4 = self.int4 if len(self._modes) > 1 else Const(self._modes[0] == INT4.name)
        a = self.a.as_signed()
        # Multiplicands of rows 0-3 and 4-7; ``a << 4`` gives rows 4-7 weight 2**i in INT8 mode.
        low = Mux(int4, self.a[0:4].as_signed(), a)
        high = Mux(int4, self.a[4:8].as_signed(), a << 4)
        rows = [Mux(self.w[i], (low if i < 4 else high) << (i % 4), 0) for i in range(8)]
        # Bit 7 of w (INT8) and bit 3 of w (INT4) carry weight -2**7 and -2**3.
        m.d.comb += self.p.eq(rows[0] + rows[1] + rows[2] + Mux(int4, -rows[3], rows[3])
                              + rows[4] + rows[5] + rows[6] - rows[7])
        return m
