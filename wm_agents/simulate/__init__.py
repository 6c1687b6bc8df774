"""Workspace simulators: the ground truth of tool imagination.

Many tools act on something the agent owns and can copy (a folder, a SQLite database, a git
repository).  For them imagination need not guess: run the real tool on a throwaway copy, diff
the copy, and report exactly what happened.  Each simulator is a
:class:`~wm_agents.core.WorldModel` whose candidates are tool calls (or plans of calls):

* :class:`FolderSimulator`: a folder, copied by reflink, hard links with copy-up, or plainly;
* :class:`SQLiteSimulator`: a database, copied with SQLite's backup API; rows per table;
* :class:`GitSimulator`: a repository, copied in isolation (its own refs, the real objects
  read-only); files and refs.

Tools opt in by declaring how they may be imagined (:mod:`wm_agents.simulate.declare`):
``metadata["wm_simulate"]`` (``"in_process"``, ``"subprocess"``, ``"never"``) or a dry run
``metadata["wm_dry_run"]``.  A tool not declared is never run in imagination.

Each simulated call runs in a forked child under a write guard (an audit hook, PEP 578) with a
time and a size budget; outcomes are exact (uncertainty 0) or unknown with a reason, never a
guess.  Linux only: ``fork``, ``/proc/self/fd`` and Linux's ``FICLONE``/``O_TMPFILE``.
"""

from wm_agents._lazy import lazy_exports

_EXPORTS = {
    "DRY_RUN_KEY": "wm_agents.simulate.declare",
    "SIMULATE_KEY": "wm_agents.simulate.declare",
    "DryRun": "wm_agents.simulate.declare",
    "FolderSimulator": "wm_agents.simulate.folder",
    "GitSimulator": "wm_agents.simulate.git",
    "SQLiteSimulator": "wm_agents.simulate.sqlite",
    "SimulationMode": "wm_agents.simulate.declare",
    "SimulatorBase": "wm_agents.simulate.base",
    "SimulatorOptions": "wm_agents.simulate.base",
    "Strategy": "wm_agents.simulate.snapshot",
    "StrategyChoice": "wm_agents.simulate.snapshot",
    "ToolDeclaration": "wm_agents.simulate.declare",
    "WriteGuard": "wm_agents.simulate.guard",
    "declaration_of": "wm_agents.simulate.declare",
    "exact_outcome": "wm_agents.simulate.outcome",
    "reflink_supported": "wm_agents.simulate.snapshot",
    "results_match": "wm_agents.simulate.compare",
    "unknown_outcome": "wm_agents.simulate.outcome",
}
"""Each public name and the module it lives in (imported on first use)."""


__all__ = [
    "DRY_RUN_KEY",
    "SIMULATE_KEY",
    "DryRun",
    "FolderSimulator",
    "GitSimulator",
    "SQLiteSimulator",
    "SimulationMode",
    "SimulatorBase",
    "SimulatorOptions",
    "Strategy",
    "StrategyChoice",
    "ToolDeclaration",
    "WriteGuard",
    "declaration_of",
    "exact_outcome",
    "reflink_supported",
    "results_match",
    "unknown_outcome",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
