"""Bit packing between integer codes and the core's stream payloads (see docs/architecture.md).

Operand payloads: vector ``i``, lane ``j`` occupy bits ``[8*(i*V + j), +8)``; inside a lane, element ``e``
occupies bits ``[e*bits, (e+1)*bits)`` (:class:`qmac.hw.spec.formats.ElementFormat`). Result payloads: column
``c``'s accumulator at bits ``[c*acc_bits, +acc_bits)``, then ``last``, then ``saturated``, then the
optional fields (:func:`qmac.hw.spec.layouts.result_layout`, :func:`qmac.hw.spec.layouts.output_layout`).
"""

import numpy as np

from qmac.hw.spec.config import code_range, mode_bits

__all__ = ["pack_lanes", "unpack_lanes", "signed_fields", "unpack_result", "params_word"]


def pack_lanes(codes, mode):
    """Codes ``(..., V*per_lane)`` in the mode's range (:func:`qmac.hw.spec.config.code_range`) -> lane bytes
    ``(..., V)`` (uint8)."""
    bits, (lo, hi) = mode_bits(mode), code_range(mode)
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise ValueError(f"{mode} codes must lie in [{lo}, {hi}], not [{codes.min()}, {codes.max()}]")
    per = 8 // bits
    grouped = codes.reshape(codes.shape[:-1] + (-1, per)) & ((1 << bits) - 1)
    shifts = np.arange(per, dtype=np.int64) * bits
    return (grouped << shifts).sum(axis=-1).astype(np.uint8)


def unpack_lanes(lanes, mode):
    """Inverse of :func:`pack_lanes`: lane bytes ``(..., V)`` -> codes ``(..., V*per_lane)`` (signed for
    INT modes, unsigned for LNS)."""
    bits, (lo, _) = mode_bits(mode), code_range(mode)
    per = 8 // bits
    lanes = np.asarray(lanes, dtype=np.int64)
    shifts = np.arange(per, dtype=np.int64) * bits
    fields = (lanes[..., None] >> shifts) & ((1 << bits) - 1)
    if lo < 0:
        fields = np.where(fields >= 1 << (bits - 1), fields - (1 << bits), fields)
    return fields.reshape(lanes.shape[:-1] + (-1,))


def signed_fields(word, count, bits):
    """The ``count`` signed ``bits``-bit fields of the integer ``word``, field 0 in the lowest bits."""
    mask = (1 << bits) - 1
    out = []
    for c in range(count):
        v = (word >> (c * bits)) & mask
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return tuple(out)


def unpack_result(word, config):
    """Result payload integer of a core built with ``config`` -> ``(data tuple of C signed ints, last,
    saturated)``, then with ``log_output`` the tuple of C log codes, then with the output stage ``q`` (tuple
    of C codes) and ``clipped``."""
    cols = config.cols
    data = signed_fields(word, cols, config.acc_format.bits)
    rest = word >> (cols * config.acc_format.bits)
    row = (data, rest & 1, (rest >> 1) & 1)
    rest >>= 2
    if config.log_output:
        bits = config.log_format.bits
        row += (tuple((rest >> (c * bits)) & ((1 << bits) - 1) for c in range(cols)),)
        rest >>= cols * bits
    if config.output_stage:
        row += (signed_fields(rest, cols, 8), (rest >> (8 * cols)) & 1)
    return row


def params_word(multiplier, shift, zero_point, int4, mode):
    """One output channel's requantization parameters as a ``requant`` payload integer
    (:data:`qmac.hw.spec.requantize.PARAMS`: multiplier [0, 32), shift [32, 38), zero point [38, 46), int4 bit 46,
    mode [47, 49))."""
    return ((int(multiplier) & 0xFFFFFFFF) | (int(shift) & 63) << 32 | (int(zero_point) & 0xFF) << 38
            | (int(int4) & 1) << 46 | (int(mode) & 3) << 47)
