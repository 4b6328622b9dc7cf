"""The monitor report as one self-contained HTML page: headline, findings, charts, versions, drift, deploys.

Everything is inline: CSS, and SVG charts drawn here in Python, with no script, font or image fetched,
so the page opens offline (an artifact, an e-mail attachment) and headless Chromium screenshots it with
no network. A point's tooltip is an SVG `<title>`, which browsers show without script.

Every text taken from the report is escaped: findings' messages, drift summaries, deploy messages and
model names can carry anything a request or a person put there.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from llmci.errors import InputError
from llmci.fsutil import atomic_write_text
from llmci.monitor.metrics import METRICS, format_metric, format_value, significant
from llmci.monitor.report import DeployMark, Finding, MonitorReport, SeriesPoint, VersionHealth
from llmci.redact import redact_userinfo, without_userinfo


@dataclass(frozen=True)
class Colour:
    hex: str
    #: The square of the same hue, for Markdown legends (the job summary cannot colour text).
    emoji: str
    name: str


#: One colour per version, the same in every chart, the job summary's Mermaid chart and its legend.
PALETTE = (
    Colour("#1f77b4", "🟦", "blue"),
    Colour("#ff7f0e", "🟧", "orange"),
    Colour("#2ca02c", "🟩", "green"),
    Colour("#9467bd", "🟪", "purple"),
    Colour("#8c564b", "🟫", "brown"),
    Colour("#bcbd22", "🟨", "yellow"),
    Colour("#3b3b3b", "⬛", "black"),
    Colour("#d62728", "🟥", "red"),
)

LEVEL_COLOURS = {"ok": "#1a7f37", "warning": "#9a6700", "critical": "#cf222e", "no_data": "#6e7781"}
#: Worst first: the order findings are listed in.
LEVEL_ORDER = {"critical": 0, "warning": 1, "no_data": 2, "ok": 3}
LEVEL_LABELS = {"ok": "ok", "warning": "warning", "critical": "critical", "no_data": "no data"}


def version_colours(refs: Iterable[tuple[str, int]]) -> dict[str, Colour]:
    """`model@version` -> its colour: version N prefers palette entry N-1, so v3 keeps its colour from one
    report to the next; a version whose colour is taken in this report gets the next free one."""
    colours: dict[str, Colour] = {}
    taken: set[int] = set()
    for model, version in sorted(set(refs)):
        preferred = (version - 1) % len(PALETTE)
        free = [(preferred + step) % len(PALETTE) for step in range(len(PALETTE))]
        index = next((i for i in free if i not in taken), preferred)
        taken.add(index)
        colours[f"{model}@{version}"] = PALETTE[index]
    return colours


def report_colours(report: MonitorReport) -> dict[str, Colour]:
    refs = [(v.model, v.version) for v in report.versions] + [(p.model, p.version) for p in report.series]
    refs += [(m.model, m.version) for m in report.deploys if m.model is not None and m.version is not None]
    return version_colours(refs)


# -- values as people read them ------------------------------------------------------------------------


def comparison(rule: str, breached: bool = True) -> str:
    """How a value breaches a rule's threshold: `>` (above) or `<` (below); for a value within it, `≤` or `≥`."""
    below = rule in METRICS and METRICS[rule].breach == "below"
    if breached:
        return "<" if below else ">"
    return "≥" if below else "≤"


def parse_time(text: str, what: str = "time") -> datetime:
    """An ISO 8601 time of the report as an aware UTC datetime (`Z` accepted, naive read as UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise InputError(f"monitor report: {what} {text!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def format_duration(seconds: float) -> str:
    """`90s`, `15m`, `1h 30m`, `2d 3h`: the two largest units."""
    seconds = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2]) or "0s"


def safe_link(url: str | None) -> str | None:
    """An http(s) URL without its userinfo, or None: a report's links never become `javascript:` ones."""
    if not url or not url.lower().startswith(("https://", "http://")):
        return None
    return without_userinfo(url)


def _e(value: object) -> str:
    """Text for HTML: escaped, and any `user:password@` in a URL it mentions dropped."""
    return html.escape(redact_userinfo(str(value)), quote=True)


# -- charts -------------------------------------------------------------------------------------------

