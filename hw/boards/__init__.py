"""FPGA boards for the host link: amaranth-boards platforms with the link's pins (from
``constraints/``) and a ``sync`` clock at a requested frequency."""

from qmac.hw.boards.board import HostLinkBoard, HostLinkTop
from qmac.hw.boards.icebreaker import ICEBreaker
from qmac.hw.boards.ulx3s import ULX3S_85F

__all__ = ["BOARDS", "HostLinkBoard", "HostLinkTop", "ICEBreaker", "ULX3S_85F"]

#: ``qmac bitstream --board`` names.
BOARDS = {"icebreaker": ICEBreaker, "ulx3s-85f": ULX3S_85F}
