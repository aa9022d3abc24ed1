"""Hold the line on the shipped calibration set: `planner validate` must not get worse."""

import contextlib
import io
import json

import pytest

from planner.cli import main

# Median absolute % error per metric reached with the shipped calibration (planner validate on
# planner/data/measurements.csv: TensorRT-LLM, vLLM and SGLang rows). These are in-sample: the
# knobs were fitted on these rows. What a user should expect on measurements the planner has not
# seen is the cross-validated figure (tests/test_crossval.py, the README). A change to the model
# that raises any of these fails here.
REACHED_MEDIAN_APE = {
    "output_tok_s": 8.4,  # 724 rows: offline, Poisson rate (past capacity too) and fixed concurrency
    "total_tok_s": 4.5,  # 60 rows
    "requests_per_s": 2.5,  # 97 rows (Poisson-rate rows serve what is offered when stable)
    "itl_ms_mean": 6.7,  # 62 rows
    "tpot_ms_mean": 8.9,  # 70 rows
    "ttft_ms_mean": 13.6,  # 146 rows
    "e2e_ms_mean": 8.2,  # 79 rows
}
# Runs of N prompts sent at once or at a rate past capacity (GPUStack's vLLM bench runs, TensorRT-LLM's
# 500-prompt runs, DataCrunch's SGLang runs), simulated to their end: their own summary, far from the
# steady state's figures.
FINITE_RUN_MEDIAN_APE = {"output_tok_s": 30.1, "ttft_ms_mean": 27.2, "tpot_ms_mean": 23.2}


def run_validate(capsys, *args) -> dict:
    code = main(["validate", "--format", "json", *args])
    return _checked(code, capsys.readouterr().out)


def _checked(code: int, out: str) -> dict:
    report = json.loads(out)
    # the exit rule: 3 when some row could not be read or predicted (each listed with its reason)
    assert code == (0 if all(r["predicted"] is not None for r in report["rows"]) and not report["unparsed"] else 3)
    return report


