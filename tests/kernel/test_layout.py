"""The kernel side stays a side: it imports no views, no hub, and no front-end library at load."""

from __future__ import annotations

import ast
import pathlib

import jupyter_taskstream

PACKAGE = pathlib.Path(jupyter_taskstream.__file__).parent
#: Libraries only consulted when the process has loaded them (see kernel/host.py).
FRONT_END = {"IPython", "ipywidgets", "anywidget", "ipykernel"}
SERVER = {"tornado", "jupyter_server"}


def _imports(path: pathlib.Path, *, module_level_only: bool) -> list[tuple[str, int]]:
    """``(absolute module, level)`` of each import in the file; relative ones resolved."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    package = ["jupyter_taskstream", *path.parent.relative_to(PACKAGE).parts]
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, node.level))
    return out


def test_the_kernel_side_imports_no_views_hub_or_server():
    for path in sorted((PACKAGE / "kernel").glob("*.py")):
        for module, _ in _imports(path, module_level_only=False):
            assert not module.startswith(("jupyter_taskstream.views", "jupyter_taskstream.hub")), (path.name, module)
            assert module.split(".")[0] not in SERVER, (path.name, module)


def test_the_kernel_side_loads_no_front_end_library_at_import():
    for path in sorted((PACKAGE / "kernel").glob("*.py")):
        for module, _ in _imports(path, module_level_only=True):
            assert module.split(".")[0] not in FRONT_END, (path.name, module)


def test_views_never_import_the_hub():
    for path in sorted((PACKAGE / "views").glob("*.py")):
        for module, _ in _imports(path, module_level_only=False):
            assert not module.startswith("jupyter_taskstream.hub"), (path.name, module)
            assert module.split(".")[0] not in SERVER, (path.name, module)
