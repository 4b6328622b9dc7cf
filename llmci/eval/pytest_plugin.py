"""The pytest plugin `llmci eval` loads into a DeepEval pytest suite (`-p llmci.eval.pytest_plugin`).

It watches DeepEval's test run: every test case an `assert_test` measured is
written, with the node id of the test that measured it, to the JSON file named
by `LLMCI_PYTEST_RESULTS` when the session ends. A test that fails before it
measures anything is written as an error.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_records: list[dict[str, Any]] = []


def _measured() -> list[Any]:
    from deepeval.test_run import global_test_run_manager

    test_run = global_test_run_manager.get_test_run()
    return list(test_run.test_cases) if test_run is not None else []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    before = len(_measured())
    outcome = yield
    cases = _measured()[before:]
    error = None
    if not cases and outcome.excinfo is not None:
        kind, exc = outcome.excinfo[0], outcome.excinfo[1]
        lines = str(exc).strip().splitlines()
        error = f"{kind.__name__}: {lines[0]}" if lines else kind.__name__
    _records.append(
        {
            "nodeid": item.nodeid,
            "cases": [case.model_dump(mode="json", exclude={"trace"}) for case in cases],
            "error": error,
        }
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "setup" and report.failed:
        message = str(report.longrepr).strip().splitlines()
        _records.append(
            {"nodeid": report.nodeid, "cases": [], "error": f"setup failed: {message[-1] if message else ''}"}
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("LLMCI_PYTEST_RESULTS")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(_records, handle)
