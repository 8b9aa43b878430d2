"""The manifest (hw/array/emit.py ``manifest``) describes every stream payload well enough to drive the core
without reading Python: a packer that reads nothing but the JSON (written here, element by element) gives
the words the Python packer streams and reads the result rows the Python unpacker reads."""

import json

import numpy as np
import pytest

from qmac.hw.array.core import Core
from qmac.hw.array.emit import manifest
from qmac.hw.spec.config import mode_bits
from qmac.hw.spec.payload import payload_format
from qmac.hw.spec.requantize import PARAMS
from qmac.sim.gemm import expected_results, operand_beats, plan_gemm, random_operands, requant_rows
from qmac.sim.packing import unpack_result
from qmac.sim.sparse24 import compress
from test_tb import CONFIGS as CI_CONFIGS

#: INT dual, VSQ (int and log scales), sparse with scales, output stage, LNS with log_output.
CONFIGS = {name: CI_CONFIGS[name] for name in ("tiny-dual", "vsq-int-dual", "sparse-vsq-int4", "output-stage-dual",
                                               "lns4-vsq-count-floor", "lns8-3x2-v4-logout")}


def _manifest(cfg):
    return json.loads(json.dumps(manifest(cfg, Core(cfg))))


def _elements(field):
    """``(index tuple, bit offset)`` of every element of a manifest field."""
    for index in np.ndindex(*field["count"]):
        yield index, field["offset"] + sum(i * s for i, s in zip(index, field["stride"]))


def _pack(payload, values):
    word = 0
    for field in payload["fields"]:
        if field["name"] in values:
            v = np.asarray(values[field["name"]], dtype=object)
            for index, offset in _elements(field):
                word |= (int(v[index]) & ((1 << field["width"]) - 1)) << offset
    assert word < 1 << payload["width"]
    return word


def _unpack(payload, word):
    out = {}
    for field in payload["fields"]:
        width = field["width"]
        v = np.zeros(field["count"], dtype=object)
        for index, offset in _elements(field):
            raw = (word >> offset) & ((1 << width) - 1)
            v[index] = raw - (1 << width) if field["signed"] and raw >> (width - 1) else raw
        out[field["name"]] = v.tolist() if field["count"] else int(v[()])
    return out


def _lanes(codes, mode):
    """Codes -> 8-bit lanes, element ``e`` of a lane at bits ``[e*bits, +bits)``."""
    bits = mode_bits(mode)
    per = 8 // bits
    return [sum((int(c) & ((1 << bits) - 1)) << (e * bits) for e, c in enumerate(codes[j:j + per]))
            for j in range(0, len(codes), per)]


def _gemm(cfg, mode, sparse, rng):
    n, k, m = 2 * cfg.rows + 1, 3 * cfg.elements_per_beat(mode) * (2 if sparse else 1) - 4, cfg.cols + 1
    plan = plan_gemm(cfg, mode, (n, k), (k, m), sparse)
    W, A, w_scales, a_scales = random_operands(plan, rng)
    scales = {"w_scales": w_scales, "a_scales": a_scales} if cfg.scale_bits else {}
    return plan, W, A, scales


def _case_list():
    for name, cfg in CONFIGS.items():
        for mode in cfg.modes:
            yield pytest.param(name, mode, cfg.sparse, id=f"{name}-{mode}")


_CASES = list(_case_list())


