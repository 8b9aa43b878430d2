"""numpy backend for the format operations of :mod:`qmac.hw.spec.formats` (the golden model's arithmetic)."""

import numpy as np

__all__ = ["NumpyOps"]


class NumpyOps:
    """Computes on ``int64`` arrays (or Python ints); callers keep values within 62 bits."""

    @staticmethod
    def where(cond, a, b):
        return np.where(cond, a, b)

    @staticmethod
    def mul(a, b):
        """``a * b`` (unsigned values)."""
        return np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)

    @staticmethod
    def wrap(x, bits, signed):
        x = np.asarray(x, dtype=np.int64)
        if bits >= 64:
            return x
        low = x & ((1 << bits) - 1)
        return np.where(low >= (1 << (bits - 1)), low - (1 << bits), low) if signed else low
