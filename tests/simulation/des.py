"""A seeded discrete-event simulation of one serving replica (vLLM-V1-style continuous batching).

Test-suite tool: it validates the analytical queueing model, it is not part of the package. The
simulation advances one engine step at a time. Each step's duration comes from a caller-supplied
step-time function, so the simulator knows nothing about hardware; it only reproduces the
scheduler: who is in the batch, how many prompt tokens each step carries, KV-block accounting and
recompute preemption.

Scheduler (chunked prefill, ``max_batched_tokens`` set; vLLM V1, FCFS):
  * every running request whose prompt is fully prefilled decodes one token (1 token of budget
    each; if there are more of them than budget, the earliest-admitted ones go first);
  * the remaining budget goes to running, partially prefilled prompts (arrival order), then to
    waiting requests admitted FCFS while budget > 0, running < ``max_num_seqs`` and the KV cache
    has room for the admitted prompt's blocks (whole prompt allocated at admission). A prompt
    receives ``min(remaining prompt, remaining budget)`` tokens. A KV miss stops admission
    (head-of-line blocking). As in vLLM V1, no waiting request is admitted in a step in which a
    preemption happened.
  * a decode that needs a new block (every ``block_tokens`` tokens) when none is free preempts the
    most recently admitted running request (recompute: back to the front of the waiting queue with
    prompt = input + generated so far, remaining output unchanged, KV released).
Without chunking (``max_batched_tokens=None``, vLLM V0's default prefill-first policy) a step is
either prefill-only (whole prompts of every admissible waiting request; decodes pause) or, when
nothing is admissible, decode-only.

Closed loop (:func:`simulate_closed_loop`): N clients, no think time. The first N requests
arrive at time 0; each later request arrives at the instant an earlier one finishes (the end of
the step that produced its last token), so N requests are always outstanding. Those the engine
does not admit (running at ``max_num_seqs`` or no KV room) wait FCFS as in the open loop.

Timing: a request arriving while the engine is busy is seen at the next step boundary; an idle
engine starts a step at the arrival instant. The prompt-completing step emits the first output
token at its end (TTFT); each later token costs one decode step; a request finishes at the end of
the step producing its last token, releasing its KV blocks and running slot.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LengthSampler = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
# (n_decode, decode_ctx_tokens_sum, n_prefill_tokens, prefill_attn_work) -> seconds
StepTime = Callable[[int, float, int, float], float]
# (n_decode, decode_ctx_tokens_sums as an array) -> seconds per decode-only step, element-wise the
# same as StepTime(n_decode, ctx_sum, 0, 0.0). Optional: it lets a run of decode-only steps be
# timed in one vectorised call instead of one call per step (low loads have millions of them).
DecodeStepTimes = Callable[[int, np.ndarray], np.ndarray]

# Longest stretch of decode steps timed per vectorised call (bounds the arrays at low load).
_DECODE_CHUNK = 512

# Batch runs of identical decode-only steps (see decode_run); False forces strict step-by-step
# updates, which the tests use to check that the fast path changes nothing.
FAST_DECODE_RUNS = True

# Request states.
_PENDING, _WAITING, _PREFILL, _DECODE, _DONE = range(5)


@dataclass(frozen=True)
class SimConfig:
    rate_rps: float  # Poisson arrival rate
    n_requests: int = 20000
    warmup_requests: int = 2000  # dropped from stats
    max_num_seqs: int = 256  # cap on running sequences (decode + partially prefilled)
    max_batched_tokens: int | None = 8192  # token budget per step; None = whole-prompt prefill steps
    kv_capacity_tokens: float = float("inf")  # KV cache size in tokens (block granularity below)
    block_tokens: int = 16
    seed: int = 0


@dataclass(frozen=True, eq=False)
class SimResult:
    """Per-request arrays cover the completed requests after warmup, in arrival order (``tpot_s``
    additionally skips requests with a single output token). ``mean_batch`` and ``utilization``
    are time averages over the measurement window: from the arrival of the first measured request
    to the arrival of the last request (the steady-state part of the run, without the final drain).
    """

    ttft_s: np.ndarray  # arrival -> end of the step that produced the first output token
    tpot_s: np.ndarray  # (finish - first token) / (output_len - 1), output_len > 1 only
    e2e_s: np.ndarray  # arrival -> finish
    mean_batch: float  # time-average number of running sequences in the decode phase
    utilization: float  # fraction of wall time the engine was stepping
    preemptions: int
    stable: bool = True  # False: the run was cut short by the backlog cap or the backlog kept growing
    max_running: int = 0  # peak number of running sequences (decode + partially prefilled)
    n_steps: int = 0  # engine steps simulated
    throughput_rps: float = math.nan  # completions per second over the measurement window


def simulate(
    cfg: SimConfig,
    sample_lengths: LengthSampler,
    step_time_s: StepTime,
    decode_step_times_s: DecodeStepTimes | None = None,
) -> SimResult:
    """Poisson arrivals at ``cfg.rate_rps`` and lengths from ``sample_lengths``, then :func:`simulate_trace`.

    Arrival times and lengths come from independent child streams of ``cfg.seed`` so that changing
    the length distribution leaves the arrival process unchanged (common random numbers).
    """
    if not (cfg.rate_rps > 0 and math.isfinite(cfg.rate_rps)):
        raise ValueError(f"rate_rps must be positive and finite, got {cfg.rate_rps!r}")
    n = int(cfg.n_requests)
    if n < 1:
        raise ValueError("n_requests must be >= 1")
    arrival_ss, length_ss = np.random.SeedSequence(cfg.seed).spawn(2)
    gaps = np.random.default_rng(arrival_ss).exponential(1.0 / cfg.rate_rps, n)
    arrivals = np.cumsum(gaps)
    input_lens, output_lens = sample_lengths(np.random.default_rng(length_ss), n)
    return simulate_trace(
        cfg, arrivals, input_lens, output_lens, step_time_s, max_waiting=max(2000, n // 5),
        decode_step_times_s=decode_step_times_s,
    )


def simulate_closed_loop(
    cfg: SimConfig,
    clients: int,
    sample_lengths: LengthSampler,
    step_time_s: StepTime,
    decode_step_times_s: DecodeStepTimes | None = None,
    cooldown_requests: int | None = None,
) -> SimResult:
    """Closed loop: ``clients`` users, each sending its next request the instant its last one
    finishes (no think time), ``cfg.n_requests`` requests in all; ``cfg.rate_rps`` is ignored.
    The first ``cfg.warmup_requests`` (the fill from an empty engine) and the last
    ``cooldown_requests`` (default: the clients plus ten times the running batch's most, so a
    request whose output is ten times the mean still finishes before the population starts to
    thin) are left out of the statistics. Lengths come from the ``cfg.seed`` stream as in
    :func:`simulate`."""
    n = int(cfg.n_requests)
    if n < 1:
        raise ValueError("n_requests must be >= 1")
    if cooldown_requests is None:
        cooldown_requests = int(clients) + 10 * min(int(clients), int(cfg.max_num_seqs))
    _, length_ss = np.random.SeedSequence(cfg.seed).spawn(2)
    input_lens, output_lens = sample_lengths(np.random.default_rng(length_ss), n)
    return simulate_trace(cfg, np.zeros(n), input_lens, output_lens, step_time_s, decode_step_times_s=decode_step_times_s,
                          clients=int(clients), cooldown_requests=int(cooldown_requests))


def simulate_trace(
    cfg: SimConfig,
    arrival_s: np.ndarray,
    input_lens: np.ndarray,
    output_lens: np.ndarray,
    step_time_s: StepTime,
    *,
    max_waiting: int | None = None,
    decode_step_times_s: DecodeStepTimes | None = None,
    clients: int | None = None,
    cooldown_requests: int = 0,
) -> SimResult:
    """Replay a given trace (sorted arrival times and lengths); ``cfg.rate_rps``, ``cfg.n_requests``
    and ``cfg.seed`` are ignored. ``max_waiting``: stop early (``stable=False``) once more requests
    than this are queued; None = never.
    ``clients`` (see :func:`simulate_closed_loop`): a closed loop instead; the arrival times are then
    made as requests finish (``arrival_s`` only gives the count), and the last
    ``cooldown_requests`` requests, which run while the client population drains, are left out of
    the statistics and the measurement window ends at the arrival of the first of them."""
    arr = np.asarray(arrival_s, dtype=float)
    inp = np.asarray(input_lens)
    out = np.asarray(output_lens)
    n = arr.shape[0]
    if arr.ndim != 1 or inp.shape != (n,) or out.shape != (n,):
        raise ValueError(f"need 1-D arrays of equal length, got {arr.shape}, {inp.shape}, {out.shape}")
    if n == 0:
        raise ValueError("empty trace")
    closed = clients is not None
    if closed:
        if not 1 <= int(clients):
            raise ValueError(f"clients must be >= 1, got {clients!r}")
        if not 0 <= int(cooldown_requests) < n - int(cfg.warmup_requests):
            raise ValueError("cooldown_requests must leave measured requests after the warmup")
        # the first `clients` requests at time 0; the others are set as requests finish
        arr = np.where(np.arange(n) < int(clients), 0.0, math.inf)
    elif not np.all(np.isfinite(arr)) or np.any(np.diff(arr) < 0):
        raise ValueError("arrival times must be finite and non-decreasing")
    if not (np.issubdtype(inp.dtype, np.integer) or np.all(inp == np.round(inp))):
        raise ValueError("input lengths must be integers")
    if not (np.issubdtype(out.dtype, np.integer) or np.all(out == np.round(out))):
        raise ValueError("output lengths must be integers")
    inp = inp.astype(np.int64)
    out = out.astype(np.int64)
    if inp.min() < 1 or out.min() < 1:
        raise ValueError("input and output lengths must be >= 1")
    warmup = int(cfg.warmup_requests)
    if not 0 <= warmup < n:
        raise ValueError(f"warmup_requests must be in [0, {n}), got {warmup}")
    if cfg.max_num_seqs < 1:
        raise ValueError("max_num_seqs must be >= 1")
    budget_cap = cfg.max_batched_tokens
    if budget_cap is not None and budget_cap < 1:
        raise ValueError("max_batched_tokens must be >= 1 or None")
    B = int(cfg.block_tokens)
    if B < 1:
        raise ValueError("block_tokens must be >= 1")
    if cfg.kv_capacity_tokens == math.inf:
        total_blocks: float = math.inf
    else:
        total_blocks = int(cfg.kv_capacity_tokens // B)
        # The KV cache of the last output token is never computed, so a request peaks at
        # input + output - 1 tokens. A request that cannot fit even alone would deadlock.
        peak = int((-(-(inp + out - 1) // B)).max())
        if peak > total_blocks:
            raise ValueError(
                f"a request needs {peak} KV blocks but the cache holds only {total_blocks}"
            )

    # ---- per-request state (Python lists: fast scalar access in the scheduling loop)
    arr_l = arr.tolist()
    inp_l = inp.tolist()
    prompt = inp_l.copy()  # current prompt length (input + generated after a preemption)
    prefilled = [0] * n  # tokens of the current prompt already prefilled
    rem = out.tolist()  # output tokens still to generate (kept current for non-decoding states)
    held = [0] * n  # KV blocks held while waiting for/doing prefill
    admit_seq = [0] * n
    state = [_PENDING] * n
    slot_of = [-1] * n
    first_t = [math.nan] * n
    finish_t = [math.nan] * n

    # ---- decoding requests: compact numpy arrays [0, nd), swap-remove on exit
    cap0 = min(cfg.max_num_seqs, 1024)
    d_rid = np.zeros(cap0, np.int64)
    d_ctx = np.zeros(cap0, np.int64)  # prompt + generated so far (context of the next decode)
    d_rem = np.zeros(cap0, np.int64)
    d_blk = np.zeros(cap0, np.int64)
    d_adm = np.zeros(cap0, np.int64)
    nd = 0

    waiting: deque[int] = deque()
    prefilling: list[int] = []  # running, prompt incomplete; sorted by request id = arrival order
    free = total_blocks
    admit_counter = 0
    preemptions = 0
    t = arr_l[0]
    next_arr = 0
    n_steps = 0
    max_running = 0
    stopped_early = False
    empty_steps = 0

    # measurement window (steady state): first measured arrival .. last arrival
    # (a single measured request, or all arriving at once: the window runs to the end instead)
    # Closed loop: the last arrival before the cooldown; both ends are set when those requests
    # arrive (the time then), before any step after them is accounted.
    last_w = n - 1 - int(cooldown_requests) if closed else n - 1
    w0 = arr_l[warmup]
    w1 = arr_l[last_w] if arr_l[last_w] > w0 else math.inf
    busy_w = 0.0
    batch_w = 0.0
    issued = min(int(clients), n) if closed else n  # closed loop: requests given an arrival time

    def issue_next() -> None:
        """Closed loop: a request finished at t, so its client sends the next request now."""
        nonlocal issued, w0, w1
        if issued >= n:
            return
        arr_l[issued] = t
        if issued == warmup:
            w0 = t
        if issued == last_w:
            w1 = t if t > w0 else math.inf
        issued += 1

    def grow() -> None:
        nonlocal d_rid, d_ctx, d_rem, d_blk, d_adm
        size = min(2 * d_rid.shape[0], max(cfg.max_num_seqs, 1))
        d_rid, d_ctx, d_rem, d_blk, d_adm = (
            np.concatenate([a, np.zeros(size - a.shape[0], np.int64)])
            for a in (d_rid, d_ctx, d_rem, d_blk, d_adm)
        )

    def remove_decoder(j: int) -> None:
        nonlocal nd
        last = nd - 1
        if j != last:
            r_last = int(d_rid[last])
            d_rid[j] = r_last
            d_ctx[j] = d_ctx[last]
            d_rem[j] = d_rem[last]
            d_blk[j] = d_blk[last]
            d_adm[j] = d_adm[last]
            slot_of[r_last] = j
        nd = last

    def preempt_latest() -> int:
        """Preempt the most recently admitted running request; return its id."""
        nonlocal free, preemptions
        best_r, best_adm = -1, -1
        if nd:
            j = int(np.argmax(d_adm[:nd]))
            best_r, best_adm = int(d_rid[j]), int(d_adm[j])
        for r in prefilling:
            if admit_seq[r] > best_adm:
                best_r, best_adm = r, admit_seq[r]
        r = best_r
        if state[r] == _DECODE:
            j = slot_of[r]
            prompt[r] = int(d_ctx[j])  # input + generated so far, recomputed as a prompt
            rem[r] = int(d_rem[j])
            free += int(d_blk[j])
            remove_decoder(j)
            slot_of[r] = -1
        else:
            prefilling.remove(r)
            free += held[r]
        held[r] = 0
        prefilled[r] = 0
        state[r] = _WAITING
        waiting.appendleft(r)
        preemptions += 1
        return r

    def retire_finished() -> None:
        nonlocal free
        fin = np.flatnonzero(d_rem[:nd] == 0)
        for j in fin[::-1].tolist():  # descending: swap-remove never moves a finished one
            r = int(d_rid[j])
            finish_t[r] = t
            free += int(d_blk[j])
            state[r] = _DONE
            slot_of[r] = -1
            remove_decoder(j)
            if closed:
                issue_next()

    def decode_run() -> bool:
        """Fast path for a run of decode-only steps with an unchanging batch: no prompt in flight,
        nothing admissible (queue empty, running at max_num_seqs or the queue head's prompt
        blocked on KV) and enough free KV for the whole run.
        Steps are still timed one by one; the arrays are updated once. The run ends at the first
        step that finishes a request or at the step end at/after which the next request arrives
        (exactly where the step-by-step loop would change course). Returns False if not applicable.
        """
        nonlocal t, free, n_steps, busy_w, batch_w, max_running
        if prefilling:
            return False
        # Is admission blocked for the whole run? Slots only free up at a finish (which ends the
        # run) and free KV only shrinks during the run; later arrivals queue behind the head.
        blocked = nd >= cfg.max_num_seqs or (bool(waiting) and -(-prompt[waiting[0]] // B) > free)
        if waiting and not blocked:
            return False
        if budget_cap is not None and nd > budget_cap:
            return False
        ctx = d_ctx[:nd]
        kmax = int(d_rem[:nd].min())
        if free != math.inf:
            # blocks for kmax more decodes: the last one has context ctx + kmax - 1
            extra = np.maximum(-(-(ctx + (kmax - 1)) // B) - d_blk[:nd], 0)
            if int(extra.sum()) > free:
                return False
        # an arrival changes the next step unless admission is blocked (it would just queue)
        nxt = arr_l[next_arr] if next_arr < n and not blocked else math.inf
        ctx_sum = int(ctx.sum())
        t0 = t
        if decode_step_times_s is None:
            k = 0
            while True:
                dt = step_time_s(nd, float(ctx_sum), 0, 0.0)
                if not 0.0 <= dt < math.inf:
                    raise ValueError(f"step_time_s returned {dt!r}")
                t += dt
                k += 1
                ctx_sum += nd
                if k >= kmax or t >= nxt:
                    break
        else:
            t, k = timed_decode_run(t, nd, ctx_sum, kmax, nxt)
        if free != math.inf:
            extra = np.maximum(-(-(ctx + (k - 1)) // B) - d_blk[:nd], 0)
            d_blk[:nd] += extra
            free -= int(extra.sum())
        ctx += k
        d_rem[:nd] -= k
        n_steps += k
        if nd > max_running:
            max_running = nd
        if t > w0 and t0 < w1:
            ov = min(t, w1) - max(t0, w0)
            busy_w += ov
            batch_w += nd * ov
        retire_finished()
        return True

    def timed_decode_run(t: float, nd: int, ctx_sum: int, kmax: int, nxt: float) -> tuple[float, int]:
        """Vectorised timing of up to ``kmax`` decode-only steps, stopping at the first step end
        at/after ``nxt``; returns (time after the last step, steps taken). A running sum seeded
        with ``t`` adds the durations in the same order as the step-by-step loop."""
        k = 0
        while True:
            m = min(_DECODE_CHUNK, kmax - k)
            sums = (ctx_sum + nd * (k + np.arange(m))).astype(float)
            dts = np.asarray(decode_step_times_s(nd, sums), dtype=float)
            if dts.shape != (m,) or not np.all((dts >= 0.0) & (dts < math.inf)):
                raise ValueError("decode_step_times_s returned a wrong shape or a bad duration")
            ends = np.cumsum(np.concatenate(([t], dts)))[1:]
            hit = int(np.searchsorted(ends, nxt, side="left"))  # first end >= nxt
            if hit < m:
                return float(ends[hit]), k + hit + 1
            t = float(ends[-1])
            k += m
            if k >= kmax:
                return t, k

    def schedule_decodes_slow(limit: int | None) -> tuple[np.ndarray, bool]:
        """Allocate decode blocks one request at a time in admission order, preempting as needed.
        Returns the slots of the scheduled decoders and whether anything was preempted."""
        nonlocal free
        order = np.argsort(d_adm[:nd], kind="stable")
        if limit is not None:
            order = order[:limit]
        rids = d_rid[order].tolist()
        scheduled = []
        any_preempted = False
        for r in rids:
            if state[r] != _DECODE:
                continue  # preempted as a victim earlier in this loop
            j = slot_of[r]
            if d_ctx[j] > d_blk[j] * B:
                while free < 1:
                    any_preempted = True
                    if preempt_latest() == r:
                        break
                if state[r] != _DECODE:
                    continue
                j = slot_of[r]
                d_blk[j] += 1
                free -= 1
            scheduled.append(r)
        return np.array([slot_of[r] for r in scheduled], dtype=np.int64), any_preempted

    while True:
        while next_arr < n and arr_l[next_arr] <= t:
            waiting.append(next_arr)
            state[next_arr] = _WAITING
            next_arr += 1
        if not nd and not prefilling and not waiting:
            if next_arr >= n:
                break
            t = arr_l[next_arr]  # idle until the next arrival
            continue
        if max_waiting is not None and len(waiting) > max_waiting:
            stopped_early = True
            break
        if nd and FAST_DECODE_RUNS and decode_run():
            continue

        nd_phase = nd  # decode-phase sequences at the step start (for mean_batch)
        chunks: list[tuple[int, int]] = []
        sel: slice | np.ndarray = slice(0, 0)
        n_dec = 0
        ctx_sum = 0
        preempted = False

        if budget_cap is None:
            # V0 prefill-first: whole prompts of every admissible waiting request, decodes paused.
            while waiting and nd + len(chunks) < cfg.max_num_seqs:
                r = waiting[0]
                nb = -(-prompt[r] // B)
                if nb > free:
                    break
                waiting.popleft()
                free -= nb
                held[r] = nb
                admit_counter += 1
                admit_seq[r] = admit_counter
                state[r] = _PREFILL
                chunks.append((r, prompt[r]))
            decode_limit = None if not chunks else 0
            budget = 0
        else:
            decode_limit = budget_cap if nd > budget_cap else None
            budget = budget_cap

        if nd and decode_limit != 0:
            need = d_ctx[:nd] > d_blk[:nd] * B
            k = int(np.count_nonzero(need))
            if decode_limit is None and k <= free:
                if k:
                    d_blk[:nd] += need
                    free -= k
                sel = slice(0, nd)
                n_dec = nd
            else:
                sel, preempted = schedule_decodes_slow(decode_limit)
                n_dec = int(sel.shape[0])
            if n_dec:
                ctx_sum = int(d_ctx[sel].sum())
            budget -= n_dec

        if budget_cap is not None:
            for r in prefilling:
                if budget <= 0:
                    break
                c = min(prompt[r] - prefilled[r], budget)
                chunks.append((r, c))
                budget -= c
            if not preempted:
                while waiting and budget > 0 and nd + len(prefilling) < cfg.max_num_seqs:
                    r = waiting[0]
                    nb = -(-prompt[r] // B)
                    if nb > free:
                        break  # head-of-line blocking on KV
                    waiting.popleft()
                    free -= nb
                    held[r] = nb
                    admit_counter += 1
                    admit_seq[r] = admit_counter
                    state[r] = _PREFILL
                    insort(prefilling, r)
                    c = min(prompt[r], budget)
                    chunks.append((r, c))
                    budget -= c

        running = nd + len(prefilling) + (len(chunks) if budget_cap is None else 0)
        if running > max_running:
            max_running = running
        if not n_dec and not chunks:
            # Only possible right after preemptions; the next step admits. Guard against livelock.
            empty_steps += 1
            if empty_steps > 2:
                raise RuntimeError("scheduler made no progress")
            continue
        empty_steps = 0

        n_pref = 0
        attn = 0.0
        for r, c in chunks:
            n_pref += c
            attn += c * (c / 2 + prefilled[r])
        dt = float(step_time_s(n_dec, float(ctx_sum), n_pref, attn))
        if not (dt >= 0.0 and math.isfinite(dt)):
            raise ValueError(f"step_time_s returned {dt!r}")
        t0 = t
        t = t0 + dt
        n_steps += 1
        if t > w0 and t0 < w1:
            ov = min(t, w1) - max(t0, w0)
            busy_w += ov
            batch_w += nd_phase * ov

        # ---- end of step: decode tokens, then prompt completions
        if n_dec:
            d_ctx[sel] += 1
            d_rem[sel] -= 1
            retire_finished()
        for r, c in chunks:
            p = prefilled[r] + c
            prefilled[r] = p
            if p < prompt[r]:
                continue
            if budget_cap is not None:
                prefilling.remove(r)
            if first_t[r] != first_t[r]:  # NaN: first time this request emits a token
                first_t[r] = t
            rem[r] -= 1
            if rem[r] == 0:
                finish_t[r] = t
                free += held[r]
                held[r] = 0
                state[r] = _DONE
                if closed:
                    issue_next()
                continue
            if nd == d_rid.shape[0]:
                grow()
            d_rid[nd] = r
            d_ctx[nd] = prompt[r] + 1
            d_rem[nd] = rem[r]
            d_blk[nd] = held[r]
            d_adm[nd] = admit_seq[r]
            slot_of[r] = nd
            held[r] = 0
            state[r] = _DECODE
            nd += 1

    if not stopped_early and free != total_blocks:
        raise AssertionError(f"KV block leak: {free} free of {total_blocks}")

    if closed:
        arr = np.array(arr_l)
    first = np.array(first_t)
    fin_all = np.array(finish_t)
    done = ~np.isnan(fin_all)
    done[:warmup] = False
    if closed and cooldown_requests:
        done[n - int(cooldown_requests):] = False
    ttft = first[done] - arr[done]
    e2e = fin_all[done] - arr[done]
    multi = done & (out > 1)
    tpot = (fin_all[multi] - first[multi]) / (out[multi] - 1)

    w1 = min(w1, t)
    throughput = math.nan
    if w1 > w0:
        mean_batch = batch_w / (w1 - w0)
        utilization = busy_w / (w1 - w0)
        ends = fin_all[~np.isnan(fin_all)]
        throughput = float(np.count_nonzero((ends > w0) & (ends <= w1))) / (w1 - w0)
    else:  # zero-length run (every step took no time)
        mean_batch = utilization = 0.0

    stable = not stopped_early
    if stable and w1 > w0 and not closed:  # a closed loop's backlog is bounded by its clients
        # Backlog growth over the window: a stable queue returns to its stationary level, an
        # overloaded one keeps ~(1 - 1/rho) of the arrivals. Heuristic threshold: 5% of the
        # window's arrivals plus 3 sigma of Poisson noise.
        a0 = int(np.searchsorted(arr, w0, side="right"))
        a1 = int(np.searchsorted(arr, w1, side="right"))
        fin_sorted = np.sort(fin_all[~np.isnan(fin_all)])
        backlog0 = a0 - int(np.searchsorted(fin_sorted, w0, side="right"))
        backlog1 = a1 - int(np.searchsorted(fin_sorted, w1, side="right"))
        arrivals_w = a1 - a0
        if backlog1 - backlog0 > 0.05 * arrivals_w + 3.0 * math.sqrt(arrivals_w):
            stable = False

    return SimResult(
        ttft_s=ttft,
        tpot_s=tpot,
        e2e_s=e2e,
        mean_batch=float(mean_batch),
        utilization=float(utilization),
        preemptions=preemptions,
        stable=stable,
        max_running=max_running,
        n_steps=n_steps,
        throughput_rps=throughput,
    )
