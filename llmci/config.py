"""The schema of `llmci.yaml`, one section per stage, and its loader.

Unknown keys are refused (with a "did you mean"), and every problem is
reported as `file:line: key: what is wrong`, one line each.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from llmci.errors import ConfigError
from llmci.fsutil import display_path

CONFIG_FILENAME = "llmci.yaml"

# YAML 1.1 reads a bare `off` as false; accept it as the word the user wrote.
RuleSetting = Annotated[
    Literal["off", "info", "warning", "error"], BeforeValidator(lambda value: "off" if value is False else value)
]


class _AnchorRefused(yaml.YAMLError):
    """An anchor or alias in llmci.yaml, where it is found (the key path so far and the line)."""

    def __init__(self, where: tuple[Any, ...], line: int, message: str) -> None:
        super().__init__(message)
        self.where, self.line, self.message = where, line, message


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-6` as the number YAML 1.2 (and every user) means, not a string.

    Anchors and aliases are refused as they are read: an alias shares a node,
    so nine nested aliases in a few hundred bytes make a tree of a billion
    nodes for whatever walks it (the schema, the line finder). A config file
    has no need of them.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._where: tuple[Any, ...] = ()  # the key path of the node being composed, for the message

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # `index` is the key node of a mapping value, the position of a list item, None for a key or the root.
        step = () if index is None else (index.value if isinstance(index, yaml.Node) else index,)
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            sigil = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise _AnchorRefused(
                self._where + step,
                event.start_mark.line + 1,
                f"YAML anchors and aliases are not supported ({sigil}{anchor}); write the value out",
            )
        self._where += step
        try:
            return super().compose_node(parent, index)
        finally:
            self._where = self._where[: len(self._where) - len(step)]


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class Section(BaseModel):
    """Base of every section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_rule_ids(rules: dict[str, str]) -> dict[str, str]:
    # Imported here, not at the top: loading the config needs no lint stage unless it names rules.
    from llmci.lint.rules import RULES

    for rule_id in rules:
        if rule_id not in RULES:
            close = difflib.get_close_matches(rule_id, RULES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known rules: {', '.join(RULES)}"
            raise ValueError(f"unknown rule '{rule_id}'{hint}")
    return rules


class PromptSpec(Section):
    """Templates matched by `path` and the inputs they are rendered with."""

    path: str = Field(description="Glob of template files, relative to llmci.yaml (`**` recurses).")
    kind: Literal["prompt", "chat-template"] = Field(
        "prompt",
        description="`chat-template`: the Hugging Face apply_chat_template contract (messages, "
        "add_generation_prompt, tools, documents, special tokens, raise_exception) is implied.",
    )
    variables: list[str] = Field(default_factory=list, description="Inputs the template is rendered with.")
    untrusted: list[str] = Field(default_factory=list, description="Inputs a user controls (prompt-injection hygiene).")
    max_tokens: PositiveInt | None = Field(None, description="Budget for the template's static text.")
    rules: dict[str, RuleSetting] = Field(default_factory=dict, description="Per-template rule severities.")
    filters: list[str] = Field(
        default_factory=list,
        description="Filters the engine that renders these templates adds (e.g. `from_json`), beside lint.filters.",
    )
    tests: list[str] = Field(
        default_factory=list, description="Tests the engine that renders these templates adds, beside lint.tests."
    )
    globals: list[str] = Field(
        default_factory=list, description="Globals the engine that renders these templates adds, beside lint.globals."
    )

    _rule_ids = field_validator("rules")(_check_rule_ids)

    @field_validator("path")
    @classmethod
    def _relative_glob(cls, path: str) -> str:
        if not path or Path(path).is_absolute():
            raise ValueError(f"'{path}' must be a glob relative to llmci.yaml")
        return path

    @model_validator(mode="after")
    def _untrusted_are_inputs(self) -> PromptSpec:
        known = set(self.variables)
        if self.kind == "chat-template":
            from llmci.templating import CHAT_TEMPLATE_INPUTS  # Jinja2 only where a chat template is declared

            known |= CHAT_TEMPLATE_INPUTS
        unknown = [name for name in self.untrusted if name not in known]
        if unknown:
            raise ValueError(f"untrusted names {unknown} are not in variables")
        return self


class LintConfig(Section):
    rules: dict[str, RuleSetting] = Field(default_factory=dict, description="Rule id -> off|info|warning|error.")
    search_path: list[str] = Field(
        default_factory=list, description="Extra folders (relative to llmci.yaml) for include/import/extends."
    )
    filters: list[str] = Field(default_factory=list, description="Custom filters your renderer registers.")
    tests: list[str] = Field(default_factory=list, description="Custom tests your renderer registers.")
    globals: list[str] = Field(default_factory=list, description="Custom globals your renderer registers.")

    _rule_ids = field_validator("rules")(_check_rule_ids)


class RegistryConfig(Section):
    uri: str = Field(
        "file://.llmci/registry", description="file://PATH (relative to llmci.yaml) or s3://bucket/prefix."
    )
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Ceph, ...).")

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        if not uri.startswith(("file://", "s3://")):
            raise ValueError(f"'{uri}' must start with file:// or s3://")
        return uri


