"""The host link's wire protocol definitions (hw/link_protocol.py)."""

import json

import pytest

from qmac.hw.spec.config import preset
from qmac.hw.spec.link_protocol import (CONTROL_LAYOUT, CRC, INFO_LAYOUT, STATUS_LAYOUT, Command, Status, beat_bytes,
                                   info_payload, pack_fields, parse_info, row_bytes, unpack_fields)


def test_crc_is_x25():
    assert CRC.compute(b"123456789") == 0x906E      # the catalogue's check value
    assert CRC.residue() == 0xF0B8


def test_layout_sizes_are_whole_bytes():
    assert (INFO_LAYOUT.size, STATUS_LAYOUT.size, CONTROL_LAYOUT.size) == (23 * 8, 28 * 8, 6 * 8)


def test_fields_round_trip_little_endian():
    raw = pack_fields(CONTROL_LAYOUT, {"mode": 1, "k_beats_m1": 0x01020304, "flags": 1})
    assert raw == bytes([1, 4, 3, 2, 1, 1])
    assert unpack_fields(CONTROL_LAYOUT, raw) == {"mode": 1, "k_beats_m1": 0x01020304, "flags": 1}
    with pytest.raises(ValueError, match=r"^field 'mode' holds 8 bits; 256 does not fit$"):
        pack_fields(CONTROL_LAYOUT, {"mode": 256})
    with pytest.raises(ValueError, match=r"^layout of 6 bytes cannot be read from 5 bytes$"):
        unpack_fields(CONTROL_LAYOUT, raw[:5])


def test_status_codes():
    assert [s.is_link_error for s in Status] == [s.value in range(1, 0x10) for s in Status]
    assert {c.value for c in Command} == set(range(1, 8))


def test_info_round_trip_and_checks():
    cfg = preset("tiny")
    payload = info_payload(cfg, max_payload=512, w_depth=256, a_depth=256, y_depth=256, clock_hz=30_000_000,
                           divisor=260)
    fields, config = parse_info(payload)
    assert config == cfg and fields["clock_hz"] == 30_000_000 and fields["w_beat_bytes"] == beat_bytes(cfg, Command.LOAD_W)
    assert fields["y_row_bytes"] == row_bytes(cfg)
    with pytest.raises(ValueError, match=r"is not from a qmac host link of version 1$"):
        parse_info(b"XY" + payload[2:])
    with pytest.raises(ValueError, match=r"^INFO config is not JSON"):
        parse_info(payload[:23] + b"{")
    other = json.dumps(preset("tiny").replace(rows=3).to_dict(), sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(ValueError, match=r"^INFO w_beat_bytes is 8, but this host computes 12"):
        parse_info(payload[:23] + other)


def test_beat_and_row_bytes():
    cfg = preset("tiny")
    assert beat_bytes(cfg, Command.LOAD_W) == cfg.rows * cfg.lanes
    assert beat_bytes(cfg, Command.LOAD_A) == cfg.cols * cfg.lanes
    assert row_bytes(cfg) == -(-(cfg.cols * cfg.acc_format.bits + 2) // 8)
