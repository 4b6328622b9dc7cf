"""One root error, one exit code per kind of failure.

Every error a user can cause is raised as an `LlmciError` subclass whose
message is one line saying what is wrong and where (file:line, config key or
HTTP status) and what to do. The CLI's single handler prints it and exits with
the subclass's code; anything else is a bug and exits `INTERNAL`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every `llmci` command (documented in README.md)."""

    OK = 0
    #: The check ran and failed: lint errors (or warnings with --strict); compare: a regression.
    FAILED = 1
    #: Bad command line, bad llmci.yaml, or an input file that cannot be read.
    USAGE = 2
    #: `llmci compare`: the data cannot tell (errors on too many cases, nothing matched).
    INCONCLUSIVE = 3
    #: A registry name, version, stage or bucket that does not exist.
    NOT_FOUND = 4
    #: Someone else changed the same thing at the same time (a lost compare-and-swap): re-run.
    CONFLICT = 5
    #: Stored bytes do not match their recorded sha256 (corrupted or missing object).
    INTEGRITY = 6
    #: The storage backend failed: credentials, permissions, network, or 5xx after retries.
    STORAGE = 7
    #: `llmci report`: GitHub refused the report (token, permission, not found) or kept failing after retries.
    GITHUB = 8
    #: `llmci train`: Ray Train ran and the run failed (after the allowed restarts), or ended short.
    TRAINING = 9
    #: The Ray cluster could not be reached or refused the request (Jobs API, Ray Client, token).
    CLUSTER = 10
    #: `llmci deploy`: the new version failed (did not start, failed its smoke eval or a gate) and was rolled back.
    ROLLED_BACK = 11
    #: `llmci deploy`: the version is not approved in the registry, so it is not deployed.
    NOT_APPROVED = 12
    #: `llmci monitor check`: an alert could not be delivered (Slack, e-mail or GitHub); the next run retries it.
    UNDELIVERED = 13
    #: A bug in llmci: the traceback is printed; please report it.
    INTERNAL = 70


class LlmciError(Exception):
    """Root of every error a user can cause; carries its exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(LlmciError):
    """The command line asks for something that cannot be done."""


class ConfigError(LlmciError):
    """llmci.yaml is missing, unreadable or does not match the schema."""


class InputError(LlmciError):
    """An input file named by the user cannot be read."""


class NotFoundError(LlmciError):
    """A registry name, version, stage or bucket that does not exist."""

    exit_code = ExitCode.NOT_FOUND


class ConflictError(LlmciError):
    """A concurrent writer won a compare-and-swap; nothing of ours was written."""

    exit_code = ExitCode.CONFLICT


class IntegrityError(LlmciError):
    """Bytes read back do not match the sha256 recorded for them."""

    exit_code = ExitCode.INTEGRITY


class StorageError(LlmciError):
    """The storage backend could not be used (credentials, permissions, network, 5xx)."""

    exit_code = ExitCode.STORAGE


class TrainingError(LlmciError):
    """Ray Train reported the run failed (after the allowed restarts), or it ended short."""

    exit_code = ExitCode.TRAINING


class ClusterError(LlmciError):
    """The Ray cluster could not be reached or refused the request."""

    exit_code = ExitCode.CLUSTER


class RolledBackError(LlmciError):
    """A deploy failed a check and the environment was put back as it was."""

    exit_code = ExitCode.ROLLED_BACK


class NotApprovedError(LlmciError):
    """Only versions a person approved are deployed."""

    exit_code = ExitCode.NOT_APPROVED


class AlertsUndelivered(LlmciError):
    """An alert that could not be sent after retries (its state says the next run must retry)."""

    exit_code = ExitCode.UNDELIVERED


class GitHubError(LlmciError):
    """GitHub refused a request (token, permission, not found) or kept failing after retries."""

    exit_code = ExitCode.GITHUB


def first_line(exc: BaseException) -> str:
    """An exception as one line for an error message: its first line, else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def typed_first_line(exc: BaseException) -> str:
    """`Type: first line` (for a case's error row, where the type says as much as the text)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
