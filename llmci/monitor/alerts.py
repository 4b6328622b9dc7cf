"""Alerts from a monitor report: state, deduplication, grouping, and what to send to whom.

An alert is a finding at level `warning` or `critical`, known by its
fingerprint (`rule/env/model@version`). A finding at `ok` resolves it; a
finding at `no_data`, or none at all, leaves it as it was: an alert never
resolves because traffic stopped.

What was sent is kept in the registry store, `_monitor/ENV/alerts/state.json`,
changed only by compare-and-swap. Scheduled checks may overlap, so a run
claims its notices first (writes the state saying they are being sent, by
it) and sends only once that write won; a run that loses re-reads and
decides again, and sees the other run's claim. A send that fails is written
back to the state, so the next run sends it again, and is returned in the
outcome (the CLI exits non-zero). A claim left by a run that died before it
could write the result is sent again after `CLAIM_TTL`.

Per channel, a firing alert is sent when it starts (or fires again), at once
when its level changes, and again after `repeat_interval`; its recovery is
sent once, to the channels that were told it fired. An alert that fires again
within `cooldown` of resolving is the same incident (its GitHub issue is
reopened); later, it is a new one.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmci.config import AlertsConfig, parse_duration
from llmci.errors import ConflictError, LlmciError, first_line
from llmci.monitor.notify import AlertGroup, Delivery, Notice, NoticeKind, Sender, senders_from_config
from llmci.monitor.report import Finding, MonitorReport
from llmci.registry.store import ObjectNotFound, PreconditionFailed, Store

if TYPE_CHECKING:
    from llmci.report.github import GitHub

FORMAT = "llmci.alerts/1"
FIRING = ("warning", "critical")
#: A claim older than this was left by a run that died while sending: its notices are sent again.
CLAIM_TTL = timedelta(minutes=10)
_ATTEMPTS = 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelState(_Model):
    """What one channel was told about one alert."""

    #: What the channel was last sent (or is being sent, or failed to be sent: then `error` says so).
    status: Literal["firing", "resolved"] | None = None
    level: Literal["warning", "critical"] | None = None
    kind: NoticeKind | None = None
    last_sent: str | None = None
    #: The run sending it now; cleared when that run has written what happened.
    claim: str | None = None
    claimed_at: str | None = None
    #: Why the last send failed; the next run sends again.
    error: str | None = None


class AlertRecord(_Model):
    rule: str
    model: str
    version: int
    status: Literal["firing", "resolved"]
    level: Literal["warning", "critical"]
    first_fired: str
    last_seen: str
    resolved_at: str | None = None
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    #: The incident's GitHub issue.
    issue: int | None = None
    channels: dict[str, ChannelState] = Field(default_factory=dict)


class AlertState(_Model):
    format: Literal["llmci.alerts/1"] = FORMAT
    env: str
    updated_at: str | None = None
    #: Fingerprint -> the alert.
    alerts: dict[str, AlertRecord] = Field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What one run claimed: notices per channel, and what another run is sending (left to it)."""

    claim: str
    notices: dict[str, list[Notice]]
    busy: dict[str, list[str]]


@dataclass
class ChannelOutcome:
    channel: str
    sent: list[str] = field(default_factory=list)
    #: Fingerprint -> why it failed; the state says the channel must send it again.
    failed: dict[str, str] = field(default_factory=dict)
    #: Fingerprints another run was sending.
    busy: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    detail: str = ""
    #: A problem that is not retried (recipients an SMTP server refused while others got the mail).
    problem: str | None = None

    @property
    def summary(self) -> str:
        """One line for the log: what was sent, what failed and why."""
        parts = []
        if self.sent:
            kinds = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(self.kinds.items()))
            parts.append(f"sent {_count(len(self.sent), 'alert')} ({kinds}{'; ' + self.detail if self.detail else ''})")
        if self.failed:
            reasons = "; ".join(dict.fromkeys(self.failed.values()))
            parts.append(f"FAILED {_count(len(self.failed), 'alert')}, sent again on the next run: {reasons}")
        if self.problem:
            parts.append(f"FAILED in part: {self.problem}")
        if self.busy:
            parts.append(f"{_count(len(self.busy), 'alert')} being sent by another run")
        return f"{self.channel}: {'; '.join(parts) if parts else 'nothing to send'}"


@dataclass
class AlertOutcome:
    env: str
    #: Fingerprints firing after this run.
    firing: list[str]
    channels: dict[str, ChannelOutcome]

    @property
    def failed(self) -> bool:
        """True when something was not delivered (the CLI exits non-zero)."""
        return any(c.failed or c.problem for c in self.channels.values())

    def lines(self) -> list[str]:
        """What firing, then one line per channel: what was sent, what failed and why."""
        firing = f"{self.env}: {_count(len(self.firing), 'alert')} firing"
        return [firing, *(c.summary for c in self.channels.values())]

    def failed_text(self) -> str:
        """The failures in one line: `slack: WHY; email: WHY`."""
        failures = []
        for channel in self.channels.values():
            reasons = [*dict.fromkeys(channel.failed.values()), *([channel.problem] if channel.problem else [])]
            if reasons:
                failures.append(f"{channel.channel}: {'; '.join(reasons)}")
        return "; ".join(failures)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- the state in the store -----------------------------------------------------------------


