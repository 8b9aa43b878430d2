"""Executes host-link requests on a core's operand and result queues and its control registers."""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.checks import check_int
from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.array.core import status_signature
from qmac.hw.spec.link_protocol import (CONTROL_HOLD, CONTROL_LAYOUT, CRC, CRC_BYTES, HEADER_BYTES, READ_LAYOUT, STATUS_LAYOUT,
                            Command, Status, beat_bytes, info_payload, row_bytes)
from qmac.hw.spec.layouts import operand_layout, result_layout
from qmac.hw.link.slip_decoder import SYMBOL_LAYOUT
from qmac.hw.link.slip_encoder import PACKET_BYTE_LAYOUT

__all__ = ["CommandEngine"]

# What the body of a reply is read from.
_BODY_ROM, _BODY_SNAPSHOT, _BODY_ROWS = 0, 1, 2


class CommandEngine(wiring.Component):
    """The request/reply engine of the host link (protocol: ``docs/host_link.md``).

    It takes decoded packet symbols, stores each request's payload in a buffer of ``max_payload`` bytes
    while checking its CRC, and when the packet ends checks, in this order: line errors, length
    (``OVERSIZED``, ``TRUNCATED``), CRC, command, command length, values, queue space. Only a request that
    passes every check acts, and it acts whole: ``LOAD_W``/``LOAD_A`` check that the queue has room for
    all their beats before queuing the first. Every non-empty packet gets exactly one reply, after it has
    acted; symbols arriving meanwhile wait in the input stream. Nothing but a ``CLEAR`` request or a
    reset changes the core's state, so garbage on the line costs an error reply and nothing else.

    Timing (cycles, ``o`` and the queues always ready): the checks take 2 after the end symbol (3 for
    READ_Y); a LOAD of ``n`` beats of ``b`` bytes then takes ``n + 2`` to divide the length and
    ``n * (3 * b + 1)`` to queue (a byte is read, registered beside the buffer, then placed: the block
    RAM's output is slow and far from the beat register); the reply is one byte per cycle, with one idle cycle before the CRC.

    Parameters
    ----------
    config : CoreConfig
    max_payload : int
        Request payload buffer, bytes: at least 6 and one beat of each operand stream, at most 65535.
    w_depth, a_depth, y_depth : int
        Depths of the queues behind ``w``, ``a`` and ``y`` (beats, beats, rows), 1..65535; a READ_Y reply
        of ``y_depth`` rows must fit the 16-bit length field.
    clock_hz, divisor : int
        Reported by INFO only: the clock frequency and the UART's clocks per bit.

    Members
    -------
    i : In(stream.Signature(SYMBOL_LAYOUT))
        Decoded request symbols (:class:`~qmac.hw.link.slip_decoder.SlipDecoder`).
    o : Out(stream.Signature(PACKET_BYTE_LAYOUT))
        Reply packet bytes (to :class:`~qmac.hw.link.slip_encoder.SlipEncoder`).
    w, a : Out(stream.Signature(operand width))
        Operand beats for the weight and activation queues.
    y : In(stream.Signature(result width))
        Result rows from the result queue.
    w_level, a_level, y_level : In(range(depth + 1))
        Entries in each queue.
    mode : Out(2)
    k_beats_m1 : Out(k_bits)
    hold : Out(1)
        CONTROL settings; ``hold`` asks the surroundings to keep queued beats from the core.
    clear : Out(1)
        One-cycle pulse (registered) on a CLEAR request: reset the core and its queues.
    status : In(status_signature())
        The core's status, sampled by STATUS.
    """

    def __init__(self, config, *, max_payload, w_depth, a_depth, y_depth, clock_hz, divisor):
        if not isinstance(config, CoreConfig):
            raise ConfigError(f"CommandEngine needs a CoreConfig, not {config!r}")
        self._beat_bytes = {cmd: beat_bytes(config, cmd) for cmd in (Command.LOAD_W, Command.LOAD_A)}
        check_int("max_payload", max_payload, max(6, *self._beat_bytes.values()), 65535)
        for name, depth in (("w_depth", w_depth), ("a_depth", a_depth), ("y_depth", y_depth)):
            check_int(name, depth, 1, 65535)
        if y_depth * row_bytes(config) > 0xFFFF:
            raise ValueError(f"y_depth {y_depth!r} rows of {row_bytes(config)} bytes exceed a 65535-byte reply")
        check_int("clock_hz", clock_hz, 1, 2**32 - 1)
        check_int("divisor", divisor, 1, 65535)
        self._config = config
        self._max_payload = max_payload
        self._depths = {"w": w_depth, "a": a_depth, "y": y_depth}
        self._info = info_payload(config, max_payload=max_payload, w_depth=w_depth, a_depth=a_depth,
                                  y_depth=y_depth, clock_hz=clock_hz, divisor=divisor)
        super().__init__({
            "i": In(stream.Signature(SYMBOL_LAYOUT)),
            "o": Out(stream.Signature(PACKET_BYTE_LAYOUT)),
            "w": Out(stream.Signature(Shape.cast(operand_layout(config, config.rows)).width)),
            "a": Out(stream.Signature(Shape.cast(operand_layout(config, config.cols, activations=True)).width)),
            "y": In(stream.Signature(Shape.cast(result_layout(config)).width)),
            "w_level": In(range(w_depth + 1)),
            "a_level": In(range(a_depth + 1)),
            "y_level": In(range(y_depth + 1)),
            "mode": Out(config.ctrl_mode_bits),
            "k_beats_m1": Out(config.k_bits),
            "hold": Out(1),
            "clear": Out(1),
            "status": In(status_signature()),
        })

    @property
    def info(self):
        """The INFO reply payload (bytes)."""
        return self._info

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        max_payload = self._max_payload
        row_size = row_bytes(cfg)
        status_size = STATUS_LAYOUT.size // 8

        m.submodules.buffer = buffer = Memory(shape=8, depth=max_payload, init=[])
        buf_w, buf_r = buffer.write_port(), buffer.read_port()
        m.submodules.info_rom = info_rom = Memory(shape=8, depth=len(self._info), init=self._info)
        rom_r = info_rom.read_port()
        m.submodules.crc_in = crc_in = CRC.create()
        m.submodules.crc_out = crc_out = CRC.create()

        # -- request state ---------------------------------------------------------------------------
        count_max = max_payload + HEADER_BYTES + CRC_BYTES + 1   # "more than fits"
        count = Signal(range(count_max + 1))
        seq, cmd, length = Signal(8), Signal(8), Signal(16)
        args = Signal(CONTROL_LAYOUT.size)
        line_error = Signal()
        control = data.View(CONTROL_LAYOUT, args)
        read = data.View(READ_LAYOUT, args[:READ_LAYOUT.size])
        # The checks, registered at CHECK and acted on at DISPATCH (two short paths, not one long one).
        verdict = Signal(8)               # the Status of the first link check that fails, else OK
        known, length_ok, values_ok = Signal(), Signal(), Signal()
        rows = Signal(16)                 # READ_Y: rows to send

        # -- LOAD state ------------------------------------------------------------------------------
        to_a = Signal()
        unit = Mux(to_a, self._beat_bytes[Command.LOAD_A], self._beat_bytes[Command.LOAD_W])
        remainder = Signal(16)
        beats = Signal(range(max_payload + 1))
        free = Signal(16)                 # free entries of the target queue, a cycle old (only grows)
        whole, fits = Signal(), Signal()  # the division's verdicts, registered for FIT
        addr = Signal(range(max_payload))
        byte_index = Signal(range(max(self._beat_bytes.values())))
        beat = Signal(8 * max(self._beat_bytes.values()))
        byte = Signal(8, reset_less=True)   # the buffer's output of the previous cycle
        m.d.sync += byte.eq(buf_r.data)

        # -- reply state -----------------------------------------------------------------------------
        reply_status, reply_len, last = Signal(8), Signal(16), Signal(16)
        body = Signal(2)
        index = Signal(16)        # byte of the header, body or CRC being sent
        row_index = Signal(range(max(row_size, status_size)))   # byte of the snapshot being sent
        snapshot = Signal(max(STATUS_LAYOUT.size, 8 * row_size))
        # In state FETCH, as a register of its own: ``y.ready``, which enables the result queue's wide
        # output register, then comes straight from a flip-flop, not through the state decode.
        fetching = Signal()
        link_errors, command_errors = Signal(16), Signal(16)
        sent = self.o.valid & self.o.ready

        m.d.sync += [self.clear.eq(0),
                     free.eq(Mux(to_a, self._depths["a"] - self.a_level, self._depths["w"] - self.w_level)),
                     whole.eq(remainder == 0), fits.eq(beats <= free)]

        def reply(status, size=0, source=_BODY_ROM):
            m.d.sync += [reply_status.eq(status), reply_len.eq(size), body.eq(source), index.eq(0),
                         row_index.eq(0)]
            m.next = "HEADER"

        symbol = self.i.payload
        with m.FSM(name="engine_fsm") as fsm:
            with m.State("RECEIVE"):
                with m.If(self.i.valid & symbol.end):
                    m.d.sync += line_error.eq(line_error | symbol.error)
                    with m.If((count != 0) | line_error | symbol.error):
                        m.next = "CHECK"
                with m.Elif(self.i.valid):
                    m.d.sync += line_error.eq(line_error | symbol.error)
                    with m.If(count != count_max):
                        m.d.sync += count.eq(count + 1)
                    with m.Switch(count):
                        for i, field in enumerate([seq, cmd, length[:8], length[8:]]):
                            with m.Case(i):
                                m.d.sync += field.eq(symbol.data)
                        for i in range(CONTROL_LAYOUT.size // 8):
                            with m.Case(HEADER_BYTES + i):
                                m.d.sync += args.word_select(i, 8).eq(symbol.data)

            with m.State("CHECK"):
                packet_size = length + HEADER_BYTES + CRC_BYTES
                with m.If(line_error):
                    m.d.sync += verdict.eq(Status.LINE_ERROR)
                with m.Elif((length > max_payload) | (count > packet_size)):
                    m.d.sync += verdict.eq(Status.OVERSIZED)
                with m.Elif(count < packet_size):
                    m.d.sync += verdict.eq(Status.TRUNCATED)
                with m.Elif(~crc_in.match_detected):
                    m.d.sync += verdict.eq(Status.BAD_CRC)
                with m.Else():
                    m.d.sync += verdict.eq(Status.OK)
                m.d.sync += [known.eq(1), length_ok.eq(length == 0),
                             rows.eq(Mux(read.max_rows < self.y_level, read.max_rows, self.y_level)),
                             values_ok.eq((control.mode <= (1 << cfg.ctrl_mode_bits) - 1) & (control.k_beats_m1 >> cfg.k_bits == 0)
                                          & ((control.flags & ~CONTROL_HOLD & 0xFF) == 0))]
                with m.Switch(cmd):
                    with m.Case(Command.CONTROL):
                        m.d.sync += length_ok.eq(length == CONTROL_LAYOUT.size // 8)
                    with m.Case(Command.READ_Y):
                        m.d.sync += length_ok.eq(length == READ_LAYOUT.size // 8)
                    with m.Case(Command.LOAD_W, Command.LOAD_A):
                        m.d.sync += length_ok.eq(length != 0)
                    with m.Case(Command.INFO, Command.STATUS, Command.CLEAR):
                        pass
                    with m.Default():
                        m.d.sync += known.eq(0)
                m.next = "DISPATCH"

            with m.State("DISPATCH"):
                with m.If(verdict != Status.OK):
                    reply(verdict)
                with m.Elif(~known):
                    reply(Status.UNKNOWN_COMMAND)
                with m.Elif(~length_ok):
                    reply(Status.BAD_LENGTH)
                with m.Else():
                    with m.Switch(cmd):
                        with m.Case(Command.INFO):
                            reply(Status.OK, len(self._info), _BODY_ROM)
                        with m.Case(Command.STATUS):
                            view = data.View(STATUS_LAYOUT, snapshot[:STATUS_LAYOUT.size])
                            m.d.sync += [
                                view.busy.eq(self.status.busy), view.overflow.eq(self.status.overflow),
                                view.error.eq(self.status.error), view.hold.eq(self.hold),
                                view.mode.eq(self.mode), view.k_beats_m1.eq(self.k_beats_m1),
                                view.cycles.eq(self.status.cycles), view.macs.eq(self.status.macs),
                                view.w_level.eq(self.w_level), view.a_level.eq(self.a_level),
                                view.y_level.eq(self.y_level), view.link_errors.eq(link_errors),
                                view.command_errors.eq(command_errors),
                            ]
                            reply(Status.OK, status_size, _BODY_SNAPSHOT)
                        with m.Case(Command.CONTROL):
                            with m.If(~values_ok):
                                reply(Status.BAD_VALUE)
                            with m.Else():
                                m.d.sync += [self.mode.eq(control.mode), self.k_beats_m1.eq(control.k_beats_m1),
                                             self.hold.eq((control.flags & CONTROL_HOLD) != 0)]
                                reply(Status.OK)
                        with m.Case(Command.CLEAR):
                            m.d.sync += self.clear.eq(1)
                            reply(Status.OK)
                        with m.Case(Command.LOAD_W, Command.LOAD_A):
                            m.d.sync += [to_a.eq(cmd == Command.LOAD_A), remainder.eq(length), beats.eq(0)]
                            m.next = "DIVIDE"
                        with m.Case(Command.READ_Y):
                            m.next = "SIZE"

            with m.State("SIZE"):
                # rows * row_size as shifted adds: a multiplier would take a DSP block from the core.
                reply(Status.OK, sum(rows << k for k in range(row_size.bit_length()) if row_size >> k & 1),
                      _BODY_ROWS)

            with m.State("DIVIDE"):
                with m.If(remainder >= unit):
                    m.d.sync += [remainder.eq(remainder - unit), beats.eq(beats + 1)]
                with m.Else():
                    m.next = "FIT"
            with m.State("FIT"):
                with m.If(~whole):
                    reply(Status.BAD_LENGTH)
                with m.Elif(~fits):
                    reply(Status.NO_SPACE)
                with m.Else():
                    m.d.sync += [addr.eq(0), byte_index.eq(0)]
                    m.next = "READ"

            # Queue the buffer's bytes, a beat at a time: read a byte, register it, place it, push each full
            # beat.
            with m.State("READ"):
                m.d.sync += addr.eq(addr + 1)
                m.next = "LATCH"
            with m.State("LATCH"):
                m.next = "PLACE"
            with m.State("PLACE"):
                m.d.sync += [beat.word_select(byte_index, 8).eq(byte), byte_index.eq(byte_index + 1)]
                m.next = "READ"
                with m.If(byte_index == unit - 1):
                    m.d.sync += byte_index.eq(0)
                    m.next = "PUSH"
            with m.State("PUSH"):
                with m.If(Mux(to_a, self.a.ready, self.w.ready)):
                    m.d.sync += beats.eq(beats - 1)
                    m.next = "READ"
                    with m.If(beats == 1):
                        reply(Status.OK)

            # -- the reply: header, body, CRC ----------------------------------------------------------
            with m.State("HEADER"):
                m.d.sync += last.eq(reply_len - 1)
                with m.If(sent):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == HEADER_BYTES - 1):
                        m.d.sync += index.eq(0)
                        with m.If(reply_len == 0):
                            m.next = "SETTLE"
                        with m.Elif(body == _BODY_ROWS):
                            m.d.sync += fetching.eq(1)
                            m.next = "FETCH"
                        with m.Else():
                            m.next = "BODY"
            with m.State("FETCH"):
                # Loaded every cycle here, so that its enable (a wide fan-out) is the state alone, not
                # also the result queue's valid: the last load is the row taken.
                m.d.sync += snapshot.eq(self.y.payload)
                with m.If(self.y.valid):
                    m.d.sync += fetching.eq(0)
                    m.next = "BODY"
            with m.State("BODY"):
                with m.If(sent):
                    m.d.sync += [index.eq(index + 1), row_index.eq(row_index + 1)]
                    with m.If(index == last):
                        m.d.sync += index.eq(0)
                        m.next = "SETTLE"
                    with m.Elif((body == _BODY_ROWS) & (row_index == row_size - 1)):
                        m.d.sync += [row_index.eq(0), fetching.eq(1)]
                        m.next = "FETCH"
            with m.State("SETTLE"):
                # The CRC takes in each byte a cycle after it is sent (off the byte select's path).
                m.next = "CRC"
            with m.State("CRC"):
                with m.If(sent):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index[0]):
                        m.d.sync += [count.eq(0), line_error.eq(0), seq.eq(0), cmd.eq(0), length.eq(0)]
                        with m.If(reply_status >= 0x10):
                            m.d.sync += command_errors.eq(command_errors + 1)
                        with m.Elif(reply_status != Status.OK):
                            m.d.sync += link_errors.eq(link_errors + 1)
                        m.next = "RECEIVE"

        # Outputs as plain expressions of the state (not assigned inside the states): Yosys writes those
        # as processes that Icarus, in its SystemVerilog mode, does not evaluate before the state first
        # changes, which would leave ``i.ready`` undefined in the reset state for ever.
        receiving, pushing = fsm.ongoing("RECEIVE"), fsm.ongoing("PUSH")
        in_header, in_body, in_crc = fsm.ongoing("HEADER"), fsm.ongoing("BODY"), fsm.ongoing("CRC")
        stored = receiving & self.i.valid & ~symbol.end
        header = Cat(seq, reply_status, reply_len)
        m.d.comb += [
            self.i.ready.eq(receiving),
            crc_in.valid.eq(stored), crc_in.start.eq(count == 0), crc_in.data.eq(symbol.data),
            buf_w.en.eq(stored & (count >= HEADER_BYTES) & (count < HEADER_BYTES + max_payload)),
            buf_w.addr.eq(count - HEADER_BYTES), buf_w.data.eq(symbol.data), buf_r.addr.eq(addr),
            self.w.valid.eq(pushing & ~to_a), self.a.valid.eq(pushing & to_a),
            self.w.payload.eq(beat), self.a.payload.eq(beat),
            self.y.ready.eq(fetching),
            self.o.valid.eq(in_header | in_body | in_crc),
            self.o.payload.data.eq(Mux(in_header, header.word_select(index[:2], 8),
                                       Mux(in_body, Mux(body == _BODY_ROM, rom_r.data, snapshot.word_select(row_index, 8)),
                                           crc_out.crc.word_select(index[0], 8)))),
            self.o.payload.last.eq(in_crc & index[0]),
            # The ROM's output holds byte ``index`` of the body; ``sent`` only enables the next read.
            rom_r.addr.eq(Mux(in_body, index + 1, 0)), rom_r.en.eq(~in_body | sent),
        ]
        m.d.sync += [crc_out.valid.eq(sent & ~in_crc), crc_out.start.eq(in_header & (index == 0)),
                     crc_out.data.eq(self.o.payload.data)]
        return m
