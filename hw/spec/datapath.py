"""The datapaths a core can be built with: one class per family of number formats, holding every spec-level
fact the rest of qmac asks for (the model is Gemmini's ``Arithmetic`` typeclass).

A config's datapath is ``config.datapath``, an instance of the :data:`DATAPATHS` class whose
:attr:`Datapath.modes` hold the config's modes. The class states which modes it has and whether they mix,
the config keys it alone takes and checks them, which scale kinds it takes, the latency of its dot
product and the stage after the array, its accumulator (format and shape), the manifest block and the
one-line description of its results. The hardware of each datapath (the per-beat sum of a MAC unit, the
stage after the array) is found through :data:`qmac.hw.array.datapaths.HARDWARE`, its golden arithmetic
and host quantizer through :data:`qmac.sim.datapaths.GOLDEN`, both keyed by these classes; this module
imports neither (the spec layer imports no component).

Adding a datapath: a subclass here listed in :data:`DATAPATHS`, an entry in each of those two registries
(docs/architecture.md, "Adding a number format or datapath").
"""

import math

from amaranth.hdl import signed
from amaranth.lib import data

from qmac.hw.spec.checks import ConfigError, check_key, check_key_int
from qmac.hw.spec.formats import ELEMENT_FORMATS, IntFormat, lane_range
from qmac.hw.spec.layouts import LOG_SHIFT_BITS
from qmac.hw.spec.log_encode import LogEncodeArithmetic
from qmac.hw.spec.log_format import LOG_FORMATS, MAX_P_BITS, LogFormat
from qmac.hw.spec.log_sum import MAX_MANTISSA_BITS, MAX_WINDOW_BITS, LogSum
from qmac.hw.spec.multipliers import MULTIPLIERS

__all__ = ["Datapath", "IntDatapath", "LogDatapath", "DATAPATHS", "ORGANISATIONS", "DEFAULT_P_BITS",
           "datapath_of", "mode_format", "code_range", "operand_mode"]

#: Organisations of an LNS unit's bucket adders (:class:`qmac.hw.log_datapath.log_dot_product.LogDotProduct`).
ORGANISATIONS = ("tree", "count")
#: P of the LNS combine constants when ``p_bits`` is not given.
DEFAULT_P_BITS = 12


class Datapath:
    """One datapath of a config (``config.datapath``): facts about the config's arithmetic.

    Class attributes (what a subclass declares):

    - :attr:`modes`: name -> number format of every mode of the family (a format has ``bits``).
    - :attr:`mixable`: several of its modes may be built together (lanes selected at run time).
    - :attr:`what`: how messages name a mode of the family (``"a log mode"``).
    - :attr:`keys`: the config keys only this datapath takes, in the order they are checked.
    - :attr:`scale_kinds`: the ``scale_kind`` values it takes, the default first.
    - :attr:`multipliers`: the ``multiplier`` values it takes.
    - :attr:`exact_only`: ``None``, or why ``acc_bits`` cannot be set (its accumulators are always exact).
    - :attr:`sparse_reason`: ``None`` if it has 2:4 sparse selection, else why not.
    """
    modes = {}
    mixable = False
    what = None
    keys = ()
    scale_kinds = ()
    multipliers = tuple(MULTIPLIERS)
    exact_only = None
    sparse_reason = None

    def __init__(self, config):
        self.config = config

    def __repr__(self):
        return f"{type(self).__name__}({list(self.config.modes)!r})"

    @classmethod
    def allowed_modes(cls):
        """The modes of the family as messages state them."""
        names = ", ".join(cls.modes)
        return f"a non-empty subset of {names}" if cls.mixable else f"one of {names}"

    @classmethod
    def code_range(cls, mode, activations=False):
        """``(lo, hi)`` of the weight (with ``activations``: activation) codes of ``mode``."""
        raise NotImplementedError

    @classmethod
    def operand_mode(cls, mode, activations=False):
        """The mode whose codes and lane packing the weights (with ``activations``: the activations) of
        ``mode`` use: ``mode`` itself."""
        return mode

    @classmethod
    def sparse_reason_of(cls, mode):
        """``None`` if ``mode`` runs 2:4 sparse, else why not: :attr:`sparse_reason`."""
        return cls.sparse_reason

    # -- checks (called by CoreConfig.__post_init__, in this order) ---------------------------------

    def check_keys(self):
        """Reject the keys of other datapaths; then check this datapath's own keys and restrictions."""
        cfg = self.config
        defaults = {f.name: f.default for f in cfg.__dataclass_fields__.values()}
        for other in DATAPATHS:
            if other is type(self):
                continue
            for key in other.keys:
                value = getattr(cfg, key)
                check_key(key, value, value == defaults[key],
                          f"only with modes {' or '.join(repr([m]) for m in other.modes)}", f"needs {other.what}")
        if cfg.sparse and self.sparse_reason:
            raise ConfigError(f"config key 'sparse': True is not allowed with {self.what}; allowed: false "
                              f"({self.sparse_reason})")
        if self.multiplier_reason and cfg.multiplier not in self.multipliers:
            raise ConfigError(f"config key 'multiplier': {cfg.multiplier!r} is not allowed with {self.what}; "
                              f"allowed: {', '.join(self.multipliers)} ({self.multiplier_reason})")

    def check_size(self):
        """Checks of the sizes ``max_k`` implies, after ``max_k`` itself is checked."""

    @property
    def activation_lanes(self):
        """Byte lanes of one activation vector per beat: V."""
        return self.config.lanes

    #: What to change when the exact accumulators pass 64 bits.
    max_k_hint = "lower max_k or scale_bits"
    multiplier_reason = None

    # -- derived quantities ----------------------------------------------------------------------

    @property
    def exact_acc_format(self):
        """Accumulator format that holds any tile the ``k_beats_m1`` register can describe."""
        raise NotImplementedError

    @property
    def accumulator_shape(self):
        """Shape of a unit's accumulator (and shadow register)."""
        return signed(self.config.acc_format.bits)

    @property
    def dot_latency(self):
        """Cycles from operands to a unit's registered per-beat sum."""
        raise NotImplementedError

    @property
    def post_array_latency(self):
        """Cycles the stage between the array and the output stage adds (0: no such stage)."""
        return 0

    def manifest(self):
        """Fields this datapath adds to the manifest (``qmac_core.json``)."""
        return {}

    def result_fields(self):
        """Fields this datapath adds to a GEMM report (what a reader needs to read the results)."""
        return {}

    def describe(self):
        """One phrase describing the accumulators and results (``qmac generate``)."""
        cfg = self.config
        return f"{cfg.acc_format.bits}-bit {'saturating' if cfg.saturating else 'exact'} accumulators"


