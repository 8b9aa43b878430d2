"""A serial line into a simulated host link, for cocotb: the same driver code as on a board."""

from collections import deque

import cocotb
from cocotb.task import resume
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, Timer

from qmac.host.transport import Transport

__all__ = ["SimulatedUart"]


class SimulatedUart(Transport):
    """Drives the DUT's ``rx`` pin and decodes its ``tx`` pin, 8N1 at ``divisor`` clock cycles per bit.

    Construct it inside a cocotb test (it starts two coroutines); call :meth:`write`, :meth:`write_levels`
    and :meth:`read` from a blocking function run with :func:`cocotb.task.bridge`, such as a
    :class:`~qmac.host.driver.HostLinkDriver` method: they block that thread while the simulation runs.
    ``read``'s timeout is in simulated seconds. Bits sent change on falling clock edges; received bits
    are sampled ``divisor // 2`` cycles after the start bit's falling edge and a bit time apart.

    Parameters
    ----------
    clk, rx, tx : cocotb handles
        The DUT's clock, serial input and serial output.
    divisor : int
        Clock cycles per bit, as built into the DUT.

    Attributes
    ----------
    framing_errors : int
        Bytes received from the DUT whose stop bit was 0 (a correct DUT never sends one).
    """

    def __init__(self, clk, rx, tx, divisor):
        self._clk, self._rx, self._tx, self._divisor = clk, rx, tx, divisor
        self._levels = deque()
        self._levels_added = Event()
        self._received = bytearray()
        self._byte_received = Event()
        self.framing_errors = 0
        rx.value = 1
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._listen())

    @resume
    async def write(self, data):
        self._queue(level for byte in data for level in [0, *((byte >> i) & 1 for i in range(8)), 1])

    @resume
    async def write_levels(self, levels):
        """Queue raw line levels, one bit time each, behind what is already queued: e.g. ``[0] * 20`` is
        a break, read as a byte whose stop bit is 0."""
        self._queue(levels)

    def _queue(self, levels):
        self._levels.extend(levels)
        self._levels_added.set()

    @resume
    async def read(self, size, timeout):
        if not self._received:
            self._byte_received.clear()
            await First(self._byte_received.wait(), Timer(timeout, unit="sec"))
        data = bytes(self._received[:size])
        del self._received[:size]
        return data

    async def _drive(self):
        await FallingEdge(self._clk)
        while True:
            if not self._levels:
                self._levels_added.clear()
                await self._levels_added.wait()
                await FallingEdge(self._clk)
            self._rx.value = self._levels.popleft()
            await ClockCycles(self._clk, self._divisor, rising=False)

    async def _listen(self):
        half, full = self._divisor // 2, self._divisor
        while True:
            await FallingEdge(self._tx)
            await ClockCycles(self._clk, half)
            if int(self._tx.value):
                continue
            byte = 0
            for i in range(8):
                await ClockCycles(self._clk, full)
                byte |= int(self._tx.value) << i
            await ClockCycles(self._clk, full)
            if not int(self._tx.value):
                self.framing_errors += 1
            self._received.append(byte)
            self._byte_received.set()
