"""How a GEMM runs on the core: tiling, the operand beats the driver streams, and the golden result.

``Y = W @ A`` with W of shape N x K (weights, one row per output channel) and A of shape K x M
(activations). The driver pads N to a multiple of R, M to a multiple of C and K to a multiple of the
elements per beat E, all with zeros, and runs tiles in row-major tile order: for each block of R weight
rows, for each block of C activation columns, K/E beats. Each tile yields R result rows of C
accumulators. See docs/architecture.md.
"""

from dataclasses import dataclass

import numpy as np

from ..hw.config import CoreConfig
from ..hw.formats import ELEMENT_FORMATS
from .mac_unit import accumulate
from .packing import pack_lanes

__all__ = ["GemmPlan", "plan_gemm", "operand_beats", "golden_gemm", "expected_results", "assemble"]


def _ceil(x, m):
    return -(-x // m) * m


@dataclass(frozen=True)
class GemmPlan:
    """Tiling of an N x K by K x M GEMM on ``config`` in ``mode``."""
    config: CoreConfig
    mode: str
    n: int
    k: int
    m: int

    def __post_init__(self):
        if self.mode not in self.config.modes:
            raise ValueError(f"mode {self.mode!r} is not built into this core; allowed: "
                             f"{', '.join(self.config.modes)}")
        for name in ("n", "k", "m"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"GEMM dimension {name.upper()} must be a positive integer, not {v!r}")
        if self.k_beats > self.config.max_k_beats:
            raise ValueError(f"K = {self.k} needs {self.k_beats} beats of {self.elements_per_beat} "
                             f"elements; this core allows at most {self.config.max_k_beats} "
                             f"(max_k = {self.config.max_k})")

    @property
    def elements_per_beat(self):
        return self.config.elements_per_beat(self.mode)

    @property
    def k_padded(self):
        return _ceil(self.k, self.elements_per_beat)

    @property
    def k_beats(self):
        return self.k_padded // self.elements_per_beat

    @property
    def row_tiles(self):
        return _ceil(self.n, self.config.rows) // self.config.rows

    @property
    def col_tiles(self):
        return _ceil(self.m, self.config.cols) // self.config.cols

    @property
    def tiles(self):
        return self.row_tiles * self.col_tiles

    @property
    def beats(self):
        """Operand beats streamed, which is also the ideal cycle count."""
        return self.tiles * self.k_beats

    @property
    def useful_macs(self):
        return self.n * self.k * self.m


def plan_gemm(config, mode, weights_shape, activations_shape):
    n, k = weights_shape
    k2, m = activations_shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: weights are {n}x{k}, activations {k2}x{m}")
    return GemmPlan(config, mode, int(n), int(k), int(m))


def _padded(plan, W, A):
    cfg = plan.config
    fmt = ELEMENT_FORMATS[plan.mode].code
    for name, x in (("weights", W), ("activations", A)):
        x = np.asarray(x)
        if x.size and (x.min() < fmt.min or x.max() > fmt.max):
            raise ValueError(f"{name} codes must lie in [{fmt.min}, {fmt.max}] for {plan.mode}, "
                             f"not [{x.min()}, {x.max()}]")
    Wp = np.zeros((plan.row_tiles * cfg.rows, plan.k_padded), dtype=np.int64)
    Wp[:plan.n, :plan.k] = W
    Ap = np.zeros((plan.k_padded, plan.col_tiles * cfg.cols), dtype=np.int64)
    Ap[:plan.k, :plan.m] = A
    return Wp, Ap


def _words(lanes):
    """``(tiles, beats, vectors, V)`` lane bytes -> nested lists of payload integers ``[tile][beat]``."""
    t, b = lanes.shape[:2]
    flat = np.ascontiguousarray(lanes, dtype=np.uint8).reshape(t, b, -1)
    return [[int.from_bytes(flat[i, j].tobytes(), "little") for j in range(b)] for i in range(t)]


def operand_beats(plan, W, A):
    """Payload integers of every beat in streaming order: ``(w_words, a_words)``, two equal-length lists."""
    cfg, E = plan.config, plan.elements_per_beat
    Wp, Ap = _padded(plan, W, A)
    # (row tile, R, beat, E) -> (row tile, beat, R, E) -> lane bytes
    wl = pack_lanes(Wp.reshape(plan.row_tiles, cfg.rows, plan.k_beats, E).transpose(0, 2, 1, 3), plan.mode)
    al = pack_lanes(Ap.T.reshape(plan.col_tiles, cfg.cols, plan.k_beats, E).transpose(0, 2, 1, 3), plan.mode)
    w_tiles, a_tiles = _words(wl), _words(al)
    w_words, a_words = [], []
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            w_words += w_tiles[i]
            a_words += a_tiles[j]
    return w_words, a_words


def golden_gemm(plan, W, A):
    """Bit-exact result of the core: ``(Y, saturated)`` on the padded grid, int64 and bool.

    Exact accumulators: ``Y = W @ A``, computed in float64 BLAS, which is exact here because every partial
    sum is below ``2**53`` (|product| <= 2**14, K <= 2**24). Saturating accumulators: per-beat partial sums
    accumulated in order with saturation (:func:`qmac.sim.mac_unit.accumulate`).
    """
    Wp, Ap = _padded(plan, W, A)
    if not plan.config.saturating:
        Y = np.rint(Wp.astype(np.float64) @ Ap.astype(np.float64)).astype(np.int64)
        return Y, np.zeros(Y.shape, dtype=bool)
    E = plan.elements_per_beat
    Wb = Wp.reshape(Wp.shape[0], plan.k_beats, E).transpose(1, 0, 2).astype(np.float64)
    Ab = Ap.reshape(plan.k_beats, E, Ap.shape[1]).astype(np.float64)
    psums = np.rint(Wb @ Ab).astype(np.int64)
    return accumulate(psums, plan.config)


def expected_results(plan, W, A):
    """The result-stream transactions in order: ``(data tuple of C ints, last, saturated)`` per row."""
    cfg = plan.config
    Y, sat = golden_gemm(plan, W, A)
    out = []
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            for r in range(cfg.rows):
                row = i * cfg.rows + r
                cols = slice(j * cfg.cols, (j + 1) * cfg.cols)
                out.append((tuple(int(v) for v in Y[row, cols]), int(r == cfg.rows - 1),
                            int(sat[row, cols].any())))
    return out


def assemble(plan, rows):
    """Result rows (the ``data`` tuples, in stream order) -> Y of shape N x M (int64)."""
    cfg = plan.config
    if len(rows) != plan.tiles * cfg.rows:
        raise ValueError(f"expected {plan.tiles * cfg.rows} result rows, got {len(rows)}")
    Y = np.zeros((plan.row_tiles * cfg.rows, plan.col_tiles * cfg.cols), dtype=np.int64)
    it = iter(rows)
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            for r in range(cfg.rows):
                Y[i * cfg.rows + r, j * cfg.cols:(j + 1) * cfg.cols] = next(it)
    return Y[:plan.n, :plan.m]
