"""The correction of Winograd's inner product for one operand vector: the sum of its element pairs' products."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError
from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.spec.formats import INT4, INT8
from qmac.hw.local_register import LocalRegister
from qmac.hw.ops import delay
from qmac.hw.lanes.winograd_pair_product import winograd_correction_format

__all__ = ["WinogradCorrection"]


class WinogradCorrection(wiring.Component):
    """``sum`` = ``sum_i v[2i] * v[2i+1]`` over the elements ``v`` of V operand lanes (INT8: the lanes;
    INT4: each lane's two elements, bits [0, 4) then [4, 8)): what :class:`~qmac.hw.lanes.winograd_pair_product.
    WinogradPairProduct` terms add beyond the dot product, for the activation or the weight side.

    ``v`` is registered first (a local copy: the vector comes from far away, to every correction and unit
    of the array). Then each mode built has its own single-mode ``"logic_pipelined"``
    :class:`~qmac.hw.int_datapath.dot_product.DotProduct` of V/2 lanes: in INT8 lane ``i`` gets ``(v[2i], v[2i+1])``;
    in INT4 it gets the low elements of lanes ``2i`` and ``2i+1`` against their high elements (its INT4
    lane product ``w0*a0 + w1*a1`` is then ``v[2i,0]*v[2i,1] + v[2i+1,0]*v[2i+1,1]``). With both modes
    built, a register selects one sum by ``int4`` (delayed beside the vector from a
    :class:`~qmac.hw.local_register.LocalRegister` copy), so the mode drives only that select, not the
    lanes' multiplicands. Exact; :attr:`latency` is the dot product's + 1, + 1 more with both modes.

    Parameters
    ----------
    lanes : int
        V: 2, 4, 8, 16, 32 or 64.
    modes : tuple of str
        As :class:`~qmac.hw.lanes.lane_product.LaneProduct`.
    tree_levels_per_stage : int
        As :class:`~qmac.hw.int_datapath.dot_product.DotProduct`.

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
        self._dots = {mode: DotProduct(lanes // 2, (mode,), tree_levels_per_stage, multiplier="logic_pipelined")
                      for mode in modes}
        self._lanes = lanes
        self._modes = modes
        self._format = winograd_correction_format(lanes, modes)
        ports = {"v": In(data.ArrayLayout(8, lanes)), "sum": Out(signed(self._format.bits))}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def format(self):
        """Format of ``sum`` (exact)."""
        return self._format

    @property
    def latency(self):
        return 1 + self._dots[self._modes[0]].latency + (len(self._modes) > 1)

    def elaborate(self, platform):
        m = Module()
        v = Signal.like(self.v, reset_less=True)
        m.d.sync += v.eq(self.v)
        for mode, dot in self._dots.items():
            m.submodules[f"dot_{mode}"] = dot
            for i in range(self._lanes // 2):
                lo, hi = v[2 * i], v[2 * i + 1]
                if mode == INT4.name:
                    m.d.comb += [dot.w[i].eq(Cat(lo[0:4], hi[0:4])), dot.a[i].eq(Cat(lo[4:8], hi[4:8]))]
                else:
                    m.d.comb += [dot.w[i].eq(lo), dot.a[i].eq(hi)]
        if len(self._modes) == 1:
            m.d.comb += self.sum.eq(self._dots[self._modes[0]].sum)
            return m
        m.submodules.int4_copy = int4_copy = LocalRegister(1)
        m.d.comb += int4_copy.d.eq(self.int4)
        int4 = delay(m, int4_copy.q, self._dots[INT8.name].latency, "int4")
        m.d.sync += self.sum.eq(Mux(int4, self._dots[INT4.name].sum, self._dots[INT8.name].sum))
        return m
