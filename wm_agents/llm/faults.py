"""Model faults as data: what went wrong with one request to the LLM, said in words.

The predictor never lets a model fault out of ``imagine``: a timeout, a connection error, a
refusal, an answer cut off by the token limit or one that is not JSON makes that *sample* fail
with a reason.  This module decides which faults are worth a retry (:func:`is_transient`), says
what an exception was (:func:`describe_fault`), and reads a JSON object out of a text answer
(:func:`parse_json_text`).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["ModelFault", "describe_fault", "is_transient", "parse_json_text", "truncate"]


class ModelFault(Exception):
    """A model fault already described in words (timeout, refusal, truncation, bad output)."""


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (the last three ``...`` when cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_transient(exc: BaseException) -> bool:
    """Connection problems, rate limits and server errors: worth a retry after a pause."""
    import httpx
    import openai

    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return False  # the per-call timeout already waited; retrying would double the wait
    transient = (
        openai.APIConnectionError,
        openai.RateLimitError,
        openai.InternalServerError,
        httpx.TransportError,
        ConnectionError,
    )
    return isinstance(exc, transient)


def describe_fault(exc: BaseException) -> str:
    """One line saying what kind of fault ``exc`` is and why (URLs redacted, at most 300
    characters)."""
    import httpx
    import openai

    if isinstance(exc, openai.LengthFinishReasonError):
        return "output cut off by the token limit (finish_reason=length)"
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return "the model refused (content filter)"
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        kind = "timeout"
    elif isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError):
        kind = "connection error"
    elif isinstance(exc, openai.APIStatusError):
        kind = f"server error {exc.status_code}"
    else:
        kind = type(exc).__name__
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in detail:
        detail = f"{detail} ({str(cause).strip().splitlines()[0]})"
    from wm_agents.llm.config import redact_urls

    return truncate(redact_urls(f"{kind}: {detail}" if detail else kind), 300)


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_json_text(text: str) -> Any:
    """The JSON object in a text answer (from its first ``{`` to its last ``}``); raises
    :class:`ModelFault` when there is none or it does not parse."""
    match = _JSON_OBJECT.search(text)
    if match is None:
        raise ModelFault(f"unparseable output (no JSON object): {truncate(text, 120)!r}")
    try:
        return json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ModelFault(f"unparseable output ({exc.msg}): {truncate(text, 120)!r}") from exc