class ScalingConfig(Section):
    num_workers: PositiveInt = Field(1, description="Ray Train workers (one process each).")
    use_gpu: bool = Field(False, description="One GPU per worker.")
    resources_per_worker: dict[str, float] = Field(default_factory=dict, description='e.g. {"CPU": 2}.')


class Hyperparameters(Section):
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 8
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_steps: PositiveInt | None = Field(None, description="Stop after this many steps (default: all epochs).")
    max_length: PositiveInt = Field(512, description="Tokens per example; longer examples are cut from the left.")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="Held out for eval loss when no eval_dataset.")
    seed: int = 0


class LoraConfig(Section):
    r: PositiveInt = 8
    alpha: PositiveInt = 16
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="Default: peft's choice for the architecture.")
    merge: bool = Field(True, description="Publish merged full weights; false: the adapter with its base reference.")


class CheckpointSettings(Section):
    num_to_keep: PositiveInt = 2
    every_steps: PositiveInt | None = Field(None, description="Also checkpoint every N steps (always at epoch end).")


class TrainConfig(Section):
    name: str = Field(description="Registry name the fine-tuned model is published as.")
    base_model: str = Field(description="A local folder, registry:NAME@VERSION|NAME@STAGE, or a hub id.")
    dataset: str = Field(description="JSONL of prompt/completion pairs, vars/completion, or chat messages.")
    eval_dataset: str | None = Field(None, description="JSONL for eval loss (default: hold out eval_fraction).")
    prompt: str | None = Field(None, description="Template (relative to llmci.yaml) rendering each example's vars.")
    method: Literal["full", "lora"] = "full"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    checkpoints: CheckpointSettings = Field(default_factory=CheckpointSettings)
    max_failures: int = Field(0, ge=0, description="Worker failures to recover from (resuming from a checkpoint).")
    log_every_steps: PositiveInt = Field(10, description="Report step losses to Ray Train every N steps.")
    storage: str = Field(".llmci/ray", description="Ray Train storage for checkpoints (local path or s3://).")


class GateConfig(Section):
    """When `llmci compare` calls a metric a regression (docs/commands.md, `llmci compare`)."""

    min: float | None = Field(None, description="The candidate's mean must be at least this.")
    max_regression: float | None = Field(
        0.0,
        ge=0,
        description="Largest tolerated drop of the mean; a regression is flagged when the whole confidence "
        "interval of the paired delta lies below -max_regression. null: no delta gate.",
    )
    statistic: Literal["score", "pass_rate"] = Field(
        "score", description="Gate the mean score, or the share of cases at or above the threshold."
    )


class MetricConfig(Section):
    name: str = Field(description="A DeepEval metric class (ExactMatch, GEval, ...) or an llmci metric (RougeL, ...).")
    id: str | None = Field(None, description="Its name in results and comparisons (default: name).")
    threshold: float | None = Field(None, description="Per-case pass threshold (default: the metric's own).")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the metric class.")
    gate: GateConfig = Field(default_factory=GateConfig)

    @property
    def key(self) -> str:
        return self.id or self.name


class GenerationConfig(Section):
    max_new_tokens: PositiveInt = 64
    temperature: float = Field(0.0, ge=0, description="0: greedy decoding.")
    stop: list[str] = Field(default_factory=list, description="The output is cut at the first of these.")
    timeout_s: float = Field(60.0, gt=0, description="Per request to an openai: target.")


