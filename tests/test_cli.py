"""The command line in-process: output contracts of predict/plan/catalog, exit codes, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.cli import main
from planner.engine import catalog
from planner.engine.numbers import fmt_sig
from planner.profile import load_profile

ROOT = Path(__file__).parent.parent
HF = Path(__file__).parent / "data" / "hf"
PROFILES = sorted((ROOT / "profiles").glob("*.toml"))
CHATBOT = ROOT / "profiles" / "chatbot-h100.toml"

BASE = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "1000", "--output-len", "200"]
MODES = {"offline": ["--offline"], "concurrency": ["--concurrency", "16"], "rate": ["--rate", "2"]}
DISTS = ("ttft_ms", "tpot_ms", "e2e_ms")
PCTS = ("mean", "p50", "p90", "p99")

REQUIRED_GPUS = ["l4", "a10g", "l40s", "a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h100-nvl", "gh200", "h200",
                 "b200", "gb200", "mi300x", "mi325x", "gaudi3", "tpu-v5e", "tpu-v6e"]
REQUIRED_MODELS = ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "mistral-7b", "qwen2.5-7b", "gemma-2-9b", "mistral-nemo-12b",
                   "qwen3-14b", "qwen2.5-32b", "gemma-2-27b", "llama-3.1-70b", "llama-3.3-70b", "qwen2.5-72b", "mixtral-8x7b",
                   "mixtral-8x22b", "llama-3.1-405b", "deepseek-v3", "qwen3-30b-a3b", "qwen3-235b-a22b", "phi-3.5-mini",
                   "gpt-oss-120b"]
TIER_KEYS = {"tier", "model", "gpu", "gpus", "replicas", "tp", "pp", "weights", "kv", "feasible", "meets_slo", "binding",
             "ttft_ms", "tpot_ms", "e2e_ms", "output_tok_s", "utilization", "usd_month", "usd_per_mtok", "kwh_month",
             "co2_kg_month", "api_usd_month", "api_usd_per_mtok", "api_source", "break_even_rps", "api_cheaper",
             "break_even_requests_month", "break_even_mtok_month", "break_even_usd_per_gpu_hour", "api_note"}


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity."""

    def reject(token):
        raise AssertionError(f"JSON output carries {token}")

    return json.loads(text, parse_constant=reject)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv) -> tuple[int, dict | list]:
    code, out, err = run(capsys, *argv, "--format", "json")
    assert err == ""
    return code, strict_json(out)


