"""GitSimulator: an isolated copy (own refs, the real objects read-only), refs and files
reported, commits left unreachable count as harm, and the real repository (and its remote)
never change, whatever git is told to do."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from langchain_core.tools import BaseTool, StructuredTool

from tests.simulate.conftest import fingerprint
from wm_agents.core import Outcome
from wm_agents.simulate.git import GitSimulator, git_exec_policy


def sh(cmd: str, cwd: Path) -> str:
    return subprocess.run(
        cmd, shell=True, cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repository with history, a side branch, a tag, a stash, staged, modified and
    untracked files, and a bare remote it has pushed to."""
    root = tmp_path / "repo"
    remote = tmp_path / "remote.git"
    sh(f"git init -q --bare {remote}", tmp_path)
    root.mkdir()
    sh(
        "git init -q -b main && git config user.email a@example.com && git config user.name A"
        " && echo one > a.txt && echo keep > keep.txt && git add . && git commit -qm one"
        " && git tag v1 && echo two >> a.txt && git commit -qam two"
        " && git checkout -qb feature && echo f > f.txt && git add f.txt && git commit -qm feat"
        " && git checkout -q main && echo stash > s.txt && git add s.txt && git stash -q"
        f" && git remote add origin {remote} && git push -q origin main"
        " && echo staged > staged.txt && git add staged.txt"
        " && echo dirty >> a.txt && echo untracked > u.txt",
        root,
    )
    return root, remote


def make_git_tools(path: str) -> list[BaseTool]:
    def git(argv: list[str]) -> str:
        """Run git with these arguments in the repository."""
        out = subprocess.run(["git", *argv], cwd=path, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr.strip() or f"git exited {out.returncode}")
        return out.stdout

    def write(path_in_repo: str, text: str) -> str:
        """Write a file of the working tree."""
        Path(path, path_in_repo).write_text(text)
        return "written"

    return [
        StructuredTool.from_function(f, metadata={"wm_simulate": "in_process"})
        for f in (git, write)
    ]


def git(*argv: str) -> dict:
    return {"name": "git", "args": {"argv": list(argv)}}


def test_refs_files_and_lost_commits(repo):
    root, remote = repo
    before = fingerprint(root, remote)
    with GitSimulator(root, make_git_tools) as sim:
        status, delete_branch, merged, reset, commit, rm, clean, stash_drop = sim.imagine(
            None,
            [
                git("status", "--porcelain"),
                git("branch", "-D", "feature"),
                [git("merge", "-q", "--no-edit", "feature"), git("branch", "-d", "feature")],
                git("reset", "-q", "--hard"),
                git("commit", "-m", "wip"),
                git("rm", "-q", "keep.txt"),
                git("clean", "-fdq"),
                git("stash", "drop", "-q"),
            ],
            horizon=2,
        )
    assert fingerprint(root, remote) == before
    assert Outcome.model_validate_json(reset.model_dump_json()) == reset
    assert status.prediction["predicted_result"] == " M a.txt\nA  staged.txt\n?? u.txt\n"
    assert status.prediction["side_effects"]["summary"] == "no changes"

    fx = delete_branch.prediction["side_effects"]
    assert [r["ref"] for r in fx["refs"]["deleted"]] == ["refs/heads/feature"]
    assert fx["lost_commits"][0]["ref"] == "refs/heads/feature"
    assert delete_branch.prediction["reversible"] is False and delete_branch.risk == 1.0
    # Merged first, the branch's commits stay reachable: deleting it loses nothing.
    assert merged.prediction["reversible"] is True, merged.prediction["side_effects"]
    assert merged.prediction["side_effects"]["lost_commits"] == []

    fx = reset.prediction["side_effects"]
    assert {m["path"] for m in fx["modified"]} == {"a.txt"}  # uncommitted edit gone
    assert [d["path"] for d in fx["deleted"]] == ["staged.txt"]  # staged file: in objects
    assert {x["path"] for x in fx["lost"]} == {"a.txt"}
    assert fx["recovered_from"]["staged.txt"].startswith("git object ")
    assert fx["index"]["n_removed"] == 1
    assert reset.prediction["reversible"] is False

    fx = commit.prediction["side_effects"]
    assert [r["ref"] for r in fx["refs"]["moved"]] == ["refs/heads/main"]
    assert commit.prediction["reversible"] is True and commit.risk == 0.0
    assert commit.prediction["predicted_result"].startswith("[main ")

    assert [d["path"] for d in rm.prediction["side_effects"]["deleted"]] == ["keep.txt"]
    assert rm.prediction["reversible"] is True  # committed content is in the object store

    assert [d["path"] for d in clean.prediction["side_effects"]["deleted"]] == ["u.txt"]
    assert clean.prediction["reversible"] is False  # untracked: nowhere else

    fx = stash_drop.prediction["side_effects"]
    assert [r["ref"] for r in fx["refs"]["deleted"]] == ["refs/stash"]
    assert stash_drop.prediction["reversible"] is False


