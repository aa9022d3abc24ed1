"""The workload one replica serves: prompt and output length grids and their moments, the prompt
tokens a prefix-cache hit leaves to prefill, and the prompt pool the sampled cycles draw from.
Everything here is seeded (RNG_SEED) and made once per workload, so every plan of a profile
draws the same prompts."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from planner.engine import lengths
from planner.engine.memo import Memo
from planner.engine.roofline import BLOCK_TOKENS, ReplicaParams, prefill_attention_work
from planner.engine.scenario import LengthDist

SAMPLES = 2048
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
    def per_replica(self) -> dict:
        """What the serving model makes once per replica of this workload (the offline maximum, the
        saturated engine), kept here so that it lives as long as the workload."""
        return {}

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


def prompt_tokens(p: ReplicaParams, l_in):
    """Prompt tokens that need prefill compute after a prefix-cache hit (whole 16-token blocks, [S38])."""
    cached = np.floor(p.prefix_hit * l_in / BLOCK_TOKENS) * BLOCK_TOKENS
    return np.maximum(l_in - cached, 1.0), cached


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
        return cls(tokens=new, attn=prefill_attention_work(p, new, cached), order=order)

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
            first = even_picks(n, draws)[np.random.default_rng(RNG_SEED + 1).permutation(draws)]
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


def even_picks(pool_size: int, n: int) -> np.ndarray:
    """n indices into the ascending prompt grid that cover it evenly: every prompt n / pool_size
    times when that is whole, else the middle of each of n equal strata (a prefix of the grid would
    keep only the shorter prompts: QUICK's 1024 TTFT samples saw the shorter half of 2048)."""
    if n % pool_size == 0:
        return np.tile(np.arange(pool_size), n // pool_size)
    return ((np.arange(n) + 0.5) * pool_size / n).astype(np.int64)


_LATIN: Memo[int, tuple[np.random.Generator, np.ndarray]] = Memo()
_LATIN_LOCK = threading.Lock()  # one thread extends a table at a time (the TUI plans and searches in workers)


def _latin_columns(per_count: int, k_max: int) -> np.ndarray:
    """Column j is the j-th permutation drawn from one generator seeded with RNG_SEED, so the
    columns for k_max are a prefix of those for any larger count: one table per `per_count`,
    extended (doubling) as the arrival counts grow, instead of redrawn for every k_max the fixed
    point passes through. A read-only view."""
    made = _LATIN.get(per_count)
    cols = made[1] if made is not None else None
    if cols is None or cols.shape[1] < k_max:
        with _LATIN_LOCK:
            rng, cols = _LATIN.get(per_count) or (np.random.default_rng(RNG_SEED), np.empty((per_count, 0), dtype=np.int64))
            if cols.shape[1] < k_max:
                more = max(k_max, 2 * cols.shape[1]) - cols.shape[1]
                cols = np.concatenate([cols, np.stack([rng.permutation(per_count) for _ in range(more)], axis=1)], axis=1)
                cols.flags.writeable = False
                _LATIN.put(per_count, (rng, cols))
    return cols[:, :k_max]
