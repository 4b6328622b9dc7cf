"""`llmci deploy`: approved registry versions onto Ray Serve, with canary steps and rollback.

`open_deployer` connects an environment to its cluster: the `--address` (or
`deploy.environments.ENV.address`) of a Ray dashboard, or with neither, the
local head this machine runs for llmci (started on first use).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlsplit

from llmci import gha
from llmci.config import LoadedConfig
from llmci.deploy import local_head
from llmci.deploy.rollout import Deployer, Outcome, environment
from llmci.deploy.serve_api import ServeAPI
from llmci.registry import Registry

__all__ = ["Deployer", "Outcome", "open_deployer"]


def open_deployer(
    loaded: LoadedConfig,
    env: str,
    registry: Registry,
    *,
    address: str | None,
    actor: str,
    say: Callable[[str], None],
    start_local: bool = True,
) -> Deployer:
    settings = environment(loaded, env)
    address = address or settings.address
    if address:
        token = os.environ.get("RAY_AUTH_TOKEN") or None
        if token:
            gha.add_mask(token)
        host = urlsplit(address).hostname or "127.0.0.1"
        serve_url = settings.serve_url or f"http://{host}:8000"
        embedded = False
    else:
        if gha.in_actions() and os.environ.get("LLMCI_LOCAL_HEAD") != "true":
            from llmci.errors import UsageError

            raise UsageError(
                f"{env}: no Ray cluster to deploy to (no --address, no deploy.environments.{env}.address)",
                hint="a head on the runner is gone when the job ends; set LLMCI_LOCAL_HEAD=true for a throwaway one",
            )
        head = (
            local_head.ensure(loaded.root, http_port=settings.http_port)
            if start_local
            else local_head.running(loaded.root)
        )
        if head is None:
            from llmci.errors import ClusterError

            raise ClusterError(
                f"{env}: no local Ray head is running", hint=f"deploy a version: llmci deploy NAME@VERSION --env {env}"
            )
        address, token = head.dashboard, head.token
        serve_url = settings.serve_url or f"http://127.0.0.1:{head.http_port}"
        embedded = True
    api = ServeAPI(address, token)
    # On the local head every environment's deploy runs on this machine: a file lock serializes their PUTs.
    lock = local_head.folder(loaded.root) / "cluster.lock" if embedded else None
    return Deployer(loaded, env, registry, api, serve_url, actor=actor, say=say, embedded=embedded, lock_path=lock)