def test_nothing_reaches_the_real_repository_or_its_remote(repo):
    root, remote = repo
    before = fingerprint(root, remote)
    calls = [
        git("push", "origin", "main"),
        git("push", str(remote), "main"),
        git("push", f"file://{remote}", "main"),
        git("gc", "--prune=now", "--aggressive", "-q"),
        git("repack", "-a", "-d", "-q"),
        git("prune"),
        git("tag", "-d", "v1"),
        git("worktree", "add", "../wt"),
        git("-C", str(root), "reset", "--hard"),
        git(f"--git-dir={root}/.git", "branch", "-D", "feature"),
        git("--work-tree", str(root), "checkout", "."),
        git("config", "core.worktree", str(root)),
        git("clone", "-q", ".", "/tmp/wm-sim-test-clone"),
        {"name": "write", "args": {"path_in_repo": "../escaped.txt", "text": "x"}},
    ]
    with GitSimulator(root, make_git_tools) as sim:
        outcomes = sim.imagine(None, calls)
    assert fingerprint(root, remote) == before
    assert not (root.parent / "wt").exists() and not Path("/tmp/wm-sim-test-clone").exists()
    push, push_path, push_url, gc, repack, prune, tag = outcomes[:7]
    assert push.prediction["success"] is False  # pushes are refused in the copy
    assert push_path.prediction["cause"] == "denied"
    assert push_url.prediction["cause"] == "denied"
    for o in (gc, repack, prune, tag):
        assert o.status == "ok" and o.prediction["success"] is True
    assert [r["ref"] for r in tag.prediction["side_effects"]["refs"]["deleted"]] == ["refs/tags/v1"]
    for o in outcomes[7:]:
        assert o.prediction["cause"] == "denied", o.candidate
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=root, capture_output=True, text=True)
    assert fsck.returncode == 0


def test_other_programs_need_a_subprocess_declaration(repo):
    root, _ = repo

    def make(path: str) -> list[BaseTool]:
        def shell(cmd: str) -> str:
            """Run a shell command."""
            return sh(cmd, Path(path))

        return [StructuredTool.from_function(shell, metadata={"wm_simulate": "in_process"})]

    with GitSimulator(root, make) as sim:
        (o,) = sim.imagine(None, [{"name": "shell", "args": {"cmd": "git status"}}])
    assert o.prediction["cause"] == "denied"  # /bin/sh, not git
    with GitSimulator(root, make, simulate={"shell": "subprocess"}) as sim:
        (o,) = sim.imagine(None, [{"name": "shell", "args": {"cmd": "rm a.txt && git status -s"}}])
    assert (
        o.status == "ok"
        and o.prediction["predicted_result"] == " D a.txt\nA  staged.txt\n?? u.txt\n"
    )
    assert (root / "a.txt").exists()


def test_exec_policy_paths(tmp_path):
    copy = tmp_path / "copy"
    (copy / "sub").mkdir(parents=True)
    (copy / "out").symlink_to(tmp_path)
    allow = git_exec_policy([str(copy)])
    c = str(copy)
    assert allow("/usr/bin/git", ["git", "status"], c, None)
    assert allow("git", ["git", "log", "origin/main", "-m", "x=y"], c, None)
    assert allow("git", ["git", "-C", "sub", "status"], c, None)
    assert allow("git", ["git", "fetch", "https://example.com/r.git"], c, None)
    assert not allow("sh", ["sh", "-c", "git status"], c, None)
    assert not allow("git", ["git", "status"], str(tmp_path), None)
    assert not allow("git", ["git", "-C", "..", "status"], c, None)
    assert not allow("git", ["git", "worktree", "add", "out/wt"], c, None)  # via a symlink
    assert not allow("git", ["git", "-c", f"core.hooksPath={tmp_path}", "commit"], c, None)
    assert not allow("git", ["git", "status"], c, {"GIT_DIR": str(tmp_path / ".git")})
