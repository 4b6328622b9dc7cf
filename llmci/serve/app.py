"""The Ray Serve deployments, and the builders a Serve config's `import_path` names.

An environment is one router application (`build_router`: the HTTP ingress
and a counters deployment) plus one application per model version
(`build_model`). Adding or removing a version adds or removes its own
application and leaves the others' replicas alone; weights move through the
router's `user_config`, which Serve applies in place (`reconfigure`).
"""

import asyncio
import random
import time
from typing import Any

from pydantic import BaseModel, ConfigDict
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from llmci.errors import first_line
from llmci.monitor.descriptors import charset, non_ascii_share
from llmci.serve.batching import Batcher
from llmci.serve.protocol import (
    Answer,
    Call,
    GenerationRequest,
    Output,
    RequestError,
    answer_body,
    error_body,
    models_body,
    parse,
)
from llmci.serve.recording import Recorder, last_user_message
from llmci.serve.routing import Batching, Counts, RouterConfig, VersionRoute, choose, counts_key

#: How often a router replica sends its counters to the stats deployment.
FLUSH_S = 0.2
#: The header naming the version that answered.
VERSION_HEADER = "x-llmci-model-version"


class ModelArgs(BaseModel):
    """What a model application is built from (the Serve config's `args`)."""

    model_config = ConfigDict(extra="forbid")

    registry: str
    endpoint_url: str | None = None
    ref: str
    digest: str
    cache_dir: str
    threads: int = 1
    #: Part of the application's code version: a new llmci restarts the replicas with its code.
    llmci_version: str


class RouterArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str
    llmci_version: str


