"""Credentials in URLs (`openai:http://user:key@host/v1#m`, eval.judge.base_url) are used, never recorded or printed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from llmci.eval.results import EMPTY_ROW, Results, write_results
from tests.conftest import run_llmci
from tests.eval.openai_server import OpenAIServer
from tests.eval.test_eval import PARAMS, TICKETS, route, write_project

TARGET_SECRET = "sk-live-target-0123456789"
JUDGE_SECRET = "sk-live-judge-9876543210"


def with_userinfo(url: str, user: str, secret: str) -> str:
    return url.replace("http://", f"http://{user}:{secret}@", 1)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def assert_no_secret_outside_masks(text: str) -> None:
    """Each line naming a secret must be the `::add-mask::` that hides it (the runner never shows those)."""
    leaks = [line for line in text.splitlines() if "sk-live" in line and not line.startswith("::add-mask::")]
    assert not leaks, leaks


def test_userinfo_in_target_and_judge_urls_is_used_but_never_recorded_or_printed(tmp_path: Path) -> None:
    verdict = json.dumps({"steps": ["Check the label"], "score": 8, "reason": "routes the ticket well"})
    geval = {
        "name": "GEval",
        "params": {"name": "Routing", "evaluation_steps": ["Right?"], "evaluation_params": PARAMS},
    }
    with OpenAIServer(route) as target, OpenAIServer(lambda prompt: verdict) as judge:
        target.failing = {"dark mode": 400}  # an error row: its text names the target URL
        judge_config = {"base_url": with_userinfo(judge.url, "jim", JUDGE_SECRET), "model": "judge-1"}
        root = write_project(tmp_path, metrics=[{"name": "ExactMatch"}, geval], lines=TICKETS[:4], judge=judge_config)
        spec = f"openai:{with_userinfo(target.url, 'bob', TARGET_SECRET)}#router-1"
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(tmp_path / "gh-output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "gh-summary.md"),
        }
        sides = {}
        for side in ("base", "cand"):
            sides[side] = run_llmci("eval", "--target", spec, "--out", f"{side}.jsonl", cwd=root, env=env)
            assert sides[side].code == 0, sides[side].stderr
        # The credentials were sent, as HTTP basic auth, to the servers they belong to.
        assert {r["authorization"] for r in target.requests} == {basic("bob", TARGET_SECRET)}
        assert judge.requests and {r["authorization"] for r in judge.requests} == {basic("jim", JUDGE_SECRET)}

    result = sides["base"]
    for secret in (TARGET_SECRET, JUDGE_SECRET):  # masked before anything else is printed
        assert f"::add-mask::{secret}" in result.stdout.splitlines()[:4], result.stdout
    for side in sides.values():
        assert_no_secret_outside_masks(side.stdout)
        assert_no_secret_outside_masks(side.stderr)
    for name in ("base.jsonl", "base.jsonl.meta.json", "gh-summary.md"):
        assert b"sk-live" not in (root / name).read_bytes(), name
    meta = json.loads((root / "base.jsonl.meta.json").read_text())
    assert meta["target"] == f"openai:{target.url}#router-1" and meta["judge"] == f"{judge.url}#judge-1"
    rows = [json.loads(line) for line in (root / "base.jsonl").read_text().splitlines()]
    assert any(f"HTTP 400 from {target.url}/chat/completions" in (row["error"] or "") for row in rows)

    compared = run_llmci("compare", "base.jsonl", "cand.jsonl", "--out", "c.json", cwd=root, env=env)
    assert compared.code in (0, 3), compared.stderr
    assert b"sk-live" not in (root / "c.json").read_bytes()
    assert "sk-live" not in compared.stdout + compared.stderr


def test_compare_strips_credentials_a_results_file_from_an_older_llmci_carries(tmp_path: Path) -> None:
    leaky = f"openai:https://bob:{TARGET_SECRET}@models.example/v1#m"
    judge = f"https://jim:{JUDGE_SECRET}@judge.example/v1#j"
    for name in ("base.jsonl", "cand.jsonl"):
        row = {**EMPTY_ROW, "suite": "s", "case_id": "1", "metric": "ExactMatch", "score": 1.0, "success": True}
        write_results(tmp_path / name, Results([row], {"suite": "s", "target": leaky, "judge": judge}))
    (tmp_path / "llmci.yaml").write_text("eval:\n  compare: {resamples: 200}\n")
    result = run_llmci("compare", "base.jsonl", "cand.jsonl", "--out", "c.json", cwd=tmp_path)
    assert result.code == 0, result.stdout + result.stderr
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["baseline"]["target"] == "openai:https://models.example/v1#m"
    assert doc["candidate"]["judge"] == "https://judge.example/v1#j"
    assert "sk-live" not in (tmp_path / "c.json").read_text() + result.stdout + result.stderr
