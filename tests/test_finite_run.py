"""A run of N prompts sent at once (engine/finite_run.py) against hand-worked steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.engine import catalog
from planner.engine.finite_run import _simulate, finite_run_point
from planner.engine.knobs import Knobs
from planner.engine.offline import offline_throughput
from planner.engine.roofline import ServingConfig, kv_capacity_tokens, replica_params, step_time
from planner.engine.scenario import LengthDist
from planner.engine.workload import Workload


def params(**cfg):
    return replica_params(catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm"), ServingConfig(**cfg), Knobs())


def workload(l_in: float, l_out: float) -> Workload:
    return Workload(LengthDist(kind="fixed", mean=l_in), LengthDist(kind="fixed", mean=l_out))


def test_one_prompt_is_one_prefill_step_then_a_decode_step_a_token():
    """1,000 prompt tokens in one step (their causal attention 1000^2 / 2), the first token at its
    end; then 3 decode steps at batch 1 over a context of 1,000, 1,001 and 1,002 tokens."""
    p = params()
    first_s, done_s = _simulate(p, np.array([1000.0]), np.array([4.0]))
    prefill = float(step_time(p, 0, 0.0, 1000.0, 1000.0 ** 2 / 2).total_s)
    decodes = sum(float(step_time(p, 1, 1000.0 + k, 0.0, 0.0).total_s) for k in range(3))
    assert first_s[0] == pytest.approx(prefill, rel=1e-12)
    assert done_s[0] == pytest.approx(prefill + decodes, rel=1e-12)
    point = finite_run_point(p, workload(1000, 4), 1)
    assert point.ttft_s["mean"] == pytest.approx(prefill + p.api_overhead_s, rel=1e-12)
    assert point.tpot_s["mean"] == pytest.approx(decodes / 3, rel=1e-12)
    assert point.requests_per_s == pytest.approx(1.0 / (prefill + decodes), rel=1e-12)


def test_prompts_queue_behind_each_other_a_budget_a_step():
    """Three 1,000-token prompts under a 1,000-token budget: step k prefills prompt k (less a token
    for each prompt already decoding), so each first token comes a step after the one before."""
    p = params(max_num_batched_tokens=1000)
    first_s, done_s = _simulate(p, np.full(3, 1000.0), np.full(3, 50.0))
    assert np.all(np.diff(first_s) > 0)
    assert first_s[0] == pytest.approx(float(step_time(p, 0, 0.0, 1000.0, 1000.0 ** 2 / 2).total_s), rel=1e-12)
    # all decode together once the last is in, so they finish in the order they started
    assert np.all(np.diff(done_s) > 0) and np.all(done_s > first_s)


def test_prompts_sent_far_apart_each_run_alone():
    """At one prompt every 10 s the engine is idle when each arrives: each request's TTFT and
    end-to-end time from its arrival are those of one prompt alone, and the run lasts from the
    first prompt sent to the last one's last token."""
    p = params()
    alone = finite_run_point(p, workload(500, 20), 1)
    run = finite_run_point(p, workload(500, 20), 5, rate_rps=0.1)
    assert run.mode == "rate" and run.finite_run and "sent at 0.1 req/s" in run.note
    for stat in ("p50", "p99"):
        assert run.ttft_s[stat] == pytest.approx(alone.ttft_s["mean"], rel=1e-9)
        assert run.e2e_s[stat] == pytest.approx(alone.e2e_s["mean"], rel=1e-9)
    assert run.requests_per_s < 0.1 * 5 / 4  # 5 over the span of 4 gaps and the last one's run


def test_a_faster_rate_approaches_sending_all_at_once():
    p = params()
    wl = workload(1000, 100)
    at_once = finite_run_point(p, wl, 200)
    ttft = [finite_run_point(p, wl, 200, rate_rps=r).ttft_s["mean"] for r in (20.0, 200.0, 20_000.0)]
    assert ttft[0] < ttft[1] < ttft[2] <= at_once.ttft_s["mean"] * 1.001
    assert ttft[2] == pytest.approx(at_once.ttft_s["mean"], rel=0.02)


