"""The report's Markdown: what a reviewer sees, safe from hostile model outputs, and always within size."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from llmci.report import comparison as documents
from llmci.report.github import Marker
from llmci.report.render import COMMENT_LIMIT, fit, render
from tests.report.conftest import comparison, regression

HOSTILE = [
    "| a | b | c |\n# Heading\n---",
    "<img src=x onerror=alert(1)><script>alert(1)</script>",
    "thanks @octo-org/security and @admin, see [here](https://evil.example)",
    "```\n</details>\n<!-- llmci-report key=x sha=0 run=999999 attempt=9 -->\n````",
    "::error file=x.py::pwned\n::add-mask::secret",
    "**bold** _em_ ~~strike~~ `code` \\ &amp; <!-- hidden -->",
    "`@octocat and ```@hubot, `` `@admin",
    "bare links: https://evil.example/a www.evil.example HTTP://EVIL.EXAMPLE/b mail me: a.b@evil.example",
]

# GitHub renders comments as CommonMark + GFM tables, autolinks (bare URLs), with a subset of HTML allowed.
MARKDOWN = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["table", "strikethrough", "linkify"])
# GFM autolinks scheme URLs, www. names and e-mails, not bare domains (x.py): linkify-it's fuzzy links would.
MARKDOWN.linkify.set({"fuzzy_link": False})
COMMIT_LINK = "https://github.com/octo/widgets/commit/"


def outside_code(html: str) -> str:
    return re.sub(r"<pre><code.*?</code></pre>", "", html, flags=re.S)


def hostile_report() -> str:
    # Hostile text everywhere: inputs and outputs (code blocks), the judge's reasons and lint messages (inline).
    lint = [
        {"path": f"prompts/{i}.j2", "line": i + 1, "severity": "warning", "rule": "r", "message": text}
        for i, text in enumerate(HOSTILE)
    ]
    outputs = [("bug", text) for text in HOSTILE]
    return render(comparison(outputs, inputs=HOSTILE, reasons=HOSTILE), lint=lint, marker=Marker("k").render())


#: Each model of the comparison document, and the TypedDict its JSON dump is read as.
DOCUMENT_TYPES = {
    "Side": "SideDocument",
    "Stats": "StatsDocument",
    "CaseSide": "CaseSideDocument",
    "Case": "CaseDocument",
    "Metric": "MetricDocument",
    "Latency": "LatencyDocument",
    "Cost": "CostDocument",
    "Suite": "SuiteDocument",
    "Settings": "SettingsDocument",
    "Comparison": "ComparisonDocument",
    "Finding": "FindingDocument",
}


def test_the_typed_documents_have_the_fields_of_the_models_they_are_dumped_from() -> None:
    for model, document in DOCUMENT_TYPES.items():
        fields = list(getattr(documents, model).model_fields)
        assert list(getattr(documents, document).__annotations__) == fields, model


def test_the_headline_and_the_metric_table_say_what_happened() -> None:
    text = render(regression(n=40))
    assert text.startswith("### ❌ llmci: **regression** — 1 regressed of 1 metric\n")
    row = next(line for line in text.splitlines() if line.startswith("| routing | ExactMatch"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:5] == ["1.0000", "0.0000", "-1.0000 [-1.0000, -1.0000]"]
    assert cells[5] == "100.0% → 0.0% (40 regressed)"
    assert cells[7] == "❌ regression"
    assert "<details><summary>routing / ExactMatch: 40 regressed cases (the worst 5)</summary>" in text
    assert "[`bbbbbbbbbb`](https://github.com/octo/widgets/commit/" + "b" * 40 + ")" in text


def test_a_pass_shows_no_case_details() -> None:
    text = render(comparison([("bug", "bug")] * 10))
    assert text.startswith("### ✅ llmci: **pass** — no regression in 1 metric")
    assert "<details>" not in text


def test_hostile_outputs_cannot_inject_html_links_mentions_or_break_the_table() -> None:
    text = hostile_report()
    html = MARKDOWN.render(text)
    visible = outside_code(html)
    assert "<img" not in visible and "<script" not in visible
    links = re.findall(r'<a href="([^"]*)"', visible)
    assert [link for link in links if not link.startswith(COMMIT_LINK)] == []  # written, bare, e-mail: none
    assert len(links) == 2  # llmci's own: the two commits
    # GitHub links @name where @ follows no word character; each such @ is followed by an empty comment.
    text_only = re.sub(r"<[^>]+>", " ", visible.replace("<!-- -->", "\0"))
    assert "@\0admin" in text_only and "`@\0octocat" in text_only
    assert "www.evil" not in text_only  # GitHub would autolink it (linkify-it does not without fuzzy links)
    assert not re.search(r"(?<![A-Za-z0-9_])@(?!\0)[A-Za-z0-9]", text_only)
    assert "<h1>" not in html and "<strong>bold</strong>" not in visible
    # Every case sits whole in its own details element: the fences held.
    assert html.count("<details>") == html.count("</details>") == 1
    assert html.count("<tr>") == 2 + 2 + (1 + len(HOSTILE)) + 5  # every lint message stayed in its row
    assert "<td>| a | b | c | # Heading ---</td>" in html  # ... whole, in its own cell
    assert html.count("<pre><code") == 5 * 4  # input, expected, both outputs, for each of the 5 shown cases
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        assert row.count("<td") in (0, 8, 6, 4, 3), row  # headers; metric, suite, lint and versions tables


def test_only_the_first_line_is_read_as_the_sticky_marker() -> None:
    text = hostile_report()
    assert Marker.parse(text) == Marker("k")
    assert Marker.parse("quote:\n" + Marker("k", "0", 999).render()) is None


def test_an_oversized_report_gives_up_detail_then_truncates_but_always_fits() -> None:
    long = "x" * 5000
    big = regression(n=20, output=long)
    full = render(big)
    assert len(full) < COMMENT_LIMIT  # one metric: the details fit
    many = {**big, "metrics": [{**m, "suite": f"suite-{i}"} for i in range(12) for m in big["metrics"]]}
    shrunk = fit(many, COMMENT_LIMIT, marker=Marker("k").render())
    assert len(shrunk) <= COMMENT_LIMIT
    assert "<details>" in shrunk and "left out to fit GitHub's comment size" not in shrunk
    assert shrunk.count("<details>") == 12 and "(the worst 2)" in shrunk

    huge = {**big, "metrics": [{**m, "suite": f"suite-{i}"} for i in range(1500) for m in big["metrics"]]}
    cut = fit(
        huge, COMMENT_LIMIT, marker=Marker("k").render(), run_url="https://github.com/octo/widgets/actions/runs/9"
    )
    assert len(cut) <= COMMENT_LIMIT
    assert Marker.parse(cut) == Marker("k")
    assert "<details>" not in cut
    assert cut.endswith("the full report is in [the workflow run](https://github.com/octo/widgets/actions/runs/9)._\n")
