"""Operands of a GEMM on the core, shared by ``qmac gemm`` and ``qmac energy``: the format and scaling
flags, switching the config to the format's datapath, 2:4 pruning, and quantizing float inputs (per tensor,
per channel or per vector) into codes and scale fields."""

import sys
from types import SimpleNamespace

import numpy as np

from qmac.hw.spec.config import MODES, ConfigError, code_range, per_lane

from .common import UsageError

__all__ = ["add_operand_args", "prepare_operands"]


def add_operand_args(p):
    """The format, scaling, clipping and sparsity flags on the subcommand parser ``p``."""
    p.add_argument("--format", default="int8", choices=list(MODES),
                   help="int8/int4, or lns8/lns4 (the log datapath; the config is switched to it if needed)")
    p.add_argument("--scale", default="per-tensor", choices=["per-tensor", "per-channel", "vector"],
                   help="float inputs: scale granularity (default per-tensor; lns: per-tensor or vector, in the "
                        "log domain)")
    p.add_argument("--vector", type=int, default=16, metavar="V", help="--scale vector: elements per vector (16)")
    p.add_argument("--scale-bits", type=int, metavar="S",
                   help="--scale vector: scale width (default 8 for int formats, 4 for lns: log scales are exponents)")
    p.add_argument("--scale-kind", choices=["int", "pow2"], help="--scale vector, int formats: int (default) or pow2")
    p.add_argument("--clip", default="max", choices=["max", "percentile", "mse"], help="float inputs: clip method")
    p.add_argument("--sparse", choices=["2:4"], help="2:4 sparse weights: prune (or verify), compress, run sparse")


def _with(cfg, note, **changes):
    """``cfg`` with ``changes`` (what the flags need), announced on stderr. If the widths then pass 64
    bits, ``max_k`` is lowered to the GEMM's K (``changes['k']``) as a second try."""
    k = changes.pop("k")
    try:
        new = cfg.replace(**changes)
    except ConfigError as first:
        lo = 2 * cfg.lanes * min(per_lane(m) for m in changes.get("modes", cfg.modes))
        max_k = max(lo, 1 << (k - 1).bit_length())
        try:
            new = cfg.replace(max_k=max_k, **changes)
        except ConfigError:
            raise UsageError(f"{note}: {first}") from None
        changes["max_k"] = max_k
    if new != cfg:
        print(f"qmac: note: {note}; using the config with "
              + ", ".join(f"{key} = {value!r}" for key, value in changes.items()), file=sys.stderr)
    return new


def _quantize_operands(args, cfg, W, A, mode):
    """Float operands -> ``(config, W codes, A codes, W tensor or None, A tensor or None, to_float)``
    per the --scale options (INT: :class:`VsqTensor`; LNS: :class:`LogTensor`, also per tensor), where
    ``to_float(Y)`` turns the core's results into floats; the config gains scale units when the scheme
    needs them and it has none."""
    vector = args.vector if args.scale == "vector" else None
    bits = args.scale_bits if args.scale == "vector" else None
    if cfg.lns:
        from qmac.sim.log_dot_product import value
        from qmac.sim.log_quantize import quantize_log
        if args.scale == "per-channel":
            raise UsageError(f"--scale per-channel is not supported with --format {mode}; allowed: per-tensor, vector")
        bits = bits if bits is not None else 0
        try:
            qw = quantize_log(W, cfg.log_format, 1, vector, bits, args.clip)
            qa = quantize_log(A, cfg.log_format, 0, vector, bits, args.clip)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if vector and (cfg.scale_bits != bits or cfg.scale_kind != "log"):
            cfg = _with(cfg, f"--scale vector --scale-bits {bits} needs {bits}-bit log scale units",
                        scale_bits=bits, scale_kind="log", k=W.shape[1])
        factor = 2.0 ** ((qw.offset + qa.offset) / cfg.log_format.buckets)
        return (cfg, qw.codes, qa.codes, qw if vector else None, qa if vector else None,
                lambda Y, cfg=cfg: value(cfg.log_sum, Y) * factor)
    from qmac.hw.spec.formats import ELEMENT_FORMATS
    from qmac.sim.quantize import quantize
    kind = args.scale_kind if args.scale == "vector" else "int"
    try:
        qw = quantize(W, ELEMENT_FORMATS[mode], args.scale, 1, vector, bits, args.clip, kind)
        qa = quantize(A, ELEMENT_FORMATS[mode], args.scale, 0, vector, bits, args.clip, kind)
    except ValueError as e:
        raise UsageError(str(e)) from None
    gamma = qw.gamma * qa.gamma  # (N, 1) * (1, M)
    if args.scale != "vector":
        return cfg, qw.codes, qa.codes, None, None, lambda Y: Y * gamma
    if not cfg.scale_bits or cfg.scale_kind != kind or cfg.scale_bits < bits:
        cfg = _with(cfg, f"--scale-bits {bits} --scale-kind {kind} needs {kind} scales of {bits} bits",
                    scale_bits=bits, scale_kind=kind, k=W.shape[1])
    return cfg, qw.codes, qa.codes, qw, qa, lambda Y: Y * gamma


