"""Where a command's result goes: standard output, or the file given with `-o` (`-o -` is standard
output). A file is written atomically and only over a regular file; a closed or full standard
output is an error, never a silent success."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

STDOUT = "-"
_PIPE_BYTES = 65536  # Linux's default pipe buffer

_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


class OutputRefused(ValueError):
    """The -o target is not one this command may write (checked before any work is done)."""


class OutputFailed(Exception):
    """The result could not be written: standard output closed or full, the disk full. Exit 1."""


def to_stdout(target: Path | str | None) -> bool:
    return target is None or str(target) == STDOUT


def check_target(target: Path | None, force: bool, may_replace: Path | None = None) -> None:
    """Refuse an -o target before the command computes anything: an existing file without --force
    (except `may_replace`, the file the result was read from), and anything but a regular file even
    with --force (replacing a FIFO or a device node with a file is never what was meant)."""
    if to_stdout(target):
        return
    try:
        mode = os.stat(target).st_mode  # follows a symlink: its target is what would be replaced
    except FileNotFoundError:
        folder = Path(target).parent
        if not folder.is_dir():  # refused now, not after the work, like every other bad target
            raise OutputRefused(f"{target}: cannot save: no folder {folder}") from None
        return
    except OSError as exc:
        raise OutputRefused(f"{target}: cannot write: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise OutputRefused(f"{target}: cannot save: is a folder; -o takes a file name (or - for standard output)")
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), None)
    if kind:
        raise OutputRefused(f"{target}: cannot save: is {kind}, not a regular file; -o replaces regular files only "
                            "(use -o - or a shell redirect to write to it)")
    if not force and not (may_replace is not None and Path(target).resolve() == Path(may_replace).resolve()):
        raise OutputRefused(f"{target} exists; pass --force to overwrite it")


def write_result(target: Path | None, text: str) -> None:
    """The result text to standard output, or atomically to the file (checked with check_target)."""
    if to_stdout(target):
        emit(text, end="")
        return
    from planner.profile import save_text_atomic

    try:
        save_text_atomic(target, text)
    except ValueError as exc:  # checked before the work: what fails now is the write itself
        raise OutputFailed(str(exc)) from None


def stdout():
    """sys.stdout, or OutputFailed when the process was started with it closed (`>&-`): Python
    then sets it to None and print() would drop the result without a word."""
    if sys.stdout is None:
        raise OutputFailed("standard output is closed; nothing was written (use -o FILE)")
    return sys.stdout


def emit(text: str, end: str = "\n") -> None:
    """Text to standard output, flushed so a closed pipe or a full device is reported here. Written
    in pipe-sized pieces: one large write into a pipe whose reader leaves midway can report success."""
    out = stdout()
    text += end
    try:
        for start in range(0, len(text), _PIPE_BYTES):
            out.write(text[start:start + _PIPE_BYTES])
            out.flush()
    except OSError as exc:
        raise stdout_failure(exc) from None


def stdout_failure(exc: OSError) -> OutputFailed:
    if isinstance(exc, BrokenPipeError):
        return OutputFailed("standard output closed before the whole result was written (broken pipe)")
    return OutputFailed(f"cannot write to standard output: {exc.strerror or exc}")


def finish() -> None:
    """Flush standard output at the end of a command; a reader that left (`| head`) or a full device
    is an error. Afterwards stdout points at /dev/null so the interpreter's own flush at exit does
    not fail a second time with a traceback."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
        if _reader_left(sys.stdout):
            raise BrokenPipeError(32, "Broken pipe")
    except OSError as exc:
        silence_stdout()
        raise stdout_failure(exc) from None


def _reader_left(out) -> bool:
    """Whether standard output is a pipe nobody reads any more (`| head -c1` exited before the end):
    the result went into the pipe's buffer, so no write failed, yet it was not all read."""
    import select

    try:
        fd = out.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR is always reported: on a pipe's write end it means no reader
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real descriptor (a test's capture)
        return False


def silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):  # no real file descriptor (a test's capture)
        pass
