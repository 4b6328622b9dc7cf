"""Alert decisions end to end: reports in, messages out on real receivers, state in a real registry store."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from llmci.config import AlertsConfig, EmailConfig, GitHubIssuesConfig, SlackConfig
from llmci.errors import ExitCode, IntegrityError
from llmci.eval.http import HttpRetryPolicy
from llmci.monitor.alerts import AlertOutcome, StaleReport, claim_alerts, dispatch_alerts, load_state, state_key
from llmci.monitor.notify import senders_from_config
from llmci.monitor.report import DeployMark, Finding, Links, MonitorReport
from llmci.registry.file_store import FileStore
from llmci.registry.store import PreconditionFailed
from tests.monitor.conftest import SLACK_PATH, SlackReceiver, SmtpServer, github_client
from tests.report.github_server import GitHubServer

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=15)
LATENCY = "latency_p95_ms/production/router@3"
ERRORS = "error_rate/production/router@3"
DASHBOARD = "https://octo.github.io/widgets/monitor/production.html"
ROLLBACK = "https://github.com/octo/widgets/actions/workflows/deploy.yml"
DEPLOY_RUN = "https://github.com/octo/widgets/actions/runs/4100"


def latency(level: str, value: float | None = 2400.0) -> Finding:
    return Finding(
        rule="latency_p95_ms",
        level=level,
        env="production",
        model="router",
        version=3,
        value=value,
        threshold={"critical": 2000.0, "warning": 1000.0}.get(level),
        message="no requests in the window" if value is None else f"p95 latency {value:,.0f} ms",
    )


def health(rule: str, level: str, version: int) -> Finding:
    """A finding on `router@version` (what check writes for each rule of each version it judges)."""
    return Finding(
        rule=rule, level=level, env="production", model="router", version=version, message=f"{rule}: {level}"
    )


def errors(level: str, value: float = 0.03) -> Finding:
    return Finding(
        rule="error_rate",
        level=level,
        env="production",
        model="router",
        version=3,
        value=value,
        threshold=0.01,
        message=f"{value:.1%} of requests failed",
    )


def report(*findings: Finding, at: datetime) -> MonitorReport:
    return MonitorReport(
        env="production",
        window_start=(at - timedelta(hours=1)).isoformat(),
        window_end=at.isoformat(),
        generated_at=at.isoformat(),
        bucket_seconds=300,
        records=5000,
        level="ok",
        findings=list(findings),
        deploys=[
            DeployMark(at=(T0 - timedelta(hours=2)).isoformat(), action="deployed", model="router", version=2),
            DeployMark(
                at=(T0 - timedelta(minutes=20)).isoformat(),
                action="deployed",
                model="router",
                version=3,
                previous=2,
                workflow_run_url=DEPLOY_RUN,
            ),
        ],
        links=Links(dashboard=DASHBOARD, rollback=ROLLBACK),
    )


@dataclass
class Watch:
    """One environment watched by scheduled checks: the store, the channels, and the receivers behind them."""

    store: FileStore
    config: AlertsConfig
    env: dict[str, str]
    slack: SlackReceiver
    smtp: SmtpServer
    github: GitHubServer

    def run(self, *findings: Finding, at: datetime, **kwargs: Any) -> AlertOutcome:
        kwargs.setdefault("github", github_client(self.github))
        return dispatch_alerts(report(*findings, at=at), self.config, self.store, env=self.env, now=at, **kwargs)

    def sent(self) -> tuple[int, int, int]:
        """Slack messages, e-mails and GitHub issues so far."""
        return len(self.slack.payloads), len(self.smtp.inbox.messages), len(self.github.issues)

    def headers(self) -> list[str]:
        return [p["blocks"][0]["text"]["text"] for p in self.slack.payloads]

    def sections(self, message: int = -1) -> list[str]:
        return [b["text"]["text"] for b in self.slack.payloads[message]["blocks"] if b["type"] == "section"]

    def issue_comments(self, number: int) -> list[str]:
        return [c["body"].split("\n")[0] for c in self.github.comments_on(number)]


@pytest.fixture
def watch(tmp_path: Path, slack: SlackReceiver, smtp: SmtpServer, github_api: GitHubServer) -> Watch:
    config = AlertsConfig(
        repeat_interval="4h",
        cooldown="1h",
        slack=SlackConfig(),
        email=EmailConfig(
            host=smtp.host, port=smtp.port, starttls=False, sender="llmci@example.com", to=["oncall@example.com"]
        ),
        github_issues=GitHubIssuesConfig(labels=["llmci-incident"]),
    )
    return Watch(FileStore(tmp_path / "registry"), config, {"SLACK_WEBHOOK_URL": slack.url}, slack, smtp, github_api)


def test_a_breach_over_ten_runs_alerts_once_and_resolves_once_per_channel(watch: Watch) -> None:
    first = watch.run(latency("critical"), at=T0)
    assert first.lines() == [
        "production: 1 alert firing",
        "slack: sent 1 alert (1 firing; one message)",
        "email: sent 1 alert (1 firing; 1 recipient(s))",
        "github: sent 1 alert (1 firing; 1 issue(s) opened)",
    ]
    for step in range(1, 10):  # 15 minutes apart: 2 h 15 min, inside the 4 h repeat interval
        later = watch.run(latency("critical", value=2400.0 + step), at=T0 + step * STEP)
        assert not later.failed and later.firing == [LATENCY]
        assert later.lines()[1:] == [
            "slack: nothing to send",
            "email: nothing to send",
            "github: nothing to send",
        ]
    assert watch.sent() == (1, 1, 1)
    (number,) = watch.github.issues
    assert watch.github.issue_states() == {number: "open"} and watch.issue_comments(number) == []

    recovered = watch.run(latency("ok", value=450.0), at=T0 + 10 * STEP)
    assert recovered.firing == [] and not recovered.failed
    for step in range(11, 14):  # recovered for less than the 1 h cooldown: the resolved notice waits
        watch.run(latency("ok", value=450.0), at=T0 + step * STEP)
    assert watch.sent() == (1, 1, 1) and watch.github.issue_states() == {number: "open"}
    resolved = watch.run(latency("ok", value=450.0), at=T0 + 14 * STEP)  # an hour after recovering
    assert resolved.channels["slack"].summary == "slack: sent 1 alert (1 resolved; one message)"
    assert watch.sent() == (2, 2, 1)
    assert watch.headers() == ["llmci production: 1 critical", "llmci production: 1 resolved"]
    assert watch.sections(1)[0].startswith(":white_check_mark: *RESOLVED latency_p95_ms on router@3*")
    assert [m["Subject"] for m in map(_parsed, watch.smtp.inbox.messages)] == [
        "llmci production: 1 critical",
        "llmci production: 1 resolved",
    ]
    assert watch.github.issue_states() == {number: "closed"}
    assert watch.issue_comments(number) == [r"**RESOLVED latency\_p95\_ms on router@3** in `production`"]
    closes = [r for r in watch.github.requests if r[0] == "PATCH" and r[1].endswith(f"/issues/{number}")]
    assert len(closes) == 1

    state, _ = load_state(watch.store, "production")
    record = state.alerts[LATENCY]
    assert (record.status, record.issue, record.value) == ("resolved", number, 450.0)
    assert record.resolved_at == (T0 + 10 * STEP).isoformat() and record.first_fired == T0.isoformat()
    assert {c: (s.status, s.claim, s.error) for c, s in record.channels.items()} == {
        "slack": ("resolved", None, None),
        "email": ("resolved", None, None),
        "github": ("resolved", None, None),
    }
    # Told everywhere: the incident is over and forgotten, and nothing more is sent.
    watch.run(latency("ok", value=450.0), at=T0 + 15 * STEP)
    assert load_state(watch.store, "production")[0].alerts == {} and watch.sent() == (2, 2, 1)


def test_every_message_links_the_dashboard_the_deploy_before_the_breach_and_the_rollback(watch: Watch) -> None:
    watch.run(latency("critical"), at=T0)
    payload = watch.slack.payloads[0]
    assert f"<{DEPLOY_RUN}|workflow run>" in str(payload["blocks"])
    assert "deployed router@3 at 2026-11-27 11:40 UTC" in str(payload["blocks"])  # v3's deploy, not v2's
    (actions,) = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert [(e["text"]["text"], e["url"]) for e in actions["elements"]] == [
        ("Dashboard", DASHBOARD),
        ("Roll back", ROLLBACK),
    ]
    assert "llmci deploy rollback --env production" in payload["text"]
    text = _parsed(watch.smtp.inbox.messages[0]).get_body(("plain",)).get_content()
    assert f"Deploy run: {DEPLOY_RUN}" in text and f"Dashboard: {DASHBOARD}" in text
    assert "Roll back: llmci deploy rollback --env production" in text
    (issue,) = watch.github.issues.values()
    assert DEPLOY_RUN in issue["body"] and DASHBOARD in issue["body"] and ROLLBACK in issue["body"]
    assert "`llmci deploy rollback --env production`" in issue["body"]


def test_alerts_of_one_environment_go_out_as_one_message_and_one_issue_each(watch: Watch) -> None:
    outcome = watch.run(errors("warning"), latency("critical"), at=T0)
    assert outcome.firing == [ERRORS, LATENCY]
    assert watch.sent() == (1, 1, 2)
    assert watch.headers() == ["llmci production: 1 critical, 1 warning"]
    assert [s.split("\n")[0] for s in watch.sections()] == [  # critical first
        ":red_circle: *CRITICAL latency_p95_ms on router@3*",
        ":large_orange_circle: *WARNING error_rate on router@3*",
    ]
    assert sorted(i["title"] for i in watch.github.issues.values()) == [
        "CRITICAL: latency_p95_ms on router@3 in production",
        "WARNING: error_rate on router@3 in production",
    ]


class OverlapStore(FileStore):
    """A FileStore that holds each thread's first read of the alert state until both threads have read it.

    Two scheduled checks then certainly decide on the same state; the lost compare-and-swaps are counted.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.barrier: threading.Barrier | None = threading.Barrier(2)
        self.lost = 0
        self._seen = threading.local()

    def read(self, key: str, limit: int | None = None) -> tuple[bytes, str]:
        try:
            return super().read(key, limit)
        finally:
            if self.barrier is not None and not getattr(self._seen, "read", False):
                self._seen.read = True
                self.barrier.wait(timeout=30)

    def create(self, key: str, data: bytes) -> str:
        try:
            return super().create(key, data)
        except PreconditionFailed:
            self.lost += 1
            raise


