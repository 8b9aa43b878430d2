"""UART (hw/uart.py) in Amaranth's simulator against a bit-level model of 8N1 framing."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from qmac.hw.link.uart import UART


def line_levels(byte):
    """8N1 model: start bit, data bits least significant first, stop bit."""
    return [0, *((byte >> i) & 1 for i in range(8)), 1]


def _simulate(dut, *testbenches):
    """Run the first testbench to its end, the others in the background."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for i, tb in enumerate(testbenches):
        sim.add_testbench(tb, background=i > 0)
    sim.run()


async def _send(ctx, uart, data):
    """Offer ``data`` on the transmit stream back to back, then wait until the line is idle again."""
    for byte in data:
        ctx.set(uart.tx.payload, byte)
        ctx.set(uart.tx.valid, 1)
        await ctx.tick().until(uart.tx.ready)
    ctx.set(uart.tx.valid, 0)
    await ctx.tick().repeat(12 * uart.divisor)


@pytest.mark.parametrize("divisor", [4, 5, 13])
def test_transmitter_bit_timing(divisor):
    """Each byte leaves as the model's levels, every bit lasting exactly ``divisor`` cycles, back to back."""
    dut = UART(divisor)
    data = [0x00, 0xFF, 0xA5, 0x3C]
    seen = []

    async def send(ctx):
        await _send(ctx, dut, data)

    async def watch(ctx):
        async for _, _, level in ctx.tick().sample(dut.tx_pin):
            seen.append(level)

    _simulate(dut, send, watch)
    start = seen.index(0)
    expected = [level for byte in data for level in line_levels(byte) for _ in range(divisor)]
    assert seen[start:start + len(expected)] == expected
    assert all(seen[start + len(expected):])


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_loopback_random_bytes(divisor):
    """tx_pin wired to rx_pin: every byte comes back in order, without error."""
    uart = UART(divisor)
    m = Module()
    m.submodules.uart = uart
    m.d.comb += uart.rx_pin.eq(uart.tx_pin)
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(40)]
    got = []

    async def send(ctx):
        await _send(ctx, uart, data)

    async def receive(ctx):
        ctx.set(uart.rx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(uart.rx.valid, uart.rx.payload):
            if valid:
                got.append((payload.data, payload.error))

    _simulate(m, send, receive)
    assert got == [(b, 0) for b in data]


async def _drive_levels(ctx, dut, levels, divisor):
    for level in levels:
        ctx.set(dut.rx_pin, level)
        await ctx.tick().repeat(divisor)


def test_break_and_overrun_flag_errors():
    """A stop bit of 0 (a break) delivers a byte with ``error`` and waits for the line to rise; a byte
    completed while the previous one waits is dropped and the next delivered byte carries ``error``."""
    divisor = 6
    dut = UART(divisor)
    got = []

    async def drive(ctx):
        await ctx.tick().repeat(3)
        await _drive_levels(ctx, dut, [0] * 14 + [1] * 2 + line_levels(0x5A), divisor)   # break, good byte
        await ctx.tick().repeat(4 * divisor)
        assert got == [(0x00, 1), (0x5A, 0)]
        # Three bytes while nobody reads: the first waits, the second is lost, the third flags it.
        ctx.set(dut.rx.ready, 0)
        await _drive_levels(ctx, dut, line_levels(0x11) + line_levels(0x22), divisor)
        await ctx.tick().repeat(2 * divisor)
        ctx.set(dut.rx.ready, 1)
        await _drive_levels(ctx, dut, line_levels(0x33), divisor)
        await ctx.tick().repeat(4 * divisor)
        assert got[2:] == [(0x11, 0), (0x33, 1)]

    async def receive(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(dut.rx.valid, dut.rx.ready, dut.rx.payload):
            if valid and ready:
                got.append((payload.data, payload.error))

    async def ready_default(ctx):
        ctx.set(dut.rx.ready, 1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(ready_default)
    sim.add_testbench(drive)
    sim.add_testbench(receive, background=True)
    sim.run()


def test_receive_latency():
    """The byte is offered 9 * divisor + divisor // 2 + 3 cycles after the start bit's falling edge."""
    divisor = 8
    dut = UART(divisor)

    async def drive(ctx):
        ctx.set(dut.rx.ready, 1)
        await ctx.tick().repeat(2)
        ctx.set(dut.rx_pin, 0)
        for cycle in range(1, 12 * divisor):
            await ctx.tick()
            if cycle == divisor:
                ctx.set(dut.rx_pin, 1)     # data 0xFF, then the stop bit
            if ctx.get(dut.rx.valid):
                assert cycle == 9 * divisor + divisor // 2 + 3
                return
        raise AssertionError("no byte received")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.run()


@pytest.mark.parametrize("divisor", [3, 65536, 4.0, True])
def test_divisor_checked(divisor):
    with pytest.raises(ValueError, match=rf"^UART divisor must be an integer from 4 to 65535, not {divisor!r}$"):
        UART(divisor)
