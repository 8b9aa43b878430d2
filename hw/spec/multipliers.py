"""The lane multipliers an INT build can use (config key ``multiplier``): one class per option, registered in
:data:`MULTIPLIERS` by name.

Each class states what the rest of the design needs to know about it: the pipeline stages a lane adds
before the product register (:attr:`Multiplier.stages`), how many lanes one block computes
(:attr:`Multiplier.lanes_per_block`), and what it supports. Config validation, the dot-product unit, the MAC
unit and the array ask the class; the gateware of each lives in ``hw/lanes`` (:data:`qmac.hw.lanes.LANE_UNITS`,
keyed by these classes). Results are identical whichever is chosen (docs/fpga.md compares them).
"""

__all__ = ["Multiplier", "Logic", "LogicPipelined", "SbMac16", "Mult18", "Mult18Fip", "MULTIPLIERS"]


class Multiplier:
    """One ``multiplier`` option. Subclasses set the class attributes; nothing is instantiated."""
    #: The config value.
    name = None
    #: Pipeline stages one lane adds before the dot product's product register.
    stages = 0
    #: Operand lanes one block (one lane unit: LUT array or DSP block) computes.
    lanes_per_block = 1
    #: Usable in a 2:4 sparse build (``sparse = true``); else :attr:`not_sparse` says why not.
    sparse = True
    not_sparse = None
    #: Fewest lanes per scale group (per dot-product unit); :attr:`group_reason` says why.
    min_group_lanes = 1
    group_reason = None
    #: Its lanes compute W4A8 (two INT4 x INT8 products per lane); else :attr:`not_w4a8` says why not.
    w4a8 = True
    not_w4a8 = None
    #: The dot products subtract per-vector corrections (Winograd's fast inner product) that the array
    #: computes once per operand vector, one per row and per column, and feeds every unit (ports ``ca``, ``cw``).
    corrections = False


class Logic(Multiplier):
    """Shift-and-add in LUTs (:class:`~qmac.hw.lanes.lane_product.LaneProduct`), the default."""
    name = "logic"


class LogicPipelined(Multiplier):
    """``logic`` with a register inside each lane's shift-and-add array
    (:class:`~qmac.hw.lanes.pipelined_lane_product.PipelinedLaneProduct`)."""
    name = "logic_pipelined"
    stages = 1


class SbMac16(Multiplier):
    """iCE40 SB_MAC16 blocks in dual 8x8 mode, two lanes per block
    (:class:`~qmac.hw.lanes.lane_pair_product.LanePairProduct`)."""
    name = "sb_mac16"
    lanes_per_block = 2


class Mult18(Multiplier):
    """ECP5 MULT18X18D, one lane per block (:class:`~qmac.hw.lanes.packed_lane_product.PackedLaneProduct`:
    the packed operands registered, then the :class:`~qmac.hw.lanes.mult18.Mult18`'s four stages)."""
    name = "mult18"
    stages = 5
    w4a8 = False
    not_w4a8 = "an 18x18 multiplier cannot pack two INT4 x INT8 products without overlap"


class Mult18Fip(Multiplier):
    """ECP5 MULT18X18D computing Winograd's pair terms, one block per two lanes
    (:class:`~qmac.hw.lanes.winograd_pair_product.WinogradPairProduct`: :class:`Mult18`'s five stages after a
    local copy of the lanes), with one correction per row and per column of the array computed in logic
    (:class:`~qmac.hw.lanes.winograd_correction.WinogradCorrection`)."""
    name = "mult18_fip"
    stages = 6
    lanes_per_block = 2
    sparse = False
    not_sparse = ("a sparse unit selects its own activations, so the per-column Winograd correction cannot be "
                  "shared")
    min_group_lanes = 2
    group_reason = "Winograd's terms pair the lanes of a scale group"
    corrections = True
    w4a8 = False
    not_w4a8 = Mult18.not_w4a8


#: ``multiplier`` name -> its class, in the order the docs list them.
MULTIPLIERS = {cls.name: cls for cls in (Logic, LogicPipelined, SbMac16, Mult18, Mult18Fip)}
