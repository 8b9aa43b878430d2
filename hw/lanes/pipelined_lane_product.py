""":class:`LaneProduct` with a register in the middle of its shift-and-add array."""

from qmac.hw.spec.multipliers import LogicPipelined
from qmac.hw.lanes.lane_product import LaneProduct

__all__ = ["PipelinedLaneProduct"]


class PipelinedLaneProduct(LaneProduct):
    """:class:`~qmac.hw.lanes.lane_product.LaneProduct`'s result one cycle later: the balanced sums of rows 0-3
    and of rows 4-7 (each modulo ``2**16``) and the flag of the modes that split the rows (INT4, W4A8) are
    registered, and the final addition, the constant and the INT4 shift or the W4A8 re-alignment follow
    the register. About half the logic depth of a lane per cycle, for
    32 (+1) flip-flops. :attr:`latency` = 1; parameters and members are :class:`LaneProduct`'s."""

    STAGES = 1

    @property
    def latency(self):
        """Register stages from the operands to ``p``."""
        return LogicPipelined.stages
