"""SLIP framing in gateware (hw/slip_decoder.py, hw/slip_encoder.py) against the host's
(qmac.host.framing: slip_encode, SlipReader), with random stalls on both sides."""

import random

from amaranth.sim import Simulator

from qmac.host import SlipReader, slip_encode
from qmac.hw.spec.link_protocol import SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC
from qmac.hw.link.slip_decoder import SlipDecoder
from qmac.hw.link.slip_encoder import SlipEncoder

SPECIALS = [SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC]


def _random_bytes(rng, n):
    return bytes(rng.choice(SPECIALS) if rng.random() < 0.3 else rng.randrange(256) for _ in range(n))


async def _put(ctx, stream, payloads, rng, gap):
    for payload in payloads:
        while rng.random() < gap:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


def _run(dut, inputs, rng):
    """Feed ``inputs`` to ``dut.i`` (valid gaps 30 %) while taking ``dut.o`` (ready 70 %); returns the
    output payloads."""
    out = []

    async def produce(ctx):
        await _put(ctx, dut.i, inputs, rng, 0.3)
        await ctx.tick().repeat(200)

    async def consume(ctx):
        while True:
            ctx.set(dut.o.ready, rng.random() < 0.7)
            _, _, valid, ready, payload = await ctx.tick().sample(dut.o.valid, dut.o.ready, dut.o.payload)
            if valid and ready:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(produce)
    sim.add_testbench(consume, background=True)
    sim.run()
    return out


def test_encoder_matches_host_framing():
    """Random packets (rich in END/ESC) come out exactly as the host's slip_encode frames them."""
    rng = random.Random(1)
    packets = [_random_bytes(rng, rng.randrange(1, 20)) for _ in range(30)]
    out = _run(SlipEncoder(), [{"data": b, "last": int(i == len(p) - 1)} for p in packets for i, b in enumerate(p)],
               rng)
    assert bytes(out) == b"".join(slip_encode(p) for p in packets)


def test_decoder_matches_host_reader():
    """Random byte streams (packets, noise, bad escapes, UART error flags) decode into the symbols the
    host's SlipReader model implies: each packet's bytes, then an end symbol flagging any error."""
    rng = random.Random(2)
    stream = bytearray()
    for _ in range(40):
        stream += slip_encode(_random_bytes(rng, rng.randrange(0, 12))) if rng.random() < 0.6 else \
            _random_bytes(rng, rng.randrange(1, 12))
    stream.append(SLIP_END)
    flagged = {i for i in range(len(stream)) if rng.random() < 0.03}
    out = _run(SlipDecoder(), [{"data": b, "error": int(i in flagged)} for i, b in enumerate(stream)], rng)

    # The engine's view of the symbols: packets between end symbols; a packet is bad if any of its
    # symbols has ``error``; empty good packets vanish.
    packets, current, error = [], bytearray(), False
    for s in out:
        error |= bool(s.error)
        if s.end:
            if current or error:
                packets.append((bytes(current), not error))
            current, error = bytearray(), False
        else:
            current.append(s.data)
    # Model: the host's SlipReader, plus the receiver's error flags over each packet's bytes (its END
    # included; a flagged END alone is an empty bad packet).
    expected, reader, first = [], SlipReader(), 0
    for i, byte in enumerate(stream):
        done = reader.feed(bytes([byte]))
        if byte == SLIP_END:
            flag = any(j in flagged for j in range(first, i + 1))
            if done:
                expected.append((done[0][0], done[0][1] and not flag))
            elif flag:
                expected.append((b"", False))
            first = i + 1
    assert packets == expected
