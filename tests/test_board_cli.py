"""``qmac bitstream`` and ``qmac run`` (qmac/cli/bitstream.py, qmac/cli/run.py): arguments, errors, the summary."""

import pytest

from qmac.cli import main as qmac
from qmac.cli.bitstream import _print_summary


@pytest.mark.parametrize("argv,message", [
    (["bitstream", "--board", "icebreaker", "--config", "x.toml", "--preset", "tiny"],
     "--preset: 'tiny': allowed: --config or --preset, not both"),
    (["bitstream", "--board", "icebreaker", "--clock", "5"], "--clock: 5.0: iCE40 PLL output must be 16 to 275 MHz, "
                                                             "not 5.0"),
    (["bitstream", "--board", "ulx3s-85f", "--baud", "30000000"], "--baud: 30000000: baud rate 30000000 is not "
                                                                  "reachable"),
    (["bitstream", "--board", "icebreaker", "--baud", "0"], "--baud: '0': allowed: integers 1..1000000000"),
    (["bitstream", "--board", "icebreaker", "--preset", "huge"], "--preset: 'huge': allowed: tiny, default"),
    (["run", "--port", "/dev/null", "--weights", "W.npy"], "--weights: 'W.npy': allowed: both --weights and "
                                                           "--activations, or neither"),
    (["run", "--port", "p", "--shape", "4", "0", "4"], "--shape: '0': allowed: integers 1..16384"),
])
def test_bad_arguments_exit_2(capsys, argv, message):
    assert qmac(argv) == 2
    assert capsys.readouterr().err.startswith(f"qmac: error: {message}")


def test_run_without_a_port_exits_1(capsys, tmp_path):
    assert qmac(["run", "--port", str(tmp_path / "ttyNONE")]) == 1
    assert capsys.readouterr().err.startswith(f"qmac: error: cannot open {tmp_path / 'ttyNONE'}")


def test_summary_text(capsys):
    _print_summary({
        "board": "icebreaker", "device": "iCE40UP5K", "config": {"rows": 2, "cols": 2, "lanes": 4, "modes": ["int4"]},
        "macs_per_cycle": {"int4": 32}, "requested_mhz": 30.0, "clock_mhz": 30.0, "fmax_mhz": 31.5,
        "timing_met": True, "baud": 115200, "divisor": 260, "luts": 3600, "ffs": 1500, "dsps": 0, "brams": 13,
        "utilization": {"ICESTORM_LC": [4368, 5280]}, "bitstream": "build/qmac.bin", "programmed": False})
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "      core  2x2 array, V=4, int4: 32 INT4 MACs/cycle"
    assert out[2] == "     clock  requested 30 MHz, PLL 30 MHz, Fmax 31.5 MHz: met"
    assert out[8] == "    device  ICESTORM_LC 4368/5280 (83 %)"


@pytest.mark.parametrize("board,preset,multiplier", [
    ("icebreaker", "tiny", "sb_mac16"),         # logic lanes beside the link overflow the UP5K
    ("ulx3s-85f", "tiny", "mult18_fip"),
    ("ulx3s-85f", "tiny-sparse", "mult18"),      # Winograd's shared corrections do not fit 2:4 selection
    ("icebreaker", "tiny-lns8", "logic"),        # a log datapath has no multiplier
])
def test_preset_lanes_go_to_the_boards_dsp_blocks(capsys, board, preset, multiplier):
    from argparse import Namespace

    from qmac.cli.bitstream import _board_config
    from qmac.hw.boards import BOARDS
    from qmac.hw.spec.config import PRESETS
    config = _board_config(Namespace(board=board, preset=preset, config=None), BOARDS[board])
    assert config == PRESETS[preset].replace(multiplier=multiplier)
    note = capsys.readouterr().err
    assert (f"multiplier = '{multiplier}'" in note) == (multiplier != "logic")
