"""Operating point of one replica under the three benchmark modes: offline, closed-loop
concurrency and open-loop Poisson rate, for a vLLM-style continuous-batching scheduler with
chunked prefill (or whole-prompt prefill steps when chunking is off).

Open-loop model (derived from the modeling digest §4.3, §5 and §9.3):
- a decode-only step T_d(b) comes from the roofline, b = running sequences per pipeline lane;
- the engine runs in cycles: the step(s) that prefill the prompts which arrived during the
  previous cycle, all admitted together under the token budget (spilling into more steps when they
  exceed it); a cycle without prompts is one decode step. Cycle durations form a Markov chain;
  its stationary law comes from a fixed point on the arrival-count mixture, together with the
  running batch from Little's law, B = lambda (E[L_out] - 1) x mean step;
- TTFT = residual of the length-biased cycle in progress + the cycle that prefills this prompt with
  the prompts that arrived alongside it;
- TPOT per request follows the cycles after its own prefill (their prompts arrived during the
  cycle before, which clusters slow steps), each drawn from a table of the next cycle by the
  arrivals the last one brings (NextCycles), and the drift of the running batch, whose
  fluctuations the fixed point's gain amplifies near saturation; E2E = TTFT + (L_out - 1) TPOT.
  Short requests are importance-sampled (they set the TPOT tail); an idle replica needs no
  sampling at all.
Checked against a discrete-event simulation of the same scheduler (tests/simulation).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from planner.engine import lengths
from planner.engine.lengths import norm_ppf
from planner.engine.roofline import (BLOCK_TOKENS, ReplicaParams, StepTime, bound_name, decode_step_total_s, fixed_step_s,
                                     kv_capacity_tokens, sequence_kv_tokens, step_time, touched_experts)
from planner.engine.scenario import LengthDist

PERCENTILES = (50.0, 90.0, 99.0)
SAMPLES = 2048
FIXED_POINT_ITERATIONS = 400
RNG_SEED = 20260101


@dataclass(frozen=True)
class Workload:
    """Prompt and output lengths. The grids and moments are computed once per instance (cached
    properties: the fixed point and the calibration fit read them thousands of times)."""

    input_len: LengthDist
    output_len: LengthDist

    @cached_property
    def in_grid(self) -> np.ndarray:
        return lengths.grid(self.input_len, SAMPLES)

    @cached_property
    def out_grid(self) -> np.ndarray:
        return lengths.grid(self.output_len, SAMPLES)

    @cached_property
    def mean_in(self) -> float:
        return float(self.in_grid.mean())

    @cached_property
    def mean_out(self) -> float:
        return float(self.out_grid.mean())

    @cached_property
    def _pools(self) -> dict:
        return {}

    @cached_property
    def _offline(self) -> dict:
        return {}  # offline_throughput by replica

    def pool(self, p: ReplicaParams) -> PromptPool:
        """The prompt pool of this workload under p's prefix-cache hit rate, made once: every
        replica count, TP degree and fidelity a plan tries shares it and the sums it keeps."""
        key = float(p.prefix_hit)
        made = self._pools.get(key)
        if made is None:
            made = self._pools.setdefault(key, PromptPool.build(p, self))
        return made

    @cached_property
    def decode_ctx_mean(self) -> float:
        """Mean context of a decoding sequence, weighted by its steps: E[L_in] + E[L_out^2]/(2E[L_out])."""
        out = self.out_grid
        return self.mean_in + float((out * out).mean()) / (2.0 * out.mean())


def spec_tokens_per_step(p: ReplicaParams):
    """Expected tokens per verification step, (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, Thm 3.8)."""
    a = np.minimum(p.spec_accept, 0.999)
    return np.where(p.spec_k > 0, (1.0 - a ** (p.spec_k + 1.0)) / (1.0 - a), 1.0)


def decode_step(p: ReplicaParams, b, ctx_mean) -> StepTime:
    """Decode-only step of one lane holding b sequences, plus k draft steps with speculation."""
    verify = step_time(p, b, b * ctx_mean, 0.0, 0.0, spec_tokens=p.spec_k + 1.0)
    if np.all(np.asarray(p.spec_k) == 0):
        return verify
    draft = step_time(p, b, b * ctx_mean, 0.0, 0.0).total_s * p.spec_draft_ratio * p.spec_k
    return StepTime(verify.total_s + draft, verify.compute_s, verify.memory_s, verify.comm_s, verify.overhead_s + draft)


def decode_step_s(p: ReplicaParams, b: np.ndarray, ctx_mean: float) -> np.ndarray:
    """decode_step(p, b, ctx_mean).total_s for an array of batches (the total alone, folded)."""
    verify = decode_step_total_s(p, b, ctx_mean, p.spec_k + 1.0)
    if np.all(np.asarray(p.spec_k) == 0):
        return verify
    return verify + decode_step_total_s(p, b, ctx_mean) * p.spec_draft_ratio * p.spec_k


def prompt_tokens(p: ReplicaParams, l_in):
    """Prompt tokens that need prefill compute after a prefix-cache hit (whole 16-token blocks, [S38])."""
    cached = np.floor(p.prefix_hit * l_in / BLOCK_TOKENS) * BLOCK_TOKENS
    return np.maximum(l_in - cached, 1.0), cached


def prefill_cost(p: ReplicaParams, b, ctx_mean, l_in):
    """For prompts of length l_in while b sequences decode in the lane: the number of chunks, the
    duration of its own prefill steps, and the excess x over plain decode steps."""
    new, cached = prompt_tokens(p, l_in)
    room = np.maximum(p.budget_tokens - b, 1.0)
    chunked = np.asarray(p.chunked) > 0
    n_chunks = np.where(chunked, np.ceil(new / room), 1.0)
    chunk = new / n_chunks
    attn = (new * new / 2.0 + new * cached) / n_chunks  # sum of c (c/2 + q) split evenly over chunks
    b_in_step = np.where(chunked, b, 0.0)  # whole-prompt prefill steps carry no decodes
    mixed = step_time(p, b_in_step, b_in_step * ctx_mean, chunk, attn).total_s
    base = np.where(chunked, decode_step(p, b, ctx_mean).total_s, 0.0)
    excess = n_chunks * (mixed - base)
    return n_chunks, n_chunks * mixed, excess, mixed


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
    prefill_bound: str = ""
    decode_bound: str = ""
    kv_tokens: float = 0.0
    max_batch: float = 0.0
    note: str = ""


def batch_cap(p: ReplicaParams, wl: Workload) -> float:
    """Running-sequence cap: max_num_seqs, and the KV cache at each sequence's mean footprint plus
    half a block of paging waste (digest §2.5, §2.4)."""
    kv = float(kv_capacity_tokens(p))
    return float(min(p.max_num_seqs, kv / (sequence_kv_tokens(p, wl.decode_ctx_mean) + BLOCK_TOKENS / 2)))


def offline_throughput(p: ReplicaParams, wl: Workload) -> tuple[float, float, StepTime]:
    """Saturation throughput in requests/s: the queue never empties, the batch sits at its cap
    (or where the token budget just keeps up with replacing finished sequences). Made once per
    replica and workload (sizing, the fixed point and the costs all ask for it)."""
    made = wl._offline.get(p)
    if made is None:
        made = wl._offline.setdefault(p, _offline_throughput(p, wl))
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
        attn = prefill_per_step * float((new_in * new_in / 2 + new_in * cached).mean()) / mean_new
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


# ---------------------------------------------------------------------------------------------
# Open loop. The engine runs in "cycles": the steps that prefill the prompts which arrived during
# the previous cycle (vLLM V1 admits every waiting prompt into the next step, up to the token
# budget; a larger backlog spills into further steps). A cycle without prompts is one plain decode
# step. Cycle durations therefore form a Markov chain: C' = duration(prompts arriving in C).

MIX_SAMPLES = 48  # prompt-sum samples per arrival count (mean-value fixed point)


@dataclass(frozen=True)
class PromptPool:
    """Prompt samples (new tokens after prefix hits, causal attention work) and a fixed index
    stream, so sums of N prompts are deterministic cumulative-sum differences."""

    tokens: np.ndarray
    attn: np.ndarray
    order: np.ndarray
    _cumulative: dict = field(default_factory=dict, compare=False, repr=False)  # sums and draws made from the pool, by kind

    @classmethod
    def build(cls, p: ReplicaParams, wl: Workload) -> PromptPool:
        new, cached = prompt_tokens(p, wl.in_grid)
        order = np.random.default_rng(RNG_SEED).permutation(len(new))
        return cls(tokens=new, attn=new * new / 2.0 + new * cached, order=order)

    def sums(self, counts: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token and attention sums of counts[i] prompts starting at stream position offsets[i]."""
        counts = np.asarray(counts, dtype=np.int64)
        n = len(self.order)
        span = int(counts.max(initial=0)) + 1
        reps = (int(offsets.max(initial=0)) + span) // n + 2
        tok, att = self._stream_sums(reps)
        return tok[offsets + counts] - tok[offsets], att[offsets + counts] - att[offsets]

    def first_prompts(self, draws: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For next-cycle draws: the stream offset where each draw's prompts start, its first
        prompt from its own stratum of the prompt grid (the length law's quantiles, ascending
        unless prefix hits round some prompts down; shuffled so that the prompt's length does not
        follow the count's stratum), and the shifts of token and attention sums that put that
        first prompt at its stratum's mean rather than its midpoint (a long-tailed prompt law keeps
        its mean, and the top stratum its weight, with a few hundred draws). The shifts are zero
        when the draws do not divide the grid into whole strata."""
        made = self._cumulative.get(("first", draws))
        if made is None:
            n = len(self.tokens)
            first = _even_picks(n, draws)[np.random.default_rng(RNG_SEED + 1).permutation(draws)]
            position = np.empty_like(self.order)
            position[self.order] = np.arange(n)
            tok_shift, att_shift = np.zeros(draws), np.zeros(draws)
            per = n // draws if n % draws == 0 else 0
            if per > 1:
                strata = np.minimum(first * draws // n, draws - 1)
                tok_shift = self.tokens.reshape(draws, per).mean(axis=1)[strata] - self.tokens[first]
                att_shift = self.attn.reshape(draws, per).mean(axis=1)[strata] - self.attn[first]
            made = self._cumulative[("first", draws)] = (position[first], tok_shift, att_shift)
        return made

    @property
    def median_tokens(self) -> float:
        made = self._cumulative.get("median")
        if made is None:
            made = self._cumulative["median"] = float(np.median(self.tokens))
        return made

    def draw_sums(self, per_count: int, k_max: int) -> tuple[np.ndarray, np.ndarray]:
        """Token and attention sums of k = 1..k_max prompts (row k-1) for `per_count` draws: the
        j-th prompt of a draw from a fixed permutation of stratified quantiles (a Latin hypercube
        over the length distribution). The rows for k_max are a prefix of those for any larger
        count, so the largest made so far serves (the fixed point asks at every iterate)."""
        made = self._cumulative.get(("draws", per_count))
        if made is None or made[0].shape[0] < k_max:
            n_pool = len(self.tokens)  # ascending: the grid holds quantiles of the length distribution
            strata = ((np.arange(per_count) + 0.5) / per_count * n_pool).astype(np.int64)
            idx = strata[_latin_columns(per_count, max(k_max, 2 * made[0].shape[0] if made else k_max))]
            made = (np.cumsum(self.tokens[idx], axis=1).T, np.cumsum(self.attn[idx], axis=1).T)
            self._cumulative[("draws", per_count)] = made
        return made[0][:k_max], made[1][:k_max]

    def _stream_sums(self, reps: int) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative sums over `reps` repeats of the stream (the longest made so far serves any
        shorter need: a cumulative sum's prefix does not depend on what follows it). Kept as one
        entry replaced whole, so threads sharing a cached pool never see it half made."""
        made = self._cumulative.get("sums")
        if made is None or made[0] < reps:
            stream = np.tile(self.order, reps)
            made = (reps, np.concatenate([[0.0], np.cumsum(self.tokens[stream])]),
                    np.concatenate([[0.0], np.cumsum(self.attn[stream])]))
            self._cumulative["sums"] = made
        return made[1], made[2]


def prefill_step_s(p: ReplicaParams, b, ctx, chunk, attn, spec=1.0):
    """roofline.step_time(p, b, b * ctx, chunk, attn, spec).total_s for steps that carry prompt
    tokens (chunk > 0), with the terms that do not depend on the chunk folded once: the sampled
    distributions call this on thousands of cycles at one running batch. Stacked params or an array
    of batches take the general formula."""
    if np.ndim(p.tp) or np.ndim(b) or np.ndim(ctx):
        return step_time(p, b, b * ctx, chunk, attn, spec_tokens=spec).total_s
    chunk = np.asarray(chunk, dtype=float)
    dec = b * spec  # decode tokens verified in the step
    linear_rate = p.tp * p.eta_compute * p.flops_linear
    t_flops = chunk * (2.0 * p.active_body_params / linear_rate)
    t_flops += (2.0 * p.active_body_params * dec + 2.0 * p.head_params * (dec + 1.0)) / linear_rate  # + one prompt logit
    weight_rate = p.tp * p.eta_weights * p.bw_bytes_s
    if p.experts > 0:
        t_weights = (p.body_bytes + p.head_bytes + p.moe_layers * touched_experts(p, dec + chunk) * p.expert_bytes) / weight_rate
    else:
        t_weights = (p.body_bytes + p.head_bytes) / weight_rate
    total = np.maximum(t_flops, t_weights, out=t_flops)
    total += np.asarray(attn, dtype=float) * (2.0 * p.attn_dim * p.q_heads_per_gpu * p.layers / (p.eta_attention * p.flops_attn))
    link_s_per_token = p.hidden * 2.0 / (p.eta_link * p.link_bytes_s)
    comm_fixed, comm_per_token = 0.0, 0.0
    if p.tp > 1:  # ring all-reduce twice per layer, as in roofline._tp_allreduce_s
        ring = 2.0 * (p.tp - 1) / p.tp
        comm_fixed += 2.0 * p.layers * (p.allreduce_latency_s + ring * dec * link_s_per_token)
        comm_per_token += 2.0 * p.layers * ring * link_s_per_token
    if p.pp > 1:
        comm_fixed += (p.pp - 1) * (p.allreduce_latency_s + dec * link_s_per_token)
        comm_per_token += (p.pp - 1) * link_s_per_token
    if comm_per_token:
        total += chunk * comm_per_token
    t_kv = sequence_kv_tokens(p, b * ctx, b) * p.kv_bytes_token_layers / (p.eta_kv * p.bw_bytes_s)
    overhead = fixed_step_s(p) + (b + 1.0) * p.seq_overhead_s
    total += t_kv + comm_fixed + overhead
    return total


def draft_share_s(p: ReplicaParams, b: float, ctx: float, t_d: float) -> float:
    """The part of a decode step t_d (at b sequences) spent in draft steps: t_d less the verify step."""
    return t_d - float(step_time(p, b, b * ctx, 0.0, 0.0, spec_tokens=p.spec_k + 1.0).total_s)


def cycle_duration(p: ReplicaParams, b: float, ctx: float, tokens, attn, t_d: float, draft_s: float | None = None):
    """Duration and step count of the cycle that prefills `tokens` prompt tokens next to b decodes.
    Chunked: ceil(tokens / room) mixed steps. Whole-prompt: one prefill-only step, then the decode
    step the running sequences were waiting for. `draft_s`: the draft part of t_d when the caller
    knows it (0.0 without speculation when t_d = decode_step(p, b, ctx)), else derived from t_d."""
    tokens = np.asarray(tokens, dtype=float)
    attn = np.asarray(attn, dtype=float)
    has = tokens > 0
    spec = p.spec_k + 1.0
    draft = draft_share_s(p, b, ctx, t_d) if draft_s is None else draft_s
    if float(p.chunked) > 0:
        room = max(float(p.budget_tokens) - b, 1.0)
        n = np.where(has, np.ceil(tokens / room), 1.0)
        mixed = prefill_step_s(p, b, ctx, tokens / n, attn / n, spec) + draft
        return np.where(has, n * mixed, t_d), n
    prefill = prefill_step_s(p, 0.0, 0.0, tokens, attn)
    return np.where(has, prefill + t_d, t_d), np.ones_like(tokens)


def cycle_samples(p, pool: PromptPool, b: float, ctx: float, t_d: float, k_max: int, per_count: int, draft_s: float | None = None):
    """Durations and step counts of cycles carrying k = 0..k_max prompts, `per_count` draws each.
    The j-th prompt of a draw comes from a fixed permutation of stratified quantiles (a Latin
    hypercube over the length distribution), so every prompt position is sampled evenly and the
    fixed point does not wobble with sampling noise."""
    tokens, attn = pool.draw_sums(per_count, k_max)
    dur, steps = cycle_duration(p, b, ctx, tokens, attn, t_d, draft_s)
    return np.vstack([np.full(per_count, t_d), dur]), np.vstack([np.ones(per_count), steps])


_LATIN: dict[int, tuple[np.random.Generator, np.ndarray]] = {}
_LATIN_LOCK = threading.Lock()  # the TUI plans and searches in worker threads


def _latin_columns(per_count: int, k_max: int) -> np.ndarray:
    """Column j is the j-th permutation drawn from one generator seeded with RNG_SEED, so the
    columns for k_max are a prefix of those for any larger count: one table per `per_count`,
    extended (doubling) as the arrival counts grow, instead of redrawn for every k_max the fixed
    point passes through. A read-only view."""
    cols = _LATIN[per_count][1] if per_count in _LATIN else None
    if cols is None or cols.shape[1] < k_max:
        with _LATIN_LOCK:
            rng, cols = _LATIN.get(per_count) or (np.random.default_rng(RNG_SEED), np.empty((per_count, 0), dtype=np.int64))
            if cols.shape[1] < k_max:
                more = max(k_max, 2 * cols.shape[1]) - cols.shape[1]
                cols = np.concatenate([cols, np.stack([rng.permutation(per_count) for _ in range(more)], axis=1)], axis=1)
                cols.flags.writeable = False
                _LATIN[per_count] = (rng, cols)
    return cols[:, :k_max]


def _known_draft_s(p: ReplicaParams) -> float | None:
    """The draft share of a decode step from decode_step(p, b, ctx) at the same b: exactly 0.0
    without speculation (saves cycle_duration a step_time call per fixed-point iteration), else
    None (cycle_duration derives it)."""
    return 0.0 if np.all(np.asarray(p.spec_k) == 0) else None


def _count_pmf(mean: float, var_cycle: float, mean_cycle_s: float) -> np.ndarray:
    """Arrivals during a random cycle: Poisson given the cycle, mixed over a gamma-shaped cycle
    length, i.e. negative binomial with mean lambda E[C] and extra variance lambda^2 Var(C)."""
    if mean <= 0:
        return np.array([1.0])
    extra = mean * mean * var_cycle / max(mean_cycle_s * mean_cycle_s, 1e-300)
    n_max = int(mean + 8.0 * np.sqrt(mean + extra) + 3)
    k = np.arange(n_max + 1, dtype=float)
    if extra <= 1e-9 * mean:
        log_pmf = k * np.log(mean) - mean - np.concatenate([[0.0], np.cumsum(np.log(k[1:]))])
    else:
        r = mean * mean / extra  # gamma shape of the cycle length
        q = mean / (mean + r)
        log_pmf = r * np.log(1.0 - q) + np.concatenate([[0.0], np.cumsum(np.log((k[1:] - 1.0 + r) / k[1:] * q))])
    pmf = np.exp(log_pmf - log_pmf.max())
    return pmf / pmf.sum()


@dataclass
class RateState:
    batch: float
    t_decode_s: float
    cycle_s: float
    steps_per_cycle: float
    cycle2_s2: float
    count_pmf: np.ndarray
    cycle_slope_s: float = 0.0  # d E[cycle] / d running batch (per sequence)
    gain: float = 0.0  # d B_next / d B of the fixed point: near 1, the batch wanders slowly and far
    batch_var: float = 0.0  # stationary variance of the running batch (linear-noise approximation)
    batch_memory_steps: float = 0.0  # correlation time of its slow fluctuations, in steps
    slow_step_var_s2: float = 0.0  # variance of the step duration's slow mode (the batch's and the prefill load's drift)
    decode_chord_s: float = 0.0  # d decode step / d sequence of one lane, over the same span as cycle_slope_s
    next_cycles: dict = field(default_factory=dict, repr=False, compare=False)  # NextCycles by draws per row

    @property
    def step_s(self) -> float:
        return self.cycle_s / self.steps_per_cycle

    @property
    def prefill_share(self) -> float:
        """Share of the mean step spent on prefill, capped at 0.95: longer cycles gather more
        prompts, so a change in the step is stretched by the arrival feedback 1 / (1 - share)."""
        return min(max(1.0 - self.t_decode_s / self.step_s, 0.0), 0.95)


MAX_PROMPTS_PER_CYCLE = 400


def solve_rate(p: ReplicaParams, wl: Workload, pool: PromptPool, rate: float, cap: float,
               below: RateState | None = None) -> RateState | None:
    """Fixed point of the running batch (Little's law, B = rate (E[L_out] - 1) x mean step / tokens
    per step) and of the first two moments of the cycle length, iterated up from an empty engine.
    The next cycle's arrivals are Poisson over the previous cycle, mixed over its (gamma-shaped)
    length. None when it diverges: prompts arrive faster than cycles clear them, or the batch
    passes its cap.
    `below`: the fixed point of a lower rate of the same replica, to climb from instead of the empty
    engine. The map rises with the state and with the rate, so that point lies below this rate's
    fixed point and the climb ends at the same (smallest) fixed point, in fewer iterations."""
    lanes = float(p.pp)
    lane_rate = rate / lanes
    ctx = wl.decode_ctx_mean
    tokens = float(spec_tokens_per_step(p))
    decode_tokens = max(wl.mean_out - 1.0, 0.0)
    batch, cycle, cycle2 = (below.batch, below.cycle_s, below.cycle2_s2) if below is not None else (0.0, 0.0, 0.0)
    draft = _known_draft_s(p)
    for _ in range(FIXED_POINT_ITERATIONS):
        b = batch / lanes
        t_d = float(decode_step(p, b, ctx).total_s)
        cycle, cycle2 = max(cycle, t_d), max(cycle2, t_d * t_d)
        pmf = _count_pmf(lane_rate * cycle, max(cycle2 - cycle * cycle, 0.0), cycle)
        if len(pmf) > MAX_PROMPTS_PER_CYCLE:
            return None
        k_max = len(pmf) - 1
        dur_k, dur2_k, steps_k = _cycle_moments(p, pool, b, ctx, t_d, k_max, draft)
        mean_c, c2, mean_steps = float(pmf @ dur_k), float(pmf @ dur2_k), float(pmf @ steps_k)
        new_batch = rate * decode_tokens * (mean_c / mean_steps) / tokens
        if new_batch > cap or not np.isfinite(mean_c) or mean_c > 1e4 * t_d:
            return None
        done = abs(new_batch - batch) <= 1e-4 * max(batch, 1.0) and abs(mean_c - cycle) <= 1e-4 * mean_c
        batch, cycle, cycle2 = new_batch, mean_c, c2
        if done:
            state = RateState(batch, t_d, mean_c, mean_steps, c2, pmf)
            _batch_sensitivity(p, pool, state, lane_rate, ctx, rate * decode_tokens / tokens)
            return state
    return None  # still climbing: the queue of prompts grows


def _cycle_moments(p, pool: PromptPool, b: float, ctx: float, t_d: float, k_max: int, draft_s: float | None):
    """Mean duration, mean squared duration and mean steps of cycles carrying k = 0..k_max prompts
    (MIX_SAMPLES draws each): cycle_samples' row means, without stacking the no-prompt row."""
    if k_max == 0:
        return np.array([t_d]), np.array([t_d * t_d]), np.ones(1)
    idle = np.full(MIX_SAMPLES, t_d)
    first = (np.array([idle.mean()]), np.array([(idle * idle).mean()]), np.ones(1))
    tokens, attn = pool.draw_sums(MIX_SAMPLES, k_max)
    dur, steps = cycle_duration(p, b, ctx, tokens, attn, t_d, draft_s)
    return (np.concatenate([first[0], dur.mean(axis=1)]), np.concatenate([first[1], (dur * dur).mean(axis=1)]),
            np.concatenate([first[2], steps.mean(axis=1)]))


def _batch_sensitivity(p, pool, state: RateState, lane_rate: float, ctx: float, batch_per_step_s: float) -> None:
    """How much a longer-lived excess of running sequences stretches the cycles, and the gain of the
    batch fixed point (B = batch_per_step_s x mean step): fluctuations of the batch are amplified
    by 1/(1 - gain) and decay that much more slowly (critical slowing near saturation)."""
    lanes = float(p.pp)
    delta = max(1.0, 0.05 * state.batch / lanes)
    base_b = state.batch / lanes

    def mean_step_s(b: float) -> tuple[float, float]:
        # (decode step, mean step) at b; both ends from the same draws and the same arrival pmf, so
        # the difference holds only the batch's effect (the fixed point's own step comes from the
        # iterate before)
        t_d = float(decode_step(p, b, ctx).total_s)
        dur_k, _, steps_k = _cycle_moments(p, pool, b, ctx, t_d, len(state.count_pmf) - 1, _known_draft_s(p))
        return t_d, float(state.count_pmf @ dur_k) / float(state.count_pmf @ steps_k)

    (decode_lo, step_lo), (decode_hi, step_hi) = mean_step_s(base_b), mean_step_s(base_b + delta)
    state.decode_chord_s = (decode_hi - decode_lo) / delta
    raw_slope_s = max((step_hi - step_lo) / (delta * lanes), 0.0)
    state.cycle_slope_s = raw_slope_s / (1.0 - state.prefill_share)
    state.gain = min(batch_per_step_s * state.cycle_slope_s, 0.95)
    hazard = lane_rate * lanes / batch_per_step_s if batch_per_step_s > 0 else 1.0  # departures per sequence and step
    state.batch_var, state.batch_memory_steps, state.slow_step_var_s2 = _batch_noise(
        p, state, lane_rate, raw_slope_s, state.prefill_share, min(hazard, 1.0))


def _batch_noise(p, state: RateState, lane_rate: float, slope_s: float, prefill_share: float, h: float) -> tuple[float, float, float]:
    """Linear-noise approximation (van Kampen) of the step duration D and the running batch B of
    one lane, step by step: D_n = d + a (D_n-1 - d) + s (B_n - b) + noise (a: the prefill share,
    each second of step gathering prompts for the next; s: the batch's cost per sequence), and
    B_n+1 = B_n + arrivals during D_n - departures (hazard h per step). A long, prefill-heavy step
    gathers more arrivals, so the batch swells with the prefill noise as well as with the Poisson
    noise of arrivals and departures. Returns Var(B), the batch mode's correlation time in steps and
    its share of Var(D): the step durations' autocovariance is a sum of two geometric modes, the
    prefill bursts' (decaying at about a per step) and the batch's with the prefill load it
    carries (decaying at about 1 - h per step). Zeros when there is no stable solution."""
    d = state.step_s
    lanes = float(p.pp)
    b = state.batch / lanes
    a = prefill_share
    arrivals = lane_rate * d  # per step
    A = np.array([[a, slope_s], [lane_rate, 1.0 - h]])
    step_var = max(state.cycle2_s2 - state.cycle_s ** 2, 0.0) / state.steps_per_cycle ** 2
    # noise: the step's own (scaled so the AR(1) part alone has the stationary step variance), the
    # Poisson arrivals plus departures of the batch, and their covariance through the shared
    # arrival count (prefill time a / lambda per prompt times Var(arrivals) = lambda d)
    q = np.array([[step_var * (1.0 - a * a), a * d], [a * d, arrivals + h * b]])
    try:
        # stationary covariance: P = A P A^T + Q, i.e. vec(P) = (I - A (x) A)^-1 vec(Q)
        P = np.linalg.solve(np.eye(4) - np.kron(A, A), q.ravel()).reshape(2, 2)
        modes, vectors = np.linalg.eig(A)
        # Cov(D_n+k, D_n) = (A^k P)_00 = sum over modes i of V_0i mu_i^k (V^-1 P)_i0
        weights = vectors[0, :] * np.linalg.solve(vectors, P)[:, 0]
    except np.linalg.LinAlgError:
        return 0.0, 0.0, 0.0
    if np.iscomplexobj(modes) and np.any(np.abs(modes.imag) > 1e-12):
        return 0.0, 0.0, 0.0
    # the batch's mode: the eigenvalue nearer the batch's own persistence 1 - h (the other is the
    # prefill bursts', which the decode paths follow cycle by cycle); with outputs of a few tokens
    # the batch turns over faster than the bursts decay, so it is not always the slower one
    slow = int(np.argmin(np.abs(modes.real - (1.0 - h))))
    mu = float(modes.real[slow])
    if not (np.isfinite(P[1, 1]) and P[1, 1] > 0 and 0.0 < mu < 1.0):
        return 0.0, 0.0, 0.0
    return float(P[1, 1]) * lanes, 1.0 / (1.0 - mu), max(float(np.real(weights[slow])), 0.0)


def rate_point(p: ReplicaParams, wl: Workload, rate: float, detailed: bool = True, fidelity: Fidelity | None = None) -> OperatingPoint:
    """Open-loop Poisson arrivals at `rate` req/s to one replica."""
    return finish_rate_point(p, wl, solve_rate_point(p, wl, rate), detailed, fidelity)


@dataclass
class RateSolution:
    """The fixed point of one open-loop rate (before its latency statistics): solved once, it can
    yield both the means and the distributions."""

    rate: float
    point: OperatingPoint
    pool: PromptPool | None = None
    state: RateState | None = None


def solve_rate_point(p: ReplicaParams, wl: Workload, rate: float, below: RateSolution | None = None) -> RateSolution:
    """`below`: a solution at a lower rate to climb from (see solve_rate)."""
    cap = batch_cap(p, wl)
    max_rate, _, _ = offline_throughput(p, wl)
    util = rate / max_rate if max_rate > 0 else float("inf")
    point = OperatingPoint(mode="rate", stable=False, max_rate_rps=max_rate, utilization=max(util, 0.0), max_batch=cap,
                           kv_tokens=float(kv_capacity_tokens(p)))
    if cap < 1.0:
        point.note = "no room for a single request's KV cache"
        return RateSolution(rate, point)
    rate = max(rate, 0.0)
    if util >= 1.0:
        point.note = f"offered {rate:.3g} req/s is at or above the replica's maximum {max_rate:.3g} req/s"
        return RateSolution(rate, point)
    pool = wl.pool(p)
    start = below.state if below is not None and below.rate < rate and below.rate > 0 else None
    state = solve_rate(p, wl, pool, rate, cap, start) if rate > 0 else _idle_state(p, wl)
    if state is None:
        point.note = f"prefill work outgrows the engine at {rate:.3g} req/s (queue grows without bound)"
        return RateSolution(rate, point)
    return RateSolution(rate, point, pool, state)


def finish_rate_point(p: ReplicaParams, wl: Workload, solved: RateSolution, detailed: bool = True,
                       fidelity: Fidelity | None = None) -> OperatingPoint:
    """Latency statistics of a solved rate, on a fresh copy of its point (a solution can be
    finished more than once)."""
    point = replace(solved.point)
    pool, state, rate = solved.pool, solved.state, solved.rate
    if state is None:
        return point
    lanes = float(p.pp)
    point.stable = True
    point.batch = state.batch if rate > 0 else 0.0
    point.decode_step_s = state.t_decode_s
    point.tpot_mean_s = state.step_s / float(spec_tokens_per_step(p))
    point.prefill_rho = 1.0 - state.t_decode_s / state.step_s if state.step_s > 0 else 0.0
    point.requests_per_s = rate
    b = max(state.batch, 1.0) / lanes
    point.decode_bound = str(bound_name(decode_step(p, b, wl.decode_ctx_mean)))
    mid = pool.median_tokens
    room = float(p.budget_tokens) - b if float(p.chunked) > 0 else np.inf
    point.prefill_bound = str(bound_name(step_time(p, b, b * wl.decode_ctx_mean, min(mid, room), mid * mid / 2)))
    if detailed and rate <= 0:
        _idle_distributions(p, wl, pool, point, state)
    elif detailed:
        _distributions(p, wl, pool, point, rate / lanes, state, fidelity or FULL)
    else:
        _means(p, wl, pool, point, rate / lanes, state)
    return point


IDLE_PAIRS = 4  # E2E pairs each prompt of the grid with this many output lengths


def _idle_distributions(p, wl: Workload, pool: PromptPool, point: OperatingPoint, state: RateState) -> None:
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
    point.ttft_s, point.e2e_s = _pct(ttft), _pct(e2e)
    point.tpot_s = {"mean": tpot, "p50": tpot, "p90": tpot, "p99": tpot}
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]


