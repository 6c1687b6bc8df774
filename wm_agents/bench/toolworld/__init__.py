"""A world of real tool calls for measuring outcome predictors: randomised workspaces under
``/tmp``, thirteen real tools, argument pattern families, and calls run for real.

* :mod:`~wm_agents.bench.toolworld.workspace`: workspace plans from a seed, their situation text;
* :mod:`~wm_agents.bench.toolworld.tools`: the tools (files, JSON, arithmetic, folders, tables);
* :mod:`~wm_agents.bench.toolworld.families`: how an agent's arguments are drawn;
* :mod:`~wm_agents.bench.toolworld.dataset`: run the calls, and split them by workspace and
  argument family.
"""

from wm_agents.bench.toolworld.dataset import (
    CallSplit,
    SplitMode,
    ToolCallRecord,
    build_dataset,
    dataset_digest,
    split_calls,
)
from wm_agents.bench.toolworld.families import FAMILIES, CallFamily, families_by_tool
from wm_agents.bench.toolworld.tools import TOOLS, WorkspaceTool, run_tool
from wm_agents.bench.toolworld.workspace import Entry, Workspace, generate_workspace, materialize

__all__ = [
    "FAMILIES",
    "TOOLS",
    "CallFamily",
    "CallSplit",
    "Entry",
    "SplitMode",
    "ToolCallRecord",
    "Workspace",
    "WorkspaceTool",
    "build_dataset",
    "dataset_digest",
    "families_by_tool",
    "generate_workspace",
    "materialize",
    "run_tool",
    "split_calls",
]
