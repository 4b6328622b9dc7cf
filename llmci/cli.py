"""The `llmci` command: a click group whose subcommands are imported only when run.

`llmci --help` lists commands from the table below without importing them,
so it starts as fast as click itself.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from llmci import __version__
from llmci.errors import ExitCode, LlmciError

#: name -> (module:attribute, one-line help shown by `llmci --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "lint": ("llmci.commands.lint:lint", "Lint prompt templates (Jinja2): inputs, safety, budgets."),
    "config": ("llmci.commands.config:config", "Check llmci.yaml or print its JSON Schema."),
    "registry": ("llmci.commands.registry:registry", "Model versions, approvals and stages (file:// or s3://)."),
    "train": ("llmci.commands.train:train", "Fine-tune on Ray Train (embedded or a cluster); publish a candidate."),
    "eval": ("llmci.commands.eval:eval_command", "Run a DeepEval suite against a target; write the results table."),
    "compare": (
        "llmci.commands.compare:compare",
        "Compare baseline and candidate results: deltas, intervals, verdict.",
    ),
    "report": (
        "llmci.commands.report:report",
        "Report a comparison: sticky PR comment, job summary, check run.",
    ),
    "deploy": (
        "llmci.commands.deploy:deploy",
        "Deploy approved versions with Ray Serve: canary steps, gates, automatic rollback.",
    ),
    "monitor": (
        "llmci.commands.monitor:monitor",
        "Watch a deployment: health, latency, cost and drift per version; dashboard and alerts.",
    ),
    "init": ("llmci.commands.init:init", "Scaffold llmci into a repository: llmci.yaml, example suite, workflows."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[name][0].partition(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="llmci")
def cli() -> None:
    """LLMOps for GitHub Actions: lint prompts, fine-tune, evaluate, compare, report, deploy, monitor.

    Exit codes: 0 ok, 1 check failed (or a regression), 2 usage or config error, 3 inconclusive,
    4 not found, 5 conflict, 6 integrity, 7 storage, 8 GitHub, 9 training failed, 10 Ray cluster
    unreachable, 11 deploy rolled back, 12 not approved, 13 alert not delivered, 70 internal error.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one place that turns errors into messages and exit codes."""
    try:
        code = cli.main(args=argv, prog_name="llmci", standalone_mode=False)
    except LlmciError as exc:
        _report(str(exc))
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = ExitCode.USAGE
    except click.UsageError as exc:  # bad options and arguments: one line too, with where to look
        where = exc.ctx.command_path if exc.ctx else "llmci"
        _report(f"{where}: {exc.format_message()}; see '{where} --help'")
        code = ExitCode.USAGE
    except click.ClickException as exc:
        _report(exc.format_message())
        code = ExitCode.USAGE
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception:  # a bug: say so, with the traceback to report
        traceback.print_exc()
        _report(f"internal error in llmci {__version__}; please report it with the traceback above")
        code = ExitCode.INTERNAL
    sys.exit(int(code or 0))


def _report(message: str) -> None:
    from llmci import gha
    from llmci.redact import redact_userinfo

    message = redact_userinfo(message)  # a safety net: errors quote URLs, and a URL may carry a key
    for line in message.splitlines():
        click.echo(f"llmci: error: {line}", err=True)
    if gha.in_actions():
        for line in message.splitlines():
            print(gha.annotation("error", line, title="llmci"), flush=True)
