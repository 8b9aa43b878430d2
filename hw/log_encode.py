"""Linear fixed point to log codes: leading-one detection, then comparison with the exact log-domain midpoints.

The arithmetic (:class:`LogEncodeArithmetic`) is written once against an ops backend: :class:`LogEncode`
registers its stages, the golden twin :func:`qmac.sim.log_encode.log_encode` chains them on numpy object
arrays of Python ints. The rounding is specified in ``docs/lns.md`` ("Log-code output").
"""

from dataclasses import dataclass
from math import isqrt

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .log_format import LogFormat
from .ops import AmaranthOps

__all__ = ["LogEncodeArithmetic", "LogEncode", "MAX_IN_BITS", "MAX_SHIFT_BITS", "MAX_IN_EXPONENT"]

#: Widest input.
MAX_IN_BITS = 128
#: Widest ``shift`` input.
MAX_SHIFT_BITS = 16
#: Largest ``|in_exponent|``.
MAX_IN_EXPONENT = 1024


def _check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"log encoder {name} must be an integer from {lo} to {hi}, not {value!r}")


@dataclass(frozen=True)
class LogEncodeArithmetic:
    """Rounds ``x * 2**in_exponent * 2**(-shift / 2**F)`` to the nearest code of ``fmt`` in the log domain.

    ``x`` is a signed integer of ``in_bits`` bits, ``shift`` a signed integer of ``shift_bits`` bits (0 when
    ``shift_bits == 0``). With ``W = in_bits``, ``m = |x|`` (``0 .. 2**(W-1)``, ``W`` bits unsigned):

    1. ``magnitude``: ``sign = x < 0``, ``m = |x|``;
    2. ``normalize``: ``z`` = leading zeros of ``m`` in ``W`` bits (``z = W`` for ``m = 0``) and the
       normalized mantissa ``n = m << z`` (:meth:`normalize`), so ``2**(W-1) <= n < 2**W`` for ``m > 0``, and
       ``m = n * 2**(L - W + 1)`` with ``L = W - 1 - z`` the position of the leading one;
    3. ``code``: ``j`` = the number of midpoints ``D_i <= n`` (:attr:`midpoints`, ``i = 1 .. 2**F``), the
       exponent ``e = 2**F * (L + in_exponent) + j - shift`` and the field ``f = e + bias``. The code is 0
       if ``m = 0`` or ``f < 1``, else ``sign`` above ``min(f, 2**(bits-1) - 1)``.

    ``D_i = floor(2**(W-1) * 2**((2i - 1) / 2**(F+1))) + 1`` is the smallest ``W``-bit mantissa at or above
    the log-domain midpoint between ``2**((i-1) / 2**F)`` and ``2**(i / 2**F)``, computed exactly (``F + 1``
    nested integer square roots). The midpoint itself is irrational, so no mantissa equals it: ``j`` is
    exactly ``round(2**F * log2(n / 2**(W-1)))``, and ``e`` is exactly the integer nearest to
    ``2**F * log2(|value|)`` (``shift`` is an integer in those units, so it moves no rounding boundary).
    This is :func:`qmac.sim.log_format.encode` of the exact value, with the thresholds taken exactly
    instead of as float64: zero below half a step under the smallest magnitude, the largest magnitude for
    every ``|value|`` from the midpoint under it up (saturation), zero always coded ``0``.

    Parameters
    ----------
    fmt : LogFormat
    in_bits : int
        ``W``, width of the signed input, 2 to :data:`MAX_IN_BITS`.
    in_exponent : int
        The input's value is ``x * 2**in_exponent``; ``|in_exponent| <=`` :data:`MAX_IN_EXPONENT`.
    shift_bits : int
        Width of the signed ``shift`` input, 0 (no shift) to :data:`MAX_SHIFT_BITS`.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    """
    fmt: LogFormat
    in_bits: int
    in_exponent: int = 0
    shift_bits: int = 0

    def __post_init__(self):
        if not isinstance(self.fmt, LogFormat):
            raise ConfigError(f"log encoder format must be a LogFormat, not {self.fmt!r}")
        _check_int("in_bits", self.in_bits, 2, MAX_IN_BITS)
        _check_int("in_exponent", self.in_exponent, -MAX_IN_EXPONENT, MAX_IN_EXPONENT)
        _check_int("shift_bits", self.shift_bits, 0, MAX_SHIFT_BITS)

    @property
    def midpoints(self):
        """``(D_1, ..., D_2**F)``: ``D_i = floor(2**(W-1) * 2**((2i-1) / 2**(F+1))) + 1``, non-decreasing, each
        in ``(2**(W-1), 2**W]`` (``2**W``, never reached by ``n``, only for small ``W``)."""
        roots = self.fmt.frac_bits + 1
        out = []
        for i in range(1, self.fmt.buckets + 1):
            v = 1 << ((self.in_bits - 1 << roots) + 2 * i - 1)
            for _ in range(roots):
                v = isqrt(v)   # isqrt(isqrt(a)) == floor(a ** (1/4)) for integers, and so on
            out.append(v + 1)
        return tuple(out)

    @property
    def zeros_bits(self):
        """Width of the leading-zero count ``z`` (0 .. W)."""
        return self.in_bits.bit_length()

    @property
    def stages(self):
        """``(name, function, {field: shape})`` of each pipeline stage, in order. A function maps the
        previous stage's fields (the first: ``x`` and ``shift``) to its own, ``function(v, ops)``."""
        w = self.in_bits
        shift = {"shift": signed(self.shift_bits)} if self.shift_bits else {}
        return (("magnitude", self.magnitude, {"sign": unsigned(1), "m": unsigned(w), **shift}),
                ("normalize", self.normalize, {"sign": unsigned(1), "z": unsigned(self.zeros_bits),
                                               "n": unsigned(w), **shift}),
                ("code", self.code, {"code": unsigned(self.fmt.bits)}))

    def magnitude(self, v, ops):
        """``sign = x < 0``, ``m = |x|``."""
        x = v["x"]
        negative = x < 0
        return {"sign": ops.where(negative, 1, 0), "m": ops.where(negative, -x, x), "shift": v["shift"]}

    def normalize(self, v, ops):
        """Leading zeros ``z`` of ``m`` (``W`` when ``m = 0``), mantissa ``n = m << z`` (``W`` bits).

        A normalizer of ``ceil(log2(W))`` steps: for ``s`` = the powers of two below ``W``, descending, the
        top ``s`` bits of ``n`` are zero exactly when at least ``s`` leading zeros remain; then ``n`` shifts
        left by ``s`` and ``z`` counts them.
        """
        w, m = self.in_bits, v["m"]
        n, z = m, 0
        for s in reversed([1 << k for k in range((w - 1).bit_length())]):
            empty = (n >> (w - s)) < 1   # not `== 0`: Yosys writes `!x`, which Verilator flags
            n = ops.where(empty, (n << s) & ((1 << w) - 1), n)
            z = z + ops.where(empty, s, 0)
        return {"sign": v["sign"], "z": ops.where(m < 1, w, z), "n": n, "shift": v["shift"]}

    def code(self, v, ops):
        """Round to the nearest exponent, saturate, attach the sign (see the class docstring)."""
        fmt, w = self.fmt, self.in_bits
        j = 0
        for d in self.midpoints:
            j = j + ops.where(v["n"] >= d, 1, 0)
        field = (((w - 1 + self.in_exponent) - v["z"]) << fmt.frac_bits) + j - v["shift"] + fmt.bias
        top = (1 << fmt.field_bits) - 1
        code = (v["sign"] << fmt.field_bits) | ops.where(field > top, top, field)
        return {"code": ops.where((v["z"] == w) | (field < 1), 0, code)}


