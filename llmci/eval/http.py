"""Calls to OpenAI-compatible endpoints (targets and judges), with one retry policy.

429 waits what `Retry-After` says (capped); 5xx, timeouts and dropped
connections back off exponentially; any other status fails at once. Every
failure is one line naming the URL and the status; keys never appear in it:
a base URL's `user:password@` is sent as HTTP basic auth and cut from every
URL a message names (`split_userinfo`).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from llmci.redact import redact_userinfo, without_userinfo

#: The longest a single Retry-After is honoured; a server asking for more is treated as failing.
MAX_RETRY_AFTER_S = 60.0


class CallError(Exception):
    """A model or judge call that failed for good: the case is recorded as inconclusive."""


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """`url` without its `user:password@`, and that pair (decoded) for HTTP basic auth, or None.

    The clean URL is what llmci records and prints; only the HTTP client gets the pair.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    return without_userinfo(url), (unquote(parts.username or ""), unquote(parts.password or ""))


@dataclass(frozen=True)
class HttpRetryPolicy:
    retries: int = 3
    backoff_s: float = 0.5

    def delay(self, attempt: int, status: int | None, retry_after: str | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up.

        `status` None means the request never got an answer (timeout, connection).
        """
        if attempt > self.retries:
            return None
        if status == 429:
            wait = parse_retry_after(retry_after)
            if wait is None:
                return self.backoff_s * 2 ** (attempt - 1)
            return wait if wait <= MAX_RETRY_AFTER_S else None
        if status is None or status >= 500:
            return self.backoff_s * 2 ** (attempt - 1)
        return None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def post_json(client: Any, url: str, payload: dict[str, Any], policy: HttpRetryPolicy) -> dict[str, Any]:
    """POST `payload` with an `httpx.AsyncClient`, retrying per `policy`; the JSON answer."""
    import httpx

    attempt = 0
    while True:
        attempt += 1
        status, retry_after = None, None
        try:
            response = await client.post(url, json=payload)
            status, retry_after = response.status_code, response.headers.get("retry-after")
            if status < 400:
                return _json(response, url)
            problem = f"HTTP {status} from {url}: {_snippet(response.text)}"
        except httpx.TimeoutException:
            problem = f"timed out calling {url}"
        except httpx.TransportError as exc:
            problem = f"cannot reach {url}: {exc or type(exc).__name__}"
        wait = policy.delay(attempt, status, retry_after)
        if wait is None:
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            # The URL is clean, but a server or proxy may echo a URL with credentials in its body or error.
            raise CallError(redact_userinfo(problem + tries))
        await asyncio.sleep(wait)


def _json(response: Any, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise CallError(f"{url} answered HTTP {response.status_code} with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise CallError(f"{url} answered with JSON that is not an object")
    return data


def _snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat[:limit] + ("..." if len(flat) > limit else "") if flat else "(empty body)"


def chat_payload(model: str, prompt: str, *, max_tokens: int, temperature: float, stop: list[str]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if stop:
        payload["stop"] = stop
    return payload


def chat_answer(data: dict[str, Any], url: str, *, chat: bool = True) -> tuple[str, int | None, int | None]:
    """The text and token counts of a chat completion (`chat=False`: of a plain completion)."""
    where = "choices[0].message.content" if chat else "choices[0].text"
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise CallError(f"{url}: the answer has no {where}") from None
    if not isinstance(text, str):
        raise CallError(f"{url}: {where} is not a string")
    usage = data.get("usage") or {}
    return text, usage.get("prompt_tokens"), usage.get("completion_tokens")