WIDTH = 620
LEFT, RIGHT, TOP, PLOT_BOTTOM = 64, 16, 40, 214
#: Drawing every point's circle beyond this many points per line would bloat the page; isolated points
#: (a segment of one) are always drawn, or they would not show at all.
MAX_MARKERS = 400
#: Deploy events closer than this (pixels) share one label.
CLUSTER_PX = 60


@dataclass
class _Line:
    label: str
    colour: str
    #: (seconds since the epoch of the step's start, value or None).
    points: list[tuple[float, float | None]]
    dash: str = ""
    #: Draw a step across each bucket (a quantity of the step) rather than a line through its middle.
    step: bool = False


@dataclass
class _Chart:
    key: str
    title: str
    what: str
    unit: str
    lines: list[_Line]
    legend: list[tuple[str, str, str]]  # (label, colour, dash)
    y_top: float | None = None
    alarm: float | None = None


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """0, s, 2s, ... up to the first tick at or above `top`, s a 1, 2, 2.5 or 5 times a power of ten."""
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


_TIME_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def _time_ticks(start: float, end: float) -> tuple[list[float], str]:
    """Round UTC times for the time axis (at most 8; 6 when labels carry the date) and their strftime format."""
    span = end - start
    most = 8 if span <= 86400 else 6
    step = next((s for s in _TIME_STEPS if span / s <= most), _TIME_STEPS[-1])
    fmt = "%H:%M" if span <= 86400 else ("%m-%d" if step >= 86400 else "%m-%d %H:%M")
    first = math.ceil(start / step) * step
    return [float(t) for t in range(int(first), int(end) + 1, step)], fmt


