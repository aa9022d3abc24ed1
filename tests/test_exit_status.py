"""One exit rule for every command: 0 = done and every tier or row meets its targets, 3 = done but
some fall short, 1 = failed, 2 = refused. Scripts branch on it, so each command is held to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner import cli
from planner.cli import EXIT_STATUS, main

ROOT = Path(__file__).parent.parent
CHATBOT = ROOT / "profiles" / "chatbot-h100.toml"
HEADER = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,"
          "metric,value,source")
ROW = "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,512,128,,,,output_tok_s,7000,https://example.org"
PREDICT = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "1000", "--output-len", "200"]


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


@pytest.fixture
def unreachable(tmp_path) -> Path:
    """A profile no fleet can serve: a 1 ms TPOT target."""
    path = tmp_path / "tight.toml"
    path.write_text('name = "tight"\n[slo]\ntpot_ms = 1\n[fleet]\ngpu = "l4"\ngpus_per_node = 1\n')
    return path


def test_predict_0_when_it_fits_and_is_stable_else_3(capsys):
    assert run(capsys, *PREDICT, "--rate", "1")[0] == 0
    assert run(capsys, *PREDICT, "--rate", "100000")[0] == 3  # unstable
    assert run(capsys, "predict", "--model", "llama-3.1-405b", "--gpu", "l4", "--input-len", "100", "--output-len", "10",
               "--offline")[0] == 3  # does not fit


def test_plan_exit_follows_the_tiers(capsys, unreachable):
    code, out = run(capsys, "plan", CHATBOT, "--format", "json")
    assert code == (0 if all(t["meets_slo"] for t in json.loads(out)["tiers"]) else 3)
    assert run(capsys, "plan", unreachable, "--format", "json")[0] == 3
    assert run(capsys, "plan", unreachable)[0] == 3  # the table too


def test_search_3_when_a_tier_has_no_fleet(capsys, unreachable):
    code, out = run(capsys, "search", unreachable, "--tier", "small", "--gpus", "l4", "--format", "json")
    assert code == 3 and json.loads(out)["tiers"][0]["top"] == []


def test_validate_3_when_a_row_is_not_read(capsys, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\n{ROW}\n")
    code, out = run(capsys, "validate", good, "--format", "json")
    assert code == 0 and json.loads(out)["rows"][0]["predicted"] is not None
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\n{ROW}\n{ROW.replace(',1,,bf16', ',one,,bf16')}\n")
    code, out = run(capsys, "validate", bad, "--format", "json")
    assert code == 3 and len(json.loads(out)["unparsed"]) == 1


def test_catalog_is_0_and_usage_errors_are_2(capsys):
    assert run(capsys, "catalog", "gpus", "--format", "json")[0] == 0
    assert main(["plan"]) == 2


def test_an_internal_error_is_1(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.HANDLERS, "catalog", broken)
    assert main(["catalog", "gpus"]) == 1
    assert "internal error" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], *[[c] for c in cli.COMMANDS]])
def test_every_help_states_the_rule(capsys, command):
    code, out = run(capsys, *command, "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "exit status: 0 = done" in flat and "3 = done, but some tier" in flat


def test_the_readme_states_the_same_codes():
    section = (ROOT / "README.md").read_text().split("## Exit status", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2] for line in section.splitlines() if line.startswith("| `")}
    assert set(rows) == {str(cli.EXIT_OK), str(cli.EXIT_FAILED), str(cli.EXIT_USAGE), str(cli.EXIT_SHORT)}
    assert "every tier" in rows[str(cli.EXIT_OK)] and "misses its targets" in rows[str(cli.EXIT_SHORT)]
    assert "refused" in rows[str(cli.EXIT_USAGE)] and "failed" in rows[str(cli.EXIT_FAILED)]
    assert "3 = done, but some tier misses its targets" in EXIT_STATUS
