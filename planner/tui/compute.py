"""What the TUI computes, without Textual: the plan for a profile, the latency-vs-load curve of
one tier and the cost of every catalog model at the current load (the chart data).

Everything here calls the engine; no serving math is repeated. The functions take a
`should_stop` callable so a worker thread can abandon stale work between engine calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from planner import service
from planner.engine import catalog
from planner.engine.binding import Binding
from planner.engine.memo import Memo
from planner.engine.scenario import Targets
from planner.engine.specs import GpuSpec, ModelSpec
from planner.profile import Profile
from planner.report import plan_json
from planner.service import ComputeError as ComputeError  # the screens catch it from here
from planner.service import Evaluate, Inputs, resolve, uses_files

# The numeric engine (numpy, ~0.15 s to import) is imported by the functions that run it, in the
# plan worker, so the first frame does not wait for it.
if TYPE_CHECKING:
    from planner.engine.plan import Plan, TierPlan

# Load points of the latency curve, as shares of one replica's saturation throughput: dense near
# saturation, where the curve bends.
CURVE_SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.94, 0.97, 0.99)


def never() -> bool:
    return False


# Plans of recently seen inputs: going back to an earlier value (undoing a keystroke, reopening a
# profile) shows its plan at once. Keyed by the profile's JSON and folder; files a profile points
# at (config.json, calibration) are read again only when the inputs change.
PLANS: Memo[str, Result] = Memo(64)
SWEEPS: Memo[str, list[SweepPoint]] = Memo(16)


@dataclass(frozen=True)
class TierView:
    """One tier as the widgets show it: the JSON `planner plan` prints for it (read as `view[key]`,
    so the app and the CLI show identical numbers), and, typed, the little only the engine's plan
    holds. Widgets read this and never a TierPlan."""

    data: dict
    gpu: GpuSpec
    model_family: str
    # the single-request (zero-load) latency at each target's percentile ("TTFT", "TPOT", "E2E"):
    # why a target is out of reach whatever the fleet size; None where there is no stable floor
    floor_ms: dict[str, float | None]

    def __getitem__(self, key: str):
        return self.data[key]

    def get(self, key: str, default=None):
        return self.data.get(key, default)


def tier_view(plan: TierPlan, data: dict, slo: Targets) -> TierView:
    from planner.engine.targets import percentile_of  # loaded by then: there is a plan

    floor = plan.floor if plan.floor is not None and plan.floor.stable else None
    dists = {"TTFT": (floor.ttft_s, slo.ttft_percentile), "TPOT": (floor.tpot_s, slo.tpot_percentile),
             "E2E": (floor.e2e_s, slo.e2e_percentile)} if floor is not None else {}
    floor_ms = {metric: percentile_of(dist, pct) * 1e3 if dist else None for metric, (dist, pct) in dists.items()}
    return TierView(data, plan.gpu, plan.model.family, floor_ms)


@dataclass(frozen=True, eq=False)
class Result:
    """One evaluated profile: the engine's plan and the JSON the CLI prints for it."""

    inputs: Inputs
    plan: Plan
    data: dict
    curves: dict[str, LatencyCurve] = field(default_factory=dict)  # filled in by the chart worker

    def tier(self, name: str) -> TierPlan:
        return next(t for t in self.plan.tiers if t.tier == name)

    def tier_data(self, name: str) -> dict:
        return next(t for t in self.data["tiers"] if t["tier"] == name)

    @cached_property
    def views(self) -> dict[str, TierView]:
        slo = self.plan.scenario.slo
        return {t.tier: tier_view(t, self.tier_data(t.tier), slo) for t in self.plan.tiers}


def compute(profile: Profile, base_dir: Path, engine: Evaluate | None = None, cache: bool = True) -> Result:
    """The plan of a profile (cached for the built-in engine, the default). The built-in engine
    plans the large tier on a helper process once that is ready (start_helper): the same
    numbers, in about the time of the slower half."""
    from planner.engine.helper import HELPER

    builtin = engine is None
    key = f"{Path(base_dir).resolve() if uses_files(profile) else ''}|{profile.model_dump_json()}"
    cacheable = cache and builtin
    if cacheable and (hit := PLANS.get(key)) is not None:
        return hit
    inputs = resolve(profile, base_dir)
    planned = service.plan(inputs, evaluate=HELPER.evaluate if builtin else engine)
    result = Result(inputs, planned, plan_json(planned))
    if cacheable:
        PLANS.put(key, result)
    return result


def start_helper(result: Result) -> None:
    """Start the helper process in the background (once), warmed on this result's inputs."""
    from planner.engine.helper import HELPER

    inputs = result.inputs
    HELPER.start(inputs.scenario, inputs.custom_gpus, inputs.custom_models, inputs.calibration)


# ---------------------------------------------------------------- latency against load


@dataclass(frozen=True)
class LatencyCurve:
    """p-th percentile TTFT and TPOT of one tier's fleet from idle to saturation."""

    tier: str
    replicas: int
    rates_rps: list[float]  # offered load on the whole fleet
    ttft_ms: list[float]
    tpot_ms: list[float]
    ttft_pct: float
    tpot_pct: float
    ttft_target_ms: float | None
    tpot_target_ms: float | None
    saturation_rps: float
    peak_rps: float
    note: str = ""


