"""`llmci monitor`: watching production: request records, health and cost per version, drift, rules, alerts.

The serving application writes request records (`Record`s, through a
`RecordBuffer`, as `RecordSettings` say); `llmci monitor check` reads a window
of them (`read_window`, between `window_bounds`), measures each version
(`METRICS`; `drift_tests` against the reference `resolve_reference` or
`suite_reference` gives), asks the cluster (`observe`), judges the measures
against the rules in llmci.yaml (`judge`), and writes one `MonitorReport`,
from which `render_dashboard` / `write_dashboard` make the HTML dashboard,
`summary_markdown` the job summary, and `dispatch_alerts` the alerts (to the
channels `senders_from_config` opens). `prometheus_rules` and
`grafana_dashboard` export the same rules to Prometheus and Grafana;
`sample_cases` turns records into an eval dataset; `format_metric` writes a
measure as people read it.

Two entry points share their module's name and are not re-exported here:
`llmci.monitor.check.check` (the whole check) and
`llmci.monitor.screenshot.screenshot` (the dashboard as a PNG).

The names are loaded on first use: importing this package imports neither
pyarrow nor scipy (`llmci --help` starts as fast as click).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.monitor.alerts import AlertOutcome, dispatch_alerts
    from llmci.monitor.check import ClusterView, Reference, judge, resolve_reference, suite_reference, window_bounds
    from llmci.monitor.cluster import observe
    from llmci.monitor.dashboard import render_dashboard, write_dashboard
    from llmci.monitor.drift import drift_tests
    from llmci.monitor.exporters import grafana_dashboard, prometheus_rules
    from llmci.monitor.metrics import METRICS, Metric, format_metric, format_value
    from llmci.monitor.notify import AlertGroup, Notice, senders_from_config
    from llmci.monitor.records import Record, RecordBuffer, RecordSettings, read_window
    from llmci.monitor.report import DeployMark, Finding, Links, MonitorReport, VersionHealth
    from llmci.monitor.sample import sample_cases
    from llmci.monitor.summary import summary_markdown

_WHERE = {
    "AlertOutcome": "alerts",
    "dispatch_alerts": "alerts",
    "ClusterView": "check",
    "Reference": "check",
    "judge": "check",
    "resolve_reference": "check",
    "suite_reference": "check",
    "window_bounds": "check",
    "observe": "cluster",
    "render_dashboard": "dashboard",
    "write_dashboard": "dashboard",
    "drift_tests": "drift",
    "grafana_dashboard": "exporters",
    "prometheus_rules": "exporters",
    "METRICS": "metrics",
    "Metric": "metrics",
    "format_metric": "metrics",
    "format_value": "metrics",
    "AlertGroup": "notify",
    "Notice": "notify",
    "senders_from_config": "notify",
    "Record": "records",
    "RecordBuffer": "records",
    "RecordSettings": "records",
    "read_window": "records",
    "DeployMark": "report",
    "Finding": "report",
    "Links": "report",
    "MonitorReport": "report",
    "VersionHealth": "report",
    "sample_cases": "sample",
    "summary_markdown": "summary",
}

__all__ = [
    "METRICS",
    "AlertGroup",
    "AlertOutcome",
    "ClusterView",
    "DeployMark",
    "Finding",
    "Links",
    "Metric",
    "MonitorReport",
    "Notice",
    "Record",
    "RecordBuffer",
    "RecordSettings",
    "Reference",
    "VersionHealth",
    "dispatch_alerts",
    "drift_tests",
    "format_metric",
    "format_value",
    "grafana_dashboard",
    "judge",
    "observe",
    "prometheus_rules",
    "read_window",
    "render_dashboard",
    "resolve_reference",
    "sample_cases",
    "senders_from_config",
    "suite_reference",
    "summary_markdown",
    "window_bounds",
    "write_dashboard",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
