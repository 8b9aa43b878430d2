"""The host link's request engine (hw/command_engine.py) in Amaranth's simulator, fed packet symbols
directly: replies, queued beats, the link checks against the model qmac.host.link_check."""

import random

import pytest
from amaranth.sim import Simulator

from qmac.host import decode_packet, encode_packet, link_check
from qmac.hw.link.command_engine import CommandEngine
from qmac.hw.spec.config import preset
from qmac.hw.spec.link_protocol import (CONTROL_LAYOUT, READ_LAYOUT, STATUS_LAYOUT, Command, Status, beat_bytes,
                                   pack_fields, row_bytes, unpack_fields)

CONFIG = preset("tiny")
DEPTH = 4
MAX_PAYLOAD = 24


def _engine():
    return CommandEngine(CONFIG, max_payload=MAX_PAYLOAD, w_depth=DEPTH, a_depth=DEPTH, y_depth=DEPTH,
                         clock_hz=12_000_000, divisor=104)


async def _send(ctx, dut, packet, error=False):
    """One packet as decoder symbols: its bytes, then an end symbol (flagging a line error if asked)."""
    for byte in packet:
        ctx.set(dut.i.payload, {"data": byte, "end": 0, "error": 0})
        ctx.set(dut.i.valid, 1)
        await ctx.tick().until(dut.i.ready)
    ctx.set(dut.i.payload, {"data": 0, "end": 1, "error": int(error)})
    ctx.set(dut.i.valid, 1)
    await ctx.tick().until(dut.i.ready)
    ctx.set(dut.i.valid, 0)


async def _reply(ctx, dut):
    """Collect reply bytes up to the one marked ``last`` and decode them."""
    ctx.set(dut.o.ready, 1)
    raw = bytearray()
    while True:
        _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
        if valid:
            raw.append(payload.data)
            if payload.last:
                return decode_packet(bytes(raw))


def _run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_info_status_control():
    dut = _engine()

    async def testbench(ctx):
        await _send(ctx, dut, encode_packet(7, Command.INFO))
        assert await _reply(ctx, dut) == (7, Status.OK, dut.info)
        await _send(ctx, dut, encode_packet(8, Command.CONTROL,
                                            pack_fields(CONTROL_LAYOUT, {"mode": 1, "k_beats_m1": 5, "flags": 1})))
        assert await _reply(ctx, dut) == (8, Status.OK, b"")
        assert (ctx.get(dut.mode), ctx.get(dut.k_beats_m1), ctx.get(dut.hold)) == (1, 5, 1)
        ctx.set(dut.status.cycles, 0x123456789ABC)
        ctx.set(dut.status.busy, 1)
        ctx.set(dut.y_level, 3)
        await _send(ctx, dut, encode_packet(9, Command.STATUS))
        seq, status, payload = await _reply(ctx, dut)
        fields = unpack_fields(STATUS_LAYOUT, payload)
        assert (seq, status) == (9, Status.OK)
        assert fields["cycles"] == 0x123456789ABC and fields["busy"] == 1 and fields["y_level"] == 3
        assert fields["mode"] == 1 and fields["k_beats_m1"] == 5 and fields["hold"] == 1
        await _send(ctx, dut, encode_packet(10, Command.CLEAR))
        assert (await _reply(ctx, dut))[:2] == (10, Status.OK)

    _run(dut, testbench)


def test_load_queues_whole_beats_or_nothing():
    dut = _engine()
    size = beat_bytes(CONFIG, Command.LOAD_A)
    beats = [random.Random(3).randrange(1 << (8 * size)) for _ in range(3)]

    async def testbench(ctx):
        ctx.set(dut.a.ready, 1)
        payload = b"".join(b.to_bytes(size, "little") for b in beats)
        await _send(ctx, dut, encode_packet(1, Command.LOAD_A, payload))
        got = []
        ctx.set(dut.o.ready, 1)
        while True:
            _, _, valid, word, out_valid, out = await ctx.tick().sample(dut.a.valid, dut.a.payload, dut.o.valid,
                                                                        dut.o.payload)
            if valid:
                got.append(word)
            if out_valid and out.last:
                break
        assert got == beats
        ctx.set(dut.a_level, DEPTH - 2)     # room for two beats: three are refused, none queued
        await _send(ctx, dut, encode_packet(2, Command.LOAD_A, payload))
        assert (await _reply(ctx, dut))[:2] == (2, Status.NO_SPACE)
        await _send(ctx, dut, encode_packet(3, Command.LOAD_A, payload[:-1]))
        assert (await _reply(ctx, dut))[:2] == (3, Status.BAD_LENGTH)

    _run(dut, testbench)


