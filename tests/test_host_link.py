"""The host link (hw/host_link.py) in cocotb on both simulators, driven by the host driver through a
simulated UART: INFO/STATUS, GEMMs end to end against the golden model, and link fuzzing, for an INT core
(with and without the operand stage), a core with W4A8 (3-bit mode, 2V-lane activation beats) and an LNS
core."""

import pytest

from qmac.hw.spec.config import preset
from qmac.hw.link.host_link import HostLink
from qmac.tb.link_runner import run_host_link_cocotb
from qmac.tb.runner import SIMULATORS

#: Four clocks per bit keeps the simulation short; small queues and buffer reach their limits quickly.
LINK = {"divisor": 4, "clock_hz": 100_000_000, "max_payload": 64, "queue_depth": 16, "receive_depth": 16}


@pytest.mark.parametrize("name,stream_stages", [("tiny", False), ("tiny", True), ("tiny-lns8", False),
                                                  ("tiny-w4a8", False)])
@pytest.mark.parametrize("sim", SIMULATORS)
def test_host_link_cocotb(sim, name, stream_stages, tb_build_root):
    tests, failed, xml = run_host_link_cocotb(preset(name), LINK | {"stream_stages": stream_stages}, sim,
                                              "qmac.tb.cocotb_host_link", build_root=tb_build_root)
    assert tests >= 2 + len(preset(name).modes), f"only {tests} cocotb tests ran; see {xml}"  # a GEMM per mode
    assert failed == 0, f"{failed} of {tests} cocotb tests failed; see {xml.parent / 'sim.log'}"


@pytest.mark.parametrize("kwargs,message", [
    ({"queue_depth": 1}, r"^queue_depth must be an integer from 2 to 65535, not 1$"),
    ({"receive_depth": 70000}, r"^receive_depth must be an integer from 2 to 65535, not 70000$"),
    ({"divisor": 2}, r"^UART divisor must be an integer from 4 to 65535, not 2$"),
    ({"max_payload": 4}, r"^max_payload must be an integer from 8 to 65535, not 4$"),
])
def test_parameters_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HostLink(preset("tiny"), **(LINK | kwargs))


def test_output_stage_refused():
    with pytest.raises(ValueError, match=r"^HostLink does not feed the output stage's requant stream"):
        HostLink(preset("tiny").replace(output_stage=True), **LINK)
