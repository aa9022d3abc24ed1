"""One replica configuration sized: the fewest replicas whose share of the peak load meets every
target and the utilisation ceiling, searched at quick fidelity (gallop, then bisect) and confirmed
at full fidelity; the constraint that binds, and why no count can when none does."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planner.engine.binding import Binding
from planner.engine.distributions import FULL, QUICK
from planner.engine.knobs import Knobs
from planner.engine.numbers import fmt_sig
from planner.engine.offline import OperatingPoint
from planner.engine.replica_checks import ReplicaCheck, replica_check
from planner.engine.roofline import ServingConfig, bound_name, replica_params, step_time
from planner.engine.scenario import Scenario
from planner.engine.specs import GpuSpec, ModelSpec
from planner.engine.targets import floor_ms, slo_misses
from planner.engine.workload import Workload, prompt_tokens

MAX_REPLICAS = 100_000


@dataclass
class SizingResult:
    tp: int
    replicas: int
    point: OperatingPoint | None
    feasible: bool
    reason: str = ""
    binding: str = ""  # a Binding, or the latency target that binds ("TTFT p99")
    floor: OperatingPoint | None = None
    check: ReplicaCheck | None = field(default=None, repr=False, compare=False)  # what the search solved


def size_replicas(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs, wl: Workload, rate: float,
                  confirm: bool = True) -> SizingResult:
    """Smallest replica count whose per-replica load meets every target and the utilisation ceiling.
    The search runs at quick fidelity; `confirm` re-checks the answer at full fidelity (reusing the
    fixed points the search solved)."""
    p = replica_params(model, gpu, cfg, knobs)
    ok = replica_check(scenario, p, wl, rate)
    sized = _size_replicas(scenario, model, gpu, cfg, wl, rate, confirm, ok)
    sized.check = ok
    return sized


def _size_replicas(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, wl: Workload, rate: float,
                   confirm: bool, ok: ReplicaCheck) -> SizingResult:
    max_rate = ok.max_rate
    floor = ok.floor()
    if max_rate <= 0:
        return SizingResult(cfg.tp, 0, None, False, "no room for a single request's KV cache", Binding.MEMORY, floor)
    floor_misses = slo_misses(scenario, floor)
    if floor_misses:
        return SizingResult(cfg.tp, 0, floor, False, _floor_reason(scenario, model, gpu, cfg, ok.p, wl, floor, floor_misses[0]),
                            floor_misses[0], floor)
    if rate <= 0:
        return SizingResult(cfg.tp, 0, floor, True, "", Binding.NO_LOAD, floor)
    util_cap = scenario.slo.max_utilization
    lo = ok.least_replicas()
    if not math.isfinite(lo) or lo > MAX_REPLICAS:
        return SizingResult(cfg.tp, 0, floor, False, _too_many(rate, max_rate, util_cap), Binding.UTILISATION_CEILING, floor)

    def done(n: int, binding: str, point: OperatingPoint) -> SizingResult:
        if confirm:
            return _confirmed(n, binding, ok, cfg, floor)
        return SizingResult(cfg.tp, n, point, True, "", binding, floor)

    good, point = ok(lo)
    if good:
        return done(lo, Binding.UTILISATION_CEILING if lo > 1 else Binding.ONE_REPLICA, point)
    left, hi = _first_good(lo, ok, QUICK)
    if hi is None:
        return SizingResult(cfg.tp, 0, point, False, _too_many(rate, max_rate, util_cap), "latency", floor)
    hi, point = _bisect(left, hi, ok, QUICK)
    below_misses = slo_misses(scenario, ok(hi - 1)[1], util_cap) if hi - 1 >= 1 else []
    return done(hi, below_misses[0] if below_misses else "latency", point)


def _too_many(rate: float, max_rate: float, util_cap: float) -> str:
    return (f"more than {MAX_REPLICAS:,} replicas would be needed: {fmt_sig(rate, 4)} req/s against {fmt_sig(max_rate, 4)} "
            f"req/s per replica at most, at a utilisation ceiling of {fmt_sig(util_cap)}")


def _first_good(bad: int, ok, fidelity) -> tuple[int, int | None]:
    """Gallop up from a failing count: (the last failing count, the first passing one or None
    beyond MAX_REPLICAS). Latency falls monotonically with replicas (common random numbers)."""
    step = max(1, bad // 64)
    while True:
        n = bad + step
        if n > MAX_REPLICAS:
            return bad, None
        if ok(n, fidelity)[0]:
            return bad, n
        bad, step = n, step * 2


def _bisect(bad: int, good: int, ok, fidelity) -> tuple[int, OperatingPoint]:
    """Smallest passing count in (bad, good], and its operating point."""
    point = ok(good, fidelity)[1]
    while good - bad > 1:
        mid = (bad + good) // 2
        passed, pt = ok(mid, fidelity)
        if passed:
            good, point = mid, pt
        else:
            bad = mid
    return good, point


def confirm_replicas(scenario, model, gpu, cfg, knobs, wl, rate, quick: SizingResult) -> SizingResult:
    ok = quick.check or replica_check(scenario, replica_params(model, gpu, cfg, knobs), wl, rate)
    return _confirmed(quick.replicas, quick.binding, ok, cfg, quick.floor)


def _confirmed(n: int, binding: str, ok, cfg: ServingConfig, floor) -> SizingResult:
    """The smallest count that passes at full fidelity (the numbers shown), starting from the one the
    quick search found. Sampling can move a percentile across its target either way: search upward
    while the full-fidelity answer fails, downward while it passes (gallop, then bisect). Latency
    falls with replicas (common random numbers), so the answer does not depend on where the quick
    search stopped, only the number of full-fidelity checks does."""

    def full(m: int, _fidelity=None) -> tuple[bool, OperatingPoint | None]:
        misses, point = ok.misses_at_full(m)
        return not misses, point

    good, point = full(n)
    if good:
        bad, step = 0, 1
        while n > 1:
            m = max(n - step, 1)
            passed, pt = full(m)
            if not passed:
                bad = m
                break
            n, point, step = m, pt, step * 2
        if n - bad > 1:
            n, point = _bisect(bad, n, full, FULL)
    else:
        bad, first = _first_good(n, full, FULL)
        if first is None:
            return SizingResult(cfg.tp, 0, point, False, f"more than {MAX_REPLICAS:,} replicas would be needed", binding, floor)
        n, point = _bisect(bad, first, full, FULL)
    return SizingResult(cfg.tp, n, point, True, "", _binding_below(n, ok, full, binding), floor)


def _binding_below(n: int, ok, full, fallback: str) -> str:
    """What stops one replica fewer: the utilisation ceiling, or the first target it misses."""
    if n <= 1:
        return Binding.ONE_REPLICA
    if ok.over_ceiling(n - 1):
        return Binding.UTILISATION_CEILING
    _, below = full(n - 1)
    misses = slo_misses(ok.scenario, below, ok.scenario.slo.max_utilization)
    return misses[0] if misses else fallback


def _floor_reason(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, p, wl: Workload, floor: OperatingPoint,
                  miss: str) -> str:
    name, pct = miss.split(" p")
    target, value = floor_ms(scenario, floor, miss)
    bound = _prompt_bound(p, wl, float(pct)) if name == "TTFT" else floor.decode_bound
    return (
        f"{name} p{pct} target {fmt_sig(target, 6)} ms is below the single-request floor of {fmt_sig(value, 2)} ms for "
        f"{model.id} {cfg.weights} on {gpu.id} at TP={cfg.tp} ({bound} bound): relax the target, "
        f"quantize, or use a faster GPU"
    )


def _prompt_bound(p, wl: Workload, pct: float) -> str:
    """What bounds the prefill of the prompt at this percentile of the lengths, alone on the replica
    (the step that makes an idle TTFT percentile: the median prompt's step can be bound by another
    resource than a long one's): its first chunk, of at most the token budget when prefill is chunked."""
    new = float(prompt_tokens(p, np.quantile(wl.in_grid, pct / 100))[0])
    chunk = min(new, float(p.budget_tokens)) if float(p.chunked) > 0 else new
    return str(bound_name(step_time(p, 0.0, 0.0, chunk, chunk * chunk / 2)))
