"""The iCEBreaker board (iCE40UP5K) for the host link: sync clock from an SB_PLL40_PAD."""

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer
from amaranth_boards.icebreaker import ICEBreakerPlatform

from qmac.hw.spec.config import CoreConfig
from qmac.hw.boards.board import HostLinkBoard

__all__ = ["ICEBreaker", "ice40_pll"]

# SB_PLL40 limits (iCE40 sysCLOCK PLL design guide; icepll uses the same), MHz.
_PFD = (10, 133)
_VCO = (533, 1066)
_OUT = (16, 275)


def ice40_pll(f_in, f_out):
    """SB_PLL40 parameters (``SIMPLE`` feedback) for the output nearest ``f_out`` (Hz) from ``f_in``.

    ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)`` with the phase detector at
    ``f_in / (DIVR + 1)`` in 10..133 MHz and the VCO at ``f_in * (DIVF + 1) / (DIVR + 1)`` in
    533..1066 MHz. Searches as icepll does (DIVR, then DIVF, then DIVQ ascending; the first of equally
    near outputs wins), so it picks icepll's parameters.

    Returns
    -------
    dict
        ``divr``, ``divf``, ``divq``, ``filter_range`` and the achieved ``f_out`` (Hz).

    Raises
    ------
    ValueError
        ``f_out`` outside 16..275 MHz, or no parameters reach it from ``f_in``.
    """
    fin, want = f_in / 1e6, f_out / 1e6
    if not _OUT[0] <= want <= _OUT[1]:
        raise ValueError(f"iCE40 PLL output must be {_OUT[0]} to {_OUT[1]} MHz, not {want!r}")
    best = None
    for divr in range(16):
        pfd = fin / (divr + 1)
        if not _PFD[0] <= pfd <= _PFD[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not _VCO[0] <= vco <= _VCO[1]:
                continue
            for divq in range(1, 7):
                out = vco / 2 ** divq
                if best is None or abs(out - want) < abs(best[0] - want):
                    best = (out, divr, divf, divq, pfd)
    if best is None:
        raise ValueError(f"no iCE40 PLL parameters reach {want} MHz from {fin} MHz")
    out, divr, divf, divq, pfd = best
    filter_range = 1 + sum(pfd >= edge for edge in (17, 26, 44, 66, 101))
    return {"divr": divr, "divf": divf, "divq": divq, "filter_range": filter_range, "f_out": out * 1e6}


class ICEBreaker(HostLinkBoard, ICEBreakerPlatform):
    """iCEBreaker with the host link's UART (FTDI channel B) and a ``sync`` clock at ``clock_mhz``
    (default 30 MHz) from the 12 MHz oscillator through an SB_PLL40_PAD; ``sync`` is held in reset
    until 15 us after the PLL locks. See :class:`~qmac.hw.boards.board.HostLinkBoard`.

    The default core (2x2 array, 4 dual-mode lanes on the UP5K's 8 SB_MAC16 blocks in dual 8x8 mode) does
    16 INT8 or 32 INT4 MACs per cycle; with logic lanes (the ``tiny`` preset as it is) it does not fit the UP5K
    beside the link, so ``qmac bitstream`` builds a preset's INT lanes on the DSP blocks (:attr:`dsp_multipliers`).
    """

    constraints_name = "icebreaker"
    stream_stages = False
    family = "ice40"
    default_config = CoreConfig(rows=2, cols=2, lanes=4, modes=("int8", "int4"), max_k=1024, multiplier="sb_mac16")
    dsp_multipliers = ("sb_mac16",)

    def _pll_parameters(self, f_in, f_out):
        return ice40_pll(f_in, f_out)

    def _pll_domain(self, pll):
        m = Module()
        clk_pad = self.request(self.default_clk, dir="-")
        sync = ClockDomain("sync")
        clk, lock = sync.clk, Signal()
        m.submodules.pll = Instance(
            "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_DIVR=pll["divr"], p_DIVF=pll["divf"],
            p_DIVQ=pll["divq"], p_FILTER_RANGE=pll["filter_range"],
            i_PACKAGEPIN=clk_pad.io, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk, o_LOCK=lock)
        # iCE40 block RAMs read zero for about 3 us after configuration, so, as Amaranth's own iCE40
        # clock does, keep sync in reset for 15 us after the PLL locks.
        delay = int(15e-6 * pll["f_out"])
        timer, ready = Signal(range(delay + 1)), Signal()
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.domains.sync = sync
        m.d.comb += ClockSignal("por").eq(clk)
        with m.If(~lock):
            m.d.por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        m.submodules.reset_sync = ResetSynchronizer(~ready, domain="sync")
        self.add_clock_constraint(clk, pll["f_out"])
        return m
