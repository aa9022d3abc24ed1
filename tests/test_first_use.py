"""A cold server's first burst (Knobs.first_use_ms): where it shows, and its fit (first_use_fit.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from planner.engine import catalog
from planner.engine.closed_loop import concurrency_point
from planner.engine.first_use_fit import best_cost_ms, burst_rows, fit_first_use
from planner.engine.knobs import Calibration, Knobs
from planner.engine.measurements import Measurement
from planner.engine.predict import PredictRequest, predict
from planner.engine.roofline import ServingConfig, replica_params
from planner.engine.scenario import LengthDist
from planner.engine.serving import Workload
from planner.engine.startup import as_benchmarked, startup_wave_ttft_s, wave_size
from planner.engine.validate import _metric, _predict_row


def run_point(first_use_ms: float, clients: int = 8, num_prompts: int = 80):
    model, gpu = catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm")
    p = replica_params(model, gpu, ServingConfig(), Knobs(first_use_ms=first_use_ms))
    wl = Workload(LengthDist(kind="fixed", mean=1000.0), LengthDist(kind="fixed", mean=200.0))
    steady = concurrency_point(p, wl, clients, detailed=True)
    return p, wl, steady, as_benchmarked(p, wl, steady, clients, num_prompts)


def test_each_request_of_the_burst_waits_for_the_first_use_cost():
    """8 clients, 80 prompts: the burst is a tenth of the run, so 2 s of first-use cost raise the
    mean by exactly 0.2 s and the p99 (inside the burst) by 2 s; the median is the steady state's."""
    p, wl, steady, warm = run_point(0.0)
    _, _, _, cold = run_point(2000.0)
    assert wave_size(p, wl, 8, 80) == 8
    assert cold.ttft_mean_s - warm.ttft_mean_s == pytest.approx(0.2, rel=1e-9)
    assert cold.e2e_mean_s - warm.e2e_mean_s == pytest.approx(0.2, rel=1e-9)
    burst = startup_wave_ttft_s(p, wl, 8)
    assert cold.ttft_s["p99"] == pytest.approx(float(burst.max()) + 2.0, rel=0.02)
    assert cold.ttft_s["p50"] == pytest.approx(warm.ttft_s["p50"], rel=1e-9)


def test_a_server_in_its_steady_state_never_carries_it():
    model, gpu = catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm")
    lengths = dict(input_len=LengthDist(kind="fixed", mean=1000.0), output_len=LengthDist(kind="fixed", mean=200.0))
    cold = Calibration(default=Knobs(first_use_ms=5000.0))
    for req in (PredictRequest(model, gpu, ServingConfig(), mode="concurrency", concurrency=8, **lengths),
                PredictRequest(model, gpu, ServingConfig(), mode="rate", rate_rps=2.0, **lengths),
                # one client has no burst: its first request meets an idle engine like every later one
                PredictRequest(model, gpu, ServingConfig(), mode="concurrency", concurrency=1, num_prompts=10, **lengths)):
        assert predict(req, cold).point.ttft_s == predict(req, Calibration()).point.ttft_s
        assert predict(req, cold).first_use_ms is None
    burst = PredictRequest(model, gpu, ServingConfig(), mode="concurrency", concurrency=8, num_prompts=80, **lengths)
    assert predict(burst, cold).point.ttft_s["mean"] > predict(burst, Calibration()).point.ttft_s["mean"] + 0.4
    assert predict(burst, cold).first_use_ms == 5000.0


