"""CoreConfig: every bad value is one line naming the key, the value and what is allowed."""
import re

import pytest
from amaranth.hdl import signed
from amaranth.lib import data

from qmac.hw.spec.config import PRESETS, ConfigError, CoreConfig, load_config, preset
from qmac.hw.spec.log_format import LogFormat


@pytest.mark.parametrize("changes,message", [
    ({"rows": 0}, "config key 'rows': 0 is out of range; allowed: integers 1..32"),
    ({"cols": 33}, "config key 'cols': 33 is out of range; allowed: integers 1..32"),
    ({"rows": "8"}, "config key 'rows': '8' is not an integer; allowed: integers 1..32"),
    ({"rows": True}, "config key 'rows': True is not an integer; allowed: integers 1..32"),
    ({"lanes": 12}, "config key 'lanes': 12 is not allowed; allowed: 4, 8, 16, 32, 64"),
    ({"modes": []}, "config key 'modes': () is not a non-empty list of mode names; allowed: a non-empty subset of int8, int4, w4a8, or one of lns8, lns4"),
    ({"modes": ["int2"]}, "config key 'modes': 'int2' is not a mode; allowed: a non-empty subset of int8, int4, w4a8, or one of lns8, lns4"),
    ({"modes": ["int8", "int8"]}, "config key 'modes': ['int8', 'int8'] names a mode twice; allowed: a non-empty subset of int8, int4, w4a8, or one of lns8, lns4"),
    ({"max_k": 1000}, "config key 'max_k': 1000 is not allowed; allowed: a power of two from 32 (two beats of 16 elements) to 16777216"),
    ({"max_k": 16}, "config key 'max_k': 16 is not allowed; allowed: a power of two from 32 (two beats of 16 elements) to 16777216"),
    ({"acc_bits": 19}, "config key 'acc_bits': 19 is out of range; allowed: integers 20..32"),
    ({"acc_bits": 40}, "config key 'acc_bits': 40 is out of range; allowed: integers 20..32"),
    ({"tree_levels_per_stage": 0}, "config key 'tree_levels_per_stage': 0 is out of range; allowed: integers 1..8"),
    ({"shadow_banks": 3}, "config key 'shadow_banks': 3 is out of range; allowed: integers 1..2"),
    ({"shadow_banks": 0}, "config key 'shadow_banks': 0 is out of range; allowed: integers 1..2"),
])
def test_bad_values(changes, message):
    with pytest.raises(ConfigError) as e:
        CoreConfig(**changes)
    assert str(e.value) == message
    assert "\n" not in str(e.value)


