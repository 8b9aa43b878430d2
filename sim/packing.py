"""Bit packing between integer codes and the core's stream payloads (see docs/architecture.md).

Operand payloads: vector ``i``, lane ``j`` occupy bits ``[8*(i*V + j), +8)``; inside a lane, element ``e``
occupies bits ``[e*bits, (e+1)*bits)`` (:class:`qmac.hw.formats.ElementFormat`). Result payloads: column
``c``'s accumulator at bits ``[c*acc_bits, +acc_bits)``, then ``last``, then ``saturated``
(:func:`qmac.hw.mac_array.result_layout`).
"""

import numpy as np

from ..hw.formats import ELEMENT_FORMATS

__all__ = ["pack_lanes", "unpack_lanes", "unpack_result", "params_word"]


def pack_lanes(codes, mode):
    """Codes ``(..., V*per_lane)`` in the mode's range -> lane bytes ``(..., V)`` (uint8)."""
    fmt = ELEMENT_FORMATS[mode]
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and (codes.min() < fmt.code.min or codes.max() > fmt.code.max):
        raise ValueError(f"{mode} codes must lie in [{fmt.code.min}, {fmt.code.max}], "
                         f"not [{codes.min()}, {codes.max()}]")
    grouped = codes.reshape(codes.shape[:-1] + (-1, fmt.per_lane)) & ((1 << fmt.bits) - 1)
    shifts = np.arange(fmt.per_lane, dtype=np.int64) * fmt.bits
    return (grouped << shifts).sum(axis=-1).astype(np.uint8)


def unpack_lanes(lanes, mode):
    """Inverse of :func:`pack_lanes`: lane bytes ``(..., V)`` -> signed codes ``(..., V*per_lane)``."""
    fmt = ELEMENT_FORMATS[mode]
    lanes = np.asarray(lanes, dtype=np.int64)
    shifts = np.arange(fmt.per_lane, dtype=np.int64) * fmt.bits
    fields = (lanes[..., None] >> shifts) & ((1 << fmt.bits) - 1)
    fields = np.where(fields >= 1 << (fmt.bits - 1), fields - (1 << fmt.bits), fields)
    return fields.reshape(lanes.shape[:-1] + (-1,))


def _fields(word, count, bits):
    mask = (1 << bits) - 1
    out = []
    for c in range(count):
        v = (word >> (c * bits)) & mask
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return tuple(out)


def unpack_result(word, cols, acc_bits, output_stage=False):
    """Result payload integer -> ``(data tuple of C signed ints, last, saturated)``, and with the output
    stage also ``q`` (tuple of C codes) and ``clipped``."""
    data = _fields(word, cols, acc_bits)
    rest = word >> (cols * acc_bits)
    row = (data, rest & 1, (rest >> 1) & 1)
    if output_stage:
        rest >>= 2
        row += (_fields(rest, cols, 8), (rest >> (8 * cols)) & 1)
    return row


def params_word(multiplier, shift, zero_point, int4, tflite):
    """One output channel's requantization parameters as a ``requant`` payload integer
    (:data:`qmac.hw.requantize.PARAMS`: multiplier [0, 32), shift [32, 38), zero point [38, 46), int4 bit 46,
    tflite bit 47)."""
    return ((int(multiplier) & 0xFFFFFFFF) | (int(shift) & 63) << 32 | (int(zero_point) & 0xFF) << 38
            | (int(int4) & 1) << 46 | (int(tflite) & 1) << 47)
