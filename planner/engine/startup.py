"""The start-up wave of a closed-loop benchmark.

Serving benchmarks with a client limit (`vllm bench serve --max-concurrency`, SGLang's
bench_serving, GenAI-Perf) start every client at once: the first `clients` prompts reach an idle
engine in one burst and queue behind each other's prefill, the k-th waiting for k prompts' worth of
prefill chunks. Later requests arrive one at a time as earlier ones finish, which the steady-state
model describes. In a run of N prompts the burst is `clients / N` of the requests (a tenth in the
common N = 10 x clients), so it sets the run's TTFT p90 and p99 whenever that share exceeds the
percentile's tail, and it raises the mean. Given N (`num_prompts`), the planner predicts the burst
step by step and mixes it with the steady state. A server that was not warmed up meets the burst's
shapes for the first time and compiles for them while the burst waits (Knobs.first_use_ms).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from planner.engine.offline import OperatingPoint
from planner.engine.quantiles import summarise
from planner.engine.roofline import ReplicaParams, kv_capacity_tokens, prefill_attention_work, step_time
from planner.engine.workload import Workload, prompt_tokens

# Pseudo-samples that stand for the steady state's distribution when it is mixed with the burst.
STEADY_SAMPLES = 1000


def wave_size(p: ReplicaParams, wl: Workload, clients: int, num_prompts: int) -> int:
    """Requests the engine admits in the burst: the clients (at most the run's prompts), capped by
    its running-batch limit and by the sequences its KV cache holds whole."""
    fit = math.floor(float(kv_capacity_tokens(p)) / max(wl.mean_in + wl.mean_out, 1.0))
    return max(1, int(min(clients, num_prompts, float(p.max_num_seqs), max(fit, 1))))


def startup_wave_ttft_s(p: ReplicaParams, wl: Workload, n: int) -> np.ndarray:
    """TTFT of each of `n` prompts (of the mean length) that reach an idle engine together. The
    engine prefills them in order, a budget of tokens per step, and each prompt's first token comes
    with the step that finishes it; prompts already finished decode in the later steps and take a
    budget slot each (chunked prefill). Without chunked prefill the whole burst is one step."""
    new, cached = (float(x) for x in prompt_tokens(p, wl.mean_in))
    total = n * new
    chunked = float(p.chunked) > 0
    done, pos, clock_s = 0, 0.0, 0.0
    ttft = np.empty(n)
    while done < n:
        room = max(float(p.budget_tokens) - done, 1.0) if chunked else total
        chunk = min(room, total - pos)
        end = pos + chunk
        # causal attention work of the chunk: each prompt's segment s after q of its tokens and
        # the prefix-cache hit it reads
        attn, at = 0.0, pos
        while at < end - 1e-9:
            first = math.floor(at / new + 1e-9)
            q = at - first * new
            s = min(end, (first + 1) * new) - at
            attn += float(prefill_attention_work(p, s, q + cached))
            at += s
        decoding = done if chunked else 0
        clock_s += float(step_time(p, decoding, decoding * (wl.mean_in + 1.0), chunk, attn).total_s)
        pos = end
        finished = n if pos >= total - 1e-9 else min(n, math.floor(pos / new + 1e-9))
        ttft[done:finished] = clock_s
        done = finished
    return ttft + float(p.api_overhead_s)


def with_startup_wave(point: OperatingPoint, wave_ttft_s: np.ndarray, num_prompts: int) -> OperatingPoint:
    """The point as a run of `num_prompts` requests sees it: the burst's TTFTs one request each,
    the steady state's distribution for the rest. Means mix exactly; percentiles mix the burst with
    the steady state's known quantiles (linear between them). Each burst request's E2E is longer
    by its extra wait, so the E2E mean moves with the TTFT mean."""
    n = len(wave_ttft_s)
    total = max(num_prompts, n)
    steady_share = (total - n) / total
    old = point.ttft_s
    mean = steady_share * point.ttft_mean_s + float(wave_ttft_s.sum()) / total
    ttft = {"mean": mean}
    if all(k in old for k in ("p50", "p90", "p99")):
        values = np.concatenate([_steady_pseudo_samples(old), wave_ttft_s])
        weights = np.concatenate([np.full(STEADY_SAMPLES, steady_share / STEADY_SAMPLES), np.full(n, 1.0 / total)])
        mixed = summarise(values, weights)
        ttft.update({k: mixed[k] for k in ("p50", "p90", "p99")})
    shift = mean - point.ttft_mean_s
    e2e = {**point.e2e_s, "mean": point.e2e_mean_s + shift} if point.e2e_s else {"mean": point.e2e_mean_s + shift}
    return replace(point, ttft_s=ttft, ttft_mean_s=mean, e2e_s=e2e, e2e_mean_s=e2e["mean"])


def _steady_pseudo_samples(q: dict) -> np.ndarray:
    """Evenly spaced quantiles of a distribution known by its p50, p90 and p99: linear between
    them, the lower half mirrored from the p50-p90 spread (never below zero) and the last percent
    a tenth of the p90-p99 spread above the p99."""
    p50, p90, p99 = q["p50"], q["p90"], q["p99"]
    knots_u = (0.0, 0.5, 0.9, 0.99, 1.0)
    knots_x = (max(p50 - (p90 - p50), 0.0), p50, p90, p99, p99 + 0.1 * (p99 - p90))
    u = (np.arange(STEADY_SAMPLES) + 0.5) / STEADY_SAMPLES
    return np.interp(u, knots_u, knots_x)


def has_startup_burst(clients: int | None, num_prompts: int | None) -> bool:
    """Whether a closed-loop run starts with a burst: its prompts are counted and more than one
    client starts at once (one client's first request meets an idle engine like every other)."""
    return num_prompts is not None and (clients or 1) > 1


def as_benchmarked(p: ReplicaParams, wl: Workload, point: OperatingPoint, clients: int,
                   num_prompts: int | None) -> OperatingPoint:
    """A closed-loop run of a known number of prompts, start-up burst included (has_startup_burst).
    On a server that was not warmed up, each request of the burst also waits for what the engine
    builds on first use for the burst's shapes (Knobs.first_use_ms): the burst stalls as one."""
    if not has_startup_burst(clients, num_prompts) or not point.stable:
        return point
    wave = startup_wave_ttft_s(p, wl, wave_size(p, wl, clients, num_prompts)) + float(p.first_use_s)
    return with_startup_wave(point, wave, num_prompts)