def test_predict_says_what_a_cold_start_adds_to_a_run(tmp_path, capsys):
    from planner.cli import main

    path = tmp_path / "cold.toml"
    path.write_text("[default]\nfirst_use_ms = 1500.0\n", encoding="utf-8")
    args = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--input-len", "1000", "--output-len", "200",
            "--concurrency", "8", "--calibration", str(path)]
    assert main([*args, "--num-prompts", "80", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["first_use_ms"] == 1500.0
    assert main([*args, "--format", "json"]) == 0
    assert "first_use_ms" not in json.loads(capsys.readouterr().out)
    assert main([*args, "--num-prompts", "80"]) == 0
    assert "start-up burst waits 1,500 ms more" in " ".join(capsys.readouterr().out.split())


def test_the_grid_finds_the_cost_that_made_the_rows():
    """Three rows linear in the cost (a mean moving a tenth of it, two tails moving all of it),
    made with 2,500 ms, and a fourth that an outlier put ten times too high: soft-L1 bounds its pull
    (least squares in the log would land near 5,000 ms)."""
    base = np.array([100.0, 400.0, 500.0, 450.0])
    slope = np.array([0.1, 1.0, 1.0, 1.0])
    measured = base + 2500.0 * slope
    measured[3] *= 10.0
    assert best_cost_ms(base, slope, measured) == pytest.approx(2500.0, rel=0.05)


def row(metric: str, clients: int, engine: str, gpu: str, first_use_ms: float, input_len: float = 1000.0) -> Measurement:
    """A row of a run of 10 x clients prompts, its value the model's own under the cost."""
    m = Measurement(model="llama-3.1-8b", gpu=gpu, tp=1, pp=None, weights="bf16", kv="bf16", mode="concurrency",
                    rate=None, concurrency=clients, input_len=input_len, output_len=200.0, max_seqs=None,
                    max_batched_tokens=None, prefix_hit=None, metric=metric, value=1.0,
                    source="https://example.org/cold", engine=engine, num_prompts=10 * clients)
    point, reason, mean_in, mean_out = _predict_row(m, Calibration(default=Knobs(first_use_ms=first_use_ms)), Path("."), {})
    assert point is not None, reason
    return replace(m, value=float(_metric(point, m, mean_in, mean_out)))


def test_fit_recovers_each_engines_cost_and_lends_it_where_the_engine_has_no_bursts():
    rows = [row(metric, clients, "sglang", "h100-sxm", 1500.0)
            for clients in (16, 32) for metric in ("ttft_ms_mean", "ttft_ms_p99")]
    rows += [row("ttft_ms_mean", 16, "vllm", "h100-sxm", 0.0) for _ in range(3)]
    assert len(burst_rows(tuple(rows))) == len(rows)
    start = Calibration(families={"hopper": Knobs(), "cdna3": Knobs()},
                        engines={"sglang": {"hopper": Knobs(), "cdna3": Knobs()}, "vllm": {"hopper": Knobs()}})
    skipped: dict[str, str] = {}
    fitted = fit_first_use(tuple(rows), start, Path("."), skipped)
    assert fitted.engines["sglang"]["hopper"].first_use_ms == pytest.approx(1500.0, abs=20.0)
    assert fitted.engines["vllm"]["hopper"].first_use_ms == 0.0
    # SGLang measured no burst on CDNA3: it takes SGLang's own, not another engine's
    assert fitted.engines["sglang"]["cdna3"].first_use_ms == fitted.engines["sglang"]["hopper"].first_use_ms
    assert "sglang cdna3 first_use_ms" in skipped
    assert fitted.default.first_use_ms == 0.0
    # a family outside the refit keeps what it had, and so does everything when no run had a burst
    kept = start.model_copy(update={"families": {**start.families, "ampere": Knobs(first_use_ms=900.0)}})
    assert fit_first_use(tuple(rows), kept, Path("."), {}, {"hopper", "cdna3"}).families["ampere"].first_use_ms == 900.0
    assert fit_first_use((), kept, Path("."), {}) == kept


def test_calibrate_fits_the_cold_start_of_the_runs_in_the_file_and_names_it(tmp_path, capsys):
    from planner.cli import main
    from planner.service import load_calibration

    header = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,"
              "prefix_hit,metric,value,source,engine,input_dist,output_dist,input_p90,output_p90,num_prompts")
    lines = [header]
    # bursts of 8-32 clients started cold, and lone requests that pin the prefill and per-request costs
    runs = [row(metric, clients, "sglang", "h100-sxm", 1500.0) for clients in (8, 16, 32)
            for metric in ("ttft_ms_mean", "ttft_ms_p99", "tpot_ms_mean", "output_tok_s")]
    runs += [replace(row(metric, 1, "sglang", "h100-sxm", 1500.0, input_len), num_prompts=None)
             for input_len in (200.0, 1000.0, 4000.0, 8000.0) for metric in ("ttft_ms_mean", "tpot_ms_mean")]
    for m in runs:
        lines.append(",".join("" if v is None else str(v) for v in (
            m.model, m.gpu, m.tp, m.pp, m.weights, m.kv, m.mode, m.rate, m.concurrency, m.input_len, m.output_len,
            m.max_seqs, m.max_batched_tokens, m.prefix_hit, m.metric, m.value, m.source, m.engine, m.input_dist,
            m.output_dist, m.input_p90, m.output_p90, m.num_prompts)))
    csv = tmp_path / "cold.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(csv), "-o", str(out)]) == 0  # from the shipped knobs
    printed = " ".join(capsys.readouterr().out.split())
    fitted = load_calibration(out).engines["sglang"]["hopper"].first_use_ms
    assert fitted == pytest.approx(1500.0, rel=0.1)
    assert f"sglang hopper: a cold server's start-up burst waits {fitted:g} ms" in printed
    # only the pairs this file refitted are named: vLLM on CDNA3 keeps the shipped cost, unannounced
    assert "vllm cdna3: a cold server" not in printed
