"""cocotb tests of the emitted host link (UART + command engine + core), driven by the host driver
(:class:`qmac.host.HostLinkDriver`) through a simulated UART, bit by bit (run through
:func:`qmac.tb.link_runner.run_host_link_cocotb`)."""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from qmac.hw.spec.config import code_range
from qmac.hw.spec.link_protocol import (CONTROL_LAYOUT, CRC, CRC_BYTES, HEADER_BYTES, SLIP_END, SLIP_ESC, SLIP_ESC_END,
                                SLIP_ESC_ESC, Command, Status, beat_bytes, pack_fields)
from qmac.host import CommandError, HostLinkDriver, SlipReader, encode_packet, link_check, slip_encode
from qmac.tb.sim_transport import SimulatedUart
from qmac.sim.datapaths import reference_error
from qmac.sim.gemm import plan_gemm
from qmac.tb.link_runner import link_from_env
from qmac.tb.runner import config_from_env

CONFIG = config_from_env()
LINK = link_from_env()
#: The clock period.
PERIOD_NS = 10
#: Simulated seconds the driver waits for each chunk of a reply (100k cycles at 10 ns).
TIMEOUT = 1e-3


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    dut.rst.value = 1
    uart = SimulatedUart(dut.clk, dut.rx, dut.tx, LINK["divisor"], PERIOD_NS)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    return uart, HostLinkDriver(uart, timeout=TIMEOUT)


def _codes(rng, mode, shape, activations=False):
    lo, hi = code_range(mode, activations)
    return rng.integers(lo, hi + 1, shape)


@cocotb.test()
async def info_and_status(dut):
    """INFO rebuilds the config the gateware was built for; STATUS reads zero after reset."""
    uart, driver = await _start(dut)
    fields, config = await bridge(lambda: driver.info)()
    assert config == CONFIG, (config, CONFIG)
    assert fields["max_payload"] == LINK["max_payload"] and fields["divisor"] == LINK["divisor"], fields
    assert fields["w_depth"] == fields["a_depth"] == fields["y_depth"] == LINK["queue_depth"], fields
    st = await bridge(driver.status)()
    assert all(v == 0 for v in st.values()), st
    assert uart.framing_errors == 0


@cocotb.test()
@cocotb.parametrize(mode=CONFIG.modes)
async def gemm_end_to_end(dut, mode):
    """GEMMs of odd shapes through the whole link match the golden model row for row, including one whose
    tiles are longer than the operand queues (streamed in parts)."""
    uart, driver = await _start(dut)
    rng = np.random.default_rng(3)
    R, C, E = CONFIG.rows, CONFIG.cols, CONFIG.elements_per_beat(mode)
    for n, k, m in [(R, E, C), (2 * R + 1, 3 * E - 1, C + 1), (R, E * (LINK["queue_depth"] + 3), 1)]:
        W, A = _codes(rng, mode, (n, k)), _codes(rng, mode, (k, m), activations=True)
        res = await bridge(driver.gemm)(mode, W, A)
        plan = plan_gemm(CONFIG, mode, W.shape, A.shape)
        assert res["bit_exact"], f"{n}x{k}x{m} {mode}: result rows differ from the golden model"
        err = reference_error(plan, res["Y"], W, A)   # None with saturating accumulators
        assert err is None or err <= 0, f"assembled Y off the reference product by {err} beyond its tolerance"
        assert res["macs"] == plan.beats * CONFIG.macs_per_cycle(mode), res
        assert res["cycles"] >= plan.beats, res
    assert uart.framing_errors == 0 and driver.link_errors == [] and driver.bad_replies == 0