def test_a_kv_cache_too_small_for_one_prompt_never_finishes():
    p = params(max_num_batched_tokens=8192)
    prompt = float(kv_capacity_tokens(p)) + 16.0
    assert _simulate(p, np.array([prompt]), np.array([2.0])) is None
    assert finite_run_point(p, workload(prompt, 2.0), 3).stable is False


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_a_full_cache_preempts_or_waits_but_every_request_finishes(engine):
    """A cache of tens of requests' whole contexts and 200 requests: vLLM admits on the prompt and
    preempts the newest when decodes outgrow the cache; TensorRT-LLM admits only what it can finish.
    Either way every request gets its first token before its last, and none is lost."""
    p = params(engine=engine, gpu_mem_util=0.3, max_num_seqs=1024)
    whole = 1000.0 + 2000.0
    assert 10 < float(kv_capacity_tokens(p)) / whole < 200
    first_s, done_s = _simulate(p, np.full(200, 1000.0), np.full(200, 2000.0))
    assert np.all(np.isfinite(first_s)) and np.all(done_s > first_s)


def test_a_preempted_prompt_resumes_from_the_prefix_cache():
    """Prompts of 0.4 of the cache each, admitted a chunk at a time: the third is admitted on its
    first chunk and preempted when the two ahead of it decode past the cache. It keeps what
    it prefilled (the prefix cache) and waits, so no step is spent prefilling it again: the run
    is at least as fast as the prompts one after another, and a running request's TPOT is that of
    decoding beside the one prompt in prefill (GPUStack's gpt-oss-120b runs at 32k-token prompts
    on one H100: TPOT 24 ms, median ITL 7 ms)."""
    p = params(max_num_batched_tokens=8192, gpu_mem_util=0.3)
    prompt = float(np.floor(kv_capacity_tokens(p) / 2.5))
    first_s, done_s = _simulate(p, np.full(20, prompt), np.full(20, 100.0))
    alone_first, alone_done = _simulate(p, np.array([prompt]), np.array([100.0]))
    assert float(done_s.max()) < 20 * float(alone_done[0])
    # each request decodes its 99 tokens in its own time beside at most the next prompt's chunks
    chunks = int(np.ceil(prompt / 8192))
    chunk_s = float(step_time(p, 1, prompt, 8192.0, 8192.0 * (prompt - 4096.0)).total_s)
    tpot = (done_s - first_s) / 99.0
    assert float(np.median(tpot)) < (chunks * chunk_s + 99 * float(step_time(p, 1, prompt, 0.0, 0.0).total_s)) / 99.0


def test_a_long_run_approaches_the_steady_state_throughput():
    """Thousands of equal requests: the fill and the drain are a small share of the run, so its
    throughput is near the offline maximum; a run of a batch's worth ends in its drain, well below."""
    p = params(max_num_seqs=256)
    wl = workload(500, 200)
    steady_rps = offline_throughput(p, wl)[0]
    long_run = finite_run_point(p, wl, 5000).requests_per_s
    short_run = finite_run_point(p, wl, 300).requests_per_s
    assert long_run == pytest.approx(steady_rps, rel=0.05)
    # 300 requests: a batch of 256 and 44 more that end the run decoding alone (0.90 of the long run)
    assert short_run < 0.92 * long_run


def predict_json(capsys, *args, exit_code: int = 0) -> dict:
    from planner.cli import main

    base = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--input-len", "1000", "--output-len", "200",
            "--format", "json"]
    assert main(base + list(args)) == exit_code
    return json.loads(capsys.readouterr().out)


def test_predict_gives_what_a_benchmark_of_n_prompts_reports(capsys):
    """`--num-prompts`: sent at once, the last prompt waits behind all the others (TTFT p99 of
    seconds, not the steady state's); from 64 clients, the start-up burst raises the TTFT tail."""
    burst = predict_json(capsys, "--offline", "--num-prompts", "500")
    assert burst["num_prompts"] == 500 and "sent at once" in burst["note"]
    assert burst["ttft_ms"]["p99"] > 2 * burst["ttft_ms"]["p50"] > 2000
    steady = predict_json(capsys, "--concurrency", "64")
    run = predict_json(capsys, "--concurrency", "64", "--num-prompts", "640")
    assert "num_prompts" not in steady and run["num_prompts"] == 640
    assert run["ttft_ms"]["p99"] > 2 * steady["ttft_ms"]["p99"]
    assert run["tpot_ms"]["mean"] == pytest.approx(steady["tpot_ms"]["mean"])