def test_two_overlapping_runs_send_once(watch: Watch, tmp_path: Path) -> None:
    watch.store = OverlapStore(tmp_path / "shared-registry")
    outcomes: list[AlertOutcome] = []

    def scheduled_check() -> None:
        outcomes.append(watch.run(latency("critical"), at=T0))

    threads = [threading.Thread(target=scheduled_check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    watch.store.barrier = None
    assert len(outcomes) == 2 and watch.store.lost == 1
    assert watch.sent() == (1, 1, 1)
    assert sorted(o.channels["slack"].summary for o in outcomes) == [
        "slack: 1 alert being sent by another run",
        "slack: sent 1 alert (1 firing; one message)",
    ]
    state, _ = load_state(watch.store, "production")
    assert all(s.claim is None and s.error is None for s in state.alerts[LATENCY].channels.values())


def test_slack_429_with_retry_after_then_success_delivers_once(watch: Watch) -> None:
    watch.slack.fail(429, body="rate_limited", headers={"Retry-After": "1"})
    outcome = watch.run(latency("critical"), at=T0)
    assert not outcome.failed and outcome.channels["slack"].sent == [LATENCY]
    assert watch.slack.requests == 2 and len(watch.slack.payloads) == 1
    watch.run(latency("critical"), at=T0 + STEP)
    assert watch.slack.requests == 2


def test_slack_400_fails_clearly_and_the_next_run_sends_it_again(watch: Watch) -> None:
    watch.slack.fail(400, body="invalid_payload")
    outcome = watch.run(latency("critical"), at=T0)
    assert outcome.failed
    assert outcome.channels["slack"].summary == (
        "slack: FAILED 1 alert, sent again on the next run: "
        "the Slack webhook ($SLACK_WEBHOOK_URL) answered HTTP 400: invalid_payload"
    )
    assert outcome.channels["email"].sent == [LATENCY] and outcome.channels["github"].sent == [LATENCY]
    assert outcome.failed_text() == "slack: the Slack webhook ($SLACK_WEBHOOK_URL) answered HTTP 400: invalid_payload"
    assert all(SLACK_PATH.rsplit("/", 1)[1] not in line for line in outcome.lines())
    state, _ = load_state(watch.store, "production")
    slack = state.alerts[LATENCY].channels["slack"]
    assert slack.error == "the Slack webhook ($SLACK_WEBHOOK_URL) answered HTTP 400: invalid_payload"
    assert slack.claim is None

    again = watch.run(latency("critical"), at=T0 + STEP)
    assert not again.failed and again.channels["slack"].sent == [LATENCY]
    assert again.channels["email"].summary == "email: nothing to send"  # e-mail got it the first time
    assert watch.sent() == (1, 1, 1) and watch.headers() == ["llmci production: 1 critical"]
    state, _ = load_state(watch.store, "production")
    assert state.alerts[LATENCY].channels["slack"].error is None


def test_a_missing_webhook_variable_is_a_failure_naming_it_and_is_retried(watch: Watch) -> None:
    watch.env = {}
    outcome = watch.run(latency("critical"), at=T0)
    assert outcome.failed
    assert "environment variable SLACK_WEBHOOK_URL is missing or empty" in outcome.channels["slack"].summary
    watch.env = {"SLACK_WEBHOOK_URL": watch.slack.url}
    watch.run(latency("critical"), at=T0 + STEP)
    assert watch.sent() == (1, 1, 1)


def test_github_issues_without_a_client_fail_and_the_others_still_send(watch: Watch) -> None:
    outcome = watch.run(latency("critical"), at=T0, github=None)
    assert outcome.failed and outcome.channels["slack"].sent == [LATENCY]
    assert "GITHUB_TOKEN or GITHUB_REPOSITORY is not set" in outcome.channels["github"].summary


def test_a_still_firing_alert_is_sent_again_after_the_repeat_interval(watch: Watch) -> None:
    watch.config = watch.config.model_copy(update={"repeat_interval": "1h"})
    for minutes in (0, 15, 30, 45):
        watch.run(latency("critical"), at=T0 + timedelta(minutes=minutes))
    assert watch.sent() == (1, 1, 1)
    repeat = watch.run(latency("critical"), at=T0 + timedelta(hours=1))
    assert repeat.channels["slack"].summary == "slack: sent 1 alert (1 repeat; one message)"
    assert watch.sent() == (2, 2, 1)
    assert watch.sections()[0].startswith(":red_circle: *still CRITICAL latency_p95_ms on router@3*")
    (number,) = watch.github.issues
    assert watch.issue_comments(number) == [r"**still CRITICAL latency\_p95\_ms on router@3** in `production`"]
    watch.run(latency("critical"), at=T0 + timedelta(hours=1, minutes=45))
    assert watch.sent() == (2, 2, 1)


def test_warning_to_critical_is_sent_at_once(watch: Watch) -> None:
    watch.run(latency("warning", value=1500.0), at=T0)
    escalated = watch.run(latency("critical", value=2600.0), at=T0 + STEP)
    assert escalated.channels["email"].summary == "email: sent 1 alert (1 level changed; 1 recipient(s))"
    assert watch.sent() == (2, 2, 1)
    assert watch.sections()[0].startswith(":red_circle: *WARNING → CRITICAL latency_p95_ms on router@3*")
    assert "2,600 ms" in str(watch.slack.payloads[-1]["blocks"])
    (number,) = watch.github.issues
    assert watch.issue_comments(number) == [r"**WARNING → CRITICAL latency\_p95\_ms on router@3** in `production`"]


def test_a_breach_after_the_resolved_notice_is_a_new_incident_with_a_new_issue(watch: Watch) -> None:
    watch.run(latency("critical"), at=T0)
    watch.run(latency("ok", value=300.0), at=T0 + STEP)
    watch.run(latency("ok", value=300.0), at=T0 + STEP + timedelta(hours=1))  # recovered for the 1 h cooldown
    (number,) = watch.github.issues
    assert watch.github.issue_states() == {number: "closed"}

    watch.run(latency("critical"), at=T0 + STEP + timedelta(hours=2))
    assert watch.github.issue_states() == {number: "closed", number + 1: "open"}
    assert watch.headers() == [
        "llmci production: 1 critical",
        "llmci production: 1 resolved",
        "llmci production: 1 critical",
    ]
    assert watch.sections()[0].startswith(":red_circle: *CRITICAL latency_p95_ms on router@3*")
    state, _ = load_state(watch.store, "production")
    assert state.alerts[LATENCY].first_fired == (T0 + STEP + timedelta(hours=2)).isoformat()


def test_a_breach_before_the_resolved_notice_went_out_continues_the_incident(watch: Watch) -> None:
    watch.run(latency("critical"), at=T0)
    watch.run(latency("ok", value=300.0), at=T0 + STEP)
    # No run saw it for longer than the cooldown, and the next one finds it firing: nobody was told it recovered.
    watch.run(latency("critical"), at=T0 + STEP + timedelta(hours=2))
    assert watch.sent() == (1, 1, 1) and watch.github.issue_states() == {8: "open"}
    state, _ = load_state(watch.store, "production")
    assert state.alerts[LATENCY].first_fired == T0.isoformat() and state.alerts[LATENCY].status == "firing"


def test_no_data_neither_resolves_nor_repeats_an_alert(watch: Watch) -> None:
    watch.config = watch.config.model_copy(update={"repeat_interval": "1h"})
    watch.run(latency("critical"), at=T0)
    for step in range(1, 9):  # two hours without traffic
        quiet = watch.run(latency("no_data", value=None), at=T0 + step * STEP)
        assert quiet.firing == [LATENCY]
    assert watch.sent() == (1, 1, 1)
    watch.run(latency("ok", value=300.0), at=T0 + 9 * STEP)
    watch.run(latency("ok", value=300.0), at=T0 + 13 * STEP)  # recovered for the cooldown
    assert watch.headers()[-1] == "llmci production: 1 resolved"


def test_a_claim_left_by_a_run_that_died_is_sent_after_the_claim_expires(watch: Watch) -> None:
    senders = senders_from_config(watch.config, env=watch.env, github=None)
    claim_alerts(watch.store, report(latency("critical"), at=T0), watch.config, [s.channel for s in senders], T0)
    # ... and the run died before sending. A run a minute later leaves the claim to it:
    soon = watch.run(latency("critical"), at=T0 + timedelta(minutes=1))
    assert soon.channels["slack"].summary == "slack: 1 alert being sent by another run"
    assert watch.sent() == (0, 0, 0)
    late = watch.run(latency("critical"), at=T0 + STEP)
    assert late.channels["slack"].summary == "slack: sent 1 alert (1 firing; one message)"
    assert watch.sent() == (1, 1, 1)


def test_a_failed_firing_that_resolves_meanwhile_is_sent_as_resolved(watch: Watch) -> None:
    fast = HttpRetryPolicy(retries=1, backoff_s=0.05)
    watch.slack.fail(500, times=2)
    senders = senders_from_config(watch.config, env=watch.env, github=github_client(watch.github), slack_policy=fast)
    failed = watch.run(latency("critical"), at=T0, senders=senders)
    assert "answered HTTP 500: rollup_error after 2 attempts" in failed.channels["slack"].summary
    watch.run(latency("ok", value=300.0), at=T0 + STEP)
    assert watch.headers() == []  # recovered: the notice waits for the cooldown, and is then the resolved one
    watch.run(latency("ok", value=300.0), at=T0 + 5 * STEP)
    assert watch.headers() == ["llmci production: 1 resolved"]
    watch.run(latency("ok", value=300.0), at=T0 + 6 * STEP)
    assert len(watch.slack.payloads) == 1


def _parsed(envelope: Any) -> Any:
    import email
    import email.policy

    return email.message_from_bytes(envelope.content, policy=email.policy.default)


# -- alerts that are no longer checked ------------------------------------------------------


def test_an_alert_on_a_version_rolled_back_away_from_resolves_once_saying_why_and_is_forgotten(watch: Watch) -> None:
    watch.run(latency("critical"), health("latency_p95_ms", "ok", 2), at=T0)
    (number,) = watch.github.issues
    # Rolled back to v2: the check judges only v2 now, and v3 has no finding at all.
    retired = watch.run(health("latency_p95_ms", "ok", 2), health("no_data", "ok", 2), at=T0 + STEP)
    assert retired.firing == [] and not retired.failed
    assert watch.sent() == (2, 2, 1)
    assert watch.headers()[-1] == "llmci production: 1 resolved"
    assert watch.sections()[0] == (
        ":white_check_mark: *RESOLVED (no longer checked) latency_p95_ms on router@3*\n"
        "router@3 no longer serves in production: the alert is no longer checked"
    )
    assert watch.github.issue_states() == {number: "closed"}
    (comment,) = [c["body"] for c in watch.github.comments_on(number)]
    assert comment.startswith(r"**RESOLVED \(no longer checked\) latency\_p95\_ms on router@3** in `production`")
    assert "router@3 no longer serves in production" in comment

    for step in (2, 3, 10):  # forgotten: nothing more, ever
        later = watch.run(health("latency_p95_ms", "ok", 2), at=T0 + step * STEP)
        assert later.firing == []
    assert watch.sent() == (2, 2, 1)
    assert load_state(watch.store, "production")[0].alerts == {}


def test_an_alert_whose_rule_was_removed_from_monitor_rules_resolves_as_no_longer_checked(watch: Watch) -> None:
    watch.run(latency("critical"), errors("warning"), at=T0)
    assert watch.sent() == (1, 1, 2)
    # latency_p95_ms left monitor.rules; v3 is still served and judged on its other rules.
    still = watch.run(errors("warning"), health("no_data", "ok", 3), at=T0 + STEP)
    assert still.firing == [ERRORS]
    assert watch.headers()[-1] == "llmci production: 1 resolved"
    assert watch.sections()[0] == (
        ":white_check_mark: *RESOLVED (no longer checked) latency_p95_ms on router@3*\n"
        "latency_p95_ms is no longer a rule of monitor.rules: the alert is no longer checked"
    )
    latency_issue = next(n for n, i in watch.github.issues.items() if "latency" in i["title"])
    assert watch.github.issue_states()[latency_issue] == "closed"
    watch.run(errors("warning"), at=T0 + 2 * STEP)
    assert set(load_state(watch.store, "production")[0].alerts) == {ERRORS}


def test_no_data_on_a_served_version_is_not_retirement(watch: Watch) -> None:
    watch.run(latency("critical"), at=T0)
    for step in range(1, 6):  # v3 still serves, without traffic: check writes no_data for each rule
        quiet = watch.run(latency("no_data", value=None), health("no_data", "warning", 3), at=T0 + step * STEP)
        assert LATENCY in quiet.firing
    assert watch.headers() == ["llmci production: 1 critical", "llmci production: 1 warning"]  # the no_data alert
    assert load_state(watch.store, "production")[0].alerts[LATENCY].status == "firing"


# -- flapping -------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [10, 15, 16])
def test_a_flapping_alert_with_the_default_cooldown_fires_once_and_resolves_once(watch: Watch, minutes: int) -> None:
    watch.config = AlertsConfig(**watch.config.model_dump(exclude={"cooldown"}))  # the default cooldown
    spacing = timedelta(minutes=minutes)
    for step in range(10):  # breached, recovered, breached, ... one run in two
        watch.run(latency("critical" if step % 2 == 0 else "ok", value=2400.0 if step % 2 == 0 else 300.0),
                  at=T0 + step * spacing)  # fmt: skip
    assert watch.sent() == (1, 1, 1) and watch.headers() == ["llmci production: 1 critical"]
    (number,) = watch.github.issues
    assert watch.github.issue_states() == {number: "open"} and watch.issue_comments(number) == []

    resolve = 9 + -(-60 // minutes)  # recovered at run 9: the first run an hour (the cooldown) later resolves
    for step in range(10, resolve):
        watch.run(latency("ok", value=300.0), at=T0 + step * spacing)
    assert watch.sent() == (1, 1, 1)
    for step in range(resolve, resolve + 4):
        watch.run(latency("ok", value=300.0), at=T0 + step * spacing)
    assert watch.sent() == (2, 2, 1)
    assert watch.headers() == ["llmci production: 1 critical", "llmci production: 1 resolved"]
    assert watch.github.issue_states() == {number: "closed"}
    assert watch.issue_comments(number) == [r"**RESOLVED latency\_p95\_ms on router@3** in `production`"]


def test_the_default_cooldown_outlasts_a_fifteen_minute_schedule() -> None:
    from llmci.config import parse_duration

    assert parse_duration(AlertsConfig().cooldown) >= 3600


# -- replayed reports -----------------------------------------------------------------------


def test_an_older_report_is_refused_naming_both_times(watch: Watch) -> None:
    watch.run(latency("critical"), at=T0)
    watch.run(latency("ok", value=300.0), at=T0 + STEP)
    before = watch.store.read(state_key("production"))[0]
    # The first job's alert step re-run hours later, with its old report:
    with pytest.raises(StaleReport) as caught:
        dispatch_alerts(report(latency("critical"), at=T0), watch.config, watch.store, env=watch.env, now=T0 + 5 * STEP)
    assert caught.value.exit_code == ExitCode.USAGE
    assert str(caught.value).startswith(
        "production: the report was generated at 2026-11-27T12:00:00+00:00, before the last report the alerts "
        "applied (2026-11-27T12:15:00+00:00)"
    )
    assert watch.sent() == (1, 1, 1)
    assert watch.store.read(state_key("production"))[0] == before


def test_the_same_report_again_sends_only_what_failed(watch: Watch) -> None:
    watch.slack.fail(400, body="invalid_payload")
    first = report(latency("critical"), at=T0)
    failed = dispatch_alerts(
        first, watch.config, watch.store, env=watch.env, now=T0, github=github_client(watch.github)
    )
    assert failed.failed and watch.sent() == (0, 1, 1)
    # The failed job re-run five hours later (past the 4 h repeat interval): only Slack's notice is sent.
    again = dispatch_alerts(
        first, watch.config, watch.store, env=watch.env, now=T0 + timedelta(hours=5), github=github_client(watch.github)
    )
    assert again.lines() == [
        "production: 1 alert firing (this report was applied before: only what failed is sent again)",
        "slack: sent 1 alert (1 firing; one message)",
        "email: nothing to send",
        "github: nothing to send",
    ]
    assert watch.sent() == (1, 1, 1) and watch.headers() == ["llmci production: 1 critical"]
    assert load_state(watch.store, "production")[0].last_report == T0.isoformat()


# -- a damaged state ------------------------------------------------------------------------


def _state_text(**changes: Any) -> str:
    import json

    record = {
        "rule": "latency_p95_ms",
        "model": "router",
        "version": 3,
        "status": "firing",
        "level": "critical",
        "first_fired": T0.isoformat(),
        "last_seen": T0.isoformat(),
    }
    state = {"format": "llmci.alerts/1", "env": "production", "alerts": {LATENCY: record}}
    for path, value in changes.items():
        target = state
        *parents, name = path.split("__")
        for part in parents:
            target = target[LATENCY] if part == "record" else target[part]
        target[name] = value
    return json.dumps(state)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"format": "llmci.alerts/1", "env": "prod', "Invalid JSON"),
        (_state_text(alerts__record__status="burning"), "alerts." + LATENCY + ".status: Input should be"),
        (_state_text(env="staging"), "it is the state of environment 'staging', not 'production'"),
        (_state_text(alerts__record__first_fired="2026-11-27T12:00:00"), "has no UTC offset"),
        (_state_text(alerts__record__version=4), f"alert '{LATENCY}' holds latency_p95_ms on router@4"),
    ],
    ids=["invalid-json", "schema", "wrong-env", "naive-time", "wrong-key"],
)
def test_a_damaged_state_is_an_integrity_error_saying_to_move_it_aside(watch: Watch, text: str, problem: str) -> None:
    watch.store.create(state_key("production"), text.encode())
    with pytest.raises(IntegrityError) as caught:
        watch.run(latency("critical"), at=T0)
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.INTEGRITY
    assert message.startswith("the alert state _monitor/production/alerts/state.json is damaged: ")
    assert problem in message and "\n" not in message
    assert caught.value.hint.startswith("move it aside (the next run starts a fresh state")
    assert watch.sent() == (0, 0, 0)
