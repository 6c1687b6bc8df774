"""The parts under the simulators: the child runner's fates, the guard's rules, the shadow's
restore after arbitrary damage, and the side-effects summary."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.simulate.conftest import make_workspace, tree_state
from wm_agents.simulate.child import run_in_child
from wm_agents.simulate.effects import TOTALS, human_bytes, summary
from wm_agents.simulate.guard import WriteGuard, is_write_open, resolve
from wm_agents.simulate.snapshot import Shadow
from wm_agents.simulate.tree import under


def test_child_fates():
    ok = run_in_child(lambda send: send({"x": 1}), timeout_s=5)
    assert ok.ended and ok.cause is None and ok.messages == [{"x": 1}]

    def garbage(send):  # type: ignore[no-untyped-def]
        os.write(1, b"")  # stdout goes to /dev/null
        raise KeyError("boom")

    crashed = run_in_child(garbage, timeout_s=5)
    assert crashed.cause == "crashed" and "KeyError: 'boom'" in crashed.detail

    exited = run_in_child(lambda send: os._exit(3), timeout_s=5)
    assert exited.cause == "crashed" and "exited with 3" in exited.detail

    killed = run_in_child(lambda send: os.kill(os.getpid(), signal.SIGKILL), timeout_s=5)
    assert killed.cause == "crashed" and "signal 9" in killed.detail

    start = time.monotonic()
    slow = run_in_child(lambda send: time.sleep(30), timeout_s=0.3)
    assert slow.cause == "timeout" and time.monotonic() - start < 3


def test_child_output_is_data_never_code(tmp_path):
    def forge(send):  # type: ignore[no-untyped-def]
        send({"type": "step", "result": "fine"})
        # A tool in the child can write anything to the pipe (here: a pickle that would run a
        # command): it is parsed as JSON lines, never unpickled or executed.
        pipe = next(c.cell_contents for c in send.__closure__ if type(c.cell_contents) is int)
        os.write(pipe, b"cos\nsystem\n(S'touch pwned'\ntR.\n")

    out = run_in_child(forge, timeout_s=5)
    assert out.cause == "protocol" and not Path("pwned").exists()


def test_write_detection_and_resolution(tmp_path):
    assert is_write_open("w", None) and is_write_open("r+", None) and is_write_open("a", None)
    assert not is_write_open("r", None) and not is_write_open("rb", None)
    assert is_write_open(None, os.O_WRONLY) and is_write_open(None, os.O_RDONLY | os.O_CREAT)
    assert is_write_open(None, os.O_RDONLY | os.O_TRUNC)
    assert not is_write_open(None, os.O_RDONLY | os.O_DIRECTORY)  # not O_TMPFILE
    (tmp_path / "out").symlink_to("/etc")
    assert resolve(tmp_path / "out" / "passwd") == "/etc/passwd"
    assert resolve(tmp_path / "out", follow=False) == str(tmp_path / "out")
    assert resolve(str(tmp_path / "a" / ".." / "b")) == str(tmp_path / "b")
    with pytest.raises(ValueError, match="root"):
        WriteGuard([])


def test_under_finds_a_subtree_in_sorted_keys():
    keys = sorted(["a", "a-b", "a.c", "a/b", "a/b/c", "ab", "b"])
    assert list(under(keys, "a")) == ["a", "a/b", "a/b/c"]
    assert list(under(keys, "a/b")) == ["a/b", "a/b/c"]
    assert list(under(keys, "")) == keys
    assert list(under(keys, "zz")) == []


@pytest.mark.parametrize("strategy", ["hardlink", "copy"])
def test_the_shadow_restores_any_damage(tmp_path, strategy):
    """Random damage straight to the copy (no guard): after ``restore(changes().dirty)``
    the copy equals the real folder again, and the real folder never changed."""
    root = tmp_path / "ws"
    make_workspace(root, tmp_path / "outside")
    real = tree_state(root)
    shadow = Shadow(str(root), str(tmp_path), strategy)
    shadow.sync()
    rng = random.Random(5)
    copy = Path(shadow.path)
    for _ in range(25):
        for _ in range(rng.randint(1, 6)):
            paths = [p for p in copy.rglob("*") if not p.is_symlink()]
            files = sorted(str(p.relative_to(copy)) for p in paths if p.is_file())
            dirs = sorted(str(p.relative_to(copy)) for p in paths if p.is_dir())
            op = rng.randrange(7)
            target = copy / rng.choice(files) if files else copy / "x"
            if op == 0 and files and strategy == "copy":
                with open(target, "r+b") as f:  # in place: only on a private copy
                    f.write(b"!")
            elif op == 1 and files:
                target.unlink()
            elif op == 2:
                (copy / f"new{rng.randrange(3)}").write_text("new")
            elif op == 3 and dirs:
                shutil.rmtree(copy / rng.choice(dirs))
            elif op == 4 and dirs:
                os.chmod(copy / rng.choice(dirs), 0o700)
            elif op == 5 and files:
                os.rename(target, copy / "moved")
            elif op == 6 and not (copy / "d").exists():
                (copy / "d" / "e").mkdir(parents=True)
                (copy / "d" / "e" / "f").symlink_to("../../notes.txt")
        changes = shadow.changes(None)
        shadow.restore(changes.dirty)
        assert tree_state(copy) == real
        assert shadow.changes(None).changes == []
    shadow.close()
    assert tree_state(root) == real and not copy.exists()


def test_summary_and_sizes():
    t = dict.fromkeys(TOTALS, 0)
    assert summary(t) == "no changes"
    t.update(
        files_deleted=1243, bytes_deleted=2_254_857_830, files_lost=1243, bytes_lost=2_254_857_830
    )
    assert summary(t) == "deleted 1243 files (2.1 GB); not reversible: 2.1 GB lost for good"
    assert human_bytes(12) == "12 B" and human_bytes(1536) == "1.5 KB"


def test_a_write_through_a_hard_link_is_reported_as_a_breach(tmp_path):
    """The tripwire under the guard: if anything ever wrote a shared inode in place (here the
    test itself, bypassing the guard), comparing the copy says so instead of reporting no
    change."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("real\n")
    shadow = Shadow(str(root), str(tmp_path), "hardlink")
    shadow.sync()
    time.sleep(0.02)  # past the coarse file-system clock tick of the sync
    with open(Path(shadow.path) / "a.txt", "a") as f:
        f.write("leaked\n")
    assert shadow.changes(None).breaches == ["a.txt"]
    assert shadow.changes(["a.txt"]).breaches == ["a.txt"]
    shadow.close()