_IDLE_SHUFFLES: dict[tuple[int, int], np.ndarray] = {}


def _idle_shuffle(n: int) -> np.ndarray:
    """The seeded shuffle of n (prompt, output) pairings: the same order rng.permutation gives an
    array of n, made once per length."""
    made = _IDLE_SHUFFLES.get((n, RNG_SEED))
    if made is None:
        made = _IDLE_SHUFFLES.setdefault((n, RNG_SEED), np.random.default_rng(RNG_SEED).permutation(n))
    return made


def _idle_state(p: ReplicaParams, wl: Workload) -> RateState:
    t_d = float(decode_step(p, 1.0, wl.decode_ctx_mean).total_s)
    return RateState(batch=1.0, t_decode_s=t_d, cycle_s=t_d, steps_per_cycle=1.0, cycle2_s2=t_d * t_d, count_pmf=np.array([1.0]))


def _linear_percentiles(x: np.ndarray, percentiles) -> list[float]:
    """np.percentile's default (linear between the two nearest order statistics), from a single
    partition at those order statistics (np.percentile's own call costs several times that)."""
    n = len(x)
    if n == 1:
        return [float(x[0])] * len(percentiles)
    at = [(n - 1) * q / 100.0 for q in percentiles]
    below = [min(int(math.floor(h)), n - 2) for h in at]
    part = np.partition(x, sorted({k for lo in below for k in (lo, lo + 1)}))
    return [float(part[lo] + (h - lo) * (part[lo + 1] - part[lo])) for h, lo in zip(at, below)]


