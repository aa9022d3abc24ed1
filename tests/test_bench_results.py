"""`vllm bench serve --save-result` JSON into validate and calibrate: recognised by content, keys
mapped to measurement rows, and what a file does not say taken from flags.

The fixtures have the keys vllm/benchmarks/serve.py writes (a --save-detailed run with planner
metadata, a plain --save-result from a local model path, and an --append-result concurrency sweep);
their per-request latency lists beyond ttfts/latencies are left out to keep them small."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from planner.cli import main
from planner.engine.bench_results import Setup, catalog_model, is_vllm_bench
from planner.engine.measurement_files import read_measurement_files
from planner.engine.measurements import MeasurementsError, packaged_measurements_path

DATA = Path(__file__).parent / "data" / "bench"
DETAILED = DATA / "vllm-4.0qps-Llama-3.1-8B-Instruct-20261201-101512.json"
PLAIN = DATA / "openai-1.0qps-Qwen2.5-7B-Instruct-20261202-060114.json"
SWEEP = DATA / "vllm-sweep-Llama-3.1-8B-Instruct.jsonl"
STAT_KEYS = {"mean": "mean", "median": "p50", "p90": "p90", "p99": "p99"}
METRIC_KEYS = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2el": "e2e"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_detailed_result_with_planner_metadata_needs_no_flags():
    raw = load(DETAILED)
    data = read_measurement_files([DETAILED])
    assert not data.errors
    by_metric = {r.metric: r for r in data.rows}
    for key, name in METRIC_KEYS.items():
        for stat, pct in STAT_KEYS.items():
            assert by_metric[f"{name}_ms_{pct}"].value == pytest.approx(raw[f"{stat}_{key}_ms"])
    assert not {"requests_per_s", "output_tok_s", "total_tok_s"} & by_metric.keys()  # an open-loop rate is its own throughput
    row = data.rows[0]
    assert (row.model, row.gpu, row.tp, row.pp, row.weights, row.kv, row.engine) == (
        raw["planner_model"], raw["planner_gpu"], int(raw["planner_tp"]), 1, raw["planner_weights"], raw["planner_kv"], "vllm")
    assert (row.mode, row.rate, row.concurrency) == ("rate", raw["request_rate"], None)
    assert (row.max_seqs, row.max_batched_tokens, row.prefix_hit) == (1024, 8192, 0.0)
    ok = [i for i, e in enumerate(raw["errors"]) if not e]  # the failed request's lengths are not the load
    ins = np.array(raw["input_lens"], dtype=float)[ok]
    assert row.input_len == pytest.approx(ins.mean()) and row.output_len == 250
    assert (row.input_dist, row.output_dist) == ("lognormal", "fixed")
    assert row.input_p90 == pytest.approx(np.quantile(ins, 0.9))
    assert "1 requests failed" in row.source and row.url == DETAILED.name


def test_a_plain_result_takes_the_setup_from_flags_and_names_what_is_missing():
    with pytest.raises(MeasurementsError) as exc:
        read_measurement_files([PLAIN])
    message = str(exc.value)
    assert PLAIN.name in message and "--gpu and --tp" in message and "\n" not in message
    raw = load(PLAIN)
    data = read_measurement_files([PLAIN], setup=Setup(gpu="h100-sxm", tp=1, weights="bf16"))
    row = data.rows[0]
    assert row.model == "qwen2.5-7b"  # from the local path's last two parts, through the catalog
    assert (row.gpu, row.tp, row.weights) == ("h100-sxm", 1, "bf16")
    assert row.input_len == pytest.approx(raw["total_input_tokens"] / raw["completed"])
    assert row.input_dist == "fixed"  # without per-request lengths only the mean is known
    assert {r.metric for r in data.rows} == {"ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_mean", "tpot_ms_p50",
                                             "tpot_ms_p99", "itl_ms_mean", "itl_ms_p50", "itl_ms_p99"}


def test_flags_fill_only_what_the_file_does_not_say():
    data = read_measurement_files([DETAILED], setup=Setup(gpu="a100-80gb", tp=4, kv="fp8"))
    row = data.rows[0]
    assert (row.gpu, row.tp, row.kv) == ("h100-sxm", 1, "bf16")


def test_an_appended_sweep_is_one_row_set_per_record():
    records = [json.loads(line) for line in SWEEP.read_text().splitlines() if line.strip()]
    data = read_measurement_files([SWEEP], setup=Setup(gpu="h100-sxm", tp=1))
    assert sorted({r.concurrency for r in data.rows}) == sorted(r["max_concurrency"] for r in records)
    assert {r.mode for r in data.rows} == {"concurrency"}
    for record in records:
        rows = {r.metric: r.value for r in data.rows if r.concurrency == record["max_concurrency"]}
        assert rows["requests_per_s"] == pytest.approx(record["request_throughput"])
        assert rows["output_tok_s"] == pytest.approx(record["output_throughput"])
        assert rows["e2e_ms_p99"] == pytest.approx(record["p99_e2el_ms"])
        # the run's size, so validate predicts its start-up burst (engine/startup.py)
        assert {r.num_prompts for r in data.rows if r.concurrency == record["max_concurrency"]} == {record["num_prompts"]}
    rate_rows = read_measurement_files([DETAILED]).rows
    assert {r.num_prompts for r in rate_rows} == {None}  # open loop: no burst


def test_a_run_at_an_infinite_rate_is_a_finite_batch_that_validate_simulates(tmp_path):
    """`vllm bench serve`'s default: every prompt sent at once, a batch that ends in a drain."""
    from planner.engine.validate import evaluate_rows

    raw = load(PLAIN) | {"request_rate": "inf", "max_concurrency": None}
    path = tmp_path / "at-once.json"
    path.write_text(json.dumps(raw))
    data = read_measurement_files([path], setup=Setup(gpu="h100-sxm", tp=1, weights="bf16"))
    assert {(r.mode, r.num_prompts) for r in data.rows} == {("offline", raw["completed"] + (raw.get("failed") or 0))}
    results = evaluate_rows(data)
    predicted = [r for r in results if r.predicted is not None]
    assert {r.row.metric for r in predicted} >= {"output_tok_s", "ttft_ms_mean", "ttft_ms_p99", "tpot_ms_mean"}
    assert all(r.load_band == "finite runs" for r in results)


