"""Hold the line on the shipped calibration set: `planner validate` must not get worse."""

import json

from planner.cli import main

# Median absolute % error per metric reached with the shipped calibration (planner validate on
# planner/data/measurements.csv: TensorRT-LLM, vLLM and SGLang rows). These are in-sample: the
# knobs were fitted on these rows. What a user should expect on measurements the planner has not
# seen is the cross-validated figure (tests/test_crossval.py, the README). A change to the model
# that raises any of these fails here.
REACHED_MEDIAN_APE = {
    # 729 rows: offline, Poisson rate and fixed concurrency. 10.56 -> 10.68 when gpt-oss's
    # 128-token window layers stopped holding full-context KV (8 rows, on knobs fitted before it;
    # refitting gives 10.56 here but raises itl_ms_mean to 9.34 and moves every family's knobs)
    "output_tok_s": 10.7,
    "total_tok_s": 4.5,  # 71 rows
    "requests_per_s": 3.3,  # 99 rows (Poisson-rate rows serve what is offered when stable)
    "itl_ms_mean": 9.3,  # 53 rows
    "tpot_ms_mean": 10.5,  # 62 rows
    "ttft_ms_mean": 28.4,  # 137 rows
    "e2e_ms_mean": 7.2,  # 79 rows
}


def run_validate(capsys, *args) -> dict:
    assert main(["validate", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_shipped_set_error_does_not_rise(capsys):
    report = run_validate(capsys)
    for metric, limit in REACHED_MEDIAN_APE.items():
        got = report["summary"][metric]["median_ape"]
        assert got <= limit, f"{metric}: median error {got}% rose above {limit}%"
    assert report["overall"]["n"] >= 1300


def test_calibration_beats_default_knobs(capsys):
    calibrated = run_validate(capsys)["overall"]["median_ape"]
    default = run_validate(capsys, "--uncalibrated")["overall"]["median_ape"]
    assert calibrated < default


def test_rows_it_cannot_evaluate_are_listed_with_a_reason(capsys):
    report = run_validate(capsys)
    missing = [r for r in report["rows"] if r["predicted"] is None]
    assert missing and all(r["reason"] for r in missing)
    assert len(report["rows"]) == report["overall"]["n"] + len(missing)


def test_every_mode_is_scored(capsys):
    report = run_validate(capsys)
    scored = {r["mode"] for r in report["rows"] if r["predicted"] is not None}
    assert scored == {"offline", "concurrency", "rate"}


def test_offline_latencies_the_row_cannot_pin_down_are_not_scored(tmp_path, capsys):
    # a burst benchmark's TTFT includes the wait behind every request sent at once, and its ITL
    # grows with the engine's batch cap: neither is predicted from a row that gives neither
    head = "model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,metric,value,source"
    rows = [
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,,,,ttft_ms_mean,3335,https://example.org/a",
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,,,,itl_ms_mean,39,https://example.org/a",
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,64,,,itl_ms_mean,20,https://example.org/a",
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,,,,output_tok_s,9420,https://example.org/a",
    ]
    path = tmp_path / "burst.csv"
    path.write_text("\n".join([head, *rows]) + "\n")
    report = run_validate(capsys, str(path))
    ttft, itl, itl_capped, tok_s = report["rows"]
    assert ttft["predicted"] is None and "sent at once" in ttft["reason"]
    assert itl["predicted"] is None and "max_seqs" in itl["reason"]
    assert itl_capped["predicted"] is not None and tok_s["predicted"] is not None
