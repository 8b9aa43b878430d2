"""CoreConfig: every bad value is one line naming the key, the value and what is allowed."""

import pytest

from qmac.hw.config import PRESETS, ConfigError, CoreConfig, load_config, preset


@pytest.mark.parametrize("changes,message", [
    ({"rows": 0}, "config key 'rows': 0 is out of range; allowed: integers 1..32"),
    ({"cols": 33}, "config key 'cols': 33 is out of range; allowed: integers 1..32"),
    ({"rows": "8"}, "config key 'rows': '8' is not an integer; allowed: integers 1..32"),
    ({"rows": True}, "config key 'rows': True is not an integer; allowed: integers 1..32"),
    ({"lanes": 12}, "config key 'lanes': 12 is not allowed; allowed: 4, 8, 16, 32, 64"),
    ({"modes": []}, "config key 'modes': () is not a non-empty list of mode names; allowed: int8, int4"),
    ({"modes": ["int2"]}, "config key 'modes': 'int2' is not a mode; allowed: int8, int4"),
    ({"modes": ["int8", "int8"]}, "config key 'modes': ['int8', 'int8'] names a mode twice; allowed: each of int8, int4 at most once"),
    ({"max_k": 1000}, "config key 'max_k': 1000 is not allowed; allowed: a power of two from 32 (two beats of 16 elements) to 16777216"),
    ({"max_k": 16}, "config key 'max_k': 16 is not allowed; allowed: a power of two from 32 (two beats of 16 elements) to 16777216"),
    ({"acc_bits": 19}, "config key 'acc_bits': 19 is out of range; allowed: integers 20..32"),
    ({"acc_bits": 40}, "config key 'acc_bits': 40 is out of range; allowed: integers 20..32"),
    ({"tree_levels_per_stage": 0}, "config key 'tree_levels_per_stage': 0 is out of range; allowed: integers 1..8"),
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
                                          r"scale_lanes, output_stage, output_rounding, sparse$"):
        load_config(f)
    f.write_text('rows = [4\n')
    with pytest.raises(ConfigError, match=r"is not valid TOML"):
        load_config(f)
    f.write_text('rows = 4\ncols = 2\nlanes = 8\nmodes = ["int4"]\nmax_k = 256\n')
    assert load_config(f) == CoreConfig(rows=4, cols=2, lanes=8, modes=("int4",), max_k=256)
    with pytest.raises(ConfigError, match=r"^preset 'huge' is unknown; allowed: tiny, default, int8, int4-wide, vsq, tiny-out, tiny-sparse, tiny-vsq$"):
        preset("huge")


def test_toml_round_trip(tmp_path):
    for cfg in list(PRESETS.values()) + [PRESETS["tiny"].replace(acc_bits=20)]:
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


def test_modes_are_canonical():
    assert CoreConfig(modes=("int4", "int8")) == CoreConfig(modes=("int8", "int4"))
