"""WinogradPairProduct against its golden twin, one operand pair per cycle with results read ``latency`` cycles
later: its portable form in Amaranth's simulator and its MULT18X18D form (the Verilog an ECP5 build elaborates)
in Icarus Verilog. And, independent of any hardware, Winograd's identity between the twins of the pair term,
the correction and the dot product, on which the ``"mult18_fip"`` dot product rests."""

import numpy as np
import pytest

from qmac.hw.spec.config import ConfigError, mode_bits
from qmac.hw.lanes.winograd_pair_product import WinogradPairProduct
from qmac.sim.dot_product import dot_product
from qmac.sim.packing import pack_lanes
from qmac.sim.winograd_correction import winograd_correction
from qmac.sim.winograd_pair_product import winograd_pair_product

MODE_SETS = [("int8",), ("int4",), ("int8", "int4")]
#: Element values combined in every way: INT8 the ends of the range, their neighbours and the values around
#: zero; INT4 (whose every value each element pair takes in :func:`_every_int4_element_pair`) the ends and zero.
EXTREMES = {"int8": (-128, -127, -1, 0, 1, 126, 127), "int4": (-8, 0, 7)}
#: Beats per mode of the broad set the portable form runs in Amaranth's simulator (Icarus runs all of them).
PYSIM_SAMPLE = 2000


