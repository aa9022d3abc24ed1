"""A run of N prompts sent at once: `vllm bench serve --request-rate inf --num-prompts N`, or an
offline batch of N requests; or N prompts sent at a Poisson rate the replica cannot keep up with
(`--request-rate R` past its capacity), where no steady state exists: the queue grows while the
prompts arrive and empties after the last.

The queue starts full and empties. The engine admits prompts in arrival order as its running-batch
cap, its token budget and its KV cache allow, prefills them a budget of tokens per step alongside
the running decodes, and at the end the longest outputs decode in ever smaller batches. Every
figure such a run reports comes from that drain: throughput over the whole run, TTFT including the
wait behind every earlier prompt, each request's TPOT at the batch it met. The steady-state model
has none of it, so the run is simulated step by step with the same step times as everything else
(roofline.step_time), the way vLLM V1's scheduler fills a step (running requests first, then
waiting ones in order; a request that no longer fits the KV cache is preempted, newest first, and
resumes from the prefix cache once there is room).
"""

from __future__ import annotations

import numpy as np

from planner.engine.cycles import spec_tokens_per_step
from planner.engine.offline import OperatingPoint, batch_cap, offline_throughput
from planner.engine.quantiles import summarise
from planner.engine.roofline import (
    ReplicaParams,
    bound_name,
    kv_capacity_tokens,
    prefill_attention_work,
    sequence_kv_tokens,
    step_time,
)
from planner.engine.workload import RNG_SEED, Workload, even_picks, prompt_tokens

WAITING, RUNNING, DONE = 0, 1, 2


def past_capacity(point: OperatingPoint) -> bool:
    """An open-loop rate at or above what the replica serves: requests arrive faster than they
    finish, so the queue only grows and no steady state exists."""
    return (point.mode == "rate" and not point.stable and point.max_rate_rps > 0 and point.utilization >= 1.0
            and point.max_batch >= 1.0)


def rate_run_point(p: ReplicaParams, wl: Workload, point: OperatingPoint, rate_rps: float,
                   num_prompts: int | None) -> OperatingPoint:
    """A Poisson rate's point as a benchmark of `num_prompts` reports it: past capacity the run is
    simulated to its end (its queue grows while the prompts arrive and empties after the last);
    below it, or without a count, the steady state's `point` stands."""
    if num_prompts is None or not past_capacity(point):
        return point
    return finite_run_point(p, wl, num_prompts, rate_rps)


