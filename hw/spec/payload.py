"""Packing and unpacking of payloads, driven by their :mod:`amaranth.lib.data` layout: one implementation for
the golden model, the testbenches, the host driver, the link protocol and the manifest.

A layout is flattened into its leaf fields (:class:`PayloadField`): every struct member becomes a dotted
name, every array a dimension with a count and a bit stride, so ``data`` of an operand layout (an array of
R vectors of V bytes) is one field of count ``(R, V)`` and stride ``(8V, 8)``. Every offset is read from the
layout (``Layout.__getitem__``, :class:`amaranth.lib.data.Field`), never restated. The same fields are
what the manifest lists (:meth:`PayloadFormat.to_dict`, docs/architecture.md "Payload fields"), so a
:class:`PayloadFormat` read back from a manifest packs exactly as the one built from the layout.

Packing works on numpy arrays of many payloads at once (the operand beats of a large GEMM): fields of 8, 16,
32 or 64 bits on byte boundaries are copied as bytes, the others bit by bit.
"""

import functools
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data

__all__ = ["PayloadField", "PayloadFormat", "payload_format"]

#: Widest leaf field: values are held in 64-bit numpy integers.
MAX_FIELD_BITS = 64


@dataclass(frozen=True)
class PayloadField:
    """A leaf field of a layout with the arrays around it.

    Element ``(i_0, i_1, ...)`` (one index per array, outermost first) occupies bits
    ``[offset + sum(i_d * stride[d]), + width)``; ``signed`` fields hold two's complement values in
    ``[-2**(width-1), 2**(width-1))``, the others ``[0, 2**width)``. A field outside every array has
    ``count == stride == ()``.
    """
    name: str
    offset: int
    width: int
    signed: bool
    count: tuple = ()
    stride: tuple = ()

    def __post_init__(self):
        if not 0 <= self.width <= MAX_FIELD_BITS:
            raise ValueError(f"field {self.name!r} is {self.width} bits wide; 0..{MAX_FIELD_BITS} are packable")
        if len(self.count) != len(self.stride):
            raise ValueError(f"field {self.name!r} has {len(self.count)} counts but {len(self.stride)} strides")

    @property
    def range(self):
        """``(lo, hi)``, the values the field holds."""
        if self.signed and self.width:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, (1 << self.width) - 1

    @property
    def elements(self):
        return int(np.prod(self.count, dtype=np.int64))

    @property
    def offsets(self):
        """Offset of every element, ``(elements,)`` int64 in C order of the indices."""
        offsets = np.full((), self.offset, dtype=np.int64)
        for n, s in zip(self.count, self.stride):
            offsets = offsets[..., None] + s * np.arange(n, dtype=np.int64)
        return offsets.reshape(-1)

    def to_dict(self):
        return {"name": self.name, "offset": self.offset, "width": self.width, "signed": self.signed,
                "count": list(self.count), "stride": list(self.stride)}

    @classmethod
    def from_dict(cls, d):
        return cls(d["name"], d["offset"], d["width"], d["signed"], tuple(d["count"]), tuple(d["stride"]))


def _leaves(shape, name, offset, count, stride):
    if isinstance(shape, ShapeCastable) and not isinstance(shape, data.Layout):
        try:
            shape = data.Layout.cast(shape)
        except TypeError:
            pass
    if isinstance(shape, data.ArrayLayout):
        step = shape[1].offset if shape.length > 1 else Shape.cast(shape.elem_shape).width
        yield from _leaves(shape.elem_shape, name, offset, count + (shape.length,), stride + (step,))
    elif isinstance(shape, data.Layout):
        for key, field in shape:
            yield from _leaves(field.shape, f"{name}.{key}" if name else str(key), offset + field.offset, count,
                               stride)
    else:
        s = Shape.cast(shape)
        yield PayloadField(name, offset, s.width, s.signed, count, stride)


def _aligned_dtype(field):
    """The little-endian numpy dtype a field is copied as, when every element is whole bytes on byte
    boundaries; else None."""
    if field.width not in (8, 16, 32, 64) or (field.offset % 8) or any(s % 8 for s in field.stride):
        return None
    return np.dtype(f"<{'i' if field.signed else 'u'}{field.width // 8}")


