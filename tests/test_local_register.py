"""LocalRegister: one cycle of delay, and on ECP5 one kept flip-flop per bit and per instance, where Yosys
merges ordinary registers with the same input."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.boards import ULX3S_85F
from qmac.hw.spec.config import ConfigError
from qmac.hw.local_register import LocalRegister
from qmac.toolchain.synth import synth_fpga


def test_delays_one_cycle(pysim_stream):
    rng = np.random.default_rng(1)
    dut = LocalRegister(7)
    values = [int(v) for v in rng.integers(0, 1 << 7, 200)]
    assert dut.latency == 1
    assert pysim_stream(dut, [[(dut.d, v)] for v in values], dut.q) == values


class _Copies(wiring.Component):
    """``copies`` registers of ``d`` side by side: LocalRegisters, or plain registers."""

    def __init__(self, copies, local):
        self._copies, self._local = copies, local
        super().__init__({"d": In(8), "q": Out(8 * copies)})

    def elaborate(self, platform):
        m = Module()
        outs = []
        for i in range(self._copies):
            if self._local:
                m.submodules[f"copy{i}"] = copy = LocalRegister(8)
                m.d.comb += copy.d.eq(self.d)
                outs.append(copy.q)
            else:
                q = Signal(8, name=f"q{i}", reset_less=True)
                m.d.sync += q.eq(self.d)
                outs.append(q)
        m.d.comb += self.q.eq(Cat(*outs))
        return m


@pytest.mark.parametrize("local,ffs", [(True, 3 * 8), (False, 8)])
def test_ecp5_keeps_each_copy(tmp_path, local, ffs):
    src = verilog.convert(_Copies(3, local), name="copies", platform=ULX3S_85F(), emit_src=False)
    assert ("TRELLIS_FF" in src) == local
    result = synth_fpga(src, "copies", "ecp5", tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result["ffs"] == ffs


@pytest.mark.parametrize("width", [0, -1, 2.0, True, None])
def test_width_checked(width):
    with pytest.raises(ConfigError, match=rf"^LocalRegister width must be a positive integer, not {width!r}$"):
        LocalRegister(width)
