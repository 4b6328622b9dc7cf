"""Eval cases: a suite's JSONL dataset, validated line by line before any model is called.

Each line is one JSON object:

* `id` (string or number, unique in the file): how baseline and candidate cases are matched;
* `input` (the model input), or `vars` rendered through the suite's `prompt` template;
* `expected_output` (`completion`, the training datasets' name, is read as the same);
* optional `context` and `retrieval_context` (lists of strings) for RAG metrics;
* optional `actual_output` (required by the `recorded` target), with `latency_ms`,
  `input_tokens`, `output_tokens` and `cost` when the recording has them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from llmci.errors import InputError
from llmci.fsutil import display_path
from llmci.templating import render_vars


@dataclass(frozen=True)
class Generation:
    """A target's output with what it cost; for the `recorded` target, one produced elsewhere (logged traffic)."""

    output: str
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None


@dataclass(frozen=True)
class Case:
    id: str
    #: Line of the dataset it came from, for messages.
    line: int
    #: What the target is sent: `input`, or the suite's template rendered with `vars`.
    prompt: str
    #: What metrics see as the test case input (the line's `input` when given, else the prompt).
    input: str
    expected_output: str | None = None
    context: tuple[str, ...] | None = None
    retrieval_context: tuple[str, ...] | None = None
    recording: Generation | None = None


@dataclass(frozen=True)
class CaseSet:
    path: Path
    sha256: str
    cases: list[Case]


def load_cases(path: Path, template: jinja2.Template | None = None) -> CaseSet:
    """Read and validate a suite dataset; the first problem is raised naming file:line."""
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot read: {exc.strerror}", hint="paths in llmci.yaml are relative to it"
        ) from None
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{shown}:{number}"
        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not UTF-8 (byte {exc.start} of the line)") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: invalid JSON: {exc.msg} at column {exc.colno}") from None
        case = _case(record, number, where, template)
        if case.id in seen:
            raise InputError(f"{where}: id '{case.id}' is also on line {seen[case.id]}; ids must be unique")
        seen[case.id] = number
        cases.append(case)
    if not cases:
        raise InputError(f"{shown}: no cases (the file is empty)")
    return CaseSet(path, hashlib.sha256(raw).hexdigest(), cases)


def _case(record: Any, number: int, where: str, template: jinja2.Template | None) -> Case:
    if not isinstance(record, dict):
        raise InputError(f"{where}: each line must be a JSON object")
    case_id = record.get("id")
    if isinstance(case_id, bool) or not isinstance(case_id, (str, int)) or case_id == "":
        raise InputError(f"{where}: missing field 'id' (a string or number that names the case)")
    given_input = _optional_str(record, "input", where)
    if "vars" in record:
        prompt = render_vars(template, record["vars"], where, prompt_key="the suite's 'prompt'")
    elif given_input is not None:
        prompt = given_input
    else:
        raise InputError(f"{where}: missing field 'input' (or 'vars' with the suite's prompt template)")
    expected = _optional_str(record, "expected_output", where)
    if expected is None:
        expected = _optional_str(record, "completion", where)
    return Case(
        id=str(case_id),
        line=number,
        prompt=prompt,
        input=given_input if given_input is not None else prompt,
        expected_output=expected,
        context=_optional_strings(record, "context", where),
        retrieval_context=_optional_strings(record, "retrieval_context", where),
        recording=_recording(record, where),
    )


def _recording(record: dict[str, Any], where: str) -> Generation | None:
    output = _optional_str(record, "actual_output", where)
    if output is None:
        return None
    numbers = {}
    for key in ("latency_ms", "input_tokens", "output_tokens", "cost"):
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(f"{where}: '{key}' must be a number")
        numbers[key] = value
    return Generation(output, **numbers)


def _optional_str(record: dict[str, Any], key: str, where: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"{where}: '{key}' must be a string")
    return value


def _optional_strings(record: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InputError(f"{where}: '{key}' must be a list of strings")
    return tuple(value)