def test_a_folder_reads_its_csv_and_json_files(tmp_path):
    shutil.copy(DETAILED, tmp_path / DETAILED.name)
    csv = tmp_path / "mine.csv"
    lines = packaged_measurements_path().read_text().splitlines()[:4]
    csv.write_text("\n".join(lines) + "\n")
    data = read_measurement_files([tmp_path])
    sources = {r.url for r in data.rows}
    assert DETAILED.name in sources and len(data.rows) == len(read_measurement_files([DETAILED]).rows) + 3


@pytest.mark.parametrize("text, says", [
    ("Successful requests: 1000\nBenchmark duration (s): 30.85\n", "not a format planner reads"),  # a console log
    ('{"results": [1, 2]}', "not a format planner reads"),
    ("[1, 2]", "not a format planner reads"),
    ('{"duration": 1, "completed": 3, "request_throughput": 1\n', "not valid JSON"),
])
def test_an_unknown_json_gets_one_line_naming_the_known_formats(tmp_path, text, says):
    path = tmp_path / "other.json"
    path.write_text(text)
    with pytest.raises(MeasurementsError) as exc:
        read_measurement_files([path])
    assert says in str(exc.value) and "measurements CSV" in str(exc.value) and "vllm bench serve" in str(exc.value)


def test_bad_metadata_and_counts_are_named(tmp_path):
    raw = load(DETAILED)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(raw | {"planner_tp": "two"}))
    with pytest.raises(MeasurementsError, match="planner_tp"):
        read_measurement_files([path])
    path.write_text(json.dumps(raw | {"completed": 0}))
    with pytest.raises(MeasurementsError, match="no request completed"):
        read_measurement_files([path])
    for share, says in (("1.5", "memory share above 0.05 and at most 0.99"), ("lots", "not a number")):
        path.write_text(json.dumps(raw | {"planner_gpu_mem_util": share}))
        with pytest.raises(MeasurementsError, match=f"planner_gpu_mem_util.*{says}"):
            read_measurement_files([path])
    path.write_text(json.dumps(raw | {"planner_gpu_mem_util": "0.95"}))
    assert {r.gpu_mem_util for r in read_measurement_files([path]).rows} == {0.95}


