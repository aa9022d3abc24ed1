"""Token-length distributions, sampled the same way everywhere.

Samples are deterministic stratified quantiles (the i-th of n at probability (i + 0.5)/n), so a
plan never changes between runs and small n already covers the tails evenly.
"""

from __future__ import annotations

import math

import numpy as np

from planner.engine.memo import memoized
from planner.engine.scenario import LengthDist


def norm_ppf(u: np.ndarray) -> np.ndarray:
    """Inverse standard-normal CDF (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = [-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02, -3.066479806614716e01,
         2.506628277459239e00]
    b = [-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00, 4.374664141464968e00,
         2.938163982698783e00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00]
    u = np.asarray(u, dtype=float)
    out = np.empty_like(u)
    lo = u < 0.02425
    hi = u > 1 - 0.02425
    mid = ~(lo | hi)
    q = np.sqrt(-2 * np.log(u[lo]))
    out[lo] = ((((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
               / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1))
    q = np.sqrt(-2 * np.log(1 - u[hi]))
    out[hi] = -((((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1))
    q = u[mid] - 0.5
    r = q * q
    out[mid] = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1))
    return out


def quantiles(dist: LengthDist, u: np.ndarray) -> np.ndarray:
    """Lengths at probabilities u (continuous; callers round where tokens must be whole)."""
    u = np.clip(np.asarray(u, dtype=float), 1e-12, 1 - 1e-12)
    if dist.kind == "fixed":
        x = np.full_like(u, dist.mean)
    elif dist.kind == "exponential":
        x = -dist.mean * np.log1p(-u)
    else:
        s = dist.sigma
        mu = math.log(dist.mean) - s * s / 2
        x = np.exp(mu + s * norm_ppf(u))
    x = np.maximum(x, 1.0)
    if dist.max is not None:
        x = np.minimum(x, dist.max)
    return x


@memoized(256)
def _grid(dist_json: str, n: int) -> np.ndarray:
    dist = LengthDist.model_validate_json(dist_json)
    return quantiles(dist, (np.arange(n) + 0.5) / n)


def grid(dist: LengthDist, n: int = 512) -> np.ndarray:
    """n stratified samples (cached: the TUI recomputes on every keystroke)."""
    return _grid(dist.model_dump_json(), n)


def moments(dist: LengthDist, n: int = 2048) -> tuple[float, float]:
    """(mean, mean of squares) of the distribution as sampled."""
    x = grid(dist, n)
    return float(x.mean()), float((x * x).mean())


def sample(dist: LengthDist, rng: np.random.Generator, n: int) -> np.ndarray:
    """Random draws, whole tokens >= 1 (used by the simulation in tests)."""
    return np.maximum(np.rint(quantiles(dist, rng.random(n))), 1).astype(np.int64)
