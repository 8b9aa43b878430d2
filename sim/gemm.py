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
from qmac.hw.spec.layouts import operand_layout
from qmac.hw.spec.payload import payload_format
from qmac.hw.spec.requantize import PARAMS
from qmac.sim.datapaths import golden
from qmac.sim.packing import ResultRow, pack_lanes
from qmac.sim.sparse24 import compress, prune_2_4

__all__ = ["GemmPlan", "plan_gemm", "random_operands", "operand_beats", "golden_gemm", "expected_results", "assemble",
           "core_scales", "requant_rows", "requant_words", "DEFAULT_REQUANT"]

#: Requantization parameters the drivers send when given none: multiplier 1, shift 0, no zero point.
DEFAULT_REQUANT = {"multiplier": 1, "shift": 0, "zero_point": 0, "int4": 0, "mode": 0}


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


def _per_beat(values, tiles, vectors, k_beats, width=None):
    """Per-vector fields ``(tiles * vectors, k_beats * per)`` -> ``(tiles, k_beats, vectors, per)`` in beat
    order, zero-padded to ``width`` entries per vector."""
    v = values.reshape(tiles, vectors, k_beats, -1).transpose(0, 2, 1, 3)
    if width is not None and v.shape[-1] < width:
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (width - v.shape[-1],), dtype=v.dtype)], axis=-1)
    return v