def _extremes(mode, lanes):
    """Lane bytes ``w``, ``a`` of shape ``(N, lanes)``: every combination of the mode's :data:`EXTREMES` in
    all the elements of both operands."""
    values = np.array(EXTREMES[mode])
    elements = lanes * (8 // mode_bits(mode))
    index = np.indices((len(values),) * 2 * elements).reshape(2 * elements, -1).T
    codes = values[index]
    return pack_lanes(codes[:, :elements], mode), pack_lanes(codes[:, elements:], mode)


def _every_int4_element_pair(rng, lanes):
    """INT4 lane bytes ``w``, ``a`` of shape ``(65536, lanes)``. Lane ``j`` of both operands holds element pair
    ``j`` (four nibbles), which runs through all 16**4 values: in order in lane 0, in a random order in the
    others."""
    orders = np.stack([np.arange(65536)] + [rng.permutation(65536) for _ in range(lanes - 1)], axis=-1)
    return (orders & 0xFF).astype(np.uint8), (orders >> 8).astype(np.uint8)


def _random(rng, n, lanes):
    return rng.integers(0, 256, (2, n, lanes)).astype(np.uint8)


def _stream(modes, rng, sample=None):
    """Beats ``w``, ``a`` (lane bytes, shape ``(N, 2)``) and ``int4`` (shape ``(N,)``) in a random order, so
    with both modes the mode changes at random from beat to beat. Per mode: every combination of the
    :data:`EXTREMES` in all the elements, and the broad set (INT8 32768 random lane pairs; INT4 every value
    of each element pair), or ``sample`` beats of it."""
    w, a, int4 = [], [], []
    for mode in modes:
        broad = _random(rng, 32768, 2) if mode == "int8" else _every_int4_element_pair(rng, 2)
        keep = rng.permutation(len(broad[0]))[:sample]
        for pw, pa in (_extremes(mode, 2), (broad[0][keep], broad[1][keep])):
            w.append(pw)
            a.append(pa)
            int4.append(np.full(len(pw), mode == "int4"))
    order = rng.permutation(sum(map(len, w)))
    return np.concatenate(w)[order], np.concatenate(a)[order], np.concatenate(int4)[order]


def _expected(w, a, int4):
    return np.where(int4, winograd_pair_product(w, a, "int4"), winograd_pair_product(w, a, "int8"))


def _words(lanes):
    """Lane bytes ``(N, 2)`` -> the ports' 16-bit values (lane 0 in the low byte)."""
    return lanes[:, 0].astype(np.int64) | lanes[:, 1].astype(np.int64) << 8


@pytest.mark.parametrize("modes", MODE_SETS)
def test_stream(modes, pysim_stream):
    w, a, int4 = _stream(modes, np.random.default_rng(1), PYSIM_SAMPLE)
    dut = WinogradPairProduct(modes)
    beats = [[(dut.w.as_value(), wv), (dut.a.as_value(), av)] + ([(dut.int4, int4v)] if len(modes) > 1 else [])
             for wv, av, int4v in zip(_words(w).tolist(), _words(a).tolist(), int4.tolist())]
    got = pysim_stream(dut, beats, dut.p)
    assert np.array_equal(got, _expected(w, a, int4))


@pytest.mark.parametrize("modes", MODE_SETS)
def test_stream_mult18x18d(modes, mult18x18d_bench):
    w, a, int4 = _stream(modes, np.random.default_rng(2))
    dut = WinogradPairProduct(modes)
    n, latency = len(w), dut.latency
    stim = "".join(f"{s:09x}\n" for s in (_words(w) | _words(a) << 16 | int4.astype(np.int64) << 32).tolist())
    bench = f"""
module bench;
  reg clk = 0;
  reg [35:0] stim [0:{n - 1}];
  reg [15:0] w, a;
  reg int4;
  wire signed [{dut.format.bits - 1}:0] p;
  integer t, f;
  dut pair(.clk(clk), .rst(1'b0), .w(w), .a(a), {".int4(int4), " if len(modes) > 1 else ""}.p(p));
  initial begin
    $readmemh("stim.hex", stim);
    f = $fopen("out.txt", "w");
    for (t = 0; t < {n + latency - 1}; t = t + 1) begin
      if (t < {n}) begin w = stim[t][15:0]; a = stim[t][31:16]; int4 = stim[t][32]; end
      #1 clk = 1; #1 clk = 0;
      if (t >= {latency - 1}) $fwrite(f, "%0d\\n", p);
    end
    $fclose(f); $finish;
  end
endmodule
"""
    got = mult18x18d_bench(dut, {"bench.v": bench, "stim.hex": stim})
    assert np.array_equal(got, _expected(w, a, int4))


def _check_identity(w, a, mode):
    """Lane bytes ``(N, V)``: the V/2 pair terms minus both corrections are the dot product."""
    pairs = w.shape[-1] // 2
    terms = winograd_pair_product(w.reshape(-1, pairs, 2), a.reshape(-1, pairs, 2), mode).sum(axis=-1)
    fip = terms - winograd_correction(a, mode) - winograd_correction(w, mode)
    assert np.array_equal(fip, dot_product(w, a, mode))


@pytest.mark.parametrize("lanes", [2, 16])
def test_identity_every_int4_element_pair(lanes):
    _check_identity(*_every_int4_element_pair(np.random.default_rng(lanes), lanes), "int4")


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_identity_extremes(mode):
    _check_identity(*_extremes(mode, 2), mode)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_identity_random(mode):
    _check_identity(*_random(np.random.default_rng(3), 100000, 16), mode)


def test_golden_twin_from_definition():
    # INT8 lanes w = (-128, 127), a = (-128, -128): (a0 + w1) * (a1 + w0) = -1 * -256.
    assert winograd_pair_product(np.array([0x80, 0x7F]), np.array([0x80, 0x80]), "int8") == 256
    # INT4, nibbles low first: lane 0 w = (-1, -8), a = (1, 7); lane 1 w = (7, -8), a = (-8, -8).
    w, a = np.array([0x8F, 0x87]), np.array([0x71, 0x88])
    assert winograd_pair_product(w, a, "int4") == (1 - 8) * (7 - 1) + (-8 - 8) * (-8 + 7)
    assert winograd_correction(w, "int4") == -1 * -8 + 7 * -8
    assert winograd_correction(a, "int8") == 113 * -120


def test_format_is_the_exact_range():
    for modes, bits, (lo, hi) in [(("int8",), 18, (-256 * 254, 256 * 256)), (("int4",), 11, (-448, 512))]:
        dut = WinogradPairProduct(modes)
        assert dut.format.bits == bits and dut.latency == 6   # the local copy, then Mult18's 5
        terms = winograd_pair_product(*_extremes(modes[0], 2), modes[0])
        assert (terms.min(), terms.max()) == (lo, hi)
    assert WinogradPairProduct(("int8", "int4")).format.bits == 18


def test_bad_modes():
    with pytest.raises(ConfigError, match="lane modes must be a non-empty tuple of distinct names from int8, int4"):
        WinogradPairProduct(("int2",))
