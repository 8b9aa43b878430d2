"""Board support (hw/boards/): PLL parameters against icepll/ecppll, constraints files, clocks."""

import pytest

from qmac.hw.boards import BOARDS, ICEBreaker, ULX3S_85F
from qmac.hw.boards.board import CONSTRAINTS_DIR, load_constraints
from qmac.hw.boards.icebreaker import ice40_pll
from qmac.hw.boards.ulx3s import ecp5_pll


# yowasp-icepll -i 12 -o MHZ
@pytest.mark.parametrize("mhz,divr,divf,divq", [(30, 0, 79, 5), (36, 0, 47, 4), (48, 0, 63, 4), (50.25, 0, 66, 4)])
def test_ice40_pll_matches_icepll(mhz, divr, divf, divq):
    pll = ice40_pll(12e6, mhz * 1e6)
    assert (pll["divr"], pll["divf"], pll["divq"], pll["filter_range"]) == (divr, divf, divq, 1)
    assert pll["f_out"] == pytest.approx(mhz * 1e6)


# yowasp-ecppll -i 25 -o MHZ: CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE, achieved MHz
@pytest.mark.parametrize("mhz,clki,clkfb,clkop,cphase,achieved", [
    (100, 1, 4, 6, 2, 100), (73, 8, 23, 8, 3, 71.875), (200, 1, 8, 3, 1, 200), (120, 5, 24, 5, 2, 120),
    (85.7, 7, 24, 7, 3, 85.7142857), (50, 1, 2, 12, 5, 50), (30, 5, 6, 20, 9, 30), (12, 2, 1, 48, 23, 12.5),
])
def test_ecp5_pll_matches_ecppll(mhz, clki, clkfb, clkop, cphase, achieved):
    pll = ecp5_pll(25e6, mhz * 1e6)
    assert (pll["clki_div"], pll["clkfb_div"], pll["clkop_div"], pll["clkop_cphase"]) == (clki, clkfb, clkop, cphase)
    assert pll["f_out"] == pytest.approx(achieved * 1e6)


def test_pll_ranges_checked():
    with pytest.raises(ValueError, match=r"^iCE40 PLL output must be 16 to 275 MHz, not 5.0$"):
        ICEBreaker(5)
    with pytest.raises(ValueError, match=r"^ECP5 PLL output must be 3.125 to 400 MHz, not 500.0$"):
        ULX3S_85F(500)
    with pytest.raises(ValueError, match=r"^clock must be a positive number of MHz, not -1$"):
        ICEBreaker(-1)


def test_board_clocks():
    board = ICEBreaker()
    assert board.sync_frequency == 30e6 and board.pll["divf"] == 79
    assert ICEBreaker(12).pll is None and ICEBreaker(12).sync_frequency == 12e6
    ulx3s_mhz, _ = load_constraints(CONSTRAINTS_DIR / "ulx3s.toml")
    assert ULX3S_85F().sync_frequency == ulx3s_mhz * 1e6 and ULX3S_85F(25).pll is None
    assert ULX3S_85F(60).pll is not None and ULX3S_85F(60).sync_frequency == 60e6
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f"}


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s"])
def test_constraints_files_load(name):
    mhz, (resource,) = load_constraints(CONSTRAINTS_DIR / f"{name}.toml")
    assert mhz > 0 and resource.name == "host_uart"
    assert [s.name for s in resource.ios] == ["rx", "tx"]


@pytest.mark.parametrize("text,message", [
    ('[clock]\ndefault_mhz = 30\n', r"tables must be clock, host_uart, not clock$"),
    ('[clock]\ndefault_mhz = 30\nspeed = 1\n[host_uart]\nrx = "1"\ntx = "2"\nattrs = {}\n',
     r"table \[clock\] must hold exactly default_mhz, not default_mhz, speed$"),
])
def test_constraints_checked(tmp_path, text, message):
    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_constraints(path)
