"""A V-lane dot-product unit: one vector pair per cycle, fully pipelined."""

import math

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.checks import GROUP_LANES, ConfigError
from qmac.hw.spec.formats import ELEMENT_FORMATS, IntFormat, lane_range, mode_flags
from qmac.hw.spec.multipliers import MULTIPLIERS
from qmac.hw.lanes import LANE_UNITS
from qmac.hw.lanes.lane_pair_product import LanePairProduct
from qmac.hw.lanes.winograd_pair_product import WinogradPairProduct, winograd_correction_format

__all__ = ["DotProduct"]


class DotProduct(wiring.Component):
    """``sum`` = the exact sum over V lanes of the lane product :class:`LaneProduct` defines (INT8:
    ``sum w_i*a_i`` over V elements; INT4 and W4A8: over 2V elements), computed by the ``multiplier``'s lanes:
    :class:`LaneProduct` (``"logic"``), :class:`PipelinedLaneProduct` (``"logic_pipelined"``),
    :class:`LanePairProduct` (``"sb_mac16"``, two lanes per SB_MAC16;
    an odd last lane uses half of one), :class:`PackedLaneProduct` (``"mult18"``, one MULT18X18D each) or
    :class:`WinogradPairProduct` (``"mult18_fip"``, one MULT18X18D per two lanes).

    A multiplier with :attr:`~qmac.hw.spec.multipliers.Multiplier.corrections` (``"mult18_fip"``, Winograd's
    fast inner product) sums the V/2 pair terms and subtracts the operands'
    corrections ``ca + cw`` (:class:`~qmac.hw.lanes.winograd_correction.WinogradCorrection` of ``a`` and of
    ``w``), which the user computes once per activation and weight vector and presents
    :attr:`correction_delay` cycles after the operands. The subtraction is the adder tree's last level
    (the pair terms need one level fewer than V lanes), so the latency is the same as with V lanes. Every
    partial sum is kept modulo ``2**bits`` of ``sum``'s format: the pair terms and their sums may exceed
    that range, the final difference does not, so it is exact.

    Pipeline: the lane products are registered, then a binary adder tree registers every
    ``tree_levels_per_stage`` levels, the last stage being ``sum`` itself. Latency is
    ``1 + L + ceil(log2(V) / tree_levels_per_stage)`` cycles (:attr:`latency`), ``L`` the lanes' own
    stages (:attr:`Multiplier.stages <qmac.hw.spec.multipliers.Multiplier.stages>`: 5 for ``"mult18"``, 6 for
    ``"mult18_fip"``, 1 for ``"logic_pipelined"``, else 0); one vector pair enters per cycle. Every register advances
    together; wrap the unit in ``EnableInserter`` to stall it. The data registers have no reset (their
    contents matter only beside valid flags kept by the user; a reset reaching every one of them is
    the widest net of an FPGA build).

    Parameters
    ----------
    lanes : int
        V: 1, 2, 4, 8, 16, 32 or 64 (at least the multiplier's ``min_group_lanes``: 2 for ``"mult18_fip"``).
    modes : tuple of str
        As :class:`LaneProduct`.
    tree_levels_per_stage : int
        1..8.
    multiplier : str
        ``"logic"`` (default), ``"logic_pipelined"``, ``"sb_mac16"``, ``"mult18"`` or ``"mult18_fip"``
        (:data:`qmac.hw.spec.multipliers.MULTIPLIERS`; the lanes are :data:`qmac.hw.lanes.LANE_UNITS`).

    Members
    -------
    w : In(ArrayLayout(8, V))
    a : In(ArrayLayout(8, V)), or In(ArrayLayout(8, 2V)) with W4A8 built
        Operand lanes; lane ``i`` of ``w`` meets lane ``i`` of ``a`` (with W4A8 built, lanes ``2i`` and
        ``2i + 1``: the lane's two multiplicands, as
        :class:`~qmac.hw.lanes.lane_multiplicands.LaneMultiplicands` forms them from the payload).
    int4, w4a8 : In(1)
        Mode flags (:func:`~qmac.hw.spec.formats.mode_flags`), present with that mode built beside others;
        sampled with the operands.
    ca, cw : In(signed)
        Present only with a multiplier that has ``corrections`` (``"mult18_fip"``): the corrections of the operands of :attr:`correction_delay`
        cycles earlier, format :attr:`correction_format`.
    sum : Out(signed)
        Exact partial sum, ``latency`` cycles after its operands.
    """

    def __init__(self, lanes, modes, tree_levels_per_stage=2, multiplier="logic"):
        if lanes not in GROUP_LANES:
            raise ConfigError(f"dot-product lanes must be one of {', '.join(map(str, GROUP_LANES))}, not {lanes!r}")
        if not isinstance(tree_levels_per_stage, int) or not 1 <= tree_levels_per_stage <= 8:
            raise ConfigError(f"tree_levels_per_stage must be an integer 1..8, not {tree_levels_per_stage!r}")
        if not isinstance(multiplier, str) or multiplier not in MULTIPLIERS:
            raise ConfigError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {multiplier!r}")
        kind = MULTIPLIERS[multiplier]
        if lanes < kind.min_group_lanes:
            raise ConfigError(f"dot-product lanes must be at least {kind.min_group_lanes} with the {multiplier} "
                              f"multiplier, not {lanes!r}")
        if "w4a8" in modes and not kind.w4a8:
            raise ConfigError(f"multiplier must be one of {', '.join(n for n, k in MULTIPLIERS.items() if k.w4a8)} "
                              f"with mode w4a8, not {multiplier!r}")
        self._units = [LANE_UNITS[kind](modes) for _ in range(-(-lanes // kind.lanes_per_block))]
        self._lane = self._units[0]
        self._multiplier = multiplier
        self._kind = kind
        self._lanes = lanes
        self._levels_per_stage = tree_levels_per_stage
        lo, hi = lane_range(modes)
        self._format = IntFormat.for_range(lanes * lo, lanes * hi)
        self._a_lanes = max(ELEMENT_FORMATS[m].activation_lanes for m in modes)
        ports = {"w": In(data.ArrayLayout(8, lanes)), "a": In(data.ArrayLayout(8, lanes * self._a_lanes)),
                 "sum": Out(signed(self._format.bits))}
        if kind.corrections:
            self._correction_format = winograd_correction_format(lanes, modes)
            ports["ca"] = In(signed(self._correction_format.bits))
            ports["cw"] = In(signed(self._correction_format.bits))
        for flag in mode_flags(modes):
            ports[flag] = In(1)
        super().__init__(ports)

    @property
    def lanes(self):
        return self._lanes

    @property
    def format(self):
        """Format of ``sum`` (exact for every operand value)."""
        return self._format

    @property
    def multiplier(self):
        return self._multiplier

    @property
    def correction_format(self):
        """With ``corrections`` (``"mult18_fip"``) only: format of ``ca`` and ``cw`` (:class:`WinogradCorrection`'s ``sum``)."""
        return self._correction_format

    @property
    def correction_delay(self):
        """With ``corrections`` (``"mult18_fip"``) only: cycles from the operands to their corrections on ``ca``, ``cw``."""
        return self.latency - 2

    @property
    def latency(self):
        return 1 + self._kind.stages + math.ceil(int(math.log2(self._lanes)) / self._levels_per_stage)

    def _activations(self, i):
        """The activation lane(s) weight lane ``i`` meets: lane ``i``, or with W4A8 built lanes ``2i``, ``2i + 1``."""
        k = self._a_lanes
        return self.a[i] if k == 1 else Cat(self.a[k * i + j] for j in range(k))

    def elaborate(self, platform):
        m = Module()
        products = []
        for i, unit in enumerate(self._units):
            m.submodules[f"lane{i}"] = unit
            for flag in mode_flags(self._lane.modes):
                m.d.comb += getattr(unit, flag).eq(getattr(self, flag))
            if isinstance(unit, WinogradPairProduct):
                m.d.comb += [unit.w.eq(Cat(self.w[2 * i], self.w[2 * i + 1])),
                             unit.a.eq(Cat(self.a[2 * i], self.a[2 * i + 1]))]
                products.append(unit.p)
            elif isinstance(unit, LanePairProduct):
                for j in range(2):
                    if 2 * i + j < self._lanes:   # else the half stays zero and unused
                        m.d.comb += [unit.w[j].eq(self.w[2 * i + j]), unit.a[j].eq(self._activations(2 * i + j))]
                        products.append(unit.p[j])
            else:
                m.d.comb += [unit.w.eq(self.w[i]), unit.a.eq(self._activations(i))]
                products.append(unit.p)
        bits = self._format.bits   # every partial sum modulo 2**bits (see the class docstring)
        level = []
        for i, product in enumerate(products):
            p = Signal(signed(min(len(product), bits)), name=f"p{i}", reset_less=True)
            m.d.sync += p.eq(product)
            level.append(p)
        correct = self._kind.corrections   # the last level subtracts the corrections
        if correct:
            c = Signal(signed(bits), reset_less=True)   # ca + cw, read by the last level
            m.d.sync += c.eq(self.ca + self.cw)
        depth = 0
        while len(level) > 1 or correct:
            depth += 1
            if len(level) > 1:
                level = [level[j] + level[j + 1] for j in range(0, len(level), 2)]
            else:
                level, correct = [level[0] - c], False
            if depth % self._levels_per_stage == 0 or len(level) == 1 and not correct:
                regs = []
                for j, v in enumerate(level):
                    r = Signal(signed(min(len(v), bits)), name=f"t{depth}_{j}", reset_less=True)
                    m.d.sync += r.eq(v)
                    regs.append(r)
                level = regs
        m.d.comb += self.sum.eq(level[0])
        return m
