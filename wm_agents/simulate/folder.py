"""``FolderSimulator``: imagine tool calls on a folder by running them on a copy of it.

For each candidate (a call, or a plan of calls) it:

1. brings a shadow copy of the folder up to date (once per ``imagine`` call; see
   :mod:`wm_agents.simulate.snapshot` for the hard-link / reflink / plain-copy strategies);
2. forks a child that installs the write guard (:mod:`wm_agents.simulate.guard`: copy-up
   before writes to shared files, no escape from the copy, no programs or network unless the
   tool is declared ``"subprocess"``), rebinds the tools with ``make_tools(copy)``, runs the
   calls in order and reports each result; the parent kills it past the time budget;
3. compares the copy with the real folder (only the paths the guard saw changed, or the whole
   copy when programs ran or the child was killed): files created / modified / deleted with
   sizes, mode changes, content lost for good (see :mod:`wm_agents.simulate.effects`);
4. restores the copy for the next candidate, and returns the exact outcome
   (:mod:`wm_agents.simulate.outcome`).

The real folder is only ever read (and, with hard links, linked to: its files show one more
link while the simulator holds a shadow; :meth:`FolderSimulator.close` removes it).
"""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path
from typing import Any

from typing_extensions import Unpack

from wm_agents.core import Outcome
from wm_agents.simulate.base import SimulatorBase, SimulatorOptions
from wm_agents.simulate.calls import Plan
from wm_agents.simulate.effects import folder_effects
from wm_agents.simulate.outcome import unknown_outcome
from wm_agents.simulate.runplan import MakeTools, PlanRun, Workspace
from wm_agents.simulate.snapshot import (
    Shadow,
    StrategyChoice,
    TreeChanges,
    choose_strategy,
    default_scratch,
    force_rmtree,
)
from wm_agents.simulate.tree import HashCache

__all__ = ["FolderSimulator"]

_MAX_SCOPED = 2000
"""Past this many touched paths one walk of the whole copy is cheaper than one per path."""


def _close_shadows(shadows: dict[bool, Shadow]) -> None:
    for shadow in shadows.values():
        shadow.close()
    shadows.clear()


