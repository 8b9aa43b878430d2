"""Packets of the host link and their SLIP framing, host side (the spec is docs/host_link.md)."""

from typing import NamedTuple

from qmac.hw.spec.link_protocol import CRC, CRC_BYTES, HEADER_BYTES, SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC, Status

__all__ = ["Packet", "FrameError", "encode_packet", "decode_packet", "slip_encode", "SlipReader", "link_check"]


class FrameError(ValueError):
    """A received packet is malformed: too short, wrong length field, or CRC mismatch."""


class Packet(NamedTuple):
    """``seq``, ``code`` (a Command in requests, a Status in replies) and ``payload`` bytes."""
    seq: int
    code: int
    payload: bytes


def encode_packet(seq, code, payload=b""):
    """Header, payload and CRC of one packet (before SLIP framing)."""
    if not 0 <= seq <= 0xFF or not 0 <= code <= 0xFF:
        raise ValueError(f"seq and code are bytes, not {seq!r} and {code!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the 16-bit length field")
    body = bytes([seq, code]) + len(payload).to_bytes(2, "little") + bytes(payload)
    return body + CRC.compute(body).to_bytes(CRC_BYTES, "little")


def decode_packet(raw):
    """Inverse of :func:`encode_packet`; raises :class:`FrameError` naming what is wrong."""
    if len(raw) < HEADER_BYTES + CRC_BYTES:
        raise FrameError(f"packet of {len(raw)} bytes is shorter than header and CRC")
    length = int.from_bytes(raw[2:4], "little")
    if len(raw) != HEADER_BYTES + length + CRC_BYTES:
        raise FrameError(f"packet of {len(raw)} bytes has length field {length}")
    body, crc = raw[:-CRC_BYTES], int.from_bytes(raw[-CRC_BYTES:], "little")
    if CRC.compute(body) != crc:
        raise FrameError(f"packet CRC {crc:#06x} differs from computed {CRC.compute(body):#06x}")
    return Packet(raw[0], raw[1], bytes(raw[HEADER_BYTES:-CRC_BYTES]))


def slip_encode(packet):
    """END, the packet with END and ESC escaped, END."""
    escaped = bytes(packet).replace(bytes([SLIP_ESC]), bytes([SLIP_ESC, SLIP_ESC_ESC]))
    escaped = escaped.replace(bytes([SLIP_END]), bytes([SLIP_ESC, SLIP_ESC_END]))
    return bytes([SLIP_END]) + escaped + bytes([SLIP_END])


class SlipReader:
    """Incremental SLIP decoder: :meth:`feed` bytes as they arrive, get whole packets back.

    Empty packets are skipped. An escape other than ESC_END / ESC_ESC passes the byte through and marks
    the packet bad, as the gateware's decoder does.
    """

    def __init__(self):
        self._packet = bytearray()
        self._escaped = False
        self._bad = False

    def feed(self, data):
        """Returns a list of ``(packet bytes, ok)`` for every packet completed by ``data``."""
        done = []
        for byte in data:
            if byte == SLIP_END:
                if self._packet or self._bad or self._escaped:
                    done.append((bytes(self._packet), not (self._bad or self._escaped)))
                self._packet, self._escaped, self._bad = bytearray(), False, False
            elif self._escaped:
                self._escaped = False
                if byte == SLIP_ESC_END:
                    self._packet.append(SLIP_END)
                elif byte == SLIP_ESC_ESC:
                    self._packet.append(SLIP_ESC)
                else:
                    self._packet.append(byte)
                    self._bad = True
            elif byte == SLIP_ESC:
                self._escaped = True
            else:
                self._packet.append(byte)
        return done


def link_check(packet, intact, max_payload):
    """The link-error :class:`Status` a host link answers a received packet with, or ``None`` when the
    packet passes the link checks; the checks and their order are docs/host_link.md's.

    ``intact`` is false when the packet had a line error (:class:`SlipReader`'s ``ok``); header fields
    missing from a short packet count as zero.
    """
    if not intact:
        return Status.LINE_ERROR
    length = int.from_bytes((bytes(packet[:HEADER_BYTES]) + bytes(HEADER_BYTES))[2:4], "little")
    if length > max_payload or len(packet) > HEADER_BYTES + length + CRC_BYTES:
        return Status.OVERSIZED
    if len(packet) < HEADER_BYTES + length + CRC_BYTES:
        return Status.TRUNCATED
    if CRC.compute(packet[:-CRC_BYTES]) != int.from_bytes(packet[-CRC_BYTES:], "little"):
        return Status.BAD_CRC
    return None
