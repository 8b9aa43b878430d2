"""A V-lane dot-product unit for 2:4 sparse weights: V multipliers cover 2V (INT8) or 4V (INT4) dense positions."""

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.int_datapath.sparse24_select import Sparse24Select

__all__ = ["SparseDotProduct"]


class SparseDotProduct(wiring.Component):
    """``sum`` = ``sum_e w_e * a[4 * (e // 2) + meta[e]]`` over the ``E`` kept elements of a beat (INT8:
    ``E = V``, INT4: ``E = 2V``), exact.

    A :class:`~qmac.hw.int_datapath.sparse24_select.Sparse24Select` picks, combinationally, the dense activation of
    every kept weight; an unchanged :class:`~qmac.hw.int_datapath.dot_product.DotProduct` multiplies and sums. With
    valid metadata (distinct, ascending indices per group) ``sum`` equals the dense dot product of the
    decompressed weights (``2E`` dense positions) and ``a``; malformed metadata gives the sum above, as
    :class:`~qmac.hw.int_datapath.sparse24_select.Sparse24Select` documents. One beat enters per cycle, so in sparse mode
    V multipliers do 2V dense INT8 or 4V dense INT4 multiply-accumulates per cycle.

    Latency: that of the DotProduct, ``1 + ceil(log2(V) / tree_levels_per_stage)`` cycles
    (:attr:`latency`); the selection adds none.

    Parameters
    ----------
    lanes : int
        V: a lane count :class:`~qmac.hw.int_datapath.dot_product.DotProduct` accepts, and even (an INT8 beat holds whole
        groups of two kept weights).
    modes : tuple of str
        Non-empty tuple of distinct names from ``("int8", "int4")``.
    tree_levels_per_stage : int
        1..8, as :class:`~qmac.hw.int_datapath.dot_product.DotProduct`.

    Members
    -------
    w : In(ArrayLayout(8, V))
        Kept weights, packed as dense weight lanes: kept element ``e`` in field ``e % per_lane`` of lane
        ``e // per_lane``; elements ``2g``, ``2g + 1`` are the two of group ``g``.
    meta : In(ArrayLayout(2, 2V))
        Index of each kept element within its group (INT8 mode reads entries ``0 .. V-1`` only).
    a : In(ArrayLayout(8, 2V))
        Dense activation lanes: dense positions ``4g .. 4g + 3`` are group ``g``.
    int4 : In(1)
        Present only when both modes are built: 1 selects INT4; sampled with the operands.
    sum : Out(signed)
        Exact sum, ``latency`` cycles after its operands; the format of the DotProduct's ``sum``.

    Raises
    ------
    ConfigError
        (a ``ValueError``) from the DotProduct or the selection, naming the value out of range.
    """

    def __init__(self, lanes, modes, tree_levels_per_stage=2):
        self._dot = DotProduct(lanes, modes, tree_levels_per_stage)
        self._select = Sparse24Select(lanes, modes)
        ports = {"w": In(data.ArrayLayout(8, lanes)), "meta": In(data.ArrayLayout(2, 2 * lanes)),
                 "a": In(data.ArrayLayout(8, 2 * lanes)), "sum": Out(signed(self._dot.format.bits))}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def lanes(self):
        return self._dot.lanes

    @property
    def format(self):
        """Format of ``sum`` (exact for every operand value)."""
        return self._dot.format

    @property
    def latency(self):
        return self._dot.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.select = select = self._select
        m.submodules.dot = dot = self._dot
        m.d.comb += [select.a.eq(self.a), select.meta.eq(self.meta),
                     dot.w.eq(self.w), dot.a.eq(select.a_sel), self.sum.eq(dot.sum)]
        if "int4" in self.signature.members:
            m.d.comb += [select.int4.eq(self.int4), dot.int4.eq(self.int4)]
        return m
