"""Everything llmci knows about GitHub Actions, in one place.

Workflow commands are printed to stdout; outputs and the job summary are
appended to the files the runner names in GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY. Escaping follows the runner's own rules
(actions/toolkit `command.ts`): data escapes `%`, CR and LF; properties
also escape `:` and `,`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from typing import TextIO

ANNOTATION_LEVELS = ("error", "warning", "notice")


def in_actions(environ: Mapping[str, str] = os.environ) -> bool:
    """True when running as a GitHub Actions step."""
    return environ.get("GITHUB_ACTIONS") == "true"


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: object) -> str:
    """Format one workflow command line: `::name k=v,...::message`."""
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items() if value is not None)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    end_line: int | None = None,
    end_column: int | None = None,
    title: str | None = None,
) -> str:
    """An `::error`/`::warning`/`::notice` line that GitHub pins to a file and line."""
    if level not in ANNOTATION_LEVELS:
        raise ValueError(f"annotation level must be one of {ANNOTATION_LEVELS}, not {level!r}")
    return command(level, message, file=file, line=line, col=col, endLine=end_line, endColumn=end_column, title=title)


def warning(message: str, out: TextIO | None = None) -> None:
    """A warning: an annotation on the run in Actions, a stderr line elsewhere."""
    if in_actions():
        print(command("warning", message, title="llmci"), file=out or sys.stdout, flush=True)
    else:
        print(f"llmci: warning: {message}", file=out or sys.stderr, flush=True)


def event_payload(environ: Mapping[str, str] = os.environ) -> dict:
    """The webhook payload of the event that started the run (GITHUB_EVENT_PATH); {} outside Actions."""
    import json

    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def add_mask(secret: str, out: TextIO | None = None) -> None:
    """In Actions, tell the runner to replace `secret` with *** in every later log line."""
    if secret and in_actions():
        print(command("add-mask", secret), file=out or sys.stdout, flush=True)


@contextlib.contextmanager
def group(title: str, out: TextIO | None = None) -> Iterator[None]:
    """A collapsible section of the log in Actions; a plain heading elsewhere."""
    stream = out or sys.stdout
    if in_actions():
        print(command("group", title), file=stream, flush=True)
        try:
            yield
        finally:
            print("::endgroup::", file=stream, flush=True)
    else:
        print(f"== {title}", file=stream, flush=True)
        yield


@contextlib.contextmanager
def commands_stopped(out: TextIO | None = None) -> Iterator[None]:
    """Print untrusted text inside: the runner treats none of its lines as workflow commands.

    Outside Actions nothing is printed around it. The token is random, so the
    text cannot end the pause itself.
    """
    stream = out or sys.stdout
    if not in_actions():
        yield
        return
    token = uuid.uuid4().hex
    print(command("stop-commands", token), file=stream, flush=True)
    try:
        yield
    finally:
        print(f"::{token}::", file=stream, flush=True)


def set_output(name: str, value: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Append a step output to GITHUB_OUTPUT; False when not in a step that has one.

    Every value uses the heredoc form with a random delimiter, so multi-line
    values and values that look like `key=value` survive unchanged.
    """
    path = environ.get("GITHUB_OUTPUT")
    if not path:
        return False
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    if delimiter in name or delimiter in value:  # astronomically unlikely, but never corrupt the file
        raise ValueError("output name or value contains the heredoc delimiter")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return True


def append_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Append Markdown to the job summary; False when there is no summary file."""
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True
