"""The dashboard (HTML, then a PNG through real headless Chromium) and the job summary (Markdown, Mermaid)."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from llmci.monitor.dashboard import PALETTE, parse_time, render_dashboard, report_colours, write_dashboard
from llmci.monitor.report import (
    Cost,
    DeployMark,
    DriftTest,
    Finding,
    Links,
    MonitorReport,
    Resources,
    SeriesPoint,
    VersionHealth,
)
from llmci.monitor.screenshot import CANDIDATES, ScreenshotError, find_chromium, screenshot
from llmci.monitor.summary import summary_markdown

START = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
BUCKET = 300
HOSTILE = "7.00% of requests failed | <b>bold</b> <script>alert(1)</script> @team $5 *now*"
SECRET = "s3cr3t-t0ken"


def _at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def realistic_report() -> MonitorReport:
    """Two hours of chat@3 and a canary of chat@4 that went bad and was rolled back: 24 steps of 5 minutes.

    chat@3 serves alone for 30 minutes, shares with chat@4 (25%) until 11:00, is gone while chat@4 takes
    everything (and fails from 11:10), and comes back at the 11:40 rollback. One chat@3 step has no p95.
    """
    series = []
    for step in range(24):
        share4 = 0.0 if step < 6 else 0.25 if step < 12 else 1.0 if step < 20 else 0.0
        for version, share in ((3, 1 - share4), (4, share4)):
            requests = int(600 * share)
            if requests == 0:
                continue  # a version with no traffic has no point: its lines break there
            bad = version == 4 and step >= 14
            p50 = 180.0 + (40 if version == 4 else 0) + 5 * (step % 3)
            series.append(
                SeriesPoint(
                    start=_at(step * 5),
                    model="chat",
                    version=version,
                    requests=requests,
                    errors=int(requests * (0.08 if bad else 0.004)),
                    traffic_share=share,
                    latency_p50_ms=p50,
                    latency_p95_ms=None if (version == 3 and step == 9) else p50 * 2.4,
                    latency_p99_ms=p50 * 3.9,
                    cost_usd=requests * 0.0021,
                    drift_score=0.3 if version == 3 else 0.4 + 0.05 * (step - 6),
                )
            )
    return MonitorReport(
        env="production",
        window_start=START.isoformat(),
        window_end=(START + timedelta(hours=2)).isoformat(),
        generated_at=(START + timedelta(hours=2, seconds=20)).isoformat(),
        bucket_seconds=BUCKET,
        records=sum(p.requests for p in series),
        reference="suite routing",
        level="critical",
        versions=[
            VersionHealth(
                model="chat",
                version=3,
                requests=8700,
                errors=35,
                traffic_share=0.61,
                metrics={"error_rate": 0.004, "latency_p50_ms": 185, "latency_p95_ms": 440, "throughput_rps": 1.23},
                input_tokens=900_000,
                output_tokens=400_000,
                cost=Cost(usd=18.59, per_request_usd=0.0021, per_1k_tokens_usd=0.0143, basis="replica-hours"),
                resources=Resources(cpu_percent=63.0, memory_mb=2300),
                serve_status="RUNNING",
                replicas_running=2,
                replicas_unhealthy=0,
            ),
            VersionHealth(
                model="chat",
                version=4,
                requests=5700,
                errors=312,
                traffic_share=0.39,
                metrics={"error_rate": 0.0547, "latency_p95_ms": 530, "drifted_descriptors": 1},
                input_tokens=600_000,
                output_tokens=300_000,
                serve_status="RUNNING",
                replicas_running=1,
                replicas_unhealthy=1,
                drift=[
                    DriftTest(
                        descriptor="prompt_chars",
                        kind="numeric",
                        test="ks",
                        statistic=0.31,
                        p_value=1e-9,
                        threshold=0.01,
                        drifted=True,
                        reference_n=500,
                        current_n=5000,
                        summary="mean 120 -> 340 <img src=https://evil.example/x.png>",
                    ),
                    DriftTest(
                        descriptor="charset",
                        kind="categorical",
                        test="chi_squared",
                        statistic=3.2,
                        p_value=0.2,
                        threshold=0.01,
                        drifted=False,
                        reference_n=500,
                        current_n=5000,
                        summary="latin 98% -> 97%",
                    ),
                ],
            ),
        ],
        findings=[
            Finding(
                rule="latency_p95_ms",
                level="warning",
                env="production",
                model="chat",
                version=4,
                value=530,
                threshold=500,
                message="p95 530 ms",
            ),
            Finding(
                rule="error_rate",
                level="critical",
                env="production",
                model="chat",
                version=4,
                value=0.0547,
                threshold=0.05,
                message=HOSTILE,
            ),
        ],
        series=series,
        deploys=[
            DeployMark(
                at=_at(30),
                action="canary",
                model="chat",
                version=4,
                previous=3,
                message="25%",
                workflow_run_url=f"https://ci:{SECRET}@github.com/o/r/actions/runs/1",
            ),
            DeployMark(at=_at(60), action="promote", model="chat", version=4, previous=3),
            DeployMark(at=_at(100), action="rollback", model="chat", version=3, previous=4, message="error_rate"),
        ],
        links=Links(
            dashboard=f"https://admin:{SECRET}@grafana.example.com/d/llmci-production",
            rollback="https://github.com/o/r/actions/workflows/deploy.yml",
            run="https://github.com/o/r/actions/runs/2",
        ),
        notes=[f"Prometheus at http://u:{SECRET}@prom:9090 did not answer: cpu and memory are unknown"],
    )


def empty_report() -> MonitorReport:
    return MonitorReport(
        env="staging",
        window_start=START.isoformat(),
        window_end=(START + timedelta(hours=1)).isoformat(),
        generated_at=(START + timedelta(hours=1)).isoformat(),
        bucket_seconds=BUCKET,
        records=0,
        level="warning",
        findings=[
            Finding(
                rule="no_data",
                level="warning",
                env="staging",
                model="chat",
                version=3,
                message="chat@3 answered no request in the window",
            )
        ],
    )


# -- the HTML ------------------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source", "track"}


class Page(HTMLParser):
    """Parses a page and notes what a browser would do with it: unbalanced tags, elements, attributes, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.errors: list[str] = []
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"never closed: {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), tuple(self.stack)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), tuple(self.stack)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a, _ in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def inside(self, tag: str, ancestor: str) -> list[dict[str, str | None]]:
        return [a for t, a, parents in self.elements if t == tag and ancestor in parents]


