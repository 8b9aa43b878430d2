"""The core's output stage: result rows of raw accumulators plus their requantized codes, as a stream."""

from amaranth.hdl import EnableInserter, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.spec.layouts import output_layout, result_layout
from qmac.hw.output.requantize import PARAMS, Requantize

__all__ = ["OutputStage"]


class OutputStage(wiring.Component):
    """Joins each result row with its output channel's :data:`PARAMS` and requantizes it
    (:class:`Requantize`), passing the raw accumulators, ``last`` and ``saturated`` alongside.

    A row is taken when ``i`` and ``params`` are both valid and the pipeline can advance; the pipeline
    (:attr:`latency` stages) advances whenever its output register is empty or taken, so it runs at one
    row per cycle under a ready consumer and loses nothing under back-pressure.

    Members
    -------
    i : In(stream.Signature(result_layout(config)))
    params : In(stream.Signature(PARAMS))
    o : Out(stream.Signature(output_layout(config)))
    busy : Out(1)
        A row is inside the pipeline.
    """

    def __init__(self, config):
        if not isinstance(config, CoreConfig):
            raise ConfigError(f"OutputStage needs a CoreConfig, not {config!r}")
        self._config = config
        self._requantize = Requantize(config.acc_format.bits, config.cols, config.output_rounding)
        super().__init__({
            "i": In(stream.Signature(result_layout(config))),
            "params": In(stream.Signature(PARAMS)),
            "o": Out(stream.Signature(output_layout(config))),
            "busy": Out(1),
        })

    @property
    def latency(self):
        return self._requantize.latency

    def elaborate(self, platform):
        m = Module()
        rq = self._requantize
        en = Signal()
        m.submodules.requantize = EnableInserter(en)(rq)
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en & self.params.valid),
            self.params.ready.eq(en & self.i.valid),
            rq.i.acc.eq(self.i.payload.data),
            rq.i.params.eq(self.params.payload),
            rq.i.valid.eq(self.i.valid & self.params.valid),
        ]
        in_flight = Signal(range(rq.latency + 1))
        taken, delivered = en & self.i.valid & self.params.valid, self.o.valid & self.o.ready
        m.d.sync += in_flight.eq(in_flight + taken - delivered)
        m.d.comb += self.busy.eq(in_flight.any())
        side = self.i.payload
        for stage in range(rq.latency):  # raw row, last and saturated travel beside the requantizer
            delayed = Signal(result_layout(self._config), name=f"row_{stage}")
            with m.If(en):
                m.d.sync += delayed.eq(side)
            side = delayed
        m.d.comb += [
            self.o.valid.eq(rq.o.valid),
            self.o.payload.data.eq(side.data),
            self.o.payload.last.eq(side.last),
            self.o.payload.saturated.eq(side.saturated),
            *([self.o.payload.log.eq(side.log)] if self._config.log_output else []),
            self.o.payload.q.eq(rq.o.q),
            self.o.payload.clipped.eq(rq.o.clipped),
        ]
        return m
