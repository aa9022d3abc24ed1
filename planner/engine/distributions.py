"""Latency statistics of a solved open-loop state: TTFT, TPOT and E2E as percentiles of seeded,
stratified joint samples (the cycle in progress at arrival, the prompts that share this one's
cycle, the decode path through the cycles after it and the running batch's drift), the means
alone where sizing needs no more, and the exact figures of an idle replica."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner.engine.cycles import cycle_duration, cycle_samples, decode_step, decode_step_s, draft_share_s, spec_tokens_per_step
from planner.engine.fixed_point import RateState
from planner.engine.memo import Memo
from planner.engine.next_cycles import next_cycles
from planner.engine.offline import OperatingPoint
from planner.engine.quantiles import poisson_quantiles, strata_midpoints, summarise, weighted_quantiles
from planner.engine.seeded_draws import SampleDraws, sample_draws, shuffled_outputs
from planner.engine.workload import RNG_SEED, PromptPool, Workload


@dataclass(frozen=True)
class Fidelity:
    """Sample counts of the distributions: `FULL` for what is shown, `QUICK` inside the sizing
    search (its answer is re-checked at full fidelity)."""

    ttft: int
    tpot: int
    table: int  # prompt-sum draws per arrival count in the stationary cycle table
    path: int  # cycles followed after a request's own prefill (its decode window)
    next_draws: int = 256  # draws per row of the next-cycle table the path steps through


FULL = Fidelity(ttft=8192, tpot=8192, table=1024, path=16, next_draws=256)
QUICK = Fidelity(ttft=1024, tpot=1024, table=128, path=8, next_draws=128)


def cycle_table(p, pool: PromptPool, lane_rate: float, b: float, ctx: float, state: RateState, per_count: int):
    """Stationary cycle durations as weighted samples (deterministic, so percentiles do not
    jitter): `per_count` prompt-sum draws for each arrival count of the stationary pmf."""
    pmf = state.count_pmf
    k_max = len(pmf) - 1
    if k_max == 0:
        return np.array([state.t_decode_s]), np.array([1.0]), np.array([1.0])
    dur, steps = cycle_samples(p, pool, b, ctx, state.t_decode_s, k_max, per_count)
    weights = np.repeat(pmf, per_count) / per_count
    return dur.ravel(), weights / weights.sum(), steps.ravel()


def sampled_distributions(p, wl, pool: PromptPool, point: OperatingPoint, lane_rate: float, state: RateState,
                          fid: Fidelity) -> None:
    """Percentiles from seeded, stratified joint samples: the cycle in progress at arrival
    (length-biased), the residual of it, the prompts that arrive during it and share this prompt's
    cycle, and the cycles that follow (the decode window, each cycle's prompts having arrived
    during the one before)."""
    ctx = wl.decode_ctx_mean
    running = point.batch > 0
    b = state.batch / float(p.pp) if running else 0.0
    t_d = state.t_decode_s
    durations, weights, steps = cycle_table(p, pool, lane_rate, b, ctx, state, fid.table)
    n, m = fid.ttft, fid.tpot
    arrivals = lane_rate * t_d > 1e-300  # a rate so small that no cycle sees an arrival: none
    draws = sample_draws(n, m, len(pool.order), fid.path if arrivals else 0)
    idle = np.exp(-point.batch) * (t_d / state.step_s) if running else 1.0
    busy = draws.busy_strata >= idle
    # quantiles at the sorted strata, then shuffled: a binary search with sorted keys is several
    # times faster than one at the shuffled strata
    # the cycle in progress at a busy arrival, length-biased; a cycle without prompts is busy only
    # while sequences decode (the rest of its time is the idle share above). Counting all of it put
    # busy arrivals of a prefill-dominated load in decode steps 77% of the time where it is 37%, and
    # TTFT p90 29% low against the simulation (8B, 1,000-token prompts, 3-token outputs, 30% load)
    in_progress = weights * durations
    if running:
        in_progress[:fid.table] *= -math.expm1(-point.batch)
    current = weighted_quantiles(durations, in_progress, strata_midpoints(n))[draws.current_order]
    residual = np.where(busy, draws.residual_strata * current, 0.0)
    co_counts = np.where(busy, poisson_quantiles(lane_rate * current, draws.co_uniforms), 0)
    co_tok, co_att = pool.sums(co_counts, draws.co_offsets)
    draft = draft_share_s(p, b, ctx, t_d)  # the same for every cycle sampled at this batch
    own, _ = cycle_duration(p, b, ctx, pool.tokens[draws.own_picks] + co_tok, pool.attn[draws.own_picks] + co_att, t_d, draft)
    ttft = residual + own + float(p.api_overhead_s)
    l_out, w_out = shuffled_outputs(wl.output_len, m, float(spec_tokens_per_step(p)), draws.output_order)
    per_step = durations / steps
    step_sd = float(np.sqrt(max(weights @ (per_step - weights @ per_step) ** 2, 0.0)))
    tpot = _tpot_samples(p, pool, draws, lane_rate, b, ctx, state, point.batch, own[:m], l_out, step_sd, draft, fid.next_draws)
    has_decode = l_out > 1.0
    e2e = ttft[:m] + np.where(has_decode, (l_out - 1.0) * tpot, 0.0)
    point.ttft_s, point.e2e_s = summarise(ttft), summarise(e2e, w_out)
    point.tpot_s = (summarise(tpot[has_decode], w_out[has_decode]) if has_decode.any()
                    else summarise(np.array([point.tpot_mean_s])))
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]


def _tpot_samples(p, pool, seeded: SampleDraws, lane_rate, b, ctx, state: RateState, batch, own, l_out, step_sd: float,
                  draft_s: float | None = None, draws: int = FULL.next_draws) -> np.ndarray:
    """Per-request TPOT: follow the cycles after the request's own prefill cycle (prompts arriving
    during one cycle are prefilled in the next), then extend with the stationary step statistics
    and the slow drift of the step duration. `draft_s`: the draft share of a decode step."""
    n = len(l_out)
    tokens = float(spec_tokens_per_step(p))
    need = np.maximum(l_out - 1.0, 1.0) / tokens  # decode steps in the request's window
    arrivals = len(seeded.walk_uniforms) > 0  # none when the rate is so small that no cycle sees an arrival
    cycles = len(seeded.walk_uniforms) if arrivals else 1
    times_a, counts_a = np.empty((cycles, n)), np.empty((cycles, n))  # cumulative time and steps after each cycle
    single_steps = True
    if arrivals:
        # a walk over the next-cycle table's entries; the first step starts from the own cycle
        table = next_cycles(p, pool, b, ctx, state, lane_rate, draws, draft_s)
        table.walk(lane_rate * own, seeded, times_a, counts_a)
        single_steps = table.single_steps
    else:
        times_a[0], counts_a[0] = state.t_decode_s, 1.0
    cols = np.arange(n)
    if single_steps:
        # cycle i ends after i + 1 steps: the window's last step falls in cycle ceil(need) - 1
        inside = need <= cycles
        j = (np.minimum(np.ceil(need), cycles) - 1.0).astype(np.int64)
        t_before = np.where(j > 0, times_a[np.maximum(j - 1, 0), cols], 0.0)
        within = t_before + (need - j) * (times_a[j, cols] - t_before)
    else:
        reached = counts_a >= need[None, :]
        inside = reached.any(axis=0)
        j = np.where(inside, reached.argmax(axis=0), cycles - 1)
        t_before = np.where(j > 0, times_a[np.maximum(j - 1, 0), cols], 0.0)
        s_before = np.where(j > 0, counts_a[np.maximum(j - 1, 0), cols], 0.0)
        per_step = (times_a[j, cols] - t_before) / np.maximum(counts_a[j, cols] - s_before, 1.0)
        within = t_before + (need - s_before) * per_step
    # beyond the followed cycles: stationary mean per step; prefill clusters inflate the variance
    rest = np.maximum(need - counts_a[-1], 0.0)
    rho = max(1.0 - state.t_decode_s / state.step_s, 0.0)
    sd = step_sd * np.sqrt((1.0 + rho) / max(1.0 - rho, 0.05))  # AR(1)-like clustering of prefill cycles
    beyond = times_a[-1] + rest * state.step_s + np.sqrt(rest) * sd * seeded.beyond_normals
    total = np.where(inside, within, np.maximum(beyond, times_a[-1] + rest * state.t_decode_s))
    # the running batch drifts around its mean, with the spread and correlation time of the
    # linear-noise approximation (fixed_point._batch_noise); where that has no stable solution, the Poisson
    # spread of an M/G/inf occupancy widened and slowed by the fixed-point gain. A short request
    # sees its own deviation, a long one the average over its window.
    if batch > 0:
        if state.batch_var > 0:
            memory = state.batch_memory_steps * state.step_s
            slow_sd = math.sqrt(state.slow_step_var_s2)
            # requests arrive in proportion to time, so more of them during long steps, whose slow
            # part persists into their decode: size-biasing by D shifts the slow mode's starting
            # value by Cov(D, D_slow) / E[D] = Var(D_slow) / E[D]
            start_shift = state.slow_step_var_s2 / state.step_s
        else:
            amplify = 1.0 / (1.0 - state.gain)
            slow_sd = math.sqrt(batch * amplify) * state.cycle_slope_s
            memory = batch / max(lane_rate * float(p.pp), 1e-9) * amplify
            start_shift = 0.0
        # over a window of x correlation times, an Ornstein-Uhlenbeck deviation's mean has variance
        # 2 (x - 1 + e^-x) / x^2 of the pointwise one, and a known start decays to (1 - e^-x) / x of it
        with np.errstate(over="ignore", divide="ignore"):  # a vanishing memory (a load near zero): x huge, no drift
            x = np.clip(need * state.step_s / memory, 1e-9, 1e12)
        window_sd = np.sqrt(2.0 * (x - 1.0 + np.exp(-x)) / (x * x))
        window_start = -np.expm1(-x) / x
        step_dev = start_shift * window_start + slow_sd * seeded.drift_normals * window_sd
        total = total + need * _through_decode_curve(p, state, ctx, step_dev)
    return np.maximum(total, 1e-12) / (need * tokens)


def _through_decode_curve(p, state: RateState, ctx: float, step_dev: np.ndarray) -> np.ndarray:
    """Deviations of the mean step, linear in the batch's, with the decode step's own curve in
    place of its tangent. The step's cost per sequence is the decode step's (curved: an MoE's
    flattens once every expert is touched, a dense model's steepens where it turns compute-bound)
    plus the rest (prefill chunks sharing the budget: straight), both stretched by the arrival
    feedback 1 / (1 - prefill share); and the batch cannot fall below zero. Where the decode step
    is straight this is the linear deviation itself."""
    lanes = float(p.pp)
    if state.cycle_slope_s <= 0:
        return step_dev
    lane_b = state.batch / lanes
    feedback = 1.0 - state.prefill_share
    lane_slope = state.cycle_slope_s * lanes * feedback  # step seconds per sequence of one lane, before feedback
    lane_dev = np.maximum(step_dev / (state.cycle_slope_s * lanes), -lane_b)  # batch-equivalent, per lane
    curve = decode_step_s(p, lane_b + lane_dev, ctx) - float(decode_step(p, lane_b, ctx).total_s)
    return (curve + (lane_slope - state.decode_chord_s) * lane_dev) / feedback


def mean_latencies(p, wl, pool: PromptPool, point: OperatingPoint, lane_rate: float, state: RateState) -> None:
    """Means only: what closed-loop solving and validation need (no chain sampling)."""
    ctx = wl.decode_ctx_mean
    b = state.batch / float(p.pp) if point.batch > 0 else 0.0
    residual = state.cycle2_s2 / (2.0 * state.cycle_s)  # length-biased residual E[C^2] / 2E[C]
    co_count = lane_rate * 2.0 * residual  # arrivals during the (length-biased) cycle in progress
    co_tokens = co_count * float(pool.tokens.mean())
    co_attn = co_count * float(pool.attn.mean())
    own, _ = cycle_duration(p, b, ctx, pool.tokens + co_tokens, pool.attn + co_attn, state.t_decode_s)
    busy = 1.0 - np.exp(-point.batch) if point.batch > 0 else 0.0
    ttft = busy * residual + float(own.mean()) + float(p.api_overhead_s)
    e2e = ttft + max(wl.mean_out - 1.0, 0.0) * point.tpot_mean_s
    point.ttft_s, point.tpot_s, point.e2e_s = {"mean": ttft}, {"mean": point.tpot_mean_s}, {"mean": e2e}
    point.ttft_mean_s, point.e2e_mean_s = ttft, e2e


IDLE_PAIRS = 4  # E2E pairs each prompt of the grid with this many output lengths


def idle_distributions(p, wl: Workload, pool: PromptPool, point: OperatingPoint, state: RateState) -> None:
    """No load: each request runs alone on the replica, so TTFT is its own prefill, every decode
    step is the one-sequence step and E2E adds (L_out - 1) of them. TTFT and TPOT come straight
    from the length grids (no sampling); E2E pairs the independent prompt and output lengths
    through one seeded shuffle."""
    own, _ = cycle_duration(p, 0.0, wl.decode_ctx_mean, pool.tokens, pool.attn, state.t_decode_s)
    ttft = own + float(p.api_overhead_s)
    tpot = point.tpot_mean_s
    decode_steps = np.maximum(wl.out_grid - 1.0, 0.0)
    pairs = np.tile(decode_steps, IDLE_PAIRS)[_idle_shuffle(IDLE_PAIRS * len(decode_steps))]
    e2e = np.tile(ttft, IDLE_PAIRS * len(decode_steps) // len(ttft)) + pairs * tpot
    point.ttft_s, point.e2e_s = summarise(ttft), summarise(e2e)
    point.tpot_s = {"mean": tpot, "p50": tpot, "p90": tpot, "p99": tpot}
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]


_IDLE_SHUFFLES: Memo[tuple[int, int], np.ndarray] = Memo()


def _idle_shuffle(n: int) -> np.ndarray:
    """The seeded shuffle of n (prompt, output) pairings: the same order rng.permutation gives an
    array of n, made once per length."""
    return _IDLE_SHUFFLES.get_or_make((n, RNG_SEED), lambda: np.random.default_rng(RNG_SEED).permutation(n))