class SuiteConfig(Section):
    dataset: str | None = Field(None, description="JSONL of cases (id, input or vars, expected_output, ...).")
    prompt: str | None = Field(None, description="Template rendering each case's vars into the model input.")
    pytest: list[str] | None = Field(None, description="DeepEval pytest files or folders (assert_test) instead.")
    metrics: list[MetricConfig] = Field(default_factory=list)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @model_validator(mode="after")
    def _one_source(self) -> SuiteConfig:
        if (self.dataset is None) == (self.pytest is None):
            raise ValueError("give either 'dataset' (with metrics) or 'pytest' (DeepEval test files)")
        if self.dataset is not None and not self.metrics:
            raise ValueError("a dataset suite needs at least one metric")
        keys = [metric.key for metric in self.metrics]
        if len(set(keys)) != len(keys):
            raise ValueError("two metrics share a name; give one an 'id'")
        return self


class JudgeConfig(Section):
    base_url: str = Field(description="An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1.")
    model: str
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the key.")
    timeout_s: float = Field(120.0, gt=0)


class Price(Section):
    input_per_million: float = Field(0.0, ge=0, description="USD per million input tokens.")
    output_per_million: float = Field(0.0, ge=0, description="USD per million output tokens.")


class CompareConfig(Section):
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Level of the two-sided confidence intervals.")
    resamples: PositiveInt = Field(10_000, description="Paired bootstrap resamples.")
    seed: int = 0
    max_inconclusive: float = Field(
        0.05, ge=0, le=1, description="Share of cases with errors above which a metric is inconclusive."
    )


class EvalConfig(Section):
    judge: JudgeConfig | None = Field(None, description="The LLM judge for LLM-judged metrics (GEval, ...).")
    suites: dict[str, SuiteConfig] = Field(default_factory=dict)
    concurrency: PositiveInt = Field(8, description="Cases generated and measured at once.")
    retries: int = Field(3, ge=0, description="Retries of a failed model or judge call (5xx, 429, timeouts).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Key sent to openai: targets, if set.")
    prices: dict[str, Price] = Field(default_factory=dict, description="Model name -> token prices, for cost.")
    compare: CompareConfig = Field(default_factory=CompareConfig)


class SmokeConfig(Section):
    suite: str = Field(description="The eval suite run against the new version before it gets traffic.")
    max_cases: PositiveInt | None = Field(20, description="Its first N cases (null: all).")
    min_pass_rate: float = Field(0.8, ge=0, le=1, description="Each metric's pass rate must reach this.")


class GatesConfig(Section):
    """What the new version's live traffic must stay within at every canary step."""

    max_error_rate: float | None = Field(0.05, ge=0, le=1, description="Share of 5xx answers; null: no gate.")
    max_p95_ms: PositiveFloat | None = Field(None, description="95th percentile latency through the router.")
    min_requests: PositiveInt = Field(20, description="Fewer requests in a step are not judged (said so, passes).")


class EnvironmentConfig(Section):
    address: str | None = Field(
        None, description="The Ray dashboard (http://HEAD:8265) whose Serve runs this environment; empty: a local head."
    )
    serve_url: str | None = Field(
        None, description="Serve's HTTP address as llmci reaches it (default: the local head's, or HEAD:8000)."
    )
    url: str | None = Field(None, description="The public URL of the environment (GitHub Deployment links).")
    route_prefix: str | None = Field(None, description="Default /ENV: the API is at SERVE_URL/ENV/v1.")
    http_port: int = Field(8000, ge=1, le=65535, description="The local head's Serve HTTP port.")
    canary: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0], description="Traffic steps (percent) for the new version."
    )
    step_seconds: PositiveFloat = Field(30.0, description="How long the gates watch each step.")
    start_timeout_s: PositiveFloat = Field(600.0, description="How long a new version may take to be RUNNING.")
    replicas: PositiveInt = Field(1, description="Replicas per version (when no autoscaling_config).")
    router_replicas: PositiveInt = 1
    autoscaling_config: dict[str, Any] | None = Field(None, description="Ray Serve's autoscaling_config, as it is.")
    ray_actor_options: dict[str, Any] = Field(
        default_factory=lambda: {"num_cpus": 1}, description="Per model replica: num_cpus, num_gpus, accelerator_type."
    )
    max_batch_size: PositiveInt = Field(
        8, description="Requests the router sends a version at once, generated together."
    )
    batch_wait_timeout_s: float = Field(
        0.01, ge=0, description="How long a request that finds its version idle waits for others to batch with."
    )
    graceful_shutdown_timeout_s: PositiveFloat = Field(60.0, description="Requests in flight get this long to finish.")
    runtime_env: dict[str, Any] = Field(
        default_factory=dict, description="Ray runtime_env of the applications (pip: [llmci==...] on a cluster)."
    )
    cache_dir: str = Field("/tmp/llmci-cache", description="Where replicas on a cluster keep pulled versions.")
    smoke: SmokeConfig | None = None
    gates: GatesConfig = Field(default_factory=GatesConfig)

    @field_validator("canary")
    @classmethod
    def _rising_to_100(cls, steps: list[float]) -> list[float]:
        if not steps or steps[-1] != 100 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError("canary steps must rise and end at 100")
        return steps


