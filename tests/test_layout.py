"""The package's layout keeps its promises: the folder says the process, no import circle.

Read from the source with `ast` (nothing is imported), so the check covers deferred imports
inside functions too; imports under ``if TYPE_CHECKING:`` are for type checkers only.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jupyter_taskstream"
#: Libraries of the server process and of the kernel process; a module imports one side at most.
SERVER_LIBS = {"tornado", "jupyter_server", "jinja2"}
KERNEL_LIBS = {"IPython", "ipywidgets", "anywidget", "ipykernel"}
MAX_LINES = 420
#: Which parts of the package each folder may import (besides the shared protocol and errors).
ALLOWED = {
    "hub": {"hub"},
    "kernel": {"kernel"},
    "views": {"views", "kernel", "api"},
    "integrations": {"integrations", "kernel"},
    "client": {"client"},
}
SHARED = {"protocol", "errors", "_version"}
#: Modules that run in a Dask worker process, where distributed (built on tornado) is the host.
WORKER_MODULES = {"jupyter_taskstream.integrations.dask_worker"}


def modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(name: str, path: pathlib.Path) -> set[str]:
    """Every module ``name`` imports, absolute, deferred ones included, TYPE_CHECKING ones not."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # "from . import x" imports the submodule x
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {i for i in imports(name, path) if i in mods and i != name} for name, path in mods.items()}


def test_no_import_cycle_even_through_deferred_imports(graph):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + ".") or node.startswith(nxt + ".") and nxt == "jupyter_taskstream":
                continue  # a package and its own submodules
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _side(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_each_folder_imports_only_its_side_and_the_contract(graph):
    bad = []
    for name, targets in graph.items():
        side = _side(name)
        if side in SHARED:
            allowed: set[str] = set()
        elif side in ALLOWED:
            allowed = ALLOWED[side]
        else:
            continue  # the package's __init__ and top-level wiring
        for target in targets:
            other = _side(target)
            if other is None or other in SHARED or other in allowed:
                continue
            bad.append(f"{name} imports {target}")
    assert not bad, bad


def test_no_module_imports_both_server_and_kernel_libraries():
    mixed, wrong_side = [], []
    for name, path in modules().items():
        roots = {i.split(".")[0] for i in imports(name, path)}
        server, kernel = roots & SERVER_LIBS, roots & KERNEL_LIBS
        if server and kernel:
            mixed.append((name, server, kernel))
        side = _side(name)
        if side in ("kernel", "views", "integrations", "client") and server and name not in WORKER_MODULES:
            wrong_side.append((name, server))
        if side in ("hub", "client", *SHARED) and kernel:
            wrong_side.append((name, kernel))
    assert not mixed, mixed
    assert not wrong_side, wrong_side


def test_the_kernel_side_loads_no_front_end_library_at_import():
    """kernel/ consults IPython, ipykernel and the widget libraries only once a process loaded them
    (kernel/host.py), so a plain script or a worker process never pays for importing them."""
    loaded = []
    for name, path in modules().items():
        if _side(name) != "kernel":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                loaded += [(name, n) for n in names if n.split(".")[0] in KERNEL_LIBS]
    assert not loaded, loaded


def test_no_module_is_long():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concern: {long}"


def test_every_module_says_what_it_holds():
    missing = [name for name, path in modules().items() if path.stat().st_size and not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, missing
