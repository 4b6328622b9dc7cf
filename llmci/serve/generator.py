"""A model version loaded with transformers, answering batches of requests.

Prompts are built the way the version was trained: completions take the
prompt as it is, or `vars` rendered with the prompt template published with
the version (`llmci-prompt.json`, written by `llmci train`), in the sandbox
with StrictUndefined; chat requests go through the tokenizer's chat template,
and a model without one refuses them (400). Requests that sample the same way
share one `generate` call, padded on the left.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from llmci.errors import first_line
from llmci.serve.protocol import GenerationRequest, Output, RequestError, Sampling

#: The prompt template a version was trained with: {"template": NAME, "files": {NAME: SOURCE, ...}}.
PROMPT_FILE = "llmci-prompt.json"


class Generator:
    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)  # a replica's CPU share, not every core of the node
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.context = getattr(self.model.config, "n_positions", None) or getattr(
            self.model.config, "max_position_embeddings", None
        )
        self.template = _prompt_template(folder)
        self._lock = threading.Lock()  # one generate at a time: torch already uses the replica's threads

    def prompt(self, request: GenerationRequest) -> str:
        """The model input for `request`; RequestError (400) when it cannot be built."""
        if request.kind == "chat":
            if not self.tokenizer.chat_template:
                raise RequestError(
                    400,
                    f"{request.model} has no chat template: send POST /v1/completions with 'prompt' or 'vars'",
                    code="no_chat_template",
                )
            try:
                return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
            except Exception as exc:  # the template's raise_exception(), or a message it cannot take
                raise RequestError(400, f"the chat template refused the messages: {first_line(exc)}") from None
        if request.variables is not None:
            if self.template is None:
                raise RequestError(400, f"{request.model} was published without a prompt template: send 'prompt'")
            import jinja2

            try:
                return self.template.render(**request.variables)
            except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
                # The client's vars do not fit the template (a number where a list goes, a zero it divides
                # by): its fault, a 400.
                raise RequestError(400, f"rendering the prompt template failed: {first_line(exc)}") from None
            except RecursionError:
                raise RequestError(400, "rendering the prompt template failed: 'vars' nest too deeply") from None
        return request.prompt or ""

    def generate(self, requests: list[GenerationRequest], prompts: list[str]) -> list[Output | RequestError]:
        """One output (or a per-request refusal) for each request, in order."""
        results: list[Output | RequestError | None] = [None] * len(requests)
        groups: dict[Sampling, list[int]] = defaultdict(list)
        encoded = self.tokenizer(prompts, add_special_tokens=False).input_ids
        for index, (request, ids) in enumerate(zip(requests, encoded, strict=True)):
            if self.context and len(ids) + request.max_tokens > self.context:
                results[index] = RequestError(
                    400,
                    f"the prompt ({len(ids)} tokens) and max_tokens ({request.max_tokens}) exceed the model's "
                    f"context of {self.context} tokens",
                    code="context_length_exceeded",
                )
            else:
                groups[request.sampling].append(index)
        with self._lock:
            for sampling, members in groups.items():
                try:
                    outputs: list[Output | RequestError] = list(
                        self._generate([encoded[i] for i in members], [requests[i] for i in members], sampling)
                    )
                except Exception as exc:  # only the requests that asked for this sampling fail
                    failed = RequestError(500, f"generation failed: {first_line(exc)}", kind="server_error")
                    outputs = [failed] * len(members)
                for index, output in zip(members, outputs, strict=True):
                    results[index] = output
        return results  # type: ignore[return-value]

    def _generate(self, rows: list[list[int]], requests: list[GenerationRequest], sampling: Sampling) -> list[Output]:
        import torch

        tokenizer = self.tokenizer
        batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt")
        options: dict[str, Any] = {"do_sample": False}
        if sampling.temperature > 0:
            options = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        with torch.no_grad():
            out = self.model.generate(
                **batch,
                max_new_tokens=max(r.max_tokens for r in requests),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **options,
            )
        width = batch["input_ids"].shape[1]
        outputs = []
        for row, request in enumerate(requests):
            new = out[row, width:].tolist()[: request.max_tokens]
            finish = "length"
            if tokenizer.eos_token_id in new:
                new, finish = new[: new.index(tokenizer.eos_token_id)], "stop"
            text = tokenizer.decode(new, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in request.stop) if i >= 0), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
            unknown = rows[row].count(tokenizer.unk_token_id) if tokenizer.unk_token_id is not None else 0
            outputs.append(Output(text, len(rows[row]), len(new), finish, unknown))
        return outputs


def _prompt_template(folder: Path):
    """The version's prompt template, in the same sandbox llmci renders every prompt with; None without one."""
    path = folder / PROMPT_FILE
    if not path.is_file():
        return None
    import jinja2

    from llmci.templating import make_environment

    data = json.loads(path.read_text(encoding="utf-8"))
    env = make_environment("prompt")
    env.loader = jinja2.DictLoader(data["files"])
    return env.get_template(data["template"])
