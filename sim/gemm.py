"""How a GEMM runs on the core: tiling, the operand beats the driver streams, and the golden result.

``Y = W @ A`` with W of shape N x K (weights, one row per output channel) and A of shape K x M
(activations). With scale units, every group of ``group_elements`` consecutive K elements of a weight row
or activation column has an S-bit scale field, and the core computes
``Y = sum over groups of ScaleFormat.apply(W_g @ A_g, ScaleFormat.product(sw_g, sa_g))``. The driver pads N to a multiple of R, M to a multiple of C and K to a multiple of the
elements per beat E, all with zeros, and runs tiles in row-major tile order: for each block of R weight
rows, for each block of C activation columns, K/E beats. Each tile yields R result rows of C
accumulators. See docs/architecture.md.
"""

from dataclasses import dataclass

import numpy as np

from qmac.hw.spec.config import CoreConfig, code_range, operand_mode
from qmac.sim import log_dot_product
from qmac.sim.mac_unit import accumulate
from qmac.sim.ops import NumpyOps
from qmac.sim.packing import pack_lanes
from qmac.sim.sparse24 import compress

__all__ = ["GemmPlan", "plan_gemm", "operand_beats", "golden_gemm", "expected_results", "assemble",
           "core_scales", "requant_rows"]


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
    sparse: bool = False

    def __post_init__(self):
        if self.sparse and not self.config.sparse:
            raise ValueError("this core has no 2:4 sparse operand selection (config key sparse = false)")
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
        """Dense K positions per beat: twice the kept elements in sparse mode."""
        return self.config.elements_per_beat(self.mode) * (2 if self.sparse else 1)

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

    @property
    def group_elements(self):
        """Dense K positions one scale field covers (twice as many in sparse mode)."""
        return self.config.group_elements(self.mode) * (2 if self.sparse else 1)

    @property
    def k_groups(self):
        """Scale fields per weight row (and per activation column) after padding."""
        return self.k_padded // self.group_elements


def plan_gemm(config, mode, weights_shape, activations_shape, sparse=False):
    n, k = weights_shape
    k2, m = activations_shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: weights are {n}x{k}, activations {k2}x{m}")
    return GemmPlan(config, mode, int(n), int(k), int(m), bool(sparse))


def _padded(plan, W, A):
    cfg = plan.config
    for name, x in (("weights", W), ("activations", A)):
        lo, hi = code_range(plan.mode, activations=name == "activations")
        x = np.asarray(x)
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"{name} codes must lie in [{lo}, {hi}] for {plan.mode}, "
                             f"not [{x.min()}, {x.max()}]")
    Wp = np.zeros((plan.row_tiles * cfg.rows, plan.k_padded), dtype=np.int64)
    Wp[:plan.n, :plan.k] = W
    Ap = np.zeros((plan.k_padded, plan.col_tiles * cfg.cols), dtype=np.int64)
    Ap[:plan.k, :plan.m] = A
    return Wp, Ap


