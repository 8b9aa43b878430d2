"""One processing element of the MAC array: a dot-product unit, its accumulator and its shadow register."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.spec.formats import mode_flags
from qmac.hw.spec.layouts import accumulator_shape
from qmac.hw.int_datapath.dot_product import DotProduct
from qmac.hw.local_register import LocalRegister
from qmac.hw.log_datapath.log_dot_product import LogDotProduct
from qmac.hw.ops import AmaranthOps, delay
from qmac.hw.int_datapath.sparse24_select import Sparse24Select
from qmac.hw.int_datapath.vector_scale import VectorScale
from qmac.hw.lanes.winograd_pair_product import winograd_correction_format

__all__ = ["MacUnit", "mac_unit_signature", "winograd_correction_delay"]


def mac_unit_signature(config):
    """Ports of :class:`MacUnit` for ``config`` (also the port list of its emitted Verilog module)."""
    acc = accumulator_shape(config)
    a_lanes = config.activation_lanes
    ports = {
        "w": In(data.ArrayLayout(8, config.lanes)), "a": In(data.ArrayLayout(8, a_lanes)),
        "acc_en": In(1), "first": In(1), "last": In(1), "shift": In(1),
        "shadow_in": In(acc), "shadow_sat_in": In(1),
        "shadow": Out(acc), "shadow_sat": Out(1), "clipped": Out(1),
    }
    for flag in mode_flags(config.modes):
        ports[flag] = In(1)
    if config.scale_bits:
        scales = data.ArrayLayout(config.scale_bits, config.scale_groups)
        ports["sw"] = In(scales)
        ports["sa"] = In(scales)
    if config.sparse:
        ports["meta"] = In(data.ArrayLayout(2, 2 * config.lanes))
    if config.multiplier == "mult18_fip":
        bits = winograd_correction_format(config.group_lanes, config.modes).bits
        corrections = data.ArrayLayout(signed(bits), config.scale_groups)
        ports["ca"] = In(corrections)
        ports["cw"] = In(corrections)
    return wiring.Signature(ports)


def winograd_correction_delay(config):
    """Cycles from a unit's operands to their Winograd corrections on ``ca``, ``cw`` (``"mult18_fip"``): its
    :class:`DotProduct`'s ``correction_delay``, the dot latency (without the scale unit's stage) less 2."""
    return config.dot_latency - (1 if config.scale_bits else 0) - 2


class MacUnit(wiring.Component):
    """Accumulates dot products of one weight and one activation vector stream.

    The dot-product pipeline advances every cycle (it never stalls); ``sum`` of the vector pair that entered
    ``config.dot_latency`` cycles earlier is accumulated when ``acc_en`` is high.

    LNS builds: ``sum`` is the vector of ``2**F`` fraction-bucket sums of one :class:`LogDotProduct`
    over all ``elements_per_beat`` codes (its scale inputs, one per group, are the signed sums
    ``ScaleFormat.product(sw[g], sa[g])``), and each bucket accumulates exactly as below (never
    saturating); the combine happens per column after the drain (:class:`qmac.hw.log_datapath.log_combine.LogCombine`).

    Without scale units ``sum`` is one :class:`DotProduct` over all V lanes. With them, each of the G
    groups of ``group_lanes`` lanes has its own :class:`DotProduct`; the group sums and the scale
    products ``ScaleFormat.product(sw[g], sa[g])`` (computed from a local copy of the scale fields, a
    :class:`~qmac.hw.local_register.LocalRegister`, and delayed beside the group sums) meet in a :class:`VectorScale`::

        acc <= (first ? 0 : acc) + sum          (exact, or saturated to acc_bits)
        sat <= (first ? 0 : sat) | clipped      (sticky per tile)

    With ``last`` also high the new value moves to the shadow register (``shadow``, ``shadow_sat``).
    ``shift`` loads the shadow register from ``shadow_in``/``shadow_sat_in`` (the unit below it in the
    column) when no load happens; the array uses this to drain a tile one row per cycle.

    Parameters
    ----------
    config : CoreConfig

    Members
    -------
    w : In(ArrayLayout(8, V))
    a : In(ArrayLayout(8, activation_lanes))
        V lanes, or 2V in sparse and W4A8 builds (W4A8: weight lane ``i`` meets lanes ``2i``, ``2i + 1``).
    int4, w4a8 : In(1)
        Mode flags (:func:`~qmac.hw.spec.formats.mode_flags`), present with that mode built beside others.
    sw, sa : In(ArrayLayout(unsigned(S), G))
        Present only with scale units: the weight and activation vectors' scale fields, one per group.
    ca, cw : In(ArrayLayout(signed, G))
        Present only with ``multiplier = "mult18_fip"``: per group, the Winograd corrections
        (:class:`~qmac.hw.lanes.winograd_correction.WinogradCorrection`) of the activation and the weight vector,
        :func:`winograd_correction_delay` cycles after the vectors (the array computes them once per column
        and per row).
    meta : In(ArrayLayout(2, 2V))
        Present only in sparse builds: ``w`` holds kept 2:4 weights, ``meta`` their indices and ``a`` 2V
        lanes of dense activations, and a :class:`Sparse24Select` picks the activation each kept weight
        multiplies. A dense tile is the special case of indices (0, 1) in every group with the activations
        laid out to match (the driver does this), so a sparse build needs no dense bypass.
    acc_en, first, last, shift : In(1)
    shadow_in : In(signed(acc_bits))
    shadow_sat_in : In(1)
    shadow : Out(signed(acc_bits))
    shadow_sat : Out(1)
    clipped : Out(1)
        The accumulator saturated this cycle (combinational; 0 with exact accumulators).
    """

    def __init__(self, config):
        if not isinstance(config, CoreConfig):
            raise ConfigError(f"MacUnit needs a CoreConfig, not {config!r}")
        self._config = config
        self._log_dot = LogDotProduct(
            config.elements_per_beat(config.modes[0]), config.log_format, config.log_organisation,
            scale_bits=config.scale_bits + 1 if config.scale_bits else 0, scale_groups=config.scale_groups,
            q_floor=config.q_floor) if config.lns else None
        self._dots = [DotProduct(config.group_lanes, config.modes, config.tree_levels_per_stage, multiplier=config.multiplier)
                      for _ in range(0 if config.lns else config.scale_groups)]
        self._scale = VectorScale(config) if config.scale_bits and not config.lns else None
        self._select = Sparse24Select(config.lanes, config.modes) if config.sparse else None
        super().__init__(mac_unit_signature(config))

    @property
    def config(self):
        return self._config

    def _log_sums(self, m):
        """The LNS datapath: bucket sums of the beat that entered ``dot_latency`` cycles ago."""
        cfg, dot = self._config, self._log_dot
        m.submodules.dot = dot
        m.d.comb += [dot.w.eq(self.w), dot.a.eq(self.a)]
        if cfg.scale_bits:
            fmt = cfg.scale_format
            m.d.comb += [dot.scale[g].eq(fmt.product(self.sw[g], self.sa[g], AmaranthOps))
                         for g in range(cfg.scale_groups)]
        return [dot.sums[r] for r in range(cfg.log_format.buckets)]

    def _int_sum(self, m):
        """The INT datapath: the (scaled) partial sum of the beat that entered ``dot_latency`` cycles ago."""
        cfg = self._config
        L = cfg.group_lanes
        k = 1 if self._select is not None else cfg.activation_lanes // cfg.lanes   # activation lanes per lane
        a = self.a
        if self._select is not None:
            m.submodules.select = sel = self._select
            m.d.comb += [sel.a.eq(self.a), sel.meta.eq(self.meta)]
            if cfg.dual:
                m.d.comb += sel.int4.eq(self.int4)
            a = sel.a_sel
        for g, dot in enumerate(self._dots):
            m.submodules[f"dot{g}"] = dot
            m.d.comb += [dot.w.eq(Cat(self.w[g * L + i] for i in range(L))),
                         dot.a.eq(Cat(a[g * L * k + i] for i in range(L * k)))]
            for flag in mode_flags(cfg.modes):
                m.d.comb += getattr(dot, flag).eq(getattr(self, flag))
            if cfg.multiplier == "mult18_fip":
                m.d.comb += [dot.ca.eq(self.ca[g]), dot.cw.eq(self.cw[g])]
        if self._scale is None:
            psum = self._dots[0].sum
        else:
            m.submodules.scale = self._scale
            fmt = cfg.scale_format
            # The scale fields come from far away (shared by a row or a column of units): a local copy
            # first, then the product, then registers to align it with the group sums.
            layout = self.sw.shape()
            m.submodules.scales = scales = LocalRegister(2 * layout.size)
            m.d.comb += scales.d.eq(Cat(self.sw, self.sa))
            sw, sa = data.View(layout, scales.q[:layout.size]), data.View(layout, scales.q[layout.size:])
            product = Cat(fmt.product(sw[g], sa[g], AmaranthOps)[:fmt.product_bits] for g in range(cfg.scale_groups))
            # aligned with the group sums
            product = delay(m, product, self._dots[0].latency - scales.latency, "product", reset_less=False)
            m.d.comb += [self._scale.psum.eq(Cat(dot.sum for dot in self._dots)),
                         self._scale.product.eq(product)]
            psum = self._scale.sum
        return psum

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        acc = Signal(accumulator_shape(cfg))
        sat = Signal()
        if cfg.lns:
            nxt = Signal.like(acc)
            m.d.comb += [nxt[r].eq(Mux(self.first, 0, acc[r]) + s) for r, s in enumerate(self._log_sums(m))]
            clipped = 0
        else:
            total = Mux(self.first, 0, acc) + self._int_sum(m)
            if cfg.saturating:
                nxt, clipped = cfg.acc_format.saturate(total, AmaranthOps)
            else:
                nxt, clipped = total, 0
        sat_next = Mux(self.first, 0, sat) | clipped
        m.d.comb += self.clipped.eq(self.acc_en & clipped)
        with m.If(self.acc_en):
            m.d.sync += [acc.eq(nxt), sat.eq(sat_next)]
        with m.If(self.acc_en & self.last):
            m.d.sync += [self.shadow.eq(nxt), self.shadow_sat.eq(sat_next)]
        with m.Elif(self.shift):
            m.d.sync += [self.shadow.eq(self.shadow_in), self.shadow_sat.eq(self.shadow_sat_in)]
        return m
