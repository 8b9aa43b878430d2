"""The layout-driven payload packer (hw/spec/payload.py) against Amaranth's own ``Layout.const`` and
``Layout.from_bits``, by hand, and on its errors."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from qmac.hw.spec.config import PRESETS
from qmac.hw.spec.layouts import operand_layout, output_layout, result_layout
from qmac.hw.spec.link_protocol import INFO_LAYOUT, STATUS_LAYOUT
from qmac.hw.spec.payload import PayloadField, PayloadFormat, payload_format
from qmac.hw.spec.requantize import PARAMS
from test_tb import CONFIGS

RNG = np.random.default_rng(13)

LAYOUTS = {"params": PARAMS, "info": INFO_LAYOUT, "status": STATUS_LAYOUT,
           "wide": data.StructLayout({"u": 1, "s64": signed(64), "u64": unsigned(64),
                                      "s48": data.ArrayLayout(signed(48), 2), "s33": data.ArrayLayout(signed(33), 3),
                                      "s16": data.ArrayLayout(signed(16), 3), "empty": 0})}
for _name, _cfg in CONFIGS.items():
    LAYOUTS[f"{_name}-w"] = operand_layout(_cfg, _cfg.rows)
    LAYOUTS[f"{_name}-a"] = operand_layout(_cfg, _cfg.cols, activations=True)
    LAYOUTS[f"{_name}-y"] = output_layout(_cfg) if _cfg.output_stage else result_layout(_cfg)


def _random_values(fmt, batch=()):
    """Random values of every field, the extremes of each field's range included."""
    out = {}
    for f in fmt.fields:
        lo, hi = f.range
        v = RNG.integers(lo, hi, batch + f.count, dtype=np.int64, endpoint=True) if hi < 1 << 63 else \
            RNG.integers(0, 1 << 63, batch + f.count, dtype=np.uint64) * 2 + RNG.integers(0, 2, batch + f.count,
                                                                                             dtype=np.uint64)
        v.flat[:2] = [lo, hi][:v.size]
        out[f.name] = v
    return out


def _nested(values):
    """Dotted field names -> the nested mapping ``Layout.const`` takes."""
    init = {}
    for name, v in values.items():
        *path, leaf = name.split(".")
        node = init
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = np.asarray(v).tolist()
    return init


def _read(const):
    """A ``Layout.from_bits`` constant -> nested dicts and lists of the ints its views return."""
    layout = data.Layout.cast(const.shape())
    if isinstance(layout, data.ArrayLayout):
        return [_read(e) if isinstance(e, data.Const) else e for e in (const[i] for i in range(layout.length))]
    return {name: _read(const[name]) if isinstance(const[name], data.Const) else const[name] for name, _ in layout}


@pytest.mark.parametrize("name", LAYOUTS)
def test_packs_like_layout_const(name):
    layout = LAYOUTS[name]
    fmt = payload_format(layout)
    for _ in range(3):
        values = _random_values(fmt)
        word = fmt.pack(values)
        assert word == layout.const(_nested(values)).as_bits()
        unpacked = fmt.unpack(word)
        assert _read(layout.from_bits(word)) == _nested({k: np.asarray(v) for k, v in unpacked.items()})
        assert {k: np.asarray(v).tolist() for k, v in unpacked.items()} == \
            {k: np.asarray(v).tolist() for k, v in values.items()}


@pytest.mark.parametrize("name", LAYOUTS)
def test_many_payloads_round_trip(name):
    fmt = payload_format(LAYOUTS[name])
    values = _random_values(fmt, (5, 3))
    words = fmt.pack_words(values)
    assert len(words) == 15
    assert words[4] == fmt.pack({k: v[1, 1] for k, v in values.items()})
    back = fmt.unpack_words(words)
    for f in fmt.fields:
        assert np.array_equal(back[f.name].reshape(values[f.name].shape), values[f.name]), f.name


def test_signed_array_elements_keep_their_sign():
    # The pitfall of ArrayLayout slices: [-8, 7, -1, 3] must sum to 1, not 33.
    fmt = payload_format(data.ArrayLayout(signed(4), 4))
    assert fmt.pack({"": [-8, 7, -1, 3]}) == 0x3F78
    assert fmt.unpack(0x3F78) == {"": (-8, 7, -1, 3)}
    assert sum(fmt.unpack(0x3F78)[""]) == 1


def test_fields_flatten_structs_and_arrays():
    layout = data.StructLayout({"a": 3, "b": data.ArrayLayout(data.StructLayout({"x": signed(5), "y": 2}), 3),
                                "c": data.ArrayLayout(data.ArrayLayout(unsigned(16), 2), 2)})
    assert payload_format(layout).fields == (
        PayloadField("a", 0, 3, False),
        PayloadField("b.x", 3, 5, True, (3,), (7,)),
        PayloadField("b.y", 8, 2, False, (3,), (7,)),
        PayloadField("c", 24, 16, False, (2, 2), (32, 16)))
    assert payload_format(layout).size == 88


def test_manifest_form_round_trips():
    fmt = payload_format(LAYOUTS["sparse-vsq-int4-w"])
    again = PayloadFormat.from_dict(fmt.to_dict())
    assert again.fields == fmt.fields and again.size == fmt.size


def test_errors():
    fmt = payload_format(PARAMS)
    with pytest.raises(ValueError, match=r"^field 'shift' holds 6 bits; -1 does not fit$"):
        fmt.pack({"shift": -1})
    with pytest.raises(ValueError, match=r"^field 'zero_point' holds 8 signed bits; 128 does not fit$"):
        fmt.pack({"zero_point": 128})
    with pytest.raises(ValueError, match=r"^no field 'scale'; fields: multiplier, shift, zero_point, int4, mode$"):
        fmt.pack({"scale": 1})
    with pytest.raises(TypeError, match=r"^field 'shift' takes integers, not float64 values$"):
        fmt.pack({"shift": 1.5})
    w = payload_format(operand_layout(PRESETS["tiny"], 2))
    with pytest.raises(ValueError, match=r"^field 'data' takes values of trailing shape \(2, 4\), not \(4, 2\)$"):
        w.pack_words({"data": np.zeros((4, 2), dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"^fields overlap at bit 3$"):
        PayloadFormat([PayloadField("a", 0, 4, False), PayloadField("b", 3, 2, False)], 8)
    with pytest.raises(ValueError, match=r"^field 'b' reaches bit 8, beyond the 8-bit payload$"):
        PayloadFormat([PayloadField("b", 4, 5, False)], 8)
    with pytest.raises(ValueError, match=r"^field 'x' is 65 bits wide; 0..64 are packable$"):
        PayloadField("x", 0, 65, False)