def _chart(html: str, key: str) -> str:
    match = re.search(rf'<svg class="chart" data-chart="{key}".*?</svg>', html, re.S)
    assert match, f"no {key} chart"
    return match.group(0)


def _series(svg: str, label: str) -> str:
    match = re.search(rf'<g class="series" data-series="{re.escape(label)}">(.*?)</g>', svg, re.S)
    assert match, f"no series {label}"
    return match.group(1)


def test_the_dashboard_is_one_page_that_fetches_nothing() -> None:
    report = realistic_report()
    html = render_dashboard(report)
    page = Page(html)

    assert page.errors == []
    assert html.startswith("<!DOCTYPE html>")
    # Nothing that loads: no script, stylesheet link, image, frame or object, and no CSS url()/@import.
    tags = {tag for tag, _, _ in page.elements}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image", "use", "source", "video"}
    style = "".join(re.findall(r"<style>(.*?)</style>", html, re.S))
    assert "url(" not in style and "@import" not in style
    assert "default-src 'none'" in page.find("meta", **{"http-equiv": "Content-Security-Policy"})[0]["content"]
    # The only URLs are the report's own links, in <a href>, without their credentials.
    urls = [
        (tag, name, value)
        for tag, attrs, _ in page.elements
        for name, value in attrs.items()
        if value and "://" in value
    ]
    assert sorted(urls) == sorted(
        [
            ("a", "href", "https://grafana.example.com/d/llmci-production"),
            ("a", "href", "https://github.com/o/r/actions/workflows/deploy.yml"),
            ("a", "href", "https://github.com/o/r/actions/runs/2"),
            ("a", "href", "https://github.com/o/r/actions/runs/1"),
        ]
    )
    assert SECRET not in html


