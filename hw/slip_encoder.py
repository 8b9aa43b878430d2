"""SLIP (RFC 1055) framing of outgoing packets."""

from amaranth.hdl import Module, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .link_protocol import SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC

__all__ = ["SlipEncoder", "PACKET_BYTE_LAYOUT"]

#: One byte of an outgoing packet; ``last`` marks the packet's final byte.
PACKET_BYTE_LAYOUT = data.StructLayout({"data": 8, "last": 1})


class SlipEncoder(wiring.Component):
    """Frames packets with SLIP: END (0xC0), the packet's bytes with 0xC0 sent as ESC ESC_END
    (0xDB 0xDC) and 0xDB as ESC ESC_ESC (0xDB 0xDD), then END.

    The leading END flushes whatever line noise the receiver has collected (RFC 1055's advice). One
    output byte per cycle when ``o`` is ready: a packet of ``n`` bytes, ``e`` of them escaped, takes
    ``n + e + 2`` transfers. An input byte is taken in the cycle its last output byte is.

    Members
    -------
    i : In(stream.Signature(PACKET_BYTE_LAYOUT))
    o : Out(stream.Signature(8))
    """

    i: In(stream.Signature(PACKET_BYTE_LAYOUT))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        byte, last = self.i.payload.data, self.i.payload.last
        special = (byte == SLIP_END) | (byte == SLIP_ESC)
        done = self.o.valid & self.o.ready
        with m.FSM(name="slip_fsm"):
            with m.State("IDLE"):
                m.d.comb += [self.o.payload.eq(SLIP_END), self.o.valid.eq(self.i.valid)]
                with m.If(done):
                    m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [self.o.payload.eq(Mux(special, SLIP_ESC, byte)), self.o.valid.eq(self.i.valid),
                             self.i.ready.eq(self.o.ready & ~special)]
                with m.If(done):
                    with m.If(special):
                        m.next = "ESCAPED"
                    with m.Elif(last):
                        m.next = "TAIL"
            with m.State("ESCAPED"):
                m.d.comb += [self.o.payload.eq(Mux(byte == SLIP_END, SLIP_ESC_END, SLIP_ESC_ESC)),
                             self.o.valid.eq(1), self.i.ready.eq(self.o.ready)]
                with m.If(done):
                    with m.If(last):
                        m.next = "TAIL"
                    with m.Else():
                        m.next = "BODY"
            with m.State("TAIL"):
                m.d.comb += [self.o.payload.eq(SLIP_END), self.o.valid.eq(1)]
                with m.If(done):
                    m.next = "IDLE"
        return m
