"""Shared by the hardening tests: bounded in-process CLI runs and the outcome contract every run obeys.

The contract: a run ends within TIME_LIMIT_S with either a result on stdout and exit 0 (every tier
meets its targets) or 3 (some tier misses them, does not fit or is unstable), or exit 2 with
exactly one line on stderr starting "planner: error:" and nothing on stdout (exit 1 instead when
the result could not be written). JSON never carries NaN or Infinity.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import threading
from pathlib import Path

from hypothesis import HealthCheck, settings

from planner.cli import main

# A run that takes longer is a hang: the slowest legitimate run here (a small search) takes ~2 s.
TIME_LIMIT_S = 20.0
PREFIX = "planner: error: "
# Python's own words leaking through mean an error was not turned into a message for people.
UNCLEAR = ("Traceback", "internal error", "PosixPath(", "codec can't", "Out of range float", "has no attribute",
           "NoneType", "unsupported operand", "division by zero", "recursion", "Value error,", "validation error for",
           "errors.pydantic.dev", "Error(")

CSV_HEADER = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,"
              "prefix_hit,metric,value,source")
CSV_ROW = "llama-3.1-8b,h100-sxm,1,,fp8,fp8,rate,4,,467,256,,,,ttft_ms_mean,24,https://example.org/a"


def examples(n: int) -> settings:
    """Hypothesis settings: n generated cases, each bounded by TIME_LIMIT_S rather than a deadline.
    HARDENING_SCALE=10 runs ten times as many (a deeper search than the suite's ~90 s allows)."""
    return settings(max_examples=max(1, round(n * float(os.environ.get("HARDENING_SCALE", "1")))), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def bounded(fn, *args, limit: float = TIME_LIMIT_S, **kwargs):
    """fn(*args) in a worker thread; AssertionError if it has not returned after `limit` seconds."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise AssertionError(f"hang: {getattr(fn, '__name__', fn)}{args!r} still running after {limit:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def run_cli(capsys, argv) -> tuple[int, str, str]:
    argv = [str(a) for a in argv]
    capsys.readouterr()  # drop anything a previous example left
    code = bounded(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str):
    def reject(token):
        raise AssertionError(f"JSON output carries {token}")

    return json.loads(text, parse_constant=reject)


def check_outcome(code: int, out: str, err: str, argv, *, write_fails: bool = False):
    """Assert the contract; return the parsed JSON (if --format json succeeded), the stdout text,
    or None for a clean error. `write_fails`: the run's output cannot be written, which exits 1."""
    argv = [str(a) for a in argv]
    where = f"planner {' '.join(argv)!r}"
    for needle in UNCLEAR:
        assert needle not in err and needle not in out, f"{where}: {needle!r} in output:\n{err or out[-2000:]}"
    if err:
        lines = err.splitlines()
        assert len(lines) == 1, f"{where}: {len(lines)} stderr lines:\n{err}"
        assert lines[0].startswith(PREFIX), f"{where}: {lines[0]!r}"
        assert len(lines[0]) > len(PREFIX) + 3, f"{where}: empty message"
        assert code == (1 if write_fails else 2), f"{where}: exit {code} with {lines[0]!r}"
        assert out == "", f"{where}: an error after printing a result:\n{out[-500:]}"
        return None
    assert code in (0, 3), f"{where}: exit {code} without an error line"
    assert out.strip() or "-o" in argv or "--output" in argv, f"{where}: exit {code} and no output"
    if "--format" in argv and argv[argv.index("--format") + 1:][:1] == ["json"] and out.strip():
        return strict_json(out)
    return out


@contextlib.contextmanager
def unreadable(*paths: Path):
    """Reading these paths fails with EACCES, also for root (which chmod 0 does not stop)."""
    blocked = {os.path.abspath(p) for p in paths}
    real_open = io.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(os.fspath(file)) in blocked:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    io.open = builtins.open = guarded
    try:
        yield
    finally:
        io.open = builtins.open = real_open
