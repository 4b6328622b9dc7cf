"""Builds the quickstart's base model: a tiny GPT-2 and a tokenizer trained on this project's text.

No download: the tokenizer learns from the rendered training prompts, and the
weights start random, so the base model cannot route tickets and the
fine-tuned one can. It is saved with save_pretrained to .llmci/base-model
(llmci.yaml: train.base_model) and loads like any hub model
(`AutoModelForCausalLM`, `AutoTokenizer`): the same code that loads real models
loads it. llmci's tests and benchmarks build their models with
`build_tiny_model` from here too.

    python examples/quickstart/build_base_model.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from llmci.templating import make_environment

HERE = Path(__file__).resolve().parent

SPECIAL_TOKENS = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>", "unk_token": "<|unk|>"}
#: A ChatML-style template, so the tiny model also takes chat datasets.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_model(
    texts: Iterable[str],
    out: Path,
    *,
    vocab_size: int = 2000,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 512,
    seed: int = 0,
) -> Path:
    """A byte-level BPE tokenizer trained on `texts` and a GPT-2 with random weights, saved to `out`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*SPECIAL_TOKENS.values(), "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    fast.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    out.mkdir(parents=True, exist_ok=True)
    GPT2LMHeadModel(config).save_pretrained(out)
    fast.save_pretrained(out)
    return out


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
