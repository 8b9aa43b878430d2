"""Golden twin of :class:`qmac.hw.log_datapath.log_encode.LogEncode`: signed fixed point to log codes, bit-exact."""

import numpy as np

from qmac.hw.spec.formats import IntFormat
from qmac.hw.spec.log_encode import LogEncodeArithmetic

__all__ = ["log_encode"]


class _PythonIntOps:
    """The ops backend on numpy object arrays of Python ints (the mantissas reach ``in_bits`` bits, up to
    128): ``where`` never falls back to int64."""

    @staticmethod
    def where(cond, a, b):
        return np.where(np.asarray(cond, dtype=bool), np.asarray(a, dtype=object), np.asarray(b, dtype=object))

    @staticmethod
    def shift_left(x, amount):
        return np.asarray(x, dtype=object) << amount


def _checked(name, values, bits):
    """``values`` as an object array of Python ints, checked to fit ``bits`` signed bits."""
    fmt = IntFormat(bits) if bits else IntFormat(1)
    lo, hi = (fmt.min, fmt.max) if bits else (0, 0)
    values = np.asarray(values)
    if values.dtype.kind not in "iuO":
        raise ValueError(f"{name} must hold integers, not {values.dtype}")
    values = values.astype(object)
    if values.size and not (lo <= values.min() and values.max() <= hi):
        raise ValueError(f"{name} must be within [{lo}, {hi}], not {values.min()}..{values.max()}")
    return values


def log_encode(fmt, x, in_bits, in_exponent=0, shift=0, shift_bits=0):
    """Codes of ``x * 2**in_exponent * 2**(-shift / 2**F)``, exactly as :class:`~qmac.hw.log_datapath.log_encode.LogEncode`.

    The stages of :class:`qmac.hw.spec.log_encode.LogEncodeArithmetic` run on numpy object arrays of Python ints.

    Parameters
    ----------
    fmt : LogFormat
    x : array_like of int
        Signed inputs, each within ``in_bits`` bits.
    in_bits, in_exponent, shift_bits : int
        As :class:`~qmac.hw.log_datapath.log_encode.LogEncode`.
    shift : array_like of int
        Broadcastable to ``x``, each within ``shift_bits`` signed bits (0 when ``shift_bits == 0``).

    Returns
    -------
    numpy.ndarray of int64
        Codes, the shape of ``x`` broadcast with ``shift``.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    ValueError
        An input is outside its width.
    """
    arith = LogEncodeArithmetic(fmt, in_bits, in_exponent, shift_bits)
    x = _checked("x", x, in_bits)
    shift = _checked("shift", shift, shift_bits)
    values = {"x": x, "shift": shift}
    for _, stage, _ in arith.stages:
        values = stage(values, _PythonIntOps)
    return np.broadcast_to(values["code"], np.broadcast_shapes(x.shape, shift.shape)).astype(np.int64)
