"""The package's shape, as the README's layout section states it: layers, no circles, small files.

Every ``import`` in every module (including imports inside functions, which is where the heavy
libraries are loaded) is read with ``ast``; the test fails when a module imports one of a higher
layer, when two files import each other through any chain, or when a library file grows past
500 lines. ``evcf_fast/__init__.py`` and the lazy ``__getattr__`` of sub-packages name modules as
strings, which ``ast`` does not follow: they are the package's front doors, not dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evcf_fast"
KERNELS = ROOT / "kernels"

# bottom (0) to top; a module may import its own layer or any layer below it, never above
LAYERS = {
    "kernels": 0,
    "_checks": 1, "_config": 1, "_io": 1, "_jit": 1, "_progress": 1, "errors": 1,
    "models": 2,
    "data": 3, "metrics": 3, "benchtools": 3, "compare": 3,
    "train": 4,
    "cli": 5, "__main__": 5,
}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for evcf_fast/ and kernels/ (as evcf_fast.kernels)."""
    out = {}
    for base, prefix in ((PACKAGE, "evcf_fast"), (KERNELS, "evcf_fast.kernels")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """Absolute evcf_fast module names that ``from ... import ...`` in ``module`` refers to."""
    if node.level:
        base = module.split(".")
        base = base if _is_package(module) else base[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    names = [f"{target}.{a.name}" for a in node.names]
    found = [n for n in names if n in MODULES]  # `from . import checkpoint` names a module
    return found or ([target] if target in MODULES else [])


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.update(_resolve(module, node))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
    out.discard(module)
    # importing evcf_fast.x.y runs evcf_fast/x/__init__ first, but that is the package's own
    # business: the edge that matters is to the module named
    return {m for m in out if m != "evcf_fast"}


GRAPH = {m: _imports(m) for m in MODULES}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) == 1:
        return None  # evcf_fast/__init__.py: the lazy front door
    return LAYERS[parts[1]]


def test_every_area_has_a_layer():
    areas = {m.split(".")[1] for m in MODULES if "." in m}
    assert areas <= set(LAYERS), f"give these areas a layer in LAYERS: {areas - set(LAYERS)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_a_layer(module):
    mine = _layer(module)
    if mine is None:
        return
    upward = sorted(t for t in GRAPH[module] if (_layer(t) or 0) > mine)
    assert not upward, f"{module} (layer {mine}) imports higher layers: {upward}"


def test_no_import_circle():
    """Depth-first search for a cycle among files (a package's __init__ counts as a file)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(MODULES):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_kernels_import_only_numba_and_numpy():
    allowed = {"numba", "llvmlite", "numpy", "math", "__future__", "typing", "os", "evcf_fast"}
    for path in KERNELS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.name))
def test_library_files_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (> {MAX_LINES}): split it"
