"""What every case shares: result rows and statistics, the machine record, and the servers.

`HubServer` runs a real ``jupyter server`` with the extension in a subprocess on 127.0.0.1
with a token; `PeerServer` runs the sse-starlette peer on uvicorn. Both report their pid so
a case can read the server's own CPU time and RSS (`ProcessProbe`), apart from the clients,
which always run in other processes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import httpx
import psutil

__all__ = [
    "BenchConfig",
    "HubServer",
    "PeerServer",
    "ProcessProbe",
    "Row",
    "Timeout",
    "machine_info",
    "median",
    "percentile",
    "raise_nofile",
]

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: Server extensions that a full install also enables; off, so the hub's numbers are its own.
OTHER_EXTENSIONS = ("jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook", "notebook_shim",
                    "nbclassic", "jupyter_server_ydoc", "jupyter_collaboration", "voila")


#: ``python -m jupyter_server`` without jsonschema's optional ``rfc3987_syntax``, which builds a
#: Lark grammar at import: 1.2 s of every server start on a loaded 2-core machine (0.4 s
#: instead of 1.6 s), ~15 s of a quick run. It checks only the "iri" and "iri-reference"
#: formats, which no schema of jupyter_server or jupyter_events uses; nothing measured imports it.
_LAUNCH_SERVER = (
    "import sys; sys.modules['rfc3987_syntax'] = None; "
    "from jupyter_server.serverapp import main; sys.exit(main())"
)


class Timeout(RuntimeError):
    """A bounded wait ran out: the case reports it instead of hanging."""


@dataclass
class BenchConfig:
    """How big and how often: ``quick`` shrinks sizes and durations, never the ≥5 measured runs."""

    quick: bool = False
    #: tiny sizes that only prove the machinery works (the smoke test); implies quick.
    smoke: bool = False
    runs: int = 5
    warmup: int = 1
    #: a hard wall-clock bound on one case, on top of every loop's own count and time bounds.
    case_timeout: float = 900.0
    #: ``--runs`` was given: it holds for every case, quick plans included (see ``run.QUICK_PLANS``).
    runs_given: bool = False

    def __post_init__(self) -> None:
        self.quick = self.quick or self.smoke

    def pick(self, full: Any, quick: Any, smoke: Any = None) -> Any:
        if self.smoke and smoke is not None:
            return smoke
        return quick if self.quick or self.smoke else full


@dataclass
class Row:
    """One metric of one case: the measured runs, the peer's runs, the target and whether it holds."""

    case: int
    metric: str
    unit: str
    values: list[float]
    peer: str | None = None
    peer_values: list[float] = field(default_factory=list)
    target: str = ""
    #: ``check(median, peer_median) -> bool``; None when the row is informational.
    check: Callable[[float, float | None], bool] | None = None
    note: str = ""

    def unmeasured(self, why: str) -> Row:
        """This row without values: in this mode its sample is too small to mean anything."""
        return Row(self.case, self.metric, self.unit, [], self.peer, [], self.target, None,
                   f"not measured in quick mode: {why}")

    def to_json(self) -> dict:
        med = median(self.values)
        peer_med = median(self.peer_values) if self.peer_values else None
        ratio = None
        if peer_med not in (None, 0) and med is not None and math.isfinite(peer_med):
            ratio = med / peer_med
        met = None
        if self.check is not None and med is not None:
            met = bool(self.check(med, peer_med))
        return {
            "case": self.case,
            "metric": self.metric,
            "unit": self.unit,
            "median": med,
            "min": min(self.values) if self.values else None,
            "max": max(self.values) if self.values else None,
            "runs": len(self.values),
            "values": self.values,
            "peer": self.peer,
            "peer_median": peer_med,
            "peer_values": self.peer_values,
            "ratio": ratio,
            "target": self.target,
            "met": met,
            "note": self.note,
        }


def median(values: list[float]) -> float | None:
    """Median, None for no values."""
    if not values:
        return None
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def machine_info() -> dict:
    """Cores, CPU, memory, OS, Python and the versions of everything measured."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("jupyter_taskstream", "jupyter_server", "tornado", "jupyter_client", "ipykernel", "ipywidgets",
                 "anywidget", "tqdm", "rich", "sse-starlette", "starlette", "uvicorn", "uvloop", "httptools",
                 "httpx", "psutil"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
    }


def raise_nofile(target: int = 65536) -> int:
    """Raise this process's open-file limit toward ``target`` (5,000 sockets need it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ProcessProbe:
    """CPU seconds (user+system, children excluded) and RSS of one server process."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        return self.proc.memory_info().rss


class _Server:
    """A server subprocess on 127.0.0.1 with a readiness probe and a bounded stop."""

    name = "server"
    proc: subprocess.Popen | None = None

    def __init__(self) -> None:
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"tsbench-{self.name}-"))
        self.token = secrets.token_hex(24)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_path(self) -> str:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def start(self, timeout: float = 60.0) -> _Server:
        self.log_file = open(self.tmp / "server.log", "wb")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.tmp, env=self.env(), stdout=self.log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=raise_nofile,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                r = httpx.get(self.base + self.ready_path(), headers=self.headers, timeout=2)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise Timeout(f"{self.name} did not answer within {timeout} s: {self.log_tail()}")
            time.sleep(0.1)
        self.probe = ProcessProbe(self.proc.pid)
        return self

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.tmp / "server.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log_file", None):
            self.log_file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> _Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HubServer(_Server):
    """``jupyter server`` with only jupyter_taskstream enabled, on loopback, with a token."""

    name = "hub"

    def __init__(self, **options: Any):
        super().__init__()
        self.options = options

    def command(self) -> list[str]:
        extensions = {name: False for name in OTHER_EXTENSIONS}
        extensions["jupyter_taskstream"] = True
        config = self.tmp / "bench_config.py"
        config.write_text(
            f"c.ServerApp.jpserver_extensions = {extensions!r}\n"
            "c.ServerApp.open_browser = False\n"
        )
        cmd = [
            sys.executable, "-c", _LAUNCH_SERVER, f"--config={config}",
            f"--ServerApp.ip={HOST}", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", "--ServerApp.open_browser=False", "--allow-root",
            f"--ServerApp.root_dir={self.tmp}", "--ServerApp.log_level=WARN",
        ]
        cmd += [f"--TaskStreamApp.{k}={v}" for k, v in self.options.items()]
        return cmd

    def env(self) -> dict[str, str]:
        env = super().env()
        # Its own runtime dir, so a case finds the connection files of the kernels it starts.
        env["JUPYTER_RUNTIME_DIR"] = str(self.tmp / "runtime")
        # ... and its own data dir, so its task database is its own (the default store is SQLite).
        env["JUPYTER_DATA_DIR"] = str(self.tmp / "data")
        env["JUPYTER_CONFIG_DIR"] = str(self.tmp / "config")
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def ready_path(self) -> str:
        return "/taskstream/api/tasks"

    @property
    def api(self) -> str:
        return self.base + "/taskstream/api"


class PeerServer(_Server):
    """The sse-starlette peer (`benchmarks.peers.sse_peer`) on uvicorn, uvloop and httptools if present."""

    name = "peer"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "benchmarks.peers.sse_peer:app", "--host", HOST,
            "--port", str(self.port), "--log-level", "warning", "--no-access-log", "--backlog", "2048",
        ]

    def ready_path(self) -> str:
        return "/status"


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
