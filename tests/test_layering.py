"""The package's layering, read from the source: imports run downwards only (spec <- hw, sim <- tb <- application)
and no two modules import each other, directly or through others."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Package prefix -> folder of the repository (pyproject.toml's package-dir).
FOLDERS = {"qmac.hw": "hw", "qmac.sim": "sim", "qmac.tb": "tb", "qmac": "qmac"}
#: Layer -> the layers its modules may import (besides the standard library and third-party packages).
ALLOWED = {
    "spec": {"spec"},
    "hw": {"spec", "hw"},
    "sim": {"spec", "sim"},
    "tb": {"spec", "hw", "sim", "tb"},
    "app": {"spec", "hw", "sim", "tb", "app"},
}
#: The one sanctioned upward edge: the host-link testbench runs the application's host driver (transport-independent;
#: it never imports tb) against the emitted RTL over a simulated UART, so the driver is tested on the real link.
UPWARD = {("tb", "qmac.host")}


def _modules():
    """Module name -> source path of every module of the distribution."""
    out = {}
    for prefix, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "qmac" and parts and parts[0] in ("hw", "sim", "tb"):
                continue
            out[name] = path
    return out


def _layer(module):
    if module == "qmac.hw.spec" or module.startswith("qmac.hw.spec."):
        return "spec"
    for layer in ("hw", "sim", "tb"):
        if module == f"qmac.{layer}" or module.startswith(f"qmac.{layer}."):
            return layer
    return "app"


def _imports(name, path, modules):
    """The qmac modules ``name`` imports (at any depth of its code), as module names that exist."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target.startswith("qmac") and target != name:
                found.add(target)
    return found


MODULES = _modules()
GRAPH = {name: _imports(name, path, MODULES) for name, path in MODULES.items()}


def test_the_map_finds_every_layer():
    assert {_layer(m) for m in MODULES} == set(ALLOWED)
    assert "qmac.hw.spec.config" in MODULES and "qmac.cli" in MODULES and "qmac.sim.gemm" in MODULES


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_downwards(name):
    layer = _layer(name)
    wrong = sorted(m for m in GRAPH[name] if _layer(m) not in ALLOWED[layer]
                   and not any(layer == lo and (m == up or m.startswith(up + ".")) for lo, up in UPWARD))
    assert not wrong, f"{name} ({layer}) imports {', '.join(wrong)}; {layer} may import only {sorted(ALLOWED[layer])}"


def test_the_host_driver_does_not_reach_back_into_tb():
    assert not [m for name in MODULES if name.startswith("qmac.host") for m in GRAPH[name] if _layer(m) == "tb"]


def test_no_import_cycles():
    # Tarjan's strongly connected components; a package importing its own submodules is not a cycle.
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def edges(v):
        return [w for w in GRAPH[v] if not w.startswith(v + ".")]

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"
