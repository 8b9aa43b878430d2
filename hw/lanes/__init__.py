"""Lane multipliers: one 8-bit operand lane's product(s) in logic or on a DSP block.

:data:`LANE_UNITS` maps each :class:`~qmac.hw.spec.multipliers.Multiplier` class (config key ``multiplier``,
registry :data:`qmac.hw.spec.multipliers.MULTIPLIERS`) to the component that computes one block of its lanes.
"""

from qmac.hw.spec.multipliers import Logic, LogicPipelined, Mult18, Mult18Fip, SbMac16
from qmac.hw.lanes.lane_pair_product import LanePairProduct
from qmac.hw.lanes.lane_product import LaneProduct
from qmac.hw.lanes.packed_lane_product import PackedLaneProduct
from qmac.hw.lanes.pipelined_lane_product import PipelinedLaneProduct
from qmac.hw.lanes.winograd_pair_product import WinogradPairProduct

__all__ = ["LANE_UNITS"]

#: :class:`~qmac.hw.spec.multipliers.Multiplier` class -> the component computing one block of
#: ``lanes_per_block`` lanes (its one parameter: ``modes``).
LANE_UNITS = {Logic: LaneProduct, LogicPipelined: PipelinedLaneProduct, SbMac16: LanePairProduct,
              Mult18: PackedLaneProduct, Mult18Fip: WinogradPairProduct}
