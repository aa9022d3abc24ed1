"""The next-cycle table a request's decode path walks: the cycle after one of duration c prefills
the prompts that arrived during c, tabulated once per solved state on a fixed grid of arrival
means, so that following a cycle costs a few lookups."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from planner.engine.cycles import cycle_duration
from planner.engine.fixed_point import RateState
from planner.engine.memo import Memo
from planner.engine.seeded_draws import SampleDraws
from planner.engine.workload import PromptPool

NEXT_RATIO = 1.2  # consecutive arrival means of the next-cycle grid (the nearest row: within 10%)
NEXT_ROWS_MAX = 160  # grid rows at most (beyond: the top row, for cycles ~1e12 times a decode step)


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


_POISSON_ROWS: Memo[tuple[int, int], np.ndarray] = Memo()


def _truncated_poisson_row(exponent: int, draws: int) -> np.ndarray:
    """Zero-truncated Poisson quantiles of the grid mean NEXT_RATIO**exponent at the draws' strata
    (the same at every load: kept by exponent)."""
    return _POISSON_ROWS.get_or_make((exponent, draws), lambda: _truncated_poisson_quantiles(
        NEXT_RATIO ** float(exponent), (np.arange(draws) + 0.5) / draws))


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