def test_a_benchmark_of_n_prompts_past_capacity_is_predicted_to_its_end(capsys):
    """`--rate R --num-prompts N` past what the replica sustains: no steady state, but the run ends,
    so the planner gives that run's figures (and says so); below capacity the steady state stands."""
    capacity = predict_json(capsys, "--offline")["max_rate_rps"]
    past = predict_json(capsys, "--rate", f"{2 * capacity:.3f}", "--num-prompts", "300")
    # the same rate without a count: an overloaded server, unstable, no finite tail (exit 3)
    open_ended = predict_json(capsys, "--rate", f"{2 * capacity:.3f}", exit_code=3)
    assert open_ended["stable"] is False and open_ended["ttft_ms"]["p99"] is None
    assert past["num_prompts"] == 300 and "no steady state" in past["note"]
    assert past["max_rate_rps"] == pytest.approx(capacity, rel=1e-6)
    assert past["requests_per_s"] < capacity and past["ttft_ms"]["p99"] > past["ttft_ms"]["p50"] > 0
    light = predict_json(capsys, "--rate", f"{capacity / 4:.3f}")
    light_run = predict_json(capsys, "--rate", f"{capacity / 4:.3f}", "--num-prompts", "300")
    assert light_run["ttft_ms"] == light["ttft_ms"] and "note" not in light_run


def test_without_chunked_prefill_a_step_of_whole_prompts_runs_alone():
    """Prefill first: the three prompts are one step (no decode rides along), then they decode."""
    p = params(chunked_prefill=False)
    first_s, done_s = _simulate(p, np.full(3, 800.0), np.full(3, 3.0))
    prefill = float(step_time(p, 0, 0.0, 2400.0, 3 * 800.0 ** 2 / 2).total_s)
    assert first_s == pytest.approx([prefill] * 3, rel=1e-12)
    decodes = sum(float(step_time(p, 3, 3 * (800.0 + k), 0.0, 0.0).total_s) for k in range(2))
    assert done_s == pytest.approx([prefill + decodes] * 3, rel=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), l_in=st.floats(10, 3000), l_out=st.floats(1, 300), budget=st.integers(256, 8192),
       mem=st.floats(0.25, 0.9), engine=st.sampled_from(["vllm", "sglang", "trtllm"]), seqs=st.integers(1, 64))
def test_every_request_of_a_run_finishes_once_and_in_time(n, l_in, l_out, budget, mem, engine, seqs):
    p = params(engine=engine, max_num_batched_tokens=budget, gpu_mem_util=mem, max_num_seqs=seqs)
    rng = np.random.default_rng(n)
    in_len = np.round(l_in * rng.uniform(0.5, 1.5, n))
    out_len = np.maximum(np.round(l_out * rng.uniform(0.5, 1.5, n)), 1.0)
    run = _simulate(p, in_len, out_len)
    if run is None:  # only when one request cannot hold its whole context in the cache
        assert float(np.max(in_len + out_len)) > float(kv_capacity_tokens(p))
        return
    first_s, done_s = run
    assert np.all(np.isfinite(first_s)) and np.all(first_s > 0)
    assert np.all(done_s >= first_s)
    # a one-token output ends with its prompt's step; longer ones need a decode step per token
    assert np.all((done_s > first_s) == (out_len > 1))


@pytest.mark.parametrize("extra", [[], ["--num-prompts", "10"]])
def test_a_prompt_longer_than_the_kv_cache_says_how_much_it_holds(capsys, extra):
    """The cache is named at its size (it used to read "holds 0 tokens" when nothing fit)."""
    import re

    from planner.cli import main

    code = main(["predict", "--model", "llama-3.1-8b", "--gpu", "l4", "--input-len", "100000", "--output-len", "200",
                 "--offline", "--format", "json", *extra])
    reason = json.loads(capsys.readouterr().out)["reason"]
    assert code == 3
    held = int(re.search(r"holds ([\d,]+) tokens", reason).group(1).replace(",", ""))
    assert 10_000 < held < 100_100 and "one request of 100,100 tokens" in reason
