"""A small client for any OpenAI-compatible chat-completions endpoint with image input (GPT-4o, Step3, a local
vLLM serving Qwen2.5-VL ...), shared by the instruction writers, the VLM judge and the paired-data filters.

It retries 429/5xx/timeouts/garbage with exponential backoff and jitter, caps concurrent requests, sums tokens
and cost, and caches validated answers on disk keyed by (model, messages, images, max_tokens, temperature) so a
rerun never pays twice; a cached answer is validated again when it is read.
The API key is read from an environment variable at request time and only ever placed in the Authorization
header: it is never logged, cached or put in an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from retake.checks import check_field_types
from retake.errors import RetakeError
from retake.files import write_json

log = logging.getLogger(__name__)

BASE_URL_ENV = "RETAKE_VLM_BASE_URL"
MODEL_ENV = "RETAKE_VLM_MODEL"
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

Validator = Callable[[str], str]  # returns the cleaned answer or raises ValueError (then the call is retried)


class VLMError(RetakeError):
    """The endpoint could not give a usable answer (after retries), or the client is misconfigured."""


class VLMRequestError(VLMError):
    """HTTP-level failure: a non-retryable status, or retryable failures until retries ran out."""


class VLMAnswerError(VLMError):
    """The endpoint answered, but never with something the validator accepted."""


@dataclass(frozen=True)
class VLMConfig:
    """How to reach and pay for a VLM. `base_url`/`model` of None are read from $RETAKE_VLM_BASE_URL and
    $RETAKE_VLM_MODEL; the key is read from the variable named by `api_key_env` (never stored here)."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    max_retries: int = 4
    concurrency: int = (
        4  # requests in flight per client, i.e. per curation worker process (N workers: N x this)
    )
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    price_prompt_per_1k: float = 0.0  # currency units per 1,000 prompt tokens
    price_completion_per_1k: float = 0.0
    max_tokens: int = 96
    temperature: float = 0.0
    jpeg_quality: int = 85
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self)  # values from JSON or the command line arrive as parsed
        for name in ("timeout", "max_tokens", "concurrency", "max_backoff_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "max_retries",
            "backoff_s",
            "price_prompt_per_1k",
            "price_completion_per_1k",
            "temperature",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


@dataclass(frozen=True)
class VLMUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class VLMAnswer:
    """A validated answer. `usage`/`cost` are what producing it cost (also when it came from the cache);
    `cached` says whether this call was free."""

    text: str
    usage: VLMUsage
    cost: float
    cached: bool = False


@dataclass(frozen=True)
class VLMTotals:
    """What the client actually spent in this process: requests sent, retries, cache hits, tokens, cost."""

    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


def image_part(image: np.ndarray, quality: int = 85) -> dict[str, Any]:
    """An OpenAI `image_url` content part holding `image` (H, W, 3) uint8 RGB as a base64 JPEG data URL."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"could not JPEG-encode an image of shape {image.shape}")
    data = base64.b64encode(buf.tobytes()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


class VLMClient:
    """Thread-safe chat-completions client. `chat` blocks; `chat_many` runs requests `concurrency` at a time."""

    def __init__(
        self,
        base_url: str | None,
        model: str | None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        concurrency: int = 4,
        cache_dir: str | Path | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        price_prompt_per_1k: float = 0.0,
        price_completion_per_1k: float = 0.0,
        max_tokens: int = 96,
        temperature: float = 0.0,
        jpeg_quality: int = 85,
    ) -> None:
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV, "")).rstrip("/")
        self.model = model or os.environ.get(MODEL_ENV, "")
        if not self.base_url:
            raise VLMError(f"no VLM base URL: set it with --vlm-base-url (vlm.base_url) or ${BASE_URL_ENV}")
        if not self.model:
            raise VLMError(f"no VLM model: set it with --vlm-model (vlm.model) or ${MODEL_ENV}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError(
                f"need concurrency >= 1, max_retries >= 0, timeout > 0; got {concurrency}, {max_retries}, {timeout}"
            )
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.prices = (price_prompt_per_1k, price_completion_per_1k)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.jpeg_quality = jpeg_quality
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._totals = VLMTotals()

    @classmethod
    def from_config(cls, config: VLMConfig, cache_dir: str | Path | None = None) -> VLMClient:
        return cls(
            config.base_url,
            config.model,
            api_key_env=config.api_key_env,
            timeout=config.timeout,
            max_retries=config.max_retries,
            concurrency=config.concurrency,
            cache_dir=config.cache_dir if cache_dir is None else cache_dir,
            backoff_s=config.backoff_s,
            max_backoff_s=config.max_backoff_s,
            price_prompt_per_1k=config.price_prompt_per_1k,
            price_completion_per_1k=config.price_completion_per_1k,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            jpeg_quality=config.jpeg_quality,
        )

    @property
    def totals(self) -> VLMTotals:
        with self._lock:
            return self._totals

    # -- public calls --------------------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[dict[str, Any]],
        images: Sequence[np.ndarray] = (),
        *,
        validate: Validator | None = None,
    ) -> VLMAnswer:
        """Send `messages` (OpenAI format; `images` (H, W, 3) uint8 RGB are appended to the last user
        message) and return the validated answer, from the cache when this exact request was answered before."""
        messages = self._with_images(messages, images)
        key = self._cache_key(messages)
        cached = self._cache_get(key, validate)
        if cached is not None:
            self._add(cache_hits=1)
            return cached
        answer = self._ask(messages, validate)
        self._cache_put(key, answer)
        return answer

    def chat_many(
        self,
        requests: Sequence[tuple[Sequence[dict[str, Any]], Sequence[np.ndarray]]],
        *,
        validate: Validator | None = None,
    ) -> list[VLMAnswer | VLMError]:
        """Run many `chat` calls, at most `concurrency` at once; results keep the input order, and a request
        that failed yields its VLMError instead of raising (one bad pair must not sink the others)."""

        def one(req: tuple[Sequence[dict[str, Any]], Sequence[np.ndarray]]) -> VLMAnswer | VLMError:
            try:
                return self.chat(req[0], req[1], validate=validate)
            except VLMError as exc:
                return exc

        if len(requests) <= 1:
            return [one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(one, requests))

    # -- request loop ----------------------------------------------------------------------------------------

    def _ask(self, messages: list[dict[str, Any]], validate: Validator | None) -> VLMAnswer:
        last_problem, error = "no attempt made", VLMRequestError
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._add(retries=1)
            try:
                data = self._post({"model": self.model, "messages": messages, **self._sampling()})
                text, usage = _parse_completion(data)
                text = validate(text) if validate is not None else text
            except _Retryable as exc:
                last_problem, error = str(exc), VLMRequestError
                self._sleep(attempt, exc.retry_after)
                continue
            except ValueError as exc:  # unparsable or rejected answer: ask again
                last_problem, error = f"invalid answer: {exc}", VLMAnswerError
                log.info("VLM answer rejected (attempt %d): %s", attempt + 1, exc)
                self._sleep(attempt, None)
                continue
            cost = (usage.prompt_tokens * self.prices[0] + usage.completion_tokens * self.prices[1]) / 1000.0
            self._add(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, cost=cost)
            return VLMAnswer(text=text, usage=usage, cost=cost)
        raise error(
            f"{self.model} at {self.base_url}: gave up after {self.max_retries + 1} attempts: {last_problem}"
        )

    def _sampling(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request. Raises _Retryable for what a retry may fix, VLMRequestError for what it cannot."""
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        self._add(requests=1)
        with self._slots:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                detail = self._redact(exc.read()[:200].decode("utf-8", "replace"))
                if exc.code in RETRYABLE_STATUS:
                    log.info("VLM HTTP %d, will retry", exc.code)
                    raise _Retryable(f"HTTP {exc.code}: {detail}", _retry_after(exc.headers)) from None
                raise VLMRequestError(f"{self.model} at {self.base_url}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                log.info("VLM request failed (%s), will retry", type(exc).__name__)
                raise _Retryable(f"{type(exc).__name__}: {self._redact(str(exc))}", None) from None
        try:
            return json.loads(raw)
        except ValueError:
            log.info("VLM sent a body that is not JSON, will retry")
            raise _Retryable("response body is not JSON", None) from None

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        if attempt >= self.max_retries:
            return
        # Full jitter keeps many workers that were throttled together from retrying in lockstep.
        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_s))
        time.sleep(delay)

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text

    def _add(self, **amounts: float) -> None:
        with self._lock:
            self._totals = replace(
                self._totals, **{k: getattr(self._totals, k) + v for k, v in amounts.items()}
            )

    # -- messages and cache ----------------------------------------------------------------------------------

    def _with_images(self, messages: Sequence[dict[str, Any]], images: Sequence[np.ndarray]) -> list[dict]:
        messages = [dict(m) for m in messages]
        if not messages:
            raise ValueError("messages is empty")
        if not images:
            return messages
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        if not users:
            raise ValueError("images need a user message to attach to; messages has none")
        last = messages[users[-1]]
        content = last.get("content", "")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        last["content"] = parts + [image_part(img, self.jpeg_quality) for img in images]
        return messages

    def _cache_key(self, messages: list[dict[str, Any]]) -> str:
        # The sampling settings are part of the question: a rerun with a larger max_tokens (to mend answers
        # cut short) or another temperature must ask again, not be served the old answers.
        request = {"model": self.model, "messages": messages, **self._sampling()}
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str, validate: Validator | None) -> VLMAnswer | None:
        """The cached answer, checked by this call's validator: one made stricter since the answer was
        cached rejects it, and the question is asked again (as a damaged entry is)."""
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            usage = VLMUsage(**data["usage"])
            text = validate(data["text"]) if validate is not None else data["text"]
            return VLMAnswer(text=text, usage=usage, cost=float(data["cost"]), cached=True)
        except (ValueError, KeyError, TypeError):
            return None

    def _cache_put(self, key: str, answer: VLMAnswer) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        data = {"text": answer.text, "usage": answer.usage.__dict__, "cost": answer.cost, "model": self.model}
        write_json(path, data, indent=None)  # atomic: a reader never sees half an entry


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _parse_completion(data: Any) -> tuple[str, VLMUsage]:
    """The answer text and token usage of a chat-completions response; ValueError if it is not one."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("response has no choices[0].message.content") from None
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise ValueError(f"message content is {type(content).__name__}, not text")
    usage = data.get("usage") or {}
    try:
        tokens = VLMUsage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
    except (TypeError, ValueError):
        tokens = VLMUsage()
    return content, tokens
