"""A tier's plan at fixed weights and PP: the TP degree and replica count with the fewest GPUs that
meet every target (branch and bound over the degrees, confirmed at full fidelity), the
alternatives at the other degrees, and the refusal when no degree can."""

from __future__ import annotations

import math

from planner.engine.binding import Binding
from planner.engine.feasibility import config_problem, fitting_tp_degrees, fleet_problem, over_fleet_limit
from planner.engine.knobs import Calibration
from planner.engine.memory_reasons import does_not_fit, kv_reason, request_kv_reason
from planner.engine.numbers import fmt_ms, fmt_replicas
from planner.engine.offline import OperatingPoint
from planner.engine.replica_checks import replica_check
from planner.engine.roofline import ServingConfig, memory_per_gpu, replica_params
from planner.engine.scenario import Scenario
from planner.engine.sizing import SizingResult, confirm_replicas, size_replicas
from planner.engine.specs import GpuSpec, ModelSpec
from planner.engine.targets import floor_ms
from planner.engine.tier_config import config_with, knobs_for, serving_config
from planner.engine.tier_plan import TierPlan
from planner.engine.tier_result import capped, tier_result
from planner.engine.workload import Workload


def plan_over_tp(scenario: Scenario, tier: str, model: ModelSpec, gpu: GpuSpec, wl: Workload,
                 calibration: Calibration | None = None) -> TierPlan:
    """The tier's plan at the scenario's weights and PP: the profile's TP or the fitting one with the fewest
    GPUs, its replicas, and the other degrees as alternatives."""
    knobs = knobs_for(gpu, calibration, scenario.fleet.engine, model)
    fleet = scenario.fleet
    price = (fleet.price_usd_hour if fleet.price_usd_hour is not None else gpu.price_usd_hour) * (1.0 - fleet.discount)
    base = serving_config(scenario, model, gpu, 1)
    rate = scenario.load.peak_rate_rps
    opt_tp = scenario.optimizations.tp
    explicit = None if opt_tp == "auto" else config_with(base, tp=int(opt_tp))
    problem = config_problem(model, gpu, explicit or base, fleet.gpus_per_node)
    if problem:
        binding, reason = problem
        return TierPlan(tier, model, gpu, explicit or base, False, reason, usd_per_gpu_hour=price, binding=binding)
    if explicit and float(memory_per_gpu(replica_params(model, gpu, explicit, knobs))["shortfall"]) > 0:
        return does_not_fit(tier, model, gpu, base, knobs, fleet.gpus_per_node, price, wl, tp=explicit.tp)
    degrees = [explicit.tp] if explicit else fitting_tp_degrees(model, gpu, base, knobs, fleet.gpus_per_node)
    if not degrees:
        return does_not_fit(tier, model, gpu, base, knobs, fleet.gpus_per_node, price, wl)
    fitting = [config_with(base, tp=tp) for tp in degrees]
    problems = [fleet_problem(scenario, model, gpu, c, replica_params(model, gpu, c, knobs), wl) for c in fitting]
    configs = [c for c, problem in zip(fitting, problems) if problem is None]
    if not configs:  # the same problem at every degree but the fleet limit, which the smallest hits last
        cfg, (binding, reason) = fitting[-1], problems[-1]
        if binding == Binding.CONTEXT:
            reason = f"{reason} ({request_kv_reason(model, gpu, cfg, knobs, wl)})"
        elif binding == Binding.FLEET_SIZE:
            cfg, (binding, reason) = fitting[0], problems[0]
        return TierPlan(tier, model, gpu, cfg, False, reason, usd_per_gpu_hour=price, binding=binding)
    results, unsized = _size_tp_degrees(scenario, model, gpu, knobs, wl, rate, configs)
    cfg, best = _confirm_cheapest(scenario, model, gpu, knobs, wl, rate, results)
    if best is not None and best.replicas > 0:
        cfg, best = _fewest_at_full(scenario, model, gpu, knobs, wl, rate, configs, results, unsized, cfg, best)
    if best is None:
        # nothing meets the targets: the largest TP is the closest to fitting and has the lowest floor
        cfg, best = results[-1]
        if best.binding == Binding.MEMORY:
            best.reason = kv_reason(model, gpu, cfg, knobs, wl)
    tier_plan = tier_result(scenario, tier, model, gpu, cfg, best, knobs, wl, price)
    if tier_plan.feasible and tier_plan.binding == Binding.ONE_REPLICA:
        tier_plan.binding, tier_plan.reason = (_smaller_replica_misses(scenario, cfg, results)
                                               or (tier_plan.binding, tier_plan.reason))
    hours = scenario.cost.hours_per_month
    sized_by_tp = {c.tp: s for c, s in results}
    tier_plan.alternatives = []
    for c in configs:
        if c.tp in sized_by_tp:
            s = sized_by_tp[c.tp]
            tier_plan.alternatives.append({"tp": c.tp, "replicas": s.replicas, "gpus": s.replicas * c.tp * c.pp,
                                           "feasible": s.feasible, "reason": s.reason,
                                           "usd_month": s.replicas * c.tp * c.pp * price * hours, "sized": True})
        else:
            at_least = unsized[c.tp]
            gpus = at_least * c.tp * c.pp
            tier_plan.alternatives.append({
                "tp": c.tp, "replicas": at_least, "gpus": gpus, "feasible": None, "usd_month": gpus * price * hours,
                "sized": False,
                "reason": (f"not sized: the utilisation ceiling alone needs at least {gpus:,} GPUs at TP={c.tp}, "
                           f"{'more than' if gpus > tier_plan.gpus else 'no fewer than'} TP={cfg.tp}'s {tier_plan.gpus:,}")})
    if over_fleet_limit(scenario, tier_plan.gpus):
        return capped(scenario, tier_plan, fleet.max_gpus, knobs, wl, price)
    return tier_plan


