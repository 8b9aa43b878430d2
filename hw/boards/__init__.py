"""FPGA boards for the host link: amaranth-boards platforms with the link's pins (from
``constraints/``) and a ``sync`` clock at a requested frequency."""

from .board import HostLinkBoard, HostLinkTop
from .icebreaker import ICEBreaker
from .ulx3s import ULX3S_85F

__all__ = ["BOARDS", "HostLinkBoard", "HostLinkTop", "ICEBreaker", "ULX3S_85F"]

#: ``qmac bitstream --board`` names.
BOARDS = {"icebreaker": ICEBreaker, "ulx3s-85f": ULX3S_85F}