def _scales(plan, w_scales, a_scales):
    """Scale fields padded to the core's grid: ``(Np, k_groups)`` and ``(k_groups, Mp)`` (neutral where
    absent: factor 1)."""
    cfg = plan.config
    if not cfg.scale_bits:
        if w_scales is not None or a_scales is not None:
            raise ValueError("this core has no scale units (scale_bits = 0); scales cannot be given")
        return None, None
    fmt = cfg.scale_format
    neutral = 1 if fmt.kind == "int" else 0
    lo, hi = fmt.field_range
    out = []
    for name, sc, shape, valid in (("weight", w_scales, (plan.row_tiles * cfg.rows, plan.k_groups), (plan.n, None)),
                                   ("activation", a_scales, (plan.k_groups, plan.col_tiles * cfg.cols), (None, plan.m))):
        full = np.full(shape, neutral, dtype=np.int64)
        if sc is not None:
            sc = np.asarray(sc, dtype=np.int64)
            want = (plan.n, -(-plan.k // plan.group_elements)) if name == "weight" else \
                   (-(-plan.k // plan.group_elements), plan.m)
            if sc.shape != want:
                raise ValueError(f"{name} scales must have shape {want} (one per {plan.group_elements} K "
                                 f"elements), not {sc.shape}")
            if sc.size and (sc.min() < lo or sc.max() > hi):
                raise ValueError(f"{name} scale fields must lie in [{lo}, {hi}], not [{sc.min()}, {sc.max()}]")
            full[:want[0], :want[1]] = sc
        out.append(full)
    return out


def core_scales(t, plan):
    """A host tensor's per-vector scales (:class:`qmac.sim.quantize.VsqTensor`, or
    :class:`qmac.sim.log_quantize.LogTensor` with log scales) as the core's per-group fields: each
    vector's field repeated over the ``vector / group_elements`` groups it spans."""
    cfg, g = plan.config, plan.group_elements
    if not cfg.scale_bits:
        raise ValueError("this core has no scale units (scale_bits = 0)")
    kind = getattr(t, "scale_kind", "log")
    fits = t.scale_bits == cfg.scale_bits if kind == "log" else t.scale_bits <= cfg.scale_bits
    if kind != cfg.scale_kind or not fits:
        raise ValueError(f"{kind} scales of {t.scale_bits} bits do not fit this core's "
                         f"{cfg.scale_kind} scales of {cfg.scale_bits} bits")
    if t.vector % g:
        raise ValueError(f"vector length {t.vector} must be a multiple of the {g} {plan.mode} elements one "
                         f"scale field covers on this core")
    groups = -(-plan.k // g)
    rep = np.repeat(t.scales, t.vector // g, axis=t.axis)
    return rep[:, :groups] if t.axis == 1 else rep[:groups, :]


def _meta_words(plan, meta):
    """Kept-element indices ``(Np, kept K)`` -> ``[row tile][beat]`` integers placed above the data and
    scale bits: 2V two-bit entries per vector, INT8 using the first V."""
    cfg = plan.config
    shift = 8 * cfg.lanes * cfg.rows + cfg.scale_bits * cfg.scale_groups * cfg.rows
    entries = 2 * cfg.lanes
    out = []
    for t in range(plan.row_tiles):
        beats = []
        for b in range(plan.k_beats):
            word = 0
            per = meta.shape[1] // plan.k_beats
            for r in range(cfg.rows):
                for e, idx in enumerate(meta[t * cfg.rows + r, b * per:(b + 1) * per]):
                    word |= int(idx) << (2 * (r * entries + e))
            beats.append(word << shift)
        out.append(beats)
    return out


def _words(lanes):
    """``(tiles, beats, vectors, V)`` lane bytes -> nested lists of payload integers ``[tile][beat]``."""
    t, b = lanes.shape[:2]
    flat = np.ascontiguousarray(lanes, dtype=np.uint8).reshape(t, b, -1)
    return [[int.from_bytes(flat[i, j].tobytes(), "little") for j in range(b)] for i in range(t)]


def _scale_words(fields, tiles, vectors, plan, activations):
    """Scale fields ``(tiles * vectors, k_groups)`` -> ``[tile][beat]`` integers placed above the data bits."""
    cfg = plan.config
    G, S = cfg.scale_groups, cfg.scale_bits
    f = fields.reshape(tiles, vectors, plan.k_beats, G).transpose(0, 2, 1, 3).reshape(tiles, plan.k_beats, -1)
    lanes = cfg.activation_lanes if activations else cfg.lanes
    shift = 8 * lanes * vectors
    mask = (1 << S) - 1  # log scales are signed: two's complement fields
    return [[sum((int(v) & mask) << (S * i) for i, v in enumerate(f[t, b])) << shift for b in range(plan.k_beats)]
            for t in range(tiles)]


def operand_beats(plan, W, A, w_scales=None, a_scales=None):
    """Payload integers of every beat in streaming order: ``(w_words, a_words)``, two equal-length lists.

    ``w_scales`` (N x ceil(K / group_elements)) and ``a_scales`` (ceil(K / group_elements) x M) are the
    scale fields of a core with scale units (neutral when omitted)."""
    cfg, E = plan.config, plan.elements_per_beat
    Wp, Ap = _padded(plan, W, A)
    sw, sa = _scales(plan, w_scales, a_scales)
    meta = None
    if plan.sparse:  # kept weights and their indices, E / 2 per vector per beat
        sp = compress(Wp)
        Wp, meta = sp.values, sp.indices.astype(np.int64)
    Ew = Wp.shape[1] // plan.k_beats
    # (row tile, R, beat, Ew) -> (row tile, beat, R, Ew) -> lane bytes
    wl = pack_lanes(Wp.reshape(plan.row_tiles, cfg.rows, plan.k_beats, Ew).transpose(0, 2, 1, 3), plan.mode)
    a_beats = Ap.T.reshape(plan.col_tiles, cfg.cols, plan.k_beats, E).transpose(0, 2, 1, 3)
    if cfg.sparse and not plan.sparse:
        # A dense tile on a sparse build: every pair of elements sits at positions 0 and 1 of a group of
        # four, and the weights' indices are (0, 1), so the selection passes them straight through.
        spread = np.zeros(a_beats.shape[:-1] + (2 * E,), dtype=np.int64)
        spread[..., 0::4], spread[..., 1::4] = a_beats[..., 0::2], a_beats[..., 1::2]
        a_beats = spread
        meta = np.tile(np.array([0, 1], dtype=np.int64), (Wp.shape[0], Wp.shape[1] // 2))
    al = pack_lanes(a_beats, operand_mode(plan.mode, activations=True))
    if not cfg.sparse and al.shape[-1] < cfg.activation_lanes:
        # INT8 and INT4 tiles on a W4A8 build: lane i's activations at byte 2i, where W4A8's a0 goes.
        spread = np.zeros(al.shape[:-1] + (cfg.activation_lanes,), dtype=np.uint8)
        spread[..., ::cfg.activation_lanes // al.shape[-1]] = al
        al = spread
    w_tiles, a_tiles = _words(wl), _words(al)
    if cfg.sparse:
        w_tiles = [[d | m for d, m in zip(dt, mt)] for dt, mt in zip(w_tiles, _meta_words(plan, meta))]
    if sw is not None:
        w_sc = _scale_words(sw, plan.row_tiles, cfg.rows, plan, False)
        a_sc = _scale_words(sa.T, plan.col_tiles, cfg.cols, plan, True)
        w_tiles = [[d | s for d, s in zip(dt, st)] for dt, st in zip(w_tiles, w_sc)]
        a_tiles = [[d | s for d, s in zip(dt, st)] for dt, st in zip(a_tiles, a_sc)]
    w_words, a_words = [], []
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            w_words += w_tiles[i]
            a_words += a_tiles[j]
    return w_words, a_words


def _block_sums(Wp, Ap, block):
    """Exact partial sums of consecutive K blocks: ``(K / block, Np, Mp)`` int64, from float64 BLAS, which
    is exact here because every partial sum is below ``2**53`` (|product| <= 2**14, K <= 2**24)."""
    nb = Wp.shape[1] // block
    Wb = Wp.reshape(Wp.shape[0], nb, block).transpose(1, 0, 2).astype(np.float64)
    Ab = Ap.reshape(nb, block, Ap.shape[1]).astype(np.float64)
    return np.rint(Wb @ Ab).astype(np.int64)


def golden_gemm(plan, W, A, w_scales=None, a_scales=None):
    """Bit-exact result of the core: ``(Y, saturated)`` on the padded grid, int64 and bool.

    LNS: every unit's fraction buckets, combined (:mod:`qmac.sim.log_dot_product`; the value is
    ``Y * 2**LogSum.result_exponent``), the log scales of each group added to its products' exponents.
    Exact accumulators without scales: ``Y = W @ A``. With scales, every group's partial sum is scaled
    (``ScaleFormat.apply``) before it is summed. Saturating accumulators: per-beat (scaled) partial sums
    accumulated in order with saturation (:func:`qmac.sim.mac_unit.accumulate`).
    """
    cfg = plan.config
    Wp, Ap = _padded(plan, W, A)
    sw, sa = _scales(plan, w_scales, a_scales)
    if cfg.lns:
        g = plan.group_elements
        w_exp = None if sw is None else np.repeat(sw, g, axis=1)
        a_exp = None if sa is None else np.repeat(sa, g, axis=0)
        spec = cfg.log_sum
        Y = log_dot_product.combine(spec, log_dot_product.gemm_buckets(spec, Wp, Ap, w_exp, a_exp))
        return Y, np.zeros(Y.shape, dtype=bool)
    if sw is None and not cfg.saturating:
        Y = np.rint(Wp.astype(np.float64) @ Ap.astype(np.float64)).astype(np.int64)
        return Y, np.zeros(Y.shape, dtype=bool)
    if sw is None:
        beats = _block_sums(Wp, Ap, plan.elements_per_beat)
    else:
        fmt = cfg.scale_format
        groups = _block_sums(Wp, Ap, plan.group_elements)
        product = fmt.product(sw.T[:, :, None], sa[:, None, :], NumpyOps)
        groups = fmt.apply(groups, product, NumpyOps)
        beats = groups.reshape((plan.k_beats, cfg.scale_groups) + groups.shape[1:]).sum(axis=1)
    return accumulate(beats, cfg)


def requant_rows(plan, params):
    """Per-output-channel requantization parameters (a dict of arrays of length N: ``multiplier``,
    ``shift``, ``zero_point``, ``int4``, ``tflite``) in result-row order, padded channels all zero."""
    cfg = plan.config
    rows = {}
    for name in ("multiplier", "shift", "zero_point", "int4", "tflite"):
        v = np.zeros(plan.row_tiles * cfg.rows, dtype=np.int64)
        v[:plan.n] = np.broadcast_to(np.asarray(params[name], dtype=np.int64), (plan.n,))
        rows[name] = np.repeat(v.reshape(plan.row_tiles, 1, cfg.rows), plan.col_tiles, axis=1).reshape(-1)
    return rows


def expected_results(plan, W, A, w_scales=None, a_scales=None, requant=None, log_shift=0):
    """The result-stream transactions in order: ``(data tuple of C ints, last, saturated)`` per row, with
    ``log_output`` also the tuple of the results' log codes (``ctrl.log_shift = log_shift``), and with the
    output stage also ``(q tuple, clipped)`` from the per-channel ``requant`` parameters (see
    :func:`requant_rows`)."""
    cfg = plan.config
    Y, sat = golden_gemm(plan, W, A, w_scales, a_scales)
    if cfg.log_output:
        from qmac.hw.spec.layouts import LOG_SHIFT_BITS
        from qmac.sim.log_encode import log_encode
        codes = log_encode(cfg.log_format, Y, cfg.acc_format.bits, cfg.log_sum.result_exponent, log_shift,
                           LOG_SHIFT_BITS)
    if cfg.output_stage:
        from qmac.sim.requantize import requantize
        p = requant_rows(plan, requant)
        data = np.array([Y[i * cfg.rows + r, j * cfg.cols:(j + 1) * cfg.cols]
                         for i in range(plan.row_tiles) for j in range(plan.col_tiles) for r in range(cfg.rows)])
        q, clipped = requantize(data, p["multiplier"], p["shift"], p["zero_point"], p["int4"], p["tflite"],
                                cfg.acc_format.bits, cfg.output_rounding)
    out = []
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            for r in range(cfg.rows):
                row = i * cfg.rows + r
                cols = slice(j * cfg.cols, (j + 1) * cfg.cols)
                out.append((tuple(int(v) for v in Y[row, cols]), int(r == cfg.rows - 1),
                            int(sat[row, cols].any())))
                if cfg.log_output:
                    out[-1] += (tuple(int(v) for v in codes[row, cols]),)
                if cfg.output_stage:
                    k = len(out) - 1
                    out[-1] += (tuple(int(v) for v in q[k]), int(clipped[k]))
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