class DeployConfig(Section):
    #: Names are lowercase words joined by single hyphens (they name Serve applications and routes).
    environments: dict[Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=32)], EnvironmentConfig] = (
        Field(default_factory=dict)
    )


_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `15m`, `1h` or `7d` (the only forms llmci reads); ValueError otherwise."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"'{text}' is not a duration like 90s, 15m, 1h or 7d")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


Duration = Annotated[str, AfterValidator(lambda text: parse_duration(text) and text)]


class RecordConfig(Section):
    """What the serving application records of each request (Parquet parts in the registry store)."""

    sample: float = Field(1.0, gt=0, le=1, description="Share of requests recorded.")
    prompts: Literal["full", "hashed", "dropped"] = Field(
        "hashed", description="The prompt text and vars as sent, a SHA-256 of them, or nothing (privacy)."
    )
    outputs: Literal["full", "hashed", "dropped"] = Field("full", description="The same for the generated text.")
    flush_seconds: PositiveFloat = Field(10.0, description="A part is written at least this often while traffic lasts.")
    max_buffered: PositiveInt = Field(
        20_000, description="Records held in memory per router replica; beyond, new ones are dropped and counted."
    )


class Threshold(Section):
    warning: float | None = None
    critical: float | None = None


class DriftConfig(Section):
    reference: str = Field(
        "suite", description="`suite` (the smoke or first eval suite's dataset), `suite:NAME`, or `window:START/END`."
    )
    alpha: float = Field(0.01, gt=0, lt=1, description="Family-wise false-alarm rate of a window's drift tests.")
    threshold: float = Field(0.1, gt=0, description="Distance above which a large sample drifts (Evidently's 0.1).")
    sample: PositiveInt = Field(5000, description="Rows per version the drift tests read (a seeded random sample).")


class CostConfig(Section):
    replica_hour_usd: float = Field(0.0, ge=0, description="Price of one model replica for an hour (self-hosted).")
    prices_file: str | None = Field(
        None, description="Token prices of API models, LiteLLM's model_prices_and_context_window.json format."
    )


class SlackConfig(Section):
    webhook_env: str = Field("SLACK_WEBHOOK_URL", description="Environment variable holding the incoming webhook.")


class EmailConfig(Section):
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username_env: str | None = Field(None, description="Environment variable holding the SMTP user.")
    password_env: str | None = Field(None, description="Environment variable holding the SMTP password.")
    sender: str = Field(description="The From address.")
    to: list[str] = Field(min_length=1)


class GitHubIssuesConfig(Section):
    labels: list[str] = Field(default_factory=lambda: ["llmci-incident"])


class AlertsConfig(Section):
    repeat_interval: Duration = Field("4h", description="A firing alert is sent again after this long.")
    cooldown: Duration = Field(
        "1h",
        description="A recovered alert's resolved notice waits until it has stayed recovered this long; "
        "a breach within it continues the incident without a notice (longer than the check schedule).",
    )
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    github_issues: GitHubIssuesConfig | None = None


