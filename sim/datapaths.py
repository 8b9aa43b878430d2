"""The golden side of each datapath, found by its spec class (:data:`qmac.hw.spec.datapath.DATAPATHS`)."""

import numpy as np

from qmac.hw.spec.datapath import IntDatapath, LogDatapath
from qmac.sim.int_golden import IntGolden
from qmac.sim.log_golden import LogGolden

__all__ = ["GOLDEN", "golden", "reference_error"]

#: Spec class -> golden class, built from the config. Each has ``gemm(plan, Wp, Ap, sw, sa)`` (bit-exact
#: result), ``value(Y)`` (the numbers the results stand for), ``reference(plan, W, A, w_scales, a_scales)``
#: (an independent product and its tolerance, or ``None``), and the host quantizer: ``schemes``,
#: ``default_scale_bits``, ``quantize(...)``, ``scale_changes(bits, kind)``, ``to_float(Y, qw, qa)``.
GOLDEN = {IntDatapath: IntGolden, LogDatapath: LogGolden}


def golden(config):
    """The golden model of ``config.datapath``."""
    return GOLDEN[type(config.datapath)](config)


def reference_error(plan, Y, W, A, w_scales=None, a_scales=None):
    """How far the results ``Y`` (N x M) lie outside the datapath's reference product: the largest
    ``|value - exact| - tolerance`` (<= 0 when every result is within it), or ``None`` when the datapath
    has no reference for this config."""
    model = golden(plan.config)
    ref = model.reference(plan, W, A, w_scales, a_scales)
    if ref is None:
        return None
    exact, tolerance = ref
    return float(np.max(np.abs(model.value(Y) - exact) - tolerance))
