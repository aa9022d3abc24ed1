"""The latency targets against an operating point: the targets it misses, in words; a percentile
from the p50/p90/p99 summary; a missed target against the single-request floor."""

from __future__ import annotations

import math

from planner.engine.binding import UNSTABLE, Binding
from planner.engine.offline import OperatingPoint
from planner.engine.scenario import Scenario


def slo_misses(scenario: Scenario, point: OperatingPoint, max_util: float | None = None) -> list[str]:
    """Targets the operating point misses, in words."""
    slo = scenario.slo
    if not point.stable:
        return [UNSTABLE]
    misses = []
    checks = (
        ("TTFT", slo.ttft_ms, slo.ttft_percentile, point.ttft_s),
        ("TPOT", slo.tpot_ms, slo.tpot_percentile, point.tpot_s),
        ("E2E", slo.e2e_ms, slo.e2e_percentile, point.e2e_s),
    )
    for name, target_ms, pct, dist in checks:
        if target_ms is None:
            continue
        value_ms = percentile_of(dist, pct) * 1e3
        if value_ms > target_ms:
            misses.append(f"{name} p{pct:g}")
    if max_util is not None and point.utilization > max_util + 1e-9:
        misses.append(Binding.UTILISATION_CEILING)
    return misses


def percentile_of(dist: dict, pct: float) -> float:
    """A percentile from the p50/p90/p99 summary (log-linear between them, exact at those three)."""
    key = f"p{pct:g}"
    if key in dist:
        return dist[key]
    pts = [(50.0, dist["p50"]), (90.0, dist["p90"]), (99.0, dist["p99"])]
    if pct <= 50:
        return dist["p50"]
    if pct >= 99:
        return dist["p99"]
    for (a, va), (b, vb) in zip(pts, pts[1:]):
        if a <= pct <= b:
            # interpolate in log(1 - p): tails are roughly exponential
            ta, tb, t = math.log(1 - a / 100), math.log(1 - b / 100), math.log(1 - pct / 100)
            return va + (vb - va) * (t - ta) / (tb - ta)
    return dist["p99"]


def floor_ms(scenario: Scenario, floor: OperatingPoint, miss: str) -> tuple[float, float]:
    """(target, single-request floor) in ms of a missed latency target named as slo_misses names it."""
    name, pct = miss.split(" p")
    dist = {"TTFT": floor.ttft_s, "TPOT": floor.tpot_s, "E2E": floor.e2e_s}[name]
    target = {"TTFT": scenario.slo.ttft_ms, "TPOT": scenario.slo.tpot_ms, "E2E": scenario.slo.e2e_ms}[name]
    return target, percentile_of(dist, float(pct)) * 1e3