class MonitorConfig(Section):
    window: Duration = Field("1h", description="How far back `llmci monitor check` looks by default.")
    bucket: Duration = Field("5m", description="Width of a time step in the dashboard's charts.")
    min_requests: PositiveInt = Field(30, description="Fewer requests in the window: the version has no data.")
    no_data: Literal["ok", "warning", "critical"] = Field("warning", description="The level of a version with no data.")
    rules: dict[str, Threshold] = Field(default_factory=dict, description="Metric -> warning and critical thresholds.")
    record: RecordConfig = Field(default_factory=RecordConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    prometheus_url: str | None = Field(None, description="Prometheus scraping the Ray cluster (resource use).")
    dashboard_url: str | None = Field(None, description="Where the published dashboard lives (linked from alerts).")

    @field_validator("rules")
    @classmethod
    def _known_metrics(cls, rules: dict[str, Threshold]) -> dict[str, Threshold]:
        from llmci.monitor.metrics import METRICS

        for name in rules:
            if name not in METRICS:
                close = difflib.get_close_matches(name, METRICS, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known metrics: {', '.join(METRICS)}"
                raise ValueError(f"unknown metric '{name}'{hint}")
        return rules


class Config(Section):
    """Root of llmci.yaml. Later stages read their own section."""

    prompts: list[PromptSpec] = Field(default_factory=list)
    lint: LintConfig = Field(default_factory=LintConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    train: TrainConfig | None = None
    eval: EvalConfig = Field(default_factory=EvalConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)


class LoadedConfig(typing.NamedTuple):
    config: Config
    #: The file it came from; None when no llmci.yaml was found (defaults).
    path: Path | None

    @property
    def root(self) -> Path:
        """Folder that relative paths in the config are relative to."""
        return self.path.parent if self.path else Path.cwd()


def locate(loaded: LoadedConfig, *key_path: str | int) -> str:
    """`llmci.yaml:LINE: key.path`, for errors found after loading (an unknown metric name, say)."""
    dotted = _dotted(key_path)
    if loaded.path is None:
        return dotted
    shown = display_path(loaded.path)
    try:
        lines = _key_lines(yaml.compose(loaded.path.read_text(encoding="utf-8"), Loader=_Loader))
    except (OSError, yaml.YAMLError):
        return f"{shown}: {dotted}"
    line = next((lines[key_path[:n]] for n in range(len(key_path), 0, -1) if key_path[:n] in lines), 1)
    return f"{shown}:{line}: {dotted}"


def find_config(start: Path | None = None) -> Path | None:
    """The nearest llmci.yaml in `start` (default: cwd) or a parent folder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | Path | None = None) -> LoadedConfig:
    """Load and validate llmci.yaml; defaults when `path` is None and none is found."""
    if path is None:
        found = find_config()
        if found is None:
            return LoadedConfig(Config(), None)
        path = found
    path = Path(path)
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such file", hint="pass --config with the path of your llmci.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read: {exc}") from None
    path = path.resolve()
    return LoadedConfig(parse_config(text, shown, root=path.parent), path)


def parse_config(text: str, filename: str = CONFIG_FILENAME, root: Path | None = None) -> Config:
    """Parse and validate llmci.yaml's text; with `root` (its folder), also check the paths it names."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        _check_keys(node, filename)
        data = loader.construct_document(node) if node is not None else {}
    except _AnchorRefused as exc:
        raise ConfigError(f"{filename}:{exc.line}: {_dotted(exc.where) or '(top level)'}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}:1: the top level must be a mapping of sections, not {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(node)
        problems = [_describe(error, filename, lines) for error in exc.errors()]
        raise ConfigError("\n".join(problems)) from None
    if root is not None:
        problems = _outside_paths(config, root)
        if problems:
            lines = _key_lines(node)
            raise ConfigError(
                "\n".join(f"{filename}:{_line_of(lines, key)}: {_dotted(key)}: {what}" for key, what in problems)
            )
    return config


def _check_keys(node: yaml.Node | None, filename: str, path: tuple[Any, ...] = ()) -> None:
    """Refuse a key given twice in one mapping (YAML would keep the last silently), and merge keys."""
    if isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    f"{filename}:{line}: {_dotted(path) or '(top level)'}: merge keys (<<) are not supported; "
                    "write the keys out"
                )
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key in first_line:
                raise ConfigError(
                    f"{filename}:{line}: {_dotted((*path, key))}: duplicate key '{key}' "
                    f"(first at line {first_line[key]}); keep one"
                )
            if key is not None:
                first_line[key] = line
            _check_keys(value_node, filename, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_keys(item, filename, (*path, index))


# -- paths ---------------------------------------------------------------------------------
#
# A pull request can change llmci.yaml. The files it names are read (and some of
# their content shown in the PR comment, the job summary, the log), so a key must
# not reach a file outside the project: `../../.ssh/id_rsa`, `/proc/self/environ`,
# or a committed link to one. Paths are resolved (links followed) and must stay in
# the folder of llmci.yaml. Templates may also come from `lint.search_path`, the
# explicit list of other folders, which must stay in the repository (the folder
# with `.git` above llmci.yaml, when there is one). Paths given on the command
# line are the user's own choice and are not checked.

_GLOB_CHARS = frozenset("*?[")


def _outside_paths(config: Config, root: Path) -> list[tuple[tuple[Any, ...], str]]:
    """(key path, problem) for every path-valued key that leaves the project."""
    root = root.resolve()
    problems: list[tuple[tuple[Any, ...], str]] = []
    repository = _repository_root(root)
    allowed = [root]
    for index, folder in enumerate(config.lint.search_path):
        resolved = (root / folder).resolve()
        if repository is not None and not resolved.is_relative_to(repository):
            what = "is outside the repository that holds llmci.yaml; search only folders of the repository"
            problems.append((("lint", "search_path", index), f"'{folder}' {what}"))
        else:
            allowed.append(resolved)
    for index, entry in enumerate(config.prompts):
        # The glob's fixed start (before any wildcard) must be in the project or a search_path folder;
        # what it matches is checked again, links resolved, when the linter globs.
        parts = Path(entry.path).parts
        fixed = Path(*parts[: next((i for i, p in enumerate(parts) if _GLOB_CHARS & set(p)), len(parts))])
        if not any((root / fixed).resolve().is_relative_to(folder) for folder in allowed):
            what = "is outside the folder of llmci.yaml; add its folder to lint.search_path to lint templates there"
            problems.append((("prompts", index, "path"), f"'{entry.path}' {what}"))
    for key, value in _project_files(config):
        if not (root / value).resolve().is_relative_to(root):
            lexical = Path(os.path.normpath(root / value)).is_relative_to(root)
            where = "is a link to outside" if lexical else "is outside"
            problems.append((key, f"'{value}' {where} the folder of llmci.yaml; keep the project's files inside it"))
    return problems


def _project_files(config: Config) -> list[tuple[tuple[Any, ...], str]]:
    """The keys naming files of the project that llmci reads: datasets, prompts, DeepEval test files."""
    files: list[tuple[tuple[Any, ...], str]] = []
    if config.train is not None:
        for name in ("dataset", "eval_dataset", "prompt"):
            value = getattr(config.train, name)
            if value is not None:
                files.append((("train", name), value))
    for suite_name, suite in config.eval.suites.items():
        for name in ("dataset", "prompt"):
            value = getattr(suite, name)
            if value is not None:
                files.append((("eval", "suites", suite_name, name), value))
        files.extend((("eval", "suites", suite_name, "pytest", i), value) for i, value in enumerate(suite.pytest or []))
    return files


def _repository_root(folder: Path) -> Path | None:
    """The nearest folder at or above `folder` holding `.git`; None outside a repository."""
    return next((parent for parent in (folder, *folder.parents) if (parent / ".git").exists()), None)


def _line_of(lines: dict[tuple[Any, ...], int], key_loc: tuple[Any, ...]) -> int:
    return next((lines[key_loc[:n]] for n in range(len(key_loc), 0, -1) if key_loc[:n] in lines), 1)


def _key_lines(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path (as pydantic reports it) to its 1-based line in the file."""
    lines: dict[tuple[Any, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, key_node.value)
            lines[key_path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key_path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            lines.update(_key_lines(item, (*path, index)))
    return lines


def _describe(error: dict[str, Any], filename: str, lines: dict[tuple[Any, ...], int]) -> str:
    key_loc = tuple(error["loc"])
    line = _line_of(lines, key_loc)
    dotted = _dotted(key_loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _field_names(key_loc[:-1])
        close = difflib.get_close_matches(str(key_loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
        return f"{filename}:{line}: {dotted}: unknown key; {hint}"
    message = _MESSAGES.get(error["type"]) or error["msg"].removeprefix("Value error, ")
    return f"{filename}:{line}: {dotted}: {message}"


_MESSAGES = {
    "missing": "required key is missing",
    "model_type": "must be a mapping of keys",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
}


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field_names(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section found at `loc` in the schema."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        # A key that is not a field is a dict key (a suite name, say): stay on the value's model.
        if isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields:
            model = _model_in(model.model_fields[part].annotation)
    return sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside Optional[...], list[...] or dict[str, ...], else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "llmci.yaml"
    return schema
