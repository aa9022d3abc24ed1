"""The open loop's stationary state (RateState): the fixed point of the running batch (Little's
law) and of the first two moments of the cycle length under Poisson arrivals, with how the batch
fluctuates around it (its gain and a linear-noise approximation)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planner.engine.cycles import cycle_moments, decode_step, known_draft_s, spec_tokens_per_step
from planner.engine.roofline import ReplicaParams
from planner.engine.workload import PromptPool, Workload

FIXED_POINT_ITERATIONS = 400


def arrival_count_pmf(mean: float, var_cycle: float, mean_cycle_s: float) -> np.ndarray:
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
    draft = known_draft_s(p)
    for _ in range(FIXED_POINT_ITERATIONS):
        b = batch / lanes
        t_d = float(decode_step(p, b, ctx).total_s)
        cycle, cycle2 = max(cycle, t_d), max(cycle2, t_d * t_d)
        pmf = arrival_count_pmf(lane_rate * cycle, max(cycle2 - cycle * cycle, 0.0), cycle)
        if len(pmf) > MAX_PROMPTS_PER_CYCLE:
            return None
        k_max = len(pmf) - 1
        dur_k, dur2_k, steps_k = cycle_moments(p, pool, b, ctx, t_d, k_max, draft)
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
        dur_k, _, steps_k = cycle_moments(p, pool, b, ctx, t_d, len(state.count_pmf) - 1, known_draft_s(p))
        return t_d, float(state.count_pmf @ dur_k) / float(state.count_pmf @ steps_k)

    (decode_lo, step_lo), (decode_hi, step_hi) = mean_step_s(base_b), mean_step_s(base_b + delta)
    state.decode_chord_s = (decode_hi - decode_lo) / delta
    raw_slope_s = max((step_hi - step_lo) / (delta * lanes), 0.0)
    state.cycle_slope_s = raw_slope_s / (1.0 - state.prefill_share)
    state.gain = min(batch_per_step_s * state.cycle_slope_s, 0.95)
    hazard = lane_rate * lanes / batch_per_step_s if batch_per_step_s > 0 else 1.0  # departures per sequence and step
    state.batch_var, state.batch_memory_steps, state.slow_step_var_s2 = _batch_noise(
        p, state, lane_rate, raw_slope_s, state.prefill_share, min(hazard, 1.0))


def _batch_noise(p, state: RateState, lane_rate: float, slope_s: float, prefill_share: float,
                 h: float) -> tuple[float, float, float]:
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


def idle_state(p: ReplicaParams, wl: Workload) -> RateState:
    t_d = float(decode_step(p, 1.0, wl.decode_ctx_mean).total_s)
    return RateState(batch=1.0, t_decode_s=t_d, cycle_s=t_d, steps_per_cycle=1.0, cycle2_s2=t_d * t_d, count_pmf=np.array([1.0]))