def test_recognition_and_model_names():
    assert is_vllm_bench(load(PLAIN)) and not is_vllm_bench({"duration": 1})
    assert catalog_model("meta-llama/Llama-3.1-8B-Instruct") == "llama-3.1-8b"
    assert catalog_model("/srv/models/meta-llama/Llama-3.1-8B-Instruct/") == "llama-3.1-8b"
    assert catalog_model("someone/unknown-model") is None


def test_validate_takes_a_result_file_in_one_command(capsys):
    # exit 3: the file's per-token ITL tails are listed with their reason, not scored (the model
    # gives per-request TPOT percentiles)
    assert main(["validate", str(DETAILED), "--format", "json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] and all(r["gpu"] == "h100-sxm" for r in out["rows"])
    assert any(r["predicted"] is not None for r in out["rows"])
    assert {r["metric"] for r in out["rows"] if r["predicted"] is None} == {"itl_ms_p90", "itl_ms_p99"}
    # one file, one source: its error beside the rows', named by the file
    (source,) = out["by_source"]
    assert DETAILED.name in source["source"] and source["rows"] == len(out["rows"])
    assert source["scored"] == sum(r["predicted"] is not None for r in out["rows"])
    assert main(["validate", str(DETAILED)]) == 3
    table = capsys.readouterr().out
    assert "absolute % error per source" in table and DETAILED.name in table
    assert main(["validate", str(PLAIN)]) == 2
    assert "--gpu and --tp" in capsys.readouterr().err


def test_calibrate_fits_a_sweep_in_one_command(tmp_path, capsys):
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(SWEEP), "--gpu", "h100-sxm", "--tp", "1", "-o", str(out)]) == 0
    fitted = tomllib.loads(out.read_text())
    assert fitted["source"] == f"planner calibrate {SWEEP.name}" and fitted["validated_families"] == ["hopper"]
    assert "wrote" in capsys.readouterr().out


def test_the_result_of_an_exported_benchmark_reads_back_as_the_planned_setup(capsys):
    """plan -> export --to bench -> (the tool saves its --metadata into the result) -> validate."""
    from test_export import CHATBOT, commands, options

    assert main(["export", str(CHATBOT), "--to", "bench", "--tier", "medium"]) == 0
    (argv,) = commands(capsys.readouterr().out)
    opts = options(argv)
    metadata = dict(item.split("=", 1) for item in opts["--metadata"])  # serve.py stores KEY=VALUE as top-level keys
    result = load(DETAILED) | {"model_id": opts["--model"][0], "request_rate": float(opts["--request-rate"][0])}
    result = {k: v for k, v in result.items() if not k.startswith("planner_")} | metadata
    from planner.engine.bench_results import result_rows

    rows = result_rows(result, opts["--result-filename"][0], Setup())
    row = rows[0]
    assert (row.model, row.gpu, str(row.tp), row.weights, row.engine) == (
        metadata["planner_model"], metadata["planner_gpu"], metadata["planner_tp"], metadata["planner_weights"], "vllm")
    assert row.rate == float(opts["--request-rate"][0])
    # the server's memory share sets its KV capacity: the plan's own, not predict's default
    assert row.gpu_mem_util == float(metadata["planner_gpu_mem_util"]) == 0.9


