"""cocotb testbench for the emitted core: clock, reset, stream drivers, result monitor, scoreboard.

Inputs are driven at the falling edge and transfers decided in the ReadOnly phase before the rising
edge, so Icarus and Verilator see the same thing.
"""

import random
from dataclasses import fields

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from qmac.hw.spec.config import MODE_CODES
from qmac.sim.gemm import assemble, expected_results, operand_beats, plan_gemm, requant_words
from qmac.sim.packing import unpack_result

__all__ = ["CoreTB", "compare_transactions"]


def compare_transactions(got, expected, what="result row"):
    """Scoreboard: equal transaction lists (records such as :class:`~qmac.sim.packing.ResultRow`), or an
    AssertionError naming the first differing transaction and its differing fields."""
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            names = [f.name for f in fields(e) if getattr(g, f.name) != getattr(e, f.name)]
            raise AssertionError(f"{what} {i} differs in {', '.join(names)}: got {g}, expected {e}")
    if len(got) != len(expected):
        raise AssertionError(f"got {len(got)} {what}s, expected {len(expected)}")


class CoreTB:
    """Owns the DUT's clock, reset, operand drivers and result monitor.

    ``gap`` is the probability that a driver idles (valid low) before each beat; ``ready`` the probability
    that the monitor accepts a result row in a cycle.
    """

    def __init__(self, dut, config, seed=0):
        self.dut = dut
        self.config = config
        self.rng = random.Random(seed)
        self._clock = cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    def _port(self, name):
        return getattr(self.dut, name)

    async def reset(self, cycles=2):
        d = self.dut
        names = ["w__valid", "a__valid", "y__ready", "ctrl__clear"]
        if self.config.output_stage:
            names.append("requant__valid")
        if self.config.log_output:
            names.append("ctrl__log_shift")
        for name in names + ["ctrl__mode", "ctrl__sparse", "ctrl__k_beats_m1"]:
            self._port(name).value = 0
        d.rst.value = 1
        await ClockCycles(d.clk, cycles)
        await FallingEdge(d.clk)
        d.rst.value = 0

    def set_mode(self, mode, k_beats, sparse=False):
        self.dut.ctrl__mode.value = MODE_CODES[mode] if isinstance(mode, str) else mode
        self.dut.ctrl__sparse.value = int(sparse)
        self.dut.ctrl__k_beats_m1.value = k_beats - 1

    async def clear(self):
        await FallingEdge(self.dut.clk)
        self.dut.ctrl__clear.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.ctrl__clear.value = 0

    async def send(self, stream, words, gap=0.0):
        """Drive ``words`` on operand stream ``stream`` ("w" or "a")."""
        valid, payload, ready = (self._port(f"{stream}__{n}") for n in ("valid", "payload", "ready"))
        falling = FallingEdge(self.dut.clk)
        for word in words:
            await falling
            while self.rng.random() < gap:
                valid.value = 0
                await falling
            payload.value = word
            valid.value = 1
            # The beat is taken at the next rising edge if ready is high now; else hold it a cycle.
            await ReadOnly()
            while not int(ready.value):
                await falling
                await ReadOnly()
        await falling
        valid.value = 0

    async def receive(self, count, ready=1.0):
        """Collect ``count`` result rows (:class:`~qmac.sim.packing.ResultRow`)."""
        y_valid, y_ready, y_payload = self.dut.y__valid, self.dut.y__ready, self.dut.y__payload
        falling, rows = FallingEdge(self.dut.clk), []
        while len(rows) < count:
            await falling
            y_ready.value = take = int(self.rng.random() < ready)
            await ReadOnly()
            if take and int(y_valid.value):
                rows.append(unpack_result(y_payload.value.to_unsigned(), self.config))
        await falling
        y_ready.value = 0
        return rows

    async def run_gemm(self, mode, W, A, gap=0.0, ready=1.0, w_scales=None, a_scales=None, requant=None,
                       mode_code=None, sparse=False, sparse_code=None, log_shift=0):
        """Stream a whole GEMM (with scale fields, on a core with scale units; with per-channel
        requantization parameters, on a core with the output stage: default multiplier 1, shift 0) and
        collect its rows; returns ``(plan, rows, expected)``. ``mode_code`` overrides the ``ctrl.mode``
        value (to test codes the build lacks), ``sparse_code`` the ``ctrl.sparse`` value; ``sparse`` streams
        W (2:4 sparse) compressed; ``log_shift`` drives ``ctrl.log_shift`` on a core with ``log_output``."""
        plan = plan_gemm(self.config, mode, W.shape, A.shape, sparse)
        w_words, a_words = operand_beats(plan, W, A, w_scales, a_scales)
        self.set_mode(mode if mode_code is None else mode_code, plan.k_beats,
                      sparse if sparse_code is None else sparse_code)
        if self.config.log_output:
            self.dut.ctrl__log_shift.value = log_shift
        senders = [cocotb.start_soon(self.send("w", w_words, gap)),
                   cocotb.start_soon(self.send("a", a_words, gap))]
        if self.config.output_stage:
            senders.append(cocotb.start_soon(self.send("requant", requant_words(plan, requant), gap)))
        rows = await self.receive(plan.tiles * self.config.rows, ready)
        for s in senders:
            await s
        return plan, rows, expected_results(plan, W, A, w_scales, a_scales, requant, log_shift)

    async def run_gemms(self, jobs, gap=0.0, ready=1.0):
        """Stream several GEMMs ``(mode, W, A)`` as one stream of beats, each in its own mode: ``ctrl.mode``
        and ``ctrl.k_beats_m1`` change right after the previous GEMM's last beat is taken, so tiles of
        different modes follow each other back to back. Returns ``(plans, rows, expected)``."""
        plans = [plan_gemm(self.config, mode, W.shape, A.shape) for mode, W, A in jobs]
        beats = [operand_beats(plan, W, A) for plan, (_, W, A) in zip(plans, jobs)]
        w_words, a_words = [w for b in beats for w in b[0]], [a for b in beats for a in b[1]]
        ends = [sum(p.beats for p in plans[:i + 1]) for i in range(len(plans))]
        self.set_mode(plans[0].mode, plans[0].k_beats)
        senders = [cocotb.start_soon(self.send("w", w_words, gap)), cocotb.start_soon(self.send("a", a_words, gap)),
                   cocotb.start_soon(self._switch_modes(plans, ends))]
        if self.config.output_stage:
            words = [w for plan in plans for w in requant_words(plan)]
            senders.append(cocotb.start_soon(self.send("requant", words, gap)))
        rows = await self.receive(sum(p.tiles for p in plans) * self.config.rows, ready)
        for s in senders:
            await s
        expected = [r for plan, (_, W, A) in zip(plans, jobs) for r in expected_results(plan, W, A)]
        return plans, rows, expected

    async def _switch_modes(self, plans, ends):
        """Set the next plan's mode and tile length at the falling edge after the last beat of each plan."""
        d, taken, i = self.dut, 0, 0
        while i < len(plans) - 1:
            await FallingEdge(d.clk)
            if taken == ends[i]:
                i += 1
                self.set_mode(plans[i].mode, plans[i].k_beats)
            await ReadOnly()
            taken += int(d.w__valid.value) & int(d.w__ready.value)
            await RisingEdge(d.clk)

    async def wait_idle(self, limit=10000):
        for _ in range(limit):
            await ReadOnly()
            if not int(self.dut.status__busy.value):
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"core still busy after {limit} cycles")

    def status(self):
        return {n: int(self._port(f"status__{n}").value) for n in ("busy", "overflow", "error", "cycles", "macs")}

    @staticmethod
    def result_matrix(plan, rows):
        return assemble(plan, [r.data for r in rows])
