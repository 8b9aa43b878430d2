"""Between integer codes and the core's stream payloads (see docs/architecture.md, "Port map").

Inside an 8-bit operand lane, element ``e`` occupies bits ``[e*bits, (e+1)*bits)``
(:class:`qmac.hw.spec.formats.ElementFormat`): :func:`pack_lanes` and :func:`unpack_lanes`. Where the lanes
and every other field sit in a payload is the port's layout (:mod:`qmac.hw.spec.layouts`), packed and
unpacked by :mod:`qmac.hw.spec.payload`; result payloads are read as :class:`ResultRow` transactions.
"""

from dataclasses import dataclass, fields

import numpy as np
from amaranth.hdl import signed
from amaranth.lib import data

from qmac.hw.spec.config import code_range, mode_bits
from qmac.hw.spec.layouts import output_layout, result_layout
from qmac.hw.spec.payload import payload_format

__all__ = ["pack_lanes", "unpack_lanes", "signed_fields", "ResultRow", "result_format", "unpack_result",
           "unpack_results", "result_arrays", "result_rows"]


def pack_lanes(codes, mode):
    """Codes ``(..., V*per_lane)`` in the mode's range (:func:`qmac.hw.spec.config.code_range`) -> lane bytes
    ``(..., V)`` (uint8)."""
    bits, (lo, hi) = mode_bits(mode), code_range(mode)
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise ValueError(f"{mode} codes must lie in [{lo}, {hi}], not [{codes.min()}, {codes.max()}]")
    per = 8 // bits
    grouped = codes.reshape(codes.shape[:-1] + (-1, per))
    lanes = grouped[..., 0].astype(np.uint8) & ((1 << bits) - 1)
    for e in range(1, per):   # a loop over the (at most 2) elements of a lane: faster than a reduction
        lanes |= (grouped[..., e].astype(np.uint8) & ((1 << bits) - 1)) << (e * bits)
    return lanes


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
    return payload_format(data.ArrayLayout(signed(bits), count)).unpack(word)[""]


@dataclass(frozen=True)
class ResultRow:
    """One transaction of the result stream, as the golden model predicts it
    (:func:`qmac.sim.gemm.expected_results`) and the testbenches and the host driver read it
    (:func:`unpack_result`). The fields are those of the payload
    (:func:`qmac.hw.spec.layouts.result_layout`, :func:`qmac.hw.spec.layouts.output_layout`); fields the
    build lacks are ``None``.

    Attributes
    ----------
    data : tuple of int
        The C accumulators (signed).
    last : int
        1 on the tile's last row.
    saturated : int
        1 when an accumulator of the row saturated.
    log : tuple of int or None
        With ``log_output``: the C results' log codes.
    q : tuple of int or None
        With the output stage: the C requantized codes (signed; INT4 codes sign-extended).
    clipped : int or None
        With the output stage: 1 when a code of the row saturated.
    """
    data: tuple
    last: int
    saturated: int
    log: tuple = None
    q: tuple = None
    clipped: int = None


def result_format(config):
    """The :class:`~qmac.hw.spec.payload.PayloadFormat` of the result stream of a core built with
    ``config``."""
    return payload_format(output_layout(config) if config.output_stage else result_layout(config))


def unpack_result(word, config):
    """Result payload integer of a core built with ``config`` -> :class:`ResultRow`."""
    return ResultRow(**result_format(config).unpack(word))


def unpack_results(words, config):
    """Result payload integers -> list of :class:`ResultRow`."""
    return result_rows(result_format(config).unpack_words(words))


def result_arrays(rows):
    """:class:`ResultRow` list -> field name -> int64 array with one entry per row (the fields the rows
    have, i.e. not ``None``): what :meth:`~qmac.hw.spec.payload.PayloadFormat.encode` takes."""
    names = [f.name for f in fields(ResultRow) if rows and getattr(rows[0], f.name) is not None]
    return {name: np.array([getattr(r, name) for r in rows], dtype=np.int64) for name in names}


def result_rows(arrays):
    """Inverse of :func:`result_arrays`."""
    columns = {name: [tuple(v.tolist()) if v.ndim else int(v) for v in np.asarray(values)]
               for name, values in arrays.items()}
    return [ResultRow(**dict(zip(columns, row))) for row in zip(*columns.values())]