@pytest.fixture(scope="module")
def shipped_report() -> dict:
    """`planner validate --format json` on the shipped set with the shipped calibration, run once
    for the tests that read it (a quarter of a minute each)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["validate", "--format", "json"])
    return _checked(code, out.getvalue())


# the measurements header with num_prompts: how many requests a run sent
HEAD_N = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,"
          "metric,value,source,num_prompts")


def validate_csv(path, capsys, head: str, rows: list[str]) -> dict:
    """`planner validate` on a CSV of these rows under this header."""
    path.write_text("\n".join([head, *rows]) + "\n")
    return run_validate(capsys, str(path))


def test_shipped_set_error_does_not_rise(shipped_report):
    report = shipped_report
    for metric, limit in REACHED_MEDIAN_APE.items():
        got = report["summary"][metric]["median_ape"]
        assert got <= limit, f"{metric}: median error {got}% rose above {limit}%"
    assert report["overall"]["n"] >= 1300
    for metric, limit in FINITE_RUN_MEDIAN_APE.items():
        got = report["finite_runs"]["summary"][metric]["median_ape"]
        assert got <= limit, f"finite runs' {metric}: median error {got}% rose above {limit}%"


def test_calibration_beats_default_knobs(capsys, shipped_report):
    calibrated = shipped_report["overall"]["median_ape"]
    default = run_validate(capsys, "--uncalibrated")["overall"]["median_ape"]
    assert calibrated < default


def test_rows_it_cannot_evaluate_are_listed_with_a_reason(shipped_report):
    report = shipped_report
    missing = [r for r in report["rows"] if r["predicted"] is None]
    assert missing and all(r["reason"] for r in missing)
    finite = report["finite_runs"]["overall"]["n"]
    assert len(report["rows"]) == report["overall"]["n"] + finite + len(missing)


def test_every_mode_is_scored(shipped_report):
    report = shipped_report
    scored = {r["mode"] for r in report["rows"] if r["predicted"] is not None}
    assert scored == {"offline", "concurrency", "rate"}


def test_offline_latencies_the_row_cannot_pin_down_are_not_scored(tmp_path, capsys):
    # a burst benchmark's TTFT includes the wait behind every request sent at once, and its ITL
    # grows with the engine's batch cap: neither is predicted from a row that gives neither
    head = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,"
            "metric,value,source")
    rows = [
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,,,,ttft_ms_mean,3335,https://example.org/a",
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,,,,itl_ms_mean,39,https://example.org/a",
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,64,,,itl_ms_mean,20,https://example.org/a",
        "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,467,256,,,,output_tok_s,9420,https://example.org/a",
    ]
    report = validate_csv(tmp_path / "burst.csv", capsys, head, rows)
    ttft, itl, itl_capped, tok_s = report["rows"]
    assert ttft["predicted"] is None and "sent at once" in ttft["reason"]
    assert itl["predicted"] is None and "max_seqs" in itl["reason"]
    assert itl_capped["predicted"] is not None and tok_s["predicted"] is not None


def test_an_offline_run_of_a_stated_number_of_prompts_is_simulated_to_its_end(tmp_path, capsys):
    # `vllm bench serve` at an infinite rate sends its N prompts at once and ends with the longest
    # outputs decoding nearly alone: the run is simulated as it ran (finite_run.py), TTFT included;
    # the same row without N is the steady state's offline throughput, which has no TTFT
    base = "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,215,194,1024,8192,,{metric},{value},https://example.org/a,{n}"
    metrics = (("output_tok_s", 7800), ("tpot_ms_mean", 48), ("ttft_ms_p99", 9000))
    rows = [base.format(metric=m, value=v, n=n) for n in (100, 1000, "") for m, v in metrics]
    report = validate_csv(tmp_path / "at_once.csv", capsys, HEAD_N, rows)["rows"]
    short, long, steady = report[:3], report[3:6], report[6:]
    assert all(r["predicted"] is not None for r in short + long)
    # a tenth of the prompts: the drain weighs more (a smaller mean batch), and the last first token comes sooner
    assert short[0]["predicted"] < long[0]["predicted"]
    assert long[0]["predicted"] == pytest.approx(steady[0]["predicted"], rel=0.05)
    assert short[2]["predicted"] < long[2]["predicted"]
    assert steady[2]["predicted"] is None and "sent at once" in steady[2]["reason"]


def test_a_rate_past_capacity_is_scored_on_the_throughput_it_saturates_at(tmp_path, capsys):
    # offered far more than a replica serves, the engine always has a queue: it completes requests
    # at its offline throughput, which a rate sweep reports (TensorRT-LLM's 70B on 4 x H100 offered
    # 32 req/s and completed 16); the latencies of a queue that only grows are not predicted
    base = "llama-3.1-8b,h100-sxm,1,,bf16,bf16,{mode},{rate},,467,256,,,,{metric},{value},https://example.org/a"
    rows = [base.format(mode="rate", rate=1000, metric="requests_per_s", value=30),
            base.format(mode="rate", rate=1000, metric="output_tok_s", value=7700),
            base.format(mode="rate", rate=1000, metric="ttft_ms_mean", value=9000),
            base.format(mode="offline", rate="", metric="requests_per_s", value=30)]
    head = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,"
            "metric,value,source")
    rps, tok_s, ttft, offline = validate_csv(tmp_path / "past.csv", capsys, head, rows)["rows"]
    assert rps["predicted"] == pytest.approx(offline["predicted"], rel=1e-5)
    assert rps["predicted"] < 1000 / 10
    assert tok_s["predicted"] == pytest.approx(rps["predicted"] * 256, rel=1e-5)
    assert ttft["predicted"] is None and "at or above the replica's maximum" in ttft["reason"]


def test_a_run_of_n_prompts_past_capacity_is_simulated_to_its_end(tmp_path, capsys):
    # a rate sweep's run of 500 prompts at 32 req/s on a replica that completes about 16 has no
    # steady state, but it ends: the queue grows while the prompts arrive and empties after the
    # last (TensorRT-LLM's table: TTFT 1.2 s against 9.1 s with all 500 sent at once). Such a row
    # is scored with the runs of N prompts, apart from the steady state's bands; below capacity
    # the same N changes nothing.
    base = "llama-3.1-70b,h100-sxm,4,,bf16,bf16,{mode},{rate},,467,256,,,,{metric},{value},https://example.org/a,{n}"
    rows = [base.format(mode="rate", rate=32, metric=m, value=v, n=n) for n in (250, 500, "")
            for m, v in (("ttft_ms_mean", 1229), ("requests_per_s", 16))]
    rows += [base.format(mode="offline", rate="", metric="ttft_ms_mean", value=9123, n=500)]
    rows += [base.format(mode="rate", rate=2, metric="ttft_ms_mean", value=62, n=n) for n in (500, "")]
    report = validate_csv(tmp_path / "past.csv", capsys, HEAD_N, rows)["rows"]
    ttft_250, rps_250, ttft_500, rps_500, ttft_open, rps_open, at_once, light_run, light = report
    assert all(r["load_band"] == "finite runs" for r in (ttft_250, rps_250, ttft_500, rps_500, at_once))
    assert ttft_open["predicted"] is None and "at or above the replica's maximum" in ttft_open["reason"]
    # the backlog a longer run builds: the mean wait grows with N, and stays below sending all at once
    assert 0 < ttft_250["predicted"] < ttft_500["predicted"] < at_once["predicted"]
    # completions over the run's length, below what the replica sustains (the ramp and the drain)
    assert rps_500["predicted"] < rps_open["predicted"]
    assert light_run["predicted"] == pytest.approx(light["predicted"]) and light_run["load_band"] != "finite runs"


def test_a_tail_percentile_of_too_short_a_run_is_listed_not_scored(tmp_path, capsys):
    # 40 requests: one request in a hundred is less than one, so the "p99" is the run's slowest one
    # or two; its p90 has four requests above it and its median twenty: both are scored. A run of a
    # hundred has one request above its p99.
    base = "llama-3.1-8b,h100-sxm,1,,bf16,bf16,concurrency,,4,1000,200,,,,{metric},100,https://example.org/a,{n}"
    rows = [base.format(metric=m, n=n) for m, n in (("ttft_ms_p99", 40), ("e2e_ms_p99", 99), ("ttft_ms_p90", 40),
                                                    ("ttft_ms_p50", 40), ("ttft_ms_p99", 100))]
    p99_40, e2e_99, p90_40, p50_40, p99_100 = validate_csv(tmp_path / "short.csv", capsys, HEAD_N, rows)["rows"]
    for r, n in ((p99_40, 40), (e2e_99, 99)):
        assert r["predicted"] is None
        assert f"of a run of {n} requests is its slowest one or two" in r["reason"]
        assert "a p99 needs at least 100 requests" in r["reason"]
    assert all(r["predicted"] is not None for r in (p90_40, p50_40, p99_100))


def test_a_closed_loop_run_of_known_length_includes_its_start_up_burst(tmp_path, capsys):
    # 64 clients started at once on a run of 640 prompts: the first 64 queue behind each other's
    # prefill, a tenth of the run, so they set TTFT p99 and raise the mean; without num_prompts the
    # steady state alone is predicted; one client has no burst
    base = "llama-3.1-8b,h100-sxm,1,,bf16,bf16,concurrency,,{c},2000,500,,,,{metric},100,https://example.org/a,{n}"
    rows = [base.format(c=c, metric=metric, n=n) for c, n in ((64, ""), (64, 640), (1, ""), (1, 100))
            for metric in ("ttft_ms_p99", "ttft_ms_mean")]
    p = [r["predicted"] for r in validate_csv(tmp_path / "closed.csv", capsys, HEAD_N, rows)["rows"]]
    steady_p99, steady_mean, burst_p99, burst_mean, one_p99, one_mean, one_n_p99, one_n_mean = p
    assert burst_p99 > 3 * steady_p99  # 64 prompts of 2,000 tokens: about 16 budget-sized steps
    assert steady_mean < burst_mean < burst_p99
    assert (one_n_p99, one_n_mean) == (one_p99, one_mean)
