"""Training data: JSONL validated line by line before any compute.

Each line is one JSON object, one of:

* `{"prompt": "...", "completion": "..."}`
* `{"vars": {...}, "completion": "..."}` with `train.prompt` set: the prompt is
  that template rendered with the vars (the same sandboxed environment eval
  and serving render with), so the model learns on the prompts it will see;
* `{"messages": [{"role": ..., "content": ...}, ...]}` ending with an
  assistant message: the prompt is the conversation before it, rendered with
  the base model's chat template; the completion is that last message.
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
class Example:
    prompt: str | None
    completion: str
    messages: tuple[dict[str, str], ...] | None = None


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str
    examples: list[Example]

    @property
    def uses_messages(self) -> bool:
        return any(example.messages for example in self.examples)


def load_dataset(path: Path, template: jinja2.Template | None = None) -> Dataset:
    """Read and validate a JSONL dataset; the first problem is raised naming file:line."""
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: cannot read: {exc.strerror}") from None
    examples = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{shown}:{number}: not UTF-8 (byte {exc.start} of the line)") from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{shown}:{number}: invalid JSON: {exc.msg} at column {exc.colno}") from None
        examples.append(_example(record, f"{shown}:{number}", template))
    if not examples:
        raise InputError(f"{shown}: no examples (the file is empty)")
    return Dataset(path, hashlib.sha256(raw).hexdigest(), examples)


def _example(record: Any, where: str, template: jinja2.Template | None) -> Example:
    if not isinstance(record, dict):
        raise InputError(f"{where}: each line must be a JSON object")
    if "messages" in record:
        return _chat_example(record["messages"], where)
    completion = record.get("completion")
    if not isinstance(completion, str) or not completion:
        raise InputError(f"{where}: missing field 'completion' (a non-empty string)")
    if "vars" in record:
        return Example(render_vars(template, record["vars"], where, prompt_key="train.prompt"), completion)
    prompt = record.get("prompt")
    if not isinstance(prompt, str):
        raise InputError(f"{where}: missing field 'prompt' (or 'vars' with train.prompt, or 'messages')")
    return Example(prompt, completion)


def _chat_example(messages: Any, where: str) -> Example:
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: 'messages' must be a non-empty list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InputError(f"{where}: messages[{index}] needs a 'role'")
        if not isinstance(message.get("content"), str):
            raise InputError(f"{where}: messages[{index}] needs a 'content' string")
    if messages[-1]["role"] != "assistant":
        raise InputError(f"{where}: the last message must be the assistant's (what the model learns to say)")
    return Example(None, messages[-1]["content"], tuple(dict(m) for m in messages))