def assert_usage_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("planner: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def columns80(monkeypatch):
    """Tables render at a standard 80-column terminal (rich reads COLUMNS)."""
    monkeypatch.setenv("COLUMNS", "80")


# ---------------------------------------------------------------------------------------------
# predict


@pytest.mark.parametrize("mode", list(MODES))
def test_predict_json_contract(capsys, mode):
    code, data = run_json(capsys, *BASE, *MODES[mode])
    assert code == 0
    assert data["model"] == "llama-3.1-8b" and data["gpu"] == "h100-sxm"
    assert data["tp"] == 1 and data["pp"] == 1 and data["weights"] == "bf16" and data["kv"] == "bf16"
    assert data["mode"] == mode and data["fits"] is True and data["stable"] is True
    assert {"weights", "kv", "other"} <= set(data["memory_gb"])
    assert all(data["memory_gb"][k] > 0 for k in ("weights", "kv", "other"))
    assert isinstance(data["max_seqs"], int) and data["max_seqs"] >= 1
    assert data["batch"] > 0
    for key in DISTS:
        assert set(PCTS) <= set(data[key]), key
        assert data[key]["mean"] > 0
        if mode != "offline":  # offline reports means only: requests wait in an unbounded initial queue
            assert 0 < data[key]["p50"] <= data[key]["p90"] <= data[key]["p99"]
    for key in ("output_tok_s", "total_tok_s", "requests_per_s", "utilization"):
        assert data[key] > 0, key
    assert data["total_tok_s"] == pytest.approx(data["output_tok_s"] * 1200 / 200, rel=1e-3)
    assert {"prefill", "decode"} <= set(data["bound"])
    assert data["bound"]["prefill"] in ("compute", "memory bandwidth", "interconnect", "overhead")
    assert data["bound"]["decode"] in ("compute", "memory bandwidth", "interconnect", "overhead")
    if mode == "rate":
        assert data["requests_per_s"] == pytest.approx(2.0)
    if mode == "offline":
        assert data["utilization"] == 1.0


@pytest.mark.parametrize("mode", list(MODES))
def test_predict_table(capsys, columns80, mode):
    code, out, err = run(capsys, *BASE, *MODES[mode])
    assert code == 0 and err == ""
    assert "llama-3.1-8b on h100-sxm" in out
    for row in ("TTFT", "TPOT", "E2E", "throughput", "memory/GPU", "bound"):
        assert row in out


def test_predict_table_says_how_sure_it_is_and_what_was_not_measured(capsys, columns80):
    code, out, _ = run(capsys, *BASE, "--rate", "1")
    data = run_json(capsys, *BASE, "--rate", "1")[1]
    # the table shows each band to three significant figures (56.0 as 56)
    assert code == 0 and "expected error: ±" in out and f"±{fmt_sig(data['error_pct']['ttft'])}% ttft" in " ".join(out.split())
    assert "not measured" not in out
    code, out, _ = run(capsys, "predict", "--model", "gemma-3-27b", "--gpu", "h100-sxm", "--input-len", "1000",
                       "--output-len", "200", "--rate", "1")
    assert code == 0 and "not measured: gemma-3-27b models" in " ".join(out.split())


def test_rate_far_above_capacity_is_unstable_with_null_percentiles(capsys):
    code, data = run_json(capsys, *BASE, "--rate", "100000")
    assert code == 3  # a prediction was made, and it is unstable
    assert data["fits"] is True and data["stable"] is False
    assert data["reason"].startswith("unstable")
    for key in DISTS:
        assert data[key]["p99"] is None and data[key]["mean"] is None
    assert data["requests_per_s"] is None and data["output_tok_s"] is None
    assert data["max_rate_rps"] > 0 and data["utilization"] > 1
    code, out, _ = run(capsys, *BASE, "--rate", "100000")
    assert code == 3 and "unstable" in out


def test_predict_zero_rate_is_the_unloaded_floor(capsys):
    code, data = run_json(capsys, *BASE, "--rate", "0")
    assert code == 0 and data["stable"] is True and data["utilization"] == 0
    assert data["ttft_ms"]["p50"] > 0 and data["tpot_ms"]["p99"] > 0


def test_predict_does_not_fit_exits_3_with_reason(capsys):
    argv = ["predict", "--model", "llama-3.1-405b", "--gpu", "l4", "--input-len", "100", "--output-len", "10", "--offline"]
    code, data = run_json(capsys, *argv)
    assert code == 3
    assert data["fits"] is False
    assert "does not fit" in data["reason"] and "memory capacity" in data["reason"]
    assert "ttft_ms" not in data or data["ttft_ms"]["p99"] is None
    code, out, err = run(capsys, *argv)
    assert code == 3 and "does not fit" in out and "Traceback" not in err


def test_predict_with_a_tp_the_weights_do_not_fit_names_the_one_that_does(capsys):
    argv = ["predict", "--model", "llama-3.1-405b", "--gpu", "h100-sxm", "--weights", "fp8", "--tp", "2",
            "--input-len", "1000", "--output-len", "200", "--rate", "1"]
    code, data = run_json(capsys, *argv)
    assert code == 3 and data["fits"] is False
    assert "at TP=2" in data["reason"] and "TP=8 is the smallest that fits" in data["reason"]
    code, data = run_json(capsys, *argv[:7], *argv[9:])  # without --tp: the smallest that fits, and no advice
    assert code == 0 and data["fits"] is True and data["tp"] == 8


@pytest.mark.parametrize("config", sorted(HF.glob("*/config.json")), ids=lambda p: p.parent.name)
def test_predict_accepts_a_hugging_face_config(capsys, config):
    code, data = run_json(capsys, "predict", "--model", config, "--gpu", "b200", "--input-len", "1000", "--output-len", "100",
                          "--offline")
    assert code == 0
    assert data["model"] == config.parent.name
    assert data["fits"] is True and data["requests_per_s"] > 0


def test_predict_accepts_a_config_folder(capsys):
    code, data = run_json(capsys, "predict", "--model", HF / "llama-3.1-8b", "--gpu", "h100", "--input-len", "100",
                          "--output-len", "10", "--offline")
    assert code == 0 and data["fits"] is True


@pytest.mark.parametrize("args, needles", [
    (["--gpu", "h10", "--input-len", "100", "--output-len", "10", "--offline"],
     ["unknown GPU 'h10'", "did you mean", "h100-sxm"]),
    (["--gpu", "h100", "--input-len", "-5", "--output-len", "10", "--offline"], ["--input-len"]),
    (["--gpu", "h100", "--input-len=-5", "--output-len", "10", "--offline"], ["--input-len"]),
    (["--gpu", "h100", "--input-len", "0", "--output-len", "10", "--offline"], ["--input-len"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "nan", "--offline"], ["--output-len"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--rate", "nan"], ["--rate"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--rate", "inf"], ["--rate"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--rate", "-1"], ["--rate"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--rate=-1"], ["--rate"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10"], ["--offline", "--rate"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline", "--rate", "1"], ["not allowed"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--concurrency", "0"], ["--concurrency"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline", "--tp", "0"], ["--tp"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline", "--weights", "fp3"], ["--weights"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline", "--prefix-hit", "1.5"], ["--prefix-hit"]),
    # the range a profile and a measurements file take too
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline", "--gpu-mem-util", "0.995"],
     ["--gpu-mem-util", "at most 0.99"]),
    (["--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline", "--gpu-mem-util", "0.05"],
     ["--gpu-mem-util", "above 0.05"]),
    (["--input-len", "100", "--output-len", "10", "--offline"], ["--gpu"]),
])
def test_predict_bad_arguments_exit_2_with_one_line(capsys, args, needles):
    code, out, err = run(capsys, "predict", "--model", "llama-3.1-8b", *args)
    assert out == ""
    assert_usage_error(code, err, *needles)


