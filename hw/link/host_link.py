"""A core that a host drives over a serial line: the top level of the FPGA builds."""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from qmac.hw.link.command_engine import CommandEngine
from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.array.core import Core
from qmac.hw.link.slip_decoder import SlipDecoder
from qmac.hw.link.slip_encoder import PACKET_BYTE_LAYOUT, SlipEncoder
from qmac.hw.link.uart import RX_LAYOUT, UART
from qmac.hw.spec.checks import is_int

__all__ = ["HostLink"]


def _feed(m, source, sink, gate=None):
    """Connect stream ``source`` to ``sink`` whose payloads differ only in type (a FIFO's plain bits
    against a layout); ``gate``, when given, must be high for beats to move."""
    ok = 1 if gate is None else gate
    m.d.comb += [sink.payload.eq(source.payload), sink.valid.eq(source.valid & ok),
                 source.ready.eq(sink.ready & ok)]


class HostLink(wiring.Component):
    """A :class:`~qmac.hw.array.core.Core` behind a UART command link (protocol: ``docs/host_link.md``).

    Receive path: :class:`~qmac.hw.link.uart.UART` -> receive queue (``receive_depth`` bytes) ->
    :class:`~qmac.hw.link.slip_decoder.SlipDecoder` -> :class:`~qmac.hw.link.command_engine.CommandEngine`, which
    answers through a two-byte reply queue, :class:`~qmac.hw.link.slip_encoder.SlipEncoder` and the UART. The engine fills a weight
    and an activation queue (``queue_depth`` beats each) that feed the core's ``w`` and ``a`` streams
    while the CONTROL ``hold`` flag is low; the core's result rows wait in a result queue
    (``queue_depth`` rows) until READ_Y takes them. A CLEAR request resets the core and the three queues
    (a clock domain ``core`` on the same clock, reset by a register set by ``rst`` or the request).

    With ``hold`` low throughout, the core starts as soon as both queues hold a beat; to measure the
    core's own throughput a host queues whole tiles with ``hold`` set and then clears it.

    With ``stream_stages``, each operand queue feeds the core through a two-entry
    :class:`~amaranth.lib.fifo.SyncFIFO` (after the ``hold`` gate, so it always drains), and the core's
    result rows enter the result queue through another: they take the block RAMs' slow outputs and the
    long wires from them off the core's paths at the cost of two entries per stream. They are
    unbuffered FIFOs on purpose: an entry is written when the stream before it is valid and it has room
    (its level, a register), and read by a two-way select on its read pointer, so a ``ready`` reaches
    only a level and a pointer. On the operand side the core's ``ready`` (the array's tile control)
    thus drives no payload-wide register enable (with buffered stages that enable was the V=8 ULX3S
    core's critical path); on the result side the array's drain enable (``y.ready``, which shifts every
    shadow register) comes from the stage's level through one gate instead of the result queue's
    level compare (the 100 MHz build's critical path without it).

    Parameters
    ----------
    config : CoreConfig
    divisor : int
        UART clock cycles per bit (:class:`~qmac.hw.link.uart.UART`).
    clock_hz : int
        The clock frequency, reported by INFO.
    max_payload : int
        Request payload buffer, bytes (:class:`~qmac.hw.link.command_engine.CommandEngine`).
    queue_depth : int
        Entries of each operand queue (beats) and of the result queue (rows).
    receive_depth : int
        Bytes the receive queue holds while the engine is busy.
    stream_stages : bool
        Two-entry FIFOs between the core and its queues (see above).
    unit_module : str or None
        As :class:`~qmac.hw.array.core.Core`.

    Members
    -------
    rx : In(1, init=1)
        Serial input (idle high).
    tx : Out(1, init=1)
        Serial output (idle high).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, config, *, divisor, clock_hz, max_payload=512, queue_depth=256, receive_depth=16,
                 stream_stages=False, unit_module=None):
        if not isinstance(config, CoreConfig):
            raise ConfigError(f"HostLink needs a CoreConfig, not {config!r}")
        if config.output_stage:
            raise ConfigError("HostLink does not feed the output stage's requant stream; build the core with "
                              "output_stage = false")
        for name, depth in (("queue_depth", queue_depth), ("receive_depth", receive_depth)):
            if not is_int(depth) or not 2 <= depth <= 65535:
                raise ValueError(f"{name} must be an integer from 2 to 65535, not {depth!r}")
        if not isinstance(stream_stages, bool):
            raise TypeError(f"stream_stages must be a bool, not {stream_stages!r}")
        self._uart = UART(divisor)
        self._engine = CommandEngine(config, max_payload=max_payload, w_depth=queue_depth, a_depth=queue_depth,
                                     y_depth=queue_depth, clock_hz=clock_hz, divisor=divisor)
        self._config = config
        self._queue_depth = queue_depth
        self._receive_depth = receive_depth
        self._stream_stages = stream_stages
        self._unit_module = unit_module
        super().__init__()

    @property
    def config(self):
        return self._config

    @property
    def info(self):
        """The INFO reply payload (bytes)."""
        return self._engine.info

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = self._uart
        m.submodules.engine = engine = self._engine
        m.submodules.receive_queue = rxq = SyncFIFOBuffered(width=RX_LAYOUT.size, depth=self._receive_depth)
        m.submodules.decoder = decoder = SlipDecoder()
        m.submodules.reply_queue = txq = SyncFIFOBuffered(width=PACKET_BYTE_LAYOUT.size, depth=2)
        m.submodules.encoder = encoder = SlipEncoder()
        m.d.comb += [uart.rx_pin.eq(self.rx), self.tx.eq(uart.tx_pin)]
        _feed(m, uart.rx, rxq.w_stream)
        _feed(m, rxq.r_stream, decoder.i)
        wiring.connect(m, decoder.o, engine.i)
        # The reply queue registers the path from the engine's byte select through the encoder's escape
        # check back to the engine's handshake.
        _feed(m, engine.o, txq.w_stream)
        _feed(m, txq.r_stream, encoder.i)
        wiring.connect(m, encoder.o, uart.tx)

        # The core's reset is a register (high while sync is reset, then following the engine's clear one
        # cycle late): it fans out to every register of the core, so no gate may sit before the wire.
        m.domains.core = ClockDomain(local=True)
        core_reset = Signal(init=1)
        m.d.sync += core_reset.eq(engine.clear)
        m.d.comb += [ClockSignal("core").eq(ClockSignal()), ResetSignal("core").eq(core_reset)]
        in_core = DomainRenamer("core")
        m.submodules.core = core = in_core(Core(self._config, self._unit_module))
        queues = {}
        for name, width in (("w", len(engine.w.payload)), ("a", len(engine.a.payload)),
                            ("y", len(engine.y.payload))):
            queues[name] = in_core(SyncFIFOBuffered(width=width, depth=self._queue_depth))
            m.submodules[f"{name}_queue"] = queues[name]

        def to_from_core(name, source, sink, gate=None):
            """``source`` to ``sink`` (one of them the core), through a two-entry stage with
            ``stream_stages``; ``gate`` sits before the stage."""
            if not self._stream_stages:
                _feed(m, source, sink, gate)
                return
            m.submodules[f"{name}_stage"] = stage = in_core(SyncFIFO(width=len(Value.cast(source.payload)), depth=2))
            _feed(m, source, stage.w_stream, gate)
            _feed(m, stage.r_stream, sink)

        for name in ("w", "a"):
            _feed(m, getattr(engine, name), queues[name].w_stream)
            to_from_core(name, queues[name].r_stream, getattr(core, name), gate=~engine.hold)
        to_from_core("y", core.y, queues["y"].w_stream)
        _feed(m, queues["y"].r_stream, engine.y)
        m.d.comb += [engine.w_level.eq(queues["w"].level), engine.a_level.eq(queues["a"].level),
                     engine.y_level.eq(queues["y"].level),
                     core.ctrl.mode.eq(engine.mode), core.ctrl.k_beats_m1.eq(engine.k_beats_m1)]
        wiring.connect(m, core.status, engine.status)
        return m