def state_key(env: str) -> str:
    return f"_monitor/{env}/alerts/state.json"


def load_state(store: Store, env: str) -> tuple[AlertState, str | None]:
    """The environment's alert state and its ETag (None: no state yet)."""
    try:
        data, etag = store.read(state_key(env))
    except ObjectNotFound:
        return AlertState(env=env), None
    return AlertState.model_validate_json(data), etag


def _save(store: Store, state: AlertState, etag: str | None) -> str:
    """Write `state` if nobody changed it since `etag` (PreconditionFailed otherwise)."""
    data = state.model_dump_json(indent=2).encode() + b"\n"
    key = state_key(state.env)
    return store.create(key, data) if etag is None else store.replace(key, data, etag)


# -- deciding -------------------------------------------------------------------------------


def decide(
    state: AlertState,
    report: MonitorReport,
    config: AlertsConfig,
    channels: Sequence[str],
    now: datetime,
    claim: str,
) -> tuple[AlertState, Plan]:
    """The new state (with this run's claims in it) and the notices claimed; `state` is left as it was."""
    repeat = timedelta(seconds=parse_duration(config.repeat_interval))
    cooldown = timedelta(seconds=parse_duration(config.cooldown))
    stamp = now.isoformat()
    alerts = {fp: record.model_copy(deep=True) for fp, record in state.alerts.items()}
    firing_now = set()
    for finding in report.findings:
        fp = finding.fingerprint
        record = alerts.get(fp)
        if finding.level in FIRING:
            firing_now.add(fp)
            alerts[fp] = _fire(record, finding, stamp, now, cooldown)
        elif finding.level == "ok" and record is not None and record.status == "firing":
            record.status, record.resolved_at = "resolved", stamp
            record.value, record.message = finding.value, finding.message
    # A recovered incident past its cooldown is over: a new breach is a new incident (and a new issue).
    for fp, record in list(alerts.items()):
        if record.status == "resolved" and _older(record.resolved_at, now, cooldown) and _settled(record, channels):
            del alerts[fp]

    notices: dict[str, list[Notice]] = {}
    busy: dict[str, list[str]] = {}
    for fp, record in sorted(alerts.items(), key=lambda item: _order(item[1])):
        for channel in channels:
            sent = record.channels.setdefault(channel, ChannelState())
            if sent.claim is not None and sent.error is None and not _older(sent.claimed_at, now, CLAIM_TTL):
                busy.setdefault(channel, []).append(fp)
                continue
            kind = _kind(record, sent, fp in firing_now, now, repeat)
            if kind is None:
                continue
            notices.setdefault(channel, []).append(_notice(fp, record, sent, kind, report))
            sent.status, sent.kind, sent.last_sent = record.status, kind, stamp
            if record.status == "firing":
                sent.level = record.level
            sent.claim, sent.claimed_at, sent.error = claim, stamp, None
    new = AlertState(env=report.env, updated_at=stamp, alerts=alerts)
    return new, Plan(claim, notices, busy)


def _fire(record: AlertRecord | None, finding: Finding, stamp: str, now: datetime, cooldown: timedelta) -> AlertRecord:
    """The alert after a firing finding: a new incident, the same one again (within cooldown), or still firing."""
    level = "critical" if finding.level == "critical" else "warning"
    if record is None or (record.status == "resolved" and _older(record.resolved_at, now, cooldown)):
        record = AlertRecord(
            rule=finding.rule,
            model=finding.model,
            version=finding.version,
            status="firing",
            level=level,
            first_fired=stamp,
            last_seen=stamp,
        )
    record.status, record.resolved_at, record.level, record.last_seen = "firing", None, level, stamp
    record.value, record.threshold, record.message = finding.value, finding.threshold, finding.message
    return record


def _kind(record: AlertRecord, sent: ChannelState, seen: bool, now: datetime, repeat: timedelta) -> NoticeKind | None:
    """What this channel must be sent about this alert now, if anything."""
    retry = sent.error is not None or sent.claim is not None  # failed, or claimed by a run that died
    if record.status == "resolved":
        if sent.status == "firing" or (retry and sent.status == "resolved"):
            return "resolved"
        return None
    if sent.status != "firing":
        return "reopened" if sent.status == "resolved" else "firing"
    if sent.level != record.level:
        return "level_changed"
    if retry:
        return sent.kind or "firing"
    # Only an alert this report saw firing is repeated: one that went quiet (no data) is not news.
    if seen and _older(sent.last_sent, now, repeat):
        return "repeat"
    return None