def _fuzz(uart, driver, rng):
    """Line noise and malformed requests, each followed by a valid request that must work."""
    max_payload, depth = LINK["max_payload"], LINK["queue_depth"]
    command_errors = 0

    def after(raw, expected=None):
        """Send ``raw`` bytes, then STATUS; check the link errors the device reported in between."""
        before = len(driver.link_errors)
        uart.write(raw)
        st = driver.status()
        if expected is None:
            expected = [link_check(p, ok, max_payload) for p, ok in SlipReader().feed(raw + bytes([SLIP_END]))]
            assert None not in expected, f"noise {raw.hex()} formed a valid packet; change the seed"
        got = driver.link_errors[before:]
        assert got == expected, f"after {raw[:32].hex()}: link errors {got}, expected {expected}"
        return st

    # Random noise, rich in SLIP specials.
    for _ in range(12):
        pool = [SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC, *rng.integers(0, 256, 4)]
        after(bytes(int(rng.choice(pool)) for _ in range(int(rng.integers(1, 48)))))

    control = pack_fields(CONTROL_LAYOUT, {"mode": 1, "k_beats_m1": 1, "flags": 1})
    good = encode_packet(0x55, Command.CONTROL, control)
    st = after(slip_encode(good[:-1] + bytes([good[-1] ^ 0xFF])), [Status.BAD_CRC])
    assert st["mode"] == 0 and st["hold"] == 0 and st["k_beats_m1"] == 0, "a request with a bad CRC acted"
    after(slip_encode(good)[:-4], [Status.TRUNCATED])
    after(slip_encode(good[:HEADER_BYTES + 2] + good[-2:]), [Status.TRUNCATED])

    def with_crc(body):
        return slip_encode(body + CRC.compute(body).to_bytes(CRC_BYTES, "little"))
    after(with_crc(bytes([1, Command.LOAD_W]) + (60000).to_bytes(2, "little") + bytes(10)), [Status.OVERSIZED])
    huge = max_payload + beat_bytes(CONFIG, Command.LOAD_W)
    after(slip_encode(encode_packet(2, Command.LOAD_W, bytes(huge))), [Status.OVERSIZED])
    after(with_crc(bytes([3, Command.READ_Y]) + (2).to_bytes(2, "little") + bytes(4)), [Status.OVERSIZED])
    after(bytes([SLIP_END, 1, SLIP_ESC, 0x41, 2, SLIP_END]), [Status.LINE_ERROR])
    before = len(driver.link_errors)
    uart.write_levels([0] * 25 + [1] * 3)   # a break: a byte whose stop bit is 0
    driver.status()
    assert driver.link_errors[before:] == [Status.LINE_ERROR], driver.link_errors[before:]

    # Requests that arrive intact but are refused; none may act.
    bb = beat_bytes(CONFIG, Command.LOAD_W)
    refused = [
        (0x7F, b"", Status.UNKNOWN_COMMAND), (0x00, b"", Status.UNKNOWN_COMMAND),
        (Command.INFO, b"\x00", Status.BAD_LENGTH), (Command.STATUS, b"\x00", Status.BAD_LENGTH),
        (Command.CLEAR, b"\x00", Status.BAD_LENGTH), (Command.CONTROL, control[:-1], Status.BAD_LENGTH),
        (Command.LOAD_W, b"", Status.BAD_LENGTH), (Command.LOAD_W, bytes(bb + 1), Status.BAD_LENGTH),
        (Command.READ_Y, b"\x01", Status.BAD_LENGTH),
        (Command.CONTROL, pack_fields(CONTROL_LAYOUT, {"mode": 1 << CONFIG.ctrl_mode_bits}), Status.BAD_VALUE),
        (Command.CONTROL, pack_fields(CONTROL_LAYOUT, {"k_beats_m1": 1 << CONFIG.k_bits}), Status.BAD_VALUE),
        (Command.CONTROL, pack_fields(CONTROL_LAYOUT, {"flags": 2}), Status.BAD_VALUE),
    ]
    for code, payload, status in refused:
        try:
            driver.request(code, payload)
        except CommandError as e:
            assert e.status == status, f"{e}, expected {status.name}"
            command_errors += 1
        else:
            raise AssertionError(f"request {code:#04x} with {payload.hex()} was not refused")
    st = driver.status()
    assert st["mode"] == 0 and st["hold"] == 0 and st["w_level"] == 0, st

    # A full queue refuses a load whole; CLEAR empties it.
    driver.control(CONFIG.modes[0], 1, hold=True)
    driver.load("w", list(range(depth)))
    try:
        driver.load("w", [1])
    except CommandError as e:
        assert e.status == Status.NO_SPACE, str(e)
        command_errors += 1
    else:
        raise AssertionError("a load into a full queue was not refused")
    st = driver.status()
    assert st["w_level"] == depth and st["hold"] == 1, st
    assert st["link_errors"] == len(driver.link_errors) and st["command_errors"] == command_errors, st
    driver.clear()
    st = driver.status()
    assert st["w_level"] == 0 and st["hold"] == 1 and st["cycles"] == 0, st


@cocotb.test()
async def link_fuzz(dut):
    """Noise, bad CRCs, truncated and oversized packets get link-error replies; bad lengths, values and
    full queues get command errors; none changes any state, and a GEMM afterwards is still exact."""
    uart, driver = await _start(dut)
    await bridge(_fuzz)(uart, driver, np.random.default_rng(11))
    mode = CONFIG.modes[-1]
    rng = np.random.default_rng(5)
    W = _codes(rng, mode, (CONFIG.rows + 1, 2 * CONFIG.elements_per_beat(mode) + 1))
    A = _codes(rng, mode, (W.shape[1], CONFIG.cols + 1), activations=True)
    res = await bridge(driver.gemm)(mode, W, A)
    assert res["bit_exact"], "a GEMM after the fuzzing differs from the golden model"
    assert uart.framing_errors == 0 and driver.bad_replies == 0
