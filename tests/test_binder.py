"""Rebuild the Binder environment from binder/ alone, as repo2docker would (without docker).

A fresh virtual environment gets binder/requirements.txt and then runs binder/postBuild from
the repository root; a jupyter server from that environment is the hub, and the tutorials run
in kernels of that environment. About a minute: it is a full install. And README's first
command's extra (``.[lab]``) must install what the tutorials import, checked from their code.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request

import pytest

from .nbval_hub import start_hub

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(900)

RUN_NOTEBOOKS = """
import sys, nbformat
from nbclient import NotebookClient
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
    print("ran", path, flush=True)
"""


def test_binder_environment_builds_and_runs_the_tutorials(tmp_path):
    repo = tmp_path / "repo"  # repo2docker builds from a copy of the repository
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", ".ci", "*.egg-info", "__pycache__", "test-artifacts"))
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    for key in ("JUPYTER_TASKSTREAM_URL", "JUPYTER_TASKSTREAM_SECRET", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR"):
        env.pop(key, None)
    quiet = {"cwd": repo, "env": env, "check": True, "capture_output": True, "text": True}
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], **quiet)
    built = subprocess.run(["bash", "binder/postBuild"], **{**quiet, "check": False})
    assert built.returncode == 0, built.stderr[-3000:]

    listing = subprocess.run([python, "-m", "jupyter", "server", "extension", "list"], **quiet)
    assert re.search(r"jupyter_taskstream\S* .*enabled", listing.stderr + listing.stdout)

    server, kernel_env, token = start_hub(str(repo / "notebooks"), env=env, python=python)
    try:
        notebooks = sorted(str(p.relative_to(repo)) for p in (repo / "notebooks").glob("*.ipynb"))
        assert len(notebooks) == 5
        run = subprocess.run([python, "-c", RUN_NOTEBOOKS, *notebooks], cwd=repo, env={**env, **kernel_env},
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        assert run.returncode == 0, run.stderr[-4000:]
        assert run.stdout.count("ran ") == 5
        url = kernel_env["JUPYTER_TASKSTREAM_URL"] + "/tasks"
        request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            tasks = json.load(response)["tasks"]
        # The tutorials' tasks reached this environment's hub.
        assert {"slow squares", "convert", "remote sum", "remote squares"} <= {t["name"] for t in tasks}
        assert all(t["status"] in ("completed", "cancelled", "failed") for t in tasks)
    finally:
        server.terminate()
        server.wait(10)


def _tutorial_imports() -> set[str]:
    """The top-level modules the tutorials import (magics and shell lines left out)."""
    names: set[str] = set()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements if r.strip()}


def test_the_readme_install_and_binder_both_install_what_the_tutorials_import():
    """README's first command installs ``.[lab]`` and opens the tutorials: every module they
    import must come with it (and with Binder's environment), not only with the test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lab = _requirement_names(project["dependencies"] + project["optional-dependencies"]["lab"])
    binder_lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    # postBuild installs this package itself, so its own dependencies come with it there too.
    binder = _requirement_names([line for line in binder_lines if not line.lstrip().startswith("#")]
                                + project["dependencies"])  # fmt: skip
    third_party = _tutorial_imports() - set(sys.stdlib_module_names) - {"jupyter_taskstream"}
    assert {"tqdm", "dask", "httpx"} <= third_party  # what the check is about: it sees the imports
    needed = {name.lower().replace("_", "-") for name in third_party}  # module names are their distributions' here
    assert needed - lab == set(), "add to the lab extra in pyproject.toml"
    assert needed - binder == set(), "add to binder/requirements.txt"
