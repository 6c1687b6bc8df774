"""Which LLM the predictor talks to: environment variables, or the embedded offline model.

* ``OPENAI_BASE_URL``: an OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI itself).
* ``OPENAI_API_KEY``: its key (local servers accept any; a placeholder is sent when unset).
* ``WM_AGENTS_LLM_MODEL``: the model name to request.

When neither ``OPENAI_BASE_URL`` nor ``OPENAI_API_KEY`` is set, the embedded model
(SmolLM2-135M served by :class:`~wm_agents.llm.server.EmbeddedLLMServer`) is used.  With only
``OPENAI_API_KEY`` set, OpenAI's own endpoint is used with ``WM_AGENTS_LLM_MODEL`` (default
``gpt-4o-mini``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from wm_agents.llm.server import EMBEDDED_MODEL_ALIAS, EmbeddedLLMServer

__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "LLMSettings",
    "chat_model_from_settings",
    "loop_safe_async_client",
    "make_chat_openai",
    "open_chat_model",
    "redact_url",
    "redact_urls",
    "resolve_llm_settings",
]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
"""Model requested from OpenAI when only ``OPENAI_API_KEY`` is set."""

_PLACEHOLDER_KEY = "sk-no-key-needed"


@dataclass(frozen=True)
class LLMSettings:
    """Resolved connection settings.

    Attributes:
        embedded: True when no ``OPENAI_*`` variable is set and the embedded model is used.
        base_url: the OpenAI-compatible base URL (None: OpenAI's default; or, when embedded,
            known only once the server has started).
        api_key: the key to send (a placeholder for local servers).
        model: the model name to request.
    """

    embedded: bool
    base_url: str | None
    api_key: str
    model: str

    def describe(self) -> str:
        """One line for logs and the CLI, never showing the key or credentials in the URL."""
        if self.embedded:
            return f"embedded {self.model} (offline)"
        return f"{self.model} at {redact_url(self.base_url or 'https://api.openai.com/v1')}"


_REDACTED = "***"
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without secrets: the user info (``user:password@``) and every query value
    are replaced by ``***`` (query names stay, so a reader still sees which were set).

    Query values are all redacted, not only ones named like keys: servers take tokens under
    any name (``?key=``, ``?sig=``, ``?code=``), and a URL shown to a person never needs them.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{name}={_REDACTED}" for name, _ in pairs) or _REDACTED
    # The fragment goes too: OAuth-style flows put tokens there.
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` (error messages of
    HTTP clients may quote the URL they failed on)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def resolve_llm_settings(env: Mapping[str, str] | None = None) -> LLMSettings:
    """Read ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and ``WM_AGENTS_LLM_MODEL`` (empty = unset)."""
    env = os.environ if env is None else env
    base_url = (env.get("OPENAI_BASE_URL") or "").strip() or None
    api_key = (env.get("OPENAI_API_KEY") or "").strip() or None
    model = (env.get("WM_AGENTS_LLM_MODEL") or "").strip() or None
    if base_url is None and api_key is None:
        return LLMSettings(
            embedded=True, base_url=None, api_key=_PLACEHOLDER_KEY, model=EMBEDDED_MODEL_ALIAS
        )
    if model is None:
        # A local server usually serves one model and ignores the name; OpenAI needs a real one.
        model = DEFAULT_OPENAI_MODEL if base_url is None else "default"
    return LLMSettings(
        embedded=False, base_url=base_url, api_key=api_key or _PLACEHOLDER_KEY, model=model
    )


def loop_safe_async_client(timeout_s: float = 60.0) -> Any:
    """An ``httpx.AsyncClient`` that keeps no idle connections.

    Why: a pooled connection belongs to the event loop that opened it; reusing it from another
    loop (``asyncio.run`` twice, a worker thread) fails with "Event loop is closed".  Without
    keep-alive every request opens its own connection: negligible on a local server, one TLS
    handshake per call on a remote one.
    """
    import httpx

    return httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_keepalive_connections=0))


def make_chat_openai(
    *,
    base_url: str | None,
    api_key: str,
    model: str,
    timeout: float = 60.0,
    max_retries: int = 0,
    **kwargs: Any,
) -> Any:
    """A ``ChatOpenAI`` with a loop-safe async client (see :func:`loop_safe_async_client`)."""
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("http_async_client", loop_safe_async_client(timeout))
    return ChatOpenAI(
        base_url=base_url,
        api_key=api_key,
        model=model,
        timeout=timeout,
        max_retries=max_retries,
        **kwargs,
    )


def chat_model_from_settings(
    settings: LLMSettings, *, timeout_s: float = 60.0, max_retries: int = 0
) -> Any:
    """A ``ChatOpenAI`` for non-embedded settings (the embedded one needs a running server)."""
    if settings.embedded:
        raise ValueError("the embedded model needs a server: use open_chat_model()")
    return make_chat_openai(
        base_url=settings.base_url,
        api_key=settings.api_key,
        model=settings.model,
        timeout=timeout_s,
        max_retries=max_retries,
    )


@contextmanager
def open_chat_model(
    settings: LLMSettings | None = None,
    *,
    timeout_s: float = 60.0,
    max_retries: int = 0,
    server_options: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Yield a ``ChatOpenAI`` for the configured LLM, starting the embedded server if needed.

    The embedded server (if any) is stopped by PID when the ``with`` block ends.

    Args:
        settings: defaults to :func:`resolve_llm_settings` of the environment.
        timeout_s: HTTP timeout of the client.
        max_retries: client-side retries; 0 by default because the predictor retries itself
            with bounded backoff.
        server_options: keyword arguments for :class:`EmbeddedLLMServer` (e.g. ``parallel``).
    """
    settings = settings or resolve_llm_settings()
    if not settings.embedded:
        yield chat_model_from_settings(settings, timeout_s=timeout_s, max_retries=max_retries)
        return
    with EmbeddedLLMServer(**dict(server_options or {})) as server:
        yield server.chat_model(timeout=timeout_s, max_retries=max_retries)
