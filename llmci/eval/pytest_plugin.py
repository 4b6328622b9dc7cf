"""The pytest plugin `llmci eval` loads into a DeepEval pytest suite (`-p llmci.eval.pytest_plugin`).

It watches DeepEval's test run: every test case an `assert_test` measured is
written, with the node id of the test that measured it, to the JSON file named
by `LLMCI_PYTEST_RESULTS` when the session ends. A test that fails before it
measures anything is written as an error; one that raised after measuring (a
metric that raised inside `assert_test`) keeps its exception, for the metrics
it left without a score.

It also gives the tests the `llmci_target` fixture: a function that generates
with the target under evaluation (`LLMCI_TARGET`), through the eval cache, so
one test file measures the baseline and the candidate alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from llmci.errors import typed_first_line

_records: list[dict[str, Any]] = []


def _measured() -> list[Any]:
    from llmci.eval._deepeval import global_test_run_manager

    test_run = global_test_run_manager.get_test_run()
    return list(test_run.test_cases) if test_run is not None else []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    before = len(_measured())
    outcome = yield
    cases = _measured()[before:]
    raised = typed_first_line(outcome.excinfo[1]) if outcome.excinfo is not None else None
    _records.append(
        {
            "nodeid": item.nodeid,
            "cases": [case.model_dump(mode="json", exclude={"trace"}) for case in cases],
            # Nothing measured: the test's failure is the row. Something measured: the scores are the rows,
            # and the exception explains any metric that has none (DeepEval records it without its error).
            "error": None if cases else raised,
            "exception": raised if cases else None,
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


class TargetCaller:
    """`llmci_target(input_or_vars) -> str`: the target's output for a prompt, or for `vars` rendered
    through the suite's `prompt` template, with the suite's `generation` settings.

    Generations go through the same cache as dataset suites (keyed by target, prompt and settings), so
    a re-run on unchanged inputs calls no model. Targets are asynchronous; tests are not: calls run on
    an event loop in a thread of its own, which also works from inside a test's running loop.
    """

    def __init__(self, spec: str, *, config: str | None, suite: str | None, cached: bool) -> None:
        from llmci.config import GenerationConfig, load_config
        from llmci.eval.cache import EvalCache
        from llmci.eval.targets import open_target
        from llmci.fsutil import cache_dir
        from llmci.templating import load_template

        loaded = load_config(config)
        suites = loaded.config.eval.suites
        if suite is None:  # run by hand, without `llmci eval`: the only pytest suite, if there is one
            names = [name for name, config in suites.items() if config.pytest is not None]
            suite = names[0] if len(names) == 1 else None
        settings = suites.get(suite) if suite is not None else None
        self.suite = suite
        self.params = settings.generation if settings is not None else GenerationConfig()
        self.template = None
        if settings is not None and settings.prompt is not None:
            self.template = load_template(loaded.root, settings.prompt, key=f"eval.suites.{suite}.prompt")
        folder = cache_dir(loaded.root)
        self.target = open_target(spec, loaded, folder)
        self.cache = EvalCache(folder / "eval.sqlite" if cached else None)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llmci_target", daemon=True)
        self._thread.start()

    def __call__(self, input_or_vars: str | dict[str, Any]) -> str:
        from llmci.eval.cache import generation_key
        from llmci.eval.cases import Case, Generation
        from llmci.eval.http import CallError
        from llmci.templating import render_vars

        if not self.target.cacheable:
            raise CallError("llmci_target: the recorded target has no model to call; use hf:, registry: or openai:")
        if isinstance(input_or_vars, str):
            prompt = input_or_vars
        else:
            key = f"eval.suites.{self.suite}.prompt" if self.suite else "a suite's 'prompt'"
            prompt = render_vars(self.template, input_or_vars, "llmci_target", prompt_key=key)
        key = generation_key(self.target.identity, prompt, self.params)
        hit = self.cache.get("generations", key)
        if hit is not None:
            return Generation(**hit).output
        case = Case(id="llmci_target", line=0, prompt=prompt, input=prompt)
        generation = asyncio.run_coroutine_threadsafe(self.target.generate(case, self.params), self._loop).result()
        self.cache.put("generations", key, generation.__dict__)
        return generation.output

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.target.aclose(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self.cache.close()


@pytest.fixture(scope="session")
def llmci_target() -> Iterator[TargetCaller]:
    """Generate with the target `llmci eval --target` runs the suite against (`LLMCI_TARGET`)."""
    from llmci.errors import LlmciError

    spec = os.environ.get("LLMCI_TARGET")
    if not spec:
        pytest.fail("llmci_target: LLMCI_TARGET is not set; run the suite with `llmci eval --target T`", pytrace=False)
    try:
        caller = TargetCaller(
            spec,
            config=os.environ.get("LLMCI_CONFIG"),
            suite=os.environ.get("LLMCI_SUITE"),
            cached=not os.environ.get("LLMCI_NO_CACHE"),
        )
    except LlmciError as exc:  # a bad spec, llmci.yaml or template: one line, as llmci would say it
        pytest.fail(f"llmci_target: {exc}", pytrace=False)
    try:
        yield caller
    finally:
        caller.close()