def random_operands(plan, rng):
    """Uniformly random codes for ``plan``: ``(W, A, w_scales, a_scales)``, W (N x K) in the mode's weight
    range, A (K x M) in its activation range, and scale fields over the field range (one per
    ``group_elements`` of K: N x groups and groups x M), ``None`` without scale units. Drawn from the numpy
    Generator ``rng`` in that order; a sparse plan's W is then pruned to 2:4 (:func:`prune_2_4`)."""
    lo, hi = code_range(plan.mode)
    a_lo, a_hi = code_range(plan.mode, activations=True)
    W, A = rng.integers(lo, hi + 1, (plan.n, plan.k)), rng.integers(a_lo, a_hi + 1, (plan.k, plan.m))
    scales = None, None
    if plan.config.scale_bits:
        s_lo, s_hi = plan.config.scale_format.field_range
        groups = -(-plan.k // plan.group_elements)
        scales = rng.integers(s_lo, s_hi + 1, (plan.n, groups)), rng.integers(s_lo, s_hi + 1, (groups, plan.m))
    return (prune_2_4(W) if plan.sparse else W), A, *scales


def operand_beats(plan, W, A, w_scales=None, a_scales=None):
    """Payload integers of every beat in streaming order: ``(w_words, a_words)``, two equal-length lists,
    packed by the ports' layouts (:func:`qmac.hw.spec.layouts.operand_layout`).

    ``w_scales`` (N x ceil(K / group_elements)) and ``a_scales`` (ceil(K / group_elements) x M) are the
    scale fields of a core with scale units (neutral when omitted). A sparse tile's weights carry their
    kept elements' indices (``meta``, INT8 filling the first V of the 2V entries per vector)."""
    cfg, E = plan.config, plan.elements_per_beat
    Wp, Ap = _padded(plan, W, A)
    sw, sa = _scales(plan, w_scales, a_scales)
    meta = None
    if plan.sparse:  # kept weights and their indices, E / 2 per vector per beat
        sp = compress(Wp)
        Wp, meta = sp.values, sp.indices.astype(np.int64)
    Ew = Wp.shape[1] // plan.k_beats
    # (row tile, R, beat, Ew) -> (row tile, beat, R, Ew) -> lane bytes
    w = {"data": pack_lanes(Wp.reshape(plan.row_tiles, cfg.rows, plan.k_beats, Ew).transpose(0, 2, 1, 3),
                            plan.mode)}
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
    a = {"data": al}
    if cfg.sparse:
        w["meta"] = _per_beat(meta, plan.row_tiles, cfg.rows, plan.k_beats, 2 * cfg.lanes)
    if sw is not None:
        w["scale"] = _per_beat(sw, plan.row_tiles, cfg.rows, plan.k_beats)
        a["scale"] = _per_beat(sa.T, plan.col_tiles, cfg.cols, plan.k_beats)
    w_flat = payload_format(operand_layout(cfg, cfg.rows)).pack_words(w)
    a_flat = payload_format(operand_layout(cfg, cfg.cols, activations=True)).pack_words(a)
    kb = plan.k_beats
    w_tiles = [w_flat[i:i + kb] for i in range(0, len(w_flat), kb)]
    a_tiles = [a_flat[j:j + kb] for j in range(0, len(a_flat), kb)]
    w_words, a_words = [], []
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            w_words += w_tiles[i]
            a_words += a_tiles[j]
    return w_words, a_words


def golden_gemm(plan, W, A, w_scales=None, a_scales=None):
    """Bit-exact result of the core: ``(Y, saturated)`` on the padded grid, int64 and bool, from the
    datapath's golden model (:func:`qmac.sim.datapaths.golden`: :meth:`IntGolden.gemm
    <qmac.sim.int_golden.IntGolden.gemm>`, :meth:`LogGolden.gemm <qmac.sim.log_golden.LogGolden.gemm>`).
    """
    Wp, Ap = _padded(plan, W, A)
    sw, sa = _scales(plan, w_scales, a_scales)
    return golden(plan.config).gemm(plan, Wp, Ap, sw, sa)


def requant_rows(plan, params=None):
    """Per-output-channel requantization parameters (a dict of arrays of length N: ``multiplier``,
    ``shift``, ``zero_point``, ``int4``, ``mode``; :data:`DEFAULT_REQUANT` when ``None``) in result-row
    order, padded channels all zero."""
    cfg = plan.config
    params = DEFAULT_REQUANT if params is None else params
    rows = {}
    for name in ("multiplier", "shift", "zero_point", "int4", "mode"):
        v = np.zeros(plan.row_tiles * cfg.rows, dtype=np.int64)
        v[:plan.n] = np.broadcast_to(np.asarray(params[name], dtype=np.int64), (plan.n,))
        rows[name] = np.repeat(v.reshape(plan.row_tiles, 1, cfg.rows), plan.col_tiles, axis=1).reshape(-1)
    return rows


def requant_words(plan, params=None):
    """The ``requant`` stream's payload integers, one per result row (see :func:`requant_rows`)."""
    return payload_format(PARAMS).pack_words(requant_rows(plan, params))


def expected_results(plan, W, A, w_scales=None, a_scales=None, requant=None, log_shift=0):
    """The result-stream transactions in order, one :class:`~qmac.sim.packing.ResultRow` per row: ``data``,
    ``last``, ``saturated``; with ``log_output`` also ``log``, the results' log codes
    (``ctrl.log_shift = log_shift``); with the output stage also ``q`` and ``clipped`` from the
    per-channel ``requant`` parameters (see :func:`requant_rows`; :data:`DEFAULT_REQUANT` when ``None``)."""
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
        q, clipped = requantize(data, p["multiplier"], p["shift"], p["zero_point"], p["int4"], p["mode"],
                                cfg.acc_format.bits, cfg.output_rounding)
    out = []
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            for r in range(cfg.rows):
                row = i * cfg.rows + r
                cols = slice(j * cfg.cols, (j + 1) * cfg.cols)
                k = len(out)
                out.append(ResultRow(
                    tuple(int(v) for v in Y[row, cols]), int(r == cfg.rows - 1), int(sat[row, cols].any()),
                    log=tuple(int(v) for v in codes[row, cols]) if cfg.log_output else None,
                    q=tuple(int(v) for v in q[k]) if cfg.output_stage else None,
                    clipped=int(clipped[k]) if cfg.output_stage else None))
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
