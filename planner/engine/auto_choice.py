"""The tier's plan with weights = "auto" or pp = "auto": the weight formats and pipeline stage
counts tried, and the cheapest plan over them."""

from __future__ import annotations

import math

from planner.engine.binding import Binding
from planner.engine.feasibility import fitting_tp_degrees, weights_problem
from planner.engine.knobs import Calibration, Knobs
from planner.engine.replica_checks import replica_check
from planner.engine.roofline import replica_params
from planner.engine.scenario import Scenario
from planner.engine.specs import BYTES_PER_ELEMENT, GpuSpec, ModelSpec
from planner.engine.tier_config import config_with, knobs_for, serving_config
from planner.engine.tier_plan import TierPlan
from planner.engine.tp_choice import plan_over_tp
from planner.engine.workload import Workload

# The weight formats weights = "auto" tries, highest precision first: at equal cost the higher keeps
# more of the model's quality.
AUTO_WEIGHTS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")


def auto_weights(model: ModelSpec, gpu: GpuSpec) -> list[str]:
    """The model's own dtype, then every smaller format the GPU runs (never a larger one: it only
    costs memory)."""
    native = BYTES_PER_ELEMENT[model.dtype]
    return [model.dtype] + [w for w in AUTO_WEIGHTS if BYTES_PER_ELEMENT[w] < native and not weights_problem(gpu, w)]


# Pipeline stages pp = "auto" tries: PP splits the layers across scale-up domains (nodes), so it is
# for a model whose weights and KV cache one domain cannot hold at any TP.
PP_DEGREES = (1, 2, 4, 8)


def plan_tier(scenario: Scenario, tier: str, model: ModelSpec, gpu: GpuSpec, wl: Workload,
              calibration: Calibration | None = None) -> TierPlan:
    """The tier's plan. With pp = "auto": TP, then PP, one stage unless the model does not fit one
    scale-up domain, then the fewest stages that hold it (PP adds GPUs and latency, so it
    never makes a fitting fleet cheaper in this model's terms)."""
    if scenario.optimizations.pp != "auto":
        return _plan_precision(scenario, tier, model, gpu, wl, calibration)
    first = None
    for pp in (d for d in PP_DEGREES if d <= model.layers):
        staged = scenario.model_copy(update={"optimizations": scenario.optimizations.model_copy(update={"pp": pp})})
        planned = _plan_precision(staged, tier, model, gpu, wl, calibration)
        first = first or planned
        if planned.binding != Binding.MEMORY:  # held: a stage count that fits but misses is no answer
            if planned.feasible or pp == 1:
                return planned
            first.reason += f"; with PP={pp} (pp \"auto\") it fits, but {planned.reason}"
            return first
    first.reason += f" (pp \"auto\" tried PP up to {max(d for d in PP_DEGREES if d <= model.layers)}: none fits)"
    return first


def _plan_precision(scenario: Scenario, tier: str, model: ModelSpec, gpu: GpuSpec, wl: Workload, calibration) -> TierPlan:
    """The plan at the scenario's weight precision; with weights = "auto", the cheapest over the
    formats the tier may use."""
    if scenario.optimizations.weights != "auto":
        return plan_over_tp(scenario, tier, model, gpu, wl, calibration)
    chosen = _cheapest_weights(scenario, tier, model, gpu, wl, calibration)
    chosen.weights_auto = True
    return chosen


def _cheapest_weights(scenario: Scenario, tier: str, model: ModelSpec, gpu: GpuSpec, wl: Workload, calibration) -> TierPlan:
    """The fewest GPUs meeting every target over auto_weights, the higher precision at equal cost.
    A format whose utilisation ceiling alone needs as many GPUs as the best plan so far is not
    planned (it cannot beat it). With none meeting the targets: the plan that misses the fewest
    (a capped fleet), else the smallest format's refusal (the closest to fitting), saying what was tried."""
    best: TierPlan | None = None
    tried: list[TierPlan] = []
    formats = auto_weights(model, gpu)
    knobs = knobs_for(gpu, calibration, scenario.fleet.engine, model)
    for w in formats:
        fixed = scenario.model_copy(update={"optimizations": scenario.optimizations.model_copy(update={"weights": w})})
        if best is not None and _least_gpus(fixed, model, gpu, knobs, wl) >= best.gpus:
            continue
        planned = plan_over_tp(fixed, tier, model, gpu, wl, calibration)
        tried.append(planned)
        if planned.meets_slo and (best is None or planned.gpus < best.gpus):
            best = planned
    if best is not None:
        return best
    sized = [t for t in tried if t.feasible]
    if sized:
        return min(sized, key=lambda t: len(t.misses))
    refused = tried[-1]
    if len(formats) > 1:
        refused.reason += f" (weights \"auto\" tried {', '.join(formats)}: none fits and meets the targets)"
    return refused


def _least_gpus(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, knobs: Knobs, wl: Workload) -> float:
    """GPUs the utilisation ceiling alone asks for at the best fitting TP: a lower bound on any plan."""
    base = serving_config(scenario, model, gpu, 1)
    degrees = fitting_tp_degrees(model, gpu, base, knobs, scenario.fleet.gpus_per_node)
    rate = scenario.load.peak_rate_rps
    return min((replica_check(scenario, replica_params(model, gpu, config_with(base, tp=tp), knobs), wl, rate).least_replicas()
                * tp * base.pp for tp in degrees), default=math.inf)
