"""A float matrix product through a core: choose the core for a quantization scheme, quantize the operands as
the host does, and turn the core's integer (or LNS bucket) results back into floats.

``qmac gemm`` (float inputs) and ``qmac model`` (every MatMul/Gemm/Conv of a network) both call these
functions, so one flag means one thing in both.
"""

import sys
from dataclasses import dataclass

import numpy as np

from qmac.hw.spec.config import ConfigError, per_lane
from qmac.hw.spec.datapath import datapath_of
from qmac.hw.spec.multipliers import MULTIPLIERS
from qmac.sim.datapaths import GOLDEN, golden
from qmac.sim.mx import MX_BLOCK, MX_ELEMENTS, mx_window, quantize_mx
from qmac.sim.quantize import MAX_SCALE_BITS

__all__ = ["Scheme", "with_changes", "core_for_mode", "core_for_sparse", "core_for_scales", "prune_weights",
           "quantize_weights", "quantize_activations", "QuantizedOperands", "quantized_operands", "to_float",
           "PreparedOperands", "prepare_operands"]


@dataclass(frozen=True)
class Scheme:
    """How float operands become core inputs (the quantization flags of ``qmac gemm``).

    Members
    -------
    format : str
        Datapath mode: ``int8``, ``int4``, ``w4a8`` (INT4 weights, INT8 activations), ``lns8`` or ``lns4``; with
        ``scale = "mx"`` the MX element format instead (:data:`qmac.sim.mx.MX_ELEMENTS`: ``int8`` MXINT8, ``int4``
        MXINT4-style, ``fp4`` MXFP4), whose lanes' mode is :attr:`mode`.
    scale : str
        ``per-tensor``, ``per-channel`` (INT only), ``vector``, or ``mx`` (OCP MX: 32-element blocks with E8M0
        scales, :func:`qmac.sim.mx.quantize_mx`, run through 4-bit pow2 scales by
        :func:`qmac.sim.mx.mx_window`).
    vector : int
        Elements per vector with ``scale="vector"``.
    scale_bits : int or None
        Width of a per-vector scale; ``None``: 8 for INT formats, 4 for LNS.
    scale_kind : str or None
        ``int`` or ``pow2`` for INT formats (``None``: ``int``); LNS takes log scales.
    clip : str
        ``max``, ``percentile`` or ``mse``.
    sparse : bool
        2:4 sparse weights.
    scale_rounding : str
        INT per-vector scale fields of both operands: ``nearest`` (``rint(s_v / gamma)`` for ``int``, the
        ceiling exponent for ``pow2``: :func:`qmac.sim.quantize.quantize_vsq`) or ``best`` (the field below or
        above, whichever reproduces the vector with the smaller squared error:
        :func:`qmac.sim.ptq.quantize_vsq_best`); the hardware is the same.
    """
    format: str = "int8"
    scale: str = "per-tensor"
    vector: int = 16
    scale_bits: int | None = None
    scale_kind: str | None = None
    clip: str = "max"
    sparse: bool = False
    scale_rounding: str = "nearest"

    @property
    def mx_element(self):
        """The :class:`~qmac.sim.mx.MxElement` of ``format`` with ``scale = "mx"``, else ``None``.

        Raises
        ------
        ConfigError
            ``scale = "mx"`` with a format that is no MX element format.
        """
        if self.scale != "mx":
            return None
        if self.format not in MX_ELEMENTS:
            raise ConfigError(f"--scale mx is not supported with --format {self.format}; allowed: "
                              f"{', '.join(f'{k} ({e.name})' for k, e in MX_ELEMENTS.items())}")
        return MX_ELEMENTS[self.format]

    @property
    def mode(self):
        """The core mode that runs this scheme: :attr:`format`, or the MX element's lane mode (MXFP4: int8)."""
        return self.mx_element.lane_mode if self.scale == "mx" else self.format

    @property
    def vector_length(self):
        """V with per-vector scales (32 for MX blocks), else ``None``."""
        return self.vector if self.scale == "vector" else MX_BLOCK if self.scale == "mx" else None

    @property
    def bits(self):
        """Per-vector scale width in use: the given one, or 8 (INT) / 4 (LNS, MX); ``None`` without vectors."""
        if self.scale == "mx":
            return MAX_SCALE_BITS["pow2"]
        if self.scale != "vector":
            return None
        return self.scale_bits if self.scale_bits is not None else GOLDEN[datapath_of(self.format)].default_scale_bits

    @property
    def kind(self):
        """Per-vector scale kind in use: ``pow2`` for MX, else the given one or the format's datapath's first
        (``int`` for INT formats, ``log`` for LNS)."""
        return "pow2" if self.scale == "mx" else self.scale_kind or datapath_of(self.format).scale_kinds[0]