def test_unknown_model_suggests_the_nearest_id(capsys):
    code, out, err = run(capsys, "predict", "--model", "llama-3.1-8", "--gpu", "h100", "--input-len", "100", "--output-len", "10",
                         "--offline")
    assert_usage_error(code, err, "unknown model", "did you mean", "llama-3.1-8b")


def test_missing_config_path_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(capsys, "predict", "--model", tmp_path / "nope" / "config.json", "--gpu", "h100", "--input-len", "100",
                       "--output-len", "10", "--offline")
    assert_usage_error(code, err, "unknown model")


@pytest.mark.parametrize("text, needles", [("{", ["config.json", "cannot read"]),
                                           ('{"hidden_size": 10}', ["config.json", "unsupported"])])
def test_broken_config_json_names_the_file(capsys, tmp_path, text, needles):
    (tmp_path / "config.json").write_text(text)
    code, _, err = run(capsys, "predict", "--model", tmp_path, "--gpu", "h100", "--input-len", "10", "--output-len", "10",
                       "--offline")
    assert_usage_error(code, err, *needles)


def test_missing_calibration_and_bad_spec_k(capsys, tmp_path):
    args = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "10", "--output-len", "10", "--offline"]
    code, _, err = run(capsys, *args, "--calibration", tmp_path / "nope.toml")
    assert_usage_error(code, err, "nope.toml")
    code, _, err = run(capsys, *args, "--spec-k", "99")
    assert_usage_error(code, err, "--spec-k")


def test_unknown_command_and_stray_arguments(capsys):
    code, _, err = run(capsys, "catalog", "chips")
    assert_usage_error(code, err, "chips")
    code, _, err = run(capsys, CHATBOT, "extra")
    assert_usage_error(code, err, "unexpected arguments")


# ---------------------------------------------------------------------------------------------
# catalog


@pytest.mark.parametrize("kind, required", [("gpus", REQUIRED_GPUS), ("models", REQUIRED_MODELS)])
def test_catalog_json_lists_every_required_id(capsys, kind, required):
    code, rows = run_json(capsys, "catalog", kind)
    assert code == 0
    ids = [row["id"] for row in rows]
    assert set(required) <= set(ids), sorted(set(required) - set(ids))
    assert len(ids) == len(set(ids))
    expected = catalog.gpus() if kind == "gpus" else catalog.models()
    assert ids == list(expected)
    if kind == "models":
        assert all(row["tier"] in ("small", "medium", "large") and row["params_total"] > 0 for row in rows)


@pytest.mark.parametrize("kind", ["gpus", "models"])
def test_catalog_table(capsys, columns80, kind):
    code, out, err = run(capsys, "catalog", kind)
    assert code == 0 and err == ""
    assert kind in out and "┃ id" in out


