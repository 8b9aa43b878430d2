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

from qmac.hw.spec.checks import (GROUP_LANES, LANES, MAX_SCALE_BITS, ConfigError, check_key, check_key_bool,
                                 check_key_int, is_int)
from qmac.hw.spec.datapath import DATAPATHS, ORGANISATIONS, code_range, mode_format, operand_mode
from qmac.hw.spec.formats import ROUNDINGS, SCALE_KINDS, IntFormat, ScaleFormat, lane_range
from qmac.hw.spec.multipliers import MULTIPLIERS

__all__ = ["ConfigError", "CoreConfig", "PRESETS", "MODE_CODES", "MODES", "MULTIPLIERS", "ORGANISATIONS", "preset",
           "load_config", "mode_bits", "per_lane", "code_range", "operand_mode", "MAX_CONFIG_BYTES"]

#: Encoding of the ``ctrl.mode`` port.
MODE_CODES = {"int8": 0, "int4": 1, "lns8": 2, "lns4": 3, "w4a8": 4}
#: Every datapath mode, in canonical order: the integer modes, then the log (LNS) modes.
MODES = tuple(m for cls in DATAPATHS for m in cls.modes)
#: Largest config file :func:`load_config` reads.
MAX_CONFIG_BYTES = 1 << 20

_MAX_DIM = 32
_DEFAULT_SCALE_KIND = "int"
_MAX_K_LIMIT = 1 << 24


def mode_bits(mode):
    """Width of one code of ``mode``."""
    return mode_format(mode).bits


