"""The embedded default: one local Ray head (dashboard, token auth) that Serve runs on.

Started once (`ray start --head --block` from this Python's environment, so
its workers import this llmci) and reused by later deploys of any
environment; each environment is its own route prefix on the same Serve HTTP
port. Its address, ports and token live in `.llmci/serve/` beside llmci.yaml
(the token file is 0600). `stop` ends only this head's process group, never
another Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from llmci.errors import ClusterError
from llmci.fsutil import atomic_write_text

#: Seconds a new head has to answer (its start took ~14 s on 2 cores).
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Head:
    dashboard: str
    token: str
    http_port: int
    metrics_port: int
    pid: int


def folder(root: Path) -> Path:
    return root / ".llmci" / "serve"


def ensure(root: Path, *, http_port: int) -> Head:
    """The running local head, started first if there is none (or it died)."""
    place = folder(root)
    place.mkdir(parents=True, exist_ok=True)
    token = _token(place)
    head = running(root)
    if head is not None:
        return head
    return _start(place, token, http_port)


def running(root: Path) -> Head | None:
    """The local head if its record exists and its dashboard answers with our token."""
    place = folder(root)
    try:
        info = json.loads((place / "head.json").read_text())
        token = (place / "token").read_text().strip()
    except (OSError, ValueError):
        return None
    head = Head(info["dashboard"], token, info["http_port"], info["metrics_port"], info["pid"])
    return head if _answers(head.dashboard, token) else None


def stop(root: Path) -> bool:
    """Stop the local head (its whole process group); False when none was running."""
    place = folder(root)
    try:
        info = json.loads((place / "head.json").read_text())
    except (OSError, ValueError):
        return False
    if Path("/proc").is_dir() and not _is_our_head(
        info["pid"]
    ):  # the head is gone and its pid may belong to someone else now
        (place / "head.json").unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):  # `ray start --block` stops the head's processes on SIGTERM
        os.killpg(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _alive(info["pid"]):
        time.sleep(0.2)
    (place / "head.json").unlink(missing_ok=True)
    return True


def _start(place: Path, token: str, http_port: int) -> Head:
    dashboard_port, gcs_port, metrics_port = _free_port(), _free_port(), _free_port()
    ray = Path(sys.executable).with_name("ray")
    # Ray starts its workers at niceness 15 to keep a driver responsive; on this head the workers are the
    # service, and a deploy command starting beside them at 0 held live requests for 600 ms (p99 3-6x
    # steady state through a canary on 2 cores, 1.5-1.9x at 0). A RAY_worker_niceness of the user's wins.
    env = {"RAY_worker_niceness": "0", **os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    # Logical CPUs are scheduling tokens, not cores: enough for several environments, each with a
    # router and two versions side by side during a canary (torch threads follow num_cpus, not these).
    cpus = max(16, 4 * (os.cpu_count() or 1))
    log = open(place / "head.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [
            str(ray),
            "start",
            "--head",
            f"--port={gcs_port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            "--include-dashboard=true",
            f"--metrics-export-port={metrics_port}",
            f"--num-cpus={cpus}",
            "--disable-usage-stats",
            "--block",
        ],
        cwd=place,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stop() ends exactly this head
    )
    log.close()
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(dashboard, token):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (place / "head.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ClusterError(f"the local Ray head did not start: {tail[0]}", hint=f"see {place / 'head.log'}")
        time.sleep(0.5)
    head = Head(dashboard, token, http_port, metrics_port, process.pid)
    record = {"dashboard": dashboard, "http_port": http_port, "metrics_port": metrics_port, "pid": process.pid}
    atomic_write_text(place / "head.json", json.dumps(record, indent=2) + "\n")
    return head


def _token(place: Path) -> str:
    path = place / "token"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def _answers(dashboard: str, token: str) -> bool:
    import httpx

    try:
        response = httpx.get(f"{dashboard}/api/ray/version", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _is_our_head(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"start" in command and b"--head" in command and b"--block" in command


def _alive(pid: int) -> bool:
    try:  # our own child (a test, a long-lived caller): reap it, or it lingers as a zombie
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
