"""Alerts from a monitor report: state, deduplication, grouping, and what to send to whom.

An alert is a finding at level `warning` or `critical`, known by its
fingerprint (`rule/env/model@version`). A finding at `ok` resolves it; a
finding at `no_data` leaves it as it was: an alert never resolves because
traffic stopped. The report judges exactly the versions served now (each has
a finding for every rule), so an alert with no finding at all is retired: its
version no longer serves (a rollback away from it), or its rule is no longer
in `monitor.rules`. A retired alert is resolved at once, saying why, and then
forgotten.

What was sent is kept in the registry store, `_monitor/ENV/alerts/state.json`,
changed only by compare-and-swap. Scheduled checks may overlap, so a run
claims its notices first (writes the state saying they are being sent, by
it) and sends only once that write won; a run that loses re-reads and
decides again, and sees the other run's claim. A send that fails is written
back to the state, so the next run sends it again, and is returned in the
outcome (the CLI exits non-zero). A claim left by a run that died before it
could write the result is sent again after `CLAIM_TTL`.

The state remembers when the last report it applied was generated. An older
report (an old job re-run hours later) is refused: applying it would undo
what newer reports found. The same report again (a re-run after exit 13) only
sends what failed.

Per channel, a firing alert is sent when it starts, at once when its level
changes, and again after `repeat_interval`. Its recovery is held until the
alert has stayed recovered for `cooldown`: a breach within that time is the
same incident going on, and nothing is sent for the flap (neither resolved nor
firing again). Once recovered for `cooldown`, one resolved notice goes to the
channels that were told it fired (the GitHub issue is closed) and the incident
is over: a later breach is a new one, with a new issue. The resolved notice
goes out on the first run at least `cooldown` after the recovery; a breach seen
before that run still continues the incident.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from llmci.config import AlertsConfig, parse_duration
from llmci.errors import ConflictError, InputError, IntegrityError, LlmciError, UsageError, first_line
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


class StaleReport(UsageError):
    """A report older than the last one the alert state applied (an old job re-run): it would undo newer news."""


def _aware(text: str) -> str:
    """`text` when it is an ISO 8601 time with a UTC offset (what every time in the state is)."""
    if datetime.fromisoformat(text).tzinfo is None:
        raise ValueError(f"'{text}' has no UTC offset")
    return text


#: An ISO 8601 time with its UTC offset (naive times cannot be compared with the run's).
Stamp = Annotated[str, AfterValidator(_aware)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelState(_Model):
    """What one channel was told about one alert."""

    #: What the channel was last sent (or is being sent, or failed to be sent: then `error` says so).
    status: Literal["firing", "resolved"] | None = None
    level: Literal["warning", "critical"] | None = None
    kind: NoticeKind | None = None
    last_sent: Stamp | None = None
    #: The run sending it now; cleared when that run has written what happened.
    claim: str | None = None
    claimed_at: Stamp | None = None
    #: Why the last send failed; the next run sends again.
    error: str | None = None


class AlertRecord(_Model):
    rule: str
    model: str
    version: int
    status: Literal["firing", "resolved"]
    level: Literal["warning", "critical"]
    first_fired: Stamp
    last_seen: Stamp
    #: When a report first found it ok (or found it no longer checked); its resolved notice waits `cooldown`.
    resolved_at: Stamp | None = None
    #: Why it was resolved without an `ok` finding (its version no longer serves, its rule is gone).
    retired: str | None = None
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    #: The incident's GitHub issue.
    issue: int | None = None
    channels: dict[str, ChannelState] = Field(default_factory=dict)


class AlertState(_Model):
    format: Literal["llmci.alerts/1"] = FORMAT
    env: str
    updated_at: Stamp | None = None
    #: `generated_at` of the newest report applied: an older one is refused, the same one only retries.
    last_report: Stamp | None = None
    #: Fingerprint -> the alert.
    alerts: dict[str, AlertRecord] = Field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What one run claimed: notices per channel, and what another run is sending (left to it)."""

    claim: str
    notices: dict[str, list[Notice]]
    busy: dict[str, list[str]]
    #: The report was applied before (a re-run): only what failed was claimed again.
    replay: bool = False


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
    #: The report had been applied before: only what failed then was sent again.
    replay: bool = False

    @property
    def failed(self) -> bool:
        """True when something was not delivered (the CLI exits non-zero)."""
        return any(c.failed or c.problem for c in self.channels.values())

    def lines(self) -> list[str]:
        """What firing, then one line per channel: what was sent, what failed and why."""
        firing = f"{self.env}: {_count(len(self.firing), 'alert')} firing"
        if self.replay:
            firing += " (this report was applied before: only what failed is sent again)"
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
    """The environment's alert state and its ETag (None: no state yet); IntegrityError when it is damaged."""
    key = state_key(env)
    try:
        data, etag = store.read(key)
    except ObjectNotFound:
        return AlertState(env=env), None
    try:
        state = AlertState.model_validate_json(data)
    except ValidationError as exc:
        raise _damaged(key, _validation_problem(exc)) from None
    if state.env != env:
        raise _damaged(key, f"it is the state of environment '{state.env}', not '{env}'")
    for fp, record in state.alerts.items():
        if fp != f"{record.rule}/{env}/{record.model}@{record.version}":
            raise _damaged(key, f"alert '{fp}' holds {record.rule} on {record.model}@{record.version}")
    return state, etag