def per_lane(mode):
    """Elements of ``mode`` per 8-bit operand lane (element ``j`` at bits ``[j*bits, (j+1)*bits)``)."""
    return 8 // mode_bits(mode)


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
        (a :class:`~qmac.hw.spec.multipliers.Multiplier` with ``w4a8``). A log mode builds the LNS
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
    frac_bits : int or None
        LNS only: ``F``, fractional bits of the mode's log exponent, 0 to ``min(bits - 2, 8)``; ``None``
        (default) keeps the mode's own (LNS8: 3, LNS4: 2). The code keeps its width: LNS8 with
        ``frac_bits = 4`` steps by ``2**(1/16)`` over ``2**(±63/16)`` (7.9 octaves), with 3 integer bits, and
        log scales (``scale_kind = "log"``) count in the same units ``2**-F``. See docs/lns.md.
    p_bits : int or None
        LNS only: P, fractional bits of the combine constants ``C_r = round(2**(P + r/2**F))``, 1..48
        (default 12: the combine errs by at most ``2**-13`` of the sum of the product magnitudes).
    q_floor : int or None
        LNS only: products below ``2**q_floor`` are dropped (narrower buckets); ``None`` (default)
        keeps every product exactly. See :class:`qmac.hw.spec.log_sum.LogSum`.
    bucket_organisation : str or None
        LNS only: structure of the bucket adders, ``"tree"`` (default) or ``"count"``.
    bucket_fraction_bits : int or None
        LNS only: ``b``, the top fraction bits of a product's exponent that pick its bucket, 0..F;
        ``None`` (default) = F, every product exact in ``2**F`` buckets. Below F the hybrid scheme of
        :class:`qmac.hw.spec.log_sum.LogSum`: ``2**b`` buckets, the low ``F - b`` bits a mantissa.
    mantissa_bits : int or None
        LNS only, with ``bucket_fraction_bits < F`` (and only then): ``Pm``, 1..16, fractional bits of the
        hybrid mantissas ``round(2**(Pm + l/2**F))`` (each product errs by at most ``2**-(Pm+1)``).
    window_bits : int or None
        LNS only, with ``bucket_fraction_bits = 0`` (and only then): ``W``, ``mantissa_bits + 1`` to
        ``min(32, mantissa_bits + 1 + p_bits)``, the window each beat's products are aligned to (at the beat's
        largest product) and truncated in; the accumulator is then a block-floating (mantissa, exponent)
        pair whose width follows W and ``max_k``.
        ``None`` (default) sums exactly. See :class:`qmac.hw.spec.log_sum.LogSum` and docs/lns.md.
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
        activations, nor with ``scale_lanes`` 1). Results are identical; see :data:`MULTIPLIERS` (the
        registry of :class:`qmac.hw.spec.multipliers.Multiplier` classes) and docs/fpga.md.
    shadow_banks : int
        Result registers per unit that a finished tile waits in while its rows drain: 1 (default) or 2.
        With 2, a tile that finishes while the previous one still drains waits in the second bank and moves
        to the first (the one that drains) as the previous tile's last row leaves, so the array streams
        shorter tiles back to back (:attr:`streaming_tile_beats`) for one more accumulator-wide register
        (and saturation bit) per unit.

    Every integer key takes an integer (not ``4.0``, not a boolean), every boolean key ``true`` or ``false``.
    The datapath the modes select is :attr:`datapath` (:mod:`qmac.hw.spec.datapath`): it checks its own
    keys and derives the accumulator, the latency and the rest of its facts.
    """
    rows: int = 8
    cols: int = 8
    lanes: int = 16
    modes: tuple = ("int8", "int4")
    max_k: int = 65536
    acc_bits: int | None = None
    tree_levels_per_stage: int = 2
    scale_bits: int = 0
    scale_kind: str = _DEFAULT_SCALE_KIND
    scale_lanes: int | None = None
    output_stage: bool = False
    output_rounding: str = "half_even"
    sparse: bool = False
    frac_bits: int | None = None
    p_bits: int | None = None
    q_floor: int | None = None
    bucket_organisation: str | None = None
    bucket_fraction_bits: int | None = None
    mantissa_bits: int | None = None
    window_bits: int | None = None
    log_output: bool = False
    multiplier: str = "logic"
    shadow_banks: int = 1

    def __post_init__(self):
        check_key_int("rows", self.rows, 1, _MAX_DIM)
        check_key_int("cols", self.cols, 1, _MAX_DIM)
        check_key("lanes", self.lanes, is_int(self.lanes) and self.lanes in LANES, ", ".join(map(str, LANES)))
        modes = self.modes
        if isinstance(modes, list):
            modes = tuple(modes)
            object.__setattr__(self, "modes", modes)
        allowed = ", or ".join(cls.allowed_modes() for cls in DATAPATHS)
        check_key("modes", self.modes, isinstance(modes, tuple) and modes and all(isinstance(m, str) for m in modes),
                  allowed, "is not a non-empty list of mode names")
        for m in modes:
            check_key("modes", m, m in MODES, allowed, "is not a mode")
        check_key("modes", list(modes), len(set(modes)) == len(modes), allowed, "names a mode twice")
        families = {cls for cls in DATAPATHS for m in modes if m in cls.modes}
        lone = next((cls for cls in DATAPATHS if cls in families and not cls.mixable), None)
        if len(modes) > 1 and (lone or len(families) > 1):
            problem = f"mixes {lone.what} with others" if lone else "mixes modes of different datapaths"
            check_key("modes", list(modes), False, allowed, problem)
        # Canonical order, so that equal configs compare equal.
        object.__setattr__(self, "modes", tuple(m for m in MODES if m in modes))
        kinds = self.datapath.scale_kinds
        if self.scale_kind not in kinds and (self.scale_bits or self.scale_kind not in SCALE_KINDS):
            raise ConfigError(f"config key 'scale_kind': {self.scale_kind!r} is not allowed with modes "
                              f"{list(self.modes)}; allowed: {', '.join(kinds)}")
        if self.scale_kind == _DEFAULT_SCALE_KIND and not self.scale_bits:
            object.__setattr__(self, "scale_kind", kinds[0])  # the default, read as the datapath's kind
        check_key_int("scale_bits", self.scale_bits, 0, MAX_SCALE_BITS[self.scale_kind])
        if self.scale_lanes is not None:
            check_key("scale_lanes", self.scale_lanes, self.scale_bits, "only with scale_bits > 0", "needs scale units")
            allowed = [v for v in GROUP_LANES if v <= self.lanes]
            check_key("scale_lanes", self.scale_lanes, is_int(self.scale_lanes) and self.scale_lanes in allowed,
                      f"{', '.join(map(str, allowed))} (powers of two dividing lanes = {self.lanes})")
        check_key_bool("log_output", self.log_output)
        self.datapath.check_keys()
        lo_k = 2 * self.min_elements_per_beat
        check_key("max_k", self.max_k, is_int(self.max_k) and lo_k <= self.max_k <= _MAX_K_LIMIT
                  and not self.max_k & (self.max_k - 1),
                  f"a power of two from {lo_k} (two beats of {self.min_elements_per_beat} elements) to {_MAX_K_LIMIT}")
        self.datapath.check_size()
        check_key("max_k", self.max_k, self.exact_acc_format.bits <= 64,
                  f"at most 64 bits ({self.datapath.max_k_hint})",
                  f"needs {self.exact_acc_format.bits}-bit accumulators with these scales")
        if self.acc_bits is not None:
            exact_only = self.datapath.exact_only
            check_key("acc_bits", self.acc_bits, not exact_only, f"unset ({exact_only})",
                      f"is not allowed with {self.datapath.what}")
            check_key_int("acc_bits", self.acc_bits, self.psum_format.bits, self.exact_acc_format.bits)
        check_key_int("tree_levels_per_stage", self.tree_levels_per_stage, 1, 8)
        check_key_int("shadow_banks", self.shadow_banks, 1, 2)
        check_key_bool("output_stage", self.output_stage)
        check_key_bool("sparse", self.sparse)
        check_key("output_rounding", self.output_rounding, self.output_rounding in ROUNDINGS, ", ".join(ROUNDINGS))
        check_key("multiplier", self.multiplier, isinstance(self.multiplier, str) and self.multiplier in MULTIPLIERS,
                  ", ".join(MULTIPLIERS))
        mult = self.multiplier_class
        if self.sparse and not mult.sparse:
            check_key("multiplier", self.multiplier, False,
                      f"{', '.join(n for n, m in MULTIPLIERS.items() if m.sparse)} ({mult.not_sparse})",
                      "is not allowed with sparse = true")
        for mode in self.modes:
            reason = self.datapath.sparse_reason_of(mode)
            check_key("sparse", self.sparse, not (self.sparse and reason), f"false ({reason})",
                      f"is not allowed with mode {mode!r}")
        if "w4a8" in self.modes:
            check_key("multiplier", self.multiplier, mult.w4a8,
                      f"{', '.join(n for n, m in MULTIPLIERS.items() if m.w4a8)} ({mult.not_w4a8})",
                      "is not allowed with mode 'w4a8'")
        check_key("multiplier", self.multiplier, self.group_lanes >= mult.min_group_lanes,
                  f"scale_lanes >= {mult.min_group_lanes} ({mult.group_reason})",
                  f"is not allowed with scale_lanes = {self.group_lanes}")

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
        for key in ("frac_bits", "p_bits", "q_floor", "bucket_organisation", "bucket_fraction_bits", "mantissa_bits",
                    "window_bits"):
            if d[key] is None:
                del d[key]
        if not self.log_output:
            del d["log_output"]
        if self.multiplier == "logic":
            del d["multiplier"]
        if self.shadow_banks == 1:
            del d["shadow_banks"]
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
    def datapath(self):
        """The :class:`~qmac.hw.spec.datapath.Datapath` of the modes (:class:`IntDatapath` or
        :class:`LogDatapath`): every fact that depends on the kind of arithmetic."""
        return next(cls for cls in DATAPATHS if self.modes[0] in cls.modes)(self)

    @property
    def multiplier_class(self):
        """The :class:`~qmac.hw.spec.multipliers.Multiplier` class of ``multiplier``."""
        return MULTIPLIERS[self.multiplier]

    @property
    def log_format(self):
        """The :class:`LogFormat` of an LNS build (:attr:`LogDatapath.log_format`), else ``None``."""
        return getattr(self.datapath, "log_format", None)

    @property
    def log_sum(self):
        """The :class:`LogSum` of an LNS build (:attr:`LogDatapath.log_sum`), else ``None``."""
        return getattr(self.datapath, "log_sum", None)

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
        return self.datapath.activation_lanes

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
    def psum_format(self):
        """Exact format of one unit's per-beat partial sum (V lanes, scaled)."""
        return IntFormat.for_range(*self.datapath.beat_range)

    @property
    def exact_acc_format(self):
        """Accumulator format that holds any tile the ``k_beats_m1`` register can describe
        (:attr:`Datapath.exact_acc_format`; for LNS, the combined result of a tile)."""
        return self.datapath.exact_acc_format

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
        """LNS: format of each fraction-bucket accumulator (:attr:`LogDatapath.bucket_format`), else ``None``."""
        return getattr(self.datapath, "bucket_format", None)

    @property
    def dot_latency(self):
        """Cycles from operands to a unit's registered partial sum (:attr:`Datapath.dot_latency`)."""
        return self.datapath.dot_latency

    @property
    def streaming_tile_beats(self):
        """Shortest tile, in beats, that streams (with a ready result consumer): the array takes a beat every
        cycle and the rows drain as fast as tiles finish, so a GEMM of T such tiles of k beats is busy
        ``T*k + dot_latency + 1 + rows`` cycles. It is ``max(rows, ceil((dot_latency + rows + 1) / shadow_banks))``.

        A tile's last beat is taken only when, counting the tiles whose last beat is in the pipeline or
        whose results wait in a shadow bank, fewer than ``shadow_banks`` are left; each such tile counts
        for ``dot_latency + rows`` cycles after its last beat (in flight, then its ``rows`` rows draining).
        Draining takes ``rows`` cycles per tile through the one result port, whatever the banks. Shorter
        tiles wait at their last beat: ``dot_latency + rows + 1`` cycles per tile with one bank.
        """
        return max(self.rows, -(-(self.dot_latency + self.rows + 1) // self.shadow_banks))


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


def _deepest(value, depth=0):
    """Nesting depth of parsed TOML (tables and arrays), and the widest integer in it, in bits."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        found = [_deepest(v, depth + 1) for v in value]
        return max((d for d, _ in found), default=depth), max((b for _, b in found), default=0)
    return depth, value.bit_length() if is_int(value) else 0


#: Deepest nesting of tables and arrays a config file may have (a config is one table of scalars and lists).
_MAX_DEPTH = 8
#: Widest integer a config file may hold.
_MAX_INT_BITS = 64


def load_config(path):
    """Read a TOML config file: UTF-8, at most :data:`MAX_CONFIG_BYTES`, one table of keys.

    Every problem raises :class:`ConfigError` with one line: the file cannot be read, is too large, is not
    UTF-8, is not valid TOML, nests deeper than a config can, holds an integer wider than 64 bits, or has a
    bad key or value (:meth:`CoreConfig.from_dict`)."""
    where = f"config file {str(path)!r}"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{where} cannot be read: {e.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_CONFIG_BYTES} bytes; allowed: a config of a few keys")
    try:
        text = raw.decode("utf-8-sig")   # a leading byte-order mark is not part of the TOML
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where} is not UTF-8 text: byte {raw[e.start]:#04x} at offset {e.start}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where} is not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{where} nests arrays or tables too deeply; allowed: at most {_MAX_DEPTH} "
                          f"levels") from None
    except ValueError:   # tomllib's int() refuses integers past Python's digit limit (4300 digits)
        raise ConfigError(f"{where} holds an integer of thousands of digits; allowed: integers of at most "
                          f"{_MAX_INT_BITS} bits") from None
    try:
        depth, bits = _deepest(values)
    except RecursionError:
        depth, bits = _MAX_DEPTH + 1, 0
    if depth > _MAX_DEPTH:
        raise ConfigError(f"{where} nests arrays or tables too deeply; allowed: at most {_MAX_DEPTH} levels")
    if bits > _MAX_INT_BITS:
        key = next(k for k, v in values.items() if _deepest(v)[1] == bits)
        raise ConfigError(f"{where} holds an integer of {bits} bits in key {key!r}; allowed: integers of at "
                          f"most {_MAX_INT_BITS} bits")
    return CoreConfig.from_dict(values)
