"""The ULX3S board (ECP5 LFE5U-85F) for the host link: sync clock from an EHXPLLL."""

from amaranth.hdl import ClockDomain, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from qmac.hw.spec.config import CoreConfig
from qmac.hw.boards.board import HostLinkBoard

__all__ = ["ULX3S_85F", "ecp5_pll"]

# EHXPLLL limits (as ecppll uses them), MHz, and the dividers' ranges.
_PFD = (3.125, 400)
_VCO = (400, 800)
_VCO_BEST = 600
_OUT = (3.125, 400)


def ecp5_pll(f_in, f_out):
    """EHXPLLL parameters (feedback from CLKOP) for the output nearest ``f_out`` (Hz) from ``f_in``.

    ``f_out = f_in / CLKI_DIV * CLKFB_DIV`` with the phase detector at ``f_in / CLKI_DIV`` in
    3.125..400 MHz and the VCO at ``f_out * CLKOP_DIV`` in 400..800 MHz; ``CLKI_DIV`` 1..128,
    ``CLKFB_DIV`` 1..80, ``CLKOP_DIV`` 1..128. Among equally near outputs the VCO nearest 600 MHz wins;
    this is ecppll's search, so it picks ecppll's parameters (``CLKOP_CPHASE = (CLKOP_DIV - 1) // 2``
    as ecppll writes it for a 0 degree phase).

    Returns
    -------
    dict
        ``clki_div``, ``clkfb_div``, ``clkop_div``, ``clkop_cphase`` and the achieved ``f_out`` (Hz).

    Raises
    ------
    ValueError
        ``f_out`` outside 3.125..400 MHz.
    """
    fin, want = f_in / 1e6, f_out / 1e6
    if not _OUT[0] <= want <= _OUT[1]:
        raise ValueError(f"ECP5 PLL output must be {_OUT[0]} to {_OUT[1]} MHz, not {want!r}")
    best = None
    for clki_div in range(1, 129):
        pfd = fin / clki_div
        if not _PFD[0] <= pfd <= _PFD[1]:
            continue
        for clkfb_div in range(1, 81):
            out = pfd * clkfb_div
            for clkop_div in range(1, 129):
                vco = out * clkop_div
                if not _VCO[0] <= vco <= _VCO[1]:
                    continue
                key = (abs(out - want), abs(vco - _VCO_BEST))
                if best is None or key < best[0]:
                    best = (key, out, clki_div, clkfb_div, clkop_div)
    _, out, clki_div, clkfb_div, clkop_div = best
    return {"clki_div": clki_div, "clkfb_div": clkfb_div, "clkop_div": clkop_div,
            "clkop_cphase": (clkop_div - 1) // 2, "f_out": out * 1e6}


class ULX3S_85F(HostLinkBoard, ULX3S_85F_Platform):
    """ULX3S with an LFE5U-85F, the host link's UART (the FT231X USB serial port) and a ``sync`` clock
    at ``clock_mhz`` (default 75 MHz) from the 25 MHz oscillator through an EHXPLLL; ``sync`` is reset
    until the PLL locks. Two-entry FIFOs stand between the core and its queues (``stream_stages``): the
    block RAM queues are slow and far from the array. See
    :class:`~qmac.hw.boards.board.HostLinkBoard`.

    The default core (4x4 array, 4 dual-mode lanes, one adder-tree level per pipeline stage) does 64 INT8
    or 128 INT4 MACs per cycle on 32 MULT18X18D (two lanes each by Winograd's fast inner product,
    ``multiplier = "mult18_fip"``); it meets the default 75 MHz and also 100 MHz (``clock_mhz=100``: Fmax
    107.02 MHz; docs/fpga.md, "Measured"). bench/boards/ulx3s-v8.toml doubles the lanes (64 MULT18X18D)
    and meets 75 MHz (Fmax 96.88 MHz).
    """

    constraints_name = "ulx3s"
    stream_stages = True
    family = "ecp5"
    default_config = CoreConfig(rows=4, cols=4, lanes=4, modes=("int8", "int4"), max_k=4096, tree_levels_per_stage=1,
                                multiplier="mult18_fip")
    dsp_multipliers = ("mult18_fip", "mult18")

    def _pll_parameters(self, f_in, f_out):
        return ecp5_pll(f_in, f_out)

    def _pll_domain(self, pll):
        m = Module()
        m.submodules.clk_buf = clk_buf = io.Buffer("i", self.request(self.default_clk, dir="-"))
        sync = ClockDomain("sync")
        clk, lock = sync.clk, Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.default_clk_frequency / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll['f_out'] / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll["clki_div"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll["clkop_div"],
            p_CLKOP_CPHASE=pll["clkop_cphase"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=pll["clkfb_div"],
            i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=clk, i_CLKFB=clk, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=lock)
        m.domains.sync = sync
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")
        self.add_clock_constraint(clk, pll["f_out"])
        return m
