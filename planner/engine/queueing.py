"""Waiting-time distributions for the prefill queue.

The prefill work of FCFS prompts is an M/G/1 queue: the waiting time is a geometric sum of
equilibrium residual service times (Pollaczek-Khinchine / Benes form), which we evaluate exactly on
a time grid with one FFT instead of a two-moment approximation (two moments are not enough for
M/G/c tails: Gupta et al. 2010, digest [S31]).
"""

from __future__ import annotations

import numpy as np

GRID_POINTS = 4096


def pk_mean_wait(rate: float, s: np.ndarray) -> float:
    """Pollaczek-Khinchine mean wait: lambda E[S^2] / (2 (1 - rho)) (digest §5.2 [S28])."""
    rho = rate * float(np.mean(s))
    if rho >= 1:
        return float("inf")
    return rate * float(np.mean(s * s)) / (2.0 * (1.0 - rho))


def mg1_wait_quantiles(rate: float, service_s: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of the M/G/1 FCFS waiting time for Poisson rate `rate` and equally likely service
    samples `service_s`. Returns inf for every quantile when rho >= 1."""
    probs = np.asarray(probs, dtype=float)
    s = np.asarray(service_s, dtype=float)
    mean_s = float(s.mean())
    rho = rate * mean_s
    if rho >= 1.0:
        return np.full_like(probs, np.inf)
    if rho <= 1e-12 or mean_s <= 0:
        return np.zeros_like(probs)
    mean_w = pk_mean_wait(rate, s)
    # the tail decays roughly like exp(-t * rho / mean_w); cover ~40 decay lengths and the service range
    horizon = max(float(s.max()) * 4.0, 40.0 * mean_w / rho, mean_s * 8.0)
    dt = horizon / GRID_POINTS
    edges = np.arange(GRID_POINTS + 1) * dt
    # equilibrium residual density f_e(t) = P(S > t) / E[S], integrated per cell
    s_sorted = np.sort(s)
    ccdf_area = _integrated_ccdf(s_sorted, edges)
    residual_mass = np.diff(ccdf_area) / mean_s
    residual_mass[-1] += max(0.0, 1.0 - residual_mass.sum())
    # W = sum_{k=1}^{N} R_k, N ~ geometric: P(N = k) = (1 - rho) rho^k  ->  W^ = (1-rho)/(1 - rho R^)
    size = 2 * GRID_POINTS  # zero padding keeps the circular convolution from wrapping the tail
    r_hat = np.fft.rfft(residual_mass, n=size)
    w_hat = (1.0 - rho) / (1.0 - rho * r_hat)
    w_mass = np.fft.irfft(w_hat, n=size)[:GRID_POINTS]
    cdf = np.clip(np.cumsum(np.maximum(w_mass, 0.0)), 0.0, 1.0)
    out = np.interp(probs, cdf, edges[1:], left=0.0)
    out[probs <= 1.0 - rho] = 0.0  # the atom at zero: arrivals that find no prefill work
    return out


def _integrated_ccdf(s_sorted: np.ndarray, t: np.ndarray) -> np.ndarray:
    """integral_0^t P(S > u) du = E[min(S, t)] for the empirical distribution, at each t."""
    n = len(s_sorted)
    idx = np.searchsorted(s_sorted, t, side="right")
    csum = np.concatenate([[0.0], np.cumsum(s_sorted)])
    return (csum[idx] + (n - idx) * t) / n


def exp_tail_wait_quantile(rho, mean_wait, prob):
    """Fast closed form used by the vectorised search: P(W > t) = rho exp(-rho t / E[W])
    (Kimura-type exponential tail matched to the P-K mean, digest §5.4 [S5])."""
    rho = np.asarray(rho, dtype=float)
    mean_wait = np.asarray(mean_wait, dtype=float)
    tail = 1.0 - prob
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean_wait / np.maximum(rho, 1e-300) * np.log(np.maximum(rho, 1e-300) / tail)
    return np.where(rho > tail, t, 0.0)
