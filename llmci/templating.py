"""The Jinja2 environments templates are parsed and rendered with.

The linter parses with exactly the environment that renders, so "unknown
filter" means the renderer would fail too. Rendering always happens in a
sandbox with StrictUndefined: a missing input is an error, never "".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from llmci.errors import InputError

TemplateKind = Literal["prompt", "chat-template"]

# The chat-template contract: what transformers' apply_chat_template gives every chat template.
#: The inputs `transformers` passes to every chat template (apply_chat_template).
CHAT_TEMPLATE_INPUTS = frozenset(
    {"messages", "add_generation_prompt", "tools", "documents", "bos_token", "eos_token", "pad_token", "unk_token"}
)
#: Globals of a chat template under transformers' apply_chat_template.
CHAT_TEMPLATE_GLOBALS = frozenset({"raise_exception", "strftime_now"})


class GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: transformers marks assistant text with it.

    For parsing and plain rendering the body is simply output in its own scope.
    """

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def make_environment(
    kind: TemplateKind = "prompt",
    *,
    search_path: Iterable[str] = (),
    filters: Iterable[str] = (),
    tests: Iterable[str] = (),
) -> jinja2.Environment:
    """The environment for one kind of template.

    `prompt`: a SandboxedEnvironment with StrictUndefined and loop controls.
    `chat-template`: what transformers uses (ImmutableSandboxedEnvironment,
    trim_blocks, lstrip_blocks, loop controls, `{% generation %}`).
    Names in `filters`/`tests` are user-registered: the linter only needs to
    know they exist, so they are registered as placeholders here and the
    renderer replaces them with the real callables.
    """
    loader = jinja2.FileSystemLoader(list(search_path)) if search_path else None
    if kind == "chat-template":
        env: jinja2.Environment = ImmutableSandboxedEnvironment(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[jinja2.ext.loopcontrols, GenerationTag],
            undefined=jinja2.StrictUndefined,
            loader=loader,
        )
    else:
        env = SandboxedEnvironment(
            extensions=[jinja2.ext.loopcontrols],
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            loader=loader,
        )
    for name in filters:
        env.filters.setdefault(name, _unregistered(name))
    for name in tests:
        env.tests.setdefault(name, _unregistered(name))
    return env


def _unregistered(name: str):
    def missing(*_args: object, **_kwargs: object) -> None:
        raise jinja2.TemplateRuntimeError(f"'{name}' is declared in llmci.yaml but the renderer did not register it")

    return missing


def load_template(root: Path, path: str, *, key: str) -> jinja2.Template:
    """The prompt template at `path` (relative to `root`, the folder of llmci.yaml), ready to render.

    Includes resolve from the template's own folder, then `root`. `key` names
    the config key the path came from, for the error message.
    """
    template_path = root / path
    if not template_path.is_file():
        raise InputError(f"{key}: {path}: no such file", hint="paths in llmci.yaml are relative to it")
    env = make_environment("prompt", search_path=[str(template_path.parent), str(root)])
    try:
        return env.get_template(template_path.name)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"{path}:{exc.lineno}: {exc.message}", hint="run `llmci lint`") from None


def bundle_template(root: Path, path: str) -> dict[str, object]:
    """The template at `path` and every template it includes, imports or extends, as one JSON-able bundle.

    `{"template": NAME, "files": {NAME: SOURCE, ...}}`, each file under the
    name it is referenced by, so a `DictLoader` over `files` renders exactly
    what `load_template` renders: `llmci train` publishes it with the model,
    and the serving application renders `vars` with it.
    """
    import jinja2.meta

    template_path = root / path
    env = make_environment("prompt", search_path=[str(template_path.parent), str(root)])
    files: dict[str, str] = {}
    todo = [template_path.name]
    while todo:
        name = todo.pop()
        if name in files:
            continue
        source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        files[name] = source
        todo += [ref for ref in jinja2.meta.find_referenced_templates(env.parse(source)) if ref is not None]
    return {"template": template_path.name, "files": files}


def render_vars(template: jinja2.Template | None, variables: object, where: str, *, prompt_key: str) -> str:
    """A dataset line's `vars` rendered through the prompt template; every problem is one error at `where`."""
    if template is None:
        raise InputError(f"{where}: 'vars' needs {prompt_key} (a template) in llmci.yaml")
    if not isinstance(variables, dict):
        raise InputError(f"{where}: 'vars' must be an object")
    try:
        return template.render(**variables)
    except jinja2.TemplateError as exc:
        raise InputError(f"{where}: rendering the prompt template failed: {exc}") from None
