"""The LLM judge: any OpenAI-compatible endpoint named in `eval.judge`, as a DeepEval model.

DeepEval's LLM-judged metrics (GEval, AnswerRelevancy, Faithfulness, ...)
call it; nothing else ever picks a judge, so no hosted API is called unless
the configuration names it. The tokens and cost of its calls are added to the
`JudgeUsage` of the measurement that made them (a context variable, so
concurrent cases keep theirs apart). A `user:password@` in `base_url` is sent
as HTTP basic auth; the judge's `identity` (recorded in results) is without it.
"""

from __future__ import annotations

import asyncio
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from llmci.config import JudgeConfig, Price
from llmci.eval._deepeval import DeepEvalBaseLLM
from llmci.eval.http import HttpRetryPolicy, chat_answer, chat_payload, post_json, split_userinfo


@dataclass
class JudgeUsage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None


#: Usage of the measurement running in this context (set by the runner around each metric).
current_usage: ContextVar[JudgeUsage | None] = ContextVar("llmci_judge_usage", default=None)


class OpenAICompatibleJudge(DeepEvalBaseLLM):
    def __init__(self, config: JudgeConfig, *, price: Price | None, policy: HttpRetryPolicy) -> None:
        self.config = config
        self.base_url, self._basic_auth = split_userinfo(config.base_url)
        self.url = self.base_url.rstrip("/") + "/chat/completions"
        self.price = price
        self.policy = policy
        self._api_key = os.environ.get(config.api_key_env)
        self._client: Any = None
        super().__init__(config.model)

    @property
    def identity(self) -> str:
        """What cached scores are keyed on: another judge gives other scores."""
        return f"{self.base_url}#{self.config.model}"

    def load_model(self) -> OpenAICompatibleJudge:
        return self

    def get_model_name(self) -> str:
        return self.config.model

    def _new_client(self) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        return httpx.AsyncClient(headers=headers, auth=self._basic_auth, timeout=self.config.timeout_s)

    async def _complete(self, client: Any, prompt: str) -> str:
        payload = chat_payload(self.config.model, prompt, max_tokens=1024, temperature=0.0, stop=[])
        text, prompt_tokens, completion_tokens = chat_answer(
            await post_json(client, self.url, payload, self.policy), self.url
        )
        usage = current_usage.get()
        if usage is not None:
            usage.calls += 1
            usage.input_tokens += prompt_tokens or 0
            usage.output_tokens += completion_tokens or 0
            if self.price is not None and prompt_tokens is not None and completion_tokens is not None:
                call = prompt_tokens * self.price.input_per_million + completion_tokens * self.price.output_per_million
                usage.cost = (usage.cost or 0.0) + call / 1e6
        return text

    async def a_generate(self, prompt: str, schema: Any = None, **_: Any) -> str:
        # DeepEval parses the JSON out of the text when `schema` is given and we return a string.
        if self._client is None:
            self._client = self._new_client()
        return await self._complete(self._client, prompt)

    def generate(self, prompt: str, schema: Any = None, **_: Any) -> str:
        async def once() -> str:
            async with self._new_client() as client:
                return await self._complete(client, prompt)

        return asyncio.run(once())

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
