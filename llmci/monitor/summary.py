"""The monitor report as a job summary: headline, findings, one table of the versions, a Mermaid chart.

GitHub renders the summary as Markdown, so every value from the report goes through the project's
escaping (`llmci.report.markdown.inline`): a message cannot break a table, mention someone or become a
link. `$` is escaped too, since GitHub reads `$...$` on one line as math. Mermaid breaks on quotes, so
the chart's labels are built here from the version names and times only, with anything else dropped.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from llmci.monitor.dashboard import (
    LEVEL_LABELS,
    LEVEL_ORDER,
    Colour,
    comparison,
    format_duration,
    format_time,
    parse_time,
    report_colours,
    safe_link,
    version_rows,
)
from llmci.monitor.metrics import format_metric
from llmci.monitor.report import MonitorReport
from llmci.report.markdown import inline

LEVEL_EMOJI = {"ok": "✅", "warning": "⚠️", "critical": "🔴", "no_data": "⚪"}
#: The Mermaid chart's x axis: more steps than this are summed into wider ones, so the labels stay legible.
MAX_CHART_STEPS = 24
_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9@._:/, -]")


def _md(value: object) -> str:
    """Untrusted text for one line of Markdown: escaped, and `$` too (GitHub reads `$...$` as math)."""
    return inline(value).replace("$", "\\$")


def _link_target(url: str) -> str:
    """A URL as a Markdown link destination: characters that would end or break it percent-encoded."""
    for char, code in ((" ", "%20"), ("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E"), ('"', "%22")):
        url = url.replace(char, code)
    return url


def summary_markdown(report: MonitorReport, png_name: str | None) -> str:
    """The job summary of a monitor check; `png_name` is the dashboard's screenshot to show, if any."""
    start = parse_time(report.window_start, "window_start")
    end = parse_time(report.window_end, "window_end")
    colours = report_colours(report)
    level = LEVEL_LABELS.get(report.level, report.level)
    out = [
        f"### {LEVEL_EMOJI.get(report.level, '')} llmci monitor · {_md(report.env)} · {_md(level)}",
        "",
        f"{_md(format_time(start))} → {_md(format_time(end))} ({_md(format_duration((end - start).total_seconds()))})"
        f" · **{report.records:,}** records read · drift reference: {_md(report.reference or '—')}",
    ]
    links = [
        f"[{label}]({_link_target(safe)})"
        for label, url in (
            ("Dashboard", report.links.dashboard),
            ("Roll back", report.links.rollback),
            ("Workflow run", report.links.run),
        )
        if (safe := safe_link(url))
    ]
    if links:
        out += ["", " · ".join(links)]
    if report.records == 0:
        out += ["", "> **No records in this window.** Nothing was served, or the serving application did not record."]

    out += ["", "#### Findings", ""]
    if report.findings:
        for finding in sorted(report.findings, key=lambda f: (LEVEL_ORDER.get(f.level, 9), f.rule, f.version)):
            measure = format_metric(finding.rule, finding.value)
            if finding.threshold is not None:
                breached = finding.level in ("warning", "critical")
                measure += f" {comparison(finding.rule, breached)} {format_metric(finding.rule, finding.threshold)}"
            out.append(
                f"- {LEVEL_EMOJI.get(finding.level, '')} **{_md(LEVEL_LABELS.get(finding.level, finding.level))}**"
                f" {_md(finding.rule)} on {_md(f'{finding.model}@{finding.version}')}: {_md(measure)}"
                f" — {_md(finding.message)}"
            )
    else:
        out.append("Every rule passed.")

    if report.versions:
        out += ["", "#### Versions", "", *_versions_table(report, colours)]
    chart = _mermaid(report, colours, start, end)
    if chart:
        out += ["", *chart]
    if png_name:
        out += ["", f"![dashboard]({_link_target(png_name)})"]
    if report.notes:
        out += ["", "#### Notes", "", *(f"- {_md(note)}" for note in report.notes)]
    return "\n".join(out) + "\n"


def _versions_table(report: MonitorReport, colours: dict[str, Colour]) -> list[str]:
    """Rows are measures, columns are versions, so versions compare side by side; a flagged cell gets its level."""
    flagged: dict[tuple[str, str], str] = {}
    for f in sorted(report.findings, key=lambda f: LEVEL_ORDER.get(f.level, 9), reverse=True):
        if f.level != "ok":
            flagged[(f"{f.model}@{f.version}", f.rule)] = f.level
    columns = [(v.ref, version_rows(v)) for v in report.versions]
    header = "| | " + " | ".join(f"{colours[ref].emoji} {_md(ref)}" for ref, _ in columns) + " |"
    lines = [header, "|---" + "|---:" * len(columns) + "|"]
    for index, (label, _, rule) in enumerate(columns[0][1]):
        cells = []
        for ref, rows in columns:
            value = _md(rows[index][1])
            level = flagged.get((ref, rule)) if rule else None
            cells.append(f"{value} {LEVEL_EMOJI[level]}" if level in LEVEL_EMOJI else value)
        lines.append(f"| {_md(label)} | " + " | ".join(cells) + " |")
    return lines


def _mermaid(report: MonitorReport, colours: dict[str, Colour], start: datetime, end: datetime) -> list[str] | None:
    """Requests per step, one line per version: counts add up, so wide windows sum steps without lying."""
    if not report.series:
        return None
    bucket = report.bucket_seconds if report.bucket_seconds > 0 else 60.0
    steps = max(1, math.ceil((end - start).total_seconds() / bucket))
    per_group = math.ceil(steps / MAX_CHART_STEPS)
    groups = math.ceil(steps / per_group)
    refs = sorted({(p.model, p.version) for p in report.series})
    counts = {f"{model}@{version}": [0] * groups for model, version in refs}
    for point in report.series:
        offset = (parse_time(point.start, "series[].start") - start).total_seconds()
        group = min(max(int(offset // bucket) // per_group, 0), groups - 1)
        counts[f"{point.model}@{point.version}"][group] += point.requests
    fmt = "%H:%M" if (end - start) <= timedelta(days=1) else "%m-%d %H:%M"
    labels = [(start + timedelta(seconds=i * per_group * bucket)).strftime(fmt) for i in range(groups)]
    names = list(counts)
    palette = ", ".join(colours[name].hex for name in names)
    title = f"Requests per {format_duration(per_group * bucket)} step, UTC"
    return [
        "```mermaid",
        "---",
        "config:",
        "  themeVariables:",
        "    xyChart:",
        f'      plotColorPalette: "{palette}"',
        "---",
        "xychart-beta",
        f'    title "{_mermaid_text(title)}"',
        "    x-axis [" + ", ".join(f'"{_mermaid_text(label)}"' for label in labels) + "]",
        '    y-axis "requests"',
        *(f'    line "{_mermaid_text(name)}" [{", ".join(str(n) for n in counts[name])}]' for name in names),
        "```",
        "",
        " · ".join(f"{colours[name].emoji} {_md(name)}" for name in names),
    ]


def _mermaid_text(text: str) -> str:
    """A label Mermaid cannot misread: no quotes, brackets or anything else beyond names and times."""
    return _MERMAID_UNSAFE.sub("_", text)