def prepare_operands(args, cfg, W, A):
    """Codes and scale fields of ``W @ A`` on ``cfg`` per the flags of :func:`add_operand_args`.

    Returns a namespace: ``cfg`` (the config, switched to the format's datapath, scale units or sparse
    selection when the flags need them, announced on stderr), ``mode``, ``W`` and ``A`` (the float or code
    inputs, W pruned to 2:4 and K padded when sparse), ``Wq``, ``Aq`` (codes), ``w_scales``, ``a_scales``
    (scale fields or None), ``sparse`` (bool), ``is_float``, ``to_float`` (results -> floats, for float
    inputs) and ``report`` (the sparse pruning entries). Raises :class:`UsageError` on bad flags or codes."""
    from qmac.sim.gemm import core_scales, plan_gemm
    mode = args.format
    if mode not in cfg.modes:
        if mode in ("int8", "int4") and not cfg.lns:
            raise UsageError(f"--format {mode!r} is not built into this core; allowed: {', '.join(cfg.modes)}")
        # A different datapath: the same array with this mode's lanes (and no INT-only extras).
        extras = {"scale_bits": 0, "scale_kind": "int", "scale_lanes": None, "sparse": False, "output_stage": False,
                  "acc_bits": None, "p_bits": None, "q_floor": None, "bucket_organisation": None}
        cfg = _with(cfg, f"--format {mode} is not built into this core", modes=(mode,), k=W.shape[1],
                    **{key: value for key, value in extras.items() if getattr(cfg, key) != value})
    if args.sparse and cfg.lns:
        raise UsageError(f"--sparse 2:4 is not supported with --format {mode}; allowed: the int8 and int4 formats")
    if args.scale_kind is not None and cfg.lns:
        raise UsageError(f"--scale-kind applies to the int formats; {mode} takes log scales")
    args.scale_kind = args.scale_kind or "int"
    args.scale_bits = args.scale_bits if args.scale_bits is not None else 4 if cfg.lns else 8
    is_float = np.issubdtype(W.dtype, np.floating) or np.issubdtype(A.dtype, np.floating)
    w_scales = a_scales = None
    sparse_report = {}
    if args.sparse:
        from qmac.sim.sparse24 import is_2_4, pad_k, pruning_error, prune_2_4
        if W.shape[1] % 4:
            W, A = pad_k(W, 4), np.pad(A, ((0, -W.shape[1] % 4), (0, 0)))
        if is_2_4(W):
            sparse_report = {"sparse": "2:4", "pruned": False}
        else:
            err = pruning_error(W.astype(np.float64))
            sparse_report = {"sparse": "2:4", "pruned": True, "pruning_sqnr_db": err["sqnr_db"],
                             "pruning_relative_error": err["relative_l2"]}
            W = prune_2_4(W)
        if not cfg.sparse:
            cfg = cfg.replace(sparse=True)
            print("qmac: note: this config has no 2:4 operand selection; using it with sparse = true",
                  file=sys.stderr)
    if is_float:
        cfg, Wq, Aq, qw, qa, to_float = _quantize_operands(args, cfg, W, A, mode)
        if qw is not None:
            try:
                plan = plan_gemm(cfg, mode, Wq.shape, Aq.shape, bool(args.sparse))
                w_scales, a_scales = core_scales(qw, plan), core_scales(qa, plan)
            except ValueError as e:
                raise UsageError(str(e)) from None
    else:
        if args.scale != "per-tensor":
            raise UsageError("--scale applies to float inputs; integer inputs are taken as codes")
        Wq, Aq = W.astype(np.int64), A.astype(np.int64)
        lo, hi = code_range(mode)
        for name, x in (("weights", Wq), ("activations", Aq)):
            if x.size and (x.min() < lo or x.max() > hi):
                raise UsageError(f"--{name} codes span [{x.min()}, {x.max()}]; {mode} allows [{lo}, {hi}]")
    return SimpleNamespace(cfg=cfg, mode=mode, W=W, A=A, Wq=Wq, Aq=Aq, w_scales=w_scales, a_scales=a_scales,
                           sparse=bool(args.sparse), is_float=is_float, to_float=to_float if is_float else None,
                           report=sparse_report)
