"""Winograd's pair term for two operand lanes: ``(a0 + w1) * (a1 + w0)`` per element pair, as one signed
multiplication sized for an ECP5 MULT18X18D."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.multipliers import Mult18Fip
from qmac.hw.spec.formats import INT4, INT8, IntFormat, lane_range
from qmac.hw.lanes.lane_product import lane_format
from qmac.hw.local_register import LocalRegister
from qmac.hw.lanes.mult18 import Mult18

__all__ = ["WinogradPairProduct", "winograd_pair_format", "winograd_correction_format"]

#: Bit offset of the second lane's term in an INT4 mode's packed operands.
_SHIFT = 11
#: Offset making the low term of an INT4 packed product non-negative: ``-min(X0 * Y1)``.
_OFFSET = 224

#: Exact range of the pair term per mode: INT8 ``(a0 + w1)(a1 + w0)`` with both factors in [-256, 254];
#: INT4 the sum of two such terms with factors in [-16, 14].
_RANGES = {INT8.name: (-256 * 254, 256 * 256), INT4.name: (-2 * 16 * 14, 2 * 16 * 16)}


def winograd_pair_format(modes):
    """Format of :class:`WinogradPairProduct`'s ``p`` for ``modes``."""
    lane_format(modes)  # validates modes
    return IntFormat.for_range(min(_RANGES[m][0] for m in modes), max(_RANGES[m][1] for m in modes))


def winograd_correction_format(lanes, modes):
    """Format of the Winograd correction ``sum_i v[2i] * v[2i+1]`` of a vector of ``lanes`` lanes
    (:class:`~qmac.hw.lanes.winograd_correction.WinogradCorrection`): ``lanes / 2`` lane products."""
    lo, hi = lane_range(modes)
    return IntFormat.for_range(lanes // 2 * lo, lanes // 2 * hi)


class WinogradPairProduct(wiring.Component):
    """Winograd's (1968) inner-product term for two weight and two activation lanes.

    Read the two lanes as the element vector ``e`` of the mode (INT8: ``e = (lane0, lane1)``; INT4:
    ``e = (lane0[0:4], lane0[4:8], lane1[0:4], lane1[4:8])``), and pair consecutive elements. Then::

        p = sum over pairs i of (a[2i] + w[2i+1]) * (a[2i+1] + w[2i])
          = sum of w[k] * a[k] over the pair's elements + sum_i a[2i]*a[2i+1] + sum_i w[2i]*w[2i+1]

    so a dot product is ``sum p - ca - cw`` with the activation and weight corrections of
    :class:`~qmac.hw.lanes.winograd_correction.WinogradCorrection`, which depend on one operand only (shared by a
    whole column or row of an array). One multiplication thus does the work of two INT8 or four INT4 MACs.

    INT8 mode: ``x = a0 + w1``, ``y = a1 + w0`` (9 bits each) and ``p = x * y`` in [-65024, 65536].

    INT4 mode, with ``X_j = a[j,0] + w[j,1]`` and ``Y_j = a[j,1] + w[j,0]`` in [-16, 14] (lane ``j``'s
    elements)::

        x = X_0 + 2**11 * X_1               17 bits
        y = Y_1 + 2**11 * Y_0
        x * y = X_0*Y_1 + 2**11 * (X_0*Y_0 + X_1*Y_1) + 2**22 * X_1*Y_0

    The middle term is ``p`` in [-448, 512]. The low term lies in [-224, 256], so adding 224 brings it into
    [0, 2**11) and ``floor((x*y + 224) / 2**11) = p + 2**11 * X_1*Y_0``: ``p`` is bits [11, 22) of
    ``x*y + 224`` read as signed.

    Pipeline (:attr:`latency` = 6): the lanes and ``int4`` enter a
    :class:`~qmac.hw.local_register.LocalRegister` (in an array they come from far away, shared by a row
    or a column of units: the long wire ends there, and synthesis keeps one copy per pair term); ``x``
    and ``y`` are registered (the two small adders end in a register); then a
    :class:`~qmac.hw.lanes.mult18.Mult18` multiplies them (4 stages: on ECP5 a MULT18X18D with its own
    registers, then a fabric register); ``p`` is combinational from the last register.

    Parameters
    ----------
    modes : tuple of str
        Non-empty subset of ``("int8", "int4")``.

    Members
    -------
    w, a : In(ArrayLayout(8, 2))
        The two weight and activation lanes.
    int4 : In(1)
        Present only when both modes are built: 1 selects INT4.
    p : Out(signed)
        The pair term of the operands (and ``int4``) of :attr:`latency` cycles earlier, format
        :func:`winograd_pair_format`.
    """

    def __init__(self, modes):
        self._format = winograd_pair_format(modes)
        self._modes = modes
        ports = {"w": In(data.ArrayLayout(8, 2)), "a": In(data.ArrayLayout(8, 2)), "p": Out(signed(self._format.bits))}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def modes(self):
        return self._modes

    @property
    def format(self):
        """Format of ``p``."""
        return self._format

    @property
    def latency(self):
        """Register stages from the operands to ``p``."""
        return Mult18Fip.stages

    def elaborate(self, platform):
        m = Module()
        dual = len(self._modes) > 1
        has_int4 = INT4.name in self._modes
        m.submodules.copy = copy = LocalRegister(32 + dual)
        m.d.comb += copy.d.eq(Cat(self.w, self.a, self.int4 if dual else []))
        w = [copy.q[8 * j:8 * j + 8] for j in range(2)]
        a = [copy.q[16 + 8 * j:16 + 8 * j + 8] for j in range(2)]

        def term(x_side, j):
            """INT4 ``X_j`` (the ``x`` side) or ``Y_j``."""
            if x_side:
                return a[j][0:4].as_signed() + w[j][4:8].as_signed()
            return a[j][4:8].as_signed() + w[j][0:4].as_signed()

        # One operand pair per mode built; the select folds away with a single mode.
        ops = {INT8.name: (a[0].as_signed() + w[1].as_signed(), a[1].as_signed() + w[0].as_signed()),
               INT4.name: (term(True, 0) + (term(True, 1) << _SHIFT), term(False, 1) + (term(False, 0) << _SHIFT))}
        x = Signal(signed(17 if has_int4 else 9), reset_less=True)
        y = Signal.like(x)
        if dual:
            int4 = copy.q[32]
            m.d.sync += [x.eq(Mux(int4, ops[INT4.name][0], ops[INT8.name][0])),
                         y.eq(Mux(int4, ops[INT4.name][1], ops[INT8.name][1]))]
        else:
            m.d.sync += [x.eq(ops[self._modes[0]][0]), y.eq(ops[self._modes[0]][1])]
        m.submodules.mult = mult = Mult18(len(x), len(y), 2 * _SHIFT if has_int4 else 18)
        m.d.comb += [mult.x.eq(x), mult.y.eq(y)]
        results = {INT8.name: mult.p[:18].as_signed(),
                   INT4.name: (mult.p + _OFFSET)[_SHIFT:2 * _SHIFT].as_signed() if has_int4 else None}
        if dual:
            int4_q = Signal(self.latency - 1, reset_less=True)   # int4 of 2 .. latency cycles ago
            m.d.sync += int4_q.eq(Cat(int4, int4_q[:-1]))
            m.d.comb += self.p.eq(Mux(int4_q[-1], results[INT4.name], results[INT8.name]))
        else:
            m.d.comb += self.p.eq(results[self._modes[0]])
        return m
