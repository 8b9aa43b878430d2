"""One processing element of the MAC array: a dot-product unit, its accumulator and its shadow register."""

from amaranth.hdl import EnableInserter, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError, CoreConfig
from .dot_product import DotProduct
from .ops import AmaranthOps

__all__ = ["MacUnit", "mac_unit_signature"]


def mac_unit_signature(config):
    """Ports of :class:`MacUnit` for ``config`` (also the port list of its emitted Verilog module)."""
    acc = signed(config.acc_format.bits)
    ports = {
        "w": In(data.ArrayLayout(8, config.lanes)), "a": In(data.ArrayLayout(8, config.lanes)),
        "en": In(1), "acc_en": In(1), "first": In(1), "last": In(1), "shift": In(1),
        "shadow_in": In(acc), "shadow_sat_in": In(1),
        "shadow": Out(acc), "shadow_sat": Out(1), "clipped": Out(1),
    }
    if config.dual:
        ports["int4"] = In(1)
    return wiring.Signature(ports)


class MacUnit(wiring.Component):
    """Accumulates dot products of one weight and one activation vector stream.

    Each cycle with ``en`` high the dot-product pipeline advances; ``sum`` of the vector pair that entered
    ``config.dot_latency`` advancing cycles earlier is then accumulated when ``acc_en`` is high::

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
    w, a : In(ArrayLayout(8, V))
    int4 : In(1)
        Present only with both INT modes built.
    en, acc_en, first, last, shift : In(1)
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
        self._dot = DotProduct(config.lanes, config.modes, config.tree_levels_per_stage)
        super().__init__(mac_unit_signature(config))

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.dot = EnableInserter(self.en)(self._dot)
        m.d.comb += [self._dot.w.eq(self.w), self._dot.a.eq(self.a)]
        if cfg.dual:
            m.d.comb += self._dot.int4.eq(self.int4)

        acc_fmt = cfg.acc_format
        acc = Signal(signed(acc_fmt.bits))
        sat = Signal()
        total = Mux(self.first, 0, acc) + self._dot.sum
        if cfg.saturating:
            nxt, clipped = acc_fmt.saturate(total, AmaranthOps)
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
