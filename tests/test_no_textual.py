"""Scripted use never pays for Textual: the engine, reports, profiles, the service (the one path from
a profile to the engine) and the CLI's non-TUI commands import without it. Each check runs in a
fresh interpreter so nothing imported by other tests leaks in."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import planner.engine

ROOT = Path(__file__).parent.parent
ENGINE_MODULES = sorted(f"planner.engine.{m.name}" for m in pkgutil.iter_modules(planner.engine.__path__))
PREDICT = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline",
           "--format", "json"]


def python(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_engine_modules_are_listed():
    expected = {"planner.engine.roofline", "planner.engine.serving", "planner.engine.plan", "planner.engine.predict"}
    assert expected <= set(ENGINE_MODULES)


def test_importing_engine_report_cli_and_profile_does_not_import_textual():
    modules = ["planner.engine", *ENGINE_MODULES, "planner.report", "planner.tables", "planner.cli", "planner.profile",
               "planner.service", "planner.tui.compute"]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))\n"
    )
    leaked = json.loads(python("-c", code).stdout)
    assert leaked == []


def test_the_main_screens_edit_rules_do_not_import_textual():
    code = ("import json, sys, planner.tui.edits\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))\n")
    assert json.loads(python("-c", code).stdout) == []


@pytest.mark.parametrize("argv", [
    PREDICT,
    ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "100", "--output-len", "10", "--rate", "1"],
    ["plan", "profiles/chatbot-h100.toml", "--format", "json"],
    ["plan", "profiles/chatbot-h100.toml"],
    ["catalog", "gpus"],
    ["search", "profiles/chatbot-h100.toml", "--tier", "small", "--top", "1", "--format", "json"],
], ids=["predict-json", "predict-table", "plan-json", "plan-table", "catalog", "search"])
def test_cli_commands_do_not_import_textual(argv):
    code = (
        "import sys\n"
        "import planner.cli as cli\n"
        f"code = cli.main({argv!r})\n"
        "print('TEXTUAL' if 'textual' in sys.modules else 'NO-TEXTUAL', code, file=sys.stderr)\n"
    )
    proc = python("-c", code)
    assert proc.stderr.strip().splitlines()[-1] == "NO-TEXTUAL 0"


def test_predict_process_import_log_has_no_textual():
    proc = python("-X", "importtime", "-m", "planner", *PREDICT)
    assert json.loads(proc.stdout)["fits"] is True
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "planner.engine.serving" in imported  # the log is the real one
    assert not [m for m in imported if m == "textual" or m.startswith("textual.")]
