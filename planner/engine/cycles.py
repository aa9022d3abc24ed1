"""Step and cycle costs of one pipeline lane: the decode step (with speculative drafts), a
prompt's prefill (chunked or whole-prompt), and the cycles of the open loop.

The engine runs in "cycles": the steps that prefill the prompts which arrived during the previous
cycle (vLLM V1 admits every waiting prompt into the next step, up to the token budget; a larger
backlog spills into further steps). A cycle without prompts is one plain decode step. Cycle
durations therefore form a Markov chain: C' = duration(prompts arriving in C)."""

from __future__ import annotations

import numpy as np

from planner.engine.roofline import ReplicaParams, StepTime, prefill_attention_work, step_time, step_total_s
from planner.engine.workload import PromptPool, prompt_tokens

MIX_SAMPLES = 48  # prompt-sum samples per arrival count (mean-value fixed point)


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
    """decode_step(p, b, ctx_mean).total_s for an array of batches (the total alone)."""
    verify = step_total_s(p, b, b * ctx_mean, 0.0, 0.0, p.spec_k + 1.0)
    if np.all(np.asarray(p.spec_k) == 0):
        return verify
    return verify + step_total_s(p, b, b * ctx_mean, 0.0, 0.0) * p.spec_draft_ratio * p.spec_k


def prefill_cost(p: ReplicaParams, b, ctx_mean, l_in):
    """For prompts of length l_in while b sequences decode in the lane: the number of chunks, the
    duration of its own prefill steps, and the excess x over plain decode steps."""
    new, cached = prompt_tokens(p, l_in)
    room = np.maximum(p.budget_tokens - b, 1.0)
    chunked = np.asarray(p.chunked) > 0
    n_chunks = np.where(chunked, np.ceil(new / room), 1.0)
    chunk = new / n_chunks
    attn = prefill_attention_work(p, new, cached) / n_chunks  # the prompt's work split evenly over its chunks
    b_in_step = np.where(chunked, b, 0.0)  # whole-prompt prefill steps carry no decodes
    mixed = step_time(p, b_in_step, b_in_step * ctx_mean, chunk, attn).total_s
    base = np.where(chunked, decode_step(p, b, ctx_mean).total_s, 0.0)
    excess = n_chunks * (mixed - base)
    return n_chunks, n_chunks * mixed, excess, mixed


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
        # every step kept carries a prompt (the others take t_d): no step-by-step test for one
        mixed = step_total_s(p, b, b * ctx, tokens / n, attn / n, spec, prompts=1.0) + draft
        return np.where(has, n * mixed, t_d), n
    prefill = step_total_s(p, 0.0, 0.0, tokens, attn, prompts=1.0)
    return np.where(has, prefill + t_d, t_d), np.ones_like(tokens)


def cycle_samples(p, pool: PromptPool, b: float, ctx: float, t_d: float, k_max: int, per_count: int,
                  draft_s: float | None = None):
    """Durations and step counts of cycles carrying k = 0..k_max prompts, `per_count` draws each.
    The j-th prompt of a draw comes from a fixed permutation of stratified quantiles (a Latin
    hypercube over the length distribution), so every prompt position is sampled evenly and the
    fixed point does not wobble with sampling noise."""
    tokens, attn = pool.draw_sums(per_count, k_max)
    dur, steps = cycle_duration(p, b, ctx, tokens, attn, t_d, draft_s)
    return np.vstack([np.full(per_count, t_d), dur]), np.vstack([np.ones(per_count), steps])


def cycle_moments(p, pool: PromptPool, b: float, ctx: float, t_d: float, k_max: int, draft_s: float | None):
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


def known_draft_s(p: ReplicaParams) -> float | None:
    """The draft share of a decode step from decode_step(p, b, ctx) at the same b: exactly 0.0
    without speculation (saves cycle_duration a step_time call per fixed-point iteration), else
    None (cycle_duration derives it)."""
    return 0.0 if np.all(np.asarray(p.spec_k) == 0) else None
