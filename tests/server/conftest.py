"""Fixtures starting the LangGraph server (``langgraph dev``) and a throwaway PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.postgres import LocalPostgres, postgres_bin
from tests.server.server_process import LangGraphServer, free_port, server_config

CONFIGS = {"sqlite": "langgraph.json", "postgres": "langgraph.postgres.json"}


def make_server(workdir: Path, backend: str, postgres_uri: str | None = None) -> LangGraphServer:
    """A server for ``backend`` running in ``workdir``: its own sandbox, SQLite file and temp
    folder there (nothing of it lands in the project or the system temp folder)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    server_config(CONFIGS[backend], workdir)
    env = {"TMPDIR": str(workdir / "tmp")}
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "WM_AGENTS_LLM_MODEL", "WM_AGENTS_SANDBOX"):
        env[key] = ""  # the demo plan, simulated: no LLM starts
    if postgres_uri is not None:
        env["WM_AGENTS_POSTGRES_URI"] = postgres_uri
    return LangGraphServer(workdir, env=env)


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A local PostgreSQL for the session; skipped outside CI when PostgreSQL is not installed
    (``.ci/run`` installs it)."""
    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (initdb, postgres) is not installed; .ci/run installs it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); CI installs it")
    server = LocalPostgres(bindir, free_port())
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory) -> Iterator[LangGraphServer]:
    """One server with the project's langgraph.json, shared by a module's tests."""
    server = make_server(tmp_path_factory.mktemp("langgraph-sqlite"), "sqlite")
    server.start()
    try:
        yield server
    finally:
        server.stop()
