"""The payload layout of every port of a core, from its config: one home for every bit position.

The gateware declares its ports with these layouts; the golden model, the testbenches and the host driver
pack and unpack payloads with them (:mod:`qmac.hw.spec.payload`), and the manifest lists every field's offset,
width and signedness (docs/architecture.md, "Payload fields").
"""

from amaranth.hdl import Shape, signed
from amaranth.lib import data

__all__ = ["LOG_SHIFT_BITS", "accumulator_shape", "operand_layout", "result_layout", "output_layout"]

#: Width of the signed ``ctrl.log_shift`` input of a build with ``log_output``.
LOG_SHIFT_BITS = 8


def accumulator_shape(config):
    """Shape of a unit's accumulator (and shadow register), :attr:`Datapath.accumulator_shape
    <qmac.hw.spec.datapath.Datapath.accumulator_shape>`: ``signed(acc_bits)``, or for LNS the ``2**F``
    fraction-bucket accumulators, ``ArrayLayout(signed(bucket_bits), 2**F)``."""
    return config.datapath.accumulator_shape


def operand_layout(config, vectors, activations=False):
    """Payload of an operand stream: ``data``, ``vectors`` vectors of ``V`` byte lanes (for activations
    :attr:`~qmac.hw.spec.config.CoreConfig.activation_lanes`: ``2V`` in sparse and W4A8 builds; vector ``i``,
    lane ``j`` at bits ``[8*(i*lanes + j), +8)``), then with
    scale units ``scale``, G fields of S bits per vector (vector ``i``, group ``g`` at ``S*(i*G + g)``
    above ``data``; signed for log scales), then for the weights of a sparse build ``meta``, ``2V`` 2-bit
    indices per vector (vector ``i``, kept element ``e`` at ``2*(i*2V + e)`` above ``scale``)."""
    lanes = config.activation_lanes if activations else config.lanes
    fields = {"data": data.ArrayLayout(data.ArrayLayout(8, lanes), vectors)}
    if config.scale_bits:
        lo, hi = config.scale_format.field_range   # unsigned S bits, or signed S bits for log scales
        field = Shape.cast(range(lo, hi + 1))
        fields["scale"] = data.ArrayLayout(data.ArrayLayout(field, config.scale_groups), vectors)
    if config.sparse and not activations:
        fields["meta"] = data.ArrayLayout(data.ArrayLayout(2, 2 * config.lanes), vectors)
    return data.StructLayout(fields)


def result_layout(config, buckets=False):
    """Payload of the result stream: one row of C accumulators, the tile's last-row marker, and whether any
    accumulator of the row saturated (always 0 with exact accumulators). With ``buckets`` (what an LNS
    array drains into its :class:`qmac.hw.log_datapath.log_combine.LogCombine`) each accumulator is the unit's
    fraction-bucket vector, :func:`qmac.hw.spec.layouts.accumulator_shape`. An LNS build with ``log_output``
    adds ``log``, each result's code in the log format (after the combine stage)."""
    element = accumulator_shape(config) if buckets else signed(config.acc_format.bits)
    fields = {
        "data": data.ArrayLayout(element, config.cols),
        "last": 1,
        "saturated": 1,
    }
    if config.log_output and not buckets:
        fields["log"] = data.ArrayLayout(config.log_format.bits, config.cols)
    return data.StructLayout(fields)


def output_layout(config):
    """Result row with the output stage: :func:`result_layout`'s fields (same bit positions), then ``q``,
    C signed 8-bit codes (INT4 codes sign-extended), then ``clipped`` (some code of the row saturated)."""
    fields = dict(result_layout(config).members)
    fields["q"] = data.ArrayLayout(signed(8), config.cols)
    fields["clipped"] = 1
    return data.StructLayout(fields)