def _pct(x: np.ndarray, weights: np.ndarray | None = None) -> dict:
    if weights is None:
        q = _linear_percentiles(x, PERCENTILES)
        return {"mean": float(x.mean()), "p50": q[0], "p90": q[1], "p99": q[2]}
    q = _weighted_percentiles(x, weights, PERCENTILES)
    return {"mean": float(weights @ x) / float(weights.sum()), "p50": q[0], "p90": q[1], "p99": q[2]}


PARTITION_BLOCKS = 32  # weighted percentiles sort one of this many value blocks per percentile
PARTITION_FROM = 4096  # samples; fewer are sorted whole (faster below about this many)


def _weighted_percentiles(x: np.ndarray, weights: np.ndarray, percentiles) -> list[float]:
    """Percentiles of weighted samples, each sample at the middle of its probability mass and
    linear between them (np.interp over the sorted samples' mid-CDF). Without sorting them all: a
    partition into value blocks, the block whose mass holds the percentile sorted alone, with the
    largest sample before it and the smallest after (the mid-points either side of the
    percentile)."""
    n = len(x)
    probs = np.asarray(percentiles, dtype=float) / 100.0
    if n < PARTITION_FROM:
        order = np.argsort(x)
        w = weights[order] / weights.sum()
        return [float(q) for q in np.interp(probs, np.cumsum(w) - w / 2.0, x[order])]
    bounds = np.arange(1, PARTITION_BLOCKS) * n // PARTITION_BLOCKS
    idx = np.argpartition(x, bounds)
    xs, ws = x[idx], weights[idx] / weights.sum()
    starts = np.concatenate([[0], bounds, [n]])
    before = np.concatenate([[0.0], np.cumsum(np.add.reduceat(ws, starts[:-1]))])  # mass below each block
    out = []
    for prob in probs:
        b = min(int(np.searchsorted(before, prob, side="right")) - 1, PARTITION_BLOCKS - 1)
        lo, hi = starts[b], starts[b + 1]
        order = np.argsort(xs[lo:hi])
        vals, w = xs[lo:hi][order], ws[lo:hi][order]
        mids = before[b] + np.cumsum(w) - w / 2.0
        if b > 0:  # the largest sample below the block
            j = int(np.argmax(xs[starts[b - 1]:lo])) + starts[b - 1]
            vals, mids = np.concatenate([[xs[j]], vals]), np.concatenate([[before[b] - ws[j] / 2.0], mids])
        if b < PARTITION_BLOCKS - 1:  # the smallest sample above it
            j = int(np.argmin(xs[hi:starts[b + 2]])) + hi
            vals, mids = np.concatenate([vals, [xs[j]]]), np.concatenate([mids, [before[b + 1] + ws[j] / 2.0]])
        out.append(float(np.interp(prob, mids, vals)))
    return out


