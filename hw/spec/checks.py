"""The limits several components share, and the one integer and boolean checker.

Every parameter check in qmac reads its limits from here (or from the format it checks) and tests its
integers with :func:`is_int`; :func:`check_int` and :func:`check_key` write the two message styles, one
line naming the value and what is allowed: ``<name> must be an integer from <lo> to <hi>, not <value>``
for component parameters and host arguments, ``config key '<key>': <value> ...; allowed: ...`` for the
keys of a :class:`qmac.hw.spec.config.CoreConfig`.
"""

import numbers

__all__ = ["ConfigError", "GROUP_LANES", "LANES", "LOG_LANES", "MAX_SCALE_BITS", "is_int", "int_range",
           "check_int", "check_key", "check_key_int", "check_key_bool"]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type, out of range or inconsistent."""


#: Lanes of one adder tree (a :class:`~qmac.hw.int_datapath.dot_product.DotProduct`, a scale group): the
#: powers of two up to 64.
GROUP_LANES = (1, 2, 4, 8, 16, 32, 64)
#: 8-bit operand lanes of an array's units (config key ``lanes``).
LANES = GROUP_LANES[2:]
#: Codes one LNS dot-product unit takes per beat: ``lanes`` times one (LNS8) or two (LNS4) codes per lane.
LOG_LANES = LANES + (2 * LANES[-1],)
#: Widest per-vector scale field of each kind (:class:`~qmac.hw.spec.formats.ScaleFormat`): ``pow2``
#: fields are exponents, so 4 bits already give factors up to ``2**15``.
MAX_SCALE_BITS = {"int": 8, "pow2": 4, "log": 8}


def is_int(value, numpy=False):
    """Whether ``value`` is an integer: a Python ``int`` (with ``numpy``, also a numpy integer), never a
    ``bool`` nor an integral float such as ``4.0``."""
    if isinstance(value, bool):
        return False
    return isinstance(value, numbers.Integral if numpy else int)


def int_range(lo, hi=None):
    """``"an integer from lo to hi"``; ``"a positive integer"`` for ``lo = 1`` without ``hi``."""
    if hi is None:
        return "a positive integer" if lo == 1 else f"an integer from {lo}"
    return f"an integer from {lo} to {hi}"


def check_int(name, value, lo, hi=None, error=ValueError, numpy=False, context=""):
    """Raise ``error("<name> must be an integer from <lo> to <hi><context>, not <value!r>")`` unless
    ``value`` is an integer (:func:`is_int`) in ``[lo, hi]`` (``hi = None``: unbounded)."""
    if not is_int(value, numpy) or value < lo or (hi is not None and value > hi):
        raise error(f"{name} must be {int_range(lo, hi)}{context}, not {value!r}")


def check_key(key, value, ok, allowed, problem="is not allowed"):
    """Raise ``ConfigError("config key '<key>': <value!r> <problem>; allowed: <allowed>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"config key '{key}': {value!r} {problem}; allowed: {allowed}")


def check_key_int(key, value, lo, hi):
    """A config key that takes an integer ``lo..hi`` (not a float such as ``4.0``, not a boolean)."""
    check_key(key, value, is_int(value), f"integers {lo}..{hi}", "is not an integer")
    check_key(key, value, lo <= value <= hi, f"integers {lo}..{hi}", "is out of range")


def check_key_bool(key, value):
    """A config key that takes ``true`` or ``false`` (not ``0`` or ``1``)."""
    check_key(key, value, isinstance(value, bool), "true, false")
