"""The one configuration of a qmac core: a frozen dataclass that checks itself.

Configs come from an embedded preset, from a TOML file, or from code (``dataclasses.replace`` for
variants). Every bad value raises :class:`ConfigError` with one line naming the key, the value and what
is allowed. The derived quantities (widths, latency, throughput) are properties, computed in one place
and read by the hardware, the golden model, the testbenches and the manifest.
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass

from qmac.hw.spec.formats import ELEMENT_FORMATS, ROUNDINGS, SCALE_KINDS, IntFormat, ScaleFormat, lane_range
from qmac.hw.spec.log_format import LOG_FORMATS
from qmac.hw.spec.log_sum import LogSum

__all__ = ["ConfigError", "CoreConfig", "PRESETS", "MODE_CODES", "MODES", "MULTIPLIERS", "W4A8_MULTIPLIERS", "ORGANISATIONS", "preset",
           "load_config", "mode_bits", "per_lane", "code_range", "operand_mode"]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type, out of range or inconsistent."""


#: Encoding of the ``ctrl.mode`` port.
MODE_CODES = {"int8": 0, "int4": 1, "lns8": 2, "lns4": 3, "w4a8": 4}
#: Every datapath mode, in canonical order: the integer modes, then the log (LNS) modes.
MODES = tuple(ELEMENT_FORMATS) + tuple(LOG_FORMATS)
#: ``multiplier`` values whose lanes compute W4A8 (the ECP5 packings cannot keep two INT4 x INT8 products apart:
#: docs/fpga.md).
W4A8_MULTIPLIERS = ("logic", "logic_pipelined", "sb_mac16")
#: Organisations of an LNS unit's bucket adders (:class:`qmac.hw.log_datapath.log_dot_product.LogDotProduct`).
ORGANISATIONS = ("tree", "count")
#: P of the LNS combine constants when ``p_bits`` is not given.
DEFAULT_P_BITS = 12

_LANES = (4, 8, 16, 32, 64)
_MAX_DIM = 32
_MAX_K_LIMIT = 1 << 24

#: ``multiplier`` names -> pipeline stages a lane adds before the product register (docs/fpga.md):
#: shift-and-add logic (:class:`~qmac.hw.lanes.lane_product.LaneProduct`), iCE40 SB_MAC16 in dual 8x8 mode
#: (:class:`~qmac.hw.lanes.lane_pair_product.LanePairProduct`), ECP5 MULT18X18D
#: (:class:`~qmac.hw.lanes.packed_lane_product.PackedLaneProduct`: registered before the
#: :class:`~qmac.hw.lanes.mult18.Mult18`'s four stages), ECP5 MULT18X18D computing Winograd's pair terms, one block per
#: two lanes (:class:`~qmac.hw.lanes.winograd_pair_product.WinogradPairProduct`: those five stages after a local copy of
#: the lanes).
#: ``logic_pipelined`` is ``logic`` with a register inside each lane's shift-and-add array
#: (:class:`~qmac.hw.lanes.pipelined_lane_product.PipelinedLaneProduct`).
MULTIPLIERS = {"logic": 0, "logic_pipelined": 1, "sb_mac16": 0, "mult18": 5, "mult18_fip": 6}


def mode_bits(mode):
    """Width of one code of ``mode``."""
    return (ELEMENT_FORMATS.get(mode) or LOG_FORMATS[mode]).bits


def per_lane(mode):
    """Elements of ``mode`` per 8-bit operand lane (element ``j`` at bits ``[j*bits, (j+1)*bits)``)."""
    return 8 // mode_bits(mode)


def code_range(mode, activations=False):
    """``(lo, hi)`` of the (weight, or with ``activations`` activation) codes of ``mode``: two's complement
    for INT (W4A8: INT4 weights, INT8 activations), unsigned LNS codes."""
    if mode in ELEMENT_FORMATS:
        code = ELEMENT_FORMATS[mode].activation_code if activations else ELEMENT_FORMATS[mode].code
        return code.min, code.max
    return 0, (1 << LOG_FORMATS[mode].bits) - 1