class PayloadFormat:
    """The payloads of one layout: its leaf fields, packed to and unpacked from integers or bytes.

    Values are given and returned by field name (:class:`PayloadField`'s dotted ``name``); an array field's
    values have the field's ``count`` as their trailing shape. Packing checks every value against its
    field's range; fields left out are zero.

    Parameters
    ----------
    fields : sequence of PayloadField
        Fields that do not overlap.
    size : int
        Payload width in bits, at least the end of every field.

    Raises
    ------
    ValueError
        Fields overlap or end beyond ``size``.
    """

    def __init__(self, fields, size):
        self._fields = {f.name: f for f in fields}
        self._size = size
        used = np.zeros(size, dtype=np.int64)
        self._bits, self._bytes = {}, {}
        for f in self._fields.values():
            bits = (f.offsets[:, None] + np.arange(f.width)).reshape(-1)
            if bits.size and (bits.min() < 0 or bits.max() >= size):
                raise ValueError(f"field {f.name!r} reaches bit {bits.max()}, beyond the {size}-bit payload")
            np.add.at(used, bits, 1)
            self._bits[f.name] = bits
            dtype = _aligned_dtype(f)
            if dtype is not None:
                positions = (f.offsets[:, None] // 8 + np.arange(dtype.itemsize)).reshape(-1)
                if np.array_equal(positions, np.arange(positions[0], positions[0] + positions.size)):
                    positions = slice(int(positions[0]), int(positions[0]) + positions.size)   # a faster copy
                self._bytes[f.name] = (dtype, positions)
        if used.size and used.max() > 1:
            raise ValueError(f"fields overlap at bit {int(np.argmax(used))}")

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (a manifest's ``payloads`` entry)."""
        return cls([PayloadField.from_dict(f) for f in d["fields"]], d["width"])

    def to_dict(self):
        return {"width": self._size, "fields": [f.to_dict() for f in self._fields.values()]}

    @property
    def fields(self):
        return tuple(self._fields.values())

    @property
    def size(self):
        """Payload width in bits."""
        return self._size

    @property
    def bytes(self):
        """Bytes of a payload rounded up to whole bytes, least significant first."""
        return -(-self._size // 8)

    def encode(self, values):
        """``values`` (field name -> array of shape ``batch + count``; every field the same ``batch``, or
        broadcast to it) -> ``(prod(batch), bytes)`` uint8, each payload least significant byte first.

        Raises ``ValueError`` for an unknown field, a value shape without the field's ``count`` or a value
        out of the field's range, ``TypeError`` for values that are not integers."""
        arrays = {}
        for name, v in values.items():
            if name not in self._fields:
                raise ValueError(f"no field {name!r}; fields: {', '.join(self._fields)}")
            arrays[name] = np.asarray(v)
            if arrays[name].dtype.kind not in "biu":
                raise TypeError(f"field {name!r} takes integers, not {arrays[name].dtype} values")
        batches = []
        for name, a in arrays.items():
            count = self._fields[name].count
            if a.shape[a.ndim - len(count):] != count or a.ndim < len(count):
                raise ValueError(f"field {name!r} takes values of trailing shape {count}, not {a.shape}")
            batches.append(a.shape[:a.ndim - len(count)])
        batch = np.broadcast_shapes(*batches) if batches else ()
        n = int(np.prod(batch, dtype=np.int64))
        out = np.zeros((n, self.bytes), dtype=np.uint8)
        bitmap = None
        for name, a in arrays.items():
            f = self._fields[name]
            a = np.broadcast_to(a, batch + f.count).reshape(n, f.elements)
            lo, hi = f.range
            kind = np.iinfo(a.dtype) if a.dtype.kind in "iu" else None
            if a.size and not (kind and lo <= kind.min and kind.max <= hi) and (a.min() < lo or a.max() > hi):
                bad = a[(a < lo) | (a > hi)].flat[0]
                raise ValueError(f"field {name!r} holds {f.width} {'signed ' if f.signed else ''}bits; "
                                 f"{int(bad)!r} does not fit")
            if name in self._bytes:
                dtype, positions = self._bytes[name]
                out[:, positions] = a.astype(dtype, copy=False).view(np.uint8).reshape(n, -1)
            else:
                if bitmap is None:
                    bitmap = np.zeros((n, 8 * self.bytes), dtype=np.uint8)
                shifts = np.arange(f.width, dtype=np.uint64)
                bits = (a.astype(np.uint64)[..., None] >> shifts) & np.uint64(1)
                bitmap[:, self._bits[name]] = bits.reshape(n, -1)
        if bitmap is not None:
            out |= np.packbits(bitmap, axis=1, bitorder="little")
        return out

    def decode(self, raw):
        """Inverse of :meth:`encode`: ``(n, bytes)`` uint8 -> field name -> ``(n,) + count`` array (int64;
        uint64 for unsigned 64-bit fields), signed fields sign-extended."""
        raw = np.asarray(raw, dtype=np.uint8).reshape(-1, self.bytes)
        n, bitmap, out = raw.shape[0], None, {}
        for name, f in self._fields.items():
            if name in self._bytes:
                dtype, positions = self._bytes[name]
                v = np.ascontiguousarray(raw[:, positions]).view(dtype)
            else:
                if bitmap is None:
                    bitmap = np.unpackbits(raw, axis=1, bitorder="little")
                bits = bitmap[:, self._bits[name]].reshape(n, f.elements, f.width).astype(np.uint64)
                v = (bits << np.arange(f.width, dtype=np.uint64)).sum(axis=-1, dtype=np.uint64)
                if f.signed:
                    v = v.view(np.int64)
                    if f.width < 64:
                        v = v - ((v >> (f.width - 1)) & 1) * (1 << f.width)
            if f.signed or f.width < 64:
                v = v.astype(np.int64)
            out[name] = v.reshape((n,) + f.count)
        return out

    def pack_words(self, values):
        """:meth:`encode` as a list of payload integers."""
        raw = self.encode(values)
        size, flat = raw.shape[1], raw.tobytes()
        return [int.from_bytes(flat[i:i + size], "little") for i in range(0, len(flat), size)]

    def unpack_words(self, words):
        """:meth:`decode` of payload integers."""
        return self.decode(np.frombuffer(b"".join(int(w).to_bytes(self.bytes, "little") for w in words),
                                         dtype=np.uint8))

    def pack(self, values):
        """One payload: field name -> int, or nested sequence for an array field -> payload integer."""
        return self.pack_words({name: np.asarray(v)[None] for name, v in values.items()})[0]

    def unpack(self, word):
        """One payload integer -> field name -> int, or nested tuples of ints for an array field."""
        return {name: _tuples(v[0].tolist()) for name, v in self.unpack_words([word]).items()}


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


@functools.lru_cache(maxsize=256)
def payload_format(layout):
    """The :class:`PayloadFormat` of ``layout`` (any shape-castable; a plain shape is one field named
    ``""``)."""
    return PayloadFormat(tuple(_leaves(layout, "", 0, (), ())), Shape.cast(layout).width)
