"""The graphs that langgraph.json names (graphs/*.py), invoked the way the LangGraph server
invokes them: with a JSON (dict) context, never None.  And the JSON context itself."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from wm_agents.core import Decision
from wm_agents.graph import build_planning_graph
from wm_agents.graph.json_context import json_context_fields, json_context_schema
from wm_agents.serialization import checkpoint_serializer
from wm_agents.server import process_scratch

ROOT = Path(__file__).resolve().parents[1]


def load_graph_module(name: str) -> Any:
    path = ROOT / "graphs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"studio_graph_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_langgraph_json_names_the_graph_modules():
    for name in ("langgraph.json", "langgraph.postgres.json"):
        config = json.loads((ROOT / name).read_text())
        assert config["graphs"] == {
            "cartpole": "./graphs/cartpole.py:graph",
            "tool_agent": "./graphs/tool_agent.py:graph",
        }
    assert json.loads((ROOT / "langgraph.json").read_text())["checkpointer"] == {
        "path": "wm_agents.server.sqlite_checkpointer"
    }


# ------------------------------------------------------------------ the graphs in graphs/*.py


@pytest.fixture(scope="module")
def cartpole() -> Any:
    return load_graph_module("cartpole")


def test_cartpole_runs_with_an_empty_json_context(cartpole):
    """The server's ``context={}`` means "the graph's default" (it failed with a TypeError from
    ``EnvPlanningContext(**{})`` before the first node)."""
    out = cartpole.graph.invoke({"seed": 0}, context={"max_steps": 3})
    assert out["step"] == 3 and out["done"] is True
    out = cartpole.graph.invoke({"seed": 0}, context={})
    assert out["done"] is True and out["step"] > 3  # a whole episode
    assert out["episode_return"] == float(out["step"])


def test_cartpole_declares_its_json_context_keys(cartpole):
    schema = cartpole.graph.get_context_jsonschema()
    assert set(schema["properties"]) == {"max_steps"}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"actuator": "gym"}, r"context keys \['actuator'\] are not accepted.*\['max_steps'\]"),
        ({"max_steps": "many"}, "invalid context"),
    ],
)
def test_cartpole_rejects_a_json_context_it_cannot_use(cartpole, context, message):
    with pytest.raises(ValueError, match=message):
        cartpole.graph.invoke({"seed": 0}, context=context)


@pytest.fixture
def tool_agent(tmp_path, monkeypatch) -> Any:
    monkeypatch.setenv("WM_AGENTS_SANDBOX", str(tmp_path / "sandbox"))
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "WM_AGENTS_LLM_MODEL"):
        monkeypatch.delenv(key, raising=False)  # the demo plan, simulated: no LLM starts
    module = load_graph_module("tool_agent")
    return module.graph.copy(update={"checkpointer": InMemorySaver(serde=checkpoint_serializer())})


def test_tool_agent_runs_with_a_json_context_until_review(tool_agent, tmp_path):
    config = {"configurable": {"thread_id": "t1"}}
    out = tool_agent.invoke({"task": "Tidy the sandbox"}, config, context={})
    (ask,) = out["__interrupt__"]
    assert ask.value["tool_call"]["name"] == "wipe_directory"
    assert (tmp_path / "sandbox" / "notes.txt").exists()
    out = tool_agent.invoke(Command(resume={"type": "approve"}), config, context={})
    assert out["done"] is True and "__interrupt__" not in out
    assert not (tmp_path / "sandbox" / "notes.txt").exists()  # the approved wipe ran
    assert set(tool_agent.get_context_jsonschema()["properties"]) == {
        "n_candidates",
        "max_steps",
        "situation",
    }


def test_tool_agent_json_context_sets_fields_of_the_default(tool_agent):
    out = tool_agent.invoke(
        {"task": "Tidy the sandbox"},
        {"configurable": {"thread_id": "t2"}},
        context={"max_steps": 1},
    )
    assert out["answer"] == "Stopped after 1 decisions (max_steps=1)."


# ------------------------------------------------------------------------ the JSON context


@dataclass
class _Context:
    model: Any
    limit: int = 2
    label: str | None = None
    ratio: float = 0.5
    items: list[int] = field(default_factory=list)
    hook: Any = None


class _EchoState(TypedDict, total=False):
    decision: Decision
    done: bool
    seen: Any


def _echo_graph(default_context: Any) -> Any:
    """One pass propose -> imagine -> decide (act) -> act -> learn (done); learn keeps the
    context it ran with."""

    def node(state: _EchoState, runtime: Any) -> dict:
        return {}

    def decide(state: _EchoState, runtime: Any) -> dict:
        return {"decision": Decision(verdict="act")}

    def learn(state: _EchoState, runtime: Any) -> dict:
        return {"seen": runtime.context, "done": True}

    return build_planning_graph(
        _EchoState,
        context_schema=_Context,
        propose=node,
        imagine=node,
        decide=decide,
        act=node,
        learn=learn,
        default_context=default_context,
    )


def test_json_context_fields_are_the_defaulted_json_scalars():
    assert json_context_fields(_Context) == {"limit": int, "label": str | None, "ratio": float}
    assert json_context_schema(_Context).__optional_keys__ == {"limit", "label", "ratio"}
    with pytest.raises(TypeError, match="not a dataclass"):
        json_context_fields(dict)


def test_default_context_is_built_once_and_fields_replaced_per_run():
    built: list[_Context] = []

    def make() -> _Context:
        built.append(_Context(model="heavy"))
        return built[-1]

    graph = _echo_graph(make).compile()
    assert graph.invoke({}, context={})["seen"] is built[0]
    seen = graph.invoke({}, context={"limit": 7, "label": None})["seen"]
    assert (seen.limit, seen.model) == (7, "heavy")
    assert built[0].limit == 2  # the default itself is not changed
    assert graph.invoke({}, context=None)["seen"] is built[0]
    assert len(built) == 1
    mine = _Context(model="mine")
    assert graph.invoke({}, context=mine)["seen"] is mine


def test_without_a_default_context_the_dataclass_schema_stays():
    graph = _echo_graph(None)
    assert graph.context_schema is _Context
    with pytest.raises(ValueError, match="this graph needs"):
        graph.compile().invoke({}, context=None)


def test_process_scratch_removes_folders_of_dead_processes(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (tmp_path / dead.stdout.strip()).mkdir()
    (tmp_path / dead.stdout.strip() / "copy.txt").write_text("left by a killed server")
    (tmp_path / "1").mkdir()  # PID 1 is alive
    (tmp_path / "notes").mkdir()  # not a process folder: kept
    mine = process_scratch(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["1", "notes", mine.name])


def test_server_settings_come_from_the_environment(tmp_path, monkeypatch):
    from wm_agents.server import postgres_uri, sqlite_path

    monkeypatch.setenv("WM_AGENTS_SERVER_DB", str(tmp_path / "db" / "runs.sqlite"))
    assert sqlite_path() == tmp_path / "db" / "runs.sqlite" and (tmp_path / "db").is_dir()
    monkeypatch.setenv("WM_AGENTS_POSTGRES_URI", " postgresql://u@127.0.0.1:5/d ")
    assert postgres_uri() == "postgresql://u@127.0.0.1:5/d"
    monkeypatch.delenv("WM_AGENTS_POSTGRES_URI")
    with pytest.raises(ValueError, match=r"langgraph\.postgres\.json needs WM_AGENTS_POSTGRES_URI"):
        postgres_uri()
