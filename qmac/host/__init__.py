"""Host side of the host link (imported as ``qmac.host``): packet framing, byte transports (a serial
port; :mod:`qmac.tb.sim_transport` for cocotb) and the driver that computes GEMMs on a board.
The wire protocol itself is :mod:`qmac.hw.spec.link_protocol` (docs/host_link.md)."""

from qmac.host.driver import CommandError, HostLinkDriver, LinkError, LinkTimeout
from qmac.host.framing import FrameError, Packet, SlipReader, decode_packet, encode_packet, link_check, slip_encode
from qmac.host.transport import SerialTransport, Transport

__all__ = ["HostLinkDriver", "LinkError", "LinkTimeout", "CommandError", "Transport", "SerialTransport",
           "Packet", "FrameError", "encode_packet", "decode_packet", "slip_encode", "SlipReader", "link_check"]
