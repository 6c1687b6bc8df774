"""Imagine tool calls exactly: run them on a throwaway copy of the workspace, never on it.

A sandbox folder, the sandbox's file tools, and a FolderSimulator: each candidate (a call, or a
plan of calls) runs for real on a copy, and the outcome says what it would do: result, files
created / modified / deleted, and whether the lost bytes could be recovered ("archive then
delete" keeps the data, "delete" alone loses it).  The real folder is unchanged at the end.
Run: python examples/simulate_tools.py
"""

import shutil
import tempfile
from pathlib import Path

from wm_agents.demos.fs_agent import seed_sandbox
from wm_agents.simulate import FolderSimulator
from wm_agents.tools.sandbox import make_sandbox_tools

root = Path(tempfile.mkdtemp(prefix="sandbox-")) / "sandbox"
seed_sandbox(root)
old_log = (root / "archive" / "old.log").read_text()
delete = {"name": "delete_file", "args": {"path": "archive/old.log"}}
candidates = [
    [{"name": "read_file", "args": {"path": "missing.txt"}}],
    [{"name": "write_file", "args": {"path": "summary.txt", "content": "ship Friday"}}],
    [delete],
    [{"name": "write_file", "args": {"path": "backup/old.log", "content": old_log}}, delete],
    [{"name": "wipe_directory", "args": {"path": "."}}],
]
with FolderSimulator(root, make_sandbox_tools, tools=make_sandbox_tools(root)) as sim:
    outcomes = sim.imagine(None, candidates, horizon=2)
    print(f"strategy: {sim.strategy} (the copy shares the files; a write copies one up first)\n")
for plan, o in zip(candidates, outcomes, strict=True):
    calls = " -> ".join(f"{c['name']}({c['args'].get('path')})" for c in plan)
    p = o.prediction
    print(f"{calls}\n  success={p['success']}  risk={o.risk:.0f}  value={o.value:+.2f}")
    print(f"  result: {p['predicted_result']!r:.70}")
    print(f"  effects: {p['side_effects']['summary']}\n")
print("real folder:", sorted(str(q.relative_to(root)) for q in root.rglob("*")))
shutil.rmtree(root.parent)
