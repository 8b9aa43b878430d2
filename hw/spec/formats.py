"""Number formats of qmac, each written once.

Every operation here is written against a tiny backend ("ops") so that one definition both builds the
Amaranth hardware (:class:`qmac.hw.ops.AmaranthOps`) and computes the numpy golden model
(:class:`qmac.sim.ops.NumpyOps`). A backend provides exactly:

``where(cond, a, b)``
    element-wise select;
``wrap(x, bits, signed)``
    two's-complement truncation of ``x`` to ``bits`` bits.

Everything else is plain Python operators (``+ - * >> & < > ==``) that numpy arrays and Amaranth values
share. ``>>`` is an arithmetic (flooring) shift on both sides.

The bit-level spec of every format is ``docs/formats.md``.
"""

from dataclasses import dataclass

from qmac.hw.spec.checks import MAX_SCALE_BITS, is_int

__all__ = ["IntFormat", "ROUNDINGS", "ElementFormat", "INT8", "INT4", "W4A8", "ELEMENT_FORMATS", "modes_valid",
           "mode_flags", "lane_range",
           "ScaleFormat",
           "SCALE_KINDS"]


#: Tie rules of :meth:`IntFormat.rounding_shift`.
ROUNDINGS = ("half_even", "half_away", "half_up", "floor")


@dataclass(frozen=True)
class IntFormat:
    """A two's-complement (or unsigned) integer of ``bits`` bits.

    Parameters
    ----------
    bits : int
        Width in bits, 1 to 256.
    signed : bool
        Two's complement when true, unsigned otherwise.
    """
    bits: int
    signed: bool = True

    def __post_init__(self):
        if not is_int(self.bits) or not 1 <= self.bits <= 256:
            raise ValueError(f"integer format width must be an integer between 1 and 256, not {self.bits!r}")
        if not isinstance(self.signed, bool):
            raise TypeError(f"integer format signedness must be a bool, not {self.signed!r}")

    @classmethod
    def for_range(cls, lo, hi):
        """Narrowest signed format holding every integer in ``[lo, hi]``."""
        if lo > hi:
            raise ValueError(f"empty range [{lo}, {hi}]")
        bits = 1
        while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
            bits += 1
        return cls(bits, signed=True)

    @property
    def min(self):
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self):
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def contains(self, lo, hi):
        """Whether every integer in ``[lo, hi]`` is representable."""
        return self.min <= lo and hi <= self.max

    def wrap(self, x, ops):
        """``x`` modulo ``2**bits``, read back in this format (what a too-narrow register would hold)."""
        return ops.wrap(x, self.bits, self.signed)

    def saturate(self, x, ops):
        """Clamp ``x`` to ``[min, max]``.

        Returns ``(value, clipped)`` where ``clipped`` is true where ``x`` was out of range.
        """
        over = x > self.max
        under = x < self.min
        return ops.where(over, self.max, ops.where(under, self.min, x)), over | under

    def rounding_shift(self, x, n, rounding, ops):
        """``x / 2**n`` rounded to an integer, then saturated to this format.

        ``n`` is a non-negative Python integer (a wired shift). ``rounding`` picks the tie rule:
        ``half_even`` (ties to the even neighbour), ``half_away`` (ties away from zero), ``half_up``
        (ties towards +inf), ``floor`` (truncate towards -inf). Non-ties always go to the nearest integer
        except for ``floor``. Returns ``(value, clipped)`` as :meth:`saturate`.
        """
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"shift must be a non-negative integer, not {n!r}")
        if n == 0 or rounding == "floor":
            return self.saturate(x >> n, ops)
        q = x >> n
        r = x & ((1 << n) - 1)
        half = 1 << (n - 1)
        if rounding == "half_even":
            up = (r > half) | ((r == half) & ((q & 1) == 1))
        elif rounding == "half_away":
            up = (r > half) | ((r == half) & (x >= 0))
        else:
            up = r >= half
        return self.saturate(q + ops.where(up, 1, 0), ops)


@dataclass(frozen=True)
class ElementFormat:
    """An integer element format of the MAC datapath and its packing into 8-bit operand lanes.

    A weight lane is one byte of the weight bus. It holds ``8 // bits`` weight elements; element ``j`` of a
    lane occupies bits ``[j*bits, (j+1)*bits)`` (first element in the least significant bits). Activations
    are ``activation_bits`` wide, packed the same way: with ``activation_bits == bits`` (INT8, INT4) an
    activation lane holds the elements that meet the weight lane's; with wider activations (W4A8) the
    ``per_lane`` activations of one weight lane fill :attr:`activation_lanes` consecutive bytes.

    Parameters
    ----------
    name : str
        Mode name used by configs and the CLI (``"int8"``, ``"int4"``, ``"w4a8"``).
    bits : int
        Weight element width, 4 or 8.
    activation_bits : int or None
        Activation element width, 4 or 8, at least ``bits``; ``None`` (default) means ``bits``.
    """
    name: str
    bits: int
    activation_bits: int | None = None

    def __post_init__(self):
        if self.bits not in (4, 8):
            raise ValueError(f"element width must be 4 or 8, not {self.bits!r}")
        if self.activation_bits is not None and self.activation_bits not in range(self.bits, 9, 4):
            raise ValueError(f"activation element width must be 4 or 8 and at least {self.bits}, "
                             f"not {self.activation_bits!r}")

    @property
    def code(self):
        """Two's-complement weight code format: INT8 in [-128, 127], INT4 (and W4A8 weights) in [-8, 7]."""
        return IntFormat(self.bits)

    @property
    def activation_code(self):
        """Two's-complement activation code format (W4A8: INT8)."""
        return IntFormat(self.activation_bits or self.bits)

    @property
    def operands(self):
        """``(weight format, activation format)``, each a plain INT format (both ``self`` but for W4A8,
        which gives ``(INT4, INT8)``): what the host quantizers and packers of each operand use."""
        a = self.activation_bits or self.bits
        if a == self.bits:
            return self, self
        return ElementFormat(f"int{self.bits}", self.bits), ElementFormat(f"int{a}", a)

    @property
    def per_lane(self):
        """Weight elements per 8-bit weight lane (the MACs of one lane per cycle)."""
        return 8 // self.bits

    @property
    def activation_lanes(self):
        """8-bit activation lanes that meet one weight lane: 1, or 2 for W4A8 (two INT8 activations)."""
        return self.per_lane * (self.activation_bits or self.bits) // 8

    @property
    def qmax(self):
        """Largest magnitude the host quantizers produce (symmetric range ``[-qmax, qmax]``)."""
        return self.code.max

    @property
    def product(self):
        """Exact range of one element product ``w * a``: ``(min, max)``."""
        w, a = self.code, self.activation_code
        return min(w.min * a.max, w.max * a.min), w.min * a.min


