"""Chat templates as apply_chat_template runs them: macros, optional arguments, engine filters, loops.

Each shape is a template written here; where the linter says a template renders (or does not),
the test renders it with jinja2 the way transformers does (ImmutableSandboxedEnvironment, lenient
Undefined) to show the claim is true.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmci.config import LoadedConfig, parse_config
from llmci.lint.engine import Linter
from llmci.lint.findings import Finding
from llmci.lint.formats import render
from tests.conftest import write_tree

MESSAGES = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"where": {"type": "object", "properties": {"city": {"type": "string"}}}},
            },
        },
    }
]


def lint(tmp_path: Path, template: str, extra: str = "") -> list[Finding]:
    config = f"prompts:\n  - {{path: t.jinja, kind: chat-template{extra}}}\n"
    write_tree(tmp_path, {"t.jinja": template, "llmci.yaml": config})
    return Linter(LoadedConfig(parse_config(config), tmp_path / "llmci.yaml")).lint([tmp_path / "t.jinja"]).findings


def problems(findings: list[Finding]) -> list[tuple[int, str, str]]:
    """Errors and warnings as (line, rule, message)."""
    return [(f.line, f.rule, f.message) for f in findings if f.severity.value != "info"]


def render_like_transformers(template: str, **kwargs: object) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["from_json"] = json.loads
    return env.from_string(template).render(messages=MESSAGES, add_generation_prompt=True, **kwargs)


# -- macros resolve names where they are called -------------------------------------------------

LATER_MACRO = """\
{%- macro render_tool(tool) -%}
{{ tool.function.name }}({{ render_params(tool.function.parameters) }})
{%- endmacro -%}
{%- macro render_params(schema) -%}
{%- for name, spec in schema.properties.items() -%}
{{ name }}: {{ render_type(spec) }}{% if not loop.last %}, {% endif %}
{%- endfor -%}
{%- endmacro -%}
{%- macro render_type(spec) -%}
{%- if spec.type == "object" -%}{ {{ render_params(spec) }} }{%- else -%}{{ spec.type }}{{ suffix }}{%- endif -%}
{%- endmacro -%}
{%- set suffix = "" -%}
{%- if tools %}{% for tool in tools %}{{ render_tool(tool) }}
{% endfor %}{% endif -%}
{%- for m in messages %}{{ m.role }}: {{ m.content }}
{% endfor -%}
"""


def test_macros_calling_later_macros_recursively_and_reading_later_sets_are_clean(tmp_path: Path) -> None:
    assert problems(lint(tmp_path, LATER_MACRO)) == []
    assert render_like_transformers(LATER_MACRO, tools=TOOLS).startswith("get_weather(where: { city: string })")


def test_a_name_a_macro_reads_that_is_defined_nowhere_is_still_an_error(tmp_path: Path) -> None:
    template = LATER_MACRO.replace("{{ spec.type }}{{ suffix }}", "{{ spec.type }}{{ sufix }}")
    assert problems(lint(tmp_path, template)) == [
        (
            10,
            "undefined-variable",
            "'sufix' is used but is in neither the chat-template contract (apply_chat_template's inputs) "
            "nor the entry's `variables` or `globals`",
        )
    ]


def test_a_macro_never_called_is_still_checked(tmp_path: Path) -> None:
    template = "{% macro unused() %}{{ nowhere }}{% endmacro %}{{ messages[0].content }}\n"
    assert [(line, rule) for line, rule, _ in problems(lint(tmp_path, template))] == [(1, "undefined-variable")]


def test_a_macro_does_not_see_the_loop_variables_of_its_call_site(tmp_path: Path) -> None:
    """Jinja scopes lexically: the loop's `m` is not the macro's, and rendering fails on a strict template."""
    template = "{% macro show() %}{{ m.content }}{% endmacro %}{% for m in messages %}{{ show() }}{% endfor %}\n"
    assert [rule for _, rule, _ in problems(lint(tmp_path, template))] == ["undefined-variable"]
    with pytest.raises(jinja2.UndefinedError):
        render_like_transformers(template)


def test_a_set_after_the_last_call_is_not_seen_by_the_macro(tmp_path: Path) -> None:
    template = "{% macro greet() %}{{ greeting }}{% endmacro %}{{ greet() }}{% set greeting = 'hi' %}\n"
    assert [rule for _, rule, _ in problems(lint(tmp_path, template))] == ["undefined-variable"]


# -- optional keyword arguments of apply_chat_template -------------------------------------------

OPTIONAL = """\
{%- if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}
{%- if reasoning_effort %}Reasoning: {{ reasoning_effort }}
{% endif %}
{%- set date = date_string | default("today") %}
{%- if builtin_tools %}{% for t in builtin_tools %}{{ t }} {% endfor %}{% endif %}
{%- if "browser" in available or available == "all" %}browse{% endif %}
{%- for m in messages %}{{ m.content }}{% endfor %}
"""


def test_names_a_chat_template_only_tests_are_optional_arguments_listed_as_info(tmp_path: Path) -> None:
    findings = lint(tmp_path, OPTIONAL)
    assert problems(findings) == []
    optional = [(f.line, f.message) for f in findings if f.rule == "optional-argument"]
    assert [message.split("'")[1] for _, message in optional] == [
        "enable_thinking",
        "reasoning_effort",
        "date_string",
        "builtin_tools",
        "available",
    ]
    assert all(f.severity.value == "info" for f in findings if f.rule == "optional-argument")
    # Both ways a template renders: without the arguments, and with them.
    assert render_like_transformers(OPTIONAL) == "hi hello ?".replace(" ", "")
    assert "Reasoning: high" in render_like_transformers(OPTIONAL, reasoning_effort="high", builtin_tools=["x"])


def test_optional_arguments_are_listed_in_json_and_sarif(tmp_path: Path) -> None:
    findings = lint(tmp_path, OPTIONAL)
    from llmci.lint.findings import LintReport

    report = LintReport(findings, files=1)
    rows = json.loads(render(report, "json"))
    assert {row["message"].split("'")[1] for row in rows if row["rule"] == "optional-argument"} >= {"enable_thinking"}
    sarif = json.loads(render(report, "sarif"))
    results = sarif["runs"][0]["results"]
    assert any(r["ruleId"] == "optional-argument" and r["level"] == "note" for r in results)


@pytest.mark.parametrize(
    "template",
    [
        "{{ reasoning_effort }}\n",  # rendered
        "{% for t in custom_tools %}{{ t }}{% endfor %}\n",  # iterated
        "{{ model_identity.name }}\n",  # dereferenced
        "{% if custom_tools %}{% endif %}{% for t in custom_tools %}{{ t }}{% endfor %}\n",  # guard elsewhere
    ],
)
def test_a_name_used_without_a_guard_stays_an_error(tmp_path: Path, template: str) -> None:
    assert [rule for _, rule, _ in problems(lint(tmp_path, template))] == ["undefined-variable"]


def test_a_use_inside_the_guard_is_fine(tmp_path: Path) -> None:
    template = (
        "{% if custom_tools %}{% for t in custom_tools %}{{ t }}{% endfor %}{% endif %}"
        "{{ effort if effort is defined else 'low' }}{% if ns_x and ns_x.a %}{{ ns_x.a }}{% endif %}\n"
    )
    assert problems(lint(tmp_path, template)) == []
    assert render_like_transformers(template) == "low"


# -- filters, tests and globals an engine adds ---------------------------------------------------

ENGINE = "{% set args = messages[0].content | from_json %}{% if args is even_ish %}{{ now() }}{% endif %}\n"


def test_filters_tests_and_globals_an_engine_adds_can_be_declared_per_entry(tmp_path: Path) -> None:
    missing = problems(lint(tmp_path, ENGINE))
    assert [rule for _, rule, _ in missing] == ["unknown-filter", "unknown-test", "undefined-variable"]
    assert "not in the chat-template environment" in missing[0][2] and "`filters`" in missing[0][2]
    declared = ", filters: [from_json], tests: [even_ish], globals: [now]"
    assert problems(lint(tmp_path, ENGINE, declared)) == []


# -- a `for` body starts afresh at every iteration -------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{% for m in messages %}{% if loop.first %}{% set sys = m.content %}{% endif %}{{ sys }}{% endfor %}\n",
        "{% for m in messages %}{% if loop.index0 == 0 %}{% set sys = m.content %}{% endif %}"
        "{% if not loop.first %}{{ sys }}{% endif %}{% endfor %}\n",
        "{% for m in messages %}{% if loop.first %}{% set sys = m.content %}{% else %}{{ sys }}{% endif %}"
        "{% endfor %}\n",
        "{% for m in messages %}{{ prev }}{% set prev = m.content %}{% endfor %}\n",
    ],
)
def test_a_name_set_on_one_iteration_only_is_possibly_undefined_on_the_next(tmp_path: Path, template: str) -> None:
    found = problems(lint(tmp_path, template))
    assert [rule for _, rule, _ in found] == ["possibly-undefined"]
    assert "a `set` inside a `for` is gone at the next iteration" in found[0][2]
    # From the second message on the name is undefined: a strict renderer fails, a lenient one renders nothing.
    strict = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=[jinja2.ext.loopcontrols])
    with pytest.raises(jinja2.UndefinedError):
        strict.from_string(template).render(messages=MESSAGES)


def test_a_namespace_carries_a_value_across_iterations(tmp_path: Path) -> None:
    template = (
        "{% set ns = namespace(sys='') %}{% for m in messages %}{% if loop.first %}{% set ns.sys = m.content %}"
        "{% endif %}{{ ns.sys }}{% endfor %}\n"
    )
    assert problems(lint(tmp_path, template)) == []
