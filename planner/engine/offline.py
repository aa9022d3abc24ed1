"""What one replica does at one load (OperatingPoint, reported by every mode), and the replica
saturated: the running-sequence cap, the offline throughput (the queue never empties) and the
offline mode's operating point."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planner.engine.cycles import decode_step, prefill_cost, spec_tokens_per_step
from planner.engine.roofline import (
    BLOCK_TOKENS,
    ReplicaParams,
    StepTime,
    bound_name,
    kv_capacity_tokens,
    prefill_attention_work,
    sequence_kv_tokens,
    step_time,
)
from planner.engine.workload import Workload, prompt_tokens


@dataclass
class OperatingPoint:
    """Means and distributions of one replica at one load."""

    mode: str
    stable: bool
    batch: float = 0.0
    decode_step_s: float = 0.0
    tpot_mean_s: float = float("inf")
    ttft_mean_s: float = float("inf")
    e2e_mean_s: float = float("inf")
    requests_per_s: float = 0.0
    max_rate_rps: float = 0.0
    utilization: float = 0.0
    prefill_rho: float = 0.0
    ttft_s: dict = field(default_factory=dict)
    tpot_s: dict = field(default_factory=dict)
    e2e_s: dict = field(default_factory=dict)
    itl_mean_s: float | None = None  # mean gap between tokens over all requests, where it differs from TPOT's mean
    prefill_bound: str = ""
    decode_bound: str = ""
    kv_tokens: float = 0.0
    max_batch: float = 0.0
    note: str = ""
    finite_run: bool = False  # a run of N prompts simulated to its end (finite_run.py), not a steady state


def admitted_context(p: ReplicaParams, wl: Workload):
    """Context each running sequence holds KV room for: its mean over the decode (vLLM, SGLang,
    which preempt when the cache runs out), or its prompt and whole output (an engine that admits
    only what it can finish, engines.reserves_whole_sequence)."""
    return np.where(np.asarray(p.kv_reserve_whole) > 0, wl.mean_in + wl.mean_out, wl.decode_ctx_mean)


def batch_cap(p: ReplicaParams, wl: Workload) -> float:
    """Running-sequence cap: max_num_seqs, and the KV cache at each sequence's admitted footprint
    plus half a block of paging waste (digest §2.5, §2.4)."""
    kv = float(kv_capacity_tokens(p))
    return float(min(p.max_num_seqs, kv / (float(sequence_kv_tokens(p, admitted_context(p, wl))) + BLOCK_TOKENS / 2)))


def offline_throughput(p: ReplicaParams, wl: Workload) -> tuple[float, float, StepTime]:
    """Saturation throughput in requests/s: the queue never empties, the batch sits at its cap
    (or where the token budget just keeps up with replacing finished sequences). Made once per
    replica and workload (sizing, the fixed point and the costs all ask for it)."""
    made = wl.per_replica.get(p)
    if made is None:
        made = wl.per_replica.setdefault(p, _offline_throughput(p, wl))
    return made


def _offline_throughput(p: ReplicaParams, wl: Workload) -> tuple[float, float, StepTime]:
    cap = batch_cap(p, wl)
    lanes = float(p.pp)
    m_out = wl.mean_out
    new_in, cached = prompt_tokens(p, wl.in_grid)
    mean_new = float(new_in.mean())
    tokens = float(spec_tokens_per_step(p))
    if cap < 1.0:
        return 0.0, 0.0, decode_step(p, 0.0, wl.decode_ctx_mean)
    if float(p.chunked) > 0:
        # per lane and step: b decodes emit b*tokens; b*tokens*m_new/m_out prompt tokens replace them
        budget = float(p.budget_tokens)
        b_budget = budget / (1.0 + tokens * mean_new / m_out)
        b = min(cap / lanes, b_budget)
        prefill_per_step = b * tokens * mean_new / m_out
        attn = prefill_per_step * float(prefill_attention_work(p, new_in, cached).mean()) / mean_new
        st = step_time(p, b, b * wl.decode_ctx_mean, prefill_per_step, attn, spec_tokens=p.spec_k + 1.0)
        verify_only = step_time(p, b, b * wl.decode_ctx_mean, 0.0, 0.0, spec_tokens=p.spec_k + 1.0).total_s
        draft_s = float(decode_step(p, b, wl.decode_ctx_mean).total_s - verify_only)
        step = float(st.total_s) + draft_s
        rate = lanes * b * tokens / (m_out * step)
        return rate, b * lanes, st
    # whole-prompt prefill-first: per second, decode steps for rate*m_out tokens plus prefill steps
    b = cap / lanes
    t_d = float(decode_step(p, b, wl.decode_ctx_mean).total_s)
    _, own, _, _ = prefill_cost(p, 0.0, wl.decode_ctx_mean, wl.in_grid)
    # each request needs m_out / tokens decode steps shared by b sequences, and its own prefill step
    per_request = m_out * t_d / (b * tokens) + float(own.mean())
    rate = lanes / per_request
    return rate, b * lanes, decode_step(p, b, wl.decode_ctx_mean)


def offline_point(p: ReplicaParams, wl: Workload) -> OperatingPoint:
    rate, batch, st = offline_throughput(p, wl)
    if rate <= 0:
        return OperatingPoint(mode="offline", stable=False, note="does not fit", kv_tokens=float(kv_capacity_tokens(p)))
    tokens = float(spec_tokens_per_step(p))
    lanes = float(p.pp)
    step = batch / lanes * tokens / (wl.mean_out * rate / lanes) if rate > 0 else float("inf")
    tpot = step / tokens
    new_in, _ = prompt_tokens(p, wl.in_grid)
    n_ch, own, _, _ = prefill_cost(p, batch / lanes, wl.decode_ctx_mean, wl.in_grid)
    ttft = float(own.mean()) + float(p.api_overhead_s)
    e2e = ttft + (wl.mean_out - 1.0) * tpot
    point = OperatingPoint(mode="offline", stable=True, batch=batch, decode_step_s=step, tpot_mean_s=tpot,
                           ttft_mean_s=ttft, e2e_mean_s=e2e, requests_per_s=rate, max_rate_rps=rate,
                           utilization=1.0, max_batch=batch_cap(p, wl), kv_tokens=float(kv_capacity_tokens(p)))
    point.ttft_s = {"mean": ttft}
    point.tpot_s = {"mean": tpot}
    point.e2e_s = {"mean": e2e}
    point.decode_bound = str(bound_name(st))
    point.prefill_bound = str(bound_name(step_time(p, 0.0, 0.0, float(new_in.mean()), float(new_in.mean()) ** 2 / 2)))
    point.note = "offline: TTFT excludes the time requests wait in the initial queue"
    return point