@pytest.mark.parametrize("name,mode,sparse", _CASES)
def test_operand_words_from_manifest(name, mode, sparse):
    cfg = CONFIGS[name]
    man = _manifest(cfg)
    assert {p: man["payloads"][p]["width"] for p in man["payloads"]} == \
        {p["name"][:-len("__payload")]: p["width"] for p in man["ports"] if p["name"].endswith("__payload")}
    plan, W, A, scales = _gemm(cfg, mode, sparse, np.random.default_rng(len(name)))
    R, C, E, G = cfg.rows, cfg.cols, plan.elements_per_beat, cfg.scale_groups
    Wp = np.zeros((plan.row_tiles * R, plan.k_padded), dtype=np.int64)
    Wp[:plan.n, :plan.k] = W
    Ap = np.zeros((plan.k_padded, plan.col_tiles * C), dtype=np.int64)
    Ap[:plan.k, :plan.m] = A
    meta = None
    if sparse:
        sp = compress(Wp)
        Wp, meta = sp.values, sp.indices
    Ew = Wp.shape[1] // plan.k_beats
    sw = sa = None
    if scales:
        neutral = 1 if cfg.scale_format.kind == "int" else 0
        sw = np.full((plan.row_tiles * R, plan.k_groups), neutral)
        sw[:plan.n, :scales["w_scales"].shape[1]] = scales["w_scales"]
        sa = np.full((plan.k_groups, plan.col_tiles * C), neutral)
        sa[:scales["a_scales"].shape[0], :plan.m] = scales["a_scales"]
    w_expected, a_expected = [], []
    for i in range(plan.row_tiles):
        for j in range(plan.col_tiles):
            for b in range(plan.k_beats):
                w = {"data": [_lanes(Wp[i * R + r, b * Ew:(b + 1) * Ew], mode) for r in range(R)]}
                a = {"data": [_lanes(Ap[b * E:(b + 1) * E, j * C + c], mode) for c in range(C)]}
                if meta is not None:
                    w["meta"] = [list(meta[i * R + r, b * Ew:(b + 1) * Ew]) + [0] * (2 * cfg.lanes - Ew)
                                 for r in range(R)]
                if sw is not None:
                    w["scale"] = [sw[i * R + r, b * G:(b + 1) * G] for r in range(R)]
                    a["scale"] = [sa[b * G:(b + 1) * G, j * C + c] for c in range(C)]
                w_expected.append(_pack(man["payloads"]["w"], w))
                a_expected.append(_pack(man["payloads"]["a"], a))
    w_words, a_words = operand_beats(plan, W, A, **scales)
    assert w_words == w_expected
    assert a_words == a_expected


@pytest.mark.parametrize("name,mode,sparse", _CASES)
def test_result_rows_from_manifest(name, mode, sparse):
    cfg = CONFIGS[name]
    y = _manifest(cfg)["payloads"]["y"]
    rng = np.random.default_rng(7)
    plan, W, A, scales = _gemm(cfg, mode, False, rng)
    requant = None
    if cfg.output_stage:
        n = plan.n
        requant = {"multiplier": rng.integers(-(1 << 31), 1 << 31, n), "shift": rng.integers(0, 40, n),
                   "zero_point": rng.integers(-128, 128, n), "int4": rng.integers(0, 2, n),
                   "mode": rng.integers(0, 4, n)}
    rows = expected_results(plan, W, A, requant=requant, log_shift=-5, **scales)
    names = {f["name"] for f in y["fields"]}
    for row in rows:
        fields = {name: getattr(row, name) for name in names}
        word = _pack(y, fields)
        assert unpack_result(word, cfg) == row
        assert _unpack(y, word) == {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
    for word in [int(rng.integers(0, 1 << 62)) << 64 | int(rng.integers(0, 1 << 62)) for _ in range(20)]:
        word &= (1 << y["width"]) - 1
        got = unpack_result(word, cfg)
        assert _unpack(y, word) == {k: list(getattr(got, k)) if k in ("data", "log", "q") else getattr(got, k)
                                    for k in names}
    if cfg.output_stage:
        params = requant_rows(plan, requant)
        man = _manifest(cfg)["payloads"]["requant"]
        assert payload_format(PARAMS).pack_words(params) == \
            [_pack(man, {k: v[r] for k, v in params.items()}) for r in range(len(params["shift"]))]


def test_latency_facts():
    """The manifest states when tiles stream: ``dot_latency + rows + 1`` beats with one shadow bank; with two on
    the 2 x 2 tiny core, max(2, ceil(5 / 2)) = 3."""
    one = CI_CONFIGS["tiny-dual"]
    assert one.dot_latency == 2
    assert _manifest(one)["latency"] == {"dot_product": 2, "last_beat_to_first_row": 3, "streaming_tile_beats": 5}
    two = _manifest(one.replace(shadow_banks=2))
    assert two["latency"]["streaming_tile_beats"] == 3 and two["config"]["shadow_banks"] == 2