def _note(message):
    print(f"qmac: note: {message}", file=sys.stderr)


def with_changes(cfg, note, notify=_note, **changes):
    """``cfg`` with ``changes`` (what a scheme needs), announced through ``notify``. If the widths then pass
    64 bits, ``max_k`` is lowered to the GEMM's K (``changes['k']``) as a second try.

    Raises
    ------
    ConfigError
        If no such config exists; the message starts with ``note``.
    """
    k = changes.pop("k")
    try:
        new = cfg.replace(**changes)
    except ConfigError as first:
        lo = 2 * cfg.lanes * min(per_lane(m) for m in changes.get("modes", cfg.modes))
        max_k = max(lo, 1 << (k - 1).bit_length())
        try:
            new = cfg.replace(max_k=max_k, **changes)
        except ConfigError:
            raise ConfigError(f"{note}: {first}") from None
        changes["max_k"] = max_k
    if new != cfg:
        notify(f"{note}; using the config with " + ", ".join(f"{key} = {value!r}" for key, value in changes.items()))
    return new


def core_for_mode(cfg, mode, k, notify=_note):
    """``cfg``, or the same array with ``mode``'s lanes (and none of the INT-only extras) when ``mode`` is not
    built in. W4A8 missing from an INT core is added beside its modes (dense, on a multiplier whose lanes
    compute it); another INT mode missing from an INT core is an error (the user chose that core)."""
    if mode in cfg.modes:
        return cfg
    if mode in cfg.datapath.modes and cfg.datapath.mixable:
        if cfg.datapath.operand_mode(mode, activations=True) != mode:
            # a mixed-precision mode (W4A8) is added beside the core's INT modes: dense, on lanes that compute it
            extras = {"sparse": False} | ({} if cfg.multiplier_class.w4a8 else
                                          {"multiplier": next(n for n, m in MULTIPLIERS.items() if m.w4a8)})
            return with_changes(cfg, f"--format {mode} is not built into this core", notify,
                                modes=cfg.modes + (mode,), k=k,
                                **{key: value for key, value in extras.items() if getattr(cfg, key) != value})
        # the user chose a core without this mode
        raise ConfigError(f"--format {mode!r} is not built into this core; allowed: {', '.join(cfg.modes)}")
    extras = {"scale_bits": 0, "scale_kind": "int", "scale_lanes": None, "sparse": False, "output_stage": False,
              "acc_bits": None, "frac_bits": None, "p_bits": None, "q_floor": None, "bucket_organisation": None,
              "bucket_fraction_bits": None, "mantissa_bits": None, "window_bits": None}
    return with_changes(cfg, f"--format {mode} is not built into this core", notify, modes=(mode,), k=k,
                        **{key: value for key, value in extras.items() if getattr(cfg, key) != value})


def core_for_sparse(cfg, notify=_note):
    """``cfg`` with 2:4 operand selection."""
    if cfg.sparse:
        return cfg
    notify("this config has no 2:4 operand selection; using it with sparse = true")
    return cfg.replace(sparse=True)


