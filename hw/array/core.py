"""The top level of a generated core: the MAC array plus its control and status interface."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import MODE_CODES, ConfigError, CoreConfig
from qmac.hw.spec.formats import mode_flags
from qmac.hw.array.datapaths import hardware
from qmac.hw.spec.layouts import LOG_SHIFT_BITS
from qmac.hw.array.mac_array import MacArray
from qmac.hw.output.output_stage import OutputStage

__all__ = ["Core", "control_signature", "status_signature", "COUNTER_BITS"]

#: Width of the cycle and MAC counters (they wrap modulo 2**48).
COUNTER_BITS = 48


def control_signature(config):
    """Control inputs, seen from the host: ``mode`` (a ``MODE_CODES`` value; 2 bits, 3 with W4A8 built,
    whose code is 4), ``sparse`` (2:4 compressed
    weights) and ``k_beats_m1`` are sampled at each tile's first beat; ``clear`` (one cycle) zeroes the
    counters and sticky flags; with ``log_output``, ``log_shift`` (signed, units of ``2**-F``) is the
    exponent subtracted from each result before it is encoded (hold it while results are produced)."""
    ports = {
        "mode": Out(config.ctrl_mode_bits),
        "sparse": Out(1),
        "k_beats_m1": Out(config.k_bits),
        "clear": Out(1),
    }
    if config.log_output:
        ports["log_shift"] = Out(signed(LOG_SHIFT_BITS))
    return wiring.Signature(ports)


def status_signature():
    """Status outputs: ``busy``; sticky ``overflow`` (an accumulator saturated) and ``error`` (a tile
    started with a mode, or sparsity, the build lacks; it then runs in the build's first mode, dense);
    ``cycles`` counts cycles with ``busy`` high, ``macs`` the dense-equivalent multiply-accumulates issued
    (``R*C*elements_per_beat`` per beat, twice that for a sparse beat, padding included; a beat is counted
    one cycle after it is taken, while ``busy`` is still high)."""
    return wiring.Signature({
        "busy": Out(1),
        "overflow": Out(1),
        "error": Out(1),
        "cycles": Out(COUNTER_BITS),
        "macs": Out(COUNTER_BITS),
    })


class Core(wiring.Component):
    """A qmac core. Port map (Verilog names in ``docs/architecture.md``):

    Members
    -------
    w : In(stream.Signature(operand_layout(config, rows)))
        Weight beats: one V-lane vector per array row.
    a : In(stream.Signature(operand_layout(config, cols)))
        Activation beats: one V-lane vector per array column.
    y : Out(stream.Signature(result_layout(config)))
        Result rows of finished tiles, row 0 first; with the output stage,
        ``output_layout(config)`` (the same fields plus the requantized codes). An LNS core's array
        drains its bucket accumulators through the datapath's post-array stage
        (:attr:`~qmac.hw.array.datapaths.DatapathHardware.post_array`, for LNS a :class:`LogCombine`) first, so ``data`` holds the
        linear fixed-point results (``value = data * 2**LogSum.result_exponent``).
    requant : In(stream.Signature(PARAMS))
        Only with the output stage: one output channel's requantization parameters per result row,
        in result-row order.
    ctrl : In(control_signature(config))
    status : Out(status_signature())

    Clock ``clk``, synchronous active-high reset ``rst``; every register, including the counters,
    resets to zero.

    Parameters
    ----------
    config : CoreConfig
    unit_module : str or None
        As :class:`MacArray`: instantiate the processing elements as this (separately emitted) Verilog
        module instead of elaborating each one.
    """

    def __init__(self, config, unit_module=None):
        if not isinstance(config, CoreConfig):
            raise ConfigError(f"Core needs a CoreConfig, not {config!r}")
        self._config = config
        self._array = MacArray(config, unit_module)
        post_array = hardware(config).post_array
        self._combine = post_array(config) if post_array else None
        self._output = OutputStage(config) if config.output_stage else None
        last = self._output.o if self._output else self._combine.o if self._combine else self._array.y
        ports = {
            "w": In(self._array.w.signature.flip()),
            "a": In(self._array.a.signature.flip()),
            "y": Out(last.signature),
            "ctrl": In(control_signature(config)),
            "status": Out(status_signature()),
        }
        if self._output:
            ports["requant"] = In(self._output.params.signature.flip())
        super().__init__(ports)

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from a tile's last beat to its first result row (through the combine and output stages
        when built)."""
        return sum(u.latency for u in (self._array, self._combine, self._output) if u)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        m.submodules.array = array = self._array
        wiring.connect(m, wiring.flipped(self.w), array.w)
        wiring.connect(m, wiring.flipped(self.a), array.a)
        rows, busy = array.y, array.busy
        if self._combine:
            m.submodules.combine = combine = self._combine
            wiring.connect(m, rows, combine.i)
            if cfg.log_output:
                m.d.comb += combine.log_shift.eq(self.ctrl.log_shift)
            rows, busy = combine.o, busy | combine.busy
        if self._output:
            m.submodules.output = out = self._output
            wiring.connect(m, rows, out.i)
            wiring.connect(m, wiring.flipped(self.requant), out.params)
            rows, busy = out.o, busy | out.busy
        wiring.connect(m, rows, wiring.flipped(self.y))
        m.d.comb += array.k_beats_m1.eq(self.ctrl.k_beats_m1)

        # ``(x ^ k).any()`` rather than ``x == k``: Yosys writes ``x == 0`` as ``!x``, which Verilator
        # flags (WIDTHTRUNC).
        supported = Cat((self.ctrl.mode ^ MODE_CODES[name]).any() == 0 for name in cfg.modes).any()
        for flag in mode_flags(cfg.modes):
            m.d.comb += getattr(array, flag).eq(~(self.ctrl.mode ^ MODE_CODES[flag]).any())
        if cfg.sparse:
            m.d.comb += array.sparse.eq(self.ctrl.sparse)
        else:
            supported = supported & ~self.ctrl.sparse

        per_beat = {name: cfg.macs_per_cycle(name) for name in cfg.modes}
        step = per_beat[cfg.modes[0]]   # the first built mode unless a flag says otherwise
        for name in mode_flags(cfg.modes):
            step = Mux(getattr(array, f"fire_{name}"), per_beat[name], step)
        if cfg.sparse:
            step = Mux(array.fire_sparse, step * 2, step)

        # The MAC counter adds the step of the previous cycle's beat: fire (which depends on the tile length
        # compare) stays off the 48-bit carry chain.
        step_q = Signal(range(max(per_beat.values()) * (2 if cfg.sparse else 1) + 1))
        m.d.sync += step_q.eq(Mux(array.fire, step, 0))
        m.d.comb += self.status.busy.eq(busy)
        with m.If(self.ctrl.clear):
            m.d.sync += [self.status.overflow.eq(0), self.status.error.eq(0),
                         self.status.cycles.eq(0), self.status.macs.eq(0)]
        with m.Else():
            with m.If(array.clipped):
                m.d.sync += self.status.overflow.eq(1)
            with m.If(array.fire_first & ~supported):
                m.d.sync += self.status.error.eq(1)
            with m.If(busy):
                m.d.sync += self.status.cycles.eq(self.status.cycles + 1)
            m.d.sync += self.status.macs.eq(self.status.macs + step_q)
        return m
