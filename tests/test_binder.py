"""Rebuild the Binder environment from binder/ alone, as repo2docker would (without docker).

A fresh virtual environment gets binder/requirements.txt and then runs binder/postBuild from
the repository root; a jupyter server from that environment is the hub, and the tutorials run
in kernels of that environment. About a minute: it is a full install.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
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
