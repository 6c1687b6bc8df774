"""The LLM env world model: rollouts read each predicted state back, candidates are imagined
concurrently, values and termination come from the answers, and bad answers or a dead model
make an unknown outcome instead of a crash."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from wm_agents.llm.env_model import EnvTransition, LLMDynamicsModel, step_grammar
from wm_agents.testing import Reply, ScriptedChatModel

NAMES = ["position", "velocity"]
ACTIONS = ["push left", "push right"]
STATE = re.compile(r"state \[([^\]]*)\] action (\d) ->\s*$")


def physics(call):
    """A 'model' that knows the toy physics: velocity += +-1, position += velocity; the
    episode ends past |position| > 3."""
    m = STATE.search(call.user)
    x, v = (float(s) for s in m.group(1).split(","))
    v += 1.0 if m.group(2) == "1" else -1.0
    x += v
    return Reply(
        json.dumps({"next": [x, v], "reward": 1.0, "terminated": abs(x) > 3}, separators=(",", ":"))
    )


def make(script, **kw):
    chat = ScriptedChatModel(script=script)
    return chat, LLMDynamicsModel(
        chat, description="A toy cart.", obs_names=NAMES, action_names=ACTIONS, **kw
    )


def test_rollouts_follow_the_predicted_states_and_stop_at_termination():
    chat, model = make(physics)
    right, left, wobble = model.imagine([0.0, 0.0], [[1, 1, 1], [0, 0, 0], [1, 0, 1]], horizon=3)
    # right: v 1,2,3  x 1,3,6 -> ends at step 2 (|x| > 3): 3 rewards, terminated at t=2
    assert right.prediction["states"] == [[1.0, 1.0], [3.0, 2.0], [6.0, 3.0]]
    assert right.prediction["terminated_at"] == 2 and right.risk == 1.0
    assert left.value == 3.0 and wobble.value == 3.0
    assert wobble.prediction["terminated_at"] is None and wobble.risk == 0.0
    assert wobble.prediction["states"][-1] == [2.0, 1.0]
    assert len(chat.calls) == 9 and model.calls == 9
    # Each call shows the state the previous answer predicted.
    assert any("state [3.0000,2.0000] action 1 ->" in c.user for c in chat.calls)


def test_one_sample_reports_its_uncertainty_as_unknown_not_zero():
    _, model = make(physics)
    [o] = model.imagine([0.0, 0.0], [[1, 0]], horizon=2)
    assert o.prediction["uncertainty_known"] is False and o.uncertainty == 2.0
    _, model = make(physics, samples=3)
    [o] = model.imagine([0.0, 0.0], [[1, 0]], horizon=2)
    assert o.prediction["uncertainty_known"] is True and o.uncertainty == 0.0
    assert o.member_values == [2.0, 2.0, 2.0]


def test_examples_and_settings_reach_the_prompt():
    ex = EnvTransition((0.0, 0.0), 1, (1.0, 1.0), 1.0, False)
    chat, model = make(physics, examples=[ex], samples=2, seed=7)
    model.imagine([0.0, 0.0], [[1]], horizon=1)
    system = chat.calls[0].system
    assert "Real steps of this environment:" in system
    assert 'state [0.0000,0.0000] action 1 -> {"next":[1.0,1.0],"reward":1.0' in system
    assert "0 = push left; 1 = push right" in system
    assert sorted(c.seed for c in chat.calls) == [7, 8]
    assert {c.temperature for c in chat.calls} == {0.7}


@pytest.mark.parametrize(
    "answer",
    [
        "the cart moves right",
        '{"next":[1.0],"reward":1,"terminated":false}',
        '{"next":[1.0,"x"],"reward":1,"terminated":false}',
        '{"next":[1.0,1e999],"reward":1,"terminated":false}',
        '{"next":[1.0,2.0],"reward":1,"terminated":"no"}',
        RuntimeError("connection refused"),
    ],
)
def test_a_bad_answer_or_a_dead_model_is_an_unknown_outcome(answer):
    _, model = make(lambda call: answer if isinstance(answer, Exception) else Reply(answer))
    [o] = model.imagine([0.0, 0.0], [[1, 1]], horizon=2)
    assert o.status == "unknown" and o.uncertainty == 1.0 and "every sample failed" in o.reason
    assert model.failures == 1


def test_one_failed_sample_leaves_the_others():
    answers = iter([Reply("garbage")])

    def script(call):
        return next(answers, None) or physics(call)

    _, model = make(script, samples=2, max_concurrency=1)
    [o] = model.imagine([0.0, 0.0], [[1]], horizon=1)
    assert o.status == "ok" and o.prediction["samples"] == 1
    assert o.prediction["failed_samples"] == 1


def test_programming_errors_raise():
    _, model = make(physics)
    with pytest.raises(ValueError, match="state must be 2 numbers"):
        model.imagine([0.0, 0.0, 0.0], [[1]])
    with pytest.raises(ValueError, match="finite"):
        model.imagine([np.nan, 0.0], [[1]])
    with pytest.raises(ValueError, match=r"action 2 is not in 0\.\.1"):
        model.imagine([0.0, 0.0], [[2]])
    with pytest.raises(ValueError, match="no candidates"):
        model.imagine([0.0, 0.0], [])
    with pytest.raises(ValueError, match="two discrete actions"):
        LLMDynamicsModel(None, description="", obs_names=NAMES, action_names=["only"])


def test_the_grammar_has_one_number_per_dimension():
    g = step_grammar(4, decimals=3)
    assert g.count('"," num') == 3 and "[0-9]{1,3}" in g
    with pytest.raises(ValueError):
        step_grammar(0)
