"""Saving survives failure at every step: the previous file stays intact, no temp file is left, and
the error is a ProfileError saying why. Two planner windows saving the same file: the second is
warned, never silently overwriting the first. (tests/test_profile.py covers a failed rename with a
RuntimeError and ENOSPC on write/fsync; these extend it to every step and errno.)"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hardening_support import check_outcome, run_cli

from planner.profile import (
    ProfileConflictError,
    ProfileError,
    default_profile,
    load_profile,
    save_profile,
    save_text_atomic,
)

ORIGINAL = 'name = "original"\n'
CHATBOT = Path(__file__).parent.parent.parent / "profiles" / "chatbot-h100.toml"


def failing(real, error: BaseException, *, after_real: bool = False, only=None):
    """A stand-in for an os function that raises `error` (after doing the real work, for close)."""

    def fake(*args, **kwargs):
        if only is not None and not only(*args):
            return real(*args, **kwargs)
        if after_real:
            real(*args, **kwargs)
        raise error

    return fake


def is_temp(path, *_):
    return Path(os.fspath(path)).name.endswith(".tmp") if isinstance(path, (str, os.PathLike)) else False


STEPS = {
    # step: (os function, error, keyword options)
    "create temp: permission denied": ("open", PermissionError(errno.EACCES, "Permission denied"), {"only": is_temp}),
    "create temp: read-only filesystem": ("open", OSError(errno.EROFS, "Read-only file system"), {"only": is_temp}),
    "create temp: disk full": ("open", OSError(errno.ENOSPC, "No space left on device"), {"only": is_temp}),
    "write: disk full": ("write", OSError(errno.ENOSPC, "No space left on device"), {}),
    "write: quota": ("write", OSError(errno.EDQUOT, "Disk quota exceeded"), {}),
    "write: I/O error": ("write", OSError(errno.EIO, "Input/output error"), {}),
    "fsync: I/O error": ("fsync", OSError(errno.EIO, "Input/output error"), {}),
    "fsync: disk full": ("fsync", OSError(errno.ENOSPC, "No space left on device"), {}),
    "close: I/O error": ("close", OSError(errno.EIO, "Input/output error"), {"after_real": True}),
    "keep mode: not permitted": ("chmod", PermissionError(errno.EPERM, "Operation not permitted"), {}),
    "advance mtime: not permitted": ("utime", PermissionError(errno.EPERM, "Operation not permitted"), {}),
    "rename: permission denied": ("replace", PermissionError(errno.EACCES, "Permission denied"), {}),
    "rename: busy": ("replace", OSError(errno.EBUSY, "Device or resource busy"), {}),
    "rename: across devices": ("replace", OSError(errno.EXDEV, "Invalid cross-device link"), {}),
}


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# Only a save over an existing file keeps its mode and advances its mtime.
CASES = [pytest.param(step, existing, id=f"{step} ({'over a file' if existing else 'new file'})")
         for step in STEPS for existing in (True, False) if existing or STEPS[step][0] not in ("chmod", "utime")]


@pytest.mark.parametrize("step, existing", CASES)
def test_failure_at_every_step_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, step, existing):
    name, error, options = STEPS[step]
    path = tmp_path / "p.toml"
    if existing:
        path.write_text(ORIGINAL)
        # the mtime must need advancing for the utime step to run, as when a save lands in the same tick
        os.utime(path, ns=(path.stat().st_atime_ns, 2**62))
    with monkeypatch.context() as m:
        m.setattr(os, name, failing(getattr(os, name), error, **options))
        with pytest.raises(ProfileError) as info:
            save_profile(default_profile(), path)
    assert str(info.value) == f"{path}: cannot save: {error.strerror}"
    assert not isinstance(info.value, ProfileConflictError)
    if existing:
        assert path.read_text() == ORIGINAL
        assert listing(tmp_path) == ["p.toml"]
    else:
        assert listing(tmp_path) == []


def test_interrupt_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "p.toml"
    path.write_text(ORIGINAL)
    monkeypatch.setattr(os, "write", failing(os.write, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_profile(default_profile(), path)
    monkeypatch.undo()
    assert path.read_text() == ORIGINAL and listing(tmp_path) == ["p.toml"]


def test_short_writes_still_write_everything(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    path = tmp_path / "p.toml"
    save_profile(default_profile(), path)
    monkeypatch.undo()
    assert load_profile(path).profile == default_profile()


def test_failing_folder_fsync_after_the_rename_is_not_an_error(tmp_path, monkeypatch):
    """The data is safe once renamed; syncing the folder is best effort."""
    path = tmp_path / "p.toml"
    path.write_text(ORIGINAL)
    real_open = os.open
    monkeypatch.setattr(os, "open", failing(real_open, OSError(errno.EIO, "Input/output error"),
                                            only=lambda p, *a: Path(os.fspath(p)) == tmp_path))
    save_profile(default_profile(), path)
    monkeypatch.undo()
    assert load_profile(path).profile == default_profile() and listing(tmp_path) == ["p.toml"]


@pytest.mark.parametrize("target", ["folder", "dot", "root"])
def test_saving_onto_a_folder_is_a_profile_error(tmp_path, target):
    path = {"folder": tmp_path, "dot": Path("."), "root": Path("/")}[target]
    with pytest.raises(ProfileError, match="cannot save: is a folder"):
        save_text_atomic(path, ORIGINAL)
    assert listing(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# two windows


def test_second_window_saving_the_same_file_is_warned(tmp_path):
    """Saves land within one filesystem clock tick (ext4: ~4 ms), so both windows' saves used to keep the
    mtime the file was opened with, and the second silently overwrote the first (174 of 200 tries)."""
    for i in range(30):
        path = tmp_path / f"p{i}.toml"
        path.write_text(ORIGINAL)
        window_a, window_b = load_profile(path), load_profile(path)
        mine = window_a.profile.model_copy(update={"description": "A"})
        theirs = window_b.profile.model_copy(update={"description": "B"})
        saved_a = save_profile(mine, path, expected_mtime_ns=window_a.mtime_ns)
        with pytest.raises(ProfileConflictError, match="changed on disk since it was opened"):
            save_profile(theirs, path, expected_mtime_ns=window_b.mtime_ns)
        assert load_profile(path).profile.description == "A"
        # window A keeps saving from its new baseline without a false alarm
        save_profile(mine.model_copy(update={"description": "A2"}), path, expected_mtime_ns=saved_a.mtime_ns)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".toml"] * 30


def test_second_window_may_overwrite_when_told_to(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(ORIGINAL)
    window_a, window_b = load_profile(path), load_profile(path)
    save_profile(window_a.profile.model_copy(update={"description": "A"}), path, expected_mtime_ns=window_a.mtime_ns)
    saved = save_profile(window_b.profile.model_copy(update={"description": "B"}), path,
                         expected_mtime_ns=window_b.mtime_ns, overwrite_changed=True)
    assert load_profile(path).profile.description == "B"
    assert saved.mtime_ns == load_profile(path).mtime_ns


def test_each_save_moves_the_mtime_forward(tmp_path):
    path = tmp_path / "p.toml"
    save_text_atomic(path, ORIGINAL)
    seen = [path.stat().st_mtime_ns]
    for i in range(20):
        save_text_atomic(path, f'name = "v{i}"\n')
        seen.append(path.stat().st_mtime_ns)
    assert all(b > a for a, b in zip(seen, seen[1:])), seen


# ---------------------------------------------------------------------------------------------
# the command line's writes go through the same path


@pytest.mark.parametrize("argv_of", [
    lambda out: ["plan", CHATBOT, "--format", "toml", "-o", out, "--force"],
    lambda out: ["plan", CHATBOT, "--format", "json", "-o", out, "--force"],
])
def test_cli_output_failure_is_one_line_and_keeps_the_old_file(capsys, tmp_path, monkeypatch, argv_of):
    out = tmp_path / "out.toml"
    out.write_text(ORIGINAL)
    argv = argv_of(out)
    monkeypatch.setattr(os, "replace", failing(os.replace, OSError(errno.ENOSPC, "No space left on device")))
    code, stdout, err = run_cli(capsys, argv)
    monkeypatch.undo()
    check_outcome(code, stdout, err, argv, write_fails=True)
    assert err == f"planner: error: {out}: cannot save: No space left on device\n"
    assert out.read_text() == ORIGINAL and listing(tmp_path) == ["out.toml"]
