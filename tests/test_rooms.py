"""The shape of shim/: rooms import downward only, and no module imports itself back through others.

Read from the source (ast), so a lazy import inside a function counts as much as one at the top: both run.
Imports under `if TYPE_CHECKING:` / `if False:` do not (they never run). A room is a subpackage of shim;
the modules directly in shim/ are the shared helpers at the bottom.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parent.parent / "shim"
# Top to bottom: a room may import the rooms after it, never one before it. build and a future macro room
# are siblings: neither imports the other.
ORDER = ("cli", "intercept", "build", "macro", "compile", "sandbox", "host", "confine", "toolchain", "policy",
         "cargo", "")
SIBLINGS = {"build", "macro"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SHIM.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def exists(name: str) -> bool:
    base = SHIM.parent / name.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def runtime_imports(path: Path) -> set[str]:
    """The shim modules `path` imports at run time (`from shim.x import name` counts as shim.x.name when
    that is a module, else as shim.x)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING", "False")
                   for sub in node.body for n in ast.walk(sub)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "shim"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "shim":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if exists(sub) else node.module)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (SHIM / parts[1]).is_dir()) else ""


GRAPH = {module_name(p): runtime_imports(p) for p in sorted(SHIM.rglob("*.py")) if "__pycache__" not in p.parts}


def test_every_module_is_in_a_known_room() -> None:
    assert {room(m) for m in GRAPH} <= set(ORDER)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_downward(module: str) -> None:
    here = room(module)
    upward = sorted(dep for dep in GRAPH[module] if room(dep) != here and (
        ORDER.index(room(dep)) < ORDER.index(here) or {room(dep), here} <= SIBLINGS))
    assert not upward, f"{module} imports {upward}, above or beside its room {here or 'shim'}"


def test_no_module_imports_itself_back() -> None:
    """Tarjan's strongly connected components of the module graph: every one is a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles


def test_every_module_imports_alone() -> None:
    """Each module imports in a fresh interpreter by itself: an order the cycle check cannot see (a name
    read from a half-initialised package) fails here."""
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for module in sorted(GRAPH):
        done = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True,
                              cwd=SHIM.parent)
        assert done.returncode == 0, f"{module}: {done.stderr.strip().splitlines()[-1:]}"