def test_the_dashboard_shows_the_report() -> None:
    html = render_dashboard(realistic_report())
    page = Page(html)
    text = " ".join(" ".join(page.text).split())

    # Headline: environment, overall level (coloured by its class), window, records, reference.
    assert page.find("span", id="overall", **{"class": "level level-critical"})
    assert "2026-11-27 10:00 UTC → 2026-11-27 12:00 UTC (2h)" in text
    assert "Records read 14,400" in text and "Drift reference suite routing" in text
    # Findings, worst first, value against threshold.
    findings = re.findall(r'<tr class="finding level-(\w+)" data-rule="(\w+)">(.*?)</tr>', html, re.S)
    assert [(level, rule) for level, rule, _ in findings] == [("critical", "error_rate"), ("warning", "latency_p95_ms")]
    assert "<td>5.47%</td><td>&gt; 5.00%</td>" in findings[0][2]
    assert "<td>530 ms</td><td>&gt; 500 ms</td>" in findings[1][2]
    # A table per version; the flagged measures carry the finding's level.
    assert [v["data-version"] for v in page.find("section", **{"class": "version"})] == ["chat@3", "chat@4"]
    v4 = re.search(r'data-version="chat@4">(.*?)</section>', html, re.S).group(1)
    assert '<tr data-metric="error_rate" class="level-critical"><th>Error rate</th><td>5.47%</td>' in v4
    assert '<tr data-metric="latency_p95_ms" class="level-warning"><th>Latency p95</th><td>530 ms</td>' in v4
    assert "<th>Serve</th><td>RUNNING · 1 running, 1 unhealthy</td>" in v4
    assert "<th>Drifted descriptors</th><td>1: prompt_chars</td>" in v4
    v3 = re.search(r'data-version="chat@3">(.*?)</section>', html, re.S).group(1)
    assert "<th>Cost</th><td>$18.59 (replica-hours)</td>" in v3 and "<th>Cost per request</th><td>$0.00210</td>" in v3
    assert "<th>Memory</th><td>2,300 MB</td>" in v3 and "level-" not in v3
    # Drift tests: the drifted one first.
    drift = re.search(r'<table class="drift" data-version="chat@4">(.*?)</table>', html, re.S).group(1)
    assert re.findall(r'<tr class="(drifted|steady)"><td>(\w+)</td>', drift) == [
        ("drifted", "prompt_chars"),
        ("steady", "charset"),
    ]
    # The deploys and the notes.
    assert "canary chat@4" in text and "rollback chat@3" in text
    assert "Prometheus at http://prom:9090 did not answer" in text


def test_each_chart_draws_every_version_with_axes_legend_and_deploy_marks() -> None:
    html = render_dashboard(realistic_report())
    page = Page(html)
    charts = page.find("svg", **{"class": "chart"})
    assert [c["data-chart"] for c in charts] == ["traffic", "errors", "latency", "cost", "drift"]
    colours = report_colours(realistic_report())
    for key in ("traffic", "errors", "latency", "cost", "drift"):
        svg = _chart(html, key)
        title = re.search(r'<title id="chart-\w+-title">(.*?)</title>', svg).group(1)
        desc = re.search(r'<desc id="chart-\w+-desc">(.*?)</desc>', svg).group(1)
        assert title and "chat@3, chat@4" in desc and "3 deploy event(s) marked" in desc
        # Axes: y ticks and round UTC times on x.
        ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
        assert {"10:00", "10:30", "11:00", "11:30", "12:00", "UTC"} <= set(ticks), ticks
        # Every version draws in its own colour, and the legend names it.
        for ref in ("chat@3", "chat@4"):
            assert f'stroke="{colours[ref].hex}"' in svg
            assert f">{ref}</text>" in svg
        # Deploy events: a marked line each, labelled with the action and the version.
        assert re.findall(r'<g class="deploy" data-action="(\w+)">', svg) == ["canary", "promote", "rollback"]
        labels = re.findall(r'<text class="deploy-label"[^>]*>([^<]*)</text>', svg)
        assert labels == ["canary chat@4", "promote chat@4", "rollback chat@3"]
    assert colours["chat@3"] != colours["chat@4"]
    # The latency chart has p50, p95 and p99 for each version, told apart by dashes in the legend.
    latency = _chart(html, "latency")
    for ref in ("chat@3", "chat@4"):
        for percentile in ("p50", "p95", "p99"):
            assert f'data-series="{ref} {percentile}"' in latency
    assert ">p50</text>" in latency and ">p99</text>" in latency
    assert '<text class="alarm-label"' in _chart(html, "drift")


