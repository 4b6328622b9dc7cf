"""The deployment ledger: what each environment runs, and every change to it, in the registry store.

Per environment, under `_deploy/ENV/`:

    state.json            what llmci applied last (the router's weights, each version's Serve
                          application) and the lease of a deploy in progress; changed by
                          compare-and-swap, like stage pointers
    events/NNNNNNNNNN.json one entry per deploy, step, gate, rollback and retirement; created
                          only if absent, so the history is append-only and never rewritten

The lease keeps two deploys of one environment from interleaving: a second
one is refused (exit 5) until the first ends or its lease expires.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmci.errors import ConflictError
from llmci.registry.manifest import now
from llmci.registry.store import ObjectNotFound, PreconditionFailed, Store
from llmci.serve.routing import RouterConfig

Action = Literal[
    "deploy", "step", "gate", "smoke", "shadow", "rollback", "retire", "deployed", "failed", "noop", "reconfigure"
]
_ATTEMPTS = 50


class Lease(BaseModel):
    holder: str
    since: str
    expires: str


class EnvState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str
    router: RouterConfig = Field(default_factory=RouterConfig)
    #: Serve application name -> the application config llmci applied for it (router and versions).
    apps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    lease: Lease | None = None
    updated_at: str | None = None


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    at: str
    env: str
    action: Action
    model: str | None = None
    version: int | None = None
    #: The version that served before this change (the one a rollback returns to).
    previous: int | None = None
    #: NAME@VERSION -> percent of the model's traffic, after this change.
    weights: dict[str, float] = Field(default_factory=dict)
    actor: str | None = None
    workflow_run_url: str | None = None
    commit: str | None = None
    serve_config_digest: str | None = None
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class Ledger:
    def __init__(self, store: Store, env: str) -> None:
        self.store = store
        self.env = env
        self.prefix = f"_deploy/{env}"
        self._holder: str | None = None

    # -- state -----------------------------------------------------------------------------

    def state(self) -> tuple[EnvState, str | None]:
        try:
            data, etag = self.store.read(f"{self.prefix}/state.json")
        except ObjectNotFound:
            return EnvState(env=self.env), None
        return EnvState.model_validate_json(data), etag

    def save(self, state: EnvState, etag: str | None) -> str:
        """Write `state` if nobody changed it since `etag`; the new ETag."""
        state = state.model_copy(update={"updated_at": now()})
        data = state.model_dump_json(indent=2).encode() + b"\n"
        key = f"{self.prefix}/state.json"
        try:
            return self.store.create(key, data) if etag is None else self.store.replace(key, data, etag)
        except PreconditionFailed:
            raise ConflictError(
                f"the deploy state of {self.env} changed under this deploy", hint="another deploy ran; re-run"
            ) from None

    def record(self, state: EnvState) -> None:
        """Save what a deploy applied, keeping its lease; refused when the lease is no longer ours."""
        current, etag = self.state()
        if self._holder is not None and (current.lease is None or current.lease.holder != self._holder):
            raise ConflictError(f"the deploy lease of {self.env} was taken over", hint="another deploy runs; re-run")
        self.save(state.model_copy(update={"lease": current.lease}), etag)

    @contextmanager
    def lease(self, holder: str, ttl_s: float = 3600) -> Iterator[None]:
        """Hold the environment for one deploy; states saved meanwhile keep the lease (`record` copies it)."""
        holder = f"{holder} [{uuid.uuid4().hex[:12]}]"  # unique: two runs of one deploy never free each other's
        state, etag = self.state()
        moment = datetime.now(timezone.utc)
        if state.lease is not None and datetime.fromisoformat(state.lease.expires) > moment:
            raise ConflictError(
                f"a deploy to {self.env} is in progress ({state.lease.holder}, since {state.lease.since})",
                hint=f"wait for it, or for its lease to expire at {state.lease.expires}",
            )
        lease = Lease(holder=holder, since=now(), expires=(moment + timedelta(seconds=ttl_s)).isoformat())
        self.save(state.model_copy(update={"lease": lease}), etag)
        self._holder = holder
        try:
            yield
        finally:
            self._holder = None
            state, etag = self.state()
            if state.lease is not None and state.lease.holder == holder:
                self.save(state.model_copy(update={"lease": None}), etag)

    # -- events ----------------------------------------------------------------------------

    def append(self, action: Action, **fields: Any) -> Event:
        for _ in range(_ATTEMPTS):
            seq = max(self._seqs(), default=0) + 1
            event = Event(seq=seq, at=now(), env=self.env, action=action, **fields)
            try:
                self.store.create(f"{self.prefix}/events/{seq:010d}.json", event.model_dump_json().encode())
            except PreconditionFailed:
                continue  # another writer took this number
            return event
        raise ConflictError(f"could not append to the deploy ledger of {self.env}")

    def events(self) -> list[Event]:
        out = []
        for seq in self._seqs():
            data, _ = self.store.read(f"{self.prefix}/events/{seq:010d}.json")
            out.append(Event.model_validate(json.loads(data)))
        return out

    def _seqs(self) -> list[int]:
        names = self.store.children(f"{self.prefix}/events")
        return sorted(int(name[:-5]) for name in names if name.endswith(".json") and name[:-5].isdigit())
