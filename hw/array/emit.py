"""Verilog emission and the manifest that travels with it."""

import contextlib
import errno
import json
import os
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape

from qmac.hw.spec.config import MODE_CODES, CoreConfig
from qmac.hw.spec.payload import payload_format
from qmac.hw.array.core import Core
from qmac.hw.array.mac_unit import MacUnit

__all__ = ["TOP_NAME", "emit_verilog", "manifest", "write_core"]

#: Module and file name of the emitted top level.
TOP_NAME = "qmac_core"


def emit_verilog(config, platform=None):
    """Verilog text of the core for ``config`` (no source attributes, ports named by signature path).

    The processing element (:class:`MacUnit`) is converted once as module ``qmac_core_mac_unit`` and
    instantiated R x C times, so generation time grows with V, not with R x C. ``platform`` is passed to
    ``elaborate``: with an iCE40 platform, ``sb_mac16`` lanes instantiate ``SB_MAC16`` primitives
    (which only an iCE40 flow knows); without one they are written as portable ``*`` and ``+``.
    """
    unit_name = f"{TOP_NAME}_mac_unit"
    unit = verilog.convert(MacUnit(config), name=unit_name, emit_src=False, platform=platform)
    core = Core(config, unit_module=unit_name)
    return verilog.convert(core, name=TOP_NAME, emit_src=False, platform=platform) + "\n" + unit, core


def _ports(core):
    ports = [{"name": "clk", "direction": "in", "width": 1}, {"name": "rst", "direction": "in", "width": 1}]
    for path, member, _ in core.signature.flatten(core):
        ports.append({
            "name": "__".join(str(p) for p in path),
            "direction": "in" if member.flow.name == "In" else "out",
            "width": Shape.cast(member.shape).width,
        })
    return ports


def _payloads(core):
    """Every stream port's payload fields (:meth:`qmac.hw.spec.payload.PayloadFormat.to_dict`)."""
    out = {}
    for name, member in core.signature.members.items():
        if member.is_signature and "payload" in member.signature.members:
            out[name] = payload_format(member.signature.members["payload"].shape).to_dict()
    return out


def manifest(config, core):
    """What a consumer of the Verilog needs without parsing it."""
    out = {
        "top": TOP_NAME,
        "config": config.to_dict(),
        "ports": _ports(core),
        "payloads": _payloads(core),
        "mode_codes": {name: MODE_CODES[name] for name in config.modes},
        "latency": {"dot_product": config.dot_latency, "last_beat_to_first_row": core.latency,
                    "streaming_tile_beats": config.streaming_tile_beats},
        "macs_per_cycle": {name: config.macs_per_cycle(name) for name in config.modes},
        "elements_per_beat": {name: config.elements_per_beat(name) for name in config.modes},
        "accumulator": {"bits": config.acc_format.bits, "exact_bits": config.exact_acc_format.bits,
                        "saturating": config.saturating},
        "k_bits": config.k_bits,
        "max_k_beats": config.max_k_beats,
    }
    out.update(config.datapath.manifest())
    return out


def write_core(config, out_dir):
    """Write ``qmac_core.v`` and ``qmac_core.json`` to ``out_dir`` (created if missing); returns their paths and
    the seconds the Verilog took.

    Both files are first written completely to temporary files in ``out_dir``, then renamed into place, so a
    failed write (``OSError``, raised) leaves any earlier pair untouched, no temporary file, and no folder
    that this call created.
    """
    if not isinstance(config, CoreConfig):
        raise TypeError(f"write_core needs a CoreConfig, not {config!r}")
    start = time.perf_counter()
    text, core = emit_verilog(config)
    elapsed = time.perf_counter() - start
    files = {f"{TOP_NAME}.v": text,
             f"{TOP_NAME}.json": json.dumps(manifest(config, core), indent=2, allow_nan=False) + "\n"}
    out = Path(out_dir)
    created = [p for p in (out, *out.parents) if not p.exists()]  # innermost first
    umask = os.umask(0)
    os.umask(umask)
    temps = {}
    try:
        for name in files:
            if (out / name).is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder has the name of an output file", str(out / name))
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            fd, temps[name] = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            os.fchmod(fd, 0o666 & ~umask)  # what open() gives, not mkstemp's 0600
            with os.fdopen(fd, "w") as f:
                f.write(data)
        for name, tmp in temps.items():
            os.replace(tmp, out / name)
    except BaseException:
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return out / f"{TOP_NAME}.v", out / f"{TOP_NAME}.json", elapsed
