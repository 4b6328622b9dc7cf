"""Which version answers a request, and the traffic counters the deploy gates read.

The router's `user_config` is a `RouterConfig`: per model, its versions with
weights (and the Serve application serving each), and an optional shadow
version that gets a copy of every request, answered into the counters and
never to the client. A request names `NAME` (the weights decide) or
`NAME@VERSION` (pinned: that version, whatever its weight). With the sticky
header set, a user's bucket (a hash of the header) picks the version, so one
user keeps one version while weights move; newer versions take the low
buckets, so a user who reached the canary stays on it as its weight grows.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmci.monitor.records import RecordSettings
from llmci.serve.protocol import RequestError

#: Upper bounds (ms) of the latency histogram; the last bucket is everything slower.
LATENCY_BUCKETS_MS = (5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000)


class VersionRoute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(description="The Serve application serving this version.")
    weight: float = Field(0, ge=0, le=100, description="Share of the model's traffic, in percent.")
    batched: bool = Field(
        False, description="Its replicas take the router's batches (answer_many); older ones one request a call."
    )


class ModelRoutes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    versions: dict[int, VersionRoute] = Field(default_factory=dict)
    shadow: int | None = Field(None, description="A version that gets a copy of every request, answers unseen.")


class Batching(BaseModel):
    """How the router batches a version's requests (the environment's settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(8, ge=1, description="Requests sent to a version in one call, generated together.")
    batch_wait_timeout_s: float = Field(
        0.01, ge=0, description="How long a request that finds the version idle waits for company."
    )
    max_concurrent_batches: int = Field(2, ge=1, description="Batches in flight per version per router replica.")


class RouterConfig(BaseModel):
    """The router deployment's user_config: changed in place (reconfigure), never restarting a replica."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, ModelRoutes] = Field(default_factory=dict)
    sticky_header: str | None = Field("x-llmci-user", description="Header whose value keeps a user on one version.")
    records: RecordSettings | None = Field(None, description="Where request records go (monitor); none: not recorded.")
    batching: Batching = Field(default_factory=Batching)


@dataclass(frozen=True)
class Choice:
    model: str
    version: int
    route: VersionRoute
    pinned: bool

    @property
    def app(self) -> str:
        return self.route.app


def choose(config: RouterConfig, requested: str, sticky: str | None, rng: random.Random) -> Choice:
    """The version that answers a request for `requested` (NAME or NAME@VERSION)."""
    name, _, pin = requested.partition("@")
    routes = config.models.get(name)
    if routes is None:
        known = ", ".join(sorted(config.models)) or "none"
        raise RequestError(404, f"model '{name}' is not served here (models: {known})", code="model_not_found")
    if pin:
        version = int(pin) if pin.isascii() and pin.isdigit() else -1
        if version not in routes.versions:
            served = ", ".join(f"{name}@{v}" for v in sorted(routes.versions))
            raise RequestError(404, f"{requested} is not served here ({served})", code="model_not_found")
        return Choice(name, version, routes.versions[version], pinned=True)
    live = sorted(((v, r) for v, r in routes.versions.items() if r.weight > 0), key=lambda item: -item[0])
    if not live:
        raise RequestError(503, f"model '{name}' has no version taking traffic", kind="server_error")
    total = sum(route.weight for _, route in live)
    point = (bucket(sticky) if sticky else rng.random() * 100.0) * total / 100.0
    for version, route in live:
        point -= route.weight
        if point < 0:
            return Choice(name, version, route, pinned=False)
    version, route = live[-1]
    return Choice(name, version, route, pinned=False)


def bucket(key: str) -> float:
    """A stable place in [0, 100) for a user key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 10_000 / 100.0


@dataclass
class Counts:
    """Requests of one (model, version, traffic kind) since the router started."""

    requests: int = 0
    errors: int = 0  # 5xx: the server failed
    rejected: int = 0  # 4xx: the request was refused
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    def add(self, status: int, latency_ms: float, input_tokens: int = 0, output_tokens: int = 0) -> None:
        self.requests += 1
        self.errors += status >= 500
        self.rejected += 400 <= status < 500
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.latency_ms[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1

    def merge(self, other: Counts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.rejected += other.rejected
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.latency_ms = [a + b for a, b in zip(self.latency_ms, other.latency_ms, strict=True)]

    def minus(self, earlier: Counts) -> Counts:
        return Counts(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            self.rejected - earlier.rejected,
            self.input_tokens - earlier.input_tokens,
            self.output_tokens - earlier.output_tokens,
            [a - b for a, b in zip(self.latency_ms, earlier.latency_ms, strict=True)],
        )

    def quantile_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (conservative); None without requests."""
        total = sum(self.latency_ms)
        if total == 0:
            return None
        seen = 0
        for index, count in enumerate(self.latency_ms):
            seen += count
            if seen >= q * total:
                return float(LATENCY_BUCKETS_MS[index]) if index < len(LATENCY_BUCKETS_MS) else float("inf")
        return float("inf")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        return cls(**data)


def counts_key(model: str, version: int, kind: str) -> str:
    """`NAME@VERSION/kind`, kind: live (the weights chose it), pinned (asked for by version) or shadow."""
    return f"{model}@{version}/{kind}"
