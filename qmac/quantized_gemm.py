"""A float matrix product through a core: choose the core for a quantization scheme, quantize the operands as
the host does, and turn the core's integer (or LNS bucket) results back into floats.

``qmac gemm`` (float inputs) and ``qmac model`` (every MatMul/Gemm/Conv of a network) both call these
functions, so one flag means one thing in both.
"""

import sys
from dataclasses import dataclass

import numpy as np

from qmac.hw.spec.config import ConfigError, per_lane

__all__ = ["Scheme", "with_changes", "core_for_mode", "core_for_sparse", "core_for_scales", "prune_weights",
           "quantize_weights", "quantize_activations", "QuantizedOperands", "quantized_operands", "to_float"]


@dataclass(frozen=True)
class Scheme:
    """How float operands become core inputs (the quantization flags of ``qmac gemm``).

    Members
    -------
    format : str
        Datapath mode: ``int8``, ``int4``, ``lns8`` or ``lns4``.
    scale : str
        ``per-tensor``, ``per-channel`` (INT only) or ``vector``.
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
    """
    format: str = "int8"
    scale: str = "per-tensor"
    vector: int = 16
    scale_bits: int | None = None
    scale_kind: str | None = None
    clip: str = "max"
    sparse: bool = False

    @property
    def lns(self):
        return self.format.startswith("lns")

    @property
    def vector_length(self):
        """V with per-vector scales, else ``None``."""
        return self.vector if self.scale == "vector" else None

    @property
    def bits(self):
        """Per-vector scale width in use: the given one, or 8 (INT) / 4 (LNS); ``None`` without vectors."""
        if self.scale != "vector":
            return None
        return self.scale_bits if self.scale_bits is not None else 4 if self.lns else 8

    @property
    def kind(self):
        """Per-vector scale kind in use: ``log`` for LNS, else the given one or ``int``."""
        return "log" if self.lns else self.scale_kind or "int"


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
    built in. An INT mode missing from an INT core is an error (the user chose that core)."""
    if mode in cfg.modes:
        return cfg
    if mode in ("int8", "int4") and not cfg.lns:
        raise ConfigError(f"--format {mode!r} is not built into this core; allowed: {', '.join(cfg.modes)}")
    extras = {"scale_bits": 0, "scale_kind": "int", "scale_lanes": None, "sparse": False, "output_stage": False,
              "acc_bits": None, "p_bits": None, "q_floor": None, "bucket_organisation": None,
              "bucket_fraction_bits": None, "mantissa_bits": None}
    return with_changes(cfg, f"--format {mode} is not built into this core", notify, modes=(mode,), k=k,
                        **{key: value for key, value in extras.items() if getattr(cfg, key) != value})


def core_for_sparse(cfg, notify=_note):
    """``cfg`` with 2:4 operand selection."""
    if cfg.sparse:
        return cfg
    notify("this config has no 2:4 operand selection; using it with sparse = true")
    return cfg.replace(sparse=True)


def core_for_scales(cfg, scheme, k, notify=_note):
    """``cfg`` with the scale units ``scheme``'s per-vector scales need (unchanged without vectors)."""
    if scheme.scale != "vector":
        return cfg
    bits, kind = scheme.bits, scheme.kind
    if kind == "log":
        if cfg.scale_bits == bits and cfg.scale_kind == "log":
            return cfg
        return with_changes(cfg, f"--scale vector --scale-bits {bits} needs {bits}-bit log scale units", notify,
                            scale_bits=bits, scale_kind="log", k=k)
    if cfg.scale_bits and cfg.scale_kind == kind and cfg.scale_bits >= bits:
        return cfg
    return with_changes(cfg, f"--scale-bits {bits} --scale-kind {kind} needs {kind} scales of {bits} bits", notify,
                        scale_bits=bits, scale_kind=kind, k=k)


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
    if cfg.lns:
        from qmac.sim.log_quantize import quantize_log
        if scheme.scale == "per-channel":
            raise ConfigError(f"--scale per-channel is not supported with --format {scheme.format}; "
                              f"allowed: per-tensor, vector")
        return quantize_log(x, cfg.log_format, axis, scheme.vector_length, scheme.bits or 0, scheme.clip)
    from qmac.hw.spec.formats import ELEMENT_FORMATS
    from qmac.sim.quantize import quantize
    kind = scheme.kind if scheme.scale == "vector" else "int"
    return quantize(x, ELEMENT_FORMATS[scheme.format], scheme.scale, axis, scheme.vector_length, scheme.bits,
                    scheme.clip, kind)


def quantize_weights(cfg, scheme, W):
    """Weights ``W`` (N x K floats) as ``scheme`` says on core ``cfg``: a
    :class:`~qmac.sim.quantize.VsqTensor` (INT) or :class:`~qmac.sim.log_quantize.LogTensor` (LNS), along K."""
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
    if scheme.scale == "vector":
        plan = plan_gemm(cfg, scheme.format, qw.codes.shape, qa.codes.shape, scheme.sparse)
        w_scales, a_scales = core_scales(qw, plan), core_scales(qa, plan)
    return QuantizedOperands(qw.codes, qa.codes, w_scales, a_scales, qw, qa)


def to_float(cfg, ops, Y):
    """The core's results ``Y`` (N x M) for ``ops`` as floats: ``Y * gamma_w * gamma_a`` (INT), or the LNS
    value of the buckets' sum times ``2**((offset_w + offset_a) / 2**F)``."""
    if cfg.lns:
        from qmac.sim.log_dot_product import value
        factor = 2.0 ** ((ops.qw.offset + ops.qa.offset) / cfg.log_format.buckets)
        return value(cfg.log_sum, Y) * factor
    return Y * (ops.qw.gamma * ops.qa.gamma)
