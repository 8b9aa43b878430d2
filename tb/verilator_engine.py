"""The fast RTL engine behind ``qmac gemm --engine verilator``: the emitted core Verilated together with a
C++ driver (``verilator_harness.cpp``) into a shared library, driven through ctypes.

Python hands the harness every operand beat at once (payloads from :func:`qmac.sim.gemm.operand_beats` as
little-endian 32-bit words); the harness streams them with the protocol of :class:`qmac.tb.core_tb.CoreTB`
(seeded valid gaps and ready drops included), collects the result rows and reads the core's counters when it
is idle. Builds are cached by the Verilog text, the harness source, the build flags and the Verilator
version, under ``<build_root>/verilator-engine/<key>`` (``build_root`` defaults to ``$QMAC_BUILD_ROOT`` or
``build``); a build runs in a temporary folder that is renamed into place, so concurrent builds of the same
core do not see each other's half-written files. Emitting the Verilog takes seconds, so the text is cached
too, in ``<build_root>/rtl-<config key>/`` (:func:`qmac.tb.runner.emit_core`, shared with the cocotb builds),
by the config, the qmac sources and the Amaranth and Yosys versions that produce it.
"""

import ctypes
import os
from importlib import resources
from pathlib import Path

import numpy as np

from qmac.hw.spec.config import MODE_CODES
from qmac.hw.array.emit import TOP_NAME
from qmac.sim.gemm import operand_beats, requant_words
from qmac.sim.packing import unpack_results
from qmac.tb.runner import VERILATOR_WAIVERS, ToolError, emit_core, verilator_build

__all__ = ["BUILD_FLAGS", "HARNESS", "Harness", "build_harness", "stream_gemm"]

#: The harness source, shipped as package data next to this module.
HARNESS = "verilator_harness.cpp"

#: Verilator options of the engine's builds (measured in docs/benchmarks.md, "Fast RTL engine"). Without
#: module inlining the default core's C++ is half the size (22 MB against 45 MB) and compiles in far less time;
#: C++ -O1 builds it in 70 CPU s against 92 at -O2, and simulates as fast within the noise of the measurement.
BUILD_FLAGS = ("-O3", "-fno-inline", "--x-assign", "fast", "--x-initial", "fast", "-MAKEFLAGS",
               "OPT_FAST=-O1 OPT_GLOBAL=-O1")

LIBRARY = "libqmac_harness.so"

#: Cycles without a transfer or a result row after which a run is reported as hung.
IDLE_LIMIT = 1 << 20


def _harness_source():
    return resources.files("qmac.tb").joinpath(HARNESS).read_text()


def _feature_flags(config):
    """Preprocessor defines selecting the optional ports the harness drives."""
    return (["-DQMAC_REQUANT"] if config.output_stage else []) + (["-DQMAC_LOG_SHIFT"] if config.log_output else [])


def build_harness(config, build_root=None, flags=BUILD_FLAGS, jobs=None):
    """The shared library of the harness around ``config``'s core, built unless cached
    (:func:`~qmac.tb.runner.verilator_build`). Returns ``(path, built)``: ``built`` is False on a cache hit."""
    root = Path(build_root or os.environ.get("QMAC_BUILD_ROOT", "build")).resolve() / "verilator-engine"
    args = ["-j", str(jobs or os.cpu_count() or 1), *(f"-Wno-{w}" for w in VERILATOR_WAIVERS),
            "-CFLAGS", " ".join(["-fPIC", *_feature_flags(config)]), "-LDFLAGS", "-shared -Wl,-Bsymbolic", *flags]
    # The Verilog is the cocotb builds' (emitted once per config into the build root, runner.emit_core).
    files = {f"{TOP_NAME}.v": emit_core(config, root.parent).read_text(), HARNESS: _harness_source()}
    return verilator_build(root, files, TOP_NAME, HARNESS, LIBRARY, args, "the verilator engine")


def _words(values, stride):
    """Payload integers -> uint32 array of ``stride`` little-endian words each."""
    return np.frombuffer(b"".join(v.to_bytes(4 * stride, "little") for v in values), dtype=np.uint32)


class Harness:
    """The loaded harness library of one core."""

    def __init__(self, path, config):
        self._config = config
        self._lib = ctypes.CDLL(str(path))
        words = (ctypes.c_uint32 * 4)()
        self._lib.qmac_payload_words(words)
        self.words = tuple(words)
        u32p, u64, u32 = ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint64, ctypes.c_uint32
        self._lib.qmac_run.argtypes = [u32p, u32p, u64, u32p, u64, u32p, u64, u32, u32, u32, u32, u64,
                                       ctypes.c_double, ctypes.c_double, u64, ctypes.POINTER(u64)]
        self._lib.qmac_run.restype = ctypes.c_int
        self._lib.qmac_bare_loop.argtypes = [u64, u32, u32, u64]
        self._lib.qmac_bare_loop.restype = u64

    @staticmethod
    def _ptr(array):
        return array.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))

    def run(self, plan, w_words, a_words, requant=(), log_shift=0, seed=0, gap=0.0, ready=1.0):
        """Stream one GEMM of ``plan``; returns the result payload integers (one per row, in stream order)
        and the status: ``cycles``, ``macs``, ``overflow``, ``error`` (the core's) and ``sim_cycles``."""
        ww, aw, yw, rw = self.words
        w, a = _words(w_words, ww), _words(a_words, aw)
        rq = _words(requant, rw) if rw else np.zeros(1, dtype=np.uint32)
        rows = plan.tiles * self._config.rows
        y = np.zeros(rows * yw, dtype=np.uint32)
        status = (ctypes.c_uint64 * 5)()
        rc = self._lib.qmac_run(self._ptr(w), self._ptr(a), len(w_words), self._ptr(rq), len(requant),
                                self._ptr(y), rows, MODE_CODES[plan.mode], int(plan.sparse), plan.k_beats - 1,
                                log_shift, seed, gap, ready, IDLE_LIMIT, status)
        if rc:
            raise ToolError(f"the core made no progress for {IDLE_LIMIT} cycles (verilator engine)")
        rb = y.tobytes()
        payloads = [int.from_bytes(rb[i * 4 * yw:(i + 1) * 4 * yw], "little") for i in range(rows)]
        return payloads, dict(zip(("cycles", "macs", "overflow", "error", "sim_cycles"), status))

    def bare_loop(self, cycles, mode, k_beats, seed=0):
        """The benchmark's reference: ``cycles`` clock cycles of random operands, valid and ready held high."""
        return self._lib.qmac_bare_loop(cycles, MODE_CODES[mode], k_beats - 1, seed)


def stream_gemm(plan, W, A, w_scales=None, a_scales=None, gap=0.0, ready=1.0, seed=0, build_root=None):
    """Run the GEMM of ``plan`` through the Verilated core: returns the result rows (as
    :func:`qmac.sim.packing.unpack_results` gives them) and the core's busy cycle count. The output stage,
    if built, gets :data:`qmac.sim.gemm.DEFAULT_REQUANT`; ``ctrl.log_shift``, if built, is 0."""
    cfg = plan.config
    path, _ = build_harness(cfg, build_root)
    w_words, a_words = operand_beats(plan, W, A, w_scales, a_scales)
    requant = requant_words(plan) if cfg.output_stage else []
    payloads, status = Harness(path, cfg).run(plan, w_words, a_words, requant, seed=seed, gap=gap, ready=ready)
    return unpack_results(payloads, cfg), status["cycles"]