def finite_run_point(p: ReplicaParams, wl: Workload, num_prompts: int, rate_rps: float | None = None) -> OperatingPoint:
    """What a run of `num_prompts` requests reports: throughput over its duration, and each
    request's TTFT, TPOT and end-to-end latency from its arrival (means and percentiles over
    requests). All sent at once, or at `rate_rps` as Poisson arrivals (vllm bench serve's
    default), one seeded sample path."""
    n = int(num_prompts)
    in_len = wl.in_grid[even_picks(len(wl.in_grid), n)].astype(float)
    rng = np.random.default_rng(RNG_SEED)
    # outputs in a fixed shuffled order, so a long prompt does not always come with a long output
    out_len = np.maximum(wl.out_grid[even_picks(len(wl.out_grid), n)], 1.0)[rng.permutation(n)]
    arrival_s = np.zeros(n)
    if rate_rps is not None:  # the first sent at once, the rest after exponential gaps
        arrival_s[1:] = np.cumsum(rng.exponential(1.0 / rate_rps, n - 1))
    mode = "offline" if rate_rps is None else "rate"
    run = _simulate(p, in_len, out_len, arrival_s)
    if run is None:
        return OperatingPoint(mode=mode, stable=False, kv_tokens=float(kv_capacity_tokens(p)),
                              note="a request does not fit the KV cache even alone: the run never finishes")
    first_s, done_s = run
    api_s = float(p.api_overhead_s)
    duration_s = float(done_s.max())  # from the first prompt sent to the last token
    first_s, done_s = first_s - arrival_s, done_s - arrival_s
    many = out_len > 1
    decode_s = (done_s - first_s)[many]  # first token to last, of the requests with more than one
    ttft = summarise(first_s + api_s)
    e2e = summarise(done_s + api_s)
    tpot = summarise(decode_s / (out_len[many] - 1.0)) if many.any() else {"mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    # vllm bench serve's mean ITL: every gap between tokens of every request, weighted alike
    gaps = float((out_len[many] - 1.0).sum())
    itl_mean_s = float(decode_s.sum()) / gaps if gaps else 0.0
    # completions per second over the run, scaled to the workload's mean output (the drawn lengths'
    # mean may differ from it by rounding) so that tokens/s = requests/s x mean output holds
    rate = n / duration_s * float(out_len.mean()) / wl.mean_out
    cap = batch_cap(p, wl)
    mean_new = float(np.mean(prompt_tokens(p, wl.in_grid)[0]))
    capacity = offline_throughput(p, wl)
    # what the replica sustains: a burst's own completion rate, or past capacity the steady maximum
    max_rate = rate if rate_rps is None else capacity[0]
    point = OperatingPoint(mode=mode, stable=True, batch=float(min(n, cap)), tpot_mean_s=tpot["mean"],
                           ttft_mean_s=ttft["mean"], e2e_mean_s=e2e["mean"], requests_per_s=rate, max_rate_rps=max_rate,
                           utilization=1.0, max_batch=cap, kv_tokens=float(kv_capacity_tokens(p)),
                           ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, itl_mean_s=itl_mean_s, finite_run=True,
                           decode_bound=str(bound_name(capacity[2])),
                           prefill_bound=str(bound_name(step_time(p, 0.0, 0.0, mean_new, mean_new ** 2 / 2))))
    sent = "sent at once" if rate_rps is None else (f"sent at {rate_rps:g} req/s, past the {capacity[0]:.3g} req/s "
                                                      f"the replica sustains (no steady state)")
    point.note = f"a run of {n} prompts {sent}, simulated step by step until the last finishes"
    return point


def _simulate(p: ReplicaParams, in_len: np.ndarray, out_len: np.ndarray, arrival_s: np.ndarray | None = None):
    """Time of each request's first token and of its last, from the moment the first was sent
    (each waits from its arrival, in arrival order; all at once without `arrival_s`); None when a
    request cannot run to its end even alone."""
    n = len(in_len)
    arrival_s = np.zeros(n) if arrival_s is None else np.asarray(arrival_s, dtype=float)
    new, cached = (np.asarray(x, dtype=float) for x in prompt_tokens(p, in_len))
    kv_tokens = float(kv_capacity_tokens(p))
    whole = float(p.kv_reserve_whole) > 0
    budget = float(p.budget_tokens) if float(p.chunked) > 0 else np.inf
    cap = int(min(float(p.max_num_seqs), 1e9))
    per_step = float(spec_tokens_per_step(p))
    state = np.full(n, WAITING)
    queue_key = np.arange(n, dtype=float)  # waiting order: arrival; a preempted request goes first
    admitted_at = np.zeros(n)  # admission order of the running (newest preempted first)
    need = new.copy()  # tokens to prefill before the next token
    base = cached.copy()  # context already in the cache when that prefill began
    done_tokens = np.zeros(n)  # of the current prefill
    post = np.zeros(n)  # tokens decoded since that prefill ended (their KV is held too)
    generated = np.zeros(n)  # output tokens so far, over preemptions
    first_s = np.full(n, np.nan)
    done_s = np.full(n, np.nan)
    # KV an engine that admits only what it can finish holds for a request: its whole context
    reserve = np.asarray(sequence_kv_tokens(p, in_len + out_len), dtype=float)
    if float(np.max(reserve)) > kv_tokens:
        return None  # a request the cache cannot hold alone to its end
    clock_s, admissions = 0.0, 0
    while True:
        running = np.flatnonzero(state == RUNNING)
        queued = state == WAITING
        if running.size == 0 and not queued.any():
            return first_s, done_s
        if running.size == 0:  # an idle engine waits for the next prompt
            clock_s = max(clock_s, float(arrival_s[queued].min()))
        waiting = np.flatnonzero(queued & (arrival_s <= clock_s))
        prefilling = running[done_tokens[running] < need[running]]
        decoding = running[done_tokens[running] >= need[running]]
        room = budget - decoding.size if np.isfinite(budget) else budget
        chunk = np.zeros(n)
        for i in prefilling[np.argsort(admitted_at[prefilling])]:
            if room <= 0:
                break
            chunk[i] = min(need[i] - done_tokens[i], room)
            room -= chunk[i]
        context = base + done_tokens + post
        used = (float(reserve[running].sum()) if whole else float(np.sum(sequence_kv_tokens(p, context[running])))) \
            + float(chunk.sum())
        for i in waiting[np.argsort(queue_key[waiting])]:
            if room <= 0 or running.size >= cap:
                break
            take = min(need[i] - done_tokens[i], room)
            ask = float(reserve[i]) if whole else float(sequence_kv_tokens(p, base[i] + done_tokens[i] + post[i] + take))
            if used + ask > kv_tokens:
                break
            state[i] = RUNNING
            admitted_at[i] = admissions
            admissions += 1
            chunk[i] = take
            room -= take
            used += ask
            running = np.append(running, i)
        if not whole:
            # decodes grow the cache a token each; past its size the newest running request goes
            # back to the queue's head. Its blocks stay in the prefix cache (vLLM V1 and SGLang keep
            # it on by default), where the newest-freed are the last evicted, so it resumes where it
            # stopped once the cache has room for it again, instead of prefilling everything anew
            over = used + decoding.size * per_step - kv_tokens
            for i in running[np.argsort(-admitted_at[running])]:
                if over <= 0 or running.size <= 1:
                    break
                held = float(sequence_kv_tokens(p, context[i])) + float(chunk[i])
                state[i] = WAITING
                queue_key[i] = -admissions - 1.0
                admissions += 1
                chunk[i] = 0.0
                decoding = decoding[decoding != i]
                running = running[running != i]
                over -= held
        if running.size == 0:
            return None
        if not np.isfinite(budget) and chunk.any():
            decoding = decoding[:0]  # without chunked prefill a step of whole prompts runs alone (prefill first)
        tokens = chunk[chunk > 0]
        starts = (base + done_tokens)[chunk > 0]
        attn = float(prefill_attention_work(p, tokens, starts).sum())
        ctx = float(context[decoding].sum())
        clock_s += float(step_time(p, decoding.size, ctx, float(tokens.sum()), attn, spec_tokens=p.spec_k + 1.0).total_s)
        if decoding.size and float(p.spec_k) > 0:  # the draft model's k steps (cycles.decode_step)
            clock_s += float(step_time(p, decoding.size, ctx, 0.0, 0.0).total_s) * float(p.spec_draft_ratio * p.spec_k)
        done_tokens += chunk
        generated[decoding] += per_step
        post[decoding] += per_step
        finished_prefill = np.flatnonzero((chunk > 0) & (done_tokens >= need))
        generated[finished_prefill] += 1.0  # the prefill step samples the next token
        fresh = finished_prefill[np.isnan(first_s[finished_prefill])]
        first_s[fresh] = clock_s
        ended = running[generated[running] >= out_len[running]]
        state[ended] = DONE
        done_s[ended] = clock_s

