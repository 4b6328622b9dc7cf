"""`llmci deploy` against the local Ray head it starts, with real HTTP clients sending traffic."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.conftest import Load, Project
from tests.report.github_server import GitHubServer, Token

pytestmark = pytest.mark.slow


def events(project: Project, env: str) -> list[dict]:
    result = project.deploy("history", "--env", env, "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def serving(project: Project, env: str) -> dict[str, float]:
    result = project.deploy("status", "--env", env, "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    return {v["ref"]: v["weight"] for versions in report["models"].values() for v in versions if v["weight"] > 0}


def serve_processes(head: int) -> list[int]:
    """The Serve replicas the local head `head` runs (each worker has a process group of its own, in the
    head's session)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ours = proc.name.isdigit() and os.getsid(int(proc.name)) == head
            if ours and (proc / "cmdline").read_bytes().startswith(b"ray::ServeReplica"):
                found.append(int(proc.name))
        except OSError:  # gone since the listing (ProcessLookupError is one)
            continue
    return found


def test_canary_under_load_loses_no_request_then_noop_and_rollback(project: Project) -> None:
    v1, v2 = project.publish(), project.publish()
    first = project.deploy(v1, "--env", "staging")
    assert first.code == 0, first.stderr
    assert first.stdout == f"{v1} serves staging at {project.url('staging')}\n"
    assert "first deploy" in first.stderr and f"{v1} is RUNNING" in first.stderr
    # The replicas serve at the head's own priority: at Ray's default (15 below it) a deploy command
    # starting beside them stalls live requests.
    head = json.loads((project.root / ".llmci" / "serve" / "head.json").read_text())["pid"]
    replicas = serve_processes(head)
    assert replicas and {os.getpriority(os.PRIO_PROCESS, pid) for pid in replicas} == {
        os.getpriority(os.PRIO_PROCESS, head)
    }

    answer = httpx.post(
        f"{project.url('staging')}/completions",
        json={"model": "ticket-router", "vars": {"ticket": "hi", "labels": ["bug"]}, "max_tokens": 2},
        timeout=30,
    )
    assert answer.status_code == 200 and answer.headers["x-llmci-model-version"] == v1
    assert answer.json()["model"] == v1 and answer.json()["object"] == "text_completion"

    with Load(project.url("staging"), user_header=True) as load:
        second = project.deploy(v2, "--env", "staging")
    assert second.code == 0, second.stderr
    assert load.statuses() == {200: len(load.answers)} and len(load.answers) > 100, load.statuses()
    assert set(load.versions()) == {v1, v2}  # both answered during the canary
    assert re.search(rf"50% on {v2}: \d+ requests, 0 errors", second.stderr)
    assert serving(project, "staging") == {v2: 100.0}

    config = yaml.safe_load((project.root / ".llmci" / "serve" / "staging.serve.yaml").read_text())
    apps = {app["name"]: app for app in config["applications"]}
    assert (
        set(apps) >= {"llmci-staging", "llmci-staging--ticket-router-2"}
        and "llmci-staging--ticket-router-1" not in apps
    )
    assert apps["llmci-staging--ticket-router-2"]["import_path"] == "llmci.serve.app:build_model"

    again = project.deploy(v2, "--env", "staging")
    assert again.code == 0 and "already serves 100%; nothing to do" in again.stderr

    # The same version after the environment's settings changed: applied in place, under load.
    original = (project.root / "llmci.yaml").read_text()
    config = yaml.safe_load(original)
    config["deploy"]["environments"]["staging"]["max_batch_size"] = 3
    (project.root / "llmci.yaml").write_text(yaml.safe_dump(config))
    try:
        with Load(project.url("staging")) as load:
            tuned = project.deploy(v2, "--env", "staging")
        assert tuned.code == 0, tuned.stderr
        assert "applying changed settings to llmci-staging, llmci-staging--ticket-router-2" in tuned.stderr
        assert load.statuses() == {200: len(load.answers)}, load.statuses()
        applied = yaml.safe_load((project.root / ".llmci" / "serve" / "staging.serve.yaml").read_text())
        model_app = next(a for a in applied["applications"] if a["name"] == "llmci-staging--ticket-router-2")
        assert model_app["deployments"][0]["user_config"] == {"max_batch_size": 3}
        router_app = next(a for a in applied["applications"] if a["name"] == "llmci-staging")
        assert router_app["deployments"][0]["user_config"]["batching"]["max_batch_size"] == 3
        still = project.deploy(v2, "--env", "staging")
        assert still.code == 0 and "nothing to do" in still.stderr
    finally:
        (project.root / "llmci.yaml").write_text(original)

    back = project.deploy("rollback", "--env", "staging")
    assert back.code == 0, back.stderr
    assert back.stdout == f"{v1} serves staging at {project.url('staging')}\n"
    assert serving(project, "staging") == {v1: 100.0}

    log = events(project, "staging")
    actions = [e["action"] for e in log]
    assert actions[:2] == ["deploy", "step"] and actions.count("deployed") == 3 and "noop" in actions
    assert actions.count("reconfigure") == 1
    steps = [e["weights"] for e in log if e["action"] == "step" and e["version"] == 2]
    assert steps == [{v1: 50.0, v2: 50.0}, {v1: 0.0, v2: 100.0}]
    assert all(e["actor"] for e in log)
    during = log[actions.index("noop")]["at"]
    at = project.deploy("history", "--env", "staging", "--at", during, "--json")
    assert [e["weights"] for e in json.loads(at.stdout)] == [{v2: 100.0}]


def test_an_unapproved_version_is_refused_before_anything_starts(project: Project) -> None:
    candidate = project.publish(approve=False)
    result = project.deploy(candidate, "--env", "staging")
    assert result.code == 12, result.stderr
    assert result.stderr == (
        f"llmci: error: {candidate} is candidate; only approved versions are deployed; "
        f"llmci registry approve {candidate} --by NAME --note WHY\n"
    )


def test_a_version_that_cannot_start_leaves_the_old_one_serving(project: Project) -> None:
    good, broken = project.publish(), project.publish(corrupt=True)
    assert project.deploy(good, "--env", "broken").code == 0
    with Load(project.url("broken")) as load:
        result = project.deploy(broken, "--env", "broken")
    assert result.code == 11, result.stderr
    assert f"{broken} did not start: Serve application llmci-broken--ticket-router-" in result.stderr
    assert "the environment was rolled back" in result.stderr.splitlines()[-1]
    assert load.statuses() == {200: len(load.answers)} and set(load.versions()) == {good}
    assert serving(project, "broken") == {good: 100.0}
    assert [e["action"] for e in events(project, "broken")][-2:] == ["rollback", "failed"]


def test_a_breached_gate_rolls_back_by_itself_within_seconds(project: Project) -> None:
    old, new = project.publish(), project.publish()
    assert project.deploy(old, "--env", "gated").code == 0  # no traffic: the gate does not judge
    with Load(project.url("gated")) as load:
        result = project.deploy(new, "--env", "gated")
    assert result.code == 11, result.stderr
    assert re.search(
        rf"25% on {new}: \d+ requests, 0 errors, p95 <= \d+ ms: BREACH \(p95 \d+ ms > 1 ms\)", result.stderr
    )
    rolled = re.search(r"rolled back in ([\d.]+) s", result.stderr)
    assert rolled and float(rolled.group(1)) < 30
    assert load.statuses() == {200: len(load.answers)}
    assert serving(project, "gated") == {old: 100.0}
    gate = next(e for e in events(project, "gated") if e["action"] == "gate" and e["version"] == int(new.split("@")[1]))
    assert gate["details"]["passed"] is False and gate["details"]["requests"] >= 10


def test_a_first_deploy_below_the_smoke_eval_leaves_nothing_behind(project: Project) -> None:
    version = project.publish()
    result = project.deploy(version, "--env", "smoked")
    assert result.code == 11, result.stderr
    assert f"smoke eval of {version}: " in result.stderr and "below 50%" in result.stderr
    status = json.loads(project.deploy("status", "--env", "smoked", "--json").stdout)
    assert status["models"] == {} and status["router"] == "ABSENT"


def test_github_deployments_get_their_statuses(project: Project, tmp_path) -> None:
    with GitHubServer() as github:
        github.tokens["ghs_deploy"] = Token(None)
        env = {
            "GITHUB_ACTIONS": "true",
            "LLMCI_LOCAL_HEAD": "true",  # a head on the "runner", as for a test
            "GITHUB_TOKEN": "ghs_deploy",
            "GITHUB_REPOSITORY": "octo/widgets",
            "GITHUB_SHA": "b" * 40,
            "GITHUB_RUN_ID": "77",
            "GITHUB_API_URL": github.api_url,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_OUTPUT": str(tmp_path / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        }
        first, second, broken = project.publish(), project.publish(), project.publish(corrupt=True)
        assert project.deploy(first, "--env", "github", env=env).code == 0
        assert project.deploy(second, "--env", "github", env=env).code == 0
        assert project.deploy(broken, "--env", "github", env=env).code == 11
        assert github.deployment_states("github") == [
            ["in_progress", "success", "inactive"],
            ["in_progress", "success"],
            ["in_progress", "failure"],
        ]
        made = github.deployments[1]
        assert made["ref"] == "b" * 40 and made["payload"]["version"] == int(second.split("@")[1])
        status = github.deployment_statuses[made["id"]][-1]
        assert status["environment_url"] == project.url("github")
        assert status["target_url"] == "https://github.com/octo/widgets/actions/runs/77"
    summary = (tmp_path / "summary.md").read_text()
    assert (
        f"llmci deploy: {second.replace('@', '@<!-- -->') if False else second}" in summary
        or "llmci deploy:" in summary
    )


def test_a_shadow_gets_a_copy_of_every_request_and_clients_never_see_it(project: Project) -> None:
    live, shadow = project.publish(), project.publish()
    refused = project.deploy(shadow, "--env", "shadow", "--shadow")
    assert refused.code == 2 and "a shadow mirrors a live version" in refused.stderr  # nothing live yet
    assert project.deploy(live, "--env", "shadow").code == 0
    with Load(project.url("shadow")) as load:
        mirrored = project.deploy(shadow, "--env", "shadow", "--shadow")
        time.sleep(3)
    assert mirrored.code == 0, mirrored.stderr
    assert set(load.versions()) == {live} and load.statuses() == {200: len(load.answers)}
    stats = httpx.get(f"{project.url('shadow').removesuffix('/v1')}/-/llmci/stats", timeout=10).json()
    copies = stats["counts"].get(f"{shadow}/shadow", {}).get("requests", 0)
    assert copies > 10, stats["counts"]
    assert serving(project, "shadow") == {live: 100.0}

    promoted = project.deploy(shadow, "--env", "shadow")  # the same version, now for real: the shadow ends
    assert promoted.code == 0, promoted.stderr
    assert serving(project, "shadow") == {shadow: 100.0}
    state = json.loads(project.deploy("status", "--env", "shadow", "--json").stdout)
    assert [v["ref"] for v in state["models"]["ticket-router"]] == [shadow]


def test_a_deploy_killed_mid_canary_puts_the_old_version_back_and_frees_the_environment(project: Project) -> None:
    import os
    import signal
    import subprocess
    import sys

    old, new = project.publish(), project.publish()
    assert project.deploy(old, "--env", "killed").code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    with Load(project.url("killed")) as load:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmci", "deploy", new, "--env", "killed"],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 240
        while not any(
            e["action"] == "step" and e["version"] == int(new.split("@")[1]) for e in events(project, "killed")
        ):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)  # a cancelled workflow run
        out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    assert "rolling back: was interrupted (SIGTERM)" in err
    assert load.statuses() == {200: len(load.answers)}
    assert serving(project, "killed") == {old: 100.0}
    status = json.loads(project.deploy("status", "--env", "killed", "--json").stdout)
    assert status["deploy_in_progress"] is None  # the lease was released: the next deploy may run
    assert project.deploy(old, "--env", "killed").code == 0
