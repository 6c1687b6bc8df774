"""At-most-once tool execution: a write-ahead record of every real tool call, in the Store.

A process can die in the middle of a tool call, after the tool's side effect and before the
graph's checkpoint.  On resume LangGraph runs the step again, and the call with it: a wipe
would run twice, and an approval given once would be reused for the second run.  So every
real call is bracketed by two writes to the graph's Store (the same SQLite file as the
checkpoints in ``wm-agents tools``):

* before executing: an **intent** (the call, the time, the PID);
* after: the **result** (text and success).

On resume, the record of the same call decides (:func:`recovery`):

* no record: the call never started; run it;
* a result: the call finished but its checkpoint was lost; **replay** the recorded result
  without running the tool again (exactly once);
* an intent without a result: it may or may not have run.  A tool declared ``idempotent`` or
  ``read_only`` runs again (harmless by its own declaration); any other tool goes to a person
  ("may already have run"), who approves a second run or rejects it.

Without a Store there is nowhere durable to write, and the guarantee is only what the
checkpointer gives (a finished step is never re-run).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from wm_agents.tools.gate import call_text
from wm_agents.tools.hints import ToolHints

__all__ = [
    "INTENT_NAMESPACE",
    "Intent",
    "IntentLog",
    "Recovery",
    "not_rerun_text",
    "recovery",
    "rerun_reason",
    "store_scope",
]

logger = logging.getLogger(__name__)

INTENT_NAMESPACE = ("wm_agents", "tool_intents")
"""Store namespace prefix of intent records (one namespace per run: ``+ (scope,)``)."""

RESULT_LIMIT = 20_000
"""Characters of a result kept for replay."""

Recovery = Literal["run", "replay", "ask"]


class Intent(BaseModel):
    """The record of one real tool call.

    Attributes:
        call: ``{"name", "args", "id"}`` as executed.
        started_at: wall-clock time the call was about to run; ``pid``: the process.
        finished_at, result, success: set once the tool returned (or raised).
    """

    model_config = ConfigDict(frozen=True)

    call: dict[str, Any]
    started_at: float
    pid: int
    finished_at: float | None = None
    result: str | None = None
    success: bool | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def describe(self) -> str:
        """``started <time> by PID <pid>`` for messages to a person."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"started {when} by PID {self.pid}"


def recovery(intent: Intent | None, hints: ToolHints) -> Recovery:
    """What to do with a call given its record (see the module docstring)."""
    if intent is None:
        return "run"
    if intent.finished:
        return "replay"
    if hints.idempotent or hints.read_only:
        return "run"
    return "ask"


def rerun_reason(call: dict[str, Any], intent: Intent) -> str:
    """What a person is told before a call that may already have run is run again."""
    return (
        f"{call_text(call)} may already have run: it was {intent.describe()}, and no result "
        "was recorded (the process stopped during the call). Running it again may repeat its "
        "effect."
    )


def not_rerun_text(call: dict[str, Any], message: str = "") -> str:
    """The agent's answer when a person declines to run such a call again."""
    text = f"{call_text(call)} was not run again (it may have run once)."
    return text + (f" Reason: {message}" if message else "")


def store_scope(thread_id: Any) -> str:
    """A Store namespace label for a run id (labels may not contain ``.``)."""
    return str(thread_id or "default").replace(".", "_") or "default"


class IntentLog:
    """Intent records of one run in a LangGraph ``BaseStore``.

    Args:
        store: the graph's Store (``runtime.store``).
        scope: the run (thread id), see :func:`store_scope`.
    """

    def __init__(self, store: Any, scope: str) -> None:
        self.store = store
        self.namespace = (*INTENT_NAMESPACE, store_scope(scope))

    @staticmethod
    def key(call: dict[str, Any], step: int | None = None) -> str:
        """The record key of a call: its id, prefixed by the decision number when known."""
        cid = str(call.get("id") or f"{call.get('name')}")
        return cid if step is None else f"{step:05d}-{cid}"

    def get(self, key: str) -> Intent | None:
        """The record for ``key``, or None.  A store that fails to read counts as "no record"
        only after logging: the caller then runs the call as it would without a Store."""
        try:
            item = self.store.get(self.namespace, key)
        except Exception:
            logger.exception("reading the intent record %s failed", key)
            return None
        return Intent.model_validate(item.value) if item is not None else None

    def start(self, key: str, call: dict[str, Any]) -> None:
        """Write the intent (before the tool runs)."""
        intent = Intent(call=dict(call), started_at=time.time(), pid=os.getpid())
        self.store.put(self.namespace, key, intent.model_dump(mode="json"), index=False)

    def finish(self, key: str, call: dict[str, Any], result: str, success: bool) -> None:
        """Write the result (after the tool returned or raised)."""
        old = self.get(key)
        intent = Intent(
            call=dict(call),
            started_at=old.started_at if old else time.time(),
            pid=old.pid if old else os.getpid(),
            finished_at=time.time(),
            result=result[:RESULT_LIMIT],
            success=bool(success),
        )
        try:
            self.store.put(self.namespace, key, intent.model_dump(mode="json"), index=False)
        except Exception:  # the tool already ran: losing the record must not lose the result
            logger.exception("recording the result of %s failed", key)