class IntDatapath(Datapath):
    """INT8 and INT4 codes in 8-bit lanes, multiplied by the ``multiplier``'s lanes, summed by adder trees
    per scale group (:class:`~qmac.hw.int_datapath.dot_product.DotProduct`), scaled per vector, accumulated
    exactly or saturating to ``acc_bits``. Both modes may be built (dual lanes)."""
    modes = ELEMENT_FORMATS
    mixable = True
    what = "an int mode"
    scale_kinds = ("int", "pow2")

    @classmethod
    def code_range(cls, mode, activations=False):
        """Two's complement codes (W4A8: INT4 weights, INT8 activations)."""
        code = cls.modes[mode].activation_code if activations else cls.modes[mode].code
        return code.min, code.max

    @classmethod
    def operand_mode(cls, mode, activations=False):
        """``"int8"`` for W4A8's activations, else ``mode``."""
        return cls.modes[mode].operands[1].name if activations else mode

    @classmethod
    def sparse_reason_of(cls, mode):
        """A mode with wider activations (W4A8) has none: its beat already takes 2V activation lanes."""
        if cls.modes[mode].activation_lanes > 1:
            return "a W4A8 beat already takes 2V activation lanes; 2:4 selection would need 4V"
        return None

    @property
    def activation_lanes(self):
        """2V with ``sparse``, else V times the most activation lanes a mode's weight lane meets (W4A8: 2)."""
        cfg = self.config
        if cfg.sparse:
            return 2 * cfg.lanes
        return cfg.lanes * max(self.modes[m].activation_lanes for m in cfg.modes)

    @property
    def beat_range(self):
        """Range of one unit's per-beat (scaled) partial sum: V lanes, times the largest scale product."""
        cfg = self.config
        lo, hi = lane_range(cfg.modes)
        factor = cfg.scale_format.max_product if cfg.scale_bits else 1
        return cfg.lanes * lo * factor, cfg.lanes * hi * factor

    @property
    def exact_acc_format(self):
        lo, hi = self.beat_range
        k = self.config.max_k_beats
        return IntFormat.for_range(k * lo, k * hi)

    @property
    def dot_latency(self):
        """Product register + the ``multiplier``'s lane stages + adder-tree stages, + 1 for the scale unit
        when built."""
        cfg = self.config
        return (1 + cfg.multiplier_class.stages + math.ceil(cfg.tree_levels / cfg.tree_levels_per_stage)
                + (1 if cfg.scale_bits else 0))


