"""What every qmac board adds to its amaranth-boards platform: the host link's pins, read from
``constraints/<board>.toml``, and a ``sync`` clock at a requested frequency."""

import tomllib
from importlib.resources import files

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.hdl import Elaboratable, Module

__all__ = ["CONSTRAINTS_DIR", "HostLinkBoard", "HostLinkTop", "load_constraints"]

#: Board data: the package ``qmac.constraints`` (the repository's ``constraints/``, shipped as package data).
CONSTRAINTS_DIR = files("qmac.constraints")

_KEYS = {"clock": {"default_mhz"}, "host_uart": {"rx", "tx", "attrs"}}


def load_constraints(path):
    """A board's constraints file (``constraints/<board>.toml``) -> ``(default_mhz, resources)``.

    The file has two tables: ``[clock]`` with ``default_mhz`` (the sync clock without ``--clock``) and
    ``[host_uart]`` with the pins ``rx`` and ``tx`` and their ``attrs``; the latter becomes the
    Resource ``host_uart`` 0 with subsignals ``rx`` (input) and ``tx`` (output). Unknown or missing
    tables and keys raise ``ValueError`` naming them.
    """
    with path.open("rb") as f:
        data = tomllib.load(f)
    if set(data) != set(_KEYS):
        raise ValueError(f"{path}: tables must be {', '.join(_KEYS)}, not {', '.join(data) or 'none'}")
    for table, keys in _KEYS.items():
        if set(data[table]) != keys:
            raise ValueError(f"{path}: table [{table}] must hold exactly {', '.join(sorted(keys))}, "
                             f"not {', '.join(sorted(data[table])) or 'nothing'}")
    uart = data["host_uart"]
    resource = Resource("host_uart", 0, Subsignal("rx", Pins(uart["rx"], dir="i")),
                        Subsignal("tx", Pins(uart["tx"], dir="o")), Attrs(**uart["attrs"]))
    return float(data["clock"]["default_mhz"]), [resource]


class HostLinkBoard:
    """Mixin for an amaranth-boards platform class (list it first among the bases).

    Adds the Resource ``host_uart`` from ``constraints/<constraints_name>.toml`` and creates the
    ``sync`` domain at ``clock_mhz`` (default: the file's ``default_mhz``): from the board oscillator
    directly when the frequencies are equal, else from a PLL the subclass instantiates. The PLL's
    parameters are chosen when the board object is made, so an unreachable frequency fails early.

    Subclasses define ``constraints_name``, ``family`` (``"ice40"`` or ``"ecp5"``),
    ``default_config`` (the core built when none is given), ``dsp_multipliers`` (the ``multiplier`` choices
    that put INT lanes on the device's DSP blocks, preferred first), ``stream_stages`` (the
    :class:`~qmac.hw.link.host_link.HostLink` option), ``_pll_parameters(f_in, f_out)``
    (returning a dict holding the achieved ``f_out``) and ``_pll_domain(params)`` (returning a Module
    that defines ``sync``, with its reset held until the PLL locks).

    Parameters
    ----------
    clock_mhz : float or None
        Requested ``sync`` frequency in MHz.
    """

    def __init__(self, clock_mhz=None, **kwargs):
        super().__init__(**kwargs)
        default_mhz, resources = load_constraints(CONSTRAINTS_DIR / f"{self.constraints_name}.toml")
        self.add_resources(resources)
        mhz = default_mhz if clock_mhz is None else clock_mhz
        if not isinstance(mhz, (int, float)) or isinstance(mhz, bool) or not mhz > 0:
            raise ValueError(f"clock must be a positive number of MHz, not {mhz!r}")
        self._requested_hz = mhz * 1e6
        if abs(self._requested_hz - self.default_clk_frequency) < 1:
            self._pll = None
        else:
            self._pll = self._pll_parameters(self.default_clk_frequency, self._requested_hz)

    @property
    def requested_frequency(self):
        """The ``sync`` frequency asked for, Hz."""
        return self._requested_hz

    @property
    def sync_frequency(self):
        """The ``sync`` frequency the board runs at, Hz (the PLL's nearest to the request)."""
        return self.default_clk_frequency if self._pll is None else self._pll["f_out"]

    @property
    def pll(self):
        """The PLL parameters, or ``None`` when ``sync`` is the board oscillator."""
        return self._pll

    def create_missing_domain(self, name):
        if name != "sync" or self._pll is None:
            return super().create_missing_domain(name)
        return self._pll_domain(self._pll)


class HostLinkTop(Elaboratable):
    """Top level of a board build: ``link`` (a :class:`~qmac.hw.link.host_link.HostLink`) on the platform's
    ``host_uart`` pins."""

    def __init__(self, link):
        self._link = link

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self._link
        uart = platform.request("host_uart", 0)
        m.d.comb += [self._link.rx.eq(uart.rx.i), uart.tx.o.eq(self._link.tx)]
        return m
