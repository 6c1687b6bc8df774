"""The planning graph: routing, reusable nodes in a user's graph, and the env graph end to end."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import gymnasium as gym
import numpy as np
import pytest
import torch
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from wm_agents.core import Decision, Outcome
from wm_agents.envs import GymActuator
from wm_agents.graph import (
    EnvPlanningContext,
    build_planning_graph,
    create_env_planning_graph,
    episode_config,
    make_decide_node,
    make_imagine_node,
    route_verdict,
)
from wm_agents.neural import EnsembleDynamicsModel
from wm_agents.planning import AgreementGate
from wm_agents.runner import AgentConfig, build_agent, evaluate
from wm_agents.serialization import checkpoint_serializer
from wm_agents.spaces import ActionSpec

# ---------------------------------------------------------------- routing with fake nodes


class FakeState(TypedDict, total=False):
    script: list[str]  # verdicts the decide node returns, in order
    decision: Decision | None
    trace: Annotated[list[str], operator.add]
    acts: int
    done: bool


def _trace(name: str):
    def node(state: FakeState) -> dict[str, Any]:
        return {"trace": [name]}

    return node


def fake_decide(state: FakeState) -> dict[str, Any]:
    verdict, *rest = state["script"]
    return {"script": rest, "decision": Decision(verdict=verdict), "trace": [f"decide:{verdict}"]}


def fake_act(state: FakeState) -> dict[str, Any]:
    return {"trace": ["act"], "acts": state.get("acts", 0) + 1}


def fake_learn(state: FakeState) -> dict[str, Any]:
    # Done once every scripted verdict has been used.
    return {"trace": ["learn"], "done": not state["script"]}


def fake_graph(**extra: Any) -> StateGraph:
    return build_planning_graph(
        FakeState,
        propose=_trace("propose"),
        imagine=_trace("imagine"),
        decide=fake_decide,
        act=fake_act,
        learn=fake_learn,
        **extra,
    )


def test_routing_act_lcb_replan() -> None:
    final = fake_graph().compile().invoke({"script": ["replan", "act", "lcb"], "trace": []})
    assert final["trace"] == [
        "propose",
        "imagine",
        "decide:replan",
        "propose",  # replan -> propose
        "imagine",
        "decide:act",
        "act",  # act -> act
        "learn",  # not done: back to propose
        "propose",
        "imagine",
        "decide:lcb",
        "act",  # lcb -> act
        "learn",  # done -> END
    ]
    assert final["acts"] == 2
    assert final["done"] is True


def test_start_node_runs_once() -> None:
    graph = fake_graph(start=_trace("start")).compile()
    final = graph.invoke({"script": ["act", "act"], "trace": []})
    assert final["trace"].count("start") == 1
    assert final["trace"][:2] == ["start", "propose"]
    assert final["acts"] == 2


def test_ask_without_ask_node_is_a_clear_error() -> None:
    graph = fake_graph().compile()
    with pytest.raises(ValueError, match=r"verdict 'ask' but the graph has no 'ask' node"):
        graph.invoke({"script": ["ask"], "trace": []})
    with pytest.raises(ValueError, match="pass ask=/refuse="):
        graph.invoke({"script": ["refuse"], "trace": []})


def test_ask_and_refuse_nodes() -> None:
    graph = fake_graph(ask=_trace("ask"), refuse=_trace("refuse")).compile()
    assert graph.invoke({"script": ["ask"], "trace": []})["trace"][-1] == "ask"
    final = graph.invoke({"script": ["refuse"], "trace": []})
    assert final["trace"] == ["propose", "imagine", "decide:refuse", "refuse"]
    # after_refuse="propose" lets the agent try again.
    retry = fake_graph(refuse=_trace("refuse"), after_refuse="propose").compile()
    final = retry.invoke({"script": ["refuse", "act"], "trace": []})
    assert final["trace"][3:6] == ["refuse", "propose", "imagine"]
    assert final["acts"] == 1


def test_graph_is_returned_uncompiled_and_extensible() -> None:
    graph = fake_graph()
    assert isinstance(graph, StateGraph)
    assert {"propose", "imagine", "decide", "act", "learn"} <= set(graph.nodes)


class PlainState(TypedDict, total=False):
    script: list[str]
    decision: Decision | None
    log: list[str]  # no reducer: each update replaces it
    acts: int
    done: bool


def _log(name: str):
    def node(state: PlainState) -> dict[str, Any]:
        return {"log": [*state.get("log", []), name]}

    return node


def plain_graph(**extra: Any) -> StateGraph:
    def decide(state: PlainState) -> dict[str, Any]:
        verdict, *rest = state["script"]
        log = [*state.get("log", []), f"decide:{verdict}"]
        return {"script": rest, "decision": Decision(verdict=verdict), "log": log}

    def act(state: PlainState) -> dict[str, Any]:
        return {"log": [*state["log"], "act"], "acts": state.get("acts", 0) + 1}

    def learn(state: PlainState) -> dict[str, Any]:
        return {"log": [*state["log"], "learn"], "done": not state["script"]}

    return build_planning_graph(
        PlainState,
        propose=_log("propose"),
        imagine=_log("imagine"),
        decide=decide,
        act=act,
        learn=learn,
        **extra,
    )


def test_fused_graph_runs_the_same_nodes_in_one_step_node() -> None:
    script = {"script": ["replan", "act", "lcb"], "log": []}
    unfused = plain_graph().compile().invoke(script)
    graph = plain_graph(fuse=True, start=_log("start")).compile()
    assert set(graph.get_graph().nodes) == {"__start__", "start", "step", "__end__"}
    supersteps = list(graph.stream(script, stream_mode="updates"))
    final = graph.invoke(script)
    # The same node sequence (re-plan included) and the same final state...
    assert final["log"] == ["start", *unfused["log"]]
    assert final["acts"] == unfused["acts"] == 2 and final["done"] is True
    # ... in one superstep per real step (plus the start node).
    assert [next(iter(u)) for u in supersteps] == ["start", "step", "step"]


def test_fused_graph_rejects_what_it_cannot_route() -> None:
    with pytest.raises(ValueError, match="cannot route to ask / refuse"):
        plain_graph(fuse=True, ask=_log("ask"))
    with pytest.raises(ValueError, match=r"keys \['trace'\] have reducers"):
        fake_graph(fuse=True)
    graph = plain_graph(fuse=True).compile()
    with pytest.raises(ValueError, match="which a fused graph cannot route"):
        graph.invoke({"script": ["ask"], "log": []})


def test_route_verdict() -> None:
    assert route_verdict(Decision(verdict="lcb")) == "act"
    assert route_verdict({"verdict": "replan"}) == "propose"  # a checkpoint may hold a dict
    with pytest.raises(ValueError, match="wrote no decision"):
        route_verdict(None)


# ---------------------------------------------------------------- nodes in a user's graph


class UserState(TypedDict, total=False):
    observation: list[float]
    candidates: list[list[int]]
    horizon: int
    outcomes: list[Outcome]
    decision: Decision
    replans: int


@dataclass
class UserContext:
    world_model: Any = None
    gate: Any = None


DISCRETE2 = ActionSpec.discrete(2)
OBS = [0.01, -0.02, 0.03, 0.0]
CANDIDATES = [[0, 0, 1], [1, 1, 0], [1, 0, 1]]


@pytest.fixture(scope="module")
def small_model() -> EnsembleDynamicsModel:
    return EnsembleDynamicsModel(4, DISCRETE2, ensemble_size=3, hidden=16, layers=2, seed=0)


def user_graph(imagine, decide, context_schema=None):
    g = StateGraph(UserState, context_schema=context_schema)
    g.add_node("imagine", imagine)
    g.add_node("decide", decide)
    g.add_edge(START, "imagine")
    g.add_edge("imagine", "decide")
    g.add_edge("decide", END)
    return g.compile()


def test_nodes_bound_at_build_time(small_model) -> None:
    gate = AgreementGate(agreement_threshold=0.0, action_spec=DISCRETE2)
    graph = user_graph(
        make_imagine_node(small_model, horizon="horizon"),
        make_decide_node(gate),
    )
    final = graph.invoke({"observation": OBS, "candidates": CANDIDATES, "horizon": 3})
    expected = small_model.imagine(OBS, CANDIDATES, horizon=3)
    assert final["outcomes"] == expected
    assert final["decision"] == gate.decide(expected)
    assert final["decision"].verdict == "act"
    assert final["replans"] == 0


def test_nodes_read_heavy_objects_from_context(small_model) -> None:
    gate = AgreementGate(agreement_threshold=1.0, max_replans=1, action_spec=DISCRETE2)
    graph = user_graph(make_imagine_node(horizon=2), make_decide_node(), context_schema=UserContext)
    final = graph.invoke(
        {"observation": OBS, "candidates": CANDIDATES},
        context=UserContext(world_model=small_model, gate=gate),
    )
    expected = small_model.imagine(OBS, CANDIDATES, horizon=2)
    assert final["outcomes"] == expected
    decision = gate.decide(expected)
    assert final["decision"] == decision
    # The replans counter goes up exactly on a replan verdict.
    assert final["replans"] == (1 if decision.verdict == "replan" else 0)


def test_decide_node_counts_replans() -> None:
    outs = [
        Outcome(candidate=[[0.0]], value=1.0, uncertainty=5.0, risk=0.0, member_values=[10, -8]),
        Outcome(candidate=[[1.0]], value=0.0, uncertainty=0.0, risk=0.0, member_values=[0, 0]),
    ]
    decide = make_decide_node(AgreementGate(max_replans=1, action_spec=DISCRETE2))
    first = decide({"outcomes": outs}, None)
    assert first["decision"].verdict == "replan" and first["replans"] == 1
    second = decide({"outcomes": outs, "replans": 1}, None)
    assert second["decision"].verdict == "lcb" and second["replans"] == 0
    untracked = make_decide_node(AgreementGate(action_spec=DISCRETE2), replans_key=None)
    assert set(untracked({"outcomes": outs}, None)) == {"decision"}
    # gate_args: an extra for a user's own gate that wants more than the outcomes.
    seen: list[Any] = []

    class SpecGate:
        def decide(self, outcomes, spec, *, replans: int = 0) -> Decision:
            seen.append((spec, replans))
            return AgreementGate(action_spec=spec).decide(outcomes, replans=replans)

    assert make_decide_node(SpecGate(), gate_args=(DISCRETE2,))({"outcomes": outs}, None)
    assert seen == [(DISCRETE2, 0)]


def test_missing_world_model_is_a_clear_error() -> None:
    graph = user_graph(
        make_imagine_node(), make_decide_node(AgreementGate()), context_schema=UserContext
    )
    with pytest.raises(ValueError, match=r"imagine node: no world_model given.*world_model=\.\.\."):
        graph.invoke({"observation": OBS, "candidates": CANDIDATES}, context=UserContext())
    with pytest.raises(ValueError, match="no world_model given"):
        user_graph(make_imagine_node(), make_decide_node(AgreementGate())).invoke(
            {"observation": OBS, "candidates": CANDIDATES}
        )


def test_missing_gate_and_candidates_are_clear_errors(small_model) -> None:
    with pytest.raises(ValueError, match="decide node: no gate given"):
        user_graph(make_imagine_node(small_model), make_decide_node()).invoke(
            {"observation": OBS, "candidates": CANDIDATES}
        )
    with pytest.raises(ValueError, match="state has no 'candidates' to imagine"):
        user_graph(make_imagine_node(small_model), make_decide_node(AgreementGate())).invoke(
            {"observation": OBS}
        )


# ---------------------------------------------------------------- the env planning graph


class NeverTerminates(gym.Wrapper):
    """CartPole whose episodes only end by the time limit, reward 1 per step.

    Why: the test is about the graph surviving a long episode, not about the agent balancing
    (an untrained model drops the pole within a few dozen steps).
    """

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        return obs, 1.0, False, truncated, info


EPISODE = 300
CHEAP = AgentConfig(
    max_steps=400,
    warmup_steps=200,
    ensemble_size=3,
    hidden=32,
    layers=2,
    population=50,
    elites=5,
    horizon=10,
    iterations=2,
)


@pytest.fixture
def long_episode_agent():
    import warnings

    # Stepping CartPole past its own termination warns once; expected here.
    warnings.filterwarnings("ignore", message=".*already returned terminated = True.*")
    actuator = GymActuator(NeverTerminates(gym.make("CartPole-v1", max_episode_steps=EPISODE)))
    model, controller = build_agent(actuator, CHEAP, seed=0)
    yield actuator, model, controller
    actuator.close()


def test_env_graph_runs_a_long_episode(long_episode_agent) -> None:
    actuator, _, controller = long_episode_agent
    assert actuator.max_episode_steps == EPISODE
    graph = create_env_planning_graph().compile()
    returns, records = evaluate(graph, actuator, controller, 1, seed=0, max_replans=1)
    assert returns == [float(EPISODE)]
    assert len(records) == EPISODE
    assert [r.step for r in records] == list(range(1, EPISODE + 1))
    assert {r.verdict for r in records} <= {"act", "lcb"}
    assert all(math.isfinite(r.prediction_error) for r in records)


def test_fused_env_graph_plays_the_same_episode(long_episode_agent) -> None:
    actuator, _, controller = long_episode_agent
    runs = {}
    for fuse in (False, True):
        graph = create_env_planning_graph(fuse=fuse).compile()
        controller.reset()
        controller.planner.generator.manual_seed(3)  # the same planner randomness for both
        returns, records = evaluate(graph, actuator, controller, 1, seed=3, max_replans=1)
        runs[fuse] = (returns, [(r.action, r.verdict, r.predicted_value) for r in records])
    assert runs[True] == runs[False]
    assert runs[True][0] == [float(EPISODE)]


def test_small_recursion_limit_would_stop_the_episode(long_episode_agent) -> None:
    """Why episode_config exists: every node counts, so a limit of 25 (LangGraph's classic
    default) ends an episode after ~5 real steps."""
    actuator, _, controller = long_episode_agent
    graph = create_env_planning_graph().compile()
    ctx = EnvPlanningContext(actuator=actuator, controller=controller)
    with pytest.raises(GraphRecursionError):
        graph.invoke({"seed": 0}, context=ctx, config={"recursion_limit": 25})
    assert 3 <= len(ctx.records) <= 5
    assert episode_config(500, 1)["recursion_limit"] == 8 * 500 + 10
    assert episode_config(10, 0, configurable={"thread_id": "x"}) == {
        "configurable": {"thread_id": "x"},
        "recursion_limit": 60,
    }


HEAVY = (torch.Tensor, np.ndarray, torch.nn.Module, gym.Env, GymActuator)


def assert_light(value: Any, path: str = "state") -> None:
    """Only JSON-like values and the frozen contract types may live in checkpointed state."""
    assert not isinstance(value, HEAVY), f"{path} holds a {type(value).__name__}"
    if isinstance(value, dict):
        for k, v in value.items():
            assert_light(v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            assert_light(v, f"{path}[{i}]")
    elif isinstance(value, BaseModel):
        assert isinstance(value, Outcome | Decision), f"{path} is a {type(value).__name__}"
        assert_light(value.model_dump(), path)
    else:
        assert value is None or isinstance(value, bool | int | float | str), (
            f"{path} is a {type(value).__name__}"
        )


def test_env_graph_checkpoints_are_small_and_serializable(long_episode_agent) -> None:
    actuator, _, controller = long_episode_agent
    # The library's serializer allow-lists the contract types, so they come back as models
    # (LangGraph warns about, and in strict mode blocks, unregistered types).
    serde = checkpoint_serializer()
    saver = InMemorySaver(serde=serde)
    graph = create_env_planning_graph().compile(checkpointer=saver)
    config = episode_config(EPISODE, 1, configurable={"thread_id": "episode-0"})
    ctx = EnvPlanningContext(actuator=actuator, controller=controller)
    final = graph.invoke({"seed": 0}, context=ctx, config=config)
    assert final["step"] == EPISODE
    assert final["episode_return"] == float(EPISODE)
    assert final["done"] is True

    snapshot = graph.get_state(config)
    values = snapshot.values
    assert values["step"] == EPISODE
    assert isinstance(values["decision"], Decision)
    assert all(isinstance(o, Outcome) for o in values["outcomes"])
    assert_light(values)
    # Every channel is small: the whole state is a few KB, independent of episode length.
    sizes = {k: len(serde.dumps_typed(v)[1]) for k, v in values.items()}
    assert sum(sizes.values()) < 20_000, sizes
    # The heavy objects stayed in the context, which is not checkpointed.
    assert len(ctx.records) == EPISODE
    history = list(graph.get_state_history(config))
    assert len(history) >= 5 * EPISODE
    for snap in history[:: len(history) // 10]:
        assert_light(snap.values)


class ReplanOnceGate:
    """Asks for one re-plan on every step (3 more nodes per step), then defers to the gate."""

    def __init__(self) -> None:
        self.inner = AgreementGate(action_spec=ActionSpec.discrete(2))
        self.replans_asked = 0

    def decide(self, outcomes, *, replans: int = 0) -> Decision:
        if replans == 0:
            self.replans_asked += 1
            return Decision(verdict="replan", reason="test", n_candidates=len(outcomes))
        return self.inner.decide(outcomes, replans=replans)


def test_episode_config_covers_a_replan_on_every_step() -> None:
    """The worst case episode_config(steps, max_replans=1) is sized for: 8 nodes per step."""
    import warnings

    warnings.filterwarnings("ignore", message=".*already returned terminated = True.*")
    steps = 100
    actuator = GymActuator(NeverTerminates(gym.make("CartPole-v1", max_episode_steps=steps)))
    _, controller = build_agent(actuator, CHEAP, seed=0)
    controller.gate = ReplanOnceGate()
    graph = create_env_planning_graph().compile()
    ctx = EnvPlanningContext(actuator=actuator, controller=controller)
    final = graph.invoke({"seed": 0}, context=ctx, config=episode_config(steps, 1))
    assert final["step"] == steps
    assert controller.gate.replans_asked == steps
    # One node fewer per step and the same episode no longer fits.
    ctx = EnvPlanningContext(actuator=actuator, controller=controller)
    with pytest.raises(GraphRecursionError):
        graph.invoke({"seed": 0}, context=ctx, config={"recursion_limit": 7 * steps})
    actuator.close()
