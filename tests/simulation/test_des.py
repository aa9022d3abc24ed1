"""Tests of the serving-replica discrete-event simulator itself (hand-checkable cases and
queueing-theory limits), so that it can be trusted as a reference for the analytical model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from . import des
from .des import SimConfig, SimResult, simulate, simulate_trace

D = 0.010  # a constant 10 ms step


def const_step(dt: float = D):
    return lambda n_decode, ctx_sum, n_prefill, attn: dt


def fixed_lengths(input_len: int, output_len: int):
    return lambda rng, n: (np.full(n, input_len), np.full(n, output_len))


def recording_step(calls: list, dt: float = D):
    def step(n_decode, ctx_sum, n_prefill, attn):
        calls.append((n_decode, ctx_sum, n_prefill, attn))
        return dt

    return step


def lognormal_lengths(rng: np.random.Generator, n: int):
    inp = np.clip(np.round(rng.lognormal(math.log(600) - 0.32, 0.8, n)), 1, 6000).astype(int)
    out = np.clip(np.round(rng.lognormal(math.log(150) - 0.4, 0.9, n)), 1, 1500).astype(int)
    return inp, out


def gpu_like_step(n_decode, ctx_sum, n_prefill, attn):
    return 0.006 + 2e-5 * n_decode + 5e-9 * ctx_sum + 2.7e-5 * n_prefill + 1e-10 * attn


def one(**kw) -> SimConfig:
    return SimConfig(rate_rps=1.0, n_requests=1, warmup_requests=0, **kw)


# ---------------------------------------------------------------- hand-checked single requests


def test_single_request_prefill_then_decodes():
    calls: list = []
    r = simulate(one(), fixed_lengths(100, 5), recording_step(calls))
    assert r.ttft_s == pytest.approx([0.010])
    assert r.e2e_s == pytest.approx([0.050])
    assert r.tpot_s == pytest.approx([0.010])
    # one prefill step (100 tokens, attention work 100 * 100/2), then 4 decodes whose context is
    # prompt + tokens generated so far
    assert calls == [(0, 0.0, 100, 5000.0), (1, 101.0, 0, 0.0), (1, 102.0, 0, 0.0),
                     (1, 103.0, 0, 0.0), (1, 104.0, 0, 0.0)]
    assert r.n_steps == 5 and r.preemptions == 0 and r.stable
    assert r.utilization == pytest.approx(1.0)  # a lone request keeps the engine busy throughout


def test_chunked_prefill_takes_four_steps():
    calls: list = []
    r = simulate(one(max_batched_tokens=64), fixed_lengths(200, 1), recording_step(calls))
    assert r.ttft_s == pytest.approx([0.040])
    assert r.e2e_s == pytest.approx([0.040])  # output_len 1 finishes at its prefill step
    assert r.tpot_s.size == 0
    assert [c[2] for c in calls] == [64, 64, 64, 8]
    # chunk * (chunk/2 + already prefilled); the chunks add up to the full-prompt L^2/2
    assert [c[3] for c in calls] == pytest.approx([2048.0, 6144.0, 10240.0, 1568.0])
    assert sum(c[3] for c in calls) == pytest.approx(200**2 / 2)


def test_output_len_one_finishes_in_prefill_step():
    r = simulate(one(), fixed_lengths(30, 1), const_step())
    assert r.ttft_s == pytest.approx([D]) and r.e2e_s == pytest.approx([D])


def trace(cfg, arrivals, inputs, outputs, step=None):
    return simulate_trace(cfg, np.array(arrivals, float), np.array(inputs), np.array(outputs),
                          step or const_step())


def test_chunked_mixes_decode_and_prefill_in_one_step():
    # A arrives at 0 (10 in, 3 out); B at 5 ms (10 in, 1 out), seen at the 10 ms step boundary.
    cfg = SimConfig(rate_rps=1.0, n_requests=2, warmup_requests=0)
    calls: list = []
    r = trace(cfg, [0.0, 0.005], [10, 10], [3, 1], recording_step(calls))
    assert r.ttft_s == pytest.approx([0.010, 0.015])
    assert r.e2e_s == pytest.approx([0.030, 0.015])
    assert calls[1] == (1, 11.0, 10, 50.0)  # A's decode rides along with B's prompt


def test_no_chunking_prefill_step_pauses_decodes():
    cfg = SimConfig(rate_rps=1.0, n_requests=2, warmup_requests=0, max_batched_tokens=None)
    calls: list = []
    r = trace(cfg, [0.0, 0.005], [10, 10], [3, 1], recording_step(calls))
    assert r.ttft_s == pytest.approx([0.010, 0.015])
    assert r.e2e_s == pytest.approx([0.040, 0.015])  # A waits out B's prefill-only step
    assert r.tpot_s == pytest.approx([0.015])
    assert calls[1] == (0, 0.0, 10, 50.0)


def test_no_chunking_batches_whole_prompts():
    cfg = SimConfig(rate_rps=1.0, n_requests=3, warmup_requests=0, max_batched_tokens=None)
    calls: list = []
    trace(cfg, [0.0, 0.0, 0.0], [5000, 7000, 9000], [1, 1, 1], recording_step(calls))
    assert calls == [(0, 0.0, 21000, 5000**2 / 2 + 7000**2 / 2 + 9000**2 / 2)]


def test_budget_shared_fcfs_between_prompts():
    cfg = SimConfig(rate_rps=1.0, n_requests=2, warmup_requests=0, max_batched_tokens=100)
    calls: list = []
    r = trace(cfg, [0.0, 0.0], [70, 70], [1, 1], recording_step(calls))
    # step 1: A 70 + B 30; step 2: B's remaining 40 (attention work continues B's prompt)
    assert [c[2] for c in calls] == [100, 40]
    assert calls[0][3] == pytest.approx(70 * 35 + 30 * 15)
    assert calls[1][3] == pytest.approx(40 * (20 + 30))
    assert r.ttft_s == pytest.approx([0.010, 0.020])


def test_recompute_preemption_hand_checked():
    # 3 blocks of 16. A (16 in, 20 out) and B (16 in, 2 out) both admitted at t=0 (1 block each).
    # Step 2: A takes the last free block for its 17th token; B then needs one too and preempts
    # itself (most recently admitted). Its 17-token recompute prompt needs 2 blocks: only 1 is
    # free, so it waits (head-of-line) until A finishes at 200 ms, then re-prefills in one step.
    cfg = SimConfig(rate_rps=1.0, n_requests=2, warmup_requests=0, kv_capacity_tokens=48)
    calls: list = []
    r = trace(cfg, [0.0, 0.0], [16, 16], [20, 2], recording_step(calls))
    assert r.preemptions == 1
    assert r.ttft_s == pytest.approx([0.010, 0.010])
    assert r.e2e_s == pytest.approx([0.200, 0.210])
    assert r.tpot_s == pytest.approx([0.190 / 19, 0.200])
    assert calls[-1] == (0, 0.0, 17, 17 * 8.5)


def test_request_larger_than_kv_cache_is_rejected():
    cfg = SimConfig(rate_rps=1.0, n_requests=1, warmup_requests=0, kv_capacity_tokens=160)
    with pytest.raises(ValueError, match="KV blocks"):
        simulate(cfg, fixed_lengths(150, 20), const_step())  # peaks at 169 tokens = 11 blocks
    simulate(cfg, fixed_lengths(150, 11), const_step())  # peaks at exactly 160 tokens: fits


# ---------------------------------------------------------------- queueing-theory limits


def md1_sojourn(lam: float, s: float) -> float:
    return s + lam * s * s / (2 * (1 - lam * s))


@pytest.mark.parametrize(("rho", "tol"), [(0.5, 0.03), (0.8, 0.06)])
def test_prefill_only_is_md1(rho, tol):
    # output_len 1, one prompt per step, constant step: each request is one step of service D.
    cfg = SimConfig(rate_rps=rho / D, n_requests=50000, warmup_requests=2000,
                    max_batched_tokens=100, seed=1)
    r = simulate(cfg, fixed_lengths(100, 1), const_step())
    assert r.ttft_s.mean() == pytest.approx(md1_sojourn(rho / D, D), rel=tol)
    assert np.array_equal(r.ttft_s, r.e2e_s)
    assert r.utilization == pytest.approx(rho, rel=0.02)
    assert r.mean_batch == 0.0 and r.stable


def test_one_sequence_at_a_time_is_md1_with_k_steps():
    # max_num_seqs 1: a request holds the engine for 1 prefill + (k-1) decode steps = k*D.
    k = 8
    s = k * D
    lam = 0.5 / s
    cfg = SimConfig(rate_rps=lam, n_requests=20000, warmup_requests=1000, max_num_seqs=1, seed=2)
    r = simulate(cfg, fixed_lengths(50, k), const_step())
    assert r.e2e_s.mean() == pytest.approx(md1_sojourn(lam, s), rel=0.03)
    assert r.tpot_s == pytest.approx(np.full(r.tpot_s.size, D))
    assert r.mean_batch == pytest.approx(0.5 * (k - 1) / k, rel=0.03)  # decode share of busy time


def test_littles_law_for_decode_phase():
    cfg = SimConfig(rate_rps=14.0, n_requests=12000, warmup_requests=1000, seed=3)
    r = simulate(cfg, lognormal_lengths, gpu_like_step)
    # mean number decoding = throughput * mean time spent decoding (first token -> finish)
    decode_time = (r.e2e_s - r.ttft_s).mean()
    assert r.mean_batch == pytest.approx(cfg.rate_rps * decode_time, rel=0.05)


# ---------------------------------------------------------------- determinism, limits, stability


def test_reproducible_and_seed_sensitive():
    cfg = SimConfig(rate_rps=14.0, n_requests=3000, warmup_requests=300, seed=7)
    a = simulate(cfg, lognormal_lengths, gpu_like_step)
    b = simulate(cfg, lognormal_lengths, gpu_like_step)
    c = simulate(SimConfig(rate_rps=14.0, n_requests=3000, warmup_requests=300, seed=8),
                 lognormal_lengths, gpu_like_step)
    for x in (a, c):
        for arr in (x.ttft_s, x.tpot_s, x.e2e_s):
            assert arr.size > 0 and np.all(np.isfinite(arr)) and np.all(arr > 0)
        assert x.ttft_s.size == x.e2e_s.size == 2700
        assert np.all(x.e2e_s >= x.ttft_s)
        assert math.isfinite(x.mean_batch) and 0 < x.utilization <= 1
    assert np.array_equal(a.ttft_s, b.ttft_s) and np.array_equal(a.e2e_s, b.e2e_s)
    assert np.array_equal(a.tpot_s, b.tpot_s) and a.mean_batch == b.mean_batch
    assert not np.array_equal(a.e2e_s, c.e2e_s)


def test_max_num_seqs_respected():
    cfg = SimConfig(rate_rps=40.0, n_requests=3000, warmup_requests=300, max_num_seqs=32, seed=5)
    r = simulate(cfg, lognormal_lengths, gpu_like_step)
    assert r.max_running == 32  # saturated, never above the cap
    assert r.mean_batch <= 32


@pytest.mark.parametrize("kv_blocks", [400, 800])
def test_tiny_kv_cache_preempts_and_still_completes(kv_blocks):
    # 500-token prompts take 32 blocks at admission and grow to 50 blocks by their last decode
    cfg = SimConfig(rate_rps=8.0, n_requests=2000, warmup_requests=200, seed=6)
    roomy = simulate(cfg, fixed_lengths(500, 300), gpu_like_step)
    tiny = simulate(SimConfig(rate_rps=8.0, n_requests=2000, warmup_requests=200, seed=6,
                              kv_capacity_tokens=16 * kv_blocks),
                    fixed_lengths(500, 300), gpu_like_step)
    assert roomy.preemptions == 0 and roomy.max_running > kv_blocks // 32
    assert tiny.preemptions > 100
    assert tiny.e2e_s.size == 1800 and np.all(np.isfinite(tiny.e2e_s))
    assert tiny.max_running <= kv_blocks // 32  # admission never over-commits the cache
    assert tiny.e2e_s.mean() > roomy.e2e_s.mean()


def test_overload_is_flagged_unstable():
    # rho = 2 on an M/D/1: the queue passes the backlog cap and the run stops early
    cfg = SimConfig(rate_rps=2 / D, n_requests=10000, warmup_requests=100, max_batched_tokens=10)
    r = simulate(cfg, fixed_lengths(10, 1), const_step())
    assert not r.stable
    assert r.e2e_s.size < 9900
    # mild overload runs to completion but the backlog keeps growing
    cfg = SimConfig(rate_rps=1.2 / D, n_requests=5000, warmup_requests=100, max_batched_tokens=10)
    r = simulate(cfg, fixed_lengths(10, 1), const_step())
    assert not r.stable and r.e2e_s.size == 4900
    ok = simulate(SimConfig(rate_rps=0.9 / D, n_requests=5000, warmup_requests=100,
                            max_batched_tokens=10), fixed_lengths(10, 1), const_step())
    assert ok.stable


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"kv_capacity_tokens": 16 * 800},  # ~300 preemptions
        {"max_batched_tokens": None},
        {"max_batched_tokens": None, "kv_capacity_tokens": 16 * 800},
        {"max_batched_tokens": 256, "kv_capacity_tokens": 16 * 800},
        {"max_batched_tokens": 48, "max_num_seqs": 64},  # overloaded, long chunked prefills
    ],
)
def test_fast_decode_runs_match_step_by_step(monkeypatch, kw):
    cfg = SimConfig(rate_rps=12.0, n_requests=1500, warmup_requests=100, seed=9, **kw)
    fast = simulate(cfg, lognormal_lengths, gpu_like_step)
    monkeypatch.setattr(des, "FAST_DECODE_RUNS", False)
    slow = simulate(cfg, lognormal_lengths, gpu_like_step)
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-9, atol=1e-12)
    assert (fast.preemptions, fast.n_steps, fast.max_running) == (
        slow.preemptions, slow.n_steps, slow.max_running)
    assert fast.mean_batch == pytest.approx(slow.mean_batch, rel=1e-9)
    assert fast.utilization == pytest.approx(slow.utilization, rel=1e-9)


@pytest.mark.parametrize("kw", [{}, {"kv_capacity_tokens": 16 * 800}, {"max_batched_tokens": None}])
@pytest.mark.parametrize("rate_rps", [1.0, 12.0])
def test_vectorised_decode_timing_matches_step_by_step(kw, rate_rps):
    cfg = SimConfig(rate_rps=rate_rps, n_requests=800, warmup_requests=50, seed=4, **kw)
    calls: list = []

    def decode_times(n_decode, ctx_sums):
        calls.append(len(ctx_sums))
        return gpu_like_step(n_decode, ctx_sums, 0, 0.0)

    vec = simulate(cfg, lognormal_lengths, gpu_like_step, decode_times)
    ref = simulate(cfg, lognormal_lengths, gpu_like_step)
    assert calls, "the vectorised path was never taken"
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        np.testing.assert_allclose(getattr(vec, name), getattr(ref, name), rtol=1e-12, atol=1e-12)
    assert (vec.preemptions, vec.n_steps, vec.max_running) == (ref.preemptions, ref.n_steps, ref.max_running)


def test_result_type():
    r = simulate(one(), fixed_lengths(4, 2), const_step())
    assert isinstance(r, SimResult) and r.ttft_s.dtype == np.float64
