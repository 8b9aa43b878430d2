"""The host link's wire protocol, defined once for the gateware and the host driver.

Byte-by-byte description: ``docs/host_link.md``. Summary: UART 8N1 bytes carry SLIP-framed packets
(RFC 1055); a packet is ``seq, code, length (u16), payload, CRC-16/IBM-SDLC (u16)``, all little-endian.
A request's ``code`` is a :class:`Command`, a reply's ``code`` a :class:`Status`. The payload layouts
below are :class:`amaranth.lib.data.StructLayout` objects: the gateware builds its replies through
``data.View`` of them and the host packs and unpacks bytes with :func:`pack_fields` and
:func:`unpack_fields`, so both sides read the same field offsets.
"""

import json

from amaranth.lib import data, enum
from amaranth.lib.crc import catalog

from qmac.hw.spec.config import CoreConfig
from qmac.hw.spec.layouts import operand_layout, result_layout
from qmac.hw.spec.payload import payload_format

__all__ = [
    "SLIP_END", "SLIP_ESC", "SLIP_ESC_END", "SLIP_ESC_ESC", "HEADER_BYTES", "CRC_BYTES", "CRC", "Command",
    "Status", "CONTROL_HOLD", "MAGIC", "VERSION", "INFO_LAYOUT", "STATUS_LAYOUT", "CONTROL_LAYOUT",
    "READ_LAYOUT", "pack_fields", "unpack_fields", "beat_bytes", "row_bytes", "info_payload", "parse_info",
]

#: SLIP framing bytes (RFC 1055): a packet ends with END; END and ESC inside it are escaped.
SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD

#: ``seq``, ``code`` and the 16-bit ``length`` open every packet; the 16-bit CRC closes it.
HEADER_BYTES = 4
CRC_BYTES = 2

#: CRC-16/IBM-SDLC (X.25: polynomial 0x1021, reflected, init and xorout 0xFFFF) over the header and the
#: payload, sent least significant byte first; a packet with its CRC leaves the residue 0xF0B8.
CRC = catalog.CRC16_IBM_SDLC(8)


class Command(enum.IntEnum, shape=8):
    """Request codes."""
    INFO = 0x01       #: -> INFO_LAYOUT + config JSON: the core's config, queue depths, clock
    STATUS = 0x02     #: -> STATUS_LAYOUT: flags, counters, queue levels, error counts
    CONTROL = 0x03    #: CONTROL_LAYOUT -> (): mode, k_beats_m1 and hold for the next tiles
    CLEAR = 0x04      #: () -> (): reset the core and its queues (CONTROL settings kept)
    LOAD_W = 0x05     #: n weight beats -> (): queued whole or not at all
    LOAD_A = 0x06     #: n activation beats -> (): queued whole or not at all
    READ_Y = 0x07     #: READ_LAYOUT -> up to ``max_rows`` result rows, taken from the queue


class Status(enum.IntEnum, shape=8):
    """Reply codes. Codes below 0x10 are *link errors*: the request did not arrive intact, so its
    ``seq`` in the reply is only what was received. Codes from 0x10 are *command errors*: the request
    arrived intact and its ``seq`` is echoed. No error reply follows a request that changed anything."""
    OK = 0x00
    LINE_ERROR = 0x01       #: bad SLIP escape, UART stop bit 0, or bytes lost to a full receive queue
    OVERSIZED = 0x02        #: length above the maximum payload, or more bytes than the length says
    TRUNCATED = 0x03        #: fewer bytes than header + length + CRC
    BAD_CRC = 0x04          #: CRC mismatch
    UNKNOWN_COMMAND = 0x10  #: code is not a Command
    BAD_LENGTH = 0x11       #: length not allowed for the command
    BAD_VALUE = 0x12        #: a field out of range (CONTROL)
    NO_SPACE = 0x13         #: LOAD_W / LOAD_A: fewer free queue entries than beats (nothing queued)

    @property
    def is_link_error(self):
        return 0 < self.value < 0x10


#: CONTROL ``flags`` bit: while set, queued operand beats are held back from the core.
CONTROL_HOLD = 0x01

MAGIC = 0x4D51   # b"QM"
VERSION = 1

#: INFO reply payload, first part (23 bytes); the rest of the payload is the core's config as compact
#: JSON (``CoreConfig.to_dict``, keys sorted, UTF-8), so that the host rebuilds exactly the config built.
INFO_LAYOUT = data.StructLayout({
    "magic": 16,              # MAGIC
    "version": 8,             # VERSION
    "max_payload": 16,        # longest request payload, bytes
    "w_depth": 16, "a_depth": 16, "y_depth": 16,            # queue depths: beats, beats, rows
    "w_beat_bytes": 16, "a_beat_bytes": 16, "y_row_bytes": 16,
    "clock_hz": 32,           # the gateware's clock
    "divisor": 16,            # UART clocks per bit (baud = clock_hz / divisor)
})

