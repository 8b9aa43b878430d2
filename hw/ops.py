"""Amaranth backend for the format operations of :mod:`qmac.hw.formats`."""

from amaranth.hdl import Cat, Const, Mux, Value

__all__ = ["AmaranthOps"]


class AmaranthOps:
    """Builds hardware: ``where`` is a multiplexer, ``wrap`` a bit slice."""

    @staticmethod
    def where(cond, a, b):
        return Mux(cond, a, b)

    @staticmethod
    def wrap(x, bits, signed):
        x = Value.cast(x)
        if len(x) < bits:
            fill = x[-1] if x.shape().signed else Const(0, 1)
            x = Cat(x, fill.replicate(bits - len(x)))
        return x[:bits].as_signed() if signed else x[:bits].as_unsigned()
