"""An 8N1 serial port (UART) with stream interfaces; Amaranth's library has none."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out
from qmac.hw.spec.checks import is_int

__all__ = ["UART", "RX_LAYOUT"]

#: Payload of the receive stream: the byte, and whether it is suspect (its stop bit was 0, or bytes
#: were lost before it because the receive stream was not ready).
RX_LAYOUT = data.StructLayout({"data": 8, "error": 1})


class UART(wiring.Component):
    """Serial port: 1 start bit, 8 data bits least significant first, 1 stop bit, no parity; every bit
    lasts ``divisor`` clock cycles (baud rate = clock frequency / ``divisor``).

    Receiver: ``rx_pin`` passes a two-flip-flop synchronizer. A low level seen while idle starts a byte;
    the start bit is checked again half a bit later (a shorter pulse is ignored), then each data bit and
    the stop bit are sampled one bit time apart, near their middles. The byte is offered on ``rx`` from
    the cycle after the stop bit is sampled (``9 * divisor + divisor // 2 + 3`` cycles after the start
    bit's falling edge reaches ``rx_pin``) and held there until taken. A line that is still low at the stop bit is a *break*: the
    byte is delivered with ``error`` set and the receiver waits for the line to go high. A byte that
    completes while the previous one has not been taken is dropped, and the next byte delivered carries
    ``error``.

    Transmitter: a byte taken from ``tx`` is sent from the next cycle; ``ready`` is high while idle and in
    the last cycle of a stop bit, so bytes offered back to back leave without a gap. ``tx_pin`` is high
    while idle.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, 4 to 65535.

    Members
    -------
    rx_pin : In(1, init=1)
    tx_pin : Out(1, init=1)
    rx : Out(stream.Signature(RX_LAYOUT))
    tx : In(stream.Signature(8))
    """

    def __init__(self, divisor):
        if not is_int(divisor) or not 4 <= divisor <= 65535:
            raise ValueError(f"UART divisor must be an integer from 4 to 65535, not {divisor!r}")
        self._divisor = divisor
        super().__init__({
            "rx_pin": In(1, init=1),
            "tx_pin": Out(1, init=1),
            "rx": Out(stream.Signature(RX_LAYOUT)),
            "tx": In(stream.Signature(8)),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        self._receiver(m)
        self._transmitter(m)
        return m

    def _receiver(self, m):
        div = self._divisor
        line = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx_pin, line, init=1)
        timer = Signal(range(div))
        bit = Signal(range(8))
        shreg = Signal(8)
        lost = Signal()
        # A completed byte replaces nothing: it is dropped if the previous one still waits.
        with m.If(self.rx.valid & self.rx.ready):
            m.d.sync += self.rx.valid.eq(0)

        def deliver(error):
            with m.If(self.rx.valid & ~self.rx.ready):
                m.d.sync += lost.eq(1)
            with m.Else():
                m.d.sync += [self.rx.payload.data.eq(shreg), self.rx.payload.error.eq(error | lost),
                             self.rx.valid.eq(1), lost.eq(0)]

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(div - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    deliver(~line)
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"

    def _transmitter(self, m):
        div = self._divisor
        timer = Signal(range(div))
        shreg = Signal(10, init=1)  # start bit, 8 data bits, stop bit; shifted out from bit 0
        bits_left = Signal(range(11))
        idle = bits_left == 0
        # Ready while idle and in the last cycle of a stop bit, so that bytes follow without a gap.
        m.d.comb += [self.tx_pin.eq(shreg[0]), self.tx.ready.eq(idle | ((bits_left == 1) & (timer == 0)))]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += [shreg.eq(Cat(0, self.tx.payload, 1)), bits_left.eq(10), timer.eq(div - 1)]
        with m.Elif(~idle & (timer != 0)):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(~idle):
            m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits_left.eq(bits_left - 1), timer.eq(div - 1)]