def _segments(points: list[tuple[float, float | None]], bucket: float) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known values: a None, or a missing step, breaks the line."""
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    previous: float | None = None
    for t, value in sorted(points, key=lambda point: point[0]):
        if value is None or (previous is not None and t - previous > bucket * 1.5):
            if current:
                segments.append(current)
            current = []
        if value is not None:
            current.append((t, value))
        previous = t
    if current:
        segments.append(current)
    return segments


def _legend_rows(items: list[tuple[str, str, str]]) -> list[list[tuple[float, tuple[str, str, str]]]]:
    rows: list[list[tuple[float, tuple[str, str, str]]]] = [[]]
    x = float(LEFT)
    for item in items:
        width = 30 + 6.6 * len(item[0]) + 14
        if rows[-1] and x + width > WIDTH - RIGHT:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((x, item))
        x += width
    return rows


def _svg_chart(chart: _Chart, start: float, end: float, bucket: float, deploys: list[DeployMark]) -> str:
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = PLOT_BOTTOM - TOP

    def x_of(t: float) -> float:
        return LEFT + min(max((t - start) / (end - start), 0.0), 1.0) * plot_w

    values = [v for line in chart.lines for _, v in line.points if v is not None]
    top = max([*values, chart.y_top or 0.0, (chart.alarm or 0.0) * 1.2])
    if chart.y_top is None:
        top *= 1.08
    if top <= 0:
        top = 0.01 if chart.unit == "ratio" else 1.0
    y_ticks = _nice_ticks(top)
    y_max = y_ticks[-1]

    def y_of(value: float) -> float:
        return PLOT_BOTTOM - min(max(value / y_max, 0.0), 1.0) * plot_h

    legend = _legend_rows(chart.legend)
    height = PLOT_BOTTOM + 30 + 16 * len(legend)
    refs = list(dict.fromkeys(line.label.split(" ")[0] for line in chart.lines))
    desc = (
        f"{chart.what} From {format_time(_utc(start))} to {format_time(_utc(end))}, "
        f"one line per version ({', '.join(refs) or 'none'}); {len(deploys)} deploy event(s) marked."
    )
    out = [
        f'<svg class="chart" data-chart="{_e(chart.key)}" id="chart-{_e(chart.key)}" viewBox="0 0 {WIDTH} {height}"'
        f' width="{WIDTH}" height="{height}" role="img"'
        f' aria-labelledby="chart-{_e(chart.key)}-title chart-{_e(chart.key)}-desc">',
        f'<title id="chart-{_e(chart.key)}-title">{_e(chart.title)}</title>',
        f'<desc id="chart-{_e(chart.key)}-desc">{_e(desc)}</desc>',
    ]
    # Axes and grid.
    for tick in y_ticks:
        y = y_of(tick)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_e(_tick_label(chart.unit, tick, y_max))}</text>"
        )
    x_ticks, fmt = _time_ticks(start, end)
    for tick in x_ticks:
        x = x_of(tick)
        out.append(f'<line class="axis" x1="{x:.1f}" y1="{PLOT_BOTTOM}" x2="{x:.1f}" y2="{PLOT_BOTTOM + 5}"/>')
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{PLOT_BOTTOM + 18}" text-anchor="middle">'
            f"{_e(_utc(tick).strftime(fmt))}</text>"
        )
    out.append(f'<line class="axis" x1="{LEFT}" y1="{PLOT_BOTTOM}" x2="{WIDTH - RIGHT}" y2="{PLOT_BOTTOM}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{PLOT_BOTTOM}"/>')
    out.append(f'<text class="tick" x="{WIDTH - RIGHT}" y="{PLOT_BOTTOM + 30}" text-anchor="end">UTC</text>')
    if chart.alarm is not None:
        y = y_of(chart.alarm)
        out.append(f'<line class="alarm" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        out.append(f'<text class="alarm-label" x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end">alarm</text>')
    # Deploy events: a marked vertical line each. Events closer than CLUSTER_PX (a deploy's start, smoke,
    # steps and end, seconds apart) share one label, the last one's, with the count of the others; labels
    # of neighbouring clusters are staggered so they do not overwrite each other.
    placed = [(x_of(parse_time(mark.at, "deploys[].at").timestamp()), mark) for mark in deploys]
    clusters: list[list[tuple[float, DeployMark]]] = []
    for x, mark in sorted(placed, key=lambda item: item[0]):
        if clusters and x - clusters[-1][0][0] < CLUSTER_PX:
            clusters[-1].append((x, mark))
        else:
            clusters.append([(x, mark)])
    for index, cluster in enumerate(clusters):
        for x, mark in cluster:
            label = _deploy_label(mark)
            tip = f"{format_time(parse_time(mark.at))}: {label}" + (f" ({mark.message})" if mark.message else "")
            out.append(
                f'<g class="deploy" data-action="{_e(mark.action)}"><title>{_e(tip)}</title>'
                f'<line x1="{x:.1f}" y1="{TOP - 12}" x2="{x:.1f}" y2="{PLOT_BOTTOM}"/>'
                f'<path d="M{x - 4:.1f},{TOP - 12} h8 l-4,6 z"/></g>'
            )
        x, last = cluster[-1]
        anchor = "start" if x < LEFT + 50 else ("end" if x > WIDTH - RIGHT - 50 else "middle")
        label = _deploy_label(last) + (f" (+{len(cluster) - 1})" if len(cluster) > 1 else "")
        out.append(
            f'<text class="deploy-label" x="{x:.1f}" y="{10 + 12 * (index % 2)}" text-anchor="{anchor}">'
            f"{_e(label)}</text>"
        )
    # The data.
    for line in chart.lines:
        segments = _segments(line.points, bucket)
        many = sum(len(segment) for segment in segments) > MAX_MARKERS
        dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        out.append(f'<g class="series" data-series="{_e(line.label)}">')
        for segment in segments:
            if line.step:
                path = f"M{x_of(segment[0][0]):.1f},{y_of(segment[0][1]):.1f}"
                for i, (t, value) in enumerate(segment):
                    path += (f"V{y_of(value):.1f}" if i else "") + f"H{x_of(t + bucket):.1f}"
            else:
                path = "M" + "L".join(f"{x_of(t + bucket / 2):.1f},{y_of(value):.1f}" for t, value in segment)
            out.append(f'<path d="{path}" fill="none" stroke="{line.colour}" stroke-width="2"{dash}/>')
            if many and len(segment) > 1:
                continue
            for t, value in segment:
                x = x_of(t + bucket / 2)
                tip = f"{line.label} · {format_time(_utc(t))} · {format_value(chart.unit, value)}"
                radius = 3.5 if len(segment) == 1 else 2.5
                out.append(
                    f'<circle cx="{x:.1f}" cy="{y_of(value):.1f}" r="{radius}" fill="{line.colour}">'
                    f"<title>{_e(tip)}</title></circle>"
                )
        out.append("</g>")
    # Legend.
    for row_index, row in enumerate(legend):
        y = PLOT_BOTTOM + 44 + 16 * row_index
        for x, (label, colour, dash) in row:
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{x:.1f}" y1="{y - 4}" x2="{x + 24:.1f}" y2="{y - 4}" stroke="{colour}"'
                f' stroke-width="3"{dashed}/><text class="legend" x="{x + 30:.1f}" y="{y}">{_e(label)}</text>'
            )
    if not values:
        out.append(
            f'<text class="empty-chart" x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}"'
            ' text-anchor="middle">no values in this window</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _tick_label(unit: str, value: float, y_max: float) -> str:
    if unit == "ratio":
        return f"{value:.0%}" if y_max >= 0.05 else f"{value:.1%}" if y_max >= 0.005 else f"{value:.2%}"
    if unit == "USD":
        return "$" + (f"{value:,.2f}" if y_max >= 1 else significant(value, 2))
    if unit == "ms":
        return f"{value:,.0f}" if y_max < 10000 else f"{value / 1000:,.0f} s"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value else "0"


def _deploy_label(mark: DeployMark) -> str:
    if mark.model is not None and mark.version is not None:
        return f"{mark.action} {mark.model}@{mark.version}"
    return mark.action if mark.version is None else f"{mark.action} v{mark.version}"


_LATENCY = (("p50", "latency_p50_ms", "2 3"), ("p95", "latency_p95_ms", ""), ("p99", "latency_p99_ms", "8 4"))


def _charts(report: MonitorReport, colours: dict[str, Colour]) -> list[_Chart]:
    by_ref: dict[str, list[SeriesPoint]] = {}
    for point in report.series:
        by_ref.setdefault(f"{point.model}@{point.version}", []).append(point)
    refs = sorted(by_ref, key=lambda ref: (ref.rpartition("@")[0], int(ref.rpartition("@")[2])))
    versions_legend = [(ref, colours[ref].hex, "") for ref in refs]

    def lines(value: Callable[[SeriesPoint], float | None], step: bool = False) -> list[_Line]:
        return [
            _Line(ref, colours[ref].hex, [(_epoch(p.start), value(p)) for p in by_ref[ref]], step=step) for ref in refs
        ]

    latency = [
        _Line(
            f"{ref} {name}",
            colours[ref].hex,
            [(_epoch(p.start), getattr(p, field)) for p in by_ref[ref]],
            dash=dash,
        )
        for ref in refs
        for name, field, dash in _LATENCY
    ]
    step = format_duration(report.bucket_seconds)
    return [
        _Chart(
            "traffic",
            "Traffic share",
            f"Share of the model's live requests each version answered, per {step} step.",
            "ratio",
            lines(lambda p: p.traffic_share, step=True),
            versions_legend,
            y_top=1.0,
        ),
        _Chart(
            "errors",
            "Error rate",
            f"Share of requests answered with a 5xx status, per {step} step.",
            "ratio",
            lines(lambda p: p.errors / p.requests if p.requests else None),
            versions_legend,
        ),
        _Chart(
            "latency",
            "Latency p50 / p95 / p99 (ms)",
            f"Latency percentiles through the router in milliseconds, per {step} step.",
            "ms",
            latency,
            versions_legend + [(name, "#57606a", dash) for name, _, dash in _LATENCY],
        ),
        _Chart(
            "cost",
            "Cost",
            f"Cost in USD of each version's requests, per {step} step.",
            "USD",
            lines(lambda p: p.cost_usd, step=True),
            versions_legend,
        ),
        _Chart(
            "drift",
            "Drift score",
            f"The largest drift statistic relative to its threshold, per {step} step; 1.0 is the alarm line.",
            "score",
            lines(lambda p: p.drift_score),
            versions_legend,
            alarm=1.0,
        ),
    ]


def _epoch(text: str) -> float:
    return parse_time(text, "series[].start").timestamp()


# -- tables -------------------------------------------------------------------------------------------


def _level_badge(level: str) -> str:
    return f'<span class="level level-{_e(level)}">{_e(LEVEL_LABELS.get(level, level))}</span>'


def _findings_section(findings: list[Finding]) -> str:
    if not findings:
        return '<section id="findings"><h2>Findings</h2><p class="quiet">Every rule passed.</p></section>'
    rows = []
    for finding in sorted(findings, key=lambda f: (LEVEL_ORDER.get(f.level, 9), f.rule, f.model, f.version)):
        threshold = (
            f"{comparison(finding.rule)} {format_metric(finding.rule, finding.threshold)}"
            if finding.threshold is not None
            else "—"
        )
        rows.append(
            f'<tr class="finding level-{_e(finding.level)}" data-rule="{_e(finding.rule)}">'
            f"<td>{_level_badge(finding.level)}</td><td><code>{_e(finding.rule)}</code></td>"
            f"<td>{_e(finding.model)}@{finding.version}</td><td>{_e(format_metric(finding.rule, finding.value))}</td>"
            f"<td>{_e(threshold)}</td><td>{_e(finding.message)}</td></tr>"
        )
    return (
        '<section id="findings"><h2>Findings</h2><table class="findings"><thead><tr><th>Level</th><th>Rule</th>'
        "<th>Version</th><th>Value</th><th>Threshold</th><th>Message</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )


def version_rows(version: VersionHealth) -> list[tuple[str, str, str | None]]:
    """(label, value, rule) rows of a version's table; `rule` names the metric a finding may flag."""
    m = version.metrics

    def metric(name: str, fallback: float | None = None) -> str:
        return format_metric(name, m.get(name, fallback))

    error_rate = version.errors / version.requests if version.requests else None
    cost = version.cost
    drifted = [test.descriptor for test in version.drift if test.drifted]
    serve = version.serve_status or "—"
    if version.replicas_running is not None or version.replicas_unhealthy is not None:
        serve += f" · {version.replicas_running or 0} running, {version.replicas_unhealthy or 0} unhealthy"
    return [
        ("Requests", f"{version.requests:,}", None),
        ("Errors", f"{version.errors:,}", None),
        ("Traffic share", format_value("ratio", version.traffic_share), None),
        ("Error rate", metric("error_rate", error_rate), "error_rate"),
        ("Availability", metric("availability"), "availability"),
        ("Latency p50", metric("latency_p50_ms"), "latency_p50_ms"),
        ("Latency p95", metric("latency_p95_ms"), "latency_p95_ms"),
        ("Latency p99", metric("latency_p99_ms"), "latency_p99_ms"),
        ("Queue p95", metric("queue_p95_ms"), "queue_p95_ms"),
        ("Throughput", metric("throughput_rps"), "throughput_rps"),
        ("Tokens in / out", f"{version.input_tokens:,} / {version.output_tokens:,}", None),
        ("Cost", format_value("USD", cost.usd) + (f" ({cost.basis})" if cost.basis else ""), None),
        ("Cost per request", metric("cost_per_request_usd", cost.per_request_usd), "cost_per_request_usd"),
        ("Cost per 1k tokens", metric("cost_per_1k_tokens_usd", cost.per_1k_tokens_usd), "cost_per_1k_tokens_usd"),
        ("CPU", metric("cpu_percent", version.resources.cpu_percent), "cpu_percent"),
        ("Memory", metric("memory_mb", version.resources.memory_mb), "memory_mb"),
        ("GPU", metric("gpu_percent", version.resources.gpu_percent), "gpu_percent"),
        ("Serve", serve, "unhealthy_replicas"),
        ("Empty or refused answers", metric("empty_output_share"), "empty_output_share"),
        (
            "Drifted descriptors",
            metric("drifted_descriptors", len(drifted)) + (f": {', '.join(drifted)}" if drifted else ""),
            "drifted_descriptors",
        ),
    ]


