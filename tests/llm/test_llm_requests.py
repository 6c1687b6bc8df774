"""What the predictor sends: the prompt, whose shared prefix comes before the call."""

from __future__ import annotations

from wm_agents.llm.predictor import LLMOutcomePredictor, load_prompt
from wm_agents.llm.testing import ScriptedChatModel, prediction_reply

READ = {"name": "read_file", "args": {"path": "notes.txt"}}
MISSING = {"name": "read_file", "args": {"path": "missing.txt"}}
DIVIDE = {"name": "divide", "args": {"a": 1, "b": 0}}


# -- the prompt ------------------------------------------------------------------------------


def test_user_template_ends_with_the_call():
    # The candidate-specific part must come last, or no two candidates share a prompt prefix.
    assert load_prompt("outcome_user.md").rstrip().endswith("$call")
    assert "$call" not in load_prompt("outcome_system.md")


def test_candidates_share_everything_but_the_last_line(make_predictor, state):
    predictor, model = make_predictor(prediction_reply(), samples=1)
    state = state | {"messages": [{"role": "user", "content": "please summarize"}]}
    predictor.imagine(state, [READ, MISSING, DIVIDE])
    assert len(model.calls) == 3
    assert len({c.system for c in model.calls}) == 1
    prefixes = {c.user.rsplit("\n", 1)[0] for c in model.calls}
    assert len(prefixes) == 1
    [prefix] = prefixes
    # The prefix lists every tool (name, parameters, description), then the situation.
    for text in (
        "- read_file(path): Read a text file",
        "- divide(a, b): Divide a by b.",
        "Summarize the notes.",
        "cwd has notes.txt only",
        "please summarize",
    ):
        assert text in prefix
    assert prefix.index("Tools:") < prefix.index("Task:") < prefix.index("Recent messages:")
    assert [c.user.rsplit("\n", 1)[1] for c in model.calls] == [
        'Call: read_file({"path":"notes.txt"})',
        'Call: read_file({"path":"missing.txt"})',
        'Call: divide({"a":1,"b":0})',
    ]


def test_optional_parameters_are_marked(state):
    tool = {
        "name": "list_files",
        "description": "List files.",
        "parameters": {"properties": {"path": {"type": "string"}, "deep": {}}, "required": []},
    }
    model = ScriptedChatModel(script=prediction_reply())
    LLMOutcomePredictor(model, tools=[tool], samples=1).imagine(state, [{"name": "list_files"}])
    assert "- list_files(path?, deep?): List files." in model.calls[0].user