def _size_tp_degrees(scenario, model, gpu, knobs, wl, rate, configs) -> tuple[list, dict[int, int]]:
    """Quick sizings of the TP degrees that can need the fewest GPUs, branch and bound: a degree
    whose utilisation-ceiling replicas alone (arithmetic on its capacity) need more GPUs than a
    degree already sized is not sized here (plan_tier checks it again against the confirmed
    choice). Returns the sized (config, result) in TP order and the unsized degrees' least
    replicas."""
    least = {c.tp: replica_check(scenario, replica_params(model, gpu, c, knobs), wl, rate).least_replicas() for c in configs}
    order = sorted(configs, key=lambda c: (least[c.tp] * c.tp * c.pp, c.tp))
    sized: dict[int, SizingResult] = {}

    def fewest_gpus() -> float:
        gpus = [sized[c.tp].replicas * c.tp * c.pp for c in configs if c.tp in sized and sized[c.tp].feasible]
        return min(gpus, default=math.inf)

    for c in order:  # no room at all (inf) sizes too: the result says why
        if not math.isfinite(least[c.tp]) or least[c.tp] * c.tp * c.pp <= fewest_gpus():
            sized[c.tp] = size_replicas(scenario, model, gpu, c, knobs, wl, rate, confirm=False)
    results = [(c, sized[c.tp]) for c in configs if c.tp in sized]
    return results, {tp: n for tp, n in least.items() if tp not in sized}


def _fewest_at_full(scenario, model, gpu, knobs, wl, rate, configs, results, unsized, cfg,
                    best) -> tuple[ServingConfig, SizingResult]:
    """The confirmed choice, made the fewest GPUs at full fidelity among every degree: quick sizes
    can be off by a replica or more either way, so the quick order alone can pick a degree another
    beats once both are confirmed. A degree beats the choice only if it passes with fewer GPUs,
    which one full-fidelity check at its most replicas under the choice's GPUs tells (latency falls
    with replicas; mostly settled by the utilisation ceiling or a clear quick miss); one that
    passes is sized and confirmed, and the round repeats with it. `results` and `unsized` are
    updated in place."""
    improved = True
    while improved:
        improved = False
        best_gpus = best.replicas * cfg.tp * cfg.pp
        for c in configs:
            per_replica = c.tp * c.pp
            fewer = (best_gpus - 1) // per_replica  # the most replicas of c with fewer GPUs
            if c.tp == cfg.tp or fewer < 1 or unsized.get(c.tp, 0) > fewer:
                continue
            if replica_check(scenario, replica_params(model, gpu, c, knobs), wl, rate).misses_at_full(fewer)[0]:
                continue
            sized = size_replicas(scenario, model, gpu, c, knobs, wl, rate)
            if sized.feasible and sized.replicas * per_replica < best_gpus:
                results[:] = sorted([r for r in results if r[0].tp != c.tp] + [(c, sized)], key=lambda r: r[0].tp)
                unsized.pop(c.tp, None)
                cfg, best, improved = c, sized, True
                break
    return cfg, best


def _confirm_cheapest(scenario, model, gpu, knobs, wl, rate, results) -> tuple[ServingConfig, SizingResult | None]:
    """The feasible TP with the fewest GPUs, re-checked at full fidelity (the numbers shown); when the
    check fails, the next cheapest. `results` is updated in place with the confirmed sizes."""
    # fewest GPUs, then (with no load, all zero) the smallest replica, then the lowest latency
    order = sorted((i for i, (_, s) in enumerate(results) if s.feasible),
                   key=lambda i: (results[i][1].replicas * results[i][0].tp * results[i][0].pp,
                                  results[i][0].tp if results[i][1].replicas == 0 else 0, _p99(results[i][1].point)))
    for i in order:
        cfg, sized = results[i]
        if sized.replicas > 0:
            sized = confirm_replicas(scenario, model, gpu, cfg, knobs, wl, rate, sized)
            results[i] = (cfg, sized)
        if sized.feasible:
            return cfg, sized
    return results[0][0], None


def _p99(point: OperatingPoint | None) -> float:
    return point.e2e_s.get("p99", float("inf")) if point and point.e2e_s else float("inf")


LATENCY_TARGETS = ("TTFT", "TPOT", "E2E")


def _smaller_replica_misses(scenario: Scenario, cfg: ServingConfig, results) -> tuple[str, str] | None:
    """(binding, note) when one replica of the chosen degree suffices but the next smaller replica
    (fewer GPUs) misses a latency target, even idle or on as many GPUs: that target, not one
    replica, sized the fleet. None otherwise."""
    smaller = [(c, s) for c, s in results if c.tp * c.pp < cfg.tp * cfg.pp]
    if not smaller:
        return None
    c, s = max(smaller, key=lambda r: r[0].tp * r[0].pp)
    if s.binding.split(" p")[0] not in LATENCY_TARGETS:
        return None
    if not s.feasible and s.floor is not None and s.replicas == 0:
        target, value = floor_ms(scenario, s.floor, s.binding)
        why = f"at TP={c.tp} even a lone request misses it ({fmt_ms(value)} against {fmt_ms(target)})"
    else:
        why = f"at TP={c.tp} it needs {fmt_replicas(s.replicas)} ({s.replicas * c.tp * c.pp:,} GPUs)"
    return s.binding, f"TP={cfg.tp} for the {s.binding} target: {why}"
