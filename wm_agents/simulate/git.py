"""``GitSimulator``: imagine tool calls on a git repository by running them on an isolated copy.

Why not a temporary worktree (``git worktree add``): a linked worktree shares the real
repository's refs, config and object store.  ``git branch -D main`` in it deletes the real
branch, ``git tag``/``commit --amend``/``reset`` on a shared branch move real refs, ``gc``
prunes the real objects.  Nothing a simulated tool does may change the real repository, so the
copy is isolated instead:

* the working tree, including uncommitted and untracked files, is a private copy (a shadow
  kept in sync, restored after each call; reflink where available, else plain: git runs as a
  program, so the write guard cannot copy up for it, and hard links are never used);
* ``.git`` is copied *without* its object store (refs, packed-refs, reflogs, index (staged
  changes), config, HEAD, stash), fresh for every candidate, and its ``objects/info/alternates``
  points at the real object store.  Git only ever *reads* alternates: new objects go into the
  copy's own store, and ``gc``/``repack``/``prune`` never delete an alternate's objects.  The
  copy costs the repository's metadata plus its working tree, not its history;
* ``.git/worktrees`` (links to other worktrees, which ``git worktree remove`` would delete) and
  ``.git/hooks`` (unless ``run_hooks=True``) are not copied; ``core.worktree`` is unset; every
  remote keeps its URL for fetching but gets a ``pushurl`` that does not exist, so a push fails
  in simulation instead of reaching a real remote (declare push tools ``"dry_run"`` with
  ``git push --dry-run``, or ``"never"``);
* the tool runs in the guarded child, where only ``git`` may be started (tools declared
  ``"subprocess"``: any program), in the copy and with every path argument inside it (see
  :func:`git_exec_policy`), and an environment without ``GIT_DIR``-style redirections, with
  ``GIT_CEILING_DIRECTORIES`` at the copy, ``GIT_ALLOW_PROTOCOL=file`` (no network transports),
  ``GIT_TERMINAL_PROMPT=0`` and, without ``run_hooks``, ``core.hooksPath=/dev/null``.

Reported: the working tree's changes (as :mod:`wm_agents.simulate.effects`, content lost for
good also searched in the git object store: a deleted committed file is recoverable), refs
created / moved / deleted and HEAD, staged changes, and commits no ref or HEAD reaches any
more (lost; they may survive in reflogs until ``gc``, which is why they count as harm).

Limits: a program git starts (an editor, a credential helper, a ``filter`` driver or a
``gpg.program`` from the real config, a ``!`` alias the tool defines) runs unguarded with the
tool's rights: it is not confined to the copy.  ``fetch`` from a local-path remote reads it
(never writes).  Linked worktrees and submodule checkouts as the simulated root (where ``.git``
is a file) are not supported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from typing_extensions import Unpack

from wm_agents.core import Outcome
from wm_agents.simulate.base import SimulatorBase, SimulatorOptions
from wm_agents.simulate.calls import Plan
from wm_agents.simulate.effects import folder_effects
from wm_agents.simulate.guard import ExecPolicy
from wm_agents.simulate.recover import Lost
from wm_agents.simulate.runplan import MakeTools, Workspace
from wm_agents.simulate.snapshot import Shadow, choose_strategy, default_scratch, force_rmtree
from wm_agents.simulate.tree import HashCache

__all__ = ["GitSimulator", "git_exec_policy"]

_GIT_ENV_REMOVE = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def git_exec_policy(roots: Sequence[str]) -> ExecPolicy:
    """An exec policy (see :data:`~wm_agents.simulate.guard.ExecPolicy`) that lets a tool start
    ``git`` in the copy only.

    Git writes wherever its arguments say (``worktree add ../x``, ``clone . /tmp/y``,
    ``archive -o``, ``push /path/to/repo``, ``--git-dir``, ``config core.worktree``), so every
    argument that names a path (absolute, with ``..``, through a symlink, a ``file://`` URL,
    or the value after ``=``) must resolve inside ``roots``, relative to the ``cwd`` (which
    must be inside too) and any ``-C``.  An explicit environment may not point ``GIT_DIR``
    and the like outside.  Conservative: a commit message naming an outside path is refused
    too (the outcome is then unknown, never wrong).
    """
    real_roots = [os.path.realpath(r) for r in roots]

    def inside(value: str, base: str) -> bool:
        if value.startswith("file://"):
            value = value[len("file://") :]
        elif "://" in value:
            return True  # another transport: GIT_ALLOW_PROTOCOL=file refuses it in git
        try:
            p = os.path.realpath(os.path.join(base, value))
        except ValueError:  # an embedded NUL byte: not a path git could use either
            return True
        return any(_inside(p, r) for r in real_roots)

    def allow(program: str, argv: list[str], cwd: str, env: Mapping[str, str] | None) -> bool:
        if os.path.basename(program) != "git" or not inside(cwd, "/"):
            return False
        base = cwd
        args = argv[1:]
        for i, arg in enumerate(args):
            values = [arg] + ([arg.split("=", 1)[1]] if "=" in arg else [])
            if not all(inside(v, base) for v in values if v):
                return False
            if arg == "-C" and i + 1 < len(args):
                base = os.path.join(base, args[i + 1])
        for key in _GIT_ENV_REMOVE:
            value = (env or {}).get(key)
            if value and not inside(value, cwd):
                return False
        return True

    return allow


class GitSimulator(SimulatorBase):
    """A :class:`~wm_agents.core.WorldModel` that runs tool calls on an isolated copy of a git
    repository (see the module docstring).

    Args:
        repo: the repository's top folder (where ``.git`` is a folder).
        make_tools: ``make_tools(path) -> tools`` bound to a repository folder (called with
            the copy).
        scratch_dir: where copies live (default as for
            :class:`~wm_agents.simulate.FolderSimulator`).
        run_hooks: copy the repository's hooks and let git run them (default: no hooks).
        git: the git program (default: ``git`` on ``PATH``).
        **options: see :class:`~wm_agents.simulate.base.SimulatorBase`.

    Raises:
        ValueError: ``repo`` is not the top of a git repository with a ``.git`` folder, or
            git is missing.
    """

    def __init__(
        self,
        repo: str | os.PathLike[str],
        make_tools: MakeTools,
        *,
        scratch_dir: str | os.PathLike[str] | None = None,
        run_hooks: bool = False,
        git: str = "git",
        **options: Unpack[SimulatorOptions],
    ) -> None:
        super().__init__(make_tools, **options)
        self.git = shutil.which(git) or ""
        if not self.git:
            raise ValueError(f"git program {git!r} not found on PATH")
        root = os.path.realpath(repo)
        git_dir = os.path.join(root, ".git")
        if not os.path.isdir(git_dir):
            raise ValueError(
                f"{str(repo)!r} is not the top folder of a git repository with a .git folder "
                "(linked worktrees and submodule checkouts are not supported)"
            )
        top = self._run_git(["rev-parse", "--show-toplevel"], root).strip()
        if os.path.realpath(top) != root:
            raise ValueError(f"{str(repo)!r} is inside the repository {top!r}; pass its top")
        self.root = root
        self.given_root = os.path.abspath(repo)
        self.git_dir = git_dir
        self.run_hooks = run_hooks
        self.scratch = os.path.realpath(scratch_dir or default_scratch(root))
        self.hashes = HashCache()
        strategy = choose_strategy("auto", root, self.scratch, private=True)
        self._shadow = Shadow(root, self.scratch, strategy, exclude=(".git",), hashes=self.hashes)
        self._finalizer = weakref.finalize(self, self._shadow.close)

    def close(self) -> None:
        """Delete the copy. Idempotent."""
        with self._lock:
            self._shadow.close()

    def __enter__(self) -> GitSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- git -----------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_REMOVE}
        env["GIT_TERMINAL_PROMPT"] = "0"
        return env

    def _run_git(self, args: list[str], cwd: str, *, check: bool = True, stdin: str = "") -> str:
        out = subprocess.run(
            [self.git, *args],
            cwd=cwd,
            env=self._env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"git {' '.join(args[:3])} failed: {out.stderr.strip()[:300]}")
        return out.stdout

    def _refs(self, cwd: str) -> tuple[dict[str, str], str, str]:
        """``(refs, head, head_commit)``: every ref's object id, HEAD as ``ref: <name>`` (or a
        commit id when detached), and the commit HEAD resolves to (``""`` on an unborn
        branch)."""
        out = self._run_git(["for-each-ref", "--format=%(refname)%00%(objectname)"], cwd)
        refs = dict(line.split("\0", 1) for line in out.splitlines() if "\0" in line)
        symbolic = self._run_git(["symbolic-ref", "-q", "HEAD"], cwd, check=False).strip()
        sha = self._run_git(["rev-parse", "-q", "--verify", "HEAD"], cwd, check=False).strip()
        return refs, (f"ref: {symbolic}" if symbolic else sha), sha

    def _index(self, cwd: str) -> dict[str, str]:
        out = self._run_git(["ls-files", "--stage", "-z"], cwd)
        entries = {}
        for item in out.split("\0"):
            if "\t" in item:
                meta, path = item.split("\t", 1)
                entries[path] = meta
        return entries

    def _make_git_dir(self, copy: str) -> None:
        """The copy's ``.git``: metadata copied, objects borrowed read-only (see module)."""
        dst = os.path.join(copy, ".git")
        force_rmtree(dst)
        skip_top = {"objects", "worktrees"} | (set() if self.run_hooks else {"hooks"})

        def ignore(folder: str, names: list[str]) -> set[str]:
            if os.path.realpath(folder) == os.path.realpath(self.git_dir):
                return {n for n in names if n in skip_top or n.endswith(".lock")}
            return {n for n in names if n.endswith(".lock")}

        shutil.copytree(self.git_dir, dst, symlinks=True, ignore=ignore)
        objects = os.path.join(dst, "objects")
        os.makedirs(os.path.join(objects, "info"), exist_ok=True)
        os.makedirs(os.path.join(objects, "pack"), exist_ok=True)
        with open(os.path.join(objects, "info", "alternates"), "w") as f:
            f.write(os.path.realpath(os.path.join(self.git_dir, "objects")) + "\n")
        self._run_git(["config", "--local", "--unset-all", "core.worktree"], copy, check=False)
        if not self.run_hooks:
            self._run_git(["config", "--local", "--unset-all", "core.hooksPath"], copy, check=False)
        remotes = self._run_git(["remote"], copy, check=False).split()
        dead = os.path.join(copy, ".git", "wm-sim-push-disabled")
        for remote in remotes:
            self._run_git(
                ["config", "--local", "--replace-all", f"remote.{remote}.pushurl", dead], copy
            )

    def _child_env(self, copy: str) -> dict[str, str | None]:
        env: dict[str, str | None] = dict.fromkeys(_GIT_ENV_REMOVE)
        env["GIT_CEILING_DIRECTORIES"] = os.path.dirname(copy)
        env["GIT_ALLOW_PROTOCOL"] = "file"
        env["GIT_TERMINAL_PROMPT"] = "0"
        if not self.run_hooks:
            count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
            env["GIT_CONFIG_COUNT"] = str(count + 1)
            env[f"GIT_CONFIG_KEY_{count}"] = "core.hooksPath"
            env[f"GIT_CONFIG_VALUE_{count}"] = os.devnull
        return env

    # -- one candidate ---------------------------------------------------------------------------

    def _begin(self) -> None:
        self._shadow.sync()

    def _ensure_synced(self) -> None:
        if not self._shadow.built:
            self._shadow.sync()

    def _simulate(self, plan: Plan, candidate: Any, *, private: bool) -> Outcome:
        del private  # the copy is always private
        shadow = self._shadow
        self._ensure_synced()  # a previous candidate may have left it invalid
        copy = shadow.path
        tmp = os.path.join(shadow.base, "tmp")
        os.makedirs(tmp, exist_ok=True)
        changes = None
        try:
            self._make_git_dir(copy)
            before = self._refs(copy)
            index_before = self._index(copy)
            ws = Workspace(
                tools_path=copy,
                roots=[copy, tmp],
                private=True,
                allow_exec=git_exec_policy([copy]),
                cwd=copy,
                env=self._child_env(copy),
                path_map=[(copy, self.given_root)],
            )
            run = self._run_plan(plan, ws, watch=copy)
            changes = shadow.changes(None)
            early = self._early_outcome(plan, candidate, run)
            if early is not None:
                return early
            effects = folder_effects(
                changes,
                real_root=self.root,
                copy_root=copy,
                manifest=shadow.manifest,
                hashes=self.hashes,
                max_listed=self.max_listed,
                extra_recover=lambda lost: self._in_object_store(lost, copy),
            )
            git_effects = self._ref_effects(before, self._refs(copy), copy)
            git_effects["index"] = _index_changes(index_before, self._index(copy), self.max_listed)
            side_effects = {
                **effects.side_effects,
                **git_effects,
                "summary": _git_summary(effects.side_effects["summary"], git_effects),
            }
            return self._finish(
                plan,
                candidate,
                run,
                side_effects=side_effects,
                reversible=effects.reversible and not git_effects["lost_commits"],
                bytes_added=effects.bytes_added,
                extra={
                    "strategy": f"git_isolated_{shadow.strategy}",
                    "child_ms": round(1000 * run.child.elapsed_s, 3) if run.child else None,
                },
            )
        finally:
            force_rmtree(os.path.join(copy, ".git"))
            force_rmtree(tmp)
            if changes is None:
                shadow.invalidate()  # what changed is not known: never reuse that copy
            else:
                shadow.restore(changes.dirty)

    def _in_object_store(self, lost: list[Lost], copy: str) -> dict[str, str]:
        """Lost contents that are blobs in the repository's object store (read-only check)."""
        paths = [x.source for x in lost]
        ids = self._run_git(
            ["hash-object", "--no-filters", "--stdin-paths"], copy, stdin="\n".join(paths) + "\n"
        ).split()
        if len(ids) != len(lost):
            return {}
        present = self._run_git(
            ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
            copy,
            check=False,
            stdin="\n".join(ids) + "\n",
        )
        have = {line.split()[0] for line in present.splitlines() if line.endswith(" blob")}
        return {x.path: f"git object {i}" for x, i in zip(lost, ids, strict=True) if i in have}

    def _reachable(self, sha: str, copy: str) -> bool:
        if not sha:
            return True
        commit = self._run_git(
            ["rev-parse", "-q", "--verify", f"{sha}^{{commit}}"], copy, check=False
        ).strip()
        if not commit:
            return True  # not a commit (a tag of a tree or blob): no history to lose
        if self._run_git(
            ["for-each-ref", "--contains", commit, "--count=1"], copy, check=False
        ).strip():
            return True
        head = subprocess.run(
            [self.git, "merge-base", "--is-ancestor", commit, "HEAD"],
            cwd=copy,
            env=self._env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        return head.returncode == 0

    def _ref_effects(
        self,
        before: tuple[dict[str, str], str, str],
        after: tuple[dict[str, str], str, str],
        copy: str,
    ) -> dict[str, Any]:
        """Refs created / moved / deleted, HEAD, and the commits no ref or HEAD reaches any
        more (``lost_commits``)."""
        (b, head_b, sha_b), (a, head_a, _) = before, after
        created = [{"ref": r, "new": a[r]} for r in sorted(a.keys() - b.keys())]
        deleted = [{"ref": r, "old": b[r]} for r in sorted(b.keys() - a.keys())]
        moved = [
            {"ref": r, "old": b[r], "new": a[r]}
            for r in sorted(b.keys() & a.keys())
            if b[r] != a[r]
        ]
        lost: list[dict[str, str]] = []
        candidates = [(c["ref"], c["old"]) for c in deleted + moved] + [("HEAD", sha_b)]
        for ref, old in candidates:
            if old and not any(x["commit"] == old for x in lost):
                if not self._reachable(old, copy):
                    lost.append({"ref": ref, "commit": old})
        return {
            "refs": {"created": created, "deleted": deleted, "moved": moved},
            "head": {"before": head_b, "after": head_a},
            "lost_commits": lost,
        }


def _index_changes(before: dict[str, str], after: dict[str, str], limit: int) -> dict[str, Any]:
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(p for p in before.keys() & after.keys() if before[p] != after[p])
    return {
        "added": added[:limit],
        "removed": removed[:limit],
        "changed": changed[:limit],
        "n_added": len(added),
        "n_removed": len(removed),
        "n_changed": len(changed),
    }


def _git_summary(files: str, g: dict[str, Any]) -> str:
    parts = [] if files == "no changes" else [files]
    refs = g["refs"]
    for kind in ("created", "moved", "deleted"):
        names = [r["ref"] for r in refs[kind]]
        if names:
            parts.append(
                f"refs {kind}: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else "")
            )
    if g["head"]["before"] != g["head"]["after"]:
        parts.append("HEAD changed")
    idx = g.get("index") or {}
    n = idx.get("n_added", 0) + idx.get("n_removed", 0) + idx.get("n_changed", 0)
    if n:
        parts.append(f"{n} staged change(s)")
    if g["lost_commits"]:
        parts.append(f"not reversible: {len(g['lost_commits'])} ref(s) left commits unreachable")
    return "; ".join(parts) or "no changes"
