"""Watching production: request records, health and cost per version, drift, rules, alerts, dashboards.

The serving application writes request records (`records`); `llmci monitor
check` reads a window of them, measures each version (`metrics`, `drift`),
judges the measures against the rules in `llmci.yaml` (`rules`), and writes
one report (`report`), from which the dashboard, the job summary and the
alerts are made.
"""