@pytest.mark.parametrize("kind", ["gpus", "models"])
def test_catalog_table_shows_every_id_in_full(capsys, columns80, kind):
    _, out, _ = run(capsys, "catalog", kind)
    ids = list(catalog.gpus() if kind == "gpus" else catalog.models())
    assert [i for i in ids if i not in out] == []


# ---------------------------------------------------------------------------------------------
# plan


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_plan_json_contract(capsys, profile):
    code, data = run_json(capsys, "plan", profile)
    assert code == (0 if all(t["meets_slo"] for t in data["tiers"]) else 3)
    assert {"load", "slo", "tiers"} <= set(data)
    assert [t["tier"] for t in data["tiers"]] == ["small", "medium", "large"]
    for tier in data["tiers"]:
        assert TIER_KEYS <= set(tier), sorted(TIER_KEYS - set(tier))
        for key in DISTS:
            assert {"p50", "p90", "p99"} <= set(tier[key])
        if tier["feasible"]:
            assert tier["gpus"] == tier["replicas"] * tier["tp"] * tier["pp"]
            assert tier["usd_month"] is not None and tier["usd_month"] >= 0
            if tier["gpus"]:
                assert tier["ttft_ms"]["p50"] <= tier["ttft_ms"]["p90"] <= tier["ttft_ms"]["p99"]
        else:
            assert tier["reason"] and tier["usd_month"] is None


def test_plan_table(capsys, columns80):
    code, out, err = run(capsys, "plan", CHATBOT)
    assert code == 0 and err == ""
    for row in ("GPUs", "TTFT p50/p99", "USD/month", "binding", "meets SLO", "API USD/month", "cheaper", "break-even"):
        assert row in out


def test_plan_table_names_each_api_price_and_its_page():
    from planner.tables import api_sources_text, break_even_text

    tiers = [{"tier": "small", "api_source": {"provider": "Groq", "url": "https://groq.example/pricing", "seen": "2026-01-02"},
              "api_usd_per_mtok_input": 0.05, "api_usd_per_mtok_output": 0.08},
             {"tier": "medium", "api_source": {"provider": "profile", "url": None, "seen": None},
              "api_usd_per_mtok_input": 0.06, "api_usd_per_mtok_output": 0.06},
             {"tier": "large", "api_source": None}]
    text = api_sources_text(tiers)
    assert "small: Groq $0.05/$0.08 per M in/out tok (https://groq.example/pricing, seen 2026-01-02)" in text
    assert "medium: profile $0.06/$0.06 per M in/out tok (set in the profile)" in text and "large" not in text
    assert str(break_even_text({"break_even_rps": None, "api_cheaper": "api"})) == "never at this price"
    assert str(break_even_text({"break_even_rps": None, "api_cheaper": "api", "break_even_usd_per_gpu_hour": 0.5411})) \
        == "never at this price (pays at ≤$0.54/GPU-h)"
    assert break_even_text({"break_even_rps": 2.5, "break_even_requests_month": 6.57e6, "break_even_mtok_month": 1642.5}) \
        == "2.5 req/s = 6.57M req/mo = 1,642M out tok/mo"


def test_plan_table_carries_the_validated_error_bands(monkeypatch):
    from planner.engine.knobs import shipped_calibration
    from planner.tables import band

    pct = shipped_calibration().error_pct
    tier = {"error_pct": pct, "validated": {"gpu_family": True, "model_family": True, "engine": True}}
    assert band(tier, "ttft_ms") == f" ±{pct['ttft']:.0f}%"
    assert band(tier, "e2e_ms") == f" ±{max(pct['ttft'], pct['tpot']):.0f}%"  # TTFT plus the decode time
    assert band(tier | {"validated": {"gpu_family": True, "model_family": True, "engine": False}}, "tpot_ms").endswith("?")
    assert band({"error_pct": {}}, "ttft_ms") == ""


