"""The correction of Winograd's inner product for one operand vector: the sum of its element pairs' products."""

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.vendor import LatticeECP5Platform

from .config import ConfigError
from .dot_product import DotProduct
from .formats import INT4

__all__ = ["WinogradCorrection"]


class WinogradCorrection(wiring.Component):
    """``sum`` = ``sum_i v[2i] * v[2i+1]`` over the elements ``v`` of V operand lanes (INT8: the lanes;
    INT4: each lane's two elements, bits [0, 4) then [4, 8)): what :class:`~qmac.hw.winograd_pair_product.
    WinogradPairProduct` terms add beyond the dot product, for the activation or the weight side.

    ``v`` and ``int4`` are registered (a local copy: the vector and the mode come from far away, to every
    correction and unit of the array; Yosys merges registers with equal inputs, so on an ECP5 platform the
    copy of ``int4`` is a ``TRELLIS_FF`` instance, which it leaves alone), then a ``"logic_pipelined"`` :class:`~qmac.hw.dot_product.DotProduct`
    of V/2 lanes computes the sum, lane ``i`` fed with ``(v[2i], v[2i+1])`` in INT8 mode and, in INT4
    mode, with the low elements of lanes ``2i`` and ``2i+1`` against their high elements (its INT4 lane
    product ``w0*a0 + w1*a1`` is then ``v[2i,0]*v[2i,1] + v[2i+1,0]*v[2i+1,1]``). Exact; :attr:`latency`
    is that unit's + 1.

    Parameters
    ----------
    lanes : int
        V: 2, 4, 8, 16, 32 or 64.
    modes : tuple of str
        As :class:`~qmac.hw.lane_product.LaneProduct`.
    tree_levels_per_stage : int
        As :class:`~qmac.hw.dot_product.DotProduct`.

    Members
    -------
    v : In(ArrayLayout(8, V))
    int4 : In(1)
        Present only with both modes built; sampled with ``v``.
    sum : Out(signed)
        The correction of the ``v`` (and ``int4``) of :attr:`latency` cycles earlier; format :attr:`format`.
    """

    def __init__(self, lanes, modes, tree_levels_per_stage=2):
        if lanes not in (2, 4, 8, 16, 32, 64):
            raise ConfigError(f"Winograd correction lanes must be one of 2, 4, 8, 16, 32, 64, not {lanes!r}")
        self._dot = DotProduct(lanes // 2, modes, tree_levels_per_stage, multiplier="logic_pipelined")
        self._lanes = lanes
        self._modes = modes
        ports = {"v": In(data.ArrayLayout(8, lanes)), "sum": Out(self._dot.sum.shape())}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def format(self):
        """Format of ``sum`` (exact)."""
        return self._dot.format

    @property
    def latency(self):
        return 1 + self._dot.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.dot = dot = self._dot
        modes = self._modes
        v = Signal.like(self.v, reset_less=True)
        int4 = Signal()
        m.d.sync += v.eq(self.v)
        if len(modes) > 1 and isinstance(platform, LatticeECP5Platform):
            m.submodules.int4_copy = Instance(
                "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR", p_SRMODE="LSR_OVER_CE",
                p_REGSET="RESET", i_CLK=ClockSignal(), i_LSR=0, i_CE=1, i_DI=self.int4, o_Q=int4)
        elif len(modes) > 1:
            m.d.sync += int4.eq(self.int4)
        for i in range(self._lanes // 2):
            lo, hi = v[2 * i], v[2 * i + 1]
            int4_w, int4_a = Cat(lo[0:4], hi[0:4]), Cat(lo[4:8], hi[4:8])
            if len(modes) > 1:
                m.d.comb += [dot.w[i].eq(Mux(int4, int4_w, lo)), dot.a[i].eq(Mux(int4, int4_a, hi))]
            elif modes == (INT4.name,):
                m.d.comb += [dot.w[i].eq(int4_w), dot.a[i].eq(int4_a)]
            else:
                m.d.comb += [dot.w[i].eq(lo), dot.a[i].eq(hi)]
        if len(modes) > 1:
            m.d.comb += dot.int4.eq(int4)
        m.d.comb += self.sum.eq(dot.sum)
        return m