def test_gaps_break_the_lines() -> None:
    html = render_dashboard(realistic_report())
    # chat@3 served nothing from 11:00 to 11:40: its lines break there (two pieces) ...
    assert _series(_chart(html, "latency"), "chat@3 p95").count("<path") == 3  # ... and p95 also at 10:45 (None)
    assert _series(_chart(html, "latency"), "chat@3 p50").count("<path") == 2
    assert _series(_chart(html, "errors"), "chat@3").count("<path") == 2
    # chat@4 served from 10:30 to 11:40 without a break: one piece.
    assert _series(_chart(html, "errors"), "chat@4").count("<path") == 1


def test_one_point_draws_a_dot() -> None:
    report = realistic_report().model_copy(update={"series": realistic_report().series[:1], "deploys": []})
    html = render_dashboard(report)
    assert Page(html).errors == []
    series = _series(_chart(html, "errors"), "chat@3")
    assert re.fullmatch(
        r'<path d="M[\d.]+,[\d.]+" [^>]*/><circle [^>]*r="3.5"[^>]*><title>[^<]*</title></circle>', series
    )


def test_a_window_without_records_says_so() -> None:
    html = render_dashboard(empty_report())
    page = Page(html)
    text = " ".join(" ".join(page.text).split())
    assert page.errors == []
    assert page.find("section", id="no-data")
    assert "No records in this window" in text and "No request was recorded for staging" in text
    assert not page.find("svg")
    assert page.find("span", id="overall", **{"class": "level level-warning"})
    assert "chat@3 answered no request in the window" in text


def test_text_from_the_report_is_escaped() -> None:
    html = render_dashboard(realistic_report())
    page = Page(html)
    # The markup in a message and a drift summary stays text: no element of it reaches the page.
    assert not page.find("b") and not page.find("script") and not page.find("img")
    text = "".join(page.text)
    assert "<b>bold</b> <script>alert(1)</script> @team" in text
    assert "<img src=https://evil.example/x.png>" in text


def test_write_dashboard_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "out" / "dashboard.html"
    path.parent.mkdir()
    path.write_text("old")
    assert write_dashboard(realistic_report(), path) == path
    assert path.read_text(encoding="utf-8") == render_dashboard(realistic_report())
    assert [p.name for p in path.parent.iterdir()] == ["dashboard.html"]


# -- the screenshot ------------------------------------------------------------------------------------


def _chromium() -> str:
    try:
        return find_chromium()
    except ScreenshotError as exc:
        pytest.skip(f"no Chromium here ({exc}); CI installs Debian's chromium")


