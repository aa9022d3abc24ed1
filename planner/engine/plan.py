"""From a scenario to a plan: per tier, the cheapest fleet that meets every target at the peak
load, its latency percentiles, cost, energy and the constraint that sized it.

The planner lives in modules of one job each; this one plans the tiers and puts them together:
- tier_plan: what a plan holds (TierPlan, Plan);
- tier_config: the serving configuration a scenario asks for, and the engine knobs;
- feasibility: what rules a configuration out before sizing (shared with predict and search);
- targets: the latency targets an operating point misses;
- replica_checks: whether n replicas meet the targets, remembered across plans;
- sizing: the fewest replicas of one configuration, quick search then full-fidelity confirmation;
- tp_choice: the TP degree with the fewest GPUs, and the alternatives;
- tier_result, memory_reasons: a sized configuration as the tier's plan, and why a model does not fit;
- auto_choice: weights = "auto" and pp = "auto"."""

from __future__ import annotations

from collections.abc import Iterable

from planner.engine import catalog, trust
from planner.engine.api_prices import api_quote
from planner.engine.auto_choice import plan_tier
from planner.engine.cost import api_usd_month
from planner.engine.knobs import Calibration, shipped_calibration
from planner.engine.scenario import Scenario
from planner.engine.specs import TIERS, GpuSpec, ModelSpec
from planner.engine.tier_plan import Plan, TierPlan
from planner.engine.workload import Workload

# Prompts this many times the outputs (on average) make a prefill-dominated load: there, against
# the simulation of the same scheduler, the median TPOT of the short outputs read 11-34% high and
# E2E p99 10-18% low near 80% load (8B, 70B and Mixtral; 1,000-token prompts with 3-15-token
# outputs, 4,000 with 30), while 1,000 with 30 stayed within 10% (tests/simulation).
PREFILL_DOMINATED_RATIO = 50.0


def load_caveats(wl: Workload) -> list[str]:
    """What a user should know about how far to trust these numbers for this load."""
    ratio = wl.mean_in / max(wl.mean_out, 1e-9)
    if ratio < PREFILL_DOMINATED_RATIO:
        return []
    return [f"prefill-dominated load (prompts {ratio:,.0f}x the outputs): against a simulation of the same "
            f"scheduler, the median TPOT of such short outputs read up to a third high and E2E p99 up to 18% low "
            f"near 80% load"]


def evaluate(scenario: Scenario, custom_gpus: Iterable[GpuSpec] = (), custom_models: Iterable[ModelSpec] = (),
             calibration: Calibration | None = None) -> Plan:
    """The whole plan: one model per tier on the scenario's fleet."""
    wl = workload_of(scenario)
    return assemble(scenario, plan_tiers(scenario, TIERS, custom_gpus, custom_models, calibration, wl), wl)


def workload_of(scenario: Scenario) -> Workload:
    return Workload(scenario.load.input_len, scenario.load.output_len)


def plan_tiers(scenario: Scenario, tiers: Iterable[str], custom_gpus: Iterable[GpuSpec] = (),
               custom_models: Iterable[ModelSpec] = (), calibration: Calibration | None = None,
               wl: Workload | None = None) -> list[TierPlan]:
    """The plans of the named tiers: each tier's model on the scenario's fleet (the tiers are
    independent, so they can be planned apart and put together with `assemble`). `wl`: the
    scenario's workload when the caller has it (its prompt pools and capacities are kept on it)."""
    gpus, models = list(custom_gpus), list(custom_models)
    gpu = catalog.get_gpu(scenario.fleet.gpu, gpus)
    wl = wl or workload_of(scenario)
    planned = [plan_tier(scenario, tier, catalog.get_model(getattr(scenario.models, tier), models), gpu, wl, calibration)
               for tier in tiers]
    for t in planned:
        _mark_trust(t, calibration or shipped_calibration())
        t.mean_input_tokens, t.mean_output_tokens, t.api_enabled = wl.mean_in, wl.mean_out, scenario.api.enabled
        if t.api_quote is None:  # an infeasible tier still has an API bill to show
            t.api_quote = api_quote(scenario, t.tier, t.model.id, wl.mean_in, wl.mean_out)
        if t.api_quote is not None:
            t.api_usd_month = api_usd_month(t.api_quote.usd_per_request(wl.mean_in, wl.mean_out),
                                            scenario.load.mean_rate_rps, scenario.cost.hours_per_month)
    return planned


def _mark_trust(t: TierPlan, calibration: Calibration) -> None:
    """The error band that applies to the tier's numbers and what stands behind it."""
    t.validated = trust.validated(calibration, t.gpu.family, t.model.family, t.config.engine)
    utilization = t.point.utilization if t.feasible and t.point is not None else None
    t.error_pct = trust.error_band(calibration, t.validated, utilization, t.config.engine, t.gpu.family, t.model.family)


def assemble(scenario: Scenario, tiers: Iterable[TierPlan], wl: Workload | None = None) -> Plan:
    """The plan made of its tiers' plans, in tier order; `wl` as for plan_tiers."""
    wl = wl or workload_of(scenario)
    ordered = sorted(tiers, key=lambda t: TIERS.index(t.tier))
    return Plan(scenario=scenario, workload=wl, peak_rate_rps=scenario.load.peak_rate_rps, tiers=ordered,
                caveats=load_caveats(wl))