class FolderSimulator(SimulatorBase):
    """A :class:`~wm_agents.core.WorldModel` that runs tool calls on a copy of a folder.

    Args:
        root: the real folder the tools act on.
        make_tools: ``make_tools(path) -> tools`` bound to ``path`` (called with the copy).
        strategy: ``"auto"`` (reflink where the file system clones files, else hard links
            with copy-up, else a plain copy), or one of ``"reflink"``, ``"hardlink"``,
            ``"copy"``.  Tools declared ``"subprocess"`` always get a private copy (reflink or
            plain), since the guard cannot copy up for programs.
        scratch_dir: where copies live (default: the temp folder when it is on ``root``'s
            device, else ``root``'s parent; see
            :func:`~wm_agents.simulate.snapshot.default_scratch`).
        reuse: keep one copy and restore it between calls (default); ``False`` makes and
            deletes a fresh copy per candidate (slower; for comparison).
        full_scan: compare the whole copy after every call even when the guard's list of
            touched paths would do (slower; it also checks that no write went through a hard
            link to the real folder).
        max_archive_bytes: how many bytes of archives the reversibility search may open.
        **options: see :class:`~wm_agents.simulate.base.SimulatorBase` (``tools``,
            ``simulate``, ``timeout_s``, ``max_bytes``, ``goal_progress``, ``risk_penalty``,
            ``max_result_chars``, ``max_listed``).

    Raises:
        ValueError: ``root`` is not a folder, or the strategy is impossible here.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        make_tools: MakeTools,
        *,
        strategy: StrategyChoice = "auto",
        scratch_dir: str | os.PathLike[str] | None = None,
        reuse: bool = True,
        full_scan: bool = False,
        max_archive_bytes: int = 256 << 20,
        **options: Unpack[SimulatorOptions],
    ) -> None:
        super().__init__(make_tools, **options)
        real = Path(root)
        if not real.is_dir():
            raise ValueError(f"root must be an existing folder, got {str(root)!r}")
        if strategy not in ("auto", "reflink", "hardlink", "copy"):
            raise ValueError(
                f"strategy must be 'auto', 'reflink', 'hardlink' or 'copy', got {strategy!r}"
            )
        self.root = os.path.realpath(real)
        self.given_root = os.path.abspath(root)
        self.scratch = os.path.realpath(scratch_dir or default_scratch(self.root))
        if not os.path.isdir(self.scratch):
            raise ValueError(f"scratch_dir must be an existing folder, got {self.scratch!r}")
        if self.scratch == self.root or self.scratch.startswith(self.root + os.sep):
            raise ValueError("scratch_dir must not be inside root (the copy would copy itself)")
        self.strategies = {
            False: choose_strategy(strategy, self.root, self.scratch, private=False),
            True: choose_strategy(
                "auto" if strategy == "hardlink" else strategy,
                self.root,
                self.scratch,
                private=True,
            ),
        }
        self.reuse = reuse
        self.full_scan = full_scan
        self.max_archive_bytes = max_archive_bytes
        self.hashes = HashCache()
        self._shadows: dict[bool, Shadow] = {}
        self._synced: set[bool] = set()
        self._finalizer = weakref.finalize(self, _close_shadows, self._shadows)

    @property
    def strategy(self) -> str:
        """The strategy of tools declared ``"in_process"`` (``"subprocess"`` tools use
        :attr:`strategies` ``[True]``)."""
        return self.strategies[False]

    def close(self) -> None:
        """Delete the copies (real files get their link counts back). Idempotent."""
        with self._lock:
            _close_shadows(self._shadows)

    def __enter__(self) -> FolderSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the copy -----------------------------------------------------------------------------

    def _begin(self) -> None:
        self._synced = set()

    def _shadow(self, private: bool) -> Shadow:
        if not self.reuse:
            shadow = Shadow(self.root, self.scratch, self.strategies[private], hashes=self.hashes)
            shadow.sync()
            return shadow
        shadow = self._shadows.get(private)
        if shadow is None:
            shadow = Shadow(self.root, self.scratch, self.strategies[private], hashes=self.hashes)
            self._shadows[private] = shadow
        if private not in self._synced:
            shadow.sync()
            self._synced.add(private)
        return shadow

    def _workspace(self, shadow: Shadow, tmp: str) -> Workspace:
        cwd = os.getcwd()
        inside = cwd == self.root or cwd.startswith(self.root + os.sep)
        mapped = os.path.join(shadow.path, os.path.relpath(cwd, self.root)) if inside else None
        return Workspace(
            tools_path=shadow.path,
            roots=[shadow.path, tmp],
            shared=shadow.shared if shadow.strategy == "hardlink" else None,
            links={
                identity: [os.path.join(shadow.path, rel) for rel in rels]
                for identity, rels in shadow.groups.items()
            }
            if shadow.strategy == "hardlink"
            else {},
            private=shadow.strategy != "hardlink",
            cwd=mapped if mapped and os.path.isdir(mapped) else None,
            path_map=[(shadow.path, self.given_root)],
        )

    # -- one candidate ---------------------------------------------------------------------------

    def _simulate(self, plan: Plan, candidate: Any, *, private: bool) -> Outcome:
        run, shadow, changes = self._run_on_copy(plan, private)
        if run.cause == "needs_private" and not private:
            # The rebound tools declared "subprocess" (now learned): run on a private copy.
            run, shadow, changes = self._run_on_copy(plan, True)
        try:
            if changes.breaches:
                shadow.invalidate()
                self._synced.discard(private)
                return unknown_outcome(
                    candidate,
                    "a write went through a hard link to the real folder at "
                    f"{', '.join(changes.breaches[:5])} (or the folder changed during the "
                    "simulation); the copy will be made again",
                    cause="breach",
                )
            effects = folder_effects(
                changes,
                real_root=self.root,
                copy_root=shadow.path,
                manifest=shadow.manifest,
                hashes=self.hashes,
                max_listed=self.max_listed,
                max_archive_bytes=self.max_archive_bytes,
                current_entries=shadow.strategy != "hardlink",
            )
            return self._finish(
                plan,
                candidate,
                run,
                side_effects=effects.side_effects,
                reversible=effects.reversible,
                bytes_added=effects.bytes_added,
                extra={
                    "strategy": shadow.strategy,
                    "child_ms": round(1000 * run.child.elapsed_s, 3) if run.child else None,
                    "paths_compared": changes.scanned,
                },
            )
        finally:
            shadow.restore(changes.dirty)
            if not self.reuse:
                shadow.close()

    def _run_on_copy(self, plan: Plan, private: bool) -> tuple[PlanRun, Shadow, TreeChanges]:
        shadow = self._shadow(private)
        tmp = tempfile.mkdtemp(prefix="tmp-", dir=shadow.base)
        try:
            ws = self._workspace(shadow, tmp)
            run = self._run_plan(plan, ws, watch=shadow.path)
            changes = shadow.changes(self._scope(run, shadow))
        except BaseException:
            shadow.invalidate()  # what the call changed is not known: never reuse that copy
            self._synced.discard(private)
            if not self.reuse:
                shadow.close()
            raise
        finally:
            force_rmtree(tmp)
        if run.cause == "needs_private":
            shadow.restore(changes.dirty)
            if not self.reuse:
                shadow.close()
        return run, shadow, changes

    def _scope(self, run: PlanRun, shadow: Shadow) -> list[str] | None:
        """Relative paths to compare: those the guard saw touched, ``None`` for everything."""
        if self.full_scan or run.touched is None or len(run.touched) > _MAX_SCOPED:
            return None
        prefix = shadow.path + os.sep
        rels = sorted(
            "" if p == shadow.path else p[len(prefix) :]
            for p in run.touched
            if p == shadow.path or p.startswith(prefix)
        )
        if "" in rels:
            return None
        # A write through one of the real folder's own hard links changes its twins too.
        twins = {t for rel in rels for t in shadow.group_of.get(rel, ())}
        rels = sorted(set(rels) | twins)
        scope: list[str] = []
        for rel in rels:  # drop paths below one already in scope
            if scope and (rel == scope[-1] or rel.startswith(scope[-1] + "/")):
                continue
            scope.append(rel)
        return scope
