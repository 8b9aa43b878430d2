"""Host-side packets and SLIP framing (qmac/host/framing.py)."""

import pytest

from qmac.host import FrameError, Packet, SlipReader, decode_packet, encode_packet, link_check, slip_encode
from qmac.hw.spec.link_protocol import SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC, Command, Status


def test_packet_round_trip_through_slip():
    payload = bytes([SLIP_END, SLIP_ESC, 0, 255, SLIP_ESC_END])
    raw = encode_packet(9, Command.LOAD_W, payload)
    framed = slip_encode(raw)
    assert framed[0] == framed[-1] == SLIP_END and SLIP_END not in framed[1:-1]
    reader = SlipReader()
    assert reader.feed(framed[:3]) == []
    (packet, ok), = reader.feed(framed[3:])
    assert ok and decode_packet(packet) == Packet(9, Command.LOAD_W, payload)


def test_reader_skips_empty_packets_and_flags_bad_escapes():
    assert SlipReader().feed(bytes([SLIP_END, SLIP_END, 1, SLIP_ESC, 7, 2, SLIP_END, 3, SLIP_ESC, SLIP_END])) == [
        (bytes([1, 7, 2]), False), (bytes([3]), False)]
    assert SlipReader().feed(bytes([SLIP_ESC, SLIP_ESC_END, SLIP_ESC, SLIP_ESC_ESC, SLIP_END])) == [
        (bytes([SLIP_END, SLIP_ESC]), True)]


def test_decode_errors():
    raw = encode_packet(1, 2, b"abc")
    with pytest.raises(FrameError, match=r"^packet of 5 bytes is shorter than header and CRC$"):
        decode_packet(raw[:5])
    with pytest.raises(FrameError, match=r"^packet of 8 bytes has length field 3$"):
        decode_packet(raw[:-1])
    with pytest.raises(FrameError, match=r"^packet CRC"):
        decode_packet(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(ValueError, match=r"^seq and code are bytes"):
        encode_packet(256, 1)


def test_link_check_order():
    good = encode_packet(1, Command.STATUS)
    assert link_check(good, True, 64) is None
    assert link_check(good, False, 64) == Status.LINE_ERROR
    assert link_check(good + b"\x00", True, 64) == Status.OVERSIZED
    assert link_check(good[:2] + (65).to_bytes(2, "little") + good[4:], True, 64) == Status.OVERSIZED
    assert link_check(good[:-1], True, 64) == Status.TRUNCATED
    assert link_check(b"\x01", True, 64) == Status.TRUNCATED
    assert link_check(good[:-1] + bytes([good[-1] ^ 0x80]), True, 64) == Status.BAD_CRC
