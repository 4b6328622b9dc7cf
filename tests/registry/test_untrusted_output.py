"""Text llmci did not write (notes, tags, lineage, actors, metric names) is never a live workflow command
when `llmci registry` prints it in GitHub Actions."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_llmci
from tests.registry.conftest import make_model

PAYLOADS = ["x\n::error::pwned", "::add-mask::hidden", "y\r\n::set-env name=A::b"]


def live_commands(stdout: str) -> list[str]:
    """The lines the runner would run as workflow commands, honouring ::stop-commands::TOKEN ... ::TOKEN::."""
    live, token = [], None
    for line in stdout.splitlines():
        text = line.strip()
        if token is not None:
            if text == f"::{token}::":
                token = None
            continue
        if text.startswith("::stop-commands::"):
            token = text.removeprefix("::stop-commands::")
        elif text.startswith("::"):
            live.append(text)
    return live


def test_show_list_and_diff_never_turn_registry_text_into_workflow_commands(tmp_path: Path) -> None:
    (tmp_path / "llmci.yaml").write_text("registry:\n  uri: file://reg\n")
    make_model(tmp_path / "model", "a")
    make_model(tmp_path / "model2", "b")
    (tmp_path / "metrics.json").write_text(json.dumps({payload: 1.0 for payload in PAYLOADS}))
    (tmp_path / "lineage.json").write_text(json.dumps({"base_model": PAYLOADS[0], PAYLOADS[1]: PAYLOADS[2]}))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": PAYLOADS[0], "LLMCI_CACHE_DIR": str(tmp_path / "cache")}

    def llmci(*args: str):
        result = run_llmci("registry", *args, cwd=tmp_path, env=env)
        assert result.code == 0, result.stderr
        return result

    tags = [f"--tag=k{i}={payload}" for i, payload in enumerate(PAYLOADS)]
    llmci("publish", "model", "--name", "qa", "--metrics", "metrics.json", "--lineage", "lineage.json", *tags)
    llmci("publish", "model2", "--name", "qa")
    llmci("approve", "qa@1", "--by", PAYLOADS[1], "--note", PAYLOADS[0])
    llmci("promote", "qa@1", "--stage", "production", "--by", PAYLOADS[2], "--note", PAYLOADS[1])
    for args in (["show", "qa@1"], ["list", "qa"], ["list"], ["diff", "qa@1", "qa@2"]):
        out = llmci(*args).stdout
        assert live_commands(out) == [], (args, out)
    shown = llmci("show", "qa@1").stdout
    assert "pwned" in shown and "hidden" in shown  # shown to the reader, as text
    for args in (["show", "qa@1", "--json"], ["list", "qa", "--json"], ["diff", "qa@1", "qa@2", "--json"]):
        out = llmci(*args).stdout
        assert live_commands(out) == [] and json.loads(out)  # JSON keeps every line inert by itself
