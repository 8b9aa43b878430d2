"""The host side of the host link: requests, replies, and GEMMs computed on the board."""

import time
from collections import deque

import numpy as np

from qmac.hw.spec.config import MODE_CODES
from qmac.hw.spec.link_protocol import (CONTROL_HOLD, CONTROL_LAYOUT, READ_LAYOUT, STATUS_LAYOUT, Command, Status, pack_fields,
                                parse_info, unpack_fields)
from qmac.sim.gemm import assemble, expected_results, operand_beats, plan_gemm
from qmac.sim.packing import unpack_results
from qmac.host.framing import FrameError, SlipReader, decode_packet, encode_packet, slip_encode

__all__ = ["LinkError", "LinkTimeout", "CommandError", "HostLinkDriver"]


class LinkError(RuntimeError):
    """The host link did not answer as the protocol says."""


class LinkTimeout(LinkError):
    """No reply to a request within the driver's timeout."""


def _name(code):
    return Command(code).name if code in Command._value2member_map_ else f"command {code:#04x}"


class CommandError(LinkError):
    """The board received a request intact and refused it: ``code`` is the request's code, ``status`` the
    reply's :class:`Status`."""

    def __init__(self, code, status):
        self.code, self.status = code, status
        super().__init__(f"{_name(code)} refused: {status.name}")