def operand_mode(mode, activations=False):
    """The mode whose codes and lane packing the weights (or with ``activations`` the activations) of ``mode``
    use: ``"int8"`` for W4A8's activations, else ``mode`` itself."""
    if activations and mode in ELEMENT_FORMATS:
        return ELEMENT_FORMATS[mode].operands[1].name
    return mode


def _check_int(key, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"config key '{key}': {value!r} is not an integer; allowed: integers {lo}..{hi}")
    if not lo <= value <= hi:
        raise ConfigError(f"config key '{key}': {value!r} is out of range; allowed: integers {lo}..{hi}")


@dataclass(frozen=True)
class CoreConfig:
    """Parameters of a generated core.

    Parameters
    ----------
    rows, cols : int
        Array shape R x C (1..32 each). Row ``r`` receives weight vector ``r``, column ``c`` activation
        vector ``c``; unit ``(r, c)`` accumulates their dot products.
    lanes : int
        V, 8-bit operand lanes per dot-product unit: 4, 8, 16, 32 or 64. An INT8 lane holds one element,
        an INT4 lane two.
    modes : tuple of str
        Precision modes built in: any non-empty subset of ``("int8", "int4", "w4a8")``, or one log mode,
        ``("lns8",)`` or ``("lns4",)``. With both INT modes, every lane is a dual-mode lane (one INT8
        product, or two INT4 products, per cycle), selected at run time. ``"w4a8"`` (INT4 weights x INT8
        activations): a weight lane's two INT4 weights meet two INT8 activations, so activation vectors
        carry 2V lanes (:attr:`activation_lanes`); not with ``sparse``, nor with the ECP5 multipliers
        (:data:`W4A8_MULTIPLIERS`). A log mode builds the LNS
        datapath (docs/lns.md): an LNS8 lane holds one code, an LNS4 lane two.
    max_k : int
        Longest reduction, in elements, of one tile in the mode with the fewest elements per beat (INT8
        when built; INT4 then fits twice as many): a power of two from two beats to 2**24. It sizes the
        ``k_beats_m1`` register and, with it, the exact accumulators.
    acc_bits : int or None
        Accumulator width. ``None`` (default) derives the exact width, so overflow cannot happen. A
        narrower width (at least the per-beat partial-sum width) makes accumulators saturate and raise a
        sticky flag.
    tree_levels_per_stage : int
        Adder-tree levels between pipeline registers in each dot-product unit (1..8).
    scale_bits : int
        S, width of the per-vector scale factors that travel with the operand vectors; 0 (default)
        builds no scale units. ``int`` scales: 1..8, ``pow2`` scales (exponents): 1..4.
    scale_kind : str
        ``"int"`` (the unit multiplies by ``sw * sa``) or ``"pow2"`` (it shifts by ``sw + sa``) for the
        INT modes; ``"log"`` for a log mode (signed exponents, in units of ``2**-F``, added to every
        product: ``t += sw + sa``; S = 1..8).
    scale_lanes : int or None
        Lanes per scale group: each beat carries ``lanes / scale_lanes`` scale fields per vector, one per
        group of ``scale_lanes`` lanes (``scale_lanes`` INT8 or ``2 * scale_lanes`` INT4 elements). A power
        of two dividing ``lanes``; default ``min(lanes, 8)``. Only with ``scale_bits > 0``.
    output_stage : bool
        Build the requantizing output stage: result rows then also carry INT8/INT4 codes computed with
        per-channel parameters from the ``requant`` stream (docs/output_stage.md). Needs ``acc_bits`` <= 64.
    output_rounding : str
        Tie rule of the output stage's fixed-point mode: half_even (default), half_away, half_up, floor.
    sparse : bool
        Build 2:4 structured-sparse operand selection: activation vectors get 2V lanes and weight vectors
        2-bit indices; a tile with ``ctrl.sparse`` set takes V kept weights per vector per beat against 2V
        lanes of dense activations (twice the dense MACs per cycle). See docs/sparse24.md.
    p_bits : int or None
        LNS only: P, fractional bits of the combine constants ``C_r = round(2**(P + r/2**F))``, 1..48
        (default 12: the combine errs by at most ``2**-13`` of the sum of the product magnitudes).
    q_floor : int or None
        LNS only: products below ``2**q_floor`` are dropped (narrower buckets); ``None`` (default)
        keeps every product exactly. See :class:`qmac.hw.spec.log_sum.LogSum`.
    bucket_organisation : str or None
        LNS only: structure of the bucket adders, ``"tree"`` (default) or ``"count"``.
    log_output : bool
        LNS only: result rows also carry each result as a code of the build's log format
        (:class:`qmac.hw.log_datapath.log_encode.LogEncode`, nearest in the log domain, after subtracting the exponent
        ``ctrl.log_shift``), ready to be the next layer's activations.
    multiplier : str
        What each INT lane multiplies with: ``"logic"`` (default; shift-and-add in LUTs),
        ``"logic_pipelined"`` (the same with a register halfway; adds one stage), ``"sb_mac16"``
        (iCE40 SB_MAC16 blocks in dual 8x8 mode, two lanes per block), ``"mult18"`` (ECP5 MULT18X18D,
        one lane per block; adds five pipeline stages) or ``"mult18_fip"`` (ECP5 MULT18X18D, one block per
        two lanes by Winograd's fast inner product, with one correction per row and per column of the
        array computed in logic; adds six stages; not with ``sparse``, whose units select their own
        activations, nor with ``scale_lanes`` 1). Results are identical; see :data:`MULTIPLIERS` and
        docs/fpga.md.
    """
    rows: int = 8
    cols: int = 8
    lanes: int = 16
    modes: tuple = ("int8", "int4")
    max_k: int = 65536
    acc_bits: int | None = None
    tree_levels_per_stage: int = 2
    scale_bits: int = 0
    scale_kind: str = "int"
    scale_lanes: int | None = None
    output_stage: bool = False
    output_rounding: str = "half_even"
    sparse: bool = False
    p_bits: int | None = None
    q_floor: int | None = None
    bucket_organisation: str | None = None
    log_output: bool = False
    multiplier: str = "logic"

    def __post_init__(self):
        _check_int("rows", self.rows, 1, _MAX_DIM)
        _check_int("cols", self.cols, 1, _MAX_DIM)
        if not isinstance(self.lanes, int) or isinstance(self.lanes, bool) or self.lanes not in _LANES:
            raise ConfigError(f"config key 'lanes': {self.lanes!r} is not allowed; allowed: "
                              f"{', '.join(map(str, _LANES))}")
        modes = self.modes
        if isinstance(modes, list):
            modes = tuple(modes)
            object.__setattr__(self, "modes", modes)
        allowed = f"a non-empty subset of {', '.join(ELEMENT_FORMATS)}, or one of {', '.join(LOG_FORMATS)}"
        if (not isinstance(modes, tuple) or not modes
                or not all(isinstance(m, str) for m in modes)):
            raise ConfigError(f"config key 'modes': {self.modes!r} is not a non-empty list of mode names; "
                              f"allowed: {allowed}")
        for m in modes:
            if m not in MODES:
                raise ConfigError(f"config key 'modes': {m!r} is not a mode; allowed: {allowed}")
        if len(set(modes)) != len(modes):
            raise ConfigError(f"config key 'modes': {list(modes)!r} names a mode twice; allowed: {allowed}")
        if any(m in LOG_FORMATS for m in modes) and len(modes) > 1:
            raise ConfigError(f"config key 'modes': {list(modes)!r} mixes a log mode with others; allowed: {allowed}")
        # Canonical order, so that equal configs compare equal.
        object.__setattr__(self, "modes", tuple(m for m in MODES if m in modes))
        kinds = ("log",) if self.lns else tuple(k for k in SCALE_KINDS if k != "log")
        if self.scale_kind not in kinds and (self.scale_bits or self.scale_kind not in SCALE_KINDS):
            raise ConfigError(f"config key 'scale_kind': {self.scale_kind!r} is not allowed with modes "
                              f"{list(self.modes)}; allowed: {', '.join(kinds)}")
        if self.lns and self.scale_kind == "int" and not self.scale_bits:
            object.__setattr__(self, "scale_kind", "log")  # the default, read as the LNS kind
        _check_int("scale_bits", self.scale_bits, 0, 4 if self.scale_kind == "pow2" else 8)
        if self.scale_lanes is not None:
            if not self.scale_bits:
                raise ConfigError(f"config key 'scale_lanes': {self.scale_lanes!r} needs scale units; "
                                  f"allowed: only with scale_bits > 0")
            allowed = [v for v in (1, 2, 4, 8, 16, 32, 64) if v <= self.lanes]
            if self.scale_lanes not in allowed or isinstance(self.scale_lanes, bool):
                raise ConfigError(f"config key 'scale_lanes': {self.scale_lanes!r} is not allowed; allowed: "
                                  f"{', '.join(map(str, allowed))} (powers of two dividing lanes = {self.lanes})")
        self._check_lns_keys()
        lo_k = 2 * self.min_elements_per_beat
        if (not isinstance(self.max_k, int) or isinstance(self.max_k, bool)
                or not lo_k <= self.max_k <= _MAX_K_LIMIT or self.max_k & (self.max_k - 1)):
            raise ConfigError(f"config key 'max_k': {self.max_k!r} is not allowed; allowed: a power of two "
                              f"from {lo_k} (two beats of {self.min_elements_per_beat} elements) to {_MAX_K_LIMIT}")
        if self.lns:
            try:
                self.log_sum
            except ValueError as e:
                raise ConfigError(f"config key 'max_k': {self.max_k!r} is not allowed; {e}") from None
        if self.exact_acc_format.bits > 64:
            hint = "lower max_k, scale_bits or p_bits, or set q_floor" if self.lns else "lower max_k or scale_bits"
            raise ConfigError(f"config key 'max_k': {self.max_k!r} needs {self.exact_acc_format.bits}-bit "
                              f"accumulators with these scales; allowed: at most 64 bits ({hint})")
        if self.acc_bits is not None and self.lns:
            raise ConfigError(f"config key 'acc_bits': {self.acc_bits!r} is not allowed with a log mode; allowed: "
                              f"unset (LNS accumulators are always exact)")
        if self.acc_bits is not None:
            _check_int("acc_bits", self.acc_bits, self.psum_format.bits, self.exact_acc_format.bits)
        _check_int("tree_levels_per_stage", self.tree_levels_per_stage, 1, 8)
        if not isinstance(self.output_stage, bool):
            raise ConfigError(f"config key 'output_stage': {self.output_stage!r} is not allowed; allowed: true, false")
        if not isinstance(self.sparse, bool):
            raise ConfigError(f"config key 'sparse': {self.sparse!r} is not allowed; allowed: true, false")
        if self.output_rounding not in ROUNDINGS:
            raise ConfigError(f"config key 'output_rounding': {self.output_rounding!r} is not allowed; allowed: "
                              f"{', '.join(ROUNDINGS)}")
        if not isinstance(self.multiplier, str) or self.multiplier not in MULTIPLIERS:
            raise ConfigError(f"config key 'multiplier': {self.multiplier!r} is not allowed; allowed: "
                              f"{', '.join(MULTIPLIERS)}")
        if "w4a8" in self.modes and self.sparse:
            raise ConfigError("config key 'sparse': True is not allowed with mode 'w4a8'; allowed: false (a W4A8 "
                              "beat already takes 2V activation lanes; 2:4 selection would need 4V)")
        if "w4a8" in self.modes and self.multiplier not in W4A8_MULTIPLIERS:
            raise ConfigError(f"config key 'multiplier': {self.multiplier!r} is not allowed with mode 'w4a8'; allowed: "
                              f"{', '.join(W4A8_MULTIPLIERS)} (an 18x18 multiplier cannot pack two INT4 x INT8 "
                              f"products without overlap)")
        if self.multiplier == "mult18_fip" and self.sparse:
            raise ConfigError("config key 'multiplier': 'mult18_fip' is not allowed with sparse = true; allowed: "
                              "logic, logic_pipelined, sb_mac16, mult18 (a sparse unit selects its own activations, so the "
                              "per-column Winograd correction cannot be shared)")
        if self.multiplier == "mult18_fip" and self.group_lanes < 2:
            raise ConfigError("config key 'multiplier': 'mult18_fip' is not allowed with scale_lanes = 1; allowed: "
                              "scale_lanes >= 2 (Winograd's terms pair the lanes of a scale group)")

    def _check_lns_keys(self):
        if not isinstance(self.log_output, bool):
            raise ConfigError(f"config key 'log_output': {self.log_output!r} is not allowed; allowed: true, false")
        lns_keys = {"p_bits": self.p_bits, "q_floor": self.q_floor, "bucket_organisation": self.bucket_organisation,
                    "log_output": self.log_output or None}
        if not self.lns:
            for key, value in lns_keys.items():
                if value is not None:
                    raise ConfigError(f"config key '{key}': {value!r} needs a log mode; allowed: only with "
                                      f"modes {' or '.join(repr([m]) for m in LOG_FORMATS)}")
            return
        if self.p_bits is not None:
            _check_int("p_bits", self.p_bits, 1, 48)
        if self.bucket_organisation is not None and self.bucket_organisation not in ORGANISATIONS:
            raise ConfigError(f"config key 'bucket_organisation': {self.bucket_organisation!r} is not allowed; "
                              f"allowed: {', '.join(ORGANISATIONS)}")
        if self.q_floor is not None:
            exact = LogSum(self.log_format, 1, 1, *self.log_scale_range)
            _check_int("q_floor", self.q_floor, exact.exact_q_min + 1, exact.q_max)
        if self.sparse:
            raise ConfigError("config key 'sparse': True is not allowed with a log mode; allowed: false "
                              "(2:4 selection is built for the INT modes)")
        if self.multiplier != "logic":
            raise ConfigError(f"config key 'multiplier': {self.multiplier!r} is not allowed with a log mode; allowed: "
                              f"logic (an LNS product is an exponent addition, no multiplier)")

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values):
        """Build from a mapping (e.g. parsed TOML); unknown keys are rejected by name."""
        if not isinstance(values, dict):
            raise ConfigError(f"config must be a table of keys, not {type(values).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                raise ConfigError(f"config key '{key}' is unknown; allowed keys: {', '.join(names)}")
        return cls(**values)

    def replace(self, **changes):
        """A variant of this config (checked like any other)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["modes"] = list(self.modes)
        for key in ("acc_bits", "scale_lanes"):
            if d[key] is None:
                del d[key]
        if not self.scale_bits:
            del d["scale_bits"], d["scale_kind"]
        if not self.output_stage:
            del d["output_stage"], d["output_rounding"]
        if not self.sparse:
            del d["sparse"]
        for key in ("p_bits", "q_floor", "bucket_organisation"):
            if d[key] is None:
                del d[key]
        if not self.log_output:
            del d["log_output"]
        if self.multiplier == "logic":
            del d["multiplier"]
        return d

    def to_toml(self):
        lines = []
        for key, value in self.to_dict().items():
            if isinstance(value, list):
                value = "[" + ", ".join(f'"{v}"' for v in value) + "]"
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, str):
                value = f'"{value}"'
            lines.append(f"{key} = {value}")
        return "\n".join(lines) + "\n"

    # -- derived quantities ----------------------------------------------------------------------

    @property
    def lns(self):
        """Whether the datapath is the log (LNS) one."""
        return self.modes[0] in LOG_FORMATS

    @property
    def log_format(self):
        """The :class:`LogFormat` of an LNS build, else ``None``."""
        return LOG_FORMATS[self.modes[0]] if self.lns else None

    @property
    def log_p_bits(self):
        return DEFAULT_P_BITS if self.p_bits is None else self.p_bits

    @property
    def log_organisation(self):
        return "tree" if self.bucket_organisation is None else self.bucket_organisation

    @property
    def log_scale_range(self):
        """Range of ``sw + sa`` (two signed S-bit fields) of an LNS build with scales, else ``(0, 0)``."""
        if not self.scale_bits:
            return 0, 0
        lo, hi = self.scale_format.field_range
        return 2 * lo, 2 * hi

    @property
    def log_sum(self):
        """The :class:`LogSum` of an LNS build: the products of one unit over a ``max_k_beats`` tile."""
        if not self.lns:
            return None
        return LogSum(self.log_format, self.elements_per_beat(self.modes[0]), self.max_k_beats,
                      *self.log_scale_range, q_floor=self.q_floor, p_bits=self.log_p_bits)

    @property
    def dual(self):
        """Whether lanes are dual-mode (INT8 and INT4 selected at run time)."""
        return len(self.modes) > 1

    def elements_per_beat(self, mode):
        """Elements of one operand vector consumed per cycle in ``mode``."""
        return self.lanes * per_lane(mode)

    @property
    def activation_lanes(self):
        """Byte lanes of one activation vector per beat: ``2V`` in sparse builds and with ``"w4a8"`` (a weight
        lane's two INT8 activations at bytes ``2i``, ``2i + 1``; INT8 and INT4 tiles then use the even bytes),
        else V."""
        if self.sparse:
            return 2 * self.lanes
        return self.lanes * max((ELEMENT_FORMATS[m].activation_lanes for m in self.modes if m in ELEMENT_FORMATS), default=1)

    @property
    def ctrl_mode_bits(self):
        """Width of ``ctrl.mode``: 2, or 3 with ``"w4a8"`` (code 4)."""
        return max(2, max(MODE_CODES[m] for m in self.modes).bit_length())

    @property
    def min_elements_per_beat(self):
        return min(self.elements_per_beat(m) for m in self.modes)

    def macs_per_cycle(self, mode, sparse=False):
        """Dense-equivalent MACs per cycle (a sparse beat covers twice the dense positions)."""
        return self.rows * self.cols * self.elements_per_beat(mode) * (2 if sparse else 1)

    @property
    def max_k_beats(self):
        """Largest tile length in beats; the ``k_beats_m1`` register holds ``k_beats - 1``."""
        return self.max_k // self.min_elements_per_beat

    @property
    def k_bits(self):
        return int(math.log2(self.max_k_beats))

    @property
    def lane_range(self):
        """Exact range of one lane's output (a product, or the sum of a lane's INT4 products)."""
        return lane_range(self.modes)

    @property
    def lane_format(self):
        return IntFormat.for_range(*self.lane_range)

    @property
    def scale_format(self):
        """The per-vector scale field, or ``None`` without scale units."""
        return ScaleFormat(self.scale_bits, self.scale_kind) if self.scale_bits else None

    @property
    def group_lanes(self):
        """Lanes summed before scaling: ``scale_lanes`` (default ``min(lanes, 8)``), or all lanes
        without scale units."""
        if not self.scale_bits:
            return self.lanes
        return self.scale_lanes if self.scale_lanes is not None else min(self.lanes, 8)

    @property
    def scale_groups(self):
        """Scale fields per vector per beat (1 without scale units)."""
        return self.lanes // self.group_lanes

    def group_elements(self, mode):
        """Elements covered by one scale field in ``mode``."""
        return self.group_lanes * per_lane(mode)

    @property
    def group_format(self):
        """Exact format of one group's (unscaled) partial sum."""
        lo, hi = self.lane_range
        return IntFormat.for_range(self.group_lanes * lo, self.group_lanes * hi)

    @property
    def _beat_range(self):
        lo, hi = self.lane_range
        factor = self.scale_format.max_product if self.scale_bits else 1
        return self.lanes * lo * factor, self.lanes * hi * factor

    @property
    def psum_format(self):
        """Exact format of one unit's per-beat partial sum (V lanes, scaled)."""
        return IntFormat.for_range(*self._beat_range)

    @property
    def exact_acc_format(self):
        """Accumulator format that holds any tile the ``k_beats_m1`` register can describe (for LNS, the
        combined result of a tile: :attr:`LogSum.result_format`)."""
        if self.lns:
            return self.log_sum.result_format
        lo, hi = self._beat_range
        return IntFormat.for_range(self.max_k_beats * lo, self.max_k_beats * hi)

    @property
    def acc_format(self):
        return self.exact_acc_format if self.acc_bits is None else IntFormat(self.acc_bits)

    @property
    def saturating(self):
        """Whether accumulators saturate (``acc_bits`` narrower than exact)."""
        return self.acc_format.bits < self.exact_acc_format.bits

    @property
    def tree_levels(self):
        """Adder-tree levels of each dot-product unit (one per scale group)."""
        return int(math.log2(self.group_lanes))

    @property
    def bucket_format(self):
        """LNS: format of each fraction-bucket accumulator (:attr:`LogSum.acc_format`), else ``None``."""
        return self.log_sum.acc_format if self.lns else None

    @property
    def dot_latency(self):
        """Cycles from operands to a unit's registered partial sum: product register + tree stages, + the
        ``multiplier``'s lane stages, + 1 for the scale unit when built; 2 for LNS (:class:`LogDotProduct`)."""
        if self.lns:
            return 2
        return (1 + MULTIPLIERS[self.multiplier] + math.ceil(self.tree_levels / self.tree_levels_per_stage)
                + (1 if self.scale_bits else 0))


PRESETS = {
    "tiny": CoreConfig(rows=2, cols=2, lanes=4, modes=("int8", "int4"), max_k=1024),
    "default": CoreConfig(),
    "int8": CoreConfig(rows=8, cols=8, lanes=16, modes=("int8",)),
    "int4-wide": CoreConfig(rows=4, cols=8, lanes=32, modes=("int4",)),
    "vsq": CoreConfig(scale_bits=8),
    "tiny-out": CoreConfig(rows=2, cols=2, lanes=4, modes=("int8", "int4"), max_k=1024, output_stage=True),
    "tiny-sparse": CoreConfig(rows=2, cols=2, lanes=4, modes=("int8", "int4"), max_k=1024, sparse=True),
    "tiny-vsq": CoreConfig(rows=2, cols=2, lanes=8, modes=("int8", "int4"), max_k=1024, scale_bits=8,
                           scale_lanes=4),
    "tiny-w4a8": CoreConfig(rows=2, cols=2, lanes=4, modes=("int8", "int4", "w4a8"), max_k=1024),
    "lns8": CoreConfig(modes=("lns8",)),
    "tiny-lns8": CoreConfig(rows=2, cols=2, lanes=4, modes=("lns8",), max_k=1024),
    "tiny-lns4-vsq": CoreConfig(rows=2, cols=2, lanes=8, modes=("lns4",), max_k=1024, scale_bits=4,
                                scale_kind="log", scale_lanes=4),
}


def preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"preset {name!r} is unknown; allowed: {', '.join(PRESETS)}") from None


def load_config(path):
    """Read a TOML config file."""
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    try:
        return CoreConfig.from_dict(values)
    except TypeError as e:  # pragma: no cover - from_dict checks keys first
        raise ConfigError(str(e)) from None
