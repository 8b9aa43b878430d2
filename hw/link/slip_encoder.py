"""SLIP (RFC 1055) framing of outgoing packets."""

from amaranth.hdl import Module, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.link_protocol import SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC

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
        with m.FSM(name="slip_fsm") as fsm:
            with m.State("IDLE"):
                with m.If(done):
                    m.next = "BODY"
            with m.State("BODY"):
                with m.If(done & special):
                    m.next = "ESCAPED"
                with m.Elif(done & last):
                    m.next = "TAIL"
            with m.State("ESCAPED"):
                with m.If(done & last):
                    m.next = "TAIL"
                with m.Elif(done):
                    m.next = "BODY"
            with m.State("TAIL"):
                with m.If(done):
                    m.next = "IDLE"
        # Outputs as plain expressions of the state (not assigned inside the states): Yosys writes those
        # as processes that Icarus, in its SystemVerilog mode, would not evaluate before the state
        # first changes.
        idle, body, escaped, tail = (fsm.ongoing(s) for s in ("IDLE", "BODY", "ESCAPED", "TAIL"))
        m.d.comb += [
            self.o.payload.eq(Mux(idle | tail, SLIP_END,
                                  Mux(escaped, Mux(byte == SLIP_END, SLIP_ESC_END, SLIP_ESC_ESC),
                                      Mux(special, SLIP_ESC, byte)))),
            self.o.valid.eq(((idle | body) & self.i.valid) | escaped | tail),
            self.i.ready.eq(((body & ~special) | escaped) & self.o.ready),
        ]
        return m