def test_read_rows():
    dut = _engine()
    size = row_bytes(CONFIG)
    rows = [random.Random(4).randrange(1 << (8 * size - 6)) for _ in range(3)]

    async def testbench(ctx):
        ctx.set(dut.y_level, len(rows))
        queue = list(rows)
        await _send(ctx, dut, encode_packet(5, Command.READ_Y, pack_fields(READ_LAYOUT, {"max_rows": 9})))
        ctx.set(dut.o.ready, 1)
        raw = bytearray()
        while True:
            ctx.set(dut.y.payload, queue[0] if queue else 0)
            ctx.set(dut.y.valid, bool(queue))
            _, _, taken, valid, out = await ctx.tick().sample(dut.y.ready, dut.o.valid, dut.o.payload)
            if taken and queue:
                queue.pop(0)
            if valid:
                raw.append(out.data)
                if out.last:
                    break
        seq, status, payload = decode_packet(bytes(raw))
        assert (seq, status) == (5, Status.OK)
        assert [int.from_bytes(payload[i:i + size], "little") for i in range(0, len(payload), size)] == rows

    _run(dut, testbench)


def test_link_checks_match_model():
    """Random packets: valid ones, cut, stretched, with flipped bits, huge length fields, line errors.
    Every link-level verdict equals the model's; packets that pass get an OK or command-error reply."""
    dut = _engine()
    rng = random.Random(5)

    def variant():
        good = encode_packet(rng.randrange(256), rng.choice(list(Command)), bytes(rng.randrange(256)
                                                                                 for _ in range(rng.randrange(8))))
        kind = rng.randrange(6)
        if kind == 0:
            return good[:rng.randrange(len(good))], True
        if kind == 1:
            return good + bytes(rng.randrange(1, 4)), True
        if kind == 2:
            i = rng.randrange(len(good))
            return good[:i] + bytes([good[i] ^ (1 << rng.randrange(8))]) + good[i + 1:], True
        if kind == 3:
            return good[:2] + rng.randrange(MAX_PAYLOAD + 1, 65536).to_bytes(2, "little") + good[4:], True
        if kind == 4:
            return good, False
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, MAX_PAYLOAD + 12))), True

    async def testbench(ctx):
        ctx.set(dut.w.ready, 1)
        ctx.set(dut.a.ready, 1)
        for _ in range(60):
            packet, intact = variant()
            await _send(ctx, dut, packet, error=not intact)
            if not packet and intact:
                continue   # an empty packet gets no reply
            _, status, _ = await _reply(ctx, dut)
            expected = link_check(packet, intact, MAX_PAYLOAD)
            if expected is None:
                assert not Status(status).is_link_error, (packet.hex(), Status(status))
            else:
                assert status == expected, (packet.hex(), Status(status), expected)

    _run(dut, testbench)


@pytest.mark.parametrize("kwargs,message", [
    ({"max_payload": 5}, r"^max_payload must be an integer from 8 to 65535, not 5$"),
    ({"w_depth": 0}, r"^w_depth must be an integer from 1 to 65535, not 0$"),
    ({"y_depth": 20000}, r"^y_depth 20000 rows of 7 bytes exceed a 65535-byte reply$"),
])
def test_parameters_checked(kwargs, message):
    args = {"max_payload": 64, "w_depth": 4, "a_depth": 4, "y_depth": 4, "clock_hz": 1, "divisor": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        CommandEngine(CONFIG, **args)
