"""What an eval runs against: `--target SPEC`.

* `registry:NAME@VERSION|NAME@STAGE`: a registry version, pulled once and generated locally;
* `hf:PATH`: a Hugging Face model folder, generated locally with transformers;
* `openai:BASE_URL#MODEL`: any OpenAI-compatible chat endpoint (vLLM, Ollama, Ray Serve, a hosted API);
* `openai-completions:BASE_URL#MODEL`: the same server's `/completions`, the prompt sent as it is
  (models trained on a prompt template, like `llmci deploy`'s);
* `recorded`: the outputs already in the dataset (`actual_output`), e.g. logged production traffic.

Local models get the prompt as it is (no chat template): that is how `llmci
train` teaches them. A target's `identity` is what the generation cache keys
on: local models by their content digest, so changed weights are never served
from the cache.

A `user:password@` in an `openai:` base URL is sent as HTTP basic auth and
nowhere else: `spec` and `identity` (which land in results tables, messages
and logs) are written without it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from llmci.config import GenerationConfig, LoadedConfig, Price
from llmci.errors import UsageError
from llmci.eval.cases import Case, Generation
from llmci.eval.http import (
    CallError,
    HttpRetryPolicy,
    chat_answer,
    chat_payload,
    post_json,
    split_userinfo,
)
from llmci.fsutil import hash_cache
from llmci.redact import redact_userinfo

TARGET_FORMS = "registry:NAME@VERSION, hf:PATH, openai:BASE_URL#MODEL, openai-completions:BASE_URL#MODEL or recorded"


class Target(ABC):
    #: As the user wrote it, minus any credentials.
    spec: str
    #: What cached generations are keyed on.
    identity: str
    #: The registry version evaluated, if any (NAME@VERSION).
    model_version: str | None = None
    #: False where a cache would only repeat what the dataset says.
    cacheable: bool = True

    @abstractmethod
    async def generate(self, case: Case, params: GenerationConfig) -> Generation: ...

    async def aclose(self) -> None:  # noqa: B027 - most targets hold nothing
        """Release connections."""


def open_target(spec: str, loaded: LoadedConfig, cache: Path | None = None) -> Target:
    """The target `spec` names; problems with the spec itself are usage errors (exit 2).

    `cache` is the cache folder (pulled registry models, file hashes of `hf:` models); default: `fsutil.cache_dir`.
    """
    settings = loaded.config.eval
    if spec == "recorded":
        return RecordedTarget()
    shown = redact_userinfo(spec)  # what messages may say
    kind, _, rest = spec.partition(":")
    if kind == "hf" and rest:
        folder = loaded.root / Path(rest).expanduser()  # an absolute PATH stays itself
        hashes = hash_cache(loaded.root, cache)
        return LocalModelTarget(shown, folder, identity=f"hf:{_folder_digest(folder, shown, hashes)}")
    if kind == "registry" and rest:
        from llmci.registry import open_registry, parse_ref, pull_cached

        manifest, folder = pull_cached(open_registry(loaded, cache=cache), parse_ref(rest), loaded.root, cache)
        target = LocalModelTarget(shown, folder, identity=f"registry:{manifest.digest}")
        target.model_version = manifest.ref
        return target
    if kind in ("openai", "openai-completions") and rest:
        base_url, _, model = rest.partition("#")
        if not base_url.startswith(("http://", "https://")) or not model:
            raise UsageError(
                f"--target {shown}: expected {kind}:BASE_URL#MODEL, e.g. {kind}:http://localhost:8000/v1#my-model"
            )
        return OpenAITarget(
            base_url.rstrip("/"),
            model,
            api_key=os.environ.get(settings.api_key_env),
            price=settings.prices.get(model),
            policy=HttpRetryPolicy(settings.retries),
            chat=kind == "openai",
        )
    raise UsageError(f"--target {shown}: unknown target", hint=f"use {TARGET_FORMS}")


class RecordedTarget(Target):
    spec = identity = "recorded"
    cacheable = False

    async def generate(self, case: Case, params: GenerationConfig) -> Generation:
        if case.recording is None:
            raise CallError("the case has no 'actual_output' to evaluate (the recorded target needs one per line)")
        return case.recording


class LocalModelTarget(Target):
    """A causal LM folder loaded with transformers; one generation at a time (torch uses every core)."""

    def __init__(self, spec: str, folder: Path, *, identity: str) -> None:
        self.spec = spec
        self.folder = folder
        self.identity = identity
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.folder)
            model = AutoModelForCausalLM.from_pretrained(self.folder).eval()
            self._loaded = (model, tokenizer)
        return self._loaded

    def _generate(self, prompt: str, params: GenerationConfig) -> Generation:
        import torch

        with self._lock:
            model, tokenizer = self._model()
            started = time.perf_counter()
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
            sampling = (
                {"do_sample": True, "temperature": params.temperature}
                if params.temperature > 0
                else {"do_sample": False}
            )
            with torch.no_grad():
                out = model.generate(
                    ids,
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id
                    if tokenizer.pad_token_id is not None
                    else tokenizer.eos_token_id,
                    **sampling,
                )
            new = out[0, ids.shape[1] :]
            text = _cut_at_stop(tokenizer.decode(new, skip_special_tokens=True), params.stop)
            latency = (time.perf_counter() - started) * 1000
        return Generation(text, latency, int(ids.shape[1]), int(new.shape[0]), None)

    async def generate(self, case: Case, params: GenerationConfig) -> Generation:
        return await asyncio.to_thread(self._generate, case.prompt, params)


class OpenAITarget(Target):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        price: Price | None,
        policy: HttpRetryPolicy,
        chat: bool = True,
    ) -> None:
        base_url, self._basic_auth = split_userinfo(base_url)
        self.spec = f"{'openai' if chat else 'openai-completions'}:{base_url}#{model}"
        # Credentials do not change what the model answers: a rotated key keeps the cache.
        self.identity = self.spec
        self.chat = chat
        self.url = f"{base_url}/chat/completions" if chat else f"{base_url}/completions"
        self.model = model
        self.price = price
        self.policy = policy
        self._api_key = api_key
        self._client: Any = None

    def _http(self, timeout_s: float) -> Any:
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(
                headers=headers,
                auth=self._basic_auth,  # user:password@ from the URL; it replaces the bearer key when both are given
                timeout=timeout_s,
                limits=httpx.Limits(max_connections=64),
            )
        return self._client

    async def generate(self, case: Case, params: GenerationConfig) -> Generation:
        payload = chat_payload(
            self.model, case.prompt, max_tokens=params.max_new_tokens, temperature=params.temperature, stop=params.stop
        )
        if not self.chat:  # /completions: the prompt as it is, no chat template on the server's side
            payload["prompt"] = payload.pop("messages")[0]["content"]
        started = time.perf_counter()
        data = await post_json(self._http(params.timeout_s), self.url, payload, self.policy)
        latency = (time.perf_counter() - started) * 1000
        text, prompt_tokens, completion_tokens = chat_answer(data, self.url, chat=self.chat)
        cost = None
        if self.price is not None and prompt_tokens is not None and completion_tokens is not None:
            cost = (
                prompt_tokens * self.price.input_per_million + completion_tokens * self.price.output_per_million
            ) / 1e6
        return Generation(_cut_at_stop(text, params.stop), latency, prompt_tokens, completion_tokens, cost)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _cut_at_stop(text: str, stop: list[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def _folder_digest(folder: Path, spec: str, hashes: Path) -> str:
    """The model folder's content digest (as the registry computes it); file hashes cached in `hashes`."""
    from llmci.registry.manifest import content_digest, scan_folder

    if not (folder / "config.json").is_file():
        raise UsageError(f"--target {spec}: {folder} is not a model folder (no config.json)")
    try:
        return content_digest(scan_folder(folder, hashes))
    except OSError as exc:
        raise UsageError(f"--target {spec}: cannot read the model: {exc.strerror}") from None