def latency_curve(result: Result, tier: str, should_stop: Callable[[], bool] = never) -> LatencyCurve | None:
    """Sample the engine's open-loop operating point at CURVE_SHARES of saturation. The fleet keeps
    the plan's replica count (at least one), and each replica gets an equal share of the load."""
    from planner.engine.roofline import replica_params
    from planner.engine.serving import offline_throughput
    from planner.engine.targets import percentile_of
    from planner.engine.tier_config import knobs_for

    tier_plan = result.tier(tier)
    scenario = result.plan.scenario
    slo = scenario.slo
    base = dict(
        tier=tier, replicas=max(tier_plan.replicas, 1), ttft_pct=slo.ttft_percentile, tpot_pct=slo.tpot_percentile,
        ttft_target_ms=slo.ttft_ms, tpot_target_ms=slo.tpot_ms, peak_rps=result.plan.peak_rate_rps,
    )
    if tier_plan.binding in (Binding.MEMORY, Binding.HARDWARE):
        return LatencyCurve(rates_rps=[], ttft_ms=[], tpot_ms=[], saturation_rps=0.0, note=tier_plan.reason, **base)
    knobs = knobs_for(tier_plan.gpu, result.inputs.calibration, tier_plan.config.engine, tier_plan.model)
    params = replica_params(tier_plan.model, tier_plan.gpu, tier_plan.config, knobs)
    wl = result.plan.workload
    max_rate, _, _ = offline_throughput(params, wl)
    if max_rate <= 0:
        return LatencyCurve(rates_rps=[], ttft_ms=[], tpot_ms=[], saturation_rps=0.0,
                            note="no room for a single request's KV cache", **base)
    points = _curve_points(params, wl, max_rate, should_stop)
    if points is None:
        return None
    n = base["replicas"]
    rates = [share * max_rate * n for share, _, _ in points]
    ttft = [percentile_of(t, slo.ttft_percentile) * 1e3 for _, t, _ in points]
    tpot = [percentile_of(t, slo.tpot_percentile) * 1e3 for _, _, t in points]
    return LatencyCurve(rates_rps=rates, ttft_ms=ttft, tpot_ms=tpot, saturation_rps=max_rate * n, **base)


# The curve's operating points by replica and workload: a keystroke that changes neither (a price,
# a target, another tier's model) redraws the chart without solving them again.
CURVE_POINTS: Memo[tuple, list] = Memo(64)


def _curve_points(params, wl, max_rate: float, should_stop: Callable[[], bool]) -> list | None:
    """(share, TTFT stats, TPOT stats) at each stable share of CURVE_SHARES; None if stopped."""
    from planner.engine.replica_checks import workload_key
    from planner.engine.serving import QUICK, rate_point

    key = (params, workload_key(wl))
    points = CURVE_POINTS.get(key)
    if points is not None:
        return points
    points = []
    for share in CURVE_SHARES:
        if should_stop():
            return None
        point = rate_point(params, wl, share * max_rate, fidelity=QUICK)  # a picture: the sizing search's fidelity
        if not point.stable:
            break
        points.append((share, point.ttft_s, point.tpot_s))
    CURVE_POINTS.put(key, points)
    return points


# ---------------------------------------------------------------- cost against model size


@dataclass(frozen=True)
class SweepPoint:
    model: str
    tier: str
    params_b: float
    feasible: bool
    usd_month: float | None
    gpus: int


def sweep_key(inputs: Inputs) -> str:
    """Everything the sweep depends on: the scenario without the tier choices, plus customs."""
    scenario = inputs.scenario.model_dump_json(exclude={"models"})
    gpus = ",".join(g.model_dump_json() for g in inputs.custom_gpus)
    models = ",".join(m.id for m in inputs.custom_models)
    return f"{scenario}|{gpus}|{models}|{inputs.calibration.model_dump_json() if inputs.calibration else ''}"


def cost_sweep(inputs: Inputs, models: Iterable[ModelSpec] | None = None,
               should_stop: Callable[[], bool] = never) -> list[SweepPoint] | None:
    """Plan every catalog model (and the profile's custom ones) at the current load, fleet and
    targets, each in its own size tier. None if stopped."""
    from planner.engine.plan import plan_tier, workload_of

    scenario = inputs.scenario
    gpu = catalog.get_gpu(scenario.fleet.gpu, inputs.custom_gpus)
    wl = workload_of(scenario)
    full = models is None
    key = sweep_key(inputs)
    if full and (hit := SWEEPS.get(key)) is not None:
        return hit
    specs = list(models) if models is not None else [*catalog.models().values(), *inputs.custom_models]
    seen: set[str] = set()
    points = []
    for spec in specs:
        if spec.id in seen:
            continue
        seen.add(spec.id)
        if should_stop():
            return None
        planned = plan_tier(scenario, spec.tier, spec, gpu, wl, inputs.calibration)
        usd = planned.cost.usd_month if planned.feasible and planned.cost is not None else None
        points.append(SweepPoint(spec.id, spec.tier, spec.params_total / 1e9, planned.feasible, usd, planned.gpus))
    if full:
        SWEEPS.put(key, points)
    return points

