"""The LNS datapath inside one MAC unit: each beat's fraction-bucket sums, accumulated exactly per bucket (or
one windowed beat sum, accumulated in a block-floating pair)."""

from amaranth.hdl import Mux, Signal

from qmac.hw.log_datapath.log_dot_product import LogDotProduct
from qmac.hw.ops import AmaranthOps

__all__ = ["LogBeatSum"]


class LogBeatSum:
    """What a :class:`~qmac.hw.array.mac_unit.MacUnit` of an LNS build (:class:`~qmac.hw.spec.datapath.LogDatapath`)
    computes per beat: the ``2**F`` fraction-bucket sums of one :class:`LogDotProduct` over all
    ``elements_per_beat`` codes, its scale inputs (one per group) the signed sums
    ``ScaleFormat.product(sw[g], sa[g])``. Each bucket of the beat that entered ``dot_latency`` (2) cycles
    earlier accumulates exactly (the formats are :attr:`LogDatapath.bucket_format`, never saturating)::

        acc[r] <= (first ? 0 : acc[r]) + sums[r]

    Windowed (``window_bits``): the dot product gives one beat sum ``S`` and its anchor ``e``, and the
    accumulator is the pair ``(mantissa, exponent)`` (:attr:`LogDatapath.accumulator_shape`)::

        (mantissa, exponent) <= LogSum.window_accumulate(first ? (0, 0) : (mantissa, exponent), S, e)

    The combine happens per column after the drain (:class:`~qmac.hw.log_datapath.log_combine.LogCombine`).
    Not a component: :meth:`accumulate` adds the dot product to the unit's module, under the unit's ports.

    Parameters
    ----------
    config : CoreConfig
    """

    def __init__(self, config):
        self._config = config
        self._dot = LogDotProduct(
            config.elements_per_beat(config.modes[0]), config.log_format, config.datapath.organisation,
            scale_bits=config.scale_bits + 1 if config.scale_bits else 0, scale_groups=config.scale_groups,
            q_floor=config.q_floor, bucket_fraction_bits=config.bucket_fraction_bits,
            mantissa_bits=config.mantissa_bits or 0, window_bits=config.window_bits)

    def _sums(self, m, unit):
        """Bucket sums of the beat that entered ``dot_latency`` cycles ago."""
        cfg, dot = self._config, self._dot
        m.submodules.dot = dot
        m.d.comb += [dot.w.eq(unit.w), dot.a.eq(unit.a)]
        if cfg.scale_bits:
            fmt = cfg.scale_format
            m.d.comb += [dot.scale[g].eq(fmt.product(unit.sw[g], unit.sa[g], AmaranthOps))
                         for g in range(cfg.scale_groups)]
        return [dot.sums[r] for r in range(dot.log_sum.buckets)]

    def accumulate(self, m, unit, acc):
        """``(next acc, 0)``: every bucket's next value when ``unit.acc_en`` is high; never clipped."""
        nxt = Signal.like(acc)
        sums = self._sums(m, unit)
        spec = self._dot.log_sum
        if spec.windowed:
            mantissa, exponent = spec.window_accumulate(Mux(unit.first, 0, acc.mantissa),
                                                        Mux(unit.first, 0, acc.exponent), sums[0],
                                                        self._dot.anchor, AmaranthOps)
            m.d.comb += [nxt.mantissa.eq(mantissa), nxt.exponent.eq(exponent)]
            return nxt, 0
        m.d.comb += [nxt[r].eq(Mux(unit.first, 0, acc[r]) + s) for r, s in enumerate(sums)]
        return nxt, 0
