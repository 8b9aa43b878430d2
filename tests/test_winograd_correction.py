"""WinogradCorrection in Amaranth's simulator against its golden twin, one operand vector per cycle with results
read ``latency`` cycles later."""

import numpy as np
import pytest
from amaranth.back import verilog

from qmac.hw.boards import ULX3S_85F
from qmac.hw.spec.config import ConfigError
from qmac.hw.lanes.winograd_correction import WinogradCorrection
from qmac.sim.winograd_correction import winograd_correction

#: Lane pairs at the ends of the range: INT8 -128 * -128, -128 * 127; INT4 -8 * -8 and -8 * 7 in both lanes;
#: and mixed signs.
ENDS = [[0x80, 0x80], [0x80, 0x7F], [0x88, 0x88], [0x78, 0x78], [0x8F, 0x71]]


@pytest.mark.parametrize("modes", [("int8",), ("int4",), ("int8", "int4")])
@pytest.mark.parametrize("lanes,levels", [(2, 1), (4, 2), (8, 1)])
def test_stream(lanes, levels, modes, pysim_stream):
    rng = np.random.default_rng(lanes)
    dut = WinogradCorrection(lanes, modes, levels)
    n = 1500
    v = rng.integers(0, 256, (n, lanes)).astype(np.uint8)
    int4 = rng.integers(0, 2, n).astype(bool) if len(modes) > 1 else np.full(n, modes == ("int4",))
    for k, mode in enumerate(modes):   # the range ends in every pair, in each mode built
        v[len(ENDS) * k:len(ENDS) * (k + 1)] = np.tile(ENDS, lanes // 2)
        int4[len(ENDS) * k:len(ENDS) * (k + 1)] = mode == "int4"
    beats = [[(dut.v.as_value(), int.from_bytes(v[t].tobytes(), "little"))]
             + ([(dut.int4, int(int4[t]))] if len(modes) > 1 else []) for t in range(n)]
    got = pysim_stream(dut, beats, dut.sum)
    expected = np.where(int4, winograd_correction(v, "int4"), winograd_correction(v, "int8"))
    assert np.array_equal(got, expected)


def test_bad_lanes():
    with pytest.raises(ConfigError, match=r"^Winograd correction lanes must be one of 2, 4, 8, 16, 32, 64, not 3$"):
        WinogradCorrection(3, ("int8",))


@pytest.mark.parametrize("modes,copies", [(("int8", "int4"), 1), (("int8",), 0)])
def test_ecp5_mode_copy_is_a_primitive(modes, copies):
    """On ECP5 the local copy of ``int4`` is a TRELLIS_FF instance (Yosys would merge an inferred one with
    every other register of ``int4``, the array-wide fan-out the copy exists to cut); single-mode builds
    have no mode to copy."""
    text = verilog.convert(WinogradCorrection(4, modes), platform=ULX3S_85F(), name="c", emit_src=False)
    assert text.count("TRELLIS_FF ") == copies
