"""What serving costs: token prices for models priced per token, replica time for self-hosted ones.

Token prices come from `eval.prices` (USD per million tokens) and from a file
in LiteLLM's `model_prices_and_context_window.json` format (USD per token:
`input_cost_per_token`, `output_cost_per_token`), the price table most LLM
tools share. A self-hosted version costs its replicas' time: replica-seconds
× `monitor.cost.replica_hour_usd` / 3600, spread over its requests and tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmci.config import Config
from llmci.errors import ConfigError, first_line
from llmci.fsutil import display_path


def token_prices(config: Config, root: Path) -> dict[str, tuple[float, float]]:
    """Model name -> USD per (input, output) token; the prices file wins over eval.prices."""
    prices = {
        model: (price.input_per_million / 1e6, price.output_per_million / 1e6)
        for model, price in config.eval.prices.items()
    }
    if config.monitor.cost.prices_file:
        prices.update(read_litellm_prices(root / config.monitor.cost.prices_file))
    return prices


def read_litellm_prices(path: Path) -> dict[str, tuple[float, float]]:
    """The per-token prices in a LiteLLM price table; entries without token prices are skipped."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{display_path(path)}: monitor.cost.prices_file: {first_line(exc)}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{display_path(path)}: monitor.cost.prices_file: expected an object of models")
    prices = {}
    for model, entry in table.items():
        if not isinstance(entry, dict):
            continue
        cost_in, cost_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if isinstance(cost_in, (int, float)) and isinstance(cost_out, (int, float)):
            prices[model] = (float(cost_in), float(cost_out))
    return prices


def replica_cost(replica_seconds: float, replica_hour_usd: float) -> float:
    return replica_seconds * replica_hour_usd / 3600
