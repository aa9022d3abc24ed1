"""Closed-loop concurrency: `clients` users each send their next request when the last one
completes. Below saturation, mean-value analysis over the open-loop model; at and past it, the
saturated engine (saturated.py)."""

from __future__ import annotations

import math

from planner.engine.offline import OperatingPoint, offline_throughput
from planner.engine.open_loop import RateSolution, finish_rate_point, solve_rate_point
from planner.engine.roofline import ReplicaParams
from planner.engine.saturated import saturated_engine, saturated_point
from planner.engine.workload import Workload

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
    slot is taken, the engine runs as offline (saturated_engine) and the clients it does not admit
    wait for a slot, E2E_mean = clients / X (Little's law). Between the last open-loop fixed point
    and the client count that just fills the batch the two are blended (saturated_point), so the
    figures are continuous in the client count."""
    max_rate, _, _ = offline_throughput(p, wl)
    if max_rate <= 0:
        return OperatingPoint(mode="concurrency", stable=False, note="does not fit")
    if clients <= 1:
        best = finish_rate_point(p, wl, solve_rate_point(p, wl, 0.0), detailed)
        best.requests_per_s = 1.0 / best.e2e_mean_s if best.stable and best.e2e_mean_s > 0 else 0.0
        best.batch = 1.0 if best.stable else 0.0  # the one client's request is always running
        best.mode = "concurrency"
        best.utilization = best.requests_per_s / max_rate
        return best
    sat = saturated_engine(p, wl, detailed)
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
    best = saturated_point(p, wl, clients, sat, a_point, a_clients)
    best.max_rate_rps = max_rate
    best.utilization = best.requests_per_s / max_rate
    return best


def _closed_loop_throughput(p: ReplicaParams, wl: Workload, clients: int, hi_rps: float,
                            sat_rps: float) -> tuple[float | None, dict]:
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
