"""What the cluster says of an environment: llmci's deploy state, Serve's application status, Prometheus.

The monitor never starts a Ray head: with no address and no local head
running, the Serve status is left out and the report says so.
"""

from __future__ import annotations

import os

from llmci.config import LoadedConfig
from llmci.deploy import local_head
from llmci.deploy.ledger import Ledger
from llmci.deploy.rollout import environment, version_app
from llmci.errors import LlmciError, first_line
from llmci.monitor.check import ClusterView, prometheus_resources
from llmci.registry.store import Store


def observe(loaded: LoadedConfig, env: str, store: Store, *, address: str | None) -> ClusterView:
    from llmci.deploy.serve_api import ServeAPI

    settings = environment(loaded, env)
    state, etag = Ledger(store, env).state()
    # Never deployed by llmci (no state): every version in the records is judged.
    view = ClusterView(state=state if etag is not None else None)
    address = address or settings.address
    token = os.environ.get("RAY_AUTH_TOKEN") or None
    if not address:
        head = local_head.running(loaded.root)
        if head is not None:
            address, token = head.dashboard, head.token
    if address:
        api = ServeAPI(address, token)
        try:
            view.serve_apps = api.applications()
        except LlmciError as exc:
            view.notes.append(f"Serve status not read: {first_line(exc)}")
        finally:
            api.close()
    else:
        view.notes.append(f"Serve status not read: {env} has no address and no local Ray head is running")
    prometheus = loaded.config.monitor.prometheus_url
    if prometheus:
        apps = {
            f"{model}@{version}": version_app(env, model, version)
            for model, routes in state.router.models.items()
            for version in routes.versions
        }
        view.resources, notes = prometheus_resources(prometheus, env, apps)
        view.notes.extend(notes)
    return view
