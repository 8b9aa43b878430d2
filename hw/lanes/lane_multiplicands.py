"""The two INT8 multiplicands per weight lane that a W4A8 build's lanes read, formed from the payload's
activation lanes once per array column."""

from amaranth.hdl import Cat, Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import INT4, W4A8, mode_flags, modes_valid
from qmac.hw.lanes.lane_product import mode_running

__all__ = ["LaneMultiplicands"]


class LaneMultiplicands(wiring.Component):
    """Combinational: the multiplicands ``m`` of V weight lanes in a build with W4A8, from the activation
    lanes ``a`` of the payload (:func:`~qmac.hw.spec.layouts.operand_layout`: weight lane ``i`` meets
    activation lanes ``2i`` and ``2i + 1``). Per weight lane ``i``, with ``x = a[2i]``, ``y = a[2i + 1]``::

        INT8 mode:  m[2i] = x,                 m[2i + 1] = x        (y ignored)
        INT4 mode:  m[2i] = sext8(x[0:4]),     m[2i + 1] = sext8(x[4:8])   (y ignored)
        W4A8 mode:  m[2i] = x,                 m[2i + 1] = y

    ``sext8`` sign-extends an INT4 nibble to 8 bits (two's complement). This is the input contract of
    :class:`~qmac.hw.lanes.lane_product.LaneProduct` (and its subclasses) built with W4A8: their rows 0-3
    multiply by ``m[2i]``, rows 4-7 by ``m[2i + 1]``, with no multiplexer in the lane. The array
    (:class:`~qmac.hw.array.mac_array.MacArray`) forms them once per column and the column's R units share
    them: an INT4 activation pair costs one sign extension per column, not one per unit. Bits 0-3 of
    ``m[2i]`` are ``x[0:4]`` in every mode; the rest is a 2:1 multiplexer (bits 4-7 of ``m[2i]``) and a
    3:1 multiplexer (``m[2i + 1]``) per weight lane, 12 bits. No register: the latency is 0, and the
    flags must be those of the beat on ``a`` (the array's held mode registers).

    Parameters
    ----------
    lanes : int
        V, the weight lanes (a positive integer).
    modes : tuple of str
        The build's modes, ``"w4a8"`` among them.

    Members
    -------
    a : In(ArrayLayout(8, 2V))
        The payload's activation lanes of one vector.
    int4, w4a8 : In(1)
        Mode flags (:func:`~qmac.hw.spec.formats.mode_flags`), present when that mode is built beside others.
    m : Out(ArrayLayout(8, 2V))
        The multiplicands, as above.

    Raises
    ------
    ConfigError
        ``lanes`` not a positive integer, or ``modes`` without ``"w4a8"``.
    """

    def __init__(self, lanes, modes):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise ConfigError(f"lanes must be a positive integer, not {lanes!r}")
        if not modes_valid(modes) or W4A8.name not in modes:
            raise ConfigError(f"lane multiplicands need modes with w4a8, not {modes!r}")
        self._lanes = lanes
        self._modes = modes
        ports = {"a": In(data.ArrayLayout(8, 2 * lanes)), "m": Out(data.ArrayLayout(8, 2 * lanes))}
        for flag in mode_flags(modes):
            ports[flag] = In(1)
        super().__init__(ports)

    @property
    def lanes(self):
        return self._lanes

    @property
    def modes(self):
        return self._modes

    def elaborate(self, platform):
        m = Module()
        int4 = mode_running(self, self._modes, INT4.name)
        w4a8 = mode_running(self, self._modes, W4A8.name)
        for i in range(self._lanes):
            x, y = self.a[2 * i], self.a[2 * i + 1]
            m.d.comb += [self.m[2 * i].eq(Cat(x[0:4], Mux(int4, x[3].replicate(4), x[4:8]))),
                         self.m[2 * i + 1].eq(Mux(w4a8, y, Mux(int4, x[4:8].as_signed(), x)))]
        return m