GENAI_PERF = DATA / "profile_export_genai_perf.json"
AIPERF = DATA / "profile_export_aiperf.json"
EXPORT_METRICS = {"time_to_first_token": "ttft", "inter_token_latency": "tpot", "request_latency": "e2e"}


@pytest.mark.parametrize("path, mode", [(GENAI_PERF, "concurrency"), (AIPERF, "rate")])
def test_genai_perf_and_aiperf_exports_become_rows(path, mode):
    raw = load(path)
    data = read_measurement_files([path], setup=Setup(gpu="h100-sxm", tp=1))
    rows = {r.metric: r for r in data.rows}
    for key, name in EXPORT_METRICS.items():  # per-request inter-token latency is the planner's TPOT
        for stat, pct in (("avg", "mean"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99")):
            assert rows[f"{name}_ms_{pct}"].value == pytest.approx(raw[key][stat])
    row = data.rows[0]
    assert row.model == "llama-3.1-8b" and row.mode == mode
    assert row.input_len == raw["input_sequence_length"]["avg"] and row.output_len == raw["output_sequence_length"]["avg"]
    if mode == "concurrency":
        assert row.concurrency == raw["input_config"]["perf_analyzer"]["stimulus"]["concurrency"]
        assert rows["requests_per_s"].value == raw["request_throughput"]["avg"]
        assert row.input_dist == "lognormal" and row.input_p90 == raw["input_sequence_length"]["p90"]
    else:
        assert row.rate == raw["input_config"]["loadgen"]["request_rate"] and "requests_per_s" not in rows
        assert row.input_dist == "fixed"


def test_an_export_without_its_load_is_refused(tmp_path):
    raw = load(AIPERF)
    path = tmp_path / "profile_export_aiperf.json"
    path.write_text(json.dumps(raw | {"input_config": {"endpoint": raw["input_config"]["endpoint"]}}))
    with pytest.raises(MeasurementsError, match="concurrency or request rate"):
        read_measurement_files([path], setup=Setup(gpu="h100-sxm", tp=1))


GUIDELLM = DATA / "guidellm-sweep-report.json"


def test_a_guidellm_report_is_one_row_set_per_benchmark():
    raw = load(GUIDELLM)
    data = read_measurement_files([GUIDELLM], setup=Setup(gpu="h100-sxm", tp=1))
    loads = [(r.mode, r.rate, r.concurrency) for r in data.rows]
    assert list(dict.fromkeys(loads)) == [("concurrency", None, 1), ("rate", 2.0, None), ("offline", None, None)]
    for bench, load_ in zip(raw["benchmarks"], dict.fromkeys(loads)):
        rows = {r.metric: r.value for r in data.rows if (r.mode, r.rate, r.concurrency) == load_}
        metrics = bench["metrics"]
        assert rows["ttft_ms_p99"] == metrics["time_to_first_token_ms"]["successful"]["percentiles"]["p99"]
        # the time per token after the first is GuideLLM's inter-token latency, not its TPOT
        assert rows["tpot_ms_mean"] == metrics["inter_token_latency_ms"]["successful"]["mean"]
        assert rows["e2e_ms_p50"] == pytest.approx(metrics["request_latency"]["successful"]["median"] * 1e3)
        assert ("requests_per_s" in rows) == (load_[0] != "rate")
    assert {r.model for r in data.rows} == {"llama-3.1-8b"}


def test_a_guidellm_strategy_the_planner_cannot_model_is_named(tmp_path):
    raw = load(GUIDELLM)
    raw["benchmarks"][1]["args"]["strategy"] = {"type_": "replay"}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(MeasurementsError, match="benchmark 2: a strategy planner cannot model \\(replay\\)"):
        read_measurement_files([path], setup=Setup(gpu="h100-sxm", tp=1))