class HostLinkDriver:
    """Talks to a :class:`~qmac.hw.link.host_link.HostLink` over a :class:`~qmac.host.transport.Transport`.

    Every request carries the next sequence number; :meth:`request` returns the payload of the OK reply
    that echoes it. Replies with another sequence number (stale) and link-error replies (answers to line
    noise or to a request damaged on the way) are skipped; link errors are appended to
    :attr:`link_errors` and replies damaged on the way back counted in :attr:`bad_replies`.

    Parameters
    ----------
    transport : Transport
    timeout : float
        Seconds to wait for each chunk of a reply before :class:`LinkTimeout`.
    """

    def __init__(self, transport, timeout=2.0):
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._transport = transport
        self._timeout = timeout
        self._reader = SlipReader()
        self._received = deque()
        self._seq = 0
        self._info = None
        self.link_errors = []
        self.bad_replies = 0

    # -- requests ------------------------------------------------------------------------------------

    def request(self, code, payload=b""):
        """Send one request (``code``: a :class:`Command`, or any byte) and return its OK reply's payload;
        raises :class:`CommandError` on an error reply to it and :class:`LinkTimeout` when none comes."""
        self._seq = (self._seq + 1) & 0xFF
        self._transport.write(slip_encode(encode_packet(self._seq, code, payload)))
        while True:
            raw, intact = self._next_packet(code)
            try:
                if not intact:
                    raise FrameError("bad SLIP escape")
                seq, answer, reply = decode_packet(raw)
            except FrameError:
                self.bad_replies += 1
                continue
            try:
                status = Status(answer)
            except ValueError:
                raise LinkError(f"reply to {_name(code)} has unknown status {answer:#04x}") from None
            if status.is_link_error:
                self.link_errors.append(status)
            elif seq == self._seq:
                if status != Status.OK:
                    raise CommandError(code, status)
                return reply

    def _next_packet(self, code):
        while not self._received:
            data = self._transport.read(4096, self._timeout)
            if not data:
                raise LinkTimeout(f"no reply to {_name(code)} within {self._timeout} s "
                                  f"(link errors so far: {[s.name for s in self.link_errors]})")
            self._received.extend(self._reader.feed(data))
        return self._received.popleft()

    @property
    def info(self):
        """The board's INFO: ``(fields, config)`` (:func:`qmac.hw.spec.link_protocol.parse_info`), read once."""
        if self._info is None:
            try:
                self._info = parse_info(self.request(Command.INFO))
            except ValueError as e:
                raise LinkError(str(e)) from None
        return self._info

    @property
    def config(self):
        """The :class:`~qmac.hw.spec.config.CoreConfig` the board was built for."""
        return self.info[1]

    def status(self):
        """STATUS fields as a dict (:data:`~qmac.hw.spec.link_protocol.STATUS_LAYOUT`)."""
        return unpack_fields(STATUS_LAYOUT, self.request(Command.STATUS))

    def control(self, mode, k_beats, hold=False):
        """Set the mode (name or code) and tile length in beats for the tiles that start next, and
        whether queued beats are held back from the core."""
        code = MODE_CODES[mode] if isinstance(mode, str) else mode
        self.request(Command.CONTROL, pack_fields(CONTROL_LAYOUT, {
            "mode": code, "k_beats_m1": k_beats - 1, "flags": CONTROL_HOLD if hold else 0}))

    def clear(self):
        """Reset the core and its queues; counters and sticky flags read zero afterwards."""
        self.request(Command.CLEAR)

    def load(self, stream, words):
        """Queue operand beats (payload integers, :func:`qmac.sim.gemm.operand_beats`) on stream ``"w"``
        or ``"a"``, as many per request as the board's payload buffer takes. The caller makes sure the
        queue has room; a request that would overflow it is refused whole (``NO_SPACE``)."""
        command = {"w": Command.LOAD_W, "a": Command.LOAD_A}[stream]
        fields = self.info[0]
        size = fields[f"{stream}_beat_bytes"]
        per_request = fields["max_payload"] // size
        for i in range(0, len(words), per_request):
            chunk = words[i:i + per_request]
            self.request(command, b"".join(w.to_bytes(size, "little") for w in chunk))

    def read_rows(self, max_rows):
        """Take up to ``max_rows`` result rows from the queue (:class:`~qmac.sim.packing.ResultRow`)."""
        fields, config = self.info
        payload = self.request(Command.READ_Y, pack_fields(READ_LAYOUT, {"max_rows": max_rows}))
        size = fields["y_row_bytes"]
        return unpack_results([int.from_bytes(payload[i:i + size], "little") for i in range(0, len(payload), size)],
                              config)

    # -- a whole GEMM --------------------------------------------------------------------------------

    def gemm(self, mode, W, A, w_scales=None, a_scales=None):
        """Compute ``W @ A`` (integer codes; scales only on cores with scale units) on the board and
        compare every result row with the golden model.

        The core and its queues are cleared first. Tiles go in batches that fit the operand queues and
        the result queue: each batch is queued with ``hold`` set and then released, so the core runs it
        at full speed and its cycle counter measures the core, not the serial line. A tile longer than
        the queues is streamed in queue-sized parts (the core then waits for the line between parts).

        Returns
        -------
        dict
            ``Y`` (N x M int64), ``bit_exact`` (every row equals the golden model's), ``saturated``,
            ``cycles`` and ``macs`` (the core's counters), ``ideal_cycles`` (``N*K*M`` over the MACs per
            cycle), ``utilization`` (``ideal_cycles / cycles``), ``beats``, ``tiles`` and ``seconds``
            (wall time).
        """
        fields, config = self.info
        plan = plan_gemm(config, mode, np.shape(W), np.shape(A))
        w_words, a_words = operand_beats(plan, W, A, w_scales, a_scales)
        start = time.perf_counter()
        depth = min(fields["w_depth"], fields["a_depth"])
        batch = plan.k_beats * max(1, min(depth // plan.k_beats, fields["y_depth"] // config.rows))
        self.clear()
        rows, sent = [], 0
        while len(rows) < plan.tiles * config.rows:
            st = self.status()
            if sent < len(w_words) and st["w_level"] == 0 and st["a_level"] == 0:
                end = min(sent + depth, (sent // batch + 1) * batch, len(w_words))
                self.control(mode, plan.k_beats, hold=True)
                self.load("w", w_words[sent:end])
                self.load("a", a_words[sent:end])
                self.control(mode, plan.k_beats, hold=False)
                sent = end
            rows += self.read_rows(fields["y_depth"])
        st = self.status()
        expected = expected_results(plan, W, A, w_scales, a_scales)
        ideal = plan.useful_macs / config.macs_per_cycle(mode)
        return {
            "Y": assemble(plan, [r.data for r in rows]),
            "bit_exact": rows == expected,
            "saturated": any(r.saturated for r in rows),
            "cycles": st["cycles"], "macs": st["macs"], "ideal_cycles": ideal,
            "utilization": ideal / st["cycles"] if st["cycles"] else None,
            "beats": plan.beats, "tiles": plan.tiles, "seconds": time.perf_counter() - start,
        }
