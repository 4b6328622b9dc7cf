"""Ray Serve's REST API on the dashboard (`http://HEAD:8265`): what `serve deploy` does.

`PUT /api/serve/applications/` is declarative over the whole cluster:
applications missing from the body are deleted. So every change llmci makes
reads the applied configs first and sends them back unchanged, with only its
environment's applications edited. The PUT answers before anything is
deployed; readiness is polled from `GET`. Ray's token (`RAY_AUTH_TOKEN`) goes
in `Authorization: Bearer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llmci.errors import ClusterError
from llmci.redact import redact_userinfo, without_userinfo

APPLICATIONS = "/api/serve/applications/"
#: Application statuses that end a wait for RUNNING.
FAILED = ("DEPLOY_FAILED", "UNHEALTHY")


class ServeAPI:
    def __init__(self, address: str, token: str | None = None, *, timeout_s: float = 30.0) -> None:
        import httpx

        self.address = address.rstrip("/")
        self.shown = without_userinfo(self.address)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The dashboard refuses writes that look like a browser's: httpx's own User-Agent, no Origin.
        self.client = httpx.Client(base_url=self.address, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClusterError(
                f"Ray dashboard at {self.shown}: {redact_userinfo(str(exc)) or type(exc).__name__}",
                hint="is the cluster up, and is --address its dashboard (port 8265)?",
            ) from None
        if response.status_code in (401, 403):
            raise ClusterError(
                f"Ray dashboard at {self.shown}: HTTP {response.status_code}, the token was refused",
                hint="set RAY_AUTH_TOKEN to the cluster's token",
            )
        if response.status_code == 501:
            raise ClusterError(f"Ray dashboard at {self.shown}: Ray Serve is not installed on the cluster (HTTP 501)")
        if response.status_code >= 400:
            detail = " ".join(response.text.split())[:300]
            raise ClusterError(f"Ray dashboard at {self.shown}: {method} {path}: HTTP {response.status_code}: {detail}")
        return response.json() if response.content else None

    def applications(self) -> dict[str, Any]:
        """Every Serve application: status, message, deployments, replicas and the config it runs."""
        return self._request("GET", APPLICATIONS).get("applications") or {}

    def applied_configs(self) -> dict[str, dict[str, Any]]:
        """name -> the application config the cluster runs now (what a PUT must repeat to keep it)."""
        return {
            name: app["deployed_app_config"]
            for name, app in self.applications().items()
            if app.get("deployed_app_config") is not None
        }

    def apply(self, config: dict[str, Any]) -> None:
        self._request("PUT", APPLICATIONS, json=config)

    def wait(
        self,
        ready: Callable[[dict[str, Any]], bool],
        *,
        timeout_s: float,
        watch: list[str],
        poll_s: float = 0.5,
    ) -> dict[str, Any]:
        """Poll until `ready(applications)`; ClusterError when an app in `watch` fails, or at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            apps = self.applications()
            if ready(apps):
                return apps
            for name in watch:
                app = apps.get(name) or {}
                if app.get("status") in FAILED:
                    raise AppFailed(name, app.get("status"), _why(app))
            if time.monotonic() > deadline:
                late = [n for n in watch if (apps.get(n) or {}).get("status") != "RUNNING"] or watch
                states = "; ".join(
                    f"{n} {(apps.get(n) or {}).get('status', 'absent')}: {_why(apps.get(n) or {})}" for n in late
                )
                raise AppFailed(", ".join(late), "TIMEOUT", f"not running after {timeout_s:.0f} s ({states})")
            time.sleep(poll_s)


class AppFailed(ClusterError):
    """A Serve application did not reach RUNNING (DEPLOY_FAILED, UNHEALTHY, or the deadline passed)."""

    def __init__(self, app: str, status: str | None, message: str) -> None:
        super().__init__(f"Serve application {app} is {status}: {message}")
        self.app = app
        self.status = status


def _why(app: dict[str, Any]) -> str:
    """The failing deployment's reason (its replica's exception), else the application's message."""
    for deployment in (app.get("deployments") or {}).values():
        if deployment.get("status") != "HEALTHY" and deployment.get("message"):  # e.g. a replica nobody can schedule
            return _last_line(deployment["message"])
    return _last_line(app.get("message") or "")


def _last_line(text: str) -> str:
    """Serve's messages carry whole tracebacks: the last line says what went wrong."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return redact_userinfo(lines[-1][:400]) if lines else "no message"
