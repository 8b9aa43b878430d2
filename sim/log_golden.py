"""The LNS datapath's golden arithmetic and host quantizer (:class:`qmac.hw.spec.datapath.LogDatapath`)."""

import numpy as np

from qmac.sim import log_dot_product
from qmac.sim.log_format import decode
from qmac.sim.log_quantize import quantize_log

__all__ = ["LogGolden"]


class LogGolden:
    """Bit-exact model and host side of an LNS build.

    Parameters
    ----------
    config : CoreConfig
    """
    #: ``qmac gemm --scale`` schemes of the host quantizer (:func:`qmac.sim.log_quantize.quantize_log`).
    schemes = ("per-tensor", "vector")
    #: Scale width of ``--scale vector`` when none is given (log scales are exponents).
    default_scale_bits = 4

    def __init__(self, config):
        self.config = config

    def _exponents(self, plan, w_scales, a_scales, k=None):
        """Per-element log scales ``(w_exp, a_exp)`` (``None`` where absent), cut to ``k`` elements."""
        g = plan.group_elements
        w_exp = None if w_scales is None else np.repeat(w_scales, g, axis=1)[:, :k]
        a_exp = None if a_scales is None else np.repeat(a_scales, g, axis=0)[:k]
        return w_exp, a_exp

    def gemm(self, plan, Wp, Ap, sw, sa):
        """``(Y, saturated)``: every unit's fraction buckets, combined (:mod:`qmac.sim.log_dot_product`; the
        value is ``Y * 2**LogSum.result_exponent``; windowed, :func:`~qmac.sim.log_dot_product.gemm_window`,
        one beat of ``elements_per_beat`` at a time as the units sum them), the log scales of each group added to its products'
        exponents; never saturated."""
        spec = self.config.log_sum
        w_exp, a_exp = self._exponents(plan, sw, sa)
        if spec.windowed:
            Y = log_dot_product.gemm_window(spec, Wp, Ap, w_exp, a_exp)
        else:
            Y = log_dot_product.combine(spec, log_dot_product.gemm_buckets(spec, Wp, Ap, w_exp, a_exp))
        return Y, np.zeros(Y.shape, dtype=bool)

    def value(self, Y):
        """The numbers the results stand for: ``Y * 2**LogSum.result_exponent`` (float64)."""
        return log_dot_product.value(self.config.log_sum, Y)

    def reference(self, plan, W, A, w_scales=None, a_scales=None):
        """``(exact, tolerance)``: the float64 product of the decoded codes (scales applied), and the
        combine's error bound (:func:`qmac.sim.log_dot_product.error_bound`) plus float64 rounding and one
        unit of the result."""
        cfg = self.config
        fmt, spec = cfg.log_format, cfg.log_sum
        W, A = np.asarray(W), np.asarray(A)
        we, ae = self._exponents(plan, w_scales, a_scales, W.shape[1])
        we = np.zeros(W.shape, dtype=np.int64) if we is None else we.astype(np.int64)
        ae = np.zeros(A.shape, dtype=np.int64) if ae is None else ae.astype(np.int64)
        exact = (decode(fmt, W) * np.exp2(we / fmt.buckets)) @ (decode(fmt, A) * np.exp2(ae / fmt.buckets))
        bound = log_dot_product.error_bound(spec, W[:, None, :], A.T[None, :, :], we[:, None, :] + ae.T[None, :, :])
        return exact, bound + 1e-9 * np.abs(exact) + 2.0 ** spec.result_exponent

    def quantize(self, x, mode, axis, scheme, vector, scale_bits, clip, scale_kind, rounding="nearest"):
        """Float matrix -> :class:`qmac.sim.log_quantize.LogTensor` in the build's log format (a tensor
        exponent, and with ``scheme = "vector"`` per-vector log scales of ``scale_bits``). A log scale is an
        exponent: ``rounding`` has one choice here, the encoder's nearest."""
        if rounding != "nearest":
            raise ValueError(f"log scales are rounded to nearest, not {rounding!r}")
        return quantize_log(x, self.config.log_format, axis, vector, scale_bits or 0, clip)

    def scale_changes(self, scale_bits, scale_kind):
        """Config changes the core needs to take log scales of ``scale_bits`` (``{}`` if it has exactly
        those: a log scale's width is part of its value)."""
        cfg = self.config
        if cfg.scale_bits == scale_bits and cfg.scale_kind == "log":
            return {}
        return {"scale_bits": scale_bits, "scale_kind": "log"}

    def to_float(self, Y, qw, qa):
        """Results of quantized operands -> floats: their value times ``2**((offset_w + offset_a) / 2**F)``."""
        return self.value(Y) * 2.0 ** ((qw.offset + qa.offset) / self.config.log_format.buckets)