def test_plan_toml_export_loads_as_a_profile(capsys, tmp_path):
    out_file = tmp_path / "out.toml"
    code, out, err = run(capsys, "plan", CHATBOT, "--format", "toml", "-o", out_file)
    assert code == 0 and out == "" and err == ""
    loaded = load_profile(out_file).profile
    original = load_profile(CHATBOT).profile
    assert loaded.name == original.name
    assert loaded.scenario() == original.scenario()
    assert [t["tier"] for t in loaded.plan["tiers"]] == ["small", "medium", "large"]
    # the export re-plans to the same fleet
    code, again = run_json(capsys, "plan", out_file)
    assert code == 0
    assert [t["gpus"] for t in again["tiers"]] == [t["gpus"] for t in loaded.plan["tiers"]]
    # an existing output file is not overwritten without --force
    code, _, err = run(capsys, "plan", CHATBOT, "--format", "toml", "-o", out_file)
    assert_usage_error(code, err, str(out_file), "--force")
    code, _, _ = run(capsys, "plan", CHATBOT, "--format", "toml", "-o", out_file, "--force")
    assert code == 0


def test_plan_json_to_file(capsys, tmp_path):
    out_file = tmp_path / "plan.json"
    code, out, _ = run(capsys, "plan", CHATBOT, "--format", "json", "-o", out_file)
    assert code == 0 and out == ""
    assert len(strict_json(out_file.read_text())["tiers"]) == 3


def test_plan_table_to_file_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "plan", CHATBOT, "-o", tmp_path / "plan.txt")
    assert_usage_error(code, err, "-o")


@pytest.mark.parametrize("text, needles", [
    ('name = "x"\n[load\nrate_rps = 3\n', ["bad.toml:2:", "invalid TOML"]),
    ('name = "x"\n[load]\nrate_rps = 3\nratee = 4\n', ["bad.toml", "load.ratee", "unknown key", "rate_rps"]),
    ('name = "x"\n[load]\nrate_rps = -3\n', ["bad.toml", "load.rate_rps"]),
    ('[load]\nrate_rps = 3\n', ["bad.toml", "name"]),
])
def test_plan_bad_profile_exits_2_naming_the_file(capsys, tmp_path, text, needles):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    code, out, err = run(capsys, "plan", bad, "--format", "json")
    assert out == ""
    assert_usage_error(code, err, *needles)


def test_plan_missing_profile(capsys, tmp_path):
    code, _, err = run(capsys, "plan", tmp_path / "missing.toml")
    assert_usage_error(code, err, "missing.toml", "no such file")


def test_plan_infeasible_tier_json_is_finite(capsys, tmp_path):
    profile = tmp_path / "tight.toml"
    profile.write_text('name = "tight"\n[slo]\ntpot_ms = 1\n[fleet]\ngpu = "l4"\ngpus_per_node = 1\n')
    code, data = run_json(capsys, "plan", profile)
    assert code == 3  # a plan was made; no tier can meet the targets
    for tier in data["tiers"]:
        assert tier["feasible"] is False and tier["reason"]
        assert tier["usd_month"] is None and tier["ttft_ms"]["p99"] is None


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("planner ")
    code, out, _ = run(capsys, "predict", "--help")
    assert code == 0 and "--input-len" in out and "vLLM" in out


def test_escape_sequences_from_a_profile_or_csv_never_reach_the_terminal(capsys, tmp_path):
    # a profile written by someone else: its name must not recolour (or retitle) the reader's terminal
    profile = tmp_path / "evil.toml"
    profile.write_text('name = "evil\\u001b[31mRED"\ndescription = "ring\\u0007"\nload.rate_rps = 2\n')
    code, out, err = run(capsys, "plan", profile)
    assert "evil[31mRED" in out
    assert not any(ch in out + err for ch in "\x1b\x07")
    header, good = (ROOT / "planner" / "data" / "measurements.csv").read_text().splitlines()[:2]
    cells = good.split(",")
    cells[0] = "evil\x1b[31mRED"  # model: an unknown model, listed among the rows not predicted
    csv_file = tmp_path / "m.csv"
    csv_file.write_text("\n".join([header, good, ",".join(cells)]) + "\n")
    code, out, err = run(capsys, "validate", csv_file)
    assert "evil[" in out + err
    assert "\x1b" not in out + err


def test_predict_refuses_an_unchunked_budget_below_the_prompt(capsys):
    code, out, err = run(capsys, *BASE, "--offline", "--no-chunked-prefill", "--max-batched-tokens", "512")
    assert_usage_error(code, err, "--max-batched-tokens 512", "--input-len (1,000 tokens)", "at least 1000")
    code, out, err = run(capsys, *BASE, "--offline", "--no-chunked-prefill", "--max-batched-tokens", "1000")
    assert code == 0
