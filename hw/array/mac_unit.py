"""One processing element of the MAC array: a dot-product unit, its accumulator and its shadow register."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.spec.formats import mode_flags
from qmac.hw.spec.layouts import accumulator_shape
from qmac.hw.array.datapaths import hardware
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
    if config.shadow_banks == 2:
        ports["hold"] = In(1)
        ports["advance"] = In(1)
    if config.scale_bits:
        scales = data.ArrayLayout(config.scale_bits, config.scale_groups)
        ports["sw"] = In(scales)
        ports["sa"] = In(scales)
    if config.sparse:
        ports["meta"] = In(data.ArrayLayout(2, 2 * config.lanes))
    if config.multiplier_class.corrections:
        bits = winograd_correction_format(config.group_lanes, config.modes).bits
        corrections = data.ArrayLayout(signed(bits), config.scale_groups)
        ports["ca"] = In(corrections)
        ports["cw"] = In(corrections)
    return wiring.Signature(ports)


def winograd_correction_delay(config):
    """Cycles from a unit's operands to their Winograd corrections on ``ca``, ``cw`` (a multiplier with
    ``corrections``, ``"mult18_fip"``): its
    :class:`DotProduct`'s ``correction_delay``, the dot latency (without the scale unit's stage) less 2."""
    return config.dot_latency - (1 if config.scale_bits else 0) - 2


class MacUnit(wiring.Component):
    """Accumulates dot products of one weight and one activation vector stream.

    The dot-product pipeline advances every cycle (it never stalls); ``sum`` of the vector pair that entered
    ``config.dot_latency`` cycles earlier is accumulated when ``acc_en`` is high. What ``sum`` is and how it
    accumulates is the datapath's beat sum (:func:`qmac.hw.array.datapaths.hardware`):
    :class:`~qmac.hw.int_datapath.int_beat_sum.IntBeatSum` (dot products per scale group, scaled; exact or
    saturating) or :class:`~qmac.hw.log_datapath.log_beat_sum.LogBeatSum` (``2**F`` fraction buckets, each
    exact)::

        acc <= (first ? 0 : acc) + sum          (exact, or saturated to acc_bits)
        sat <= (first ? 0 : sat) | clipped      (sticky per tile)

    With ``last`` also high the new value moves to the shadow register (``shadow``, ``shadow_sat``).
    ``shift`` loads the shadow register from ``shadow_in``/``shadow_sat_in`` (the unit below it in the
    column) when no load happens; the array uses this to drain a tile one row per cycle.

    With ``config.shadow_banks = 2`` a second bank (``shadow_wait``, ``shadow_wait_sat``) holds a tile
    whose results land while the shadow register is still draining: with ``hold`` high the new value goes
    there instead, and ``advance`` moves it into the shadow register (at the edge the previous tile's
    last row leaves, in place of that ``shift``). The array never raises ``advance`` as a tile lands in
    the shadow register (``last`` without ``hold``).

    Parameters
    ----------
    config : CoreConfig

    Members
    -------
    w : In(ArrayLayout(8, V))
    a : In(ArrayLayout(8, activation_lanes))
        V lanes, or 2V in sparse and W4A8 builds (W4A8: weight lane ``i`` meets lanes ``2i``, ``2i + 1``, the
        multiplicands :class:`~qmac.hw.lanes.lane_multiplicands.LaneMultiplicands` forms once per column).
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
    hold, advance : In(1)
        Present only with ``shadow_banks = 2``: a tile's results land in the second bank; the second bank
        moves into the shadow register.
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
        self._beat_sum = hardware(config).beat_sum(config)
        super().__init__(mac_unit_signature(config))

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        acc = Signal(accumulator_shape(cfg))
        sat = Signal()
        nxt, clipped = self._beat_sum.accumulate(m, self, acc)
        sat_next = Mux(self.first, 0, sat) | clipped
        m.d.comb += self.clipped.eq(self.acc_en & clipped)
        with m.If(self.acc_en):
            m.d.sync += [acc.eq(nxt), sat.eq(sat_next)]
        land = self.acc_en & self.last
        if cfg.shadow_banks == 2:
            wait = Signal(accumulator_shape(cfg), name="shadow_wait")
            wait_sat = Signal(name="shadow_wait_sat")
            with m.If(land & self.hold):
                m.d.sync += [wait.eq(nxt), wait_sat.eq(sat_next)]
            land = land & ~self.hold
        with m.If(land):
            m.d.sync += [self.shadow.eq(nxt), self.shadow_sat.eq(sat_next)]
        if cfg.shadow_banks == 2:
            with m.Elif(self.advance):
                m.d.sync += [self.shadow.eq(wait), self.shadow_sat.eq(wait_sat)]
        with m.Elif(self.shift):
            m.d.sync += [self.shadow.eq(self.shadow_in), self.shadow_sat.eq(self.shadow_sat_in)]
        return m