def _notice(fp: str, record: AlertRecord, sent: ChannelState, kind: NoticeKind, report: MonitorReport) -> Notice:
    return Notice(
        fingerprint=fp,
        kind=kind,
        rule=record.rule,
        level=record.level,
        previous_level=sent.level if kind == "level_changed" else None,
        model=record.model,
        version=record.version,
        message=record.message,
        first_fired=record.first_fired,
        value=record.value,
        threshold=record.threshold,
        resolved_at=record.resolved_at,
        issue=record.issue,
        deploy=report.last_deploy_before(f"{record.model}@{record.version}"),
    )


def _order(record: AlertRecord) -> tuple[bool, bool, str]:
    """Firing before resolved, critical before warning: the top of a message is what matters most."""
    return record.status == "resolved", record.level != "critical", f"{record.rule}/{record.model}@{record.version}"


def _older(iso: str | None, now: datetime, age: timedelta) -> bool:
    """True when `iso` is at least `age` before `now` (or missing)."""
    return iso is None or now - datetime.fromisoformat(iso) >= age


def _settled(record: AlertRecord, channels: Sequence[str]) -> bool:
    """Nothing left to send for the record on any configured channel."""
    for channel in channels:
        sent = record.channels.get(channel)
        if sent is not None and (sent.status == "firing" or sent.claim is not None or sent.error is not None):
            return False
    return True


# -- claiming, sending, recording -----------------------------------------------------------


def claim_alerts(
    store: Store, report: MonitorReport, config: AlertsConfig, channels: Sequence[str], now: datetime
) -> tuple[Plan, AlertState]:
    """Decide and write the state with this run's claims (compare-and-swap, decided again when it loses)."""
    claim = uuid.uuid4().hex[:12]
    for _ in range(_ATTEMPTS):
        state, etag = load_state(store, report.env)
        new, plan = decide(state, report, config, channels, now, claim)
        if new.model_dump(exclude={"updated_at"}) == state.model_dump(exclude={"updated_at"}) and etag is not None:
            return plan, state  # nothing changed: no write
        try:
            _save(store, new, etag)
        except PreconditionFailed:
            continue  # another run wrote first: its claims are in what we read next
        return plan, new
    raise ConflictError(f"the alert state of {report.env} kept changing under this check", hint="re-run")


def record_deliveries(store: Store, env: str, plan: Plan, deliveries: Mapping[str, Delivery], now: datetime) -> None:
    """Write what was sent and what failed into the state, for the claims that are still this run's."""
    for _ in range(_ATTEMPTS):
        state, etag = load_state(store, env)
        for channel, delivery in deliveries.items():
            results = {fp: None for fp in delivery.sent} | dict(delivery.failed)
            for fp, error in results.items():
                record = state.alerts.get(fp)
                sent = record.channels.get(channel) if record else None
                if record is None or sent is None or sent.claim != plan.claim:
                    continue  # taken over by a later run (our claim had gone stale): its result stands
                sent.claim, sent.claimed_at, sent.error = None, None, error
                if fp in delivery.issues:
                    record.issue = delivery.issues[fp]
        state.updated_at = now.isoformat()
        try:
            _save(store, state, etag)
            return
        except PreconditionFailed:
            continue
    raise ConflictError(f"could not record the alerts sent for {env}: the state kept changing", hint="re-run")


def dispatch_alerts(
    report: MonitorReport,
    config: AlertsConfig,
    store: Store,
    *,
    env: Mapping[str, str] = os.environ,
    github: GitHub | None = None,
    now: datetime | None = None,
    senders: Sequence[Sender] | None = None,
) -> AlertOutcome:
    """Send what the report calls for to every configured channel, once, and return what happened.

    `senders` defaults to those `monitor.alerts` configures (tests pass their own retry policy or TLS context).
    """
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if senders is None:
        senders = senders_from_config(config, env=env, github=github)
    plan, state = claim_alerts(store, report, config, [s.channel for s in senders], now)

    outcome = AlertOutcome(
        env=report.env,
        firing=sorted(fp for fp, r in state.alerts.items() if r.status == "firing"),
        channels={s.channel: ChannelOutcome(s.channel, busy=plan.busy.get(s.channel, [])) for s in senders},
    )
    deliveries: dict[str, Delivery] = {}
    for sender in senders:
        notices = plan.notices.get(sender.channel)
        if not notices:
            continue
        group = AlertGroup(
            env=report.env,
            notices=tuple(notices),
            generated_at=report.generated_at,
            dashboard=report.links.dashboard,
            rollback=report.links.rollback,
            run=report.links.run,
        )
        try:
            delivery = sender.send(group)
        except LlmciError as exc:
            delivery = Delivery(failed={n.fingerprint: first_line(exc) for n in notices})
        deliveries[sender.channel] = delivery
        result = outcome.channels[sender.channel]
        result.sent, result.failed = delivery.sent, delivery.failed
        result.detail, result.problem = delivery.detail, delivery.problem
        result.kinds = Counter(n.kind for n in notices if n.fingerprint in delivery.sent)
    if deliveries:
        record_deliveries(store, report.env, plan, deliveries, now)
    return outcome