@serve.deployment(name="model", max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
class ModelServer:
    """One registry version: pulled and verified, loaded once, answering batches."""

    def __init__(self, args: dict[str, Any]) -> None:
        from pathlib import Path

        from llmci.registry import Registry, open_store, pull_cached
        from llmci.serve.generator import Generator

        settings = ModelArgs.model_validate(args)
        registry = Registry(open_store(settings.registry, endpoint_url=settings.endpoint_url), progress=False)
        manifest, folder = pull_cached(registry, settings.ref, Path(settings.cache_dir), Path(settings.cache_dir))
        if manifest.digest != settings.digest:  # the registry changed under us: never serve other bytes
            raise RuntimeError(f"{settings.ref} has digest {manifest.digest}, the deploy expected {settings.digest}")
        self.version = manifest.ref
        self.generator = Generator(folder, threads=settings.threads)
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.max_batch_size = 8

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.max_batch_size = int(config.get("max_batch_size", 8))

    async def answer_many(self, calls: list[Call]) -> list[Answer]:
        """The answers to a batch of OpenAI requests (the router sends them), with what the monitor records.

        One `generate` per `max_batch_size` requests; a request that cannot be parsed or rendered is
        answered alone (4xx, or 500 for what nothing foresaw) and the rest go on.
        """
        answers: list[Answer | None] = [None] * len(calls)
        todo: list[tuple[int, GenerationRequest, str]] = []
        for index, call in enumerate(calls):
            try:
                request = parse(call.path, call.body)
                todo.append((index, request, self.generator.prompt(request)))
            except RequestError as exc:
                answers[index] = Answer(exc.status, exc.body(), self.version, {"replica": self.replica})
            except Exception as exc:  # a request nothing foresaw fails alone, never its batch
                body = error_body(f"the request could not be prepared: {first_line(exc)}", "server_error")
                answers[index] = Answer(500, body, self.version, {"replica": self.replica})
        for start in range(0, len(todo), self.max_batch_size):
            chunk = todo[start : start + self.max_batch_size]
            started = time.time()
            results = await asyncio.to_thread(
                self.generator.generate, [request for _, request, _ in chunk], [prompt for _, _, prompt in chunk]
            )
            for (index, request, prompt), result in zip(chunk, results, strict=True):
                answers[index] = self._answer(request, prompt, result, started - calls[index].queued_at)
        return answers  # type: ignore[return-value]

    async def answer(self, path: str, body: Any) -> Answer:
        """One request, as routers of an llmci from before the router batched send it (during an upgrade)."""
        (answer,) = await self.answer_many([Call(path, body, time.time())])
        return answer

    def _answer(
        self, request: GenerationRequest, prompt: str, result: Output | RequestError, queued_s: float
    ) -> Answer:
        # A chat's descriptors are those of what the user wrote (its last message), as an eval case's input
        # is: the chat template's system prompt and markers would make every window look drifted.
        described = (last_user_message(request.messages) if request.kind == "chat" else prompt) or ""
        extra: dict[str, Any] = {
            "replica": self.replica,
            "queue_ms": max(queued_s, 0.0) * 1000,
            "prompt_chars": len(described),
            "non_ascii_share": non_ascii_share(described),
            "charset": charset(described),
        }
        if isinstance(result, RequestError):
            return Answer(result.status, result.body(), self.version, extra)
        extra["oov_share"] = result.unknown_tokens / result.prompt_tokens if result.prompt_tokens else 0.0
        return Answer(200, answer_body(request, result, self.version), self.version, extra)

    async def check_health(self) -> None:
        """Healthy means it still generates: one token from a one-word prompt."""
        probe = GenerationRequest(kind="completion", model=self.version, prompt="ok", max_tokens=1)
        (result,) = await asyncio.to_thread(self.generator.generate, [probe], ["ok"])
        if isinstance(result, RequestError):
            raise RuntimeError(f"{self.version} cannot generate: {result.message}")


@serve.deployment(name="stats", num_replicas=1, ray_actor_options={"num_cpus": 0})
class Stats:
    """The environment's traffic counters, summed over every router replica."""

    def __init__(self) -> None:
        self.counts: dict[str, Counts] = {}
        self.started = time.time()

    def merge(self, deltas: dict[str, dict[str, Any]]) -> None:
        for key, delta in deltas.items():
            self.counts.setdefault(key, Counts()).merge(Counts.from_json(delta))

    def snapshot(self) -> dict[str, Any]:
        return {"at": time.time(), "started": self.started, "counts": {k: c.to_json() for k, c in self.counts.items()}}


@serve.deployment(name="router", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.1})
class Router:
    """The environment's HTTP ingress: the OpenAI API, routed to versions by weight, pin or user."""

    def __init__(self, stats: Any, env: str) -> None:
        self.stats = stats
        self.env = env
        self.config = RouterConfig()
        self.handles: dict[str, Any] = {}
        self.batchers: dict[str, Batcher[Call, Answer]] = {}
        self.shadows: set[asyncio.Task[None]] = set()
        self.pending: dict[str, Counts] = {}
        self.rng = random.Random()
        self.flusher: asyncio.Task | None = None
        self.recorder = Recorder(env)

    def reconfigure(self, config: dict[str, Any]) -> None:
        parsed = RouterConfig.model_validate(config)
        apps = {route.app for routes in parsed.models.values() for route in routes.versions.values()}
        # Not checked for existence: a route can name an application Serve is still building.
        handles = {
            app: self.handles.get(app) or serve.get_deployment_handle("model", app_name=app, _check_exists=False)
            for app in apps
        }
        # A batcher whose version left (or whose sizes changed) is dropped: the requests it holds still go
        # out to the handle it was made with, as the application stays up until the router has let it go.
        same = parsed.batching == self.config.batching
        self.batchers = {app: b for app, b in self.batchers.items() if same and app in apps}
        self.config, self.handles = parsed, handles  # one assignment each: requests in flight see old or new
        self.recorder.configure(parsed.records)

    async def __call__(self, request: Request) -> JSONResponse:
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        path = _relative_path(request)
        if request.method == "GET" and path == "/-/healthz":
            return JSONResponse({"status": "ok", "env": self.env})
        if request.method == "GET" and path == "/-/llmci/stats":
            return JSONResponse(await self.stats.snapshot.remote())
        if request.method == "GET" and path == "/v1/models":
            names = [f"{m}@{v}" for m, r in sorted(self.config.models.items()) for v in sorted(r.versions)]
            return JSONResponse(models_body(sorted(self.config.models) + names))
        if request.method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            return JSONResponse(error_body(f"no such endpoint: {request.method} {path}", code="not_found"), 404)
        received, started = time.time(), time.perf_counter()
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(error_body("the request body is not JSON"), 400)
        config = self.config
        try:
            requested = body.get("model") if isinstance(body, dict) else None
            if not isinstance(requested, str) or not requested:
                raise RequestError(400, "'model' is required: the model's name, or NAME@VERSION for one version")
            sticky = request.headers.get(config.sticky_header) if config.sticky_header else None
            user = body.get("user")
            choice = choose(config, requested, sticky or (user if isinstance(user, str) and user else None), self.rng)
        except RequestError as exc:  # no such model, or none of its versions takes traffic: recorded too
            if isinstance(requested, str) and requested:
                latency_ms = (time.perf_counter() - started) * 1000
                answer = Answer(exc.status, exc.body())
                self.recorder.record(
                    received, requested.partition("@")[0], None, "live", path, body, answer, latency_ms
                )
            return JSONResponse(exc.body(), exc.status)
        shadow = config.models[choice.model].shadow
        if shadow is not None and shadow != choice.version and shadow in config.models[choice.model].versions:
            route = config.models[choice.model].versions[shadow]
            task = asyncio.get_running_loop().create_task(
                self._shadow(choice.model, shadow, route, path, body, received)
            )
            self.shadows.add(task)  # referenced until done: the loop keeps only weak references to tasks
            task.add_done_callback(self.shadows.discard)
        answer = await self._ask(choice.route, path, body)
        kind = "pinned" if choice.pinned else "live"
        latency_ms = self._count(counts_key(choice.model, choice.version, kind), answer, started)
        self.recorder.record(received, choice.model, choice.version, kind, path, body, answer, latency_ms)
        headers = {VERSION_HEADER: answer.version or f"{choice.model}@{choice.version}"}
        return JSONResponse(answer.body, answer.status, headers=headers)

    async def _ask(self, route: VersionRoute, path: str, body: Any) -> Answer:
        try:
            if not route.batched:  # deployed by an llmci from before the router batched: one call a request
                return await self.handles[route.app].answer.remote(path, body)
            batcher = self.batchers.get(route.app)
            if batcher is None:
                batcher = self.batchers[route.app] = self._batcher(self.handles[route.app], self.config.batching)
            return await batcher(Call(path, body, time.time()))
        except Exception as exc:  # the replica died or raised: the client gets a 500, the counters an error
            return Answer(500, error_body(f"the model failed: {first_line(exc)}", "server_error"))

    @staticmethod
    def _batcher(handle: Any, batching: Batching) -> Batcher[Call, Answer]:
        """Requests for one version go to it in batches: one Ray call per batch, not per request."""

        async def send(calls: list[Call]) -> list[Answer]:
            return await handle.answer_many.remote(calls)

        return Batcher(
            send,
            max_size=batching.max_batch_size,
            wait_s=batching.batch_wait_timeout_s,
            concurrency=batching.max_concurrent_batches,
        )

    async def _shadow(
        self, model: str, version: int, route: VersionRoute, path: str, body: Any, received: float
    ) -> None:
        """A mirrored request: its answer is counted and recorded (kind `shadow`), never returned."""
        started = time.perf_counter()
        answer = await self._ask(route, path, body)
        latency_ms = self._count(counts_key(model, version, "shadow"), answer, started)
        self.recorder.record(received, model, version, "shadow", path, body, answer, latency_ms)

    def _count(self, key: str, answer: Answer, started: float) -> float:
        """Add the answer to the counters; its latency in ms."""
        latency_ms = (time.perf_counter() - started) * 1000
        usage = (answer.body.get("usage") or {}) if isinstance(answer.body, dict) else {}
        self.pending.setdefault(key, Counts()).add(
            answer.status, latency_ms, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )
        return latency_ms

    def __del__(self) -> None:
        """Serve calls this at graceful shutdown, after requests in flight finished: write the last records."""
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.flush()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            if self.pending:
                pending, self.pending = self.pending, {}
                try:
                    await self.stats.merge.remote({key: counts.to_json() for key, counts in pending.items()})
                except Exception:  # counters are best effort: never let them take the router down
                    for key, counts in pending.items():
                        self.pending.setdefault(key, Counts()).merge(counts)


def _relative_path(request: Request) -> str:
    """The path below the application's route prefix (Serve puts the prefix in root_path)."""
    path, root = request.scope.get("path", "/"), request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return "/" + path.lstrip("/")


def build_model(args: dict[str, Any]):
    return ModelServer.bind(ModelArgs.model_validate(args).model_dump())


def build_router(args: dict[str, Any]):
    settings = RouterArgs.model_validate(args)
    return Router.bind(Stats.bind(), settings.env)
