"""Amaranth backend for the format operations of :mod:`qmac.hw.spec.formats`."""

from amaranth.hdl import Cat, Const, Mux, Signal, Value

__all__ = ["AmaranthOps", "adder_tree", "delay", "max_tree"]


def adder_tree(values):
    """Balanced adder tree; Amaranth widens every sum, so it is exact."""
    while len(values) > 1:
        values = [values[j] + values[j + 1] if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]


def delay(m, value, stages, name, reset_less=True):
    """``value`` of ``stages`` cycles earlier: a chain of ``stages`` registers in ``m``'s sync domain,
    named ``{name}_0``, ``{name}_1``, ... (``value`` itself when ``stages`` is 0)."""
    for stage in range(stages):
        delayed = Signal.like(value, name=f"{name}_{stage}", reset_less=reset_less)
        m.d.sync += delayed.eq(value)
        value = delayed
    return value


class AmaranthOps:
    """Builds hardware: ``where`` is a multiplexer, ``wrap`` a bit slice."""

    @staticmethod
    def where(cond, a, b):
        return Mux(cond, a, b)

    @staticmethod
    def mul(a, b):
        """``a * b`` of two unsigned values as shift-and-add rows (``b[i] ? a << i : 0``, summed as a
        balanced tree): logic, where ``*`` becomes a DSP block on an FPGA (a whole MULT18X18D, and two long
        wires, for a product of two few-bit scale fields)."""
        a, b = Value.cast(a), Value.cast(b)
        return adder_tree([Mux(b[i], a << i, 0) for i in range(len(b))])

    @staticmethod
    def shift_left(x, amount):
        """``x << amount`` for a constant ``amount >= 0``: a wider slice, no logic. (Amaranth's ``<<`` is the
        variable shifter, ``2**len(amount) - 1`` bits wider, whose every output bit depends on every input
        bit: Amaranth's combinational-loop check then walks its whole netlist for many seconds.)"""
        return Value.cast(x).shift_left(amount)

    @staticmethod
    def wrap(x, bits, signed):
        x = Value.cast(x)
        if len(x) < bits:
            fill = x[-1] if x.shape().signed else Const(0, 1)
            x = Cat(x, fill.replicate(bits - len(x)))
        return x[:bits].as_signed() if signed else x[:bits].as_unsigned()


def max_tree(values):
    """Balanced tree of two-input maxima (a comparator and a multiplexer each) over unsigned values."""
    while len(values) > 1:
        values = [Mux(values[j] > values[j + 1], values[j], values[j + 1]) if j + 1 < len(values) else values[j]
                  for j in range(0, len(values), 2)]
    return values[0]
