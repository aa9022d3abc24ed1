"""Reading and writing the small text files users edit (profiles, exported plans), safely: a read
never blocks on a FIFO or reads a huge file, a save never leaves a half-written file, and every
failure is a one-line ProfileError naming the file."""

from __future__ import annotations

import os
import secrets
import stat
from contextlib import suppress
from pathlib import Path

from planner.profile_errors import ProfileConflictError, ProfileError, os_reason

# Profiles and exported plans are a few kB; anything this big is the wrong file.
MAX_PROFILE_BYTES = 10 * 1024 * 1024


def save_text_atomic(path: Path | str, text: str) -> None:
    """Write text to a temp file beside path, fsync it and rename it over path: readers see the
    old file or the new one, never a half-written one (crash, full disk). Raises ProfileError."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()  # replace the link's target; renaming over the link would cut it
    if not path.name or path.name in (".", "..") or path.is_dir():
        raise ProfileError(f"{path}: cannot save: is a folder; give a file name")
    if path.exists() and not path.is_file():  # the rename would replace a FIFO or device node with a file
        raise ProfileError(f"{path}: cannot save: not a regular file")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # 0o666 lets the umask decide a new file's mode, as a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot save: {os_reason(exc)}") from exc
    try:
        try:
            _write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        with suppress(FileNotFoundError):
            old = os.stat(path)
            os.chmod(tmp, stat.S_IMODE(old.st_mode))  # keep an existing file's mode
            _advance_mtime(tmp, old.st_mtime_ns)
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ProfileError(f"{path}: cannot save: {os_reason(exc)}") from exc
        raise
    _fsync_dir(path.parent)


def _advance_mtime(tmp: Path, old_mtime_ns: int) -> None:
    """Conflict detection compares mtimes, and filesystems stamp them with a coarse clock (ext4:
    one kernel tick, ~4 ms): a save right after another could keep the old mtime and a second
    window would overwrite the first one's save unwarned. Every save moves the mtime forward."""
    st = os.stat(tmp)
    if st.st_mtime_ns <= old_mtime_ns:
        os.utime(tmp, ns=(st.st_atime_ns, old_mtime_ns + 1))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort, the data is already safe."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_unchanged(path: Path, expected_mtime_ns: int) -> None:
    # A check-then-rename race remains, but it is milliseconds wide instead of a whole session.
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return  # deleted since it was opened: saving recreates it and loses nothing
    if mtime_ns != expected_mtime_ns:
        raise ProfileConflictError(
            f"{path}: changed on disk since it was opened; reload it, or save with overwrite"
        )


def read_text_file(path: Path | str, kind: str = "profile", max_bytes: int = MAX_PROFILE_BYTES) -> tuple[str, int]:
    """A small TOML file's text and mtime_ns, or a one-line ProfileError naming it. Never blocks
    on a FIFO or device and never reads more than max_bytes (+1)."""
    path = Path(path)
    where = str(path)
    try:
        # stat first: opening a FIFO or device could block or never end
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ProfileError(f"{where}: is a folder, not a {kind} file")
        if not stat.S_ISREG(mode):
            raise ProfileError(f"{where}: not a regular file")
        with path.open("rb") as f:
            mtime_ns = os.fstat(f.fileno()).st_mtime_ns  # before reading: later edits show up
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ProfileError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ProfileError(f"{where}: is a folder, not a {kind} file") from None
    except PermissionError:
        raise ProfileError(f"{where}: permission denied") from None
    except OSError as exc:
        raise ProfileError(f"{where}: cannot read: {os_reason(exc)}") from None
    if len(raw) > max_bytes:
        raise ProfileError(f"{where}: over {max_bytes // 2**20} MiB; not a {kind}")
    if b"\x00" in raw:
        raise ProfileError(f"{where}: binary file, not a TOML {kind}")
    try:
        return raw.decode("utf-8-sig"), mtime_ns  # -sig: tolerate the BOM some editors add
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{where}: not UTF-8 text (bad byte at offset {exc.start})") from None
