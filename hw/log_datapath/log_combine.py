"""The combine stage of an LNS core: one tile's fraction-bucket accumulators to a linear fixed-point value."""

from amaranth.hdl import EnableInserter, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.spec.datapath import LogDatapath
from qmac.hw.ops import AmaranthOps, adder_tree
from qmac.hw.log_datapath.log_encode import LogEncode
from qmac.hw.spec.layouts import LOG_SHIFT_BITS, result_layout

__all__ = ["LogCombine", "times_constant"]

def times_constant(x, c):
    """``x * c`` for a constant ``c > 0``: shifted copies of ``x`` added and subtracted by the digits of
    ``c`` in non-adjacent form (at most ``bits(c)/2 + 1`` of them), summed by an adder tree."""
    terms, k = [], 0
    while c:
        if c & 1:
            digit = 2 - (c & 3)           # +1 when c = 1 mod 4, -1 when c = 3 mod 4
            terms.append(x << k if digit > 0 else -(x << k))
            c -= digit
        c >>= 1
        k += 1
    return adder_tree(terms)


class LogCombine(wiring.Component):
    """Converts each result row of bucket accumulators into C linear values, one row per cycle.

    For column ``c`` of a row, with the accumulators ``A_r`` of that column's unit and the constants
    ``C_r = round(2**(P + r/2**F))`` of ``config.log_sum``::

        data[c] = sum_r A_r * C_r          value = data[c] * 2**(q_min - P)   (LogSum.result_exponent)

    exactly (``config.acc_format`` is ``LogSum.result_format``); ``last`` and ``saturated`` pass through.
    Windowed (``window_bits``), each unit holds one ``(mantissa, exponent)`` pair and the first stage places
    it instead, ``data[c] = LogSum.window_place(mantissa, exponent)`` (a left shift by the exponent, then
    by the constant ``P - g``), of the same value and exponent.
    One stage multiplies (shift-adds by the digits of each constant), one sums. With ``log_output`` a
    :class:`LogEncode` per column then also rounds each value times ``2**(-log_shift / 2**F)`` to a code of
    the build's log format (``log``), 3 more stages. :attr:`latency` is 2, or 5 with ``log_output``. The
    stages advance whenever the output register is empty or taken, so the stage runs at one row per
    cycle under a ready consumer and loses nothing under back-pressure. There is one combine per column
    of the array, shared by its R units (they drain through it), instead of one per unit.

    Members
    -------
    i : In(stream.Signature(result_layout(config, buckets=True)))
    o : Out(stream.Signature(result_layout(config)))
    log_shift : In(signed(LOG_SHIFT_BITS))
        Only with ``log_output``: the exponent, in units of ``2**-F``, subtracted before encoding (sampled
        with each value as it enters the encoder).
    busy : Out(1)
        A row is inside the stage.
    """

    def __init__(self, config):
        if not isinstance(config, CoreConfig) or not isinstance(config.datapath, LogDatapath):
            raise ConfigError(f"LogCombine needs a CoreConfig with an LNS mode, not {config!r}")
        self._config = config
        spec = config.log_sum
        self._encoders = [LogEncode(config.log_format, config.acc_format.bits, spec.result_exponent, LOG_SHIFT_BITS)
                          for _ in range(config.cols)] if config.log_output else []
        ports = {
            "i": In(stream.Signature(result_layout(config, buckets=True))),
            "o": Out(stream.Signature(result_layout(config))),
            "busy": Out(1),
        }
        if config.log_output:
            ports["log_shift"] = In(signed(LOG_SHIFT_BITS))
        super().__init__(ports)

    @property
    def latency(self):
        return 2 + (self._encoders[0].latency if self._encoders else 0)

    def elaborate(self, platform):
        cfg = self._config
        spec = cfg.log_sum
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        product_shape = data.ArrayLayout(data.ArrayLayout(signed(cfg.acc_format.bits), len(spec.constants)),
                                         cfg.cols)
        products = Signal(product_shape)
        row = [Signal(result_layout(cfg), name=f"row_{stage}") for stage in range(self.latency)]
        valid = [Signal(name=f"valid_{stage}") for stage in range(self.latency)]
        with m.If(en):
            for c in range(cfg.cols):
                acc = self.i.payload.data[c]
                if spec.windowed:
                    m.d.sync += products[c][0].eq(spec.window_place(acc.mantissa, acc.exponent, AmaranthOps))
                else:
                    m.d.sync += [products[c][r].eq(times_constant(acc[r], const))
                                 for r, const in enumerate(spec.constants)]
                m.d.sync += row[1].data[c].eq(adder_tree([products[c][r] for r in range(len(spec.constants))]))
            m.d.sync += [valid[0].eq(self.i.valid), row[0].last.eq(self.i.payload.last),
                         valid[1].eq(valid[0]), row[1].last.eq(row[0].last)]
            for stage in range(2, self.latency):  # the result row waits beside the encoders
                m.d.sync += [valid[stage].eq(valid[stage - 1]), row[stage].eq(row[stage - 1])]
        for c, enc in enumerate(self._encoders):
            m.submodules[f"encode{c}"] = EnableInserter(en)(enc)
            m.d.comb += [enc.x.eq(row[1].data[c]), enc.shift.eq(self.log_shift), enc.valid.eq(valid[1]),
                         self.o.payload.log[c].eq(enc.code)]
        m.d.comb += [self.o.valid.eq(valid[-1]), self.o.payload.data.eq(row[-1].data),
                     self.o.payload.last.eq(row[-1].last), self.o.payload.saturated.eq(0),
                     self.busy.eq(sum(valid) != 0)]
        return m
