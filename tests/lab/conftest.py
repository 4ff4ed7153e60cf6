"""Fixtures for the JupyterLab extension's browser tests: a real JupyterLab with the built
extension, its settings, notebooks, and helpers to drive tasks through the hub's REST API.

The extension is loaded from this checkout's build (``jupyter_taskstream/labextension``,
made by ``pip install -e .`` or ``npm run build``) through a temporary labextensions folder,
so the tests never write into the environment's ``share/jupyter``.
"""

from __future__ import annotations

import json
import pathlib
import sys

import nbformat
import pytest

from ..browser import _on_ci

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BUILT = ROOT / "jupyter_taskstream" / "labextension"
EXTENSION = "jupyter-taskstream"
#: JupyterLab starts slowly (and a kernel with it): its own deadline, longer than expect()'s.
LAB_TIMEOUT_MS = 45_000
SETUP = "%load_ext jupyter_taskstream\nimport time\nimport jupyter_taskstream as ts"

NOTEBOOKS = {
    "tasks.ipynb": [
        SETUP + "\nts.config.cancel_grace_period = 1.5",
        "%%taskstream endless\nfor i in ts.progress(range(100000), unit='step'):\n"
        "    if i % 20 == 0:\n        print(f'step {i}')\n    time.sleep(0.05)",
        "%%taskstream second\nfor i in ts.progress(range(100000)):\n    time.sleep(0.05)",
        "x = 1",
        "y = 2",
    ],
    "plain.ipynb": ["a = 1"],
}


@pytest.fixture(scope="session")
def labextensions(tmp_path_factory) -> pathlib.Path:
    """A labextensions folder holding this checkout's built extension (a symlink).

    One per session: JupyterLab keeps the federated extensions it found the first time.
    """
    if not (BUILT / "package.json").exists():
        message = (
            f"the JupyterLab extension is not built ({BUILT} is missing): "
            "`pip install -e .` builds it (needs Node and npm), or `npm install && npm run build`"
        )
        if _on_ci():
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("labextensions")
    (folder / EXTENSION).symlink_to(BUILT, target_is_directory=True)
    return folder


@pytest.fixture
def lab_settings() -> dict:
    """User settings to write, ``{plugin settings path: content}``; a test may override it."""
    return {}


@pytest.fixture
def lab_dirs(tmp_path, lab_settings) -> dict[str, str]:
    """JupyterLab's user settings and workspaces, for this test only."""
    settings = tmp_path / "lab-user-settings"
    files = {
        # No news toast over the panel and no update check.
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        **lab_settings,
    }
    for name, content in files.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return {"user_settings_dir": str(settings), "workspaces_dir": str(tmp_path / "lab-workspaces")}


@pytest.fixture
def lab_root(jp_root_dir) -> pathlib.Path:
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for name, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec})
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(nb, jp_root_dir / name)
    return jp_root_dir


@pytest.fixture
def jp_server_config(taskstream_config, lab_root, lab_dirs, labextensions):
    """conftest's server, serving JupyterLab with the extension on ``lab_root``."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_taskstream": True, "jupyterlab": True},
            "reraise_server_extension_failures": True,
        },
        "LabApp": {
            # First this checkout's build, then the environment's (the widget managers).
            "extra_labextensions_path": [
                str(labextensions),
                str(pathlib.Path(sys.prefix, "share", "jupyter", "labextensions")),
            ],
            **lab_dirs,
        },
        "TaskStreamApp": taskstream_config,
    }


@pytest.fixture
def lab_url(server_url, jp_serverapp):
    """URL of a JupyterLab page (``lab``, ``lab/tree/x.ipynb``) with the token that logs in."""
    token = jp_serverapp.identity_provider.token
    return lambda path="lab": f"{server_url}{path}?token={token}"


@pytest.fixture
def hub(client):
    """Drive externally published tasks through the hub's REST API, as any producer may."""

    class Hub:
        async def create(self, name: str, total=None, unit="it", task_id=None) -> str:
            body = {"name": name, "total": total, "unit": unit}
            if task_id:
                body["id"] = task_id
            r = await client.post("taskstream/api/tasks", json={k: v for k, v in body.items() if v is not None})
            assert r.status_code == 201, r.text
            return r.json()["id"]

        async def publish(self, task_id: str, *events: tuple[str, dict]) -> None:
            r = await client.post(
                f"taskstream/api/tasks/{task_id}/events",
                json={"events": [{"type": t, "data": d} for t, d in events]},
            )
            assert r.status_code == 204, r.text

        async def status(self, task_id: str) -> str:
            r = await client.get(f"taskstream/api/tasks/{task_id}")
            assert r.status_code == 200, r.text
            return r.json()["status"]

        async def batch(self, body: dict) -> None:
            r = await client.post("taskstream/api/events", json=body)
            assert r.status_code in (200, 204), r.text

    return Hub()
