"""A run of N prompts sent at once (engine/finite_run.py) against hand-worked steps."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_a_long_run_approaches_the_steady_state_throughput():
    """Thousands of equal requests: the fill and the drain are a small share of the run, so its
    throughput is near the offline maximum; a run of a batch's worth ends in its drain, well below."""
    p = params(max_num_seqs=256)
    wl = workload(500, 200)
    steady_rps = offline_throughput(p, wl)[0]
    long_run = finite_run_point(p, wl, 5000).requests_per_s
    short_run = finite_run_point(p, wl, 300).requests_per_s
    assert long_run == pytest.approx(steady_rps, rel=0.05)
    assert short_run < 0.9 * long_run
