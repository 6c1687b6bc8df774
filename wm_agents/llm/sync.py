"""Sync wrappers over the async core: every sync call runs on one long-lived event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["run_sync"]


class _BackgroundLoop:
    """One event loop on a daemon thread that runs every sync call.

    Why not ``asyncio.run`` per call: HTTP clients (``ChatOpenAI`` shares one async httpx
    client per base URL) pool connections on the loop that opened them, and a later call on a
    new loop fails with "Event loop is closed".  One long-lived loop keeps sync use safe, both
    from plain code and from inside another running loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Any) -> Any:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="wm-agents-llm-loop", daemon=True
                )
                self._thread.start()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync call from inside the predictor's own loop: use aimagine")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


_background = _BackgroundLoop()


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, inside or outside a running loop."""
    return _background.run(coro)