def _version_section(version: VersionHealth, colour: Colour, findings: list[Finding]) -> str:
    # Rule -> the worst level flagged on it (worst last, so it is the one kept).
    flagged = {
        f.rule: f.level
        for f in sorted(findings, key=lambda f: LEVEL_ORDER.get(f.level, 9), reverse=True)
        if f.model == version.model and f.version == version.version and f.level != "ok"
    }
    rows = []
    for label, value, rule in version_rows(version):
        attributes = f' data-metric="{_e(rule)}"' if rule else ""
        if rule in flagged:
            attributes += f' class="level-{_e(flagged[rule])}"'
        rows.append(f"<tr{attributes}><th>{_e(label)}</th><td>{_e(value)}</td></tr>")
    return (
        f'<section class="version" data-version="{_e(version.ref)}"><h3><span class="swatch"'
        f' style="background:{colour.hex}"></span>{_e(version.ref)}</h3><table class="metrics">'
        + "".join(rows)
        + "</table></section>"
    )


def _drift_section(versions: list[VersionHealth], reference: str | None) -> str:
    parts = []
    for version in versions:
        if not version.drift:
            continue
        rows = "".join(
            f'<tr class="{"drifted" if test.drifted else "steady"}"><td>{_e(test.descriptor)}</td>'
            f"<td>{_e(test.kind)}</td>"
            f"<td>{_e(test.test)}</td><td>{test.statistic:.4g}</td>"
            f"<td>{'—' if test.p_value is None else f'{test.p_value:.3g}'}</td><td>{test.threshold:.3g}</td>"
            f"<td>{'drifted' if test.drifted else 'no'}</td><td>{test.reference_n:,} / {test.current_n:,}</td>"
            f"<td>{_e(test.summary)}</td></tr>"
            for test in sorted(version.drift, key=lambda t: (not t.drifted, t.descriptor))
        )
        parts.append(
            f'<h3>{_e(version.ref)}</h3><table class="drift" data-version="{_e(version.ref)}"><thead><tr>'
            "<th>Descriptor</th><th>Kind</th><th>Test</th><th>Statistic</th><th>p-value</th><th>Threshold</th>"
            f"<th>Drift</th><th>n reference / current</th><th>Change</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    if not parts:
        return ""
    against = f" against {_e(reference)}" if reference else ""
    return f'<section id="drift"><h2>Input and output drift{against}</h2>{"".join(parts)}</section>'


def _deploys_section(deploys: list[DeployMark]) -> str:
    if not deploys:
        return ""
    rows = []
    for mark in deploys:
        link = safe_link(mark.workflow_run_url)
        run = f'<a href="{_e(link)}">run</a>' if link else ""
        previous = f"{mark.previous}" if mark.previous is not None else "—"
        rows.append(
            f"<tr><td>{_e(format_time(parse_time(mark.at, 'deploys[].at')))}</td><td>{_e(mark.action)}</td>"
            f"<td>{_e(_deploy_label(mark).removeprefix(mark.action).strip() or '—')}</td><td>{_e(previous)}</td>"
            f"<td>{_e(mark.message)}</td><td>{run}</td></tr>"
        )
    return (
        '<section id="deploys"><h2>Deploys in this window</h2><table><thead><tr><th>At</th><th>Action</th>'
        "<th>Version</th><th>Previous</th><th>Message</th><th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )


def _header(report: MonitorReport, start: datetime, end: datetime) -> str:
    links = []
    for label, url in (
        ("Dashboard", report.links.dashboard),
        ("Roll back", report.links.rollback),
        ("Workflow run", report.links.run),
    ):
        safe = safe_link(url)
        if safe:
            links.append(f'<a href="{_e(safe)}">{_e(label)}</a>')
    length = format_duration((end - start).total_seconds())
    facts = [
        f"<dt>Window</dt><dd>{_e(format_time(start))} → {_e(format_time(end))} ({_e(length)})</dd>",
        f"<dt>Records read</dt><dd>{report.records:,}</dd>",
        f"<dt>Drift reference</dt><dd>{_e(report.reference or '—')}</dd>",
        f"<dt>Generated</dt><dd>{_e(format_time(parse_time(report.generated_at, 'generated_at')))}</dd>",
    ]
    return (
        f'<header><h1>{_e(report.env)} <span id="overall" class="level level-{_e(report.level)}">'
        f"{_e(LEVEL_LABELS.get(report.level, report.level))}</span></h1>"
        f'<dl class="facts">{"".join(facts)}</dl>' + (f"<nav>{' · '.join(links)}</nav>" if links else "") + "</header>"
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;background:#fff;
margin:0;padding:16px 20px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:12px 0 6px}
.facts{display:flex;flex-wrap:wrap;gap:4px 22px;margin:0}.facts dt{color:#59636e}.facts dd{margin:0 0 0 -16px}
.level{display:inline-block;border-radius:10px;padding:1px 10px;color:#fff;font-size:13px;font-weight:600;
vertical-align:middle}
.level.level-ok{background:#1a7f37}.level.level-warning{background:#9a6700}
.level.level-critical{background:#cf222e}.level.level-no_data{background:#6e7781}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;
vertical-align:top}thead th{background:#f6f8fa}
tr.level-warning td{background:#fff8c5}tr.level-critical td{background:#ffebe9}
tr.drifted td{background:#fff8c5}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:8px 24px}
figure{margin:0}figcaption{font-weight:600;margin:6px 0 0}
svg.chart{max-width:100%;height:auto;font-size:11px}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}svg .tick,svg .legend{fill:#59636e}
svg .deploy line{stroke:#57606a;stroke-dasharray:4 3}svg .deploy path{fill:#57606a}
svg .deploy-label{fill:#24292f;font-size:10px}svg .alarm{stroke:#cf222e;stroke-dasharray:6 3}
svg .alarm-label{fill:#cf222e;font-size:10px}
svg .grid,svg .axis,svg .deploy line{shape-rendering:crispEdges}svg .empty-chart{fill:#8c959f;font-size:13px}
.versions{display:flex;flex-wrap:wrap;gap:12px 24px}.version h3 .swatch{display:inline-block;width:12px;
height:12px;border-radius:2px;margin-right:6px}
.metrics th{font-weight:normal;color:#59636e;background:#f6f8fa}
.empty{border:1px dashed #8c959f;border-radius:6px;padding:12px 16px;background:#f6f8fa;margin:16px 0}
.quiet{color:#59636e}nav{margin-top:6px}code{font-size:12px}
"""


def render_dashboard(report: MonitorReport) -> str:
    """The report as one HTML page that needs nothing else: no script, no fetch, charts as inline SVG."""
    start = parse_time(report.window_start, "window_start")
    end = parse_time(report.window_end, "window_end")
    bucket = report.bucket_seconds if report.bucket_seconds > 0 else 60.0
    if end <= start:  # a window of no length still needs an axis
        end = start + timedelta(seconds=bucket)
    colours = report_colours(report)
    parts = [_header(report, start, end)]
    if report.records == 0:
        parts.append(
            '<section class="empty" id="no-data"><h2>No records in this window</h2><p>No request was recorded'
            f" for {_e(report.env)} between {_e(format_time(start))} and {_e(format_time(end))}. Either nothing"
            " was served, or the serving application did not record (see the notes below).</p></section>"
        )
    parts.append(_findings_section(report.findings))
    if report.series:
        deploys = [m for m in report.deploys if start <= parse_time(m.at, "deploys[].at") <= end]
        figures = [
            f"<figure><figcaption>{_e(chart.title)}</figcaption>"
            f"{_svg_chart(chart, start.timestamp(), end.timestamp(), bucket, deploys)}</figure>"
            for chart in _charts(report, colours)
        ]
        parts.append(
            '<section id="charts"><h2>Over time</h2><div class="charts">' + "".join(figures) + "</div></section>"
        )
    if report.versions:
        parts.append(
            '<section id="versions"><h2>Versions</h2><div class="versions">'
            + "".join(_version_section(v, colours[v.ref], report.findings) for v in report.versions)
            + "</div></section>"
        )
    parts.append(_drift_section(report.versions, report.reference))
    parts.append(_deploys_section(report.deploys))
    if report.notes:
        parts.append(
            '<section id="notes"><h2>Notes</h2><ul>'
            + "".join(f"<li>{_e(n)}</li>" for n in report.notes)
            + "</ul></section>"
        )
    title = f"llmci monitor · {report.env} · {LEVEL_LABELS.get(report.level, report.level)}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # The page fetches nothing: a policy that says so keeps it true even if a value slipped through.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>" + "".join(parts) + "</body></html>\n"
    )


def write_dashboard(report: MonitorReport, path: Path) -> Path:
    """Write the page atomically (a reader never sees half of it); returns `path`."""
    atomic_write_text(path, render_dashboard(report))
    return path