def _damaged(key: str, problem: str) -> IntegrityError:
    return IntegrityError(
        f"the alert state {key} is damaged: {problem}",
        hint="move it aside (the next run starts a fresh state; alerts still firing are sent again)",
    )


def _validation_problem(exc: ValidationError) -> str:
    """The first problem pydantic found, one line: `where: what`."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    what = " ".join(str(error["msg"]).split())
    return f"{where}: {what}" if where else what


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
    """The new state (with this run's claims in it) and the notices claimed; `state` is left as it was.

    StaleReport when `report` is older than the last report applied to `state`.
    """
    repeat = timedelta(seconds=parse_duration(config.repeat_interval))
    cooldown = timedelta(seconds=parse_duration(config.cooldown))
    stamp = now.isoformat()
    replay = _replay(state, report)
    alerts = {fp: record.model_copy(deep=True) for fp, record in state.alerts.items()}
    firing_now: set[str] = set()
    if not replay:
        # An incident whose resolved notice went out everywhere is over: a new breach is a new incident (and issue).
        for fp, record in list(alerts.items()):
            if _over(record, now, cooldown) and _settled(record, channels):
                del alerts[fp]
        for finding in report.findings:
            fp = finding.fingerprint
            record = alerts.get(fp)
            if finding.level in FIRING:
                firing_now.add(fp)
                alerts[fp] = _fire(record, finding, stamp)
            elif finding.level == "ok" and record is not None and record.status == "firing":
                record.status, record.resolved_at = "resolved", stamp
                record.value, record.message = finding.value, finding.message
        _retire(alerts, report, stamp)

    notices: dict[str, list[Notice]] = {}
    busy: dict[str, list[str]] = {}
    for fp, record in sorted(alerts.items(), key=lambda item: _order(item[1])):
        for channel in channels:
            sent = record.channels.setdefault(channel, ChannelState())
            if sent.claim is not None and sent.error is None and not _older(sent.claimed_at, now, CLAIM_TTL):
                busy.setdefault(channel, []).append(fp)
                continue
            retry = sent.error is not None or sent.claim is not None  # failed, or claimed by a run that died
            if replay and not retry:
                continue  # the same report again: only what failed is sent again
            kind = _kind(record, sent, retry, fp in firing_now, now, repeat, cooldown)
            if kind is None:
                continue
            notices.setdefault(channel, []).append(_notice(fp, record, sent, kind, report))
            sent.status, sent.kind, sent.last_sent = record.status, kind, stamp
            if record.status == "firing":
                sent.level = record.level
            sent.claim, sent.claimed_at, sent.error = claim, stamp, None
    last_report = state.last_report if replay else _time(report.generated_at).isoformat()
    new = AlertState(env=report.env, updated_at=stamp, last_report=last_report, alerts=alerts)
    return new, Plan(claim, notices, busy, replay)


def _replay(state: AlertState, report: MonitorReport) -> bool:
    """True when `report` is the one the state applied last; StaleReport when it is older."""
    if state.last_report is None:
        return False
    generated, last = _time(report.generated_at), _time(state.last_report)
    if generated < last:
        raise StaleReport(
            f"{report.env}: the report was generated at {generated.isoformat()}, before the last report the "
            f"alerts applied ({last.isoformat()}); applying it would undo what the newer report found",
            hint="run `llmci monitor check` for a current report (the next scheduled check sends what is due)",
        )
    return generated == last


def _time(iso: str) -> datetime:
    """An ISO 8601 time (UTC when it has no offset)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise InputError(f"the report's generated_at '{iso}' is not an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _retire(alerts: dict[str, AlertRecord], report: MonitorReport, stamp: str) -> None:
    """Resolve, saying why, the alerts the report no longer judges: their version or their rule is gone."""
    judged = {finding.fingerprint for finding in report.findings}
    served = {(finding.model, finding.version) for finding in report.findings}
    for fp, record in alerts.items():
        if fp in judged or record.retired is not None:
            continue
        ref = f"{record.model}@{record.version}"
        if (record.model, record.version) not in served:
            record.retired = f"{ref} no longer serves in {report.env}: the alert is no longer checked"
        else:
            record.retired = f"{record.rule} is no longer a rule of monitor.rules: the alert is no longer checked"
        if record.status == "firing":
            record.status, record.resolved_at = "resolved", stamp


def _fire(record: AlertRecord | None, finding: Finding, stamp: str) -> AlertRecord:
    """The alert after a firing finding: a new incident, or the one going on (firing, or recovered and held)."""
    level = "critical" if finding.level == "critical" else "warning"
    if record is None:
        record = AlertRecord(
            rule=finding.rule,
            model=finding.model,
            version=finding.version,
            status="firing",
            level=level,
            first_fired=stamp,
            last_seen=stamp,
        )
    record.status, record.resolved_at, record.retired = "firing", None, None
    record.level, record.last_seen = level, stamp
    record.value, record.threshold, record.message = finding.value, finding.threshold, finding.message
    return record


def _kind(
    record: AlertRecord,
    sent: ChannelState,
    retry: bool,
    seen: bool,
    now: datetime,
    repeat: timedelta,
    cooldown: timedelta,
) -> NoticeKind | None:
    """What this channel must be sent about this alert now, if anything."""
    if record.status == "resolved":
        if sent.status == "firing" and _due(record, now, cooldown):
            return "resolved"
        if retry and sent.status == "resolved":
            return "resolved"
        return None  # recovered, held for `cooldown` (a failed firing notice is then sent as resolved)
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


def _due(record: AlertRecord, now: datetime, cooldown: timedelta) -> bool:
    """The resolved notice may go out: the alert was retired, or has stayed recovered for `cooldown`."""
    return record.retired is not None or _older(record.resolved_at, now, cooldown)


def _over(record: AlertRecord, now: datetime, cooldown: timedelta) -> bool:
    """The incident is over once resolved past its hold (and, see `_settled`, told so everywhere)."""
    return record.status == "resolved" and _due(record, now, cooldown)


def _notice(fp: str, record: AlertRecord, sent: ChannelState, kind: NoticeKind, report: MonitorReport) -> Notice:
    retired = record.retired if kind == "resolved" else None
    return Notice(
        fingerprint=fp,
        kind=kind,
        rule=record.rule,
        level=record.level,
        previous_level=sent.level if kind == "level_changed" else None,
        model=record.model,
        version=record.version,
        message=retired or record.message,
        retired=retired is not None,
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
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
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
        replay=plan.replay,
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
