"""Where results go: `-o FILE` only ever replaces a regular file, `-o -` is standard output, and a
standard output that is closed, full or left by its reader is an error (exit 1), never a silent
success."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from planner.cli import main

ROOT = Path(__file__).parent.parent
CHATBOT = ROOT / "profiles" / "chatbot-h100.toml"
HEADER = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,"
          "metric,value,source")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("planner: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def offline_csv(tmp_path: Path) -> Path:
    """Eight offline rows of one GPU family: the fewest a fit takes."""
    path = tmp_path / "m.csv"
    rows = [f"llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,{n},128,,,,output_tok_s,{9000 - n},https://example.org"
            for n in range(128, 1128, 125)]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_force_does_not_replace_a_fifo(capsys, fifo, fmt):
    code, out, err = run(capsys, "plan", CHATBOT, "--format", fmt, "-o", fifo, "--force")
    assert code == 2 and out == ""
    one_error_line(err, str(fifo), "FIFO", "regular files only")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not a file put in its place


def test_a_file_in_a_folder_that_does_not_exist_is_refused_before_the_work(capsys, tmp_path):
    for argv in (("plan", CHATBOT, "--format", "json"), ("export", CHATBOT, "--to", "vllm"),
                 ("calibrate", offline_csv(tmp_path))):
        code, out, err = run(capsys, *argv, "-o", tmp_path / "nowhere" / "out.txt")
        assert code == 2 and out == ""
        one_error_line(err, "no folder", "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_force_does_not_replace_a_socket(capsys, tmp_path):
    import socket

    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        code, _, err = run(capsys, "plan", CHATBOT, "--format", "json", "-o", path, "--force")
    finally:
        server.close()
    assert code == 2
    one_error_line(err, "socket", "regular files only")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_force_does_not_replace_a_device(capsys, tmp_path, monkeypatch):
    # never a real device: a test that fails must not replace /dev/null (a failing run of this very
    # check did). The planner is told a file in tmp_path is a character device.
    target = tmp_path / "device"
    target.write_text("device contents")
    real_stat = os.stat

    def as_device(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if Path(path) == target:
            return os.stat_result((stat.S_IFCHR | 0o666, *tuple(result)[1:]))
        return result

    monkeypatch.setattr(os, "stat", as_device)
    code, _, err = run(capsys, "plan", CHATBOT, "--format", "json", "-o", target, "--force")
    monkeypatch.undo()
    assert code == 2
    one_error_line(err, "character device", "regular files only")
    assert target.read_text() == "device contents"


def test_calibrate_refuses_a_fifo_before_fitting(capsys, tmp_path, fifo):
    code, out, err = run(capsys, "calibrate", offline_csv(tmp_path), "-o", fifo, "--force")
    assert code == 2 and out == ""  # refused first: no fit ran (it would have printed its losses)
    one_error_line(err, "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_the_atomic_save_refuses_what_is_not_a_regular_file(fifo):
    from planner.profile import ProfileError, save_text_atomic

    with pytest.raises(ProfileError, match="not a regular file"):
        save_text_atomic(fifo, "x = 1\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_force_replaces_a_regular_file_through_a_link(capsys, tmp_path):
    target = tmp_path / "plan.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, _, _ = run(capsys, "plan", CHATBOT, "--format", "json", "-o", link, "--force")
    assert code == 0 and link.is_symlink() and target.read_text().startswith("{")


@pytest.mark.parametrize("fmt", ["json", "toml", "table"])
def test_dash_is_standard_output(capsys, tmp_path, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "plan", CHATBOT, "--format", fmt, "-o", "-")
    assert code == 0 and err == ""
    assert not (tmp_path / "-").exists()
    if fmt == "toml":
        assert tomllib.loads(out)["plan"]["tiers"]
    else:
        assert out.lstrip().startswith("{" if fmt == "json" else "chatbot")


def test_calibrate_to_standard_output_keeps_the_report_apart(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "calibrate", offline_csv(tmp_path), "-o", "-")
    assert code == 0 and not (tmp_path / "-").exists()
    assert "hopper" in tomllib.loads(out)["families"]  # stdout is the calibration alone
    assert "fitted 1 GPU families" in err and "standard output" in err


def test_closed_standard_output_is_an_error(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)  # what Python sets when started with `>&-`
    code = main(["catalog", "gpus", "--format", "json"])
    assert code == 1
    one_error_line(capsys.readouterr().err, "standard output is closed")
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["catalog", "gpus"]) == 1  # the table too


def subprocess_planner(argv: list[str], stdout) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner", *argv], cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=60)


def test_a_reader_that_left_is_an_error_not_a_traceback():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write fails with EPIPE
    try:
        proc = subprocess_planner(["catalog", "models", "--format", "json"], stdout=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    one_error_line(proc.stderr, "standard output closed", "broken pipe")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_is_an_error():
    with open("/dev/full", "w") as full:
        proc = subprocess_planner(["catalog", "gpus", "--format", "json"], stdout=full)
    assert proc.returncode == 1
    one_error_line(proc.stderr, "cannot write to standard output")