def _pixels(png: Path):
    """The PNG's pixels as a height x width x RGB array (Pillow decodes it)."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def _matching(pixels, hex_colour: str, tolerance: int = 24) -> list[tuple[int, int]]:
    """(x, y) of the pixels within `tolerance` of the colour in every channel (anti-aliased edges are not)."""
    import numpy as np

    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    ys, xs = np.nonzero(np.abs(pixels - target).max(axis=2) <= tolerance)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def test_chromium_draws_the_charts(tmp_path: Path) -> None:
    _chromium()
    report = realistic_report()
    html_path = write_dashboard(report, tmp_path / "dashboard.html")
    png = screenshot(html_path, tmp_path / "shots" / "dashboard.png")
    assert png == tmp_path / "shots" / "dashboard.png"
    pixels = _pixels(png)
    assert pixels.shape == (1400, 1280, 3)

    colours = report_colours(report)
    for ref in ("chat@3", "chat@4"):
        drawn = _matching(pixels, colours[ref].hex)
        columns = {x for x, _ in drawn}
        rows = {y for _, y in drawn}
        # Lines across two columns of charts: hundreds of pixel columns, over the heights of three rows of charts
        # (a legend swatch or a version's colour square would be a few dozen pixels).
        assert len(drawn) > 3000, (ref, len(drawn))
        assert len(columns) > 500 and max(rows) - min(rows) > 700, (ref, len(columns), min(rows), max(rows))
    # The deploy marks: grey vertical lines, 3 per chart, drawn crisp across the plot's height.
    grey = _matching(pixels, "#57606a", tolerance=8)
    tall = {x for x in {x for x, _ in grey} if sum(1 for gx, _ in grey if gx == x) > 150}
    assert len(tall) >= 6, sorted(tall)
    # The headline's level badge, in the critical colour, near the top.
    assert [p for p in _matching(pixels, "#cf222e", tolerance=8) if p[1] < 60]


def test_chromium_shows_no_chart_when_there_is_no_data(tmp_path: Path) -> None:
    _chromium()
    png = screenshot(write_dashboard(empty_report(), tmp_path / "d.html"), tmp_path / "d.png", width=800, height=600)
    pixels = _pixels(png)
    assert pixels.shape == (600, 800, 3)
    for colour in PALETTE:
        if colour.name != "black":  # text is near-black: only the hues say a chart drew
            assert len(_matching(pixels, colour.hex, tolerance=10)) < 50, colour
    assert [p for p in _matching(pixels, "#9a6700", tolerance=8) if p[1] < 60]  # the warning badge


def test_no_chromium_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LLMCI_CHROMIUM", raising=False)
    with pytest.raises(ScreenshotError) as caught:
        screenshot(tmp_path / "d.html", tmp_path / "d.png")
    message = str(caught.value)
    assert "\n" not in message
    assert all(name in message for name in CANDIDATES) and "LLMCI_CHROMIUM" in message

    monkeypatch.setenv("LLMCI_CHROMIUM", str(tmp_path / "nowhere" / "chrome"))
    with pytest.raises(ScreenshotError, match=r"LLMCI_CHROMIUM=.*nowhere/chrome: no such executable"):
        screenshot(tmp_path / "d.html", tmp_path / "d.png")


def _program(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_chromium_that_hangs_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser stuck at start (a container without /dev/shm, a GPU probe): the timeout ends it and its children."""
    pid_file = tmp_path / "child.pid"
    # The "browser" starts a helper process, as Chromium does, and never exits.
    hang = _program(tmp_path / "hanging-chrome", f"sleep 60 & echo $! > {pid_file}\nwait\n")
    monkeypatch.setenv("LLMCI_CHROMIUM", str(hang))
    html_path = write_dashboard(empty_report(), tmp_path / "d.html")
    began = time.monotonic()
    with pytest.raises(ScreenshotError, match=r"took longer than 1s to screenshot .*d\.html"):
        screenshot(html_path, tmp_path / "d.png", timeout=1)
    assert time.monotonic() - began < 10
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(helper):
        time.sleep(0.05)
    assert not _alive(helper), "the browser's helper process outlived the timeout"
    assert not (tmp_path / "d.png").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its (killed) parent's reaper is not running either.
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" not in status.read_text()


