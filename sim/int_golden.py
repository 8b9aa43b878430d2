"""The INT datapath's golden arithmetic and host quantizer (:class:`qmac.hw.spec.datapath.IntDatapath`)."""

import numpy as np

from qmac.hw.spec.formats import ELEMENT_FORMATS
from qmac.sim.mac_unit import accumulate
from qmac.sim.ops import NumpyOps
from qmac.sim.quantize import SCHEMES, quantize
from qmac.sim.sparse24 import compress

__all__ = ["IntGolden"]


def _block_sums(Wp, Ap, block):
    """Exact partial sums of consecutive K blocks: ``(K / block, Np, Mp)`` int64, from float64 BLAS, which
    is exact here because every partial sum is below ``2**53`` (|product| <= 2**14, K <= 2**24)."""
    nb = Wp.shape[1] // block
    Wb = Wp.reshape(Wp.shape[0], nb, block).transpose(1, 0, 2).astype(np.float64)
    Ab = Ap.reshape(nb, block, Ap.shape[1]).astype(np.float64)
    return np.rint(Wb @ Ab).astype(np.int64)


def _compressed_block_sums(Wp, Ap, block):
    """:func:`_block_sums` of 2:4 sparse ``Wp`` computed from its compressed form, as the sparse datapath does:
    each kept value (:func:`qmac.sim.sparse24.compress`) multiplies the activation its 2-bit position selects,
    ``values[r, c] * Ap[4 * (c // 2) + indices[r, c]]``. Grouped by position ``i`` (at most one kept value of a
    group sits at ``i``), that is ``sum_i V_i @ Ap[i::4]`` with ``V_i`` (Np x K/4) the kept value at position
    ``i`` of each group, else 0."""
    sp = compress(Wp)
    values = sp.values.astype(np.int64).reshape(Wp.shape[0], -1, 2)
    indices = sp.indices.reshape(values.shape)
    return sum(_block_sums(np.where(indices == i, values, 0).sum(axis=-1), Ap[i::4], block // 4) for i in range(4))


class IntGolden:
    """Bit-exact model and host side of an INT build.

    Parameters
    ----------
    config : CoreConfig
    """
    #: ``qmac gemm --scale`` schemes of the host quantizer (:func:`qmac.sim.quantize.quantize`).
    schemes = SCHEMES
    #: Scale width of ``--scale vector`` when none is given.
    default_scale_bits = 8

    def __init__(self, config):
        self.config = config

    def gemm(self, plan, Wp, Ap, sw, sa):
        """``(Y, saturated)`` of padded codes and scale fields (see :func:`qmac.sim.gemm.golden_gemm`).
        Exact accumulators without scales: ``Y = W @ A``. With scales, every group's partial sum is scaled
        (``ScaleFormat.apply``) before it is summed; with exact accumulators and dense weights that sum is
        computed as one product of the operands each multiplied by its groups' factors (``ScaleFormat.factor``).
        2:4 sparse plans compute every partial sum from the compressed weights (:func:`_compressed_block_sums`).
        Saturating accumulators: per-beat (scaled) partial sums accumulated in order with saturation
        (:func:`qmac.sim.mac_unit.accumulate`)."""
        cfg = self.config
        block_sums = _compressed_block_sums if plan.sparse else _block_sums
        if sw is None and not cfg.saturating:
            if plan.sparse:
                Y = block_sums(Wp, Ap, plan.k_padded)[0]
            else:
                Y = np.rint(Wp.astype(np.float64) @ Ap.astype(np.float64)).astype(np.int64)
            return Y, np.zeros(Y.shape, dtype=bool)
        if sw is None:
            beats = block_sums(Wp, Ap, plan.elements_per_beat)
        elif not cfg.saturating and not plan.sparse:
            # Exact accumulators: the order of the sums does not matter, and a group's factor splits into a
            # weight and an activation factor, so Y is one matrix product of the scaled operands (float64 BLAS,
            # exact while K * max|w * f_w| * max|a * f_a| < 2**53, else int64).
            fmt, g = cfg.scale_format, plan.group_elements
            Ws = Wp.astype(np.int64) * np.repeat(fmt.factor(np.asarray(sw, dtype=np.int64)), g, axis=1)
            As = Ap.astype(np.int64) * np.repeat(fmt.factor(np.asarray(sa, dtype=np.int64)), g, axis=0)
            if Ws.shape[1] * int(np.abs(Ws).max(initial=0)) * int(np.abs(As).max(initial=0)) < 2 ** 53:
                Y = np.rint(Ws.astype(np.float64) @ As.astype(np.float64)).astype(np.int64)
            else:
                Y = Ws @ As
            return Y, np.zeros(Y.shape, dtype=bool)
        else:
            fmt = cfg.scale_format
            groups = block_sums(Wp, Ap, plan.group_elements)
            product = fmt.product(sw.T[:, :, None], sa[:, None, :], NumpyOps)
            groups = fmt.apply(groups, product, NumpyOps)
            beats = groups.reshape((plan.k_beats, cfg.scale_groups) + groups.shape[1:]).sum(axis=1)
        return accumulate(beats, cfg)

    def value(self, Y):
        """The numbers the results stand for: the integers themselves."""
        return np.asarray(Y)

    def reference(self, plan, W, A, w_scales=None, a_scales=None):
        """``(exact, tolerance)``: the product computed apart from the core's arithmetic, ``W @ A`` with
        every element times its vector's scale factor (``ScaleFormat.factor``), exactly in int64; tolerance
        0. ``None`` with saturating accumulators (the core then differs by design)."""
        cfg = self.config
        if cfg.saturating:
            return None
        W, A = np.asarray(W, dtype=np.int64), np.asarray(A, dtype=np.int64)
        if w_scales is not None:
            g, k, fmt = plan.group_elements, W.shape[1], cfg.scale_format
            W = W * fmt.factor(np.repeat(np.asarray(w_scales, dtype=np.int64), g, axis=1)[:, :k])
            A = A * fmt.factor(np.repeat(np.asarray(a_scales, dtype=np.int64), g, axis=0)[:k])
        return W @ A, 0

    def quantize(self, x, mode, axis, scheme, vector, scale_bits, clip, scale_kind, rounding="nearest"):
        """Float matrix -> :class:`qmac.sim.quantize.VsqTensor` (per-vector scales of ``scale_kind`` with
        ``scheme = "vector"``, each vector's field rounded to nearest or, with ``rounding = "best"``, the
        neighbour of smaller error (:func:`qmac.sim.ptq.quantize_vsq_best`); else a per-tensor or per-channel
        float scale). Weights (``axis = 1``) take the mode's weight format, activations (``axis = 0``) its
        activation format (:attr:`~qmac.hw.spec.formats.ElementFormat.operands`)."""
        kind = scale_kind if scheme == "vector" else "int"
        weights, activations = ELEMENT_FORMATS[mode].operands   # W4A8: INT4 weights, INT8 activations
        fmt = activations if axis == 0 else weights
        if scheme == "vector" and rounding == "best":
            from qmac.sim.ptq import quantize_vsq_best
            return quantize_vsq_best(x, fmt, vector, scale_bits, axis, clip, kind)
        return quantize(x, fmt, scheme, axis, vector, scale_bits, clip, kind)

    def scale_changes(self, scale_bits, scale_kind):
        """Config changes the core needs to take per-vector scales of ``scale_kind`` and ``scale_bits``
        (``{}`` if its scale units already fit: same kind, at least as wide)."""
        cfg = self.config
        if cfg.scale_bits and cfg.scale_kind == scale_kind and cfg.scale_bits >= scale_bits:
            return {}
        return {"scale_bits": scale_bits, "scale_kind": scale_kind}

    def to_float(self, Y, qw, qa):
        """Results of quantized operands ``qw``, ``qa`` -> floats: times the coarse scales ``gamma``."""
        return Y * (qw.gamma * qa.gamma)