def test_unknown_key_and_toml(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('rows = 4\ncolumns = 4\n')
    with pytest.raises(ConfigError, match=r"^config key 'columns' is unknown; allowed keys: rows, cols, lanes, "
                                          r"modes, max_k, acc_bits, tree_levels_per_stage, scale_bits, scale_kind, "
                                          r"scale_lanes, output_stage, output_rounding, sparse, frac_bits, p_bits, q_floor, "
                                          r"bucket_organisation, bucket_fraction_bits, mantissa_bits, window_bits, log_output, "
                                          r"multiplier, shadow_banks$"):
        load_config(f)
    f.write_text('rows = [4\n')
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        load_config(f)
    f.write_text('rows = 4\ncols = 2\nlanes = 8\nmodes = ["int4"]\nmax_k = 256\n')
    assert load_config(f) == CoreConfig(rows=4, cols=2, lanes=8, modes=("int4",), max_k=256)
    with pytest.raises(ConfigError, match=r"^preset 'huge' is unknown; allowed: tiny, default, int8, int4-wide, vsq, tiny-out, tiny-sparse, tiny-vsq, tiny-w4a8, lns8, tiny-lns8, tiny-lns4-vsq$"):
        preset("huge")


def test_toml_round_trip(tmp_path):
    hybrid = PRESETS["tiny-lns8"].replace(bucket_fraction_bits=0, mantissa_bits=6)
    f4 = hybrid.replace(frac_bits=4, scale_bits=6, scale_kind="log", q_floor=-4)
    for cfg in list(PRESETS.values()) + [PRESETS["tiny"].replace(acc_bits=20), hybrid, f4, f4.replace(window_bits=12),
                                         PRESETS["tiny"].replace(shadow_banks=2)]:
        f = tmp_path / "c.toml"
        f.write_text(cfg.to_toml())
        assert load_config(f) == cfg


def test_derived_widths_by_hand():
    d = PRESETS["default"]  # 8x8, V=16, INT8+INT4, max_k 65536
    assert d.max_k_beats == 4096 and d.k_bits == 12
    # per beat: 16 lanes * 128*128 = 2**18 at most -> 20 bits signed; exact: 4096 beats -> 2**30 -> 32 bits
    assert d.psum_format.bits == 20
    assert d.exact_acc_format.bits == 32
    assert not d.saturating and d.replace(acc_bits=24).saturating
    assert d.macs_per_cycle("int8") == 1024 and d.macs_per_cycle("int4") == 2048
    w = PRESETS["int4-wide"]  # INT4 only: 2 elements per lane, per lane at most 2*64
    assert w.elements_per_beat("int4") == 64 and w.lane_range == (-112, 128)
    assert w.dot_latency == 1 + 3  # log2(32) = 5 levels, 2 per stage


def test_streaming_tile_beats_by_hand():
    """One bank: dot_latency + rows + 1. Two: a tile may land while one drains, but rows leave one per cycle."""
    d = PRESETS["default"]   # dot_latency 3, 8 rows
    assert d.dot_latency == 3 and d.streaming_tile_beats == 12
    assert "shadow_banks" not in d.to_dict()
    two = d.replace(shadow_banks=2)
    assert two.streaming_tile_beats == 8 and two.to_dict()["shadow_banks"] == 2   # max(8, ceil(12 / 2))
    assert two.replace(rows=2).streaming_tile_beats == 3                            # max(2, ceil(6 / 2))
    assert two.replace(rows=5).streaming_tile_beats == 5                            # max(5, ceil(9 / 2))


def test_modes_are_canonical():
    assert CoreConfig(modes=("int4", "int8")) == CoreConfig(modes=("int8", "int4"))


def test_multiplier():
    assert CoreConfig().multiplier == "logic" and "multiplier" not in CoreConfig().to_dict()
    dsp = CoreConfig(multiplier="mult18")
    assert dsp.to_dict()["multiplier"] == "mult18" and 'multiplier = "mult18"' in dsp.to_toml()
    # registers: the packed operands twice (the second the MULT18X18D's own), the product three times
    assert dsp.dot_latency == CoreConfig().dot_latency + 5
    assert CoreConfig(multiplier="sb_mac16").dot_latency == CoreConfig().dot_latency
    # Winograd pair terms: a local copy of the operands, the same five stages, and the correction
    # subtraction replaces one tree level
    assert CoreConfig(multiplier="mult18_fip").dot_latency == dsp.dot_latency + 1
    for bad in ("dsp", "", 18, None):
        with pytest.raises(ConfigError, match=rf"^config key 'multiplier': {bad!r} is not allowed; "
                                              r"allowed: logic, logic_pipelined, sb_mac16, mult18, mult18_fip$"):
            CoreConfig(multiplier=bad)


@pytest.mark.parametrize("changes, message", [
    ({"modes": ("lns8", "int8")}, "config key 'modes': ['lns8', 'int8'] mixes a log mode with others; allowed: "
                                  "a non-empty subset of int8, int4, w4a8, or one of lns8, lns4"),
    ({"q_floor": 3}, "config key 'q_floor': 3 needs a log mode; allowed: only with modes ['lns8'] or ['lns4']"),
    ({"modes": ("lns8",), "q_floor": -16}, "config key 'q_floor': -16 is out of range; allowed: integers -15..15"),
    ({"modes": ("lns8",), "p_bits": 0}, "config key 'p_bits': 0 is out of range; allowed: integers 1..48"),
    ({"bucket_fraction_bits": 1}, "config key 'bucket_fraction_bits': 1 needs a log mode; allowed: only with modes "
                                  "['lns8'] or ['lns4']"),
    ({"modes": ("lns4",), "bucket_fraction_bits": 3},
     "config key 'bucket_fraction_bits': 3 is out of range; allowed: integers 0..2"),
    ({"frac_bits": 4}, "config key 'frac_bits': 4 needs a log mode; allowed: only with modes ['lns8'] or ['lns4']"),
    ({"modes": ("lns8",), "frac_bits": 7}, "config key 'frac_bits': 7 is out of range; allowed: integers 0..6"),
    ({"modes": ("lns4",), "frac_bits": 3}, "config key 'frac_bits': 3 is out of range; allowed: integers 0..2"),
    ({"modes": ("lns8",), "frac_bits": 4.0}, "config key 'frac_bits': 4.0 is not an integer; allowed: integers 0..6"),
    ({"modes": ("lns8",), "frac_bits": 4, "bucket_fraction_bits": 5},
     "config key 'bucket_fraction_bits': 5 is out of range; allowed: integers 0..4"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 1},
     "config key 'bucket_fraction_bits': 1 needs mantissa_bits; allowed: mantissa_bits 1..16 with it"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 0, "mantissa_bits": 17},
     "config key 'mantissa_bits': 17 is out of range; allowed: integers 1..16"),
    ({"modes": ("lns8",), "mantissa_bits": 4},
     "config key 'mantissa_bits': 4 needs a hybrid sum; allowed: only with bucket_fraction_bits 0..2"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 3, "mantissa_bits": 4},
     "config key 'mantissa_bits': 4 needs a hybrid sum; allowed: only with bucket_fraction_bits 0..2"),
    ({"window_bits": 12}, "config key 'window_bits': 12 needs a log mode; allowed: only with modes ['lns8'] or "
                          "['lns4']"),
    ({"modes": ("lns8",), "window_bits": 12},
     "config key 'window_bits': 12 needs one hybrid bucket; allowed: only with bucket_fraction_bits = 0 "
     "(and F = 3 > 0)"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 1, "mantissa_bits": 4, "window_bits": 12},
     "config key 'window_bits': 12 needs one hybrid bucket; allowed: only with bucket_fraction_bits = 0 "
     "(and F = 3 > 0)"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 0, "mantissa_bits": 8, "window_bits": 8},
     "config key 'window_bits': 8 is out of range; allowed: integers 9..21"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 0, "mantissa_bits": 8, "window_bits": 22},   # g = 13 > P = 12
     "config key 'window_bits': 22 is out of range; allowed: integers 9..21"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 0, "mantissa_bits": 8, "p_bits": 30, "window_bits": 33},
     "config key 'window_bits': 33 is out of range; allowed: integers 9..32"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 0, "mantissa_bits": 8, "window_bits": 12.0},
     "config key 'window_bits': 12.0 is not an integer; allowed: integers 9..21"),
    ({"modes": ("lns8",), "bucket_fraction_bits": 2, "mantissa_bits": 4, "bucket_organisation": "count"},
     "config key 'bucket_organisation': 'count' is not allowed with bucket_fraction_bits = 2; allowed: tree"),
    ({"modes": ("lns8",), "bucket_organisation": "wallace"},
     "config key 'bucket_organisation': 'wallace' is not allowed; allowed: tree, count"),
    ({"modes": ("lns8",), "acc_bits": 40},
     "config key 'acc_bits': 40 is not allowed with a log mode; allowed: unset (LNS accumulators are always exact)"),
    ({"modes": ("lns8",), "scale_bits": 4}, "config key 'scale_kind': 'int' is not allowed with modes ['lns8']; "
                                            "allowed: log"),
    ({"scale_bits": 4, "scale_kind": "log"}, "config key 'scale_kind': 'log' is not allowed with modes "
                                             "['int8', 'int4']; allowed: int, pow2"),
    ({"modes": ("lns8",), "multiplier": "mult18"}, "config key 'multiplier': 'mult18' is not allowed with a log "
                                                   "mode; allowed: logic (an LNS product is an exponent addition, "
                                                   "no multiplier)"),
    ({"sparse": True, "multiplier": "mult18_fip"},
     "config key 'multiplier': 'mult18_fip' is not allowed with sparse = true; allowed: logic, logic_pipelined, "
     "sb_mac16, mult18 (a "
     "sparse unit selects its own activations, so the per-column Winograd correction cannot be shared)"),
    ({"scale_bits": 4, "scale_lanes": 1, "multiplier": "mult18_fip"},
     "config key 'multiplier': 'mult18_fip' is not allowed with scale_lanes = 1; allowed: scale_lanes >= 2 "
     "(Winograd's terms pair the lanes of a scale group)"),
    ({"log_output": True}, "config key 'log_output': True needs a log mode; allowed: only with modes ['lns8'] or "
                           "['lns4']"),
    ({"modes": ("lns8",), "log_output": 1}, "config key 'log_output': 1 is not allowed; allowed: true, false"),
    ({"modes": ("lns4",), "sparse": True}, "config key 'sparse': True is not allowed with a log mode; allowed: "
                                           "false (2:4 selection is built for the INT modes)"),
    # 4-bit log scales add +-16 steps of 2**(1/8) to the exponent range: 65 bits at max_k = 65536.
    ({"modes": ("lns8",), "scale_bits": 4, "scale_kind": "log"},
     "config key 'max_k': 65536 needs 65-bit accumulators with these scales; allowed: at most 64 bits (lower "
     "max_k, scale_bits or p_bits, or set q_floor)"),
])
def test_bad_lns_values(changes, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        CoreConfig(**changes)


def test_lns_widths_by_hand():
    c = PRESETS["tiny-lns8"]  # 2x2, V=4 LNS8 codes, max_k 1024 -> 256 beats
    s = c.log_sum
    # Exponents -63..63 in eighths: t in [-126, 126], q_min = floor(-126/8) = -16, t' <= 126 + 128 = 254 = 31*8 + 6.
    assert (s.q_min, s.offset_max, s.q_top) == (-16, 254, 31)
    # Bucket 0 can hold 4 * 256 products of 2**31 = 2**41: 43 bits signed. The result: 1024 * C_6 * 2**31 with
    # C_6 = round(2**12.75) = 6889 < 2**13, so below 2**54: 55 bits signed; its LSB weighs 2**(-16 - 12).
    assert s.constants[6] == 6889 and c.bucket_format.bits == 43 and c.acc_format.bits == 55
    assert s.result_exponent == -28 and c.dot_latency == 2 and not c.saturating
    assert c.elements_per_beat("lns8") == 4 and PRESETS["tiny-lns4-vsq"].elements_per_beat("lns4") == 16
    assert c.replace(q_floor=0).log_sum.q_min == 0 and c.replace(q_floor=0).bucket_format.bits == 43 - 16
    # Hybrid, b = 1, Pm = 5: 2 buckets; bucket 0 (r = 0..3, all at q' = 31) reaches 1024 * M_3 * 2**31 with
    # M_3 = round(32 * 2**(3/8)) = round(41.498) = 41 < 2**6: 2**47 at most, 48 bits signed; results carry
    # 2**(-16 - 12 - 5).
    h = c.replace(bucket_fraction_bits=1, mantissa_bits=5)
    assert h.log_sum.mantissas[3] == 41 and h.bucket_format.bits == 48 and h.log_sum.result_exponent == -33
    assert h.log_sum.buckets == 2 and h.log_sum.constants == (4096, 5793)
    # LNS8 with F = 4 (frac_bits), 6-bit log scales in sixteenths, b = 0, Pm = 8, q_floor = -4: exponents
    # -63..63 in sixteenths and sw + sa in [-64, 62], so t <= 126 + 62 = 188 and t' <= 188 + 64 = 252 = 15*16 + 12.
    # One bucket; its largest term is M_l * 2**15 at l = 12: M_12 = round(2**(8 + 12/16)) = round(430.54) = 431,
    # and l = 15 (t' = 15 * 16 - 1 = 239, q' = 14) gives round(2**(8 + 15/16)) * 2**14 = 490 * 2**14, smaller.
    # A tile: 1024 products of 431 * 2**15 < 2**34: 35 bits signed. Results: C_0 = 2**12, so 47 bits, 2**(-4-12-8).
    f = c.replace(frac_bits=4, scale_bits=6, scale_kind="log", bucket_fraction_bits=0, mantissa_bits=8, q_floor=-4)
    assert f.log_format == LogFormat(8, 4) and f.log_sum.offset_max == 252 and f.log_sum.mantissas[12] == 431
    assert f.bucket_format.bits == 35 and f.acc_format.bits == 47 and f.log_sum.result_exponent == -24
    assert f.to_dict()["frac_bits"] == 4 and "frac_bits" not in c.to_dict()
    # The same with a 12-bit window (g = 12 - 8 - 1 = 3 guard bits): a beat of 4 terms of at most
    # M_15 * 2**3 = 490 * 8 = 3920 is below 2**14 (15 bits signed); 256 beats below 256 * 15680 < 2**22
    # (23-bit mantissa), whatever the exponent range; exponents 0..15 (4 bits). Results: 2**22 * 2**15 *
    # 2**(12 - 3) = 2**46, so 47 bits as the exact unit's, of the same weight 2**-24.
    fw = f.replace(window_bits=12)
    assert fw.log_sum.sum_format.bits == 15 and fw.bucket_format.bits == 23 and fw.log_sum.anchor_bits == 4
    assert fw.acc_format.bits == 47 and fw.log_sum.result_exponent == -24
    assert fw.datapath.accumulator_shape == data.StructLayout({"mantissa": signed(23), "exponent": 4})
    assert fw.to_dict()["window_bits"] == 12 and "window_bits" not in f.to_dict()
    assert fw.datapath.manifest()["lns"]["window_bits"] == 12 and "window_bits" not in f.datapath.manifest()["lns"]


@pytest.mark.parametrize("changes,message", [
    ({"scale_bits": 8, "scale_lanes": 4.0},
     "config key 'scale_lanes': 4.0 is not allowed; allowed: 1, 2, 4, 8, 16 (powers of two dividing lanes = 16)"),
    ({"scale_bits": 8, "scale_lanes": True},
     "config key 'scale_lanes': True is not allowed; allowed: 1, 2, 4, 8, 16 (powers of two dividing lanes = 16)"),
    ({"lanes": 16.0}, "config key 'lanes': 16.0 is not allowed; allowed: 4, 8, 16, 32, 64"),
    ({"rows": 2.0}, "config key 'rows': 2.0 is not an integer; allowed: integers 1..32"),
    ({"max_k": 1024.0}, "config key 'max_k': 1024.0 is not allowed; allowed: a power of two from 32 (two beats of 16 "
                        "elements) to 16777216"),
    ({"scale_bits": 8.0}, "config key 'scale_bits': 8.0 is not an integer; allowed: integers 0..8"),
    ({"acc_bits": 30.0}, "config key 'acc_bits': 30.0 is not an integer; allowed: integers 20..32"),
    ({"tree_levels_per_stage": False}, "config key 'tree_levels_per_stage': False is not an integer; allowed: "
                                       "integers 1..8"),
    ({"modes": ("lns8",), "p_bits": 12.0}, "config key 'p_bits': 12.0 is not an integer; allowed: integers 1..48"),
    ({"sparse": 1}, "config key 'sparse': 1 is not allowed; allowed: true, false"),
    ({"output_stage": 0}, "config key 'output_stage': 0 is not allowed; allowed: true, false"),
])
def test_integer_keys_take_integers(changes, message):
    """4.0 == 4 in Python, so these passed before and failed only in elaboration."""
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        CoreConfig(**changes)


@pytest.mark.parametrize("content,message", [
    (b"rows = 4\nlanes = \xff\n", "is not UTF-8 text: byte 0xff at offset 17"),
    (b"rows = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nests arrays or tables too deeply; allowed: at most 8 levels"),
    (b"rows = " + b"[" * 20 + b"]" * 20 + b"\n", "nests arrays or tables too deeply; allowed: at most 8 levels"),
    (b"rows = " + b"9" * 5000 + b"\n", "holds an integer of thousands of digits; allowed: integers of at most 64 "
                                      "bits"),
    (b"rows = " + b"9" * 100 + b"\n", "holds an integer of 333 bits in key 'rows'; allowed: integers of at most 64 bits"),
    (b"# " + b"x" * (1 << 20) + b"\nrows = 4\n", "is larger than 1048576 bytes; allowed: a config of a few keys"),
])
def test_load_config_rejects_hostile_files(tmp_path, content, message):
    """Each problem is one line naming the file; no traceback escapes (RecursionError, ValueError)."""
    f = tmp_path / "c.toml"
    f.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert str(e.value) == f"config file {str(f)!r} {message}"


def test_load_config_float_for_integer(tmp_path):
    f = tmp_path / "c.toml"
    f.write_bytes("\ufeffrows = 2\n".encode())   # UTF-8 with a byte-order mark, as some editors write it
    assert load_config(f) == CoreConfig(rows=2)
    f.write_text("rows = 2\nscale_bits = 8\nscale_lanes = 4.0\n")
    with pytest.raises(ConfigError, match=r"^config key 'scale_lanes': 4\.0 is not allowed; allowed: 1, 2, 4, 8, 16 "):
        load_config(f)


def test_w4a8_widths_and_checks_by_hand():
    cfg = PRESETS["tiny-w4a8"]   # 2x2, V=4, INT8+INT4+W4A8
    assert cfg.modes == ("int8", "int4", "w4a8") and cfg.ctrl_mode_bits == 3
    # W4A8: 2 weights per lane against 2 INT8 activations: 2V elements and 2V activation bytes per beat
    assert cfg.elements_per_beat("w4a8") == 8 and cfg.activation_lanes == 8
    assert cfg.macs_per_cycle("w4a8") == 2 * cfg.macs_per_cycle("int8")
    # a W4A8 lane: 2 * (-8 * 127) .. 2 * (-8 * -128); an INT8 lane still spans more
    only = CoreConfig(lanes=4, modes=("w4a8",), max_k=1024)
    assert only.lane_range == (-2032, 2048) and cfg.lane_range == (-16256, 16384)
    assert only.activation_lanes == 8 and only.ctrl_mode_bits == 3 and PRESETS["tiny"].ctrl_mode_bits == 2
    assert PRESETS["tiny"].activation_lanes == 4
    with pytest.raises(ConfigError, match=r"^config key 'sparse': True is not allowed with mode 'w4a8'; allowed: false"):
        cfg.replace(sparse=True)
    for multiplier in ("mult18", "mult18_fip"):
        with pytest.raises(ConfigError, match=rf"^config key 'multiplier': '{multiplier}' is not allowed with mode "
                                              r"'w4a8'; allowed: logic, logic_pipelined, sb_mac16 \(an 18x18"):
            cfg.replace(multiplier=multiplier)
    assert cfg.replace(multiplier="sb_mac16").dot_latency == cfg.dot_latency
