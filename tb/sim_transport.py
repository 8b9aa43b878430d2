"""A serial line into a simulated host link, for cocotb: the same driver code as on a board."""

from collections import deque

import cocotb
from cocotb.task import resume
from cocotb.triggers import Event, FallingEdge, First, Timer

from qmac.host.transport import Transport

__all__ = ["SimulatedUart"]


class SimulatedUart(Transport):
    """Drives the DUT's ``rx`` pin and decodes its ``tx`` pin, 8N1 at ``divisor`` clock cycles per bit.

    Construct it inside a cocotb test (it starts two coroutines); call :meth:`write`, :meth:`write_levels`
    and :meth:`read` from a blocking function run with :func:`cocotb.task.bridge`, such as a
    :class:`~qmac.host.driver.HostLinkDriver` method: they block that thread while the simulation runs.
    ``read``'s timeout is in simulated seconds. Bits sent change on falling clock edges; received bits
    are sampled ``divisor // 2`` cycles after the start bit's falling edge and a bit time apart. Both
    sides wait a bit time as one timer (``divisor`` clock periods), not cycle by cycle: a few Python
    wake-ups per bit instead of one per clock cycle.

    Parameters
    ----------
    clk, rx, tx : cocotb handles
        The DUT's clock, serial input and serial output.
    divisor : int
        Clock cycles per bit, as built into the DUT.
    period_ns : int
        The period of ``clk`` in ns.

    Attributes
    ----------
    framing_errors : int
        Bytes received from the DUT whose stop bit was 0 (a correct DUT never sends one).
    """

    def __init__(self, clk, rx, tx, divisor, period_ns):
        self._clk, self._rx, self._tx = clk, rx, tx
        # One Timer object per coroutine: a trigger awaited by two tasks at once fires for both at once.
        self._send_bit = Timer(divisor * period_ns, unit="ns")
        self._receive_half_bit = Timer(divisor // 2 * period_ns, unit="ns")
        self._receive_bit = Timer(divisor * period_ns, unit="ns")
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
            await self._send_bit   # to the falling edge a bit time later

    async def _listen(self):
        # tx changes at rising edges a bit time apart, counted from the start bit's falling edge; the samples
        # fall on rising edges divisor // 2 cycles off those (divisor >= 4), where tx holds still.
        while True:
            await FallingEdge(self._tx)
            await self._receive_half_bit
            if int(self._tx.value):
                continue
            byte = 0
            for i in range(8):
                await self._receive_bit
                byte |= int(self._tx.value) << i
            await self._receive_bit
            if not int(self._tx.value):
                self.framing_errors += 1
            self._received.append(byte)
            self._byte_received.set()