#: STATUS reply payload (28 bytes), sampled in one cycle.
STATUS_LAYOUT = data.StructLayout({
    "busy": 1,                # a tile is open, in flight or draining (queued beats not counted)
    "overflow": 1,            # sticky: an accumulator saturated
    "error": 1,               # sticky: a tile started with a mode the build lacks
    "hold": 1,                # CONTROL hold flag
    "reserved": 4,
    "mode": 8,                # CONTROL mode
    "k_beats_m1": 32,         # CONTROL k_beats_m1
    "cycles": 48,             # core cycles with busy high
    "macs": 48,               # MACs issued
    "w_level": 16, "a_level": 16, "y_level": 16,   # queued beats, beats, rows
    "link_errors": 16,        # link-error replies sent (wraps)
    "command_errors": 16,     # command-error replies sent (wraps)
})

#: CONTROL request payload (6 bytes).
CONTROL_LAYOUT = data.StructLayout({"mode": 8, "k_beats_m1": 32, "flags": 8})

#: READ_Y request payload (2 bytes).
READ_LAYOUT = data.StructLayout({"max_rows": 16})


def pack_fields(layout, values):
    """``values`` (a mapping of field name to int; missing fields are 0) -> the payload's little-endian
    bytes (:class:`qmac.hw.spec.payload.PayloadFormat`)."""
    fmt = payload_format(layout)
    return fmt.pack(values).to_bytes(fmt.bytes, "little")


def unpack_fields(layout, raw):
    """Little-endian bytes of the payload -> dict of field name to int."""
    fmt = payload_format(layout)
    if len(raw) != fmt.bytes:
        raise ValueError(f"layout of {fmt.bytes} bytes cannot be read from {len(raw)} bytes")
    return fmt.unpack(int.from_bytes(raw, "little"))


def beat_bytes(config, command):
    """Bytes of one operand beat of ``LOAD_W`` (R vectors) or ``LOAD_A`` (C vectors): the stream payload
    (:func:`qmac.hw.spec.layouts.operand_layout`) rounded up to whole bytes, least significant byte first."""
    vectors = {Command.LOAD_W: config.rows, Command.LOAD_A: config.cols}[command]
    return payload_format(operand_layout(config, vectors, activations=command == Command.LOAD_A)).bytes


def row_bytes(config):
    """Bytes of one result row in a ``READ_Y`` reply: the result payload rounded up to whole bytes."""
    return payload_format(result_layout(config)).bytes


def info_payload(config, *, max_payload, w_depth, a_depth, y_depth, clock_hz, divisor):
    """The INFO reply payload of a host link around a core built for ``config``."""
    head = pack_fields(INFO_LAYOUT, {
        "magic": MAGIC, "version": VERSION, "max_payload": max_payload,
        "w_depth": w_depth, "a_depth": a_depth, "y_depth": y_depth,
        "w_beat_bytes": beat_bytes(config, Command.LOAD_W), "a_beat_bytes": beat_bytes(config, Command.LOAD_A),
        "y_row_bytes": row_bytes(config), "clock_hz": clock_hz, "divisor": divisor,
    })
    return head + json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def parse_info(payload):
    """Inverse of :func:`info_payload`: ``(fields, config)``.

    Raises
    ------
    ValueError
        Not a qmac host link of this version, or the config is not one this host can build, or the beat
        and row sizes it states differ from the host's for that config.
    """
    size = INFO_LAYOUT.size // 8
    fields = unpack_fields(INFO_LAYOUT, payload[:size]) if len(payload) > size else None
    if fields is None or fields["magic"] != MAGIC or fields["version"] != VERSION:
        raise ValueError(f"INFO payload {payload[:8].hex()}... is not from a qmac host link of version {VERSION}")
    try:
        config = CoreConfig.from_dict(json.loads(payload[size:].decode()))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"INFO config is not JSON: {e}") from None
    sizes = {"w_beat_bytes": beat_bytes(config, Command.LOAD_W), "a_beat_bytes": beat_bytes(config, Command.LOAD_A),
             "y_row_bytes": row_bytes(config)}
    for name, size in sizes.items():
        if fields[name] != size:
            raise ValueError(f"INFO {name} is {fields[name]}, but this host computes {size} for {config}")
    return fields, config
