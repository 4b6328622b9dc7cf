"""`llmci deploy`: an approved version into an environment, step by step, undone when a check fails.

The order keeps the environment serving throughout:

1. the new version gets its own Serve application; the router does not send it
   traffic yet (weight 0), so its replicas start while the old version serves;
2. once every replica is RUNNING, the smoke eval runs against it through the
   router, pinned (`model: NAME@VERSION`);
3. weights move in the canary steps; after each, the gates watch the new
   version's live traffic (error rate, p95 latency) for `step_seconds`;
4. at 100% and a passed final gate, the old versions leave the router, then
   their applications are removed (Serve drains requests in flight).

A failure at any point puts the router's weights back first, then removes the
new application: the old version never stops serving. Every step is a ledger
event; the state llmci applied is kept in the registry store, so a rollback
needs nothing from the cluster's own memory.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmci import __version__
from llmci.config import EnvironmentConfig, LoadedConfig
from llmci.deploy.ledger import EnvState, Event, Ledger
from llmci.deploy.serve_api import AppFailed, ServeAPI
from llmci.errors import ClusterError, ConfigError, NotApprovedError, RolledBackError, UsageError, first_line
from llmci.fsutil import atomic_write_text, cache_dir
from llmci.lint.model import require_clean_templates
from llmci.monitor.records import RecordSettings
from llmci.registry import Manifest, Registry
from llmci.registry.manifest import lineage_from_environment
from llmci.registry.versions import sigterm_raises
from llmci.serve.routing import Batching, Counts, ModelRoutes, RouterConfig, VersionRoute, counts_key

ROUTER_IMPORT = "llmci.serve.app:build_router"
MODEL_IMPORT = "llmci.serve.app:build_model"
POLL_S = 0.5
#: Seconds the router's counters may stay unreadable before a step counts as breached.
UNREADABLE_S = 10.0


@dataclass
class GateResult:
    passed: bool
    reason: str
    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None
    seconds: float = 0.0

    def line(self) -> str:
        p95 = "-" if self.p95_ms is None else f"<= {self.p95_ms:.0f} ms"
        verdict = "pass" if self.passed else "BREACH"
        return f"{self.requests} requests, {self.errors} errors, p95 {p95}: {verdict} ({self.reason})"


OutcomeAction = Literal["deployed", "noop", "reconfigured", "rolled-back", "shadowing"]
#: How the job summary heads each outcome.
OUTCOME_ICONS: dict[OutcomeAction, str] = {
    "deployed": "🚀",
    "noop": "✅",
    "reconfigured": "🔧",
    "rolled-back": "↩️",
    "shadowing": "👥",
}


@dataclass
class Outcome:
    env: str
    ref: str
    action: OutcomeAction
    url: str
    events: list[Event] = field(default_factory=list)


def environment(loaded: LoadedConfig, env: str) -> EnvironmentConfig:
    environments = loaded.config.deploy.environments
    if env not in environments:
        where = loaded.path.name if loaded.path else "llmci.yaml"
        known = ", ".join(sorted(environments)) or "none"
        raise ConfigError(
            f"{where}: deploy.environments has no '{env}' (declared: {known})",
            hint=f"add deploy.environments.{env} to llmci.yaml",
        )
    return environments[env]


def require_approved(registry: Registry, manifest: Manifest) -> None:
    """Only a version a person approved is deployed (a rejected one never, whatever a stage says)."""
    status = registry.status(manifest.name, manifest.version).status
    if status != "approved":
        raise NotApprovedError(
            f"{manifest.ref} is {status}; only approved versions are deployed",
            hint=f"llmci registry approve {manifest.ref} --by NAME --note WHY",
        )


def router_app(env: str) -> str:
    return f"llmci-{env}"


def version_app(env: str, name: str, version: int) -> str:
    # "--" cannot occur in an environment's name: `llmci-prod--m-1` is never environment `prod-x`'s.
    return f"{router_app(env)}--{name}-{version}"


class Deployer:
    """One environment on one Ray cluster: what it runs, and the moves between states."""

    def __init__(
        self,
        loaded: LoadedConfig,
        env: str,
        registry: Registry,
        api: ServeAPI,
        serve_url: str,
        *,
        actor: str,
        say: Callable[[str], None],
        embedded: bool,
        lock_path: Path | None = None,
    ) -> None:
        self.loaded = loaded
        self.env = env
        self.settings = environment(loaded, env)
        self.registry = registry
        self.api = api
        self.serve_url = serve_url.rstrip("/")
        self.actor = actor
        self.say = say
        self.embedded = embedded
        self.ledger = Ledger(registry.store, env)
        self.lock_path = lock_path
        #: The state last sent to the cluster (it may run it): what a rollback undoes.
        self.sent = EnvState(env=env)
        self.route_prefix = self.settings.route_prefix or f"/{env}"
        lineage = lineage_from_environment(loaded.root)
        self.context = {"actor": actor, "workflow_run_url": lineage.workflow_run_url, "commit": lineage.git_commit}

    @contextmanager
    def _cluster_lock(self) -> Iterator[None]:
        """Serialize GET-then-PUT of the cluster's config with other environments' deploys on this machine."""
        if self.lock_path is None:
            yield
            return
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield

    @property
    def url(self) -> str:
        """The environment's OpenAI-compatible base URL."""
        return f"{self.serve_url}{self.route_prefix}/v1"

    # -- the Serve config -----------------------------------------------------------------

    def serve_config(self, state: EnvState, others: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The whole cluster's config: other applications as they run, ours as `state` says."""
        ours = {name: dict(config) for name, config in state.apps.items()}
        router = router_app(self.env)
        if router in ours:
            ours[router] = _with_user_config(ours[router], "router", state.router.model_dump(mode="json"))
        # Ours: what llmci applied (the state) and anything named as this environment's (a leftover).
        mine = set(ours) | {name for name in others if _ours(name, self.env)}
        apps = [config for name, config in sorted(others.items()) if name not in mine] + [
            ours[name] for name in sorted(ours)
        ]
        config: dict[str, Any] = {"applications": apps}
        if self.embedded:
            config["proxy_location"] = "HeadOnly"
            config["http_options"] = {"host": "127.0.0.1", "port": self.settings.http_port}
        return config

    def router_config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "name": router_app(self.env),
            "route_prefix": self.route_prefix,
            "import_path": ROUTER_IMPORT,
            "args": {"env": self.env, "llmci_version": __version__},
            "runtime_env": s.runtime_env,
            "deployments": [
                {
                    "name": "router",
                    "num_replicas": s.router_replicas,
                    "max_ongoing_requests": 256,
                    "ray_actor_options": {"num_cpus": 0.1},
                    "user_config": RouterConfig().model_dump(mode="json"),
                },
                {"name": "stats", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0}},
            ],
        }

    def record_settings(self) -> RecordSettings:
        """Where and how the router records requests (`monitor.record`): applied in place with the weights."""
        from llmci.monitor.cost import token_prices

        record = self.loaded.config.monitor.record
        return RecordSettings(
            registry=self.registry.store.uri,
            endpoint_url=self.loaded.config.registry.endpoint_url,
            **record.model_dump(),
            prices=token_prices(self.loaded.config, self.loaded.root),
        )

    def batching(self) -> Batching:
        """How the router batches each version's requests: each router replica keeps two batches in flight
        per model replica, so a replica has the next batch at hand when one finishes while the one after
        fills. (Serve's autoscaler then counts batches as a replica's ongoing requests.)"""
        s = self.settings
        replicas = int((s.autoscaling_config or {}).get("max_replicas", s.replicas))
        return Batching(
            max_batch_size=s.max_batch_size,
            batch_wait_timeout_s=s.batch_wait_timeout_s,
            max_concurrent_batches=2 * max(replicas, 1),
        )

    def model_config(self, manifest: Manifest) -> dict[str, Any]:
        s = self.settings
        store = self.registry.store
        deployment: dict[str, Any] = {
            "name": "model",
            "max_ongoing_requests": max(64, 4 * s.max_batch_size),
            "ray_actor_options": s.ray_actor_options,
            "user_config": {"max_batch_size": s.max_batch_size},
            "graceful_shutdown_timeout_s": s.graceful_shutdown_timeout_s,
            "health_check_period_s": 10,
            "health_check_timeout_s": 30,
        }
        if s.autoscaling_config:
            deployment["autoscaling_config"] = s.autoscaling_config
        else:
            deployment["num_replicas"] = s.replicas
        threads = max(1, int(s.ray_actor_options.get("num_cpus", 1) or 1))
        return {
            "name": version_app(self.env, manifest.name, manifest.version),
            "route_prefix": None,
            "import_path": MODEL_IMPORT,
            "args": {
                "registry": store.uri,
                "endpoint_url": self.loaded.config.registry.endpoint_url,
                "ref": manifest.ref,
                "digest": manifest.digest,
                "cache_dir": str(cache_dir(self.loaded.root).resolve()) if self.embedded else s.cache_dir,
                "threads": threads,
                "llmci_version": __version__,
            },
            "runtime_env": s.runtime_env,
            "deployments": [deployment],
        }

    # -- moves ----------------------------------------------------------------------------

    def apply(self, state: EnvState, *, wait_for: list[str] | None = None) -> str:
        """Send `state` to the cluster and wait until it runs it: its applications RUNNING with our
        router weights, and the environment's applications it no longer has gone (drained). The
        config's digest."""
        self.sent = state  # from here on the cluster may run it: a rollback must undo it
        with self._cluster_lock():  # read-modify-write of the whole cluster's config
            applied = self.api.applied_configs()
            config = self.serve_config(state, applied)
            self.api.apply(config)
        names = wait_for if wait_for is not None else sorted(state.apps)
        removed = [name for name in applied if _ours(name, self.env) and name not in state.apps]
        self.api.wait(
            lambda apps: self._runs(apps, state, names) and not any(name in apps for name in removed),
            timeout_s=self.settings.start_timeout_s,
            watch=names,
        )
        return _digest(config)

    def deploy(
        self,
        manifest: Manifest,
        *,
        canary: list[float],
        step_seconds: float,
        serve_config_out: Path | None,
        smoke: bool = True,
        shadow: bool = False,
    ) -> Outcome:
        require_approved(self.registry, manifest)
        require_clean_templates(self.registry, manifest, self.loaded)  # a poisoned chat template is not deployed
        name, version = manifest.name, manifest.version
        outcome = Outcome(self.env, manifest.ref, "deployed", self.url)
        s = self.settings
        ttl = 2 * s.start_timeout_s + len(canary) * (step_seconds + s.start_timeout_s) + 600
        with self.ledger.lease(f"{self.actor} deploying {manifest.ref}", ttl), sigterm_raises():
            before, _ = self.ledger.state()
            routes = before.router.models.get(name, ModelRoutes())
            serving = {v: r.weight for v, r in routes.versions.items() if r.weight > 0}
            previous = max((v for v in serving if v != version), key=lambda v: serving[v], default=None)
            if serving == {version: 100.0} and self._healthy(before):
                wanted = self._with_version(before, manifest)
                changed = self._changed(before, wanted)
                if not changed:
                    outcome.action = "noop"
                    outcome.events.append(self._event("noop", name, version, previous, before, "already serving 100%"))
                    self.say(f"{self.env}: {manifest.ref} already serves 100%; nothing to do")
                    return outcome
                self._reconfigure(manifest, before, wanted, changed, outcome, serve_config_out)
                return outcome
            if shadow and previous is None:
                raise UsageError(f"nothing serves {name} in {self.env} yet: a shadow mirrors a live version")
            if serve_config_out is not None:
                final = self._retired(
                    self._weighted(self._with_version(before, manifest), name, {version: 100.0}), name
                )
                _write_config(serve_config_out, self.serve_config(final, self.api.applied_configs()))
                self.say(f"{self.env}: the Serve config it ends with: {serve_config_out}")
            with self._undone_on_failure(manifest, before, previous, outcome):
                self._roll_out(
                    manifest, before, routes, serving, previous, outcome, canary, step_seconds, smoke, shadow
                )
        return outcome

    @contextmanager
    def _undone_on_failure(
        self, manifest: Manifest, before: EnvState, previous: int | None, outcome: Outcome
    ) -> Iterator[None]:
        """Whatever stops the block (a check, the cluster, Ctrl-C, SIGTERM) puts `before` back, and says why."""
        self.sent = before
        try:
            yield
        except BaseException as exc:
            why = _reason(exc)
            self._undo(before, manifest.name, manifest.version, previous, why)
            self._failed(manifest, why, outcome)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise RolledBackError(f"{self.env}: {manifest.ref} {why}; the environment was rolled back") from None

    def _changed(self, before: EnvState, wanted: EnvState) -> list[str]:
        """The applications whose config differs between the two states (the router's with its weights)."""
        apps = {app for app in wanted.apps if wanted.apps[app] != before.apps.get(app)}
        return sorted(apps | ({router_app(self.env)} if wanted.router != before.router else set()))

    def _reconfigure(
        self,
        manifest: Manifest,
        before: EnvState,
        wanted: EnvState,
        changed: list[str],
        outcome: Outcome,
        serve_config_out: Path | None,
    ) -> None:
        """The version that serves, with the environment's changed settings (or a new llmci's). Batch
        sizes, replica counts and autoscaling change in place; other changes (ray_actor_options,
        runtime_env, the router's settings, llmci's version) restart replicas through Serve's own
        rolling update, so the smoke eval runs again before the change is kept."""
        name, version = manifest.name, manifest.version
        self.say(f"{self.env}: {manifest.ref} serves 100%; applying changed settings to {', '.join(changed)}")
        with self._undone_on_failure(manifest, before, None, outcome):
            digest = self.apply(wanted)
            if self.settings.smoke is not None:  # replicas may have restarted: they must still answer well
                passed, summary = self.smoke(manifest)
                self.say(f"{self.env}: smoke eval of {manifest.ref}: {summary}")
                if not passed:
                    raise _Failed(f"failed its smoke eval with the new settings: {summary}")
            self.ledger.record(wanted)
            what = f"new settings: {', '.join(changed)}"
            outcome.events.append(self._event("reconfigure", name, version, None, wanted, what, digest=digest))
        if serve_config_out is not None:
            _write_config(serve_config_out, self.serve_config(wanted, self.api.applied_configs()))
        outcome.action = "reconfigured"
        self.say(f"{self.env}: {manifest.ref} serves 100% with the new settings")

    def _roll_out(
        self,
        manifest: Manifest,
        before: EnvState,
        routes: ModelRoutes,
        serving: dict[int, float],
        previous: int | None,
        outcome: Outcome,
        canary: list[float],
        step_seconds: float,
        smoke: bool,
        shadow: bool,
    ) -> None:
        name, version = manifest.name, manifest.version
        # 1. The new version's own application, no traffic yet.
        state = self._with_version(before, manifest)
        started = time.monotonic()
        self.say(f"{self.env}: starting {manifest.ref} beside {self._serving_text(name, routes)}")
        try:
            digest = self.apply(state)
        except AppFailed as exc:
            raise _Failed(f"did not start: {exc.message}") from None
        self.ledger.record(state)
        outcome.events.append(
            self._event("deploy", name, version, previous, state, f"{manifest.ref} is up", digest=digest)
        )
        self.say(f"{self.env}: {manifest.ref} is RUNNING ({time.monotonic() - started:.1f} s)")

        # 2. The smoke eval, pinned to the new version.
        if smoke and self.settings.smoke is not None:
            passed, summary = self.smoke(manifest)
            outcome.events.append(self._event("smoke", name, version, previous, state, summary))
            self.say(f"{self.env}: smoke eval of {manifest.ref}: {summary}")
            if not passed:
                raise _Failed(f"failed its smoke eval: {summary}")

        # Shadow: the new version gets a copy of every request, its answers only counted; no traffic moves.
        if shadow:
            state = state.model_copy(update={"router": _with_shadow(state.router, name, version)})
            digest = self.apply(state)
            self.ledger.record(state)
            outcome.action = "shadowing"
            outcome.events.append(
                self._event("shadow", name, version, previous, state, f"{manifest.ref} mirrors", digest=digest)
            )
            self.say(f"{self.env}: {manifest.ref} gets a copy of every request to {name}; clients see no change")
            return

        # 3. Canary steps, each watched by the gates; a version never gets less than it already serves.
        steps = [w for w in canary if w > serving.get(version, 0.0)] if previous is not None else [100.0]
        for weight in steps or [100.0]:
            state = self._weighted(state, name, _shares(serving, version, weight))
            digest = self.apply(state)
            self.ledger.record(state)
            outcome.events.append(
                self._event("step", name, version, previous, state, f"{weight:g}% to {manifest.ref}", digest=digest)
            )
            gate = self.watch(name, version, step_seconds)
            outcome.events.append(
                self._event("gate", name, version, previous, state, gate.line(), details=gate.__dict__)
            )
            self.say(f"{self.env}: {weight:g}% on {manifest.ref}: {gate.line()}")
            if not gate.passed:
                raise _Failed(f"breached a gate at {weight:g}%: {gate.reason}")

        # 4. The old versions leave the router, then their applications go.
        final = self._retired(state, name)
        if final.apps != state.apps or final.router != state.router:
            self.apply(final.model_copy(update={"apps": state.apps}))
            digest = self.apply(final)
            retired = sorted(set(routes.versions) - {version})
            outcome.events.append(
                self._event("retire", name, version, previous, final, f"retired {retired}", digest=digest)
            )
        self.ledger.record(final)
        outcome.events.append(self._event("deployed", name, version, previous, final, f"{manifest.ref} serves"))
        self.say(f"{self.env}: {manifest.ref} serves 100% at {self.url}")

    def smoke(self, manifest: Manifest) -> tuple[bool, str]:
        """The smoke suite against the new version, pinned through the router; (passed, one line)."""
        from llmci.eval.results import summarize
        from llmci.eval.runner import run_eval

        smoke = self.settings.smoke
        assert smoke is not None
        target = f"openai-completions:{self.url}#{manifest.ref}"
        run = run_eval(self.loaded, smoke.suite, target, cache_dir=None, progress=False, limit=smoke.max_cases)
        summary = summarize(run.results.rows)
        failing = [
            f"{item['metric']} {item['passed']}/{item['cases']}"
            for item in summary
            if item["cases"] and item["passed"] / item["cases"] < smoke.min_pass_rate
        ]
        errors = sum(item["errors"] for item in summary)
        text = ", ".join(f"{item['metric']} {item['passed']}/{item['cases']}" for item in summary)
        if errors:
            return False, f"{errors} errors ({text})"
        if failing:
            return False, f"below {smoke.min_pass_rate:.0%}: {', '.join(failing)}"
        return True, text

    def watch(self, name: str, version: int, seconds: float) -> GateResult:
        """The new version's live traffic over `seconds`, against the gates; stops at the first breach.

        Counters that cannot be read are a breach, not a pass: a gate that sees nothing judges nothing.
        """
        gates = self.settings.gates
        key = counts_key(name, version, "live")
        started = last_read = time.monotonic()
        base = self.counts()
        window = Counts()
        while True:
            elapsed = time.monotonic() - started
            now = self.counts()
            if now is not None:
                last_read = time.monotonic()
                if base is None:
                    base = now
                window = now.get(key, Counts()).minus(base.get(key, Counts()))
            elif time.monotonic() - last_read > UNREADABLE_S:
                return GateResult(False, f"the router's counters cannot be read at {self._stats_url}", seconds=elapsed)
            p95 = window.quantile_ms(0.95)
            result = GateResult(True, "", window.requests, window.errors, p95, elapsed)
            if window.requests >= gates.min_requests:
                rate = window.errors / window.requests
                if gates.max_error_rate is not None and rate > gates.max_error_rate:
                    result.passed, result.reason = False, f"error rate {rate:.1%} > {gates.max_error_rate:.1%}"
                    return result
                if gates.max_p95_ms is not None and p95 is not None and p95 > gates.max_p95_ms:
                    result.passed, result.reason = False, f"p95 {p95:.0f} ms > {gates.max_p95_ms:.0f} ms"
                    return result
            if elapsed >= seconds:
                if window.requests < gates.min_requests:
                    result.reason = f"fewer than {gates.min_requests} requests: not judged"
                else:
                    result.reason = "within the gates"
                return result
            time.sleep(POLL_S)

    @property
    def _stats_url(self) -> str:
        return f"{self.serve_url}{self.route_prefix}/-/llmci/stats"

    def counts(self) -> dict[str, Counts] | None:
        """The router's counters (summed over its replicas), by `NAME@VERSION/kind`; None when unreadable."""
        import httpx

        try:
            response = httpx.get(self._stats_url, timeout=10)
            response.raise_for_status()
            data = response.json()
            return {key: Counts.from_json(value) for key, value in data.get("counts", {}).items()}
        except (httpx.HTTPError, ValueError, TypeError, AttributeError):
            return None

    def rollback(self, name: str | None) -> Outcome:
        """Back to the version that served before the last deploy of `name`, straight to 100%.

        After a finished deploy that is the version it replaced; while a canary was left
        half-way (the deploy was killed), the version that served before it began.
        """
        state, _ = self.ledger.state()
        events = [e for e in self.ledger.events() if e.model and (name is None or e.model == name)]
        if not events:
            raise ConfigError(f"{self.env}: no deploy to roll back", hint=f"llmci deploy history --env {self.env}")
        name = events[-1].model
        routes = state.router.models.get(name or "", ModelRoutes())
        serving = {v: r.weight for v, r in routes.versions.items() if r.weight > 0}
        target = None
        if len(serving) == 1:
            (current,) = serving
            done = [e for e in events if e.model == name and e.action == "deployed" and e.version == current]
            target = done[-1].previous if done else None
        else:
            started = [e for e in events if e.model == name and e.action == "deploy"]
            target = started[-1].previous if started else None
        if target is None:
            raise ConfigError(f"{self.env}: {name} has no earlier version to roll back to", hint="llmci deploy history")
        manifest = self.registry.resolve(f"{name}@{target}")
        # No smoke eval and no gate judging: this version served here before, and speed matters now.
        outcome = self.deploy(manifest, canary=[100.0], step_seconds=0.0, serve_config_out=None, smoke=False)
        outcome.action = "rolled-back"
        self._event("rollback", name, target, None, self.ledger.state()[0], "on demand")
        return outcome

    # -- reports --------------------------------------------------------------------------

    def plan(self, manifest: Manifest, serve_config_out: Path) -> str:
        """What a deploy would do, and the Serve config it would end with (written); nothing changes."""
        status = self.registry.status(manifest.name, manifest.version).status
        before, _ = self.ledger.state()
        routes = before.router.models.get(manifest.name, ModelRoutes())
        final = self._retired(
            self._weighted(self._with_version(before, manifest), manifest.name, {manifest.version: 100.0}),
            manifest.name,
        )
        _write_config(serve_config_out, self.serve_config(final, self.api.applied_configs()))
        serving = self._serving_text(manifest.name, routes)
        steps = ", ".join(f"{w:g}%" for w in self.settings.canary) if routes.versions else "100% (first deploy)"
        smoke = self.settings.smoke
        return "\n".join(
            [
                f"deploy {manifest.ref} ({status}) to {self.env} at {self.url}",
                f"  now serving  {serving}",
                f"  smoke eval   {f'{smoke.suite}, {smoke.max_cases} cases' if smoke else 'none'}",
                f"  canary       {steps}, {self.settings.step_seconds:g} s each",
                f"  serve config {serve_config_out}",
                "  (dry run: nothing was changed)"
                + ("" if status == "approved" else f"; {manifest.ref} is {status} and would be refused"),
            ]
        )

    def status(self) -> dict[str, Any]:
        """What the environment serves now: llmci's state, Serve's view of each application, the traffic."""
        state, _ = self.ledger.state()
        apps = self.api.applications()
        counts = self.counts() or {}
        models = {}
        for name, routes in state.router.models.items():
            versions = []
            for version, route in sorted(routes.versions.items()):
                app = apps.get(route.app) or {}
                deployment = (app.get("deployments") or {}).get("model") or {}
                replicas = deployment.get("replicas") or []
                live = counts.get(counts_key(name, version, "live"), Counts())
                versions.append(
                    {
                        "ref": f"{name}@{version}",
                        "weight": route.weight,
                        "app": route.app,
                        "status": app.get("status", "ABSENT"),
                        "replicas": f"{sum(r.get('state') == 'RUNNING' for r in replicas)}/{len(replicas)} running",
                        "requests": live.requests,
                        "errors": live.errors,
                        "p95_ms": live.quantile_ms(0.95),
                    }
                )
            models[name] = versions
        router = apps.get(router_app(self.env)) or {}
        return {
            "env": self.env,
            "url": self.url,
            "router": router.get("status", "ABSENT"),
            "models": models,
            "deploy_in_progress": state.lease.model_dump() if state.lease else None,
            "updated_at": state.updated_at,
        }

    @staticmethod
    def status_text(report: dict[str, Any]) -> str:
        lines = [f"{report['env']}: {report['url']} (router {report['router']})"]
        if report["deploy_in_progress"]:
            lines.append(f"  a deploy is in progress: {report['deploy_in_progress']['holder']}")
        for versions in report["models"].values():
            for v in versions:
                p95 = "-" if v["p95_ms"] is None else f"{v['p95_ms']:.0f} ms"
                lines.append(
                    f"  {v['ref']:<24} {v['weight']:>5g}%  {v['status']:<13} {v['replicas']:<12} "
                    f"{v['requests']} requests, {v['errors']} errors, p95 <= {p95}"
                )
        if not report["models"]:
            lines.append("  nothing deployed")
        return "\n".join(lines)

    def summary_markdown(self, outcome: Outcome) -> str:
        """The job summary: what happened, step by step (names escaped: they come from the registry)."""
        from llmci.report.markdown import inline

        icon = OUTCOME_ICONS[outcome.action]
        lines = [
            f"### {icon} llmci deploy: {inline(outcome.ref)} → {inline(self.env)} ({outcome.action})",
            "",
            f"Serving at {inline(outcome.url)}",
            "",
            "| # | Step | Serving | Detail |",
            "| ---: | --- | --- | --- |",
        ]
        for event in outcome.events:
            weights = ", ".join(f"{ref} {w:g}%" for ref, w in event.weights.items() if w > 0) or "–"
            lines.append(f"| {event.seq} | {event.action} | {inline(weights)} | {inline(event.message)} |")
        return "\n".join(lines) + "\n"

    # -- state edits ----------------------------------------------------------------------

    def _with_version(self, state: EnvState, manifest: Manifest) -> EnvState:
        apps = dict(state.apps)
        # Rebuilt every time: a new llmci (its version is in the args) or new router settings reach the
        # router; an unchanged config is left alone by Serve.
        apps[router_app(self.env)] = self.router_config()
        app = version_app(self.env, manifest.name, manifest.version)
        apps[app] = self.model_config(manifest)
        routes = state.router.models.get(manifest.name, ModelRoutes())
        versions = dict(routes.versions)
        route = versions.get(manifest.version, VersionRoute(app=app, weight=0))
        versions[manifest.version] = route.model_copy(update={"app": app, "batched": True})
        models = {**state.router.models, manifest.name: routes.model_copy(update={"versions": versions})}
        router_config = state.router.model_copy(
            update={"models": models, "records": self.record_settings(), "batching": self.batching()}
        )
        return state.model_copy(update={"apps": apps, "router": router_config})

    def _weighted(self, state: EnvState, name: str, weights: dict[int, float]) -> EnvState:
        routes = state.router.models[name]
        versions = {v: r.model_copy(update={"weight": weights.get(v, 0.0)}) for v, r in routes.versions.items()}
        models = {**state.router.models, name: routes.model_copy(update={"versions": versions})}
        return state.model_copy(update={"router": state.router.model_copy(update={"models": models})})

    def _retired(self, state: EnvState, name: str) -> EnvState:
        """Only the versions with weight stay, in the router and as applications; no shadow is left."""
        routes = state.router.models[name]
        keep = {v: r for v, r in routes.versions.items() if r.weight > 0}
        gone = {r.app for v, r in routes.versions.items() if v not in keep}
        models = {**state.router.models, name: routes.model_copy(update={"versions": keep, "shadow": None})}
        apps = {app: config for app, config in state.apps.items() if app not in gone}
        return state.model_copy(update={"apps": apps, "router": state.router.model_copy(update={"models": models})})

    def _undo(self, before: EnvState, name: str, version: int, previous: int | None, why: str) -> None:
        """Weights back first (the new app still up, so nothing in flight fails), then the new app goes."""
        self.say(f"{self.env}: rolling back: {why}")
        started, sent = time.monotonic(), self.sent
        try:
            if sent.router != before.router:
                self.apply(
                    before.model_copy(update={"apps": {**sent.apps, **before.apps}}), wait_for=sorted(before.apps)
                )
            try:
                digest = self.apply(before, wait_for=sorted(before.apps))
            except AppFailed:  # the failed app is being removed anyway; the old ones must run
                digest = None
        except BaseException as exc:
            raise ClusterError(
                f"{self.env}: rolling back after '{why}' failed too: {_reason(exc)}",
                hint=f"see llmci deploy status --env {self.env}; llmci deploy rollback --env {self.env}",
            ) from None
        self.ledger.record(before)
        self._event("rollback", name, version, previous, before, why, digest=digest)
        self.say(f"{self.env}: rolled back in {time.monotonic() - started:.1f} s; {self._serving_text(name)}")

    def _failed(self, manifest: Manifest, why: str, outcome: Outcome) -> None:
        outcome.action = "rolled-back"
        self._event("failed", manifest.name, manifest.version, None, self.ledger.state()[0], why)

    def _healthy(self, state: EnvState) -> bool:
        try:
            apps = self.api.applications()
        except Exception:
            return False
        return self._runs(apps, state, sorted(state.apps))

    def _runs(self, apps: dict[str, Any], state: EnvState, names: list[str]) -> bool:
        """The cluster runs `state`: `names` RUNNING with every replica, and (ours) the router with its weights."""
        return _running(apps, names) and _router_has(apps, router_app(self.env), state)

    def _serving_text(self, name: str, routes: ModelRoutes | None = None) -> str:
        routes = routes if routes is not None else self.ledger.state()[0].router.models.get(name, ModelRoutes())
        live = [f"{name}@{v} {r.weight:g}%" for v, r in sorted(routes.versions.items()) if r.weight > 0]
        return ", ".join(live) or "nothing (first deploy)"

    def _event(
        self,
        action: str,
        name: str | None,
        version: int | None,
        previous: int | None,
        state: EnvState,
        message: str,
        *,
        digest: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Event:
        routes = state.router.models.get(name or "", ModelRoutes())
        weights = {f"{name}@{v}": r.weight for v, r in sorted(routes.versions.items())}
        return self.ledger.append(
            action,  # type: ignore[arg-type]
            model=name,
            version=version,
            previous=previous,
            weights=weights,
            serve_config_digest=digest,
            message=message,
            details=details or {},
            **self.context,
        )


class _Failed(Exception):
    """A check the new version did not pass; the message says which."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Failed):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "was interrupted (Ctrl-C)"
    if isinstance(exc, SystemExit):
        return "was interrupted (SIGTERM)"
    return f"failed: {first_line(exc)}"


def _with_shadow(router: RouterConfig, name: str, version: int | None) -> RouterConfig:
    models = {**router.models, name: router.models[name].model_copy(update={"shadow": version})}
    return router.model_copy(update={"models": models})


def _shares(serving: dict[int, float], new: int, weight: float) -> dict[int, float]:
    """`weight`% to the new version; the rest split among the serving ones as they were split."""
    others = {v: w for v, w in serving.items() if v != new}
    total = sum(others.values())
    shares = {v: (100.0 - weight) * w / total for v, w in others.items()} if total else {}
    return {**shares, new: weight}


def _with_user_config(app: dict[str, Any], deployment: str, user_config: dict[str, Any]) -> dict[str, Any]:
    deployments = [
        {**d, "user_config": user_config} if d.get("name") == deployment else d for d in app.get("deployments", [])
    ]
    return {**app, "deployments": deployments}


def _ours(app: str, env: str) -> bool:
    """The environment's router and version applications (and no other environment's)."""
    return app == router_app(env) or app.startswith(f"{router_app(env)}--")


def _running(apps: dict[str, Any], names: list[str]) -> bool:
    for name in names:
        app = apps.get(name)
        if not app or app.get("status") != "RUNNING":
            return False
        for deployment in (app.get("deployments") or {}).values():
            replicas = deployment.get("replicas") or []
            if deployment.get("status") != "HEALTHY" or any(r.get("state") != "RUNNING" for r in replicas):
                return False
    return True


def _router_has(apps: dict[str, Any], router: str, state: EnvState) -> bool:
    """The router runs the state's weights (when it is one of the state's applications at all)."""
    if router not in state.apps:
        return True
    deployments = (apps.get(router) or {}).get("deployments") or {}
    live = ((deployments.get("router") or {}).get("deployment_config") or {}).get("user_config")
    return RouterConfig.model_validate(live or {}) == state.router


def _digest(config: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _write_config(path: Path, config: dict[str, Any]) -> None:
    import yaml

    header = (
        "# The Ray Serve config `llmci deploy` applies (the same `applications:` that `serve deploy`\n"
        "# and a KubeRay RayService's serveConfigV2 take). Written by llmci; do not edit.\n"
    )
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
