"""One root error, one exit code per kind of failure.

Every error a user can cause is raised as an `LlmciError` subclass whose
message is one line saying what is wrong and where (file:line, config key or
HTTP status) and what to do. The CLI's single handler prints it and exits with
the subclass's code; anything else is a bug and exits `INTERNAL`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every `llmci` command.

    docs/exit-codes.md is generated from the `#:` comments below (`python -m llmci.docs`).
    """

    #: Success: no lint errors (warnings allowed unless `--strict`); `llmci compare` and `llmci report`: no
    #: regression.
    OK = 0
    #: The check failed: lint errors, or warnings with `--strict`; `llmci compare` and `llmci report`: a
    #: regression; `llmci monitor check`: a rule at its critical level; `llmci deploy`: the version's chat
    #: template has an error-level lint finding.
    FAILED = 1
    #: Usage or configuration error: bad option, invalid `llmci.yaml`, a path that does not exist, nothing to
    #: lint, a malformed reference, promoting a version that is not approved, a bad dataset line, an unknown
    #: metric or target, an LLM-judged metric without `eval.judge`, an input file that cannot be read.
    USAGE = 2
    #: `llmci compare` and `llmci report`: inconclusive (too many cases in error, nothing matched).
    INCONCLUSIVE = 3
    #: Not found: a registry model, version, stage or bucket that does not exist.
    NOT_FOUND = 4
    #: Conflict: someone else changed the same stage pointer, status or environment at the same time (a lost
    #: compare-and-swap, or a deploy of the same environment in progress); nothing was written: re-run.
    CONFLICT = 5
    #: Integrity: a registry file is corrupted or missing (sha256 mismatch), a manifest is invalid, or a
    #: training checkpoint is not one llmci can load safely.
    INTEGRITY = 6
    #: Storage: the registry backend failed (missing credentials, access denied, network, 5xx after retries,
    #: a full disk), or an S3-compatible store ignores conditional writes.
    STORAGE = 7
    #: `llmci report`: GitHub refused (bad token, missing permission, unknown repository or pull request) or
    #: kept failing after retries.
    GITHUB = 8
    #: `llmci train`: Ray Train ran and the run failed (after `max_failures` restarts), ended without a
    #: checkpoint or short of its steps, or the Ray job ended `FAILED`/`STOPPED`.
    TRAINING = 9
    #: The Ray cluster could not be reached or refused the request: Jobs API or Ray Client address
    #: unreachable, wrong `RAY_AUTH_TOKEN`.
    CLUSTER = 10
    #: `llmci deploy`: the new version did not start, failed its smoke eval or breached a gate, and the
    #: environment was rolled back to what served before.
    ROLLED_BACK = 11
    #: `llmci deploy`: the version is not approved in the registry, so it is not deployed.
    NOT_APPROVED = 12
    #: `llmci monitor check` and `alert`: an alert could not be delivered to Slack, e-mail or GitHub after
    #: retries; its state says so and the next run retries it (when a rule is also at its critical level,
    #: `check` exits 1).
    UNDELIVERED = 13
    #: Internal error in llmci (a bug): the traceback is printed; please report it.
    INTERNAL = 70

    @classmethod
    def for_verdict(cls, verdict: str) -> ExitCode:
        """The exit code of `llmci compare` and `llmci report` for a comparison's verdict."""
        return {"pass": cls.OK, "regression": cls.FAILED, "inconclusive": cls.INCONCLUSIVE}[verdict]


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
