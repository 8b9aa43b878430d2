"""The per-vector scale unit: scales each group's partial sum by its vector pair's scale factors."""

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.ops import AmaranthOps

__all__ = ["VectorScale"]


class VectorScale(wiring.Component):
    """``sum = sum over groups g of apply(psum[g], product[g])`` registered (latency 1 cycle).

    With ``int`` scales ``apply`` is ``psum * product`` where ``product = sw * sa`` (exact, unsigned
    ``2S`` bits); with ``pow2`` scales it is ``psum << product`` where ``product = sw + sa``.
    :class:`qmac.hw.spec.formats.ScaleFormat` defines both, for this unit and the golden model.

    Parameters
    ----------
    config : CoreConfig
        Must have scale units (``scale_bits > 0``).

    Members
    -------
    psum : In(ArrayLayout(signed(group bits), G))
        Exact partial sums of the G lane groups.
    product : In(ArrayLayout(unsigned(product bits), G))
        Combined scale factor of each group's weight and activation vectors (``ScaleFormat.product``).
    sum : Out(signed(psum_format.bits))
        Exact scaled sum, one cycle later.
    """

    def __init__(self, config):
        if not isinstance(config, CoreConfig) or not config.scale_bits:
            raise ConfigError(f"VectorScale needs a CoreConfig with scale_bits > 0, not {config!r}")
        self._config = config
        fmt = config.scale_format
        super().__init__({
            "psum": In(data.ArrayLayout(signed(config.group_format.bits), config.scale_groups)),
            "product": In(data.ArrayLayout(fmt.product_bits, config.scale_groups)),
            "sum": Out(signed(config.psum_format.bits)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self._config.scale_format
        terms = [fmt.apply(self.psum[g].as_signed(), self.product[g], AmaranthOps)
                 for g in range(self._config.scale_groups)]
        m.d.sync += self.sum.eq(sum(terms))
        return m
