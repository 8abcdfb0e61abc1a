"""The one OpenAI-compatible chat client of the harness: rate limit, retries, and a reply cache.

Every chat-model judge (pairwise preference :class:`harness.judging.pairwise.ChatPairwiseJudge`,
TruthfulQA :class:`harness.judging.truthfulness.ChatTruthJudge`, closed-domain hallucination
:class:`harness.judging.hallucination.ChatHallucinationJudge`) talks to a :class:`ChatCompleter`:
this :class:`ChatClient` for real endpoints (OpenAI, vLLM ``serve``, llama.cpp server, any
``/v1/chat/completions`` server), or a fake in tests.

Replies are cached on disk by request (endpoint, model, sampling settings, messages), one file per
request written atomically, so a re-run of an evaluation asks nothing twice and two runs sharing the
cache never corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Protocol


class ChatJudgeError(RuntimeError):
    """A chat judge could not give a verdict (unparseable answer, empty reply); names the item."""


class ChatCompleter(Protocol):
    """Anything that answers a chat: ``complete(messages) -> reply text``."""

    def complete(self, messages: list[dict[str, str]]) -> str: ...


NO_KEY = "none"  # api_key value for local servers that need no key


class ChatClient:
    """A rate-limited, cached chat-completions client for any OpenAI-compatible endpoint.

    ``base_url`` e.g. ``"https://api.openai.com/v1"`` or ``"http://localhost:8000/v1"``; ``model`` the
    served model name. The key is ``api_key`` if given, else the environment variable
    ``api_key_env``. A local server that needs no key: pass ``api_key="none"`` (sent as a dummy
    bearer token, since ``openai.OpenAI`` requires one). ``temperature`` and ``max_tokens`` go into
    every request; ``timeout`` (seconds per request) and ``max_retries`` (retries of 408/409/429/5xx
    and connection errors, exponential backoff honouring ``Retry-After``) are passed to
    ``openai.OpenAI``. ``requests_per_second`` (None = unlimited) enforces a minimum interval of
    ``1 / requests_per_second`` seconds between the starts of consecutive calls. ``cache_dir`` (None =
    no cache) keeps every reply as ``<sha256 of the request>.json``; ``hits`` / ``misses`` count them.

    Raises ``ValueError`` when no key is found (naming the variable) or an argument is out of range.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0,
                 max_tokens: int = 16, timeout: float = 60.0, max_retries: int = 3,
                 requests_per_second: float | None = None, api_key: str | None = None,
                 cache_dir: str | Path | None = None) -> None:
        import openai

        key = api_key if api_key is not None else os.environ.get(api_key_env)
        if not key:
            raise ValueError(f"ChatClient: no API key for {base_url}: set ${api_key_env}, or pass api_key='{NO_KEY}' "
                             "for a local server that needs none")
        if requests_per_second is not None and requests_per_second <= 0:
            raise ValueError(f"ChatClient: requests_per_second must be > 0 or None, got {requests_per_second}")
        if max_tokens < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError(f"ChatClient: need max_tokens >= 1, max_retries >= 0, timeout > 0 "
                             f"(got {max_tokens}, {max_retries}, {timeout})")
        self.base_url, self.model, self.temperature, self.max_tokens = base_url, model, temperature, max_tokens
        self.min_interval = 0.0 if requests_per_second is None else 1.0 / requests_per_second
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.hits = self.misses = 0
        self._last_start: float | None = None
        self._client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=max_retries, timeout=timeout)

    def _wait_turn(self) -> None:
        now = time.monotonic()
        if self._last_start is not None and now - self._last_start < self.min_interval:
            time.sleep(self.min_interval - (now - self._last_start))
        self._last_start = time.monotonic()

    def cache_key(self, messages: list[dict[str, str]]) -> str:
        """sha256 of everything that decides the reply: endpoint, model, temperature, max tokens, messages."""
        blob = json.dumps([self.base_url, self.model, self.temperature, self.max_tokens, messages], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The assistant's reply text to ``messages`` (``[{"role": ..., "content": ...}, ...]``), from the
        cache when it holds this request.

        Raises ``ValueError`` on malformed messages, ``ChatJudgeError`` when the reply has no text,
        and ``openai.APIError`` subclasses when the endpoint still fails after the retries.
        """
        if not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                   and isinstance(m.get("content"), str) for m in messages):
            raise ValueError("ChatClient.complete: messages must be a non-empty list of {'role': str, 'content': str}")
        path = self.cache_dir / f"{self.cache_key(messages)}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            self.hits += 1
            return json.loads(path.read_text(encoding="utf-8"))["reply"]
        self._wait_turn()
        resp = self._client.chat.completions.create(model=self.model, messages=messages,  # type: ignore[arg-type]
                                                    temperature=self.temperature, max_tokens=self.max_tokens)
        text = resp.choices[0].message.content if resp.choices else None
        if text is None:
            raise ChatJudgeError(f"ChatClient: {self.model} returned no message content")
        self.misses += 1
        if path is not None:
            from harness.io import write_json

            write_json(path, {"model": self.model, "messages": messages, "reply": text})
        return text


def client_from_config(cfg, max_tokens: int = 16, default_cache_dir: str | Path | None = None) -> ChatClient:
    """A :class:`ChatClient` from ``eval.judges.chat`` (:class:`harness.config.ChatJudgeConfig`), its
    replies cached in ``cfg.cache_dir`` or else ``default_cache_dir``. Raises ``ValueError`` when the chat
    judge is off or ``base_url`` / ``model`` is unset."""
    if not cfg.enabled:
        raise ValueError("a chat judge or scorer is configured, but eval.judges.chat.enabled is false: enable it "
                         "(judges@eval.judges=chat, or eval.judges.chat.enabled=true with base_url and model)")
    if not cfg.base_url or not cfg.model:
        raise ValueError("eval.judges.chat needs base_url and model (e.g. judges@eval.judges=chat)")
    return ChatClient(cfg.base_url, cfg.model, api_key_env=cfg.api_key_env, api_key=None if cfg.needs_key else NO_KEY,
                      timeout=cfg.timeout_s, max_retries=cfg.max_retries,
                      requests_per_second=cfg.requests_per_second, max_tokens=max_tokens, cache_dir=cfg.cache_dir or default_cache_dir)
