"""The deploy job summary names every outcome a deploy can end with (no cluster needed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import get_args

import pytest

from llmci.deploy.rollout import Deployer, Outcome, OutcomeAction


@pytest.mark.parametrize("action", get_args(OutcomeAction))
def test_the_summary_heads_every_outcome(action: str) -> None:
    outcome = Outcome("staging", "ticket-router@2", action, "http://127.0.0.1:8000/staging/v1")
    summary = Deployer.summary_markdown(SimpleNamespace(env="staging"), outcome)  # type: ignore[arg-type]
    assert summary.startswith("### ") and f"({action})" in summary.splitlines()[0]
    assert "ticket-router@2" in summary and "| # | Step | Serving | Detail |" in summary
