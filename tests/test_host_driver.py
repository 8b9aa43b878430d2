"""The host driver (qmac/host/driver.py) against a scripted transport: reply matching, error replies,
timeouts, request splitting. (End to end on the gateware: tests/test_host_link.py.)"""

import pytest

from qmac.host import (CommandError, HostLinkDriver, LinkError, LinkTimeout, SlipReader, Transport, decode_packet,
                       encode_packet, slip_encode)
from qmac.hw.spec.config import preset
from qmac.hw.spec.link_protocol import Command, Status, info_payload

CONFIG = preset("tiny")
INFO = info_payload(CONFIG, max_payload=20, w_depth=8, a_depth=8, y_depth=8, clock_hz=1_000_000, divisor=8)


class ScriptedLink(Transport):
    """Answers each request with ``respond(seq, code, payload)``: the raw bytes to deliver."""

    def __init__(self, respond):
        self._respond = respond
        self._reader = SlipReader()
        self._pending = b""
        self.requests = []

    def write(self, data):
        for packet, ok in self._reader.feed(data):
            request = decode_packet(packet)
            self.requests.append(request)
            self._pending += self._respond(*request)

    def read(self, size, timeout):
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def reply(seq, status, payload=b""):
    return slip_encode(encode_packet(seq, status, payload))


def test_reply_matching_skips_noise_stale_and_link_errors():
    def respond(seq, code, payload):
        damaged = bytearray(reply(seq, Status.OK, b"bad"))
        damaged[-2] ^= 0x40
        return (reply(seq - 1, Status.OK, b"stale") + reply(0, Status.BAD_CRC) + bytes(damaged)
                + reply(seq, Status.OK, b"good"))
    driver = HostLinkDriver(ScriptedLink(respond))
    assert driver.request(Command.STATUS) == b"good"
    assert driver.link_errors == [Status.BAD_CRC] and driver.bad_replies == 1


def test_command_error_and_timeout():
    driver = HostLinkDriver(ScriptedLink(lambda seq, code, payload: reply(seq, Status.NO_SPACE)))
    with pytest.raises(CommandError, match=r"^LOAD_W refused: NO_SPACE$") as info:
        driver.request(Command.LOAD_W, b"\x00" * 8)
    assert info.value.status == Status.NO_SPACE
    with pytest.raises(CommandError, match=r"^command 0x7f refused: NO_SPACE$"):
        driver.request(0x7F)
    silent = HostLinkDriver(ScriptedLink(lambda seq, code, payload: b""), timeout=0.01)
    with pytest.raises(LinkTimeout, match=r"^no reply to INFO within 0.01 s"):
        silent.info
    with pytest.raises(ValueError, match=r"^timeout must be a positive number of seconds, not 0$"):
        HostLinkDriver(ScriptedLink(None), timeout=0)


def test_info_and_load_splitting():
    def respond(seq, code, payload):
        return reply(seq, Status.OK, INFO if code == Command.INFO else b"")
    link = ScriptedLink(respond)
    driver = HostLinkDriver(link)
    assert driver.config == CONFIG
    driver.load("w", list(range(5)))   # 8-byte beats, 20-byte payloads: 2 + 2 + 1 beats
    loads = [r for r in link.requests if r.code == Command.LOAD_W]
    assert [len(r.payload) for r in loads] == [16, 16, 8]
    assert loads[0].payload[8:16] == (1).to_bytes(8, "little")


def test_info_from_something_else():
    driver = HostLinkDriver(ScriptedLink(lambda seq, code, payload: reply(seq, Status.OK, b"\x00" * 30)))
    with pytest.raises(LinkError, match=r"is not from a qmac host link of version 1$"):
        driver.info