class LogDatapath(Datapath):
    """One LNS mode (docs/lns.md): products are exponent additions sorted into ``2**F`` fraction buckets
    (:class:`~qmac.hw.log_datapath.log_dot_product.LogDotProduct`), each accumulated exactly; per column,
    after the drain, :class:`~qmac.hw.log_datapath.log_combine.LogCombine` turns a unit's buckets into one
    linear fixed-point value (:attr:`log_sum`), optionally encoded back to a log code (``log_output``)."""
    modes = LOG_FORMATS
    mixable = False
    what = "a log mode"
    keys = ("frac_bits", "p_bits", "q_floor", "bucket_organisation", "bucket_fraction_bits", "mantissa_bits",
            "window_bits", "log_output")
    scale_kinds = ("log",)
    multipliers = ("logic",)
    multiplier_reason = "an LNS product is an exponent addition, no multiplier"
    exact_only = "LNS accumulators are always exact"
    sparse_reason = "2:4 selection is built for the INT modes"
    max_k_hint = "lower max_k, scale_bits or p_bits, or set q_floor"

    @classmethod
    def code_range(cls, mode, activations=False):
        """Unsigned codes, the same for both operands."""
        return 0, (1 << cls.modes[mode].bits) - 1

    def check_keys(self):
        cfg = self.config
        if cfg.frac_bits is not None:
            bits = self.modes[cfg.modes[0]].bits
            check_key_int("frac_bits", cfg.frac_bits, 0, LogFormat.max_frac_bits(bits))
        if cfg.p_bits is not None:
            check_key_int("p_bits", cfg.p_bits, 1, MAX_P_BITS)
        check_key("bucket_organisation", cfg.bucket_organisation,
                  cfg.bucket_organisation is None or cfg.bucket_organisation in ORGANISATIONS, ", ".join(ORGANISATIONS))
        frac = self.log_format.frac_bits
        if cfg.bucket_fraction_bits is not None:
            check_key_int("bucket_fraction_bits", cfg.bucket_fraction_bits, 0, frac)
        if self.hybrid:
            check_key("bucket_fraction_bits", cfg.bucket_fraction_bits, cfg.mantissa_bits is not None,
                      f"mantissa_bits 1..{MAX_MANTISSA_BITS} with it", "needs mantissa_bits")
            check_key_int("mantissa_bits", cfg.mantissa_bits, 1, MAX_MANTISSA_BITS)
            check_key("bucket_organisation", cfg.bucket_organisation, cfg.bucket_organisation != "count", "tree",
                      f"is not allowed with bucket_fraction_bits = {cfg.bucket_fraction_bits}")
        else:
            check_key("mantissa_bits", cfg.mantissa_bits, cfg.mantissa_bits is None,
                      f"only with bucket_fraction_bits 0..{frac - 1}", "needs a hybrid sum")
        if cfg.window_bits is not None:
            check_key("window_bits", cfg.window_bits, self.hybrid and cfg.bucket_fraction_bits == 0,
                      f"only with bucket_fraction_bits = 0 (and F = {frac} > 0)", "needs one hybrid bucket")
            # g = W - Pm - 1 <= P: the combine places the accumulator with an exact left shift.
            check_key_int("window_bits", cfg.window_bits, cfg.mantissa_bits + 1,
                          min(MAX_WINDOW_BITS, cfg.mantissa_bits + 1 + self.p_bits))
        if cfg.q_floor is not None:
            exact = LogSum(self.log_format, 1, 1, *self.scale_range)
            check_key_int("q_floor", cfg.q_floor, exact.exact_q_min + 1, exact.q_max)
        super().check_keys()

    def check_size(self):
        try:
            self.log_sum
        except ValueError as e:
            raise ConfigError(f"config key 'max_k': {self.config.max_k!r} is not allowed; {e}") from None

    @property
    def log_format(self):
        """The :class:`~qmac.hw.spec.log_format.LogFormat` of the build's mode, with ``frac_bits`` when set."""
        fmt = self.modes[self.config.modes[0]]
        return fmt if self.config.frac_bits is None else LogFormat(fmt.bits, self.config.frac_bits)

    @property
    def p_bits(self):
        return DEFAULT_P_BITS if self.config.p_bits is None else self.config.p_bits

    @property
    def organisation(self):
        return "tree" if self.config.bucket_organisation is None else self.config.bucket_organisation

    @property
    def hybrid(self):
        """Whether the build uses the hybrid bucket scheme (``bucket_fraction_bits < F``, :class:`LogSum`)."""
        b = self.config.bucket_fraction_bits
        return b is not None and b < self.log_format.frac_bits

    @property
    def scale_range(self):
        """Range of ``sw + sa`` (two signed S-bit fields) with scales, else ``(0, 0)``."""
        cfg = self.config
        if not cfg.scale_bits:
            return 0, 0
        lo, hi = cfg.scale_format.field_range
        return 2 * lo, 2 * hi

    @property
    def log_sum(self):
        """The :class:`LogSum` of one unit over a ``max_k_beats`` tile."""
        cfg = self.config
        return LogSum(self.log_format, cfg.elements_per_beat(cfg.modes[0]), cfg.max_k_beats, *self.scale_range,
                      q_floor=cfg.q_floor, p_bits=self.p_bits, bucket_fraction_bits=cfg.bucket_fraction_bits,
                      mantissa_bits=cfg.mantissa_bits or 0, window_bits=cfg.window_bits)

    @property
    def bucket_format(self):
        """Format of each fraction-bucket accumulator (:attr:`LogSum.acc_format`; windowed, of the
        accumulator's mantissa)."""
        return self.log_sum.acc_format

    @property
    def exact_acc_format(self):
        """The combined result of a tile: :attr:`LogSum.result_format`."""
        return self.log_sum.result_format

    @property
    def accumulator_shape(self):
        """The fraction-bucket accumulators, ``ArrayLayout(signed(bucket_bits), buckets)``: ``2**F``, or ``2**b``
        with hybrid buckets; windowed, ``StructLayout({"mantissa": signed(bucket_bits), "exponent":
        unsigned(LogSum.anchor_bits)})``, of value ``mantissa * 2**(exponent - g)`` units of ``2**(q_min - Pm)``."""
        if self.log_sum.windowed:
            return data.StructLayout({"mantissa": signed(self.bucket_format.bits),
                                      "exponent": self.log_sum.anchor_bits})
        return data.ArrayLayout(signed(self.bucket_format.bits), self.log_sum.buckets)

    @property
    def dot_latency(self):
        """:class:`LogDotProduct`'s 2 stages."""
        return 2

    @property
    def post_array_latency(self):
        """:class:`LogCombine`'s 2 stages, + the log encoder's with ``log_output``."""
        cfg = self.config
        encode = LogEncodeArithmetic(self.log_format, cfg.acc_format.bits, self.log_sum.result_exponent,
                                     LOG_SHIFT_BITS) if cfg.log_output else None
        return 2 + (len(encode.stages) if encode else 0)

    def manifest(self):
        spec = self.log_sum
        return {"lns": {"bits": spec.fmt.bits, "frac_bits": spec.fmt.frac_bits, "p_bits": spec.p_bits,
                        "q_min": spec.q_min, "q_floor": spec.q_floor, "constants": list(spec.constants),
                        "bucket_bits": self.bucket_format.bits, "result_exponent": spec.result_exponent,
                        "organisation": self.organisation}
                | ({"bucket_fraction_bits": spec.fraction_bits, "mantissa_bits": spec.mantissa_bits,
                    "mantissas": list(spec.mantissas)} if self.hybrid else {})
                | ({"window_bits": spec.window_bits, "guard_bits": spec.guard_bits,
                    "exponent_bits": spec.anchor_bits} if spec.windowed else {})}

    def result_fields(self):
        return {"result_exponent": self.log_sum.result_exponent}

    def describe(self):
        cfg = self.config
        spec = self.log_sum
        hybrid = f" (hybrid: b = {spec.fraction_bits}, {spec.mantissa_bits}-bit mantissas)" if self.hybrid else ""
        if spec.windowed:
            return (f"one {spec.window_bits}-bit-window accumulator per unit ({self.bucket_format.bits}-bit "
                    f"mantissa, {spec.anchor_bits}-bit exponent){hybrid}, {cfg.acc_format.bits}-bit results x "
                    f"2**{spec.result_exponent}")
        return (f"{spec.buckets} exact {self.bucket_format.bits}-bit fraction accumulators per unit{hybrid}, "
                f"{cfg.acc_format.bits}-bit results x 2**{spec.result_exponent}")


#: Every datapath, in the canonical order of their modes.
DATAPATHS = (IntDatapath, LogDatapath)


def datapath_of(mode):
    """The :data:`DATAPATHS` class that has ``mode`` (``KeyError`` if none)."""
    for cls in DATAPATHS:
        if mode in cls.modes:
            return cls
    raise KeyError(mode)


def mode_format(mode):
    """The number format of ``mode`` (it has ``bits``)."""
    return datapath_of(mode).modes[mode]


def code_range(mode, activations=False):
    """``(lo, hi)`` of the weight (with ``activations``: activation) codes of ``mode``: two's complement for
    INT (W4A8: INT4 weights, INT8 activations), unsigned LNS codes."""
    return datapath_of(mode).code_range(mode, activations)


def operand_mode(mode, activations=False):
    """The mode whose codes and lane packing the weights (with ``activations``: the activations) of ``mode``
    use: ``"int8"`` for W4A8's activations, else ``mode`` itself."""
    return datapath_of(mode).operand_mode(mode, activations)
