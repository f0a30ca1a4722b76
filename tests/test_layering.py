"""Layers point one way, and no module-level import cycle exists.

The layers (docs/DESIGN: contract at the bottom; gateware and host on it, never on
each other; simulation on gateware and host; boards on gateware):

- `neurofabric.contract` imports nothing of neurofabric but itself;
- `neurofabric.paths` and the other plain modules of the top package are a base any
  layer may use; they import only the contract and each other;
- `hdl` imports the contract and the base, never `host`, `sim` or `boards`, not even
  inside a function;
- `host` never imports `sim`, `hdl` or `boards` when it is imported (a CLI command or
  the bench may inside a function, when asked for a simulation or a build);
- `boards` imports `hdl`, the contract and the base, never `host` or `sim`;
- `sim` may import everything but `boards`;
- `pynn` (the PyNN backend) imports the host, the contract and the base; nothing imports it;
- the top package (`neurofabric/__init__.py`) imports no part when it is imported:
  it loads the public API on first use.

Every module's imports are read with `ast`: module level and inside functions,
absolute and relative, `import a.b` and `from a import b` (b a module or a name).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Folder -> the package it is (pyproject.toml's package-dir).
PARTS = {"src/neurofabric": "neurofabric", "hdl": "neurofabric.hdl", "host": "neurofabric.host",
         "sim": "neurofabric.sim", "boards": "neurofabric.boards", "pynn": "neurofabric.pynn"}


def modules():
    """`{module name: (path, is_package)}` of every Python file of the package."""
    found = {}
    for folder, package in PARTS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if folder == "src/neurofabric" and parts[0] in {p.split(".")[1] for p in PARTS.values() if "." in p}:
                continue
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            found[".".join([package, *parts])] = (path, is_package)
    return found


MODULES = modules()


def layer(module):
    """The layer of a neurofabric module, or None for one outside the package."""
    if module != "neurofabric" and not module.startswith("neurofabric."):
        return None
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    if parts[1] == "__main__":
        return "main"
    if parts[1] in ("contract", "hdl", "host", "sim", "boards", "pynn"):
        return parts[1]
    return "base"


#: Layer -> the layers it may import at module level / anywhere (inside functions too).
ALLOWED_AT_IMPORT = {
    "contract": {"contract"},
    "base": {"contract", "base"},
    "hdl": {"contract", "base", "hdl"},
    "host": {"contract", "base", "host"},
    "boards": {"contract", "base", "hdl", "boards"},
    "sim": {"contract", "base", "hdl", "host", "sim"},
    "pynn": {"contract", "base", "host", "pynn"},     # the PyNN backend: on the host, nothing on it
    "top": {"contract", "base", "top"},
    "main": {"contract", "base", "top", "host"},      # `python -m neurofabric`: the CLI
}
ALLOWED_IN_FUNCTIONS = {
    **ALLOWED_AT_IMPORT,
    "host": {"contract", "base", "host", "hdl", "boards", "sim"},
    "top": {"contract", "base", "top", "host"},
}


def imports(name):
    """`[(imported module, line, at module level)]` of module `name`, resolved to absolute names."""
    path, is_package = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if is_package else name.rpartition(".")[0]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((alias.name, child.lineno, not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                out.append((target, child.lineno, not in_function))
                for alias in child.names:     # `from a import b` with b a module imports a.b
                    if f"{target}.{alias.name}" in MODULES:
                        out.append((f"{target}.{alias.name}", child.lineno, not in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def test_every_part_is_found():
    for package in PARTS.values():
        assert package in MODULES
    assert "neurofabric.contract.device" in MODULES and "neurofabric.hdl.core" in MODULES


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_back_edge(name):
    own = layer(name)
    for target, line, at_import in imports(name):
        other = layer(target)
        if other is None:
            continue
        allowed = ALLOWED_AT_IMPORT[own] if at_import else ALLOWED_IN_FUNCTIONS[own]
        where = "at import" if at_import else "inside a function"
        path = MODULES[name][0].relative_to(ROOT)
        assert other in allowed, f"{path}:{line}: {own} imports {target} ({other}) {where}"


def test_no_module_level_import_cycle():
    # Edges of the imports that run when a module is imported: the module named, and
    # the packages above it that are not the importer's own (their __init__ runs too).
    graph = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _, at_import in imports(name):
            if not at_import or target not in MODULES:
                continue
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                node = ".".join(parts[:k])
                if node in MODULES and node != name and not (name + ".").startswith(node + "."):
                    graph[name].add(node)
    cycles = []
    state = {}

    def dfs(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                dfs(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            dfs(node, [])
    assert not cycles, "module-level import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_host_imports_and_runs_the_golden_model_without_amaranth():
    code = """
import sys
sys.modules["amaranth"] = None          # any import of Amaranth now fails
import pkgutil, importlib
import numpy as np
import neurofabric as nf
import neurofabric.host
for info in pkgutil.walk_packages(neurofabric.host.__path__, "neurofabric.host."):
    importlib.import_module(info.name)
net = nf.random_network(n=6, m=4, seed=3)
stim = np.random.default_rng(0).random((20, 4)) < 0.3
with nf.open_device("golden") as dev:
    dev.load(net)
    rec = dev.run(stim, record=("v",))
assert (rec.spikes == nf.GoldenModel(net).run(stim).spikes).all() and rec.v.shape == (20, 6)
assert not [m for m in sys.modules if m.startswith(("neurofabric.hdl", "neurofabric.sim", "neurofabric.boards"))]
print("ok")
"""
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_gateware_and_contract_do_not_drag_in_the_host():
    code = """
import sys
import neurofabric.contract.protocol, neurofabric.contract.device, neurofabric.contract.bauds
assert not [m for m in sys.modules if m.startswith("neurofabric.") and not m.startswith("neurofabric.contract")]
assert "amaranth" not in sys.modules and "numpy" not in sys.modules
import neurofabric.hdl.top
assert not [m for m in sys.modules if m.startswith(("neurofabric.host", "neurofabric.sim", "neurofabric.boards"))]
print("ok")
"""
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_devices_are_imported_when_opened():
    code = """
import sys
from neurofabric.host.device import DEVICE_OPENERS, open_device
with open_device("golden"):
    pass
assert not [m for m in sys.modules if m.startswith("neurofabric.sim") or m == "neurofabric.host.serial_device"]
import importlib
for name, target in DEVICE_OPENERS.items():
    module, _, attr = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), name
print("ok")
"""
    result = run_python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