class LogEncode(wiring.Component):
    """Converts a signed fixed-point value to a code of a log format (:class:`LogEncodeArithmetic`).

    Pipeline: three register stages (magnitude, normalize, code), so ``code`` follows ``x`` by
    :attr:`latency` = 3 cycles, one value per cycle. ``valid`` travels with its value and has no other
    effect; wrap the unit in ``EnableInserter`` to stall it.

    As the output converter of an LNS core column: ``in_bits = config.acc_format.bits``,
    ``in_exponent = config.log_sum.result_exponent``, and ``shift`` the output scale (an exponent in units of
    ``2**-F`` subtracted before rounding).

    Parameters
    ----------
    fmt : LogFormat
        Output format.
    in_bits : int
        Width of ``x``, 2 to 128.
    in_exponent : int
        ``x`` stands for ``x * 2**in_exponent``.
    shift_bits : int
        Width of the ``shift`` input, 0 (no port) to 16.

    Members
    -------
    x : In(signed(in_bits))
    shift : In(signed(shift_bits))
        Only if ``shift_bits > 0``: the code is that of ``x * 2**in_exponent * 2**(-shift / 2**F)``.
    valid : In(1)
    code : Out(unsigned(fmt.bits))
        Nearest code in the log domain, saturating; zero and values below half a step under the smallest
        magnitude give 0.
    code_valid : Out(1)
        ``valid``, :attr:`latency` cycles later.

    Raises
    ------
    ConfigError
        A parameter is out of range.
    """

    def __init__(self, fmt, in_bits, in_exponent=0, shift_bits=0):
        self._arith = LogEncodeArithmetic(fmt, in_bits, in_exponent, shift_bits)
        ports = {"x": In(signed(in_bits)), "valid": In(1),
                 "code": Out(unsigned(fmt.bits)), "code_valid": Out(1)}
        if shift_bits:
            ports["shift"] = In(signed(shift_bits))
        super().__init__(ports)

    @property
    def format(self):
        return self._arith.fmt

    @property
    def in_bits(self):
        return self._arith.in_bits

    @property
    def in_exponent(self):
        return self._arith.in_exponent

    @property
    def shift_bits(self):
        return self._arith.shift_bits

    @property
    def midpoints(self):
        """The mantissa thresholds :attr:`LogEncodeArithmetic.midpoints`."""
        return self._arith.midpoints

    @property
    def latency(self):
        """Cycles from ``x`` to ``code``: one register per stage."""
        return len(self._arith.stages)

    def elaborate(self, platform):
        m = Module()
        values = {"x": self.x, "shift": self.shift if self.shift_bits else 0}
        valid = self.valid
        for name, stage, fields in self._arith.stages:
            results = stage(values, AmaranthOps)
            regs = {key: Signal(shape, name=f"{name}_{key}") for key, shape in fields.items()}
            next_valid = Signal(name=f"{name}_valid")
            m.d.sync += [regs[key].eq(results[key]) for key in regs]
            m.d.sync += next_valid.eq(valid)
            values = {"shift": 0, **regs}
            valid = next_valid
        m.d.comb += [self.code.eq(values["code"]), self.code_valid.eq(valid)]
        return m
