"""The INT datapath inside one MAC unit: the (scaled) partial sum of each beat, accumulated exactly or
saturating."""

from amaranth.hdl import Cat, Mux
from amaranth.lib import data

from qmac.hw.spec.formats import mode_flags
from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.int_datapath.sparse24_select import Sparse24Select
from qmac.hw.int_datapath.vector_scale import VectorScale
from qmac.hw.local_register import LocalRegister
from qmac.hw.ops import AmaranthOps, delay

__all__ = ["IntBeatSum"]


class IntBeatSum:
    """What a :class:`~qmac.hw.array.mac_unit.MacUnit` of an INT build (:class:`~qmac.hw.spec.datapath.IntDatapath`)
    computes per beat: one :class:`DotProduct` per scale group of ``group_lanes`` lanes (one over all V lanes
    without scale units), in a sparse build after a :class:`Sparse24Select`; with scale units the group
    sums and the scale products ``ScaleFormat.product(sw[g], sa[g])`` (computed from a local copy of the
    scale fields, a :class:`~qmac.hw.local_register.LocalRegister`, and delayed beside the group sums) meet
    in a :class:`VectorScale`. The sum of the beat that entered ``config.dot_latency`` cycles earlier is
    accumulated::

        acc <= (first ? 0 : acc) + sum          (exact, or saturated to acc_bits: clipped)

    Not a component: :meth:`accumulate` adds its parts to the unit's module, under the unit's ports.

    Parameters
    ----------
    config : CoreConfig
    """

    def __init__(self, config):
        self._config = config
        self._dots = [DotProduct(config.group_lanes, config.modes, config.tree_levels_per_stage,
                                 multiplier=config.multiplier) for _ in range(config.scale_groups)]
        self._scale = VectorScale(config) if config.scale_bits else None
        self._select = Sparse24Select(config.lanes, config.modes) if config.sparse else None

    def _sum(self, m, unit):
        """The (scaled) partial sum of the beat that entered ``dot_latency`` cycles ago."""
        cfg = self._config
        L = cfg.group_lanes
        k = 1 if self._select is not None else cfg.activation_lanes // cfg.lanes   # activation lanes per lane
        a = unit.a
        if self._select is not None:
            m.submodules.select = sel = self._select
            m.d.comb += [sel.a.eq(unit.a), sel.meta.eq(unit.meta)]
            if cfg.dual:
                m.d.comb += sel.int4.eq(unit.int4)
            a = sel.a_sel
        for g, dot in enumerate(self._dots):
            m.submodules[f"dot{g}"] = dot
            m.d.comb += [dot.w.eq(Cat(unit.w[g * L + i] for i in range(L))),
                         dot.a.eq(Cat(a[g * L * k + i] for i in range(L * k)))]
            for flag in mode_flags(cfg.modes):
                m.d.comb += getattr(dot, flag).eq(getattr(unit, flag))
            if cfg.multiplier_class.corrections:
                m.d.comb += [dot.ca.eq(unit.ca[g]), dot.cw.eq(unit.cw[g])]
        if self._scale is None:
            return self._dots[0].sum
        m.submodules.scale = self._scale
        fmt = cfg.scale_format
        # The scale fields come from far away (shared by a row or a column of units): a local copy
        # first, then the product, then registers to align it with the group sums.
        layout = unit.sw.shape()
        m.submodules.scales = scales = LocalRegister(2 * layout.size)
        m.d.comb += scales.d.eq(Cat(unit.sw, unit.sa))
        sw, sa = data.View(layout, scales.q[:layout.size]), data.View(layout, scales.q[layout.size:])
        product = Cat(fmt.product(sw[g], sa[g], AmaranthOps)[:fmt.product_bits] for g in range(cfg.scale_groups))
        # aligned with the group sums
        product = delay(m, product, self._dots[0].latency - scales.latency, "product", reset_less=False)
        m.d.comb += [self._scale.psum.eq(Cat(dot.sum for dot in self._dots)),
                     self._scale.product.eq(product)]
        return self._scale.sum

    def accumulate(self, m, unit, acc):
        """``(next acc, clipped)``: the accumulator's next value when ``unit.acc_en`` is high, and whether it
        saturated (``0`` with exact accumulators)."""
        cfg = self._config
        total = Mux(unit.first, 0, acc) + self._sum(m, unit)
        if cfg.saturating:
            return cfg.acc_format.saturate(total, AmaranthOps)
        return total, 0
