"""A sized configuration as the tier's plan: memory, latency misses, cost and energy, the hosted
API's quote, and the replica capacity behind the cost staircase; and the plan of the largest
fleet fleet.max_gpus allows when the targets need more."""

from __future__ import annotations

import math

from planner.engine.api_prices import api_quote
from planner.engine.binding import Binding
from planner.engine.cost import fleet_cost
from planner.engine.distributions import FULL
from planner.engine.knobs import Knobs
from planner.engine.numbers import fmt_replicas, fmt_sig
from planner.engine.offline import offline_throughput
from planner.engine.replica_checks import replica_check
from planner.engine.roofline import memory_per_gpu, replica_params
from planner.engine.scenario import Scenario
from planner.engine.sizing import SizingResult
from planner.engine.specs import GB
from planner.engine.targets import slo_misses
from planner.engine.tier_plan import TierPlan
from planner.engine.workload import Workload


def tier_result(scenario, tier, model, gpu, cfg, sized: SizingResult, knobs, wl, price) -> TierPlan:
    p = replica_params(model, gpu, cfg, knobs)
    mem = memory_per_gpu(p)
    plan = TierPlan(tier, model, gpu, cfg, sized.feasible, sized.reason, replicas=sized.replicas, point=sized.point,
                    binding=sized.binding, floor=sized.floor, usd_per_gpu_hour=price)
    plan.memory_gb = {k: float(v) / GB for k, v in mem.items()}
    plan.mean_output_tokens = wl.mean_out
    point = sized.point
    plan.bound = point.decode_bound if point else ""
    plan.misses = slo_misses(scenario, point) if point else []
    plan.meets_slo = sized.feasible and not plan.misses
    max_rate, _, _ = offline_throughput(p, wl)
    mean_rate = scenario.load.mean_rate_rps
    activity = (mean_rate / max(sized.replicas, 1)) / max_rate if max_rate > 0 else 0.0
    replica_usd = cfg.tp * cfg.pp * price * scenario.cost.hours_per_month
    plan.api_quote = api_quote(scenario, tier, model.id, wl.mean_in, wl.mean_out)
    plan.cost = fleet_cost(
        gpus=plan.gpus, usd_per_gpu_hour=price, tdp_w=gpu.tdp_w, activity=activity,
        mean_rate_rps=mean_rate if sized.feasible else 0.0, mean_in=wl.mean_in, mean_out=wl.mean_out,
        replica_usd_month=replica_usd, knobs=scenario.cost, api_quote=plan.api_quote,
        replica_capacity_rps=replica_capacity_rps(scenario, max_rate, sized.replicas, sized.binding),
    )
    return plan


def replica_capacity_rps(scenario: Scenario, max_rate: float, replicas: int, binding: str) -> float:
    """The mean load one replica carries within the targets, for the self-hosted cost staircase:
    its saturation rate times the utilisation ceiling, or, where a latency target needed more
    replicas than the ceiling, the planned peak share per replica; divided by the peak factor (the
    fleet is sized for the peak)."""
    peak = scenario.load.peak_rate_rps
    capacity = max_rate * scenario.slo.max_utilization
    if (binding != Binding.FLEET_SIZE and replicas > 0 and peak > 0 and capacity > 0
            and replicas > math.ceil(peak / capacity - 1e-9)):
        capacity = peak / replicas
    return capacity * (scenario.load.mean_rate_rps / peak if peak > 0 else 1.0)


def capped(scenario: Scenario, need: TierPlan, max_gpus: int, knobs: Knobs, wl: Workload, price: float) -> TierPlan:
    """The targets need more GPUs than fleet.max_gpus allows: plan the largest fleet allowed and show
    what it does under the load (its misses, or unstable with the offered and maximum load)."""
    cfg = need.config
    replicas = max_gpus // (cfg.tp * cfg.pp)
    why = f"the targets need {need.gpus:,} GPUs, more than the fleet limit of {max_gpus:,} (fleet.max_gpus)"
    # replicas >= 1: plan_tier sizes no degree whose replica alone is over the limit (fleet_problem)
    p = replica_params(need.model, need.gpu, cfg, knobs)
    point = replica_check(scenario, p, wl, scenario.load.peak_rate_rps)(replicas, FULL)[1]
    misses = slo_misses(scenario, point, scenario.slo.max_utilization)
    if not point.stable:
        max_rps = replicas * offline_throughput(p, wl)[0]
        detail = (f"unstable: {fmt_sig(scenario.load.peak_rate_rps, 4)} req/s offered, at most {fmt_sig(max_rps, 4)} req/s "
                  f"on {fmt_replicas(replicas)}")
    else:
        detail = f"on {fmt_replicas(replicas)} it misses {', '.join(misses)}"
    # sized, so feasible: the fleet exists; its misses (or instability) say it cannot carry the load
    sized = SizingResult(cfg.tp, replicas, point, True, f"{why}; {detail}", Binding.FLEET_SIZE, need.floor)
    capped = tier_result(scenario, need.tier, need.model, need.gpu, cfg, sized, knobs, wl, price)
    capped.alternatives = need.alternatives
    return capped
