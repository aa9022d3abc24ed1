"""Open-loop Poisson arrivals to one replica: the fixed point solved once (RateSolution), then
finished into the means or the sampled distributions."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from planner.engine.cycles import decode_step, spec_tokens_per_step
from planner.engine.distributions import FULL, Fidelity, idle_distributions, mean_latencies, sampled_distributions
from planner.engine.fixed_point import RateState, idle_state, solve_rate
from planner.engine.numbers import fmt_sig
from planner.engine.offline import OperatingPoint, batch_cap, offline_throughput
from planner.engine.roofline import ReplicaParams, bound_name, kv_capacity_tokens, step_time
from planner.engine.workload import PromptPool, Workload


def rate_point(p: ReplicaParams, wl: Workload, rate: float, detailed: bool = True,
               fidelity: Fidelity | None = None) -> OperatingPoint:
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
        point.note = f"offered {fmt_sig(rate)} req/s is at or above the replica's maximum {fmt_sig(max_rate)} req/s"
        return RateSolution(rate, point)
    pool = wl.pool(p)
    start = below.state if below is not None and below.rate < rate and below.rate > 0 else None
    state = solve_rate(p, wl, pool, rate, cap, start) if rate > 0 else idle_state(p, wl)
    if state is None:
        point.note = f"prefill work outgrows the engine at {fmt_sig(rate)} req/s (queue grows without bound)"
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
        idle_distributions(p, wl, pool, point, state)
    elif detailed:
        sampled_distributions(p, wl, pool, point, rate / lanes, state, fidelity or FULL)
    else:
        mean_latencies(p, wl, pool, point, rate / lanes, state)
    return point
