"""SLIP (RFC 1055) decoding of a received byte stream into packet symbols."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.link_protocol import SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC
from qmac.hw.link.uart import RX_LAYOUT

__all__ = ["SlipDecoder", "SYMBOL_LAYOUT"]

#: One decoded symbol: a packet byte (``end`` low) or the end of a packet (``end`` high, ``data``
#: unused); ``error`` marks a line error at this point of the packet.
SYMBOL_LAYOUT = data.StructLayout({"data": 8, "end": 1, "error": 1})


class SlipDecoder(wiring.Component):
    """Undoes SLIP framing: END (0xC0) ends a packet; ESC (0xDB) followed by ESC_END (0xDC) or ESC_ESC
    (0xDD) stands for a data byte 0xC0 or 0xDB.

    Each input byte yields at most one symbol, one cycle later (the output is registered; a byte is taken
    whenever the output register is empty or being emptied): an ESC yields none, END an end symbol, any
    other byte a data symbol. ``error`` is set on a symbol whose byte (or the ESC before it) carried the
    receiver's ``error``, and on an escape that is not ESC_END or ESC_ESC (the byte after ESC passes through unchanged; END
    after ESC ends the packet). Empty packets are passed on as lone end symbols.

    Members
    -------
    i : In(stream.Signature(RX_LAYOUT))
    o : Out(stream.Signature(SYMBOL_LAYOUT))
    """

    i: In(stream.Signature(RX_LAYOUT))
    o: Out(stream.Signature(SYMBOL_LAYOUT))

    def elaborate(self, platform):
        m = Module()
        escaped = Signal()
        carried = Signal()   # the error flag of a swallowed ESC, passed on to the next symbol
        byte = self.i.payload.data
        is_esc = byte == SLIP_ESC
        swallow = ~escaped & is_esc
        bad_escape = escaped & (byte != SLIP_ESC_END) & (byte != SLIP_ESC_ESC)
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                escaped.eq(swallow),
                carried.eq(swallow & self.i.payload.error),
                self.o.valid.eq(~swallow),
                self.o.payload.data.eq(Mux(escaped & (byte == SLIP_ESC_END), SLIP_END,
                                           Mux(escaped & (byte == SLIP_ESC_ESC), SLIP_ESC, byte))),
                self.o.payload.end.eq(byte == SLIP_END),
                self.o.payload.error.eq(self.i.payload.error | bad_escape | carried),
            ]
        return m
