"""The 4:1 activation multiplexers of 2:4 structured sparsity: dense activations in, weight-aligned lanes out."""

from amaranth.hdl import Cat, Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError
from qmac.hw.spec.formats import ELEMENT_FORMATS, INT4, INT8, modes_valid
from qmac.hw.spec.checks import is_int

__all__ = ["Sparse24Select"]


class Sparse24Select(wiring.Component):
    """Combinational selection of the dense activation that each kept 2:4 weight multiplies.

    A beat of V kept-weight lanes holds ``E = V * per_lane`` kept elements (INT8: V, INT4: 2V), element
    ``e`` in field ``e % per_lane`` of lane ``e // per_lane``. Kept elements ``2g`` and ``2g + 1`` are the
    two of sparse group ``g``, which covers dense positions ``4g .. 4g + 3``; so a beat covers ``2E`` dense
    positions, packed into the 2V lanes of ``a`` as dense operands are (INT8: position ``p`` is byte ``p``;
    INT4: position ``p`` is nibble ``p % 2`` of byte ``p // 2``).

    Kept element ``e`` of ``a_sel`` is dense element ``4 * (e // 2) + meta[e]`` of ``a``, so ``a_sel`` is
    packed exactly as the kept weights and a plain :class:`~qmac.hw.int_datapath.dot_product.DotProduct` of the weights
    and ``a_sel`` computes ``sum_e w_e * a[4 * (e // 2) + meta[e]]``. Each kept element has its own 4:1
    multiplexer over the 4 elements of its group (bytes in INT8 mode, nibbles in INT4 mode; a dual build
    has both and a 2:1 multiplexer per lane picking the mode's).

    Metadata is valid when the two indices of every group are distinct and ascend; then the sum above
    equals the dense dot product of the decompressed weights and ``a``. Malformed metadata is not checked:
    every index, whatever its pair, selects the element it names, so ``a_sel`` is always a defined value
    and the sum is still ``sum_e w_e * a[4 * (e // 2) + meta[e]]`` (descending indices give the product of
    the weights scattered to the indices given; equal indices multiply both weights of the group by the
    same activation).

    Latency 0 (no registers).

    Parameters
    ----------
    lanes : int
        V, the number of kept-weight lanes: a positive even integer (an INT8 beat must hold whole groups).
    modes : tuple of str
        Non-empty tuple of distinct names from ``("int8", "int4")``.

    Members
    -------
    a : In(ArrayLayout(8, 2V))
        Dense activation lanes: ``2E`` dense positions.
    meta : In(ArrayLayout(2, 2V))
        ``meta[e]``: index of kept element ``e`` within its group. INT8 mode reads entries ``0 .. V-1``
        only, INT4 mode all ``2V``.
    int4 : In(1)
        Present only when both modes are built: 1 selects INT4.
    a_sel : Out(ArrayLayout(8, V))
        Selected activations, packed as the kept weights.

    Raises
    ------
    ConfigError
        (a ``ValueError``) if ``lanes`` or ``modes`` is out of range.
    """

    def __init__(self, lanes, modes):
        if not is_int(lanes) or lanes < 2 or lanes % 2:
            raise ConfigError(f"sparse select lanes must be a positive even integer, not {lanes!r}")
        # W4A8 is not selectable: its beat already takes 2V activation lanes (CoreConfig refuses sparse W4A8).
        dense = [name for name, fmt in ELEMENT_FORMATS.items() if fmt.activation_lanes == 1]
        if not modes_valid(modes) or not set(modes) <= set(dense):
            raise ConfigError(f"sparse select modes must be a non-empty tuple of distinct names from "
                              f"{', '.join(dense)}, not {modes!r}")
        self._lanes = lanes
        self._modes = modes
        ports = {"a": In(data.ArrayLayout(8, 2 * lanes)), "meta": In(data.ArrayLayout(2, 2 * lanes)),
                 "a_sel": Out(data.ArrayLayout(8, lanes))}
        if len(modes) > 1:
            ports["int4"] = In(1)
        super().__init__(ports)

    @property
    def lanes(self):
        return self._lanes

    @property
    def modes(self):
        return self._modes

    def _selected(self, fmt):
        """``a_sel`` of mode ``fmt``: one 4:1 multiplexer per kept element, its fields concatenated.

        Written as a tree of 2:1 multiplexers rather than ``word_select``: Yosys writes the latter as a
        wide shift that Verilator's lint flags (WIDTHTRUNC)."""
        dense = self.a.as_value()
        fields = []
        for e in range(self._lanes * fmt.per_lane):
            base = (e // 2) * 4 * fmt.bits
            x = [dense[base + i * fmt.bits:base + (i + 1) * fmt.bits] for i in range(4)]
            idx = self.meta[e]
            fields.append(Mux(idx[1], Mux(idx[0], x[3], x[2]), Mux(idx[0], x[1], x[0])))
        return Cat(fields)

    def elaborate(self, platform):
        m = Module()
        selected = {name: self._selected(ELEMENT_FORMATS[name]) for name in self._modes}
        if len(self._modes) > 1:
            m.d.comb += self.a_sel.eq(Mux(self.int4, selected[INT4.name], selected[INT8.name]))
        else:
            m.d.comb += self.a_sel.eq(selected[self._modes[0]])
        return m
