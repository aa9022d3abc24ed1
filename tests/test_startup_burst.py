"""The start-up burst of a closed-loop benchmark (engine/startup.py) against hand-worked steps."""

from __future__ import annotations

import numpy as np
import pytest

from planner.engine import catalog
from planner.engine.knobs import Knobs
from planner.engine.roofline import ServingConfig, replica_params, step_time
from planner.engine.scenario import LengthDist
from planner.engine.serving import OperatingPoint, Workload
from planner.engine.startup import startup_wave_ttft_s, wave_size, with_startup_wave


def params(**cfg):
    model, gpu = catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm")
    return replica_params(model, gpu, ServingConfig(**cfg), Knobs())


def workload(l_in: float, l_out: float = 100.0) -> Workload:
    return Workload(LengthDist(kind="fixed", mean=l_in), LengthDist(kind="fixed", mean=l_out))


def test_a_burst_that_fits_one_step_finishes_together():
    """Four 1,000-token prompts under an 8,192-token budget: one step of 4,000 prompt tokens,
    causal attention 4 x 1000^2 / 2, and every first token at its end."""
    p = params(max_num_batched_tokens=8192)
    ttft = startup_wave_ttft_s(p, workload(1000), 4)
    one_step = float(step_time(p, 0, 0.0, 4000.0, 4 * 1000.0 ** 2 / 2).total_s) + p.api_overhead_s
    assert ttft == pytest.approx([one_step] * 4)


def test_a_budget_of_one_prompt_a_step_serves_them_in_order():
    """Budget 1,001 with 1,000-token prompts: step k prefills prompt k (its room shrinking by a
    token for each prompt already decoding) so chunks straddle prompts; each first token comes
    later than the one before, and the first equals one lone 1,000-token prefill step."""
    p = params(max_num_batched_tokens=1001)
    ttft = startup_wave_ttft_s(p, workload(1000), 3)
    first = float(step_time(p, 0, 0.0, 1000.0, 1000.0 ** 2 / 2).total_s) + p.api_overhead_s
    assert ttft[0] == pytest.approx(first, rel=0.01)
    assert np.all(np.diff(ttft) > 0)
    assert ttft[2] == pytest.approx(3 * (first - p.api_overhead_s) + p.api_overhead_s, rel=0.05)


def test_without_chunked_prefill_the_burst_is_one_step():
    p = params(chunked_prefill=False)
    ttft = startup_wave_ttft_s(p, workload(500), 6)
    assert len(set(np.round(ttft, 12))) == 1


def test_the_wave_is_capped_by_the_engine_and_the_run():
    p = params(max_num_seqs=16)
    wl = workload(1000)
    assert wave_size(p, wl, 64, 640) == 16  # the running-batch limit admits 16
    assert wave_size(p, wl, 8, 5) == 5  # a run of 5 prompts has a burst of 5
    assert wave_size(p, wl, 8, 80) == 8


def test_mixing_means_is_exact_and_the_burst_sets_the_tail():
    """Steady TTFT mean 0.1 s (p50 0.1, p90 0.15, p99 0.2); a burst of 2 of 20 requests at 1 s:
    mean 0.9 x 0.1 + 2 x 1 / 20 = 0.19 s; the top 10% are the burst, so p99 is 1 s; E2E's mean
    moves by the same 0.09 s."""
    point = OperatingPoint(mode="concurrency", stable=True, ttft_mean_s=0.1, e2e_mean_s=2.0,
                           ttft_s={"mean": 0.1, "p50": 0.1, "p90": 0.15, "p99": 0.2}, e2e_s={"mean": 2.0, "p99": 3.0})
    mixed = with_startup_wave(point, np.array([1.0, 1.0]), 20)
    assert mixed.ttft_mean_s == pytest.approx(0.19)
    assert mixed.ttft_s["p99"] == pytest.approx(1.0)
    assert 0.1 <= mixed.ttft_s["p50"] <= 0.15
    assert mixed.e2e_mean_s == pytest.approx(2.09)
    assert mixed.e2e_s["p99"] == 3.0
    assert point.ttft_mean_s == 0.1  # the steady point is left as it was


def test_means_only_points_mix_their_means():
    point = OperatingPoint(mode="concurrency", stable=True, ttft_mean_s=0.2, e2e_mean_s=1.0,
                           ttft_s={"mean": 0.2}, e2e_s={"mean": 1.0})
    mixed = with_startup_wave(point, np.array([0.6]), 4)
    assert mixed.ttft_s == {"mean": pytest.approx(0.75 * 0.2 + 0.6 / 4)}
    assert mixed.e2e_mean_s == pytest.approx(1.0 + mixed.ttft_mean_s - 0.2)