def test_a_chromium_that_fails_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = _program(
        tmp_path / "failing-chrome",
        "echo '[1:2:ERROR:dbus/bus.cc:405] Failed to connect to the bus' >&2\n"
        "echo 'Check failed: shm_open: No space left on device' >&2\n"
        "echo '[1:2:ERROR:dbus/bus.cc:405] Failed to connect to the bus' >&2\nexit 133\n",
    )
    monkeypatch.setenv("LLMCI_CHROMIUM", str(failing))
    html_path = write_dashboard(empty_report(), tmp_path / "d.html")
    with pytest.raises(ScreenshotError) as caught:
        screenshot(html_path, tmp_path / "d.png")
    # The reason is Chromium's last line that is not D-Bus noise.
    assert str(caught.value) == (
        f"{failing} exited 133 without a screenshot of {html_path}: Check failed: shm_open: No space left on device"
    )


# -- the job summary -----------------------------------------------------------------------------------

MARKDOWN = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["table", "linkify"])
MARKDOWN.linkify.set({"fuzzy_link": False})


def test_the_summary_tells_the_story() -> None:
    report = realistic_report()
    text = summary_markdown(report, "dashboard.png")
    lines = text.splitlines()
    assert lines[0] == "### 🔴 llmci monitor · production · critical"
    assert "**14,400** records read" in text and "(2h)" in text
    # Links without credentials.
    assert "[Dashboard](https://grafana.example.com/d/llmci-production)" in text and SECRET not in text
    # Findings, worst first, value against threshold.
    findings = [line for line in lines if line.startswith("- ")][:2]
    assert findings[0].startswith("- 🔴 **critical** error\\_rate on chat@4: 5.47% &gt; 5.00% — ")
    assert findings[1].startswith("- ⚠️ **warning** latency\\_p95\\_ms on chat@4: 530 ms &gt; 500 ms")
    assert "![dashboard](dashboard.png)" in text
    assert "![dashboard]" not in summary_markdown(report, None)


def test_the_summary_renders_as_github_would() -> None:
    html = MARKDOWN.render(summary_markdown(realistic_report(), "shots/dash board (1).png"))
    page = Page(html)
    # The hostile message is text in its list item: no tag, no link, no emphasis, no cut table.
    assert not page.find("b") and not page.find("script") and not page.find("em")
    assert not [a for a in page.find("a") if "evil" in (a.get("href") or "")]
    item = re.search(r"<li>🔴 <strong>critical</strong>(.*?)</li>", html, re.S).group(1)
    assert "7.00% of requests failed | &lt;b&gt;bold&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt; @" in item
    assert "$5 *now*" in item
    # One table, a column per version (with its colour's square), every row whole.
    table = re.search(r"<table>(.*?)</table>", html, re.S).group(1)
    header = re.findall(r"<th[^>]*>(.*?)</th>", table)
    colours = report_colours(realistic_report())
    assert header == ["", f"{colours['chat@3'].emoji} chat@3", f"{colours['chat@4'].emoji} chat@4"]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert rows and all(len(re.findall(r"<t[dh][ >]", row)) == 3 for row in rows)
    cells = {re.findall(r"<td[^>]*>(.*?)</td>", row)[0]: re.findall(r"<td[^>]*>(.*?)</td>", row)[1:] for row in rows}
    assert cells["Error rate"] == ["0.40%", "5.47% 🔴"]
    assert cells["Latency p95"] == ["440 ms", "530 ms ⚠️"]
    assert cells["Cost"] == ["$18.59 (replica-hours)", "—"]
    # The picture, its name kept whole.
    assert page.find("img", src="shots/dash%20board%20%281%29.png", alt="dashboard")


def _mermaid(text: str) -> list[str]:
    match = re.search(r"```mermaid\n(.*?)\n```", text, re.S)
    assert match, "no mermaid block"
    return match.group(1).splitlines()


