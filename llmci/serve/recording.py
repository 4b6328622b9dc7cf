"""What the router records of each request: Parquet records in the registry store, and Prometheus metrics.

Recording never blocks a request and never takes the router down: a record
goes into a bounded buffer (`llmci.monitor.records.RecordBuffer`), a
background task writes it out in a thread every `flush_seconds`, and any
failure there is retried, then counted (`llmci_records_dropped`), never raised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from llmci.monitor.records import Record, RecordBuffer, RecordSettings, private, vars_json
from llmci.serve.protocol import Answer
from llmci.serve.routing import LATENCY_BUCKETS_MS

if TYPE_CHECKING:
    from llmci.registry.store import Store


@dataclass(frozen=True)
class RecordedRequest:
    """One request the router answered (or mirrored), as it is recorded."""

    #: When the router received it (`time.time()`).
    started: float
    model: str
    #: The version that answered; None when no version could be chosen.
    version: int | None
    #: live, pinned or shadow (see `llmci.monitor.records.COLUMNS`).
    kind: str
    #: The path it was sent to: /v1/completions or /v1/chat/completions.
    route: str
    #: The request's JSON body as the client sent it (anything: a body that is not an object records no prompt).
    body: object
    answer: Answer
    #: Time through the router.
    latency_ms: float


class Metrics:
    """The router's Prometheus metrics, exported by Ray with a `ray_` prefix (ray_llmci_requests_total, ...)."""

    def __init__(self) -> None:
        from ray.serve.metrics import Counter, Histogram

        tags = ("env", "model", "version")
        self.requests = Counter(
            "llmci_requests", description="Requests answered, by version and status.", tag_keys=(*tags, "kind", "code")
        )
        self.latency = Histogram(
            "llmci_request_latency_ms",
            description="Latency through the router (ms).",
            boundaries=list(LATENCY_BUCKETS_MS),
            tag_keys=tags,
        )
        self.tokens = Counter("llmci_tokens", description="Tokens in and out.", tag_keys=(*tags, "direction"))
        self.cost = Counter("llmci_cost_usd", description="Token cost of priced models (USD).", tag_keys=tags)
        self.dropped = Counter("llmci_records_dropped", description="Request records not written.", tag_keys=("env",))

    def observe(self, row: Record) -> None:
        version = "" if row["version"] is None else str(row["version"])  # "": the router chose none
        tags = {"env": row["env"], "model": row["model"], "version": version}
        self.requests.inc(1, {**tags, "kind": row["kind"], "code": str(row["status"])})
        if row["kind"] == "shadow":
            return  # a shadow's latency and tokens are not the client's
        self.latency.observe(row["latency_ms"], tags)
        for direction, tokens in (("input", row["input_tokens"]), ("output", row["output_tokens"])):
            if tokens:
                self.tokens.inc(tokens, {**tags, "direction": direction})
        cost = row.get("cost_usd")
        if cost:
            self.cost.inc(cost, tags)


class Recorder:
    """One router replica's records and metrics."""

    def __init__(self, env: str) -> None:
        self.env = env
        self.settings: RecordSettings | None = None
        self.store: Store | None = None
        self.buffer = RecordBuffer()
        self.metrics: Metrics | None = None
        self.rng = random.Random()
        self.task: asyncio.Task | None = None
        self._dropped_reported = 0

    def configure(self, settings: RecordSettings | None) -> None:
        if settings == self.settings:
            return
        store = None
        if settings is not None:
            from llmci.registry import open_store

            store = open_store(settings.registry, endpoint_url=settings.endpoint_url)
            self.buffer.max_buffered = settings.max_buffered
        self.settings, self.store = settings, store

    def record(
        self,
        started: float,
        model: str,
        version: int | None,
        kind: str,
        route: str,
        body: object,
        answer: Answer,
        latency_ms: float,
    ) -> None:
        """Count the request in the metrics, and keep its record if it is sampled."""
        if self.metrics is None:
            self.metrics = Metrics()
        row = self._row(RecordedRequest(started, model, version, kind, route, body, answer, latency_ms))
        self.metrics.observe(row)
        settings = self.settings
        if settings is not None and (settings.sample >= 1 or self.rng.random() < settings.sample):
            self.buffer.add(row)
            if self.task is None:
                self.task = asyncio.get_running_loop().create_task(self._flush_forever())

    def _row(self, request: RecordedRequest) -> Record:
        settings = self.settings
        prompts, outputs = (settings.prompts, settings.outputs) if settings else ("dropped", "dropped")
        price = settings.prices.get(request.model) if settings else None
        payload = request.body if isinstance(request.body, dict) else {}
        answer = request.answer
        result = answer.body if isinstance(answer.body, dict) else {}
        usage = result.get("usage") or {}
        choice = (result.get("choices") or [{}])[0]
        output = choice.get("text") if "text" in choice else (choice.get("message") or {}).get("content")
        input_tokens, output_tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        extra = answer.extra
        return {
            "time": datetime.fromtimestamp(request.started, timezone.utc),
            "env": self.env,
            "model": request.model,
            "version": request.version,
            "kind": request.kind,
            "route": request.route,
            "status": answer.status,
            "latency_ms": request.latency_ms,
            "queue_ms": extra.get("queue_ms"),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": input_tokens * price[0] + output_tokens * price[1] if price else None,
            "prompt": private(_prompt_text(payload), prompts),
            "vars": private(vars_json(_variables(payload)), prompts),
            "prompt_chars": extra.get("prompt_chars"),
            "non_ascii_share": extra.get("non_ascii_share"),
            "charset": extra.get("charset"),
            "oov_share": extra.get("oov_share"),
            "output": private(output if isinstance(output, str) else None, outputs),
            "output_chars": len(output) if isinstance(output, str) else None,
            "finish_reason": choice.get("finish_reason"),
            "replica": extra.get("replica"),
            "request_id": result.get("id"),
            "sample_rate": settings.sample if settings else None,
        }

    async def _flush_forever(self) -> None:
        while True:
            settings = self.settings
            await asyncio.sleep(settings.flush_seconds if settings else 10.0)
            await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        """Write what is buffered (blocking: called in a thread, and once at shutdown)."""
        if self.store is not None:
            self.buffer.flush(self.store, self.env)
        if self.metrics is not None and self.buffer.dropped > self._dropped_reported:
            self.metrics.dropped.inc(self.buffer.dropped - self._dropped_reported, {"env": self.env})
            self._dropped_reported = self.buffer.dropped


def _prompt_text(body: dict[str, Any]) -> str | None:
    """What the user sent: the completion prompt, or the chat's last user message."""
    if isinstance(body.get("prompt"), str):
        return body["prompt"]
    messages = body.get("messages")
    return last_user_message(messages) if isinstance(messages, list) else None


def last_user_message(messages: Sequence[object] | None) -> str | None:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return None


def _variables(body: dict[str, Any]) -> dict[str, Any] | None:
    """llmci's `vars`, or OpenAI's `metadata` (key-value pairs a client attaches to a request)."""
    for key in ("vars", "metadata"):
        if isinstance(body.get(key), dict) and body[key]:
            return body[key]
    return None
