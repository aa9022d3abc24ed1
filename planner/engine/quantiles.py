"""Quantiles both ways: percentile summaries of (weighted) samples, and samples drawn at fixed
quantiles (strata midpoints, weighted values, Poisson counts by inverse CDF), so that seeded
latencies do not jitter from one load to the next."""

from __future__ import annotations

import math

import numpy as np

from planner.engine.lengths import norm_ppf
from planner.engine.memo import Memo

PERCENTILES = (50.0, 90.0, 99.0)


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


def summarise(x: np.ndarray, weights: np.ndarray | None = None) -> dict:
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


_STRATA: Memo[int, np.ndarray] = Memo()


def strata_midpoints(n: int) -> np.ndarray:
    """The midpoints (i + 0.5) / n of n equal probability strata (read-only)."""
    def make() -> np.ndarray:
        made = (np.arange(n) + 0.5) / n
        made.flags.writeable = False
        return made

    return _STRATA.get_or_make(n, make)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    cdf = np.cumsum(weights[order])
    return values[order][np.minimum(np.searchsorted(cdf, u * cdf[-1]), len(values) - 1)]


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