def core_for_scales(cfg, scheme, k, notify=_note):
    """``cfg`` with the scale units ``scheme``'s per-vector scales need (unchanged without vectors). MX needs
    4-bit pow2 fields each covering a divisor of 32 INT8 elements (a block's field is repeated over its groups);
    a core without such units gets ``scale_lanes = min(lanes, 32)``: one field per block where the lanes allow."""
    if scheme.scale == "mx":
        bits, mode = scheme.bits, scheme.mode
        group = cfg.group_elements(mode)
        if cfg.scale_bits == bits and cfg.scale_kind == "pow2" and MX_BLOCK % group == 0:
            return cfg
        lanes = {} if cfg.scale_bits and MX_BLOCK % group == 0 else \
            {"scale_lanes": min(cfg.lanes, MX_BLOCK // per_lane(mode))}
        return with_changes(cfg, f"--scale mx needs {bits}-bit pow2 scales over at most {MX_BLOCK} {mode} elements",
                            notify, scale_bits=bits, scale_kind="pow2", **lanes, k=k)
    if scheme.scale != "vector":
        return cfg
    bits, kind = scheme.bits, scheme.kind
    changes = golden(cfg).scale_changes(bits, kind)
    if not changes:
        return cfg
    return with_changes(cfg, f"--scale-bits {bits} --scale-kind {kind} needs {kind} scales of {bits} bits", notify,
                        **changes, k=k)


def prune_weights(W, A):
    """2:4 weights: ``(W, A, report)`` with K zero-padded to a multiple of 4, ``W`` pruned
    (:func:`qmac.sim.sparse24.prune_2_4`) unless it already is 2:4, and the report's ``sparse``, ``pruned``
    and, when pruned, ``pruning_sqnr_db`` and ``pruning_relative_error``; ``padded_k`` when K was padded."""
    from qmac.sim.sparse24 import is_2_4, pad_k, pruning_error, prune_2_4
    report = {"sparse": "2:4"}
    if W.shape[1] % 4:
        W, A = pad_k(W, 4), np.pad(A, ((0, -W.shape[1] % 4), (0, 0)))
        report["padded_k"] = int(W.shape[1])
    if is_2_4(W):
        return W, A, report | {"pruned": False}
    err = pruning_error(W.astype(np.float64))
    return prune_2_4(W), A, report | {"pruned": True, "pruning_sqnr_db": err["sqnr_db"],
                                      "pruning_relative_error": err["relative_l2"]}


def _quantize(cfg, scheme, x, axis):
    if scheme.scale == "mx":
        return mx_window(quantize_mx(x, axis, scheme.mx_element), scheme.bits)
    host = golden(cfg)
    if scheme.scale not in host.schemes:
        raise ConfigError(f"--scale {scheme.scale} is not supported with --format {scheme.format}; "
                          f"allowed: {', '.join(host.schemes)}")
    return host.quantize(x, scheme.format, axis, scheme.scale, scheme.vector_length, scheme.bits, scheme.clip,
                         scheme.kind, scheme.scale_rounding)


def quantize_weights(cfg, scheme, W):
    """Weights ``W`` (N x K floats) as ``scheme`` says on core ``cfg``: a
    :class:`~qmac.sim.quantize.VsqTensor` (INT; an :class:`~qmac.sim.mx.MxWindowed` for MX) or
    :class:`~qmac.sim.log_quantize.LogTensor` (LNS), along K."""
    return _quantize(cfg, scheme, W, 1)


def quantize_activations(cfg, scheme, A):
    """Activations ``A`` (K x M floats), quantized along K like :func:`quantize_weights`."""
    return _quantize(cfg, scheme, A, 0)


@dataclass(frozen=True)
class QuantizedOperands:
    """Core inputs of one GEMM: codes, the per-group scale fields (``None`` without vectors) and the
    host tensors they came from."""
    W: np.ndarray
    A: np.ndarray
    w_scales: np.ndarray | None
    a_scales: np.ndarray | None
    qw: object
    qa: object


def quantized_operands(cfg, scheme, qw, qa):
    """The core's inputs for quantized weights ``qw`` and activations ``qa`` on ``cfg`` (which has the scale
    units :func:`core_for_scales` gives)."""
    from qmac.sim.gemm import core_scales, plan_gemm
    w_scales = a_scales = None
    if scheme.scale in ("vector", "mx"):
        plan = plan_gemm(cfg, scheme.mode, qw.codes.shape, qa.codes.shape, scheme.sparse)
        w_scales, a_scales = core_scales(qw, plan), core_scales(qa, plan)
    return QuantizedOperands(qw.codes, qa.codes, w_scales, a_scales, qw, qa)


def to_float(cfg, ops, Y):
    """The core's results ``Y`` (N x M) for ``ops`` as floats: ``Y * gamma_w * gamma_a`` (INT), or the LNS
    value of the buckets' sum times ``2**((offset_w + offset_a) / 2**F)``."""
    return golden(cfg).to_float(Y, ops.qw, ops.qa)


@dataclass(frozen=True)
class PreparedOperands:
    """A GEMM ready for the core (:func:`prepare_operands`).

    Members
    -------
    cfg : CoreConfig
        The config, switched to the format's datapath, scale units or sparse selection as the scheme needs.
    mode : str
    W, A : numpy.ndarray
        The inputs as given (float or codes), W pruned to 2:4 and K padded when sparse.
    Wq, Aq : numpy.ndarray
        Codes.
    w_scales, a_scales : numpy.ndarray or None
        Per-group scale fields.
    sparse, is_float : bool
    ops : QuantizedOperands or None
        The host tensors of float inputs (for :func:`to_float`).
    report : dict
        The 2:4 pruning entries (:func:`prune_weights`).
    """
    cfg: object
    mode: str
    W: np.ndarray
    A: np.ndarray
    Wq: np.ndarray
    Aq: np.ndarray
    w_scales: np.ndarray | None
    a_scales: np.ndarray | None
    sparse: bool
    is_float: bool
    ops: QuantizedOperands | None
    report: dict

    def to_float(self, Y):
        """The core's results for these operands as floats (float inputs only)."""
        return to_float(self.cfg, self.ops, Y)


def prepare_operands(cfg, scheme, W, A, notify=_note):
    """``W @ A`` (float or integer-code 2-D arrays) as core inputs per ``scheme`` on ``cfg``: the config
    adapted (:func:`core_for_mode`, :func:`core_for_sparse`, :func:`core_for_scales`), weights pruned,
    floats quantized. Raises :class:`~qmac.hw.spec.config.ConfigError` (a ValueError) when the scheme does not
    fit, ValueError for codes out of the mode's range."""
    from qmac.hw.spec.config import code_range
    mode = scheme.mode
    k = W.shape[1]
    cfg = core_for_mode(cfg, mode, k, notify)
    report = {}
    if scheme.sparse:
        if cfg.datapath.sparse_reason_of(mode):
            raise ConfigError(f"--sparse 2:4 is not supported with --format {mode}: "
                              f"{cfg.datapath.sparse_reason_of(mode)}")
        W, A, report = prune_weights(W, A)
        cfg = core_for_sparse(cfg, notify)
    is_float = W.dtype.kind == "f" or A.dtype.kind == "f"
    if not is_float:
        for name, x in (("weights", W), ("activations", A)):
            lo, hi = code_range(mode, activations=name == "activations")
            if x.size and (x.min() < lo or x.max() > hi):
                raise ValueError(f"{name} codes span [{x.min()}, {x.max()}]; {mode} allows [{lo}, {hi}]")
        Wq, Aq = W.astype(np.int64), A.astype(np.int64)
        return PreparedOperands(cfg, mode, W, A, Wq, Aq, None, None, scheme.sparse, False, None, report)
    qw, qa = quantize_weights(cfg, scheme, W), quantize_activations(cfg, scheme, A)
    cfg = core_for_scales(cfg, scheme, W.shape[1], notify)
    ops = quantized_operands(cfg, scheme, qw, qa)
    return PreparedOperands(cfg, mode, W, A, ops.W, ops.A, ops.w_scales, ops.a_scales, scheme.sparse, True, ops,
                            report)