def test_the_summary_chart_counts_requests_per_version() -> None:
    report = realistic_report()
    chart = _mermaid(summary_markdown(report, None))
    assert "xychart-beta" in chart
    x_axis = next(line for line in chart if line.strip().startswith("x-axis"))
    labels = re.findall(r'"([^"]*)"', x_axis)
    assert len(labels) == 24 and labels[0] == "10:00" and labels[-1] == "11:55"
    lines = {
        m.group(1): [int(n) for n in m.group(2).split(", ")]
        for m in (re.match(r'\s*line "([^"]+)" \[(.*)\]$', line) for line in chart)
        if m
    }
    assert list(lines) == ["chat@3", "chat@4"]
    for ref, counts in lines.items():
        model, _, version = ref.partition("@")
        expected = [0] * 24
        for p in report.series:
            if p.version == int(version):
                expected[(datetime.fromisoformat(p.start.replace("Z", "+00:00")) - START) // timedelta(minutes=5)] += (
                    p.requests
                )
        assert counts == expected
    # The lines' colours are the dashboard's, in the same order.
    colours = report_colours(report)
    palette = next(line for line in chart if "plotColorPalette" in line)
    assert palette.strip() == f'plotColorPalette: "{colours["chat@3"].hex}, {colours["chat@4"].hex}"'
    # Every quoted label is plain (Mermaid breaks on quotes, brackets and the like inside them).
    for line in chart:
        for label in re.findall(r'"([^"]*)"', line):
            assert re.fullmatch(r"[A-Za-z0-9@._:/, #-]*", label), label


def test_a_long_window_sums_steps_into_at_most_24() -> None:
    week = realistic_report()
    points = [
        SeriesPoint(
            start=(START + timedelta(minutes=5 * i)).isoformat(),
            model="chat",
            version=3,
            requests=10,
            errors=0,
            traffic_share=1.0,
        )
        for i in range(7 * 24 * 12)
    ]
    week = week.model_copy(
        update={"series": points, "window_end": (START + timedelta(days=7)).isoformat(), "deploys": []}
    )
    chart = _mermaid(summary_markdown(week, None))
    labels = re.findall(r'"([^"]*)"', next(line for line in chart if "x-axis" in line))
    counts = [
        int(n) for n in re.search(r"\[(.*)\]", next(line for line in chart if "line " in line)).group(1).split(", ")
    ]
    assert len(labels) == len(counts) <= 24
    assert sum(counts) == 10 * len(points) and len(set(counts)) == 1
    assert labels[0] == "11-27 10:00" and 'title "Requests per 7h step, UTC"' in "\n".join(chart)
    # The HTML charts stay light too: points are not all drawn as dots.
    assert render_dashboard(week).count("<circle") < 200


def test_the_summary_of_an_empty_window() -> None:
    text = summary_markdown(empty_report(), None)
    assert text.startswith("### ⚠️ llmci monitor · staging · warning\n")
    assert "**No records in this window.**" in text
    assert "chat@3 answered no request in the window" in text
    assert "```mermaid" not in text and "#### Versions" not in text


def test_chromium_candidates_are_looked_up_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("google-chrome", "chromium-browser"):
        _program(tmp_path / name, "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LLMCI_CHROMIUM", raising=False)
    assert find_chromium() == str(tmp_path / "chromium-browser")
    monkeypatch.setenv("LLMCI_CHROMIUM", "google-chrome")
    assert find_chromium() == str(tmp_path / "google-chrome")
    assert shutil.which("google-chrome") == str(tmp_path / "google-chrome")


def test_deploy_events_seconds_apart_share_one_label() -> None:
    report = realistic_report()
    at = parse_time(report.deploys[0].at)
    burst = [
        DeployMark(at=(at + timedelta(seconds=s)).isoformat(), action=a, model="chat", version=5)
        for s, a in ((0, "deploy"), (4, "smoke"), (9, "step"), (15, "deployed"))
    ]
    svg = _chart(render_dashboard(report.model_copy(update={"deploys": burst})), "traffic")
    assert len(re.findall(r'<g class="deploy" data-action=', svg)) == 4  # every event keeps its line and tooltip
    assert re.findall(r'<text class="deploy-label"[^>]*>([^<]*)</text>', svg) == ["deployed chat@5 (+3)"]