def _means(p, wl, pool: PromptPool, point: OperatingPoint, lane_rate: float, state: RateState) -> None:
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


POISSON_EXACT_BELOW = 30.0


def poisson_counts(rng: np.random.Generator, means: np.ndarray) -> np.ndarray:
    """Poisson draws at `means`, one seeded uniform each (poisson_quantiles)."""
    means = np.asarray(means, dtype=float)
    return poisson_quantiles(means, rng.random(len(means)))


def poisson_quantiles(means: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Poisson counts by inverse CDF of fixed seeded uniforms: the same uniform maps to a count that
    only grows with the mean, so latencies built on these draws only grow with the load (no
    sampling wobble in the sizing search). Large means use the normal approximation. The CDF walk
    carries on only for the draws not yet placed."""
    means = np.asarray(means, dtype=float)
    counts = np.zeros(len(means), dtype=np.int64)
    large = means >= POISSON_EXACT_BELOW
    active, lam, target = None, means, u  # None: every draw (most calls have no large mean)
    if large.any():
        z = norm_ppf(np.clip(u[large], 1e-12, 1 - 1e-12))
        counts[large] = np.maximum(np.rint(means[large] + z * np.sqrt(means[large])), 0.0)
        active = np.flatnonzero(~large)
        lam, target = means[active], u[active]
    walk = np.empty((4, len(lam)))  # rows: mean, target uniform, pmf, cdf (compacted together)
    walk[0], walk[1] = lam, target
    np.exp(-lam, out=walk[2])
    walk[3] = walk[2]
    lam, target, pmf, cdf = walk
    placed = None  # counts of the draws in `active` so far
    k_max = int(POISSON_EXACT_BELOW + 6.0 * np.sqrt(POISSON_EXACT_BELOW) + 5)
    for k in range(1, k_max + 1):
        below = cdf < target
        left = int(np.count_nonzero(below))
        if not left:
            break
        if left * 2 < len(lam):  # most draws placed: carry on with the rest alone
            if placed is not None:
                counts[slice(None) if active is None else active] = placed
                placed = placed[below] + 1
            else:
                placed = np.ones(left, dtype=np.int64)
            active = np.flatnonzero(below) if active is None else active[below]
            walk = walk[:, below]
            lam, target, pmf, cdf = walk
        else:
            placed = below.astype(np.int64) if placed is None else placed + below
        pmf *= lam / k
        cdf += pmf
    if placed is not None:
        counts[slice(None) if active is None else active] = placed
    return counts


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    cdf = np.cumsum(weights[order])
    return values[order][np.minimum(np.searchsorted(cdf, u * cdf[-1]), len(values) - 1)]


def _even_picks(pool_size: int, n: int) -> np.ndarray:
    """n indices into the ascending prompt grid that cover it evenly: every prompt n / pool_size
    times when that is whole, else the middle of each of n equal strata (a prefix of the grid would
    keep only the shorter prompts: QUICK's 1024 TTFT samples saw the shorter half of 2048)."""
    if n % pool_size == 0:
        return np.tile(np.arange(pool_size), n // pool_size)
    return ((np.arange(n) + 0.5) * pool_size / n).astype(np.int64)


@dataclass(frozen=True)
class SampleDraws:
    """The seeded random inputs of one distributions pass, in the order one seeded generator
    yields them. They depend only on the sample counts (not on the operating point), so
    they are drawn once per shape and every pass reads the same arrays (read-only)."""

    busy_strata: np.ndarray  # a permutation of the TTFT strata: arrival in a busy cycle when >= the idle share
    current_order: np.ndarray  # shuffles the in-progress cycle's quantiles
    residual_strata: np.ndarray  # the elapsed share of that cycle
    co_uniforms: np.ndarray  # Poisson draws of the prompts arriving alongside
    co_offsets: np.ndarray  # where those prompts start in the pool's stream
    own_picks: np.ndarray  # the request's own prompt, evenly over the pool
    output_order: np.ndarray  # shuffles the output-length samples
    walk_uniforms: np.ndarray  # one row per followed cycle (none when no cycle sees an arrival)
    beyond_normals: np.ndarray  # the stationary extension past the followed cycles
    drift_normals: np.ndarray  # the running batch's drift
    _picks: dict = field(default_factory=dict, compare=False, repr=False)

    def walk_picks(self, draws: int) -> np.ndarray:
        """The draw of a next-cycle row of `draws` that each walk uniform picks: its bits 13-20
        for 256 draws (draws per row are a power of two, so the draw is the low bits)."""
        made = self._picks.get(draws)
        if made is None:
            made = (self.walk_uniforms * (DRAW_BITS * draws)).astype(np.int64) & (draws - 1)
            made.flags.writeable = False
            made = self._picks.setdefault(draws, made)
        return made

    @staticmethod
    def make(n: int, m: int, pool_size: int, cycles: int, seed: int) -> SampleDraws:
        rng = np.random.default_rng(seed)
        strata = (np.arange(n) + 0.5) / n
        busy = rng.permutation(strata)
        current = rng.permutation(n)
        residual = rng.permutation(strata)
        co_uniforms = rng.random(n)
        co_offsets = rng.integers(0, pool_size, size=n)
        picks = _even_picks(pool_size, n)[rng.permutation(n)]
        output_order = rng.permutation(m)
        walk = np.empty((cycles, m))
        for i in range(cycles):  # one call per cycle, as the walk drew them
            walk[i] = rng.random(m)
        made = SampleDraws(busy, current, residual, co_uniforms, co_offsets, picks, output_order, walk,
                           rng.standard_normal(m), rng.standard_normal(m))
        for array in vars(made).values():
            if isinstance(array, np.ndarray):
                array.flags.writeable = False
        return made


_SAMPLE_DRAWS: dict[tuple[int, int, int, int, int], SampleDraws] = {}


def sample_draws(n: int, m: int, pool_size: int, cycles: int) -> SampleDraws:
    """The draws for n TTFT and m TPOT samples from a pool of `pool_size` prompts, following
    `cycles` cycles (0: no walk), made once per shape and seed."""
    key = (n, m, pool_size, cycles, RNG_SEED)
    made = _SAMPLE_DRAWS.get(key)
    if made is None:
        made = _SAMPLE_DRAWS.setdefault(key, SampleDraws.make(*key))
    return made


def _distributions(p, wl, pool: PromptPool, point: OperatingPoint, lane_rate: float, state: RateState, fid: Fidelity) -> None:
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
    current = _weighted_quantiles(durations, in_progress, _strata(n))[draws.current_order]
    residual = np.where(busy, draws.residual_strata * current, 0.0)
    co_counts = np.where(busy, poisson_quantiles(lane_rate * current, draws.co_uniforms), 0)
    co_tok, co_att = pool.sums(co_counts, draws.co_offsets)
    draft = draft_share_s(p, b, ctx, t_d)  # the same for every cycle sampled at this batch
    own, _ = cycle_duration(p, b, ctx, pool.tokens[draws.own_picks] + co_tok, pool.attn[draws.own_picks] + co_att, t_d, draft)
    ttft = residual + own + float(p.api_overhead_s)
    l_out, w_out = _shuffled_outputs(wl.output_len, m, float(spec_tokens_per_step(p)), draws.output_order)
    per_step = durations / steps
    step_sd = float(np.sqrt(max(weights @ (per_step - weights @ per_step) ** 2, 0.0)))
    tpot = _tpot_samples(p, pool, draws, lane_rate, b, ctx, state, point.batch, own[:m], l_out, step_sd, draft, fid.next_draws)
    has_decode = l_out > 1.0
    e2e = ttft[:m] + np.where(has_decode, (l_out - 1.0) * tpot, 0.0)
    point.ttft_s, point.e2e_s = _pct(ttft), _pct(e2e, w_out)
    point.tpot_s = _pct(tpot[has_decode], w_out[has_decode]) if has_decode.any() else _pct(np.array([point.tpot_mean_s]))
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]


_STRATA: dict[int, np.ndarray] = {}


def _strata(n: int) -> np.ndarray:
    """The midpoints (i + 0.5) / n of n equal probability strata (read-only)."""
    made = _STRATA.get(n)
    if made is None:
        made = (np.arange(n) + 0.5) / n
        made.flags.writeable = False
        made = _STRATA.setdefault(n, made)
    return made


_OUTPUTS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _shuffled_outputs(dist: LengthDist, m: int, tokens_per_step: float, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_output_samples in the seeded order, kept by distribution (the same at every load)."""
    key = (*dist.model_dump().values(), m, tokens_per_step)
    made = _OUTPUTS.get(key)
    if made is None:
        l_out, w_out = _output_samples(dist, m, tokens_per_step)
        made = (l_out[order], w_out[order])
        for array in made:
            array.flags.writeable = False
        if len(_OUTPUTS) > 256:  # many workloads seen (a sweep of lengths): start again
            _OUTPUTS.clear()
        made = _OUTPUTS.setdefault(key, made)
    return made


NEXT_RATIO = 1.2  # consecutive arrival means of the next-cycle grid (the nearest row: within 10%)
NEXT_ROWS_MAX = 160  # grid rows at most (beyond: the top row, for cycles ~1e12 times a decode step)
# A path's uniform u decides the arrival (u < e^-m: none) and, through its bits 13-20, the row's
# draw. Below about 2.4e-4 expected arrivals a cycle, the arriving u span too few steps of 2^-20 to
# reach every draw (the rare arrival's first prompt is then not stratified); such cycles almost
# never bring one, and moving the draw to lower bits reshuffles every path of every plan.
DRAW_BITS = 4096.0


@dataclass(frozen=True)
class NextCycles:
    """The cycle that follows one of duration c prefills the prompts that arrived during c: Poisson
    with mean m = lane rate x c. Tabulated once per solved state on a fixed geometric grid of m
    (the powers of NEXT_RATIO, the same at every load), each row holding `draws` stratified draws
    of that next cycle given at least one arrival: draw j takes the j-th stratum of the
    zero-truncated count and a first prompt from its own stratum of the prompt grid, the same in
    every row. One more entry, the last, is the plain decode step (no arrival). A decode path is
    a walk over entries: each entry keeps its chance of no arrival after it, e^-m, and the row its
    arrivals come from, so a cycle costs a few lookups instead of a Poisson walk, a prompt sum and
    a step-time evaluation. A larger m never gives an earlier row, and row by row every draw
    carries at least as many prompts, so with common uniforms a path only lengthens with load."""

    draws: int
    durations: np.ndarray  # rows x draws + 1 entries
    steps: np.ndarray
    idle: np.ndarray  # e^-m after each entry: the chance the next cycle has no arrival
    next_row: np.ndarray  # first entry of the row the next cycle's arrivals come from
    first_row: int  # grid exponent of row 0
    rows: int

    @cached_property
    def single_steps(self) -> bool:
        """Every cycle is one step (most tables: no cycle spills over the token budget)."""
        return bool(np.all(self.steps == 1.0))

    def after(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For cycles bringing m arrivals on average: the chance of none, and the first entry of
        the grid row nearest to m (in log m)."""
        row = np.rint(np.log(np.maximum(m, 1e-300)) / math.log(NEXT_RATIO)) - self.first_row
        return np.exp(-m), np.clip(row, 0, self.rows - 1).astype(np.int64) * self.draws

    def walk(self, m: np.ndarray, seeded: SampleDraws, times: np.ndarray, counts: np.ndarray) -> None:
        """Cumulative durations and steps (rows of `times`, `counts`) of the cycles after ones
        bringing m arrivals on average, one row of walk uniforms per cycle: no arrival when
        u < e^-m, else the draw that u's trailing digits pick in the row."""
        idle, row = self.after(m)
        uniforms, picks = seeded.walk_uniforms, seeded.walk_picks(self.draws)
        last = len(self.durations) - 1  # the plain decode step (no arrival)
        single_steps = self.single_steps
        for i in range(len(times)):
            at = np.where(uniforms[i] < idle, last, row + picks[i])
            np.add(times[i - 1] if i else 0.0, self.durations[at], out=times[i])
            if single_steps:
                counts[i] = i + 1.0
            else:
                np.add(counts[i - 1] if i else 0.0, self.steps[at], out=counts[i])
            idle, row = self.idle[at], self.next_row[at]


def _truncated_poisson_quantiles(mean: float, u: np.ndarray) -> np.ndarray:
    """Quantiles at probabilities u of Poisson(mean) counts conditioned on at least one, from the
    exact CDF in log space (no normal approximation, no underflow at large means)."""
    k = np.arange(1, int(mean + 10.0 * math.sqrt(mean) + 12) + 1, dtype=float)
    cdf = np.cumsum(np.exp(k * math.log(mean) - mean - np.cumsum(np.log(k)))) / max(-math.expm1(-mean), 1e-300)
    return np.minimum(np.searchsorted(np.minimum(cdf, 1.0), u, side="left"), len(k) - 1) + 1


_POISSON_ROWS: dict[tuple[int, int], np.ndarray] = {}


def _truncated_poisson_row(exponent: int, draws: int) -> np.ndarray:
    """Zero-truncated Poisson quantiles of the grid mean NEXT_RATIO**exponent at the draws' strata
    (the same at every load: kept by exponent)."""
    row = _POISSON_ROWS.get((exponent, draws))
    if row is None:
        quantiles = _truncated_poisson_quantiles(NEXT_RATIO ** float(exponent), (np.arange(draws) + 0.5) / draws)
        row = _POISSON_ROWS.setdefault((exponent, draws), quantiles)
    return row


def next_cycles(p, pool: PromptPool, b: float, ctx: float, state: RateState, lane_rate: float, draws: int,
                draft_s: float | None) -> NextCycles:
    """The state's next-cycle table with `draws` per row (made once, kept on the state). The grid
    runs from the arrivals of a plain decode step to those of the longest cycle a request can
    start in: its own prompt at the grid's longest, with the stationary law's most co-arrivals."""
    made = state.next_cycles.get(draws)
    if made is not None:
        return made
    if draws & (draws - 1):
        raise ValueError(f"draws per next-cycle row must be a power of two, not {draws}")
    t_d = state.t_decode_s
    co_arrivals = len(state.count_pmf) - 1
    longest, _ = cycle_duration(p, b, ctx, [float(pool.tokens.max()) + co_arrivals * float(pool.tokens.mean())],
                                [float(pool.attn.max()) + co_arrivals * float(pool.attn.mean())], t_d, draft_s)
    step = math.log(NEXT_RATIO)
    first_row = int(math.floor(math.log(lane_rate * t_d) / step))
    rows = min(int(math.ceil(math.log(lane_rate * max(float(longest[0]), t_d)) / step)) - first_row + 1, NEXT_ROWS_MAX)
    counts = np.concatenate([_truncated_poisson_row(e, draws) for e in range(first_row, first_row + rows)])
    offsets, tok_shift, att_shift = pool.first_prompts(draws)
    tok, att = pool.sums(np.append(counts, 0), np.append(np.tile(offsets, rows), 0))
    tok[:-1] += np.tile(tok_shift, rows)
    att[:-1] += np.tile(att_shift, rows)
    durations, steps = cycle_duration(p, b, ctx, tok, att, t_d, draft_s)  # the last: no prompt, a decode step
    made = NextCycles(draws, durations, steps, np.empty(0), np.empty(0, dtype=np.int64), first_row, rows)
    idle, next_row = made.after(lane_rate * durations)
    made = replace(made, idle=idle, next_row=next_row)
    state.next_cycles[draws] = made
    return made


SHORT_DECODE_STEPS = 32  # requests decoding in this few steps form the importance-sampled stratum
SHORT_SHARE = 0.5  # of the TPOT samples, given to that stratum when it holds less of the mass


def _output_samples(dist: LengthDist, m: int, tokens_per_step: float) -> tuple[np.ndarray, np.ndarray]:
    """m output lengths as stratified quantiles, with their probability weights. The requests that
    decode in at most SHORT_DECODE_STEPS steps get SHORT_SHARE of the samples (importance
    sampling): their TPOT averages over a few steps, one prefill-heavy cycle among them sets the
    TPOT tail, and with even weights a few dozen samples would decide the p99."""
    short_p = float(np.mean(lengths.grid(dist, SAMPLES) <= 1.0 + SHORT_DECODE_STEPS * tokens_per_step))
    if not 0.0 < short_p < SHORT_SHARE:
        return lengths.grid(dist, m), np.full(m, 1.0 / m)
    m_short = int(m * SHORT_SHARE)
    u = np.concatenate([short_p * (np.arange(m_short) + 0.5) / m_short,
                        short_p + (1.0 - short_p) * (np.arange(m - m_short) + 0.5) / (m - m_short)])
    w = np.concatenate([np.full(m_short, short_p / m_short), np.full(m - m_short, (1.0 - short_p) / (m - m_short))])
    return lengths.quantiles(dist, u), w


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
    # linear-noise approximation (_batch_noise); where that has no stable solution, the Poisson
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


CLOSED_LOOP_TOLERANCE = 1e-4  # relative: X E2E(X) within this of the clients, or X bracketed this tightly
CLOSED_LOOP_MAX_SOLVES = 40  # open-loop solves at most (the bisection this replaced used 31)
SATURATED_SHARE = 0.99  # throughput at or above this share of the offline maximum counts as saturated


def concurrency_point(p: ReplicaParams, wl: Workload, clients: int, detailed: bool = True) -> OperatingPoint:
    """Closed loop: `clients` users each send their next request when the last one completes.
    Below saturation, mean-value analysis: throughput X solves X * E2E_mean(X) = clients, with the
    open-loop model at rate X supplying E2E. One client is exact instead: each request runs alone, so
    it sees the idle engine, never a queue (Poisson arrivals at X = 1 / E2E would make it wait
    behind a busy engine half the time).
    Saturated (the fixed point would sit at 99% of the saturation throughput or beyond): every batch
    slot is taken, the engine runs as offline (_saturated_engine) and the clients it does not admit
    wait for a slot, E2E_mean = clients / X (Little's law). Between the last open-loop fixed point
    and the client count that just fills the batch the two are blended (_saturated_point), so the
    figures are continuous in the client count."""
    max_rate, _, _ = offline_throughput(p, wl)
    if max_rate <= 0:
        return OperatingPoint(mode="concurrency", stable=False, note="does not fit")
    if clients <= 1:
        best = finish_rate_point(p, wl, solve_rate_point(p, wl, 0.0), detailed)
        best.requests_per_s = 1.0 / best.e2e_mean_s if best.stable and best.e2e_mean_s > 0 else 0.0
        best.mode = "concurrency"
        best.utilization = best.requests_per_s / max_rate
        return best
    sat = _saturated_engine(p, wl, detailed)
    sat_rps = sat.rate_rps * SATURATED_SHARE
    lo_rps, solved = _closed_loop_throughput(p, wl, clients, min(max_rate, sat.rate_rps) * 0.999, sat_rps)
    if lo_rps is not None and lo_rps < sat_rps and solved[lo_rps].state is not None:
        # a fixed point below saturation, unless lo_rps is only the open-loop model's stability edge
        # (the largest stable rate, with X E2E(X) short of the clients)
        edge_clients = lo_rps * finish_rate_point(p, wl, solved[lo_rps], detailed=False).e2e_mean_s
        if clients <= edge_clients * (1.0 + 10.0 * CLOSED_LOOP_TOLERANCE):
            best = finish_rate_point(p, wl, solved[lo_rps], detailed)
            best.mode = "concurrency"
            best.utilization = best.requests_per_s / max_rate
            return best
    # the open-loop point where saturation begins: 99% of the saturation throughput, or the model's
    # stability edge when that lies lower
    a_rps = lo_rps if lo_rps is not None and lo_rps < sat_rps and solved[lo_rps].state is not None else sat_rps
    a_solved = solved.get(a_rps) or solve_rate_point(p, wl, a_rps)
    if a_solved.state is None:  # not even 99% of the saturation throughput is stable in the open loop
        a_point, a_clients = None, 0.0
    else:
        a_point = finish_rate_point(p, wl, a_solved, detailed)
        a_clients = a_rps * finish_rate_point(p, wl, a_solved, detailed=False).e2e_mean_s
    best = _saturated_point(p, wl, clients, sat, a_point, a_clients)
    best.max_rate_rps = max_rate
    best.utilization = best.requests_per_s / max_rate
    return best


def _closed_loop_throughput(p: ReplicaParams, wl: Workload, clients: int, hi_rps: float, sat_rps: float) -> tuple[float | None, dict]:
    """The largest solved rate X below the closed-loop fixed point X = clients / E2E_mean(X), or None
    if none was found; and the open-loop solutions by rate.
    Regula falsi with the Illinois modification (Dowell & Jarratt 1971) on the gap h(X) = clients /
    E2E_mean(X) - X, which falls with X and is close to linear (E2E grows like 1/(1 - utilisation),
    so clients / E2E shrinks linearly into saturation; an unstable rate has E2E = inf, h = -X).
    Started from the mean-value step X = clients / E2E_mean(0); a step past the saturation rate tests
    that rate first, which settles a saturated loop in one solve; bisection when a step leaves the
    bracket or the bracket stops halving. CLOSED_LOOP_TOLERANCE in a handful of solves (the
    open-loop E2E is itself a fixed point iterated to ~1e-4)."""
    solved: dict[float, RateSolution] = {}

    def gap_rps(x_rps: float) -> float:
        # climb from the highest stable rate below (every x tried lies above the bracket's low end)
        solved[x_rps] = solve_rate_point(p, wl, x_rps, solved.get(lo_rps))
        pt = finish_rate_point(p, wl, solved[x_rps], detailed=False)
        return float(clients / pt.e2e_mean_s - x_rps) if pt.stable and pt.e2e_mean_s > 0 else -x_rps

    idle_e2e_s = float(finish_rate_point(p, wl, solve_rate_point(p, wl, 0.0), detailed=False).e2e_mean_s)
    lo_rps, gap_lo_rps = 0.0, clients / idle_e2e_s if 0.0 < idle_e2e_s < math.inf else math.nan
    # the ends' weights in the interpolation (Illinois halves a stuck end's); hi not solved yet
    w_lo_rps, w_hi_rps = gap_lo_rps, math.nan
    found, last_side, width_before_rps = None, 0, hi_rps
    x_rps = gap_lo_rps if math.isfinite(gap_lo_rps) else hi_rps / 2.0
    for solves in range(1, CLOSED_LOOP_MAX_SOLVES + 1):
        if x_rps >= sat_rps > lo_rps and hi_rps > sat_rps:
            x_rps = sat_rps  # saturated if the loop still sits below the fixed point there
        elif not lo_rps < x_rps < hi_rps:
            x_rps = (lo_rps + hi_rps) / 2.0
        gap = gap_rps(x_rps)
        side = 1 if gap > 0.0 else -1  # +1: below the fixed point (X E2E(X) < clients)
        if side > 0:
            lo_rps, gap_lo_rps, w_lo_rps, found = x_rps, gap, gap, x_rps
        else:
            hi_rps, w_hi_rps = x_rps, gap
        if side == last_side:  # the other end stayed twice in a row: halve its weight
            w_hi_rps, w_lo_rps = (w_hi_rps / 2.0, w_lo_rps) if side > 0 else (w_hi_rps, w_lo_rps / 2.0)
        last_side = side
        if (lo_rps >= sat_rps or (found is not None and gap_lo_rps <= CLOSED_LOOP_TOLERANCE * lo_rps)
                or hi_rps - lo_rps <= CLOSED_LOOP_TOLERANCE * hi_rps):
            break
        if math.isfinite(w_lo_rps) and math.isfinite(w_hi_rps):
            x_rps = lo_rps + (hi_rps - lo_rps) * w_lo_rps / (w_lo_rps - w_hi_rps)
        elif math.isfinite(gap_lo_rps):
            x_rps = lo_rps + gap_lo_rps  # the mean-value step clients / E2E(lo): at or past the fixed point
        else:
            x_rps = (lo_rps + hi_rps) / 2.0
        if solves % 3 == 0:  # the bracket must halve every three solves, else bisect
            if hi_rps - lo_rps > width_before_rps / 2.0:
                x_rps = (lo_rps + hi_rps) / 2.0
            width_before_rps = hi_rps - lo_rps
    return found, solved


SATURATED_PATH_STEPS = 32  # decode steps of a saturated engine drawn one by one per TPOT sample (the rest: their sum's normal law)
SATURATED_BLEND = 0.25  # the blend from the open loop to the full batch spans at least this share of its start's clients


@dataclass
class _Saturated:
    """A closed loop's engine with every batch slot taken (the queue of clients never empties):
    the offline engine, with its cycles drawn as they come. A slot frees when its request ends and
    the next client's prompt is prefilled in the following step, so a step carries the prompts of
    the requests that ended in the one before: Poisson with mean `per_cycle` (requests end at
    batch x tokens per step / E[L_out] a step whatever the steps last, unlike the open loop's
    arrivals, which come in proportion to time). Statistics of an admitted request (no slot wait)."""

    rate_rps: float  # throughput X: the offline maximum, or less where prefill steps come in bursts
    batch: float  # running sequences, all lanes (offline_throughput's)
    step_s: float  # mean step of one lane
    t_decode_s: float  # decode-only step at the batch
    per_cycle: float  # prompts (finished requests) a cycle
    wait_var_s2: float  # variance of the slot wait per client queued ahead
    ttft_mean_s: float
    e2e_mean_s: float
    ttft: np.ndarray | None = None  # samples (detailed): TTFT of an admitted request
    tpot: np.ndarray | None = None  # per-request TPOT samples, with the output lengths' weights
    e2e: np.ndarray | None = None
    out_weights: np.ndarray | None = None
    has_decode: np.ndarray | None = None
    decode_bound: str = ""
    prefill_bound: str = ""

    @property
    def clients_full(self) -> float:
        """Clients that just fill the engine: X x E2E of an admitted request (Little's law)."""
        return self.rate_rps * self.e2e_mean_s


def _saturated_engine(p: ReplicaParams, wl: Workload, detailed: bool) -> _Saturated:
    """The full engine, made once per replica and workload (kept next to the offline maximum it
    starts from: the same at every client count)."""
    key = ("saturated", p, detailed)
    made = wl._offline.get(key)
    if made is None:
        made = wl._offline.setdefault(key, _make_saturated(p, wl, detailed))
    return made


def _make_saturated(p: ReplicaParams, wl: Workload, detailed: bool) -> _Saturated:
    """Throughput, TTFT and TPOT of the full engine. The batch and the step's mean make the offline
    maximum (a mean-value formula: one step at the mean prompt load); with few prompts a step (a
    small batch, long prompts) the mean of the steps is well above the step at the mean load (a
    plain decode step is memory-bound, one with a prompt compute-bound), so the throughput is the
    mixture's: at 32 sequences and 1,000-token prompts on an 8B the offline formula says 24 req/s
    where the simulated engine (and the open-loop model's stability edge) make 17.3."""
    max_rate, batch, st = offline_throughput(p, wl)
    lanes = float(p.pp)
    b = batch / lanes
    ctx = wl.decode_ctx_mean
    tokens = float(spec_tokens_per_step(p))
    pool = wl.pool(p)
    draft = _known_draft_s(p)
    t_d = float(decode_step(p, b, ctx).total_s)
    per_step = b * tokens / wl.mean_out  # requests ending a step: each slot turns over every E[L_out] / tokens steps
    steps_mean, pmf, dur, dur2, steps = 1.0, np.array([1.0]), np.array([t_d]), np.array([t_d * t_d]), np.ones(1)
    for _ in range(8):  # a cycle that spills over the token budget lasts several steps and gathers more
        pmf = _count_pmf(per_step * steps_mean, 0.0, 1.0)
        dur, dur2, steps = _cycle_moments(p, pool, b, ctx, t_d, len(pmf) - 1, draft)
        done = abs(float(pmf @ steps) - steps_mean) <= 1e-6 * steps_mean
        steps_mean = float(pmf @ steps)
        if done:
            break
    cycle_s = float(pmf @ dur)
    step_s = cycle_s / steps_mean
    rate = min(lanes * b * tokens / (wl.mean_out * step_s), max_rate)
    step_s = lanes * b * tokens / (wl.mean_out * rate)  # the offline step where the offline maximum holds
    tpot_mean = step_s / tokens
    # The slot wait: a client with M others ahead is admitted once M requests have ended. With K
    # ending in a cycle and Y the next cycle (it prefills those K), the time to M ends has variance
    # M / E[K] x Var(Y - r K), r = E[Y] / E[K] (renewal reward): a cycle with many ends is followed
    # by a long one, which takes away much of the spread. Ends over many cycles disperse as the
    # slots' lifetimes do (index of dispersion cv^2 of the steps a request holds its slot).
    k = np.arange(len(pmf), dtype=float)
    ends = float(pmf @ k)
    life = 1.0 + np.maximum(wl.out_grid - 1.0, 0.0) / tokens
    cv2_life = float(life.var() / life.mean() ** 2)
    r = cycle_s / max(ends, 1e-300)
    var_y = max(float(pmf @ dur2) - cycle_s ** 2, 0.0)
    cov_yk = float(pmf @ (k * dur)) - cycle_s * ends
    wait_var = max(var_y - 2.0 * r * cov_yk + r * r * ends * cv2_life, 0.0) / max(ends, 1e-300) / lanes ** 2
    co_count = ends  # Poisson: the others admitted with a request that took a freed slot
    api = float(p.api_overhead_s)
    mid = pool.median_tokens
    room = float(p.budget_tokens) - b if float(p.chunked) > 0 else np.inf
    sat = _Saturated(rate_rps=rate, batch=batch, step_s=step_s, t_decode_s=t_d, per_cycle=ends, wait_var_s2=wait_var,
                     ttft_mean_s=0.0, e2e_mean_s=0.0, decode_bound=str(bound_name(st)),
                     prefill_bound=str(bound_name(step_time(p, b, b * ctx, min(mid, room), mid * mid / 2))))
    if not detailed:
        own, _ = cycle_duration(p, b, ctx, pool.tokens + co_count * float(pool.tokens.mean()),
                                pool.attn + co_count * float(pool.attn.mean()), t_d, draft)
        sat.ttft_mean_s = float(own.mean()) + api
        sat.e2e_mean_s = sat.ttft_mean_s + max(wl.mean_out - 1.0, 0.0) * tpot_mean
        return sat
    n, m = FULL.ttft, FULL.tpot
    draws = sample_draws(n, m, len(pool.order), 0)
    co_counts = poisson_quantiles(np.full(n, co_count), draws.co_uniforms)
    co_tok, co_att = pool.sums(co_counts, draws.co_offsets)
    own, _ = cycle_duration(p, b, ctx, pool.tokens[draws.own_picks] + co_tok, pool.attn[draws.own_picks] + co_att, t_d, draft)
    ttft = own + api
    # TPOT: the steps after the request's own are independent draws of the stationary step (their
    # prompts are the requests that ended in the step before, whatever it lasted): the first
    # SATURATED_PATH_STEPS one by one (short requests set the tail), the rest by their sum's normal law
    per_count = int(max(16, min(FULL.table, 65536 // len(pmf))))
    durs, counts = cycle_samples(p, pool, b, ctx, t_d, len(pmf) - 1, per_count, draft)
    step_vals = (durs / counts).ravel()
    step_w = (np.repeat(pmf, per_count) / per_count) * counts.ravel()  # each cycle counts for its steps
    step_w /= step_w.sum()
    step_vals = step_vals * (step_s / float(step_w @ step_vals))  # the mean step of the throughput
    step_sd = math.sqrt(max(float(step_w @ (step_vals - step_s) ** 2), 0.0))
    l_out, w_out = _shuffled_outputs(wl.output_len, m, tokens, draws.output_order)
    need = np.maximum(l_out - 1.0, 1.0) / tokens
    u = _saturated_uniforms(SATURATED_PATH_STEPS, m)
    path = _weighted_quantiles(step_vals, step_w, u.ravel()).reshape(SATURATED_PATH_STEPS, m)
    cum = np.cumsum(path, axis=0)
    first = np.minimum(need, SATURATED_PATH_STEPS)
    whole = np.floor(first).astype(np.int64)
    cols = np.arange(m)
    within = np.where(whole > 0, cum[np.maximum(whole - 1, 0), cols], 0.0)
    within += (first - whole) * path[np.minimum(whole, SATURATED_PATH_STEPS - 1), cols]
    rest = need - first
    total = within + rest * step_s + np.sqrt(rest) * step_sd * draws.beyond_normals
    tpot = np.maximum(total, 1e-12) / (need * tokens)
    has_decode = l_out > 1.0
    e2e = ttft[:m] + np.where(has_decode, (l_out - 1.0) * tpot, 0.0)
    sat.ttft, sat.tpot, sat.e2e, sat.out_weights, sat.has_decode = ttft, tpot, e2e, w_out, has_decode
    sat.ttft_mean_s = float(ttft.mean())
    sat.e2e_mean_s = float(w_out @ e2e) / float(w_out.sum())
    return sat


_UNIFORMS: dict[tuple[int, int], np.ndarray] = {}


def _saturated_uniforms(rows: int, m: int) -> np.ndarray:
    made = _UNIFORMS.get((rows, m))
    if made is None:
        made = np.random.default_rng(RNG_SEED + 1).random((rows, m))
        made.flags.writeable = False
        made = _UNIFORMS.setdefault((rows, m), made)
    return made


def _wait_samples(mean_s: float, var_s2: float, n: int) -> np.ndarray:
    """n stratified draws, in a seeded order, of the slot wait: positive, with this mean and variance.
    A first-passage time is skewed to the right (inverse Gaussian); a lognormal of the same two
    moments stands in for it. The spread matters only for a short queue: it grows like the square
    root of the clients queued ahead while the mean grows like their number (8x the batch: +-6%)."""
    if mean_s <= 0:
        return np.zeros(n)
    s2 = math.log1p(var_s2 / (mean_s * mean_s))
    z = norm_ppf(_strata(n))[np.random.default_rng(RNG_SEED + 2).permutation(n)]
    return np.exp(math.log(mean_s) - s2 / 2.0 + math.sqrt(s2) * z)


def _saturated_point(p: ReplicaParams, wl: Workload, clients: int, sat: _Saturated, start: OperatingPoint | None,
                     start_clients: float) -> OperatingPoint:
    """The closed loop at or past saturation. Beyond `full` clients (those that fill the engine,
    and at least SATURATED_BLEND past the open loop's last point) every slot is taken: X the full
    engine's throughput, the admitted batch, its TPOT, and the clients it does not admit queue for
    a slot, W = clients / X - E2E of an admitted request (FIFO, drained at X: TTFT and E2E move by
    W, TPOT does not). From the open-loop point at the edge of saturation (`start`, reached at
    `start_clients`) to there, each figure moves linearly with the clients, and E2E's mean is
    clients / X throughout (Little's law; its percentiles move with it)."""
    tokens = float(spec_tokens_per_step(p))
    full = max(sat.clients_full, start_clients * (1.0 + SATURATED_BLEND))
    point = _saturated_at(p, wl, float(clients), sat)
    if start is None or clients >= full or full <= start_clients:
        return point
    w = max(min((clients - start_clients) / (full - start_clients), 1.0), 0.0)
    point.requests_per_s = start.requests_per_s + w * (point.requests_per_s - start.requests_per_s)
    for name in ("batch", "decode_step_s", "prefill_rho"):
        setattr(point, name, getattr(start, name) + w * (getattr(point, name) - getattr(start, name)))
    # the blend runs to the full engine as it is at the start's clients; the slot wait that the
    # clients past those add comes on top whole (a blend towards a target that moves with the
    # clients would make the wait climb faster than clients / X)
    at_start = _saturated_at(p, wl, start_clients, sat)
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        a, b, now = getattr(start, name), getattr(at_start, name), getattr(point, name)
        setattr(point, name, {k: a[k] + w * (b[k] - a[k]) + now[k] - b[k] for k in now if k in a})
    # E2E's mean: Little's law, clients / X, plus what the open-loop end has over its own (the
    # sampled distributions' mean can exceed the solved means' clients / X by 15% near saturation;
    # means alone have nothing over), fading with the weight: continuous at the start, exact from
    # the full batch on. The percentiles move with the mean
    start_excess = start.e2e_s["mean"] - start_clients / start.requests_per_s
    shift = clients / point.requests_per_s + (1.0 - w) * start_excess - point.e2e_s["mean"]
    point.e2e_s = {k: v + shift for k, v in point.e2e_s.items()}
    point.tpot_mean_s = point.tpot_s.get("mean", point.decode_step_s / tokens)
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]
    if w < 1.0 and not point.note.startswith("closed loop saturates"):
        point.note = f"closed loop near saturation: {clients} clients, the full batch at {full:.0f}"
    return point


def _saturated_at(p: ReplicaParams, wl: Workload, clients: float, sat: _Saturated) -> OperatingPoint:
    """The full engine with `clients` clients: a slot wait of clients / X - E2E (none below the
    clients that fill it)."""
    tokens = float(spec_tokens_per_step(p))
    x = sat.rate_rps
    e2e_mean = clients / x
    wait = max(e2e_mean - sat.e2e_mean_s, 0.0)
    queued = wait * x  # clients ahead in the queue
    point = OperatingPoint(mode="concurrency", stable=True, batch=sat.batch, decode_step_s=sat.step_s,
                           tpot_mean_s=sat.step_s / tokens, requests_per_s=x, max_rate_rps=x, utilization=1.0,
                           prefill_rho=max(1.0 - sat.t_decode_s / sat.step_s, 0.0), max_batch=batch_cap(p, wl),
                           kv_tokens=float(kv_capacity_tokens(p)), decode_bound=sat.decode_bound, prefill_bound=sat.prefill_bound)
    if sat.ttft is None:
        point.ttft_s, point.tpot_s = {"mean": sat.ttft_mean_s + wait}, {"mean": point.tpot_mean_s}
    else:
        waits = _wait_samples(wait, queued * sat.wait_var_s2, len(sat.ttft))
        ttft = sat.ttft + waits
        e2e = sat.e2e + waits[:len(sat.e2e)]
        point.ttft_s = _pct(ttft)
        has, w = sat.has_decode, sat.out_weights
        point.tpot_s = _pct(sat.tpot[has], w[has]) if has.any() else _pct(np.array([point.tpot_mean_s]))
        point.e2e_s = _pct(e2e, w)
        point.ttft_s["mean"] = sat.ttft_mean_s + wait
    point.e2e_s = {**point.e2e_s, "mean": max(e2e_mean, sat.e2e_mean_s)} if point.e2e_s else {"mean": max(e2e_mean, sat.e2e_mean_s)}
    point.tpot_mean_s = point.tpot_s["mean"]
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]
    if wait > 0:
        many = round(queued) != 1
        point.note = (f"closed loop saturates the replica; {queued:,.0f} request{'s' if many else ''} wait{'' if many else 's'} "
                      f"~{_seconds(wait)} for a batch slot")
    else:
        point.note = "closed loop fills every batch slot"
    return point


def _seconds(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1.0 else f"{s:.3g} s"


def offline_point(p: ReplicaParams, wl: Workload) -> OperatingPoint:
    rate, batch, st = offline_throughput(p, wl)
    if rate <= 0:
        return OperatingPoint(mode="offline", stable=False, note="does not fit")
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