INT8 = ElementFormat("int8", 8)
INT4 = ElementFormat("int4", 4)
#: INT4 weights x INT8 activations: a weight lane's two INT4 weights meet two INT8 activations.
W4A8 = ElementFormat("w4a8", 4, 8)
ELEMENT_FORMATS = {f.name: f for f in (INT8, INT4, W4A8)}


def modes_valid(modes):
    """Whether ``modes`` is a non-empty tuple of distinct element format names (a unit's ``modes``)."""
    return (isinstance(modes, tuple) and bool(modes) and len(set(modes)) == len(modes)
            and all(m in ELEMENT_FORMATS for m in modes))


def mode_flags(modes):
    """Mode-select inputs of a unit built with ``modes``: one 1-bit flag per built mode but the first (in
    :data:`ELEMENT_FORMATS` order), high while that mode runs; all low selects the first mode. Both INT modes:
    ``("int4",)``; INT8, INT4 and W4A8: ``("int4", "w4a8")``; one mode: none."""
    return tuple(m for m in ELEMENT_FORMATS if m in modes)[1:]


def lane_range(modes):
    """Exact range ``(lo, hi)`` of one lane's result over the given modes: an INT8 product, or the sum of a
    lane's two INT4 products (W4A8: of two INT4 x INT8 products)."""
    fmts = [ELEMENT_FORMATS[m] for m in modes]
    return (min(f.per_lane * f.product[0] for f in fmts), max(f.per_lane * f.product[1] for f in fmts))


#: Kinds of per-vector scale factor.
SCALE_KINDS = ("int", "pow2", "log")


@dataclass(frozen=True)
class ScaleFormat:
    """An unsigned S-bit per-vector scale field and the arithmetic of the scale unit.

    ``kind = "int"``: the factor is the field itself, ``0 .. 2**S - 1`` (host quantizers use ``1 ..``).
    ``kind = "pow2"``: the field is an exponent, the factor ``2**field`` (the OCP MX E8M0 idea, without
    a bias); the unit shifts instead of multiplying.
    ``kind = "log"`` (LNS cores only): the field is a two's-complement exponent in units of ``2**-F`` of
    the log format, and ``product(sw, sa)`` is their signed sum, which the LNS datapath adds to every
    product's exponent (``apply`` and ``factor`` do not apply).

    A vector pair's combined factor is ``product(sw, sa)`` (``sw * sa``, or the exponent ``sw + sa``), and
    a partial sum is scaled by ``apply(psum, product)`` (``psum * product``, or ``psum << product``). Both
    are exact.

    Parameters
    ----------
    bits : int
        S: 1..8 for ``int`` and ``log``, 1..4 for ``pow2`` (factors up to ``2**15``).
    kind : str
        ``"int"``, ``"pow2"`` or ``"log"``.
    """
    bits: int
    kind: str = "int"

    def __post_init__(self):
        if self.kind not in SCALE_KINDS:
            raise ValueError(f"scale kind must be one of {', '.join(SCALE_KINDS)}, not {self.kind!r}")
        hi = MAX_SCALE_BITS[self.kind]
        if not is_int(self.bits) or not 1 <= self.bits <= hi:
            raise ValueError(f"{self.kind} scale width must be an integer 1..{hi}, not {self.bits!r}")

    @property
    def max_field(self):
        return (1 << self.bits) - 1

    @property
    def field_range(self):
        """``(lo, hi)`` of a field's value: ``0 .. 2**S - 1``, or two's complement for ``log``."""
        if self.kind == "log":
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, self.max_field

    @property
    def max_product(self):
        """Largest combined factor of a vector pair (the product is never negative)."""
        f = self.max_field
        return f * f if self.kind == "int" else 1 << (2 * f)

    @property
    def product_bits(self):
        """Width of :meth:`product`'s unsigned result."""
        return 2 * self.bits if self.kind == "int" else self.bits + 1

    def product(self, sw, sa, ops):
        if self.kind == "log":
            return ops.wrap(sw, self.bits, True) + ops.wrap(sa, self.bits, True)
        return ops.mul(sw, sa) if self.kind == "int" else sw + sa

    def apply(self, psum, product, ops):
        return psum * product if self.kind == "int" else psum << product

    def factor(self, field):
        """Integer factor of a field value (host side)."""
        return field if self.kind == "int" else 1 << field
