"""Builds the quickstart's base model: a tiny GPT-2 and a tokenizer trained on this project's text.

No download: the tokenizer learns from the rendered training prompts, and the
weights start random, so the base model cannot route tickets and the
fine-tuned one can. It is saved with save_pretrained to .llmci/base-model
(llmci.yaml: train.base_model) and loads like any hub model.

    python examples/quickstart/build_base_model.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmci.templating import make_environment
from llmci.train.tiny import build_tiny_model

HERE = Path(__file__).resolve().parent


def main(out: Path = HERE / ".llmci" / "base-model") -> Path:
    env = make_environment("prompt", search_path=[str(HERE / "prompts"), str(HERE)])
    template = env.get_template("classify.j2")
    texts = []
    for name in ("train.jsonl",):
        for line in (HERE / "data" / name).read_text().splitlines():
            record = json.loads(line)
            texts.append(template.render(**record["vars"]) + record["completion"])
    texts += [path.read_text() for path in sorted((HERE / "prompts").rglob("*.j2"))]
    return build_tiny_model(texts, out, vocab_size=800, n_layer=2, n_embd=64, n_head=4, n_positions=256)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / ".llmci" / "base-model"))
