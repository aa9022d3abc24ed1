"""What the command line tells a new user: options that would be ignored are refused naming both
options, a mistyped subcommand lists the real ones, and the shipped texts name commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from planner.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).parent.parent
PREDICT = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline"]


def usage_error(capsys, argv) -> str:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("planner: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("extra, needles", [
    (["--input-p90", "200"], ["--input-p90", "--input-dist lognormal"]),
    (["--input-dist", "exponential", "--input-p90", "200"], ["--input-p90", "--input-dist lognormal"]),
    (["--output-p90", "20"], ["--output-p90", "--output-dist lognormal"]),
    (["--spec-accept", "0.8"], ["--spec-accept", "--spec-k"]),
    (["--spec-k", "0", "--spec-accept", "0.8"], ["--spec-accept", "--spec-k"]),
    (["--spec-draft-ratio", "0.1"], ["--spec-draft-ratio", "--spec-k"]),
])
def test_predict_refuses_options_it_would_ignore(capsys, extra, needles):
    line = usage_error(capsys, PREDICT + extra)
    assert all(n in line for n in needles), line


def test_the_options_are_used_where_they_apply(capsys):
    import json

    def tpot(*extra) -> float:
        assert main([*PREDICT[:-1], "--rate", "1", *extra, "--format", "json"]) == 0
        return json.loads(capsys.readouterr().out)["tpot_ms"]["mean"]

    assert tpot("--spec-k", "3", "--spec-accept", "0.9") < tpot("--spec-k", "3", "--spec-accept", "0.3")
    assert main([*PREDICT, "--input-dist", "lognormal", "--input-p90", "200"]) == 0


@pytest.mark.parametrize("order", [0, 1])
def test_validate_calibration_and_uncalibrated_exclude_each_other(capsys, tmp_path, order):
    options = [["--calibration", tmp_path / "c.toml"], ["--uncalibrated"]]
    line = usage_error(capsys, ["validate", *options[order], *options[1 - order]])
    assert "--calibration" in line and "--uncalibrated" in line


@pytest.mark.parametrize("word, hint", [("frobnicate", None), ("valdate", "validate"), ("catalg", "catalog"),
                                        ("models", "planner catalog models"), ("gpus", "planner catalog gpus")])
def test_a_mistyped_subcommand_lists_the_subcommands(capsys, tmp_path, monkeypatch, word, hint):
    monkeypatch.chdir(tmp_path)
    line = usage_error(capsys, [word])
    assert "neither a subcommand nor a profile file" in line
    assert all(c in line for c in COMMANDS)
    assert (f"did you mean '{hint}'" in line) if hint else "did you mean" not in line


def test_a_missing_profile_path_says_no_such_file(capsys, tmp_path):
    line = usage_error(capsys, [tmp_path / "missing.toml"])
    assert "missing.toml: no such file" in line


def test_an_existing_file_named_like_a_word_still_opens_as_a_profile(tmp_path, monkeypatch):
    from planner import cli

    (tmp_path / "frobnicate").write_text('name = "x"\n')
    monkeypatch.chdir(tmp_path)
    opened = []
    monkeypatch.setattr(cli, "run_tui", lambda path: opened.append(path) or 0)
    assert main(["frobnicate"]) == 0 and opened == ["frobnicate"]


def shipped_texts() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "profiles").glob("*.toml")),
            *sorted((ROOT / "planner" / "profiles").glob("*.toml"))]


@pytest.mark.parametrize("path", shipped_texts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_texts_name_only_commands_that_exist(path):
    found = re.findall(r"`planner ([a-z][a-z-]*)(?: ([a-z|]+))?", path.read_text())
    for command, arg in found:
        assert command in COMMANDS, f"{path.name}: `planner {command}` is not a subcommand"
        if command == "catalog":
            for kind in arg.split("|"):
                build_parser().parse_args(["catalog", kind])  # a kind it does not list is a UsageError
