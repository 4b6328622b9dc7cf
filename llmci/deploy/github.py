"""The deploy as GitHub shows it: a Deployment with `in_progress`, then `success` or `failure`.

Only in GitHub Actions with a token (`GITHUB_TOKEN`, `deployments: write`):
the deployment is made for the workflow's commit in the environment of the
same name, so the repository's environment page (and its required
reviewers) shows what llmci deployed. On success the deployment it replaced
is marked `inactive`. GitHub being down never fails a deploy: it warns.
"""

from __future__ import annotations

import os
from typing import Any

from llmci import gha
from llmci.errors import GitHubError
from llmci.registry import Manifest


class GitHubDeployment:
    def __init__(self, client: Any, deployment: Any, env: str, environment_url: str, log_url: str | None) -> None:
        self.client = client
        self.deployment = deployment
        self.env = env
        self.environment_url = environment_url
        self.log_url = log_url

    def finish(self, outcome: Any) -> None:
        """`success` (and the replaced deployment `inactive`) or `failure`."""
        try:
            if outcome is not None and outcome.action in ("deployed", "noop", "reconfigured"):
                replaced = [d for d in self.client.active_deployments(self.env) if d.id != self.deployment.id]
                self._status("success", f"{outcome.ref} serves {self.env}")
                for old in replaced:
                    self.client.deployment_status(
                        old, "inactive", description="replaced", environment_url=None, log_url=self.log_url
                    )
            else:
                self._status("failure", "rolled back: the environment serves what it did before")
        except GitHubError as exc:
            gha.warning(f"the GitHub deployment could not be updated: {exc}")
        finally:
            self.client.close()

    def _status(self, state: str, description: str) -> None:
        self.client.deployment_status(
            self.deployment, state, description=description, environment_url=self.environment_url, log_url=self.log_url
        )


def deployment_for(env: str, manifest: Manifest, environment_url: str) -> GitHubDeployment | None:
    """A GitHub Deployment in progress, when this runs in Actions with a token; None otherwise."""
    token, repository, sha = (os.environ.get(k) for k in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_SHA"))
    if not (gha.in_actions() and token and repository and sha):
        return None
    from llmci.report.github import GitHub

    gha.add_mask(token)
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    run_id = os.environ.get("GITHUB_RUN_ID")
    log_url = f"{server}/{repository}/actions/runs/{run_id}" if run_id else None
    try:
        client = GitHub(
            api_url=os.environ.get("GITHUB_API_URL", "https://api.github.com"), token=token, repository=repository
        )
        deployment = client.create_deployment(
            ref=sha,
            environment=env,
            description=f"llmci deploy {manifest.ref}",
            payload={"model": manifest.name, "version": manifest.version, "digest": manifest.digest},
            production=env in ("production", "prod"),
        )
        result = GitHubDeployment(client, deployment, env, environment_url, log_url)
        result._status("in_progress", f"deploying {manifest.ref}")
    except GitHubError as exc:
        gha.warning(f"no GitHub deployment is recorded: {exc}")
        return None
    return result
