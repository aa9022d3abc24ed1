"""Test engines wrapped around planner.engine.plan.evaluate.

`capped_engine` keeps a tier's fleet below what the load needs, which is what a fleet-size cap
(scenario fleet.max_gpus) would do; the plan then carries an unstable (overloaded) operating point.
The engine does not enforce max_gpus yet, so the snapshot test of an overloaded plan uses this.
"""

from __future__ import annotations

from planner.engine.plan import SizingResult, _tier_result, evaluate, knobs_for
from planner.engine.roofline import replica_params
from planner.engine.serving import rate_point


def capped_engine(tier: str = "medium", share: float = 0.5):
    def engine(scenario, custom_gpus=(), custom_models=(), calibration=None):
        plan = evaluate(scenario, custom_gpus, custom_models, calibration)
        index = [t.tier for t in plan.tiers].index(tier)
        t = plan.tiers[index]
        cap = max(1, int(t.replicas * share))
        knobs = knobs_for(t.gpu, calibration)
        params = replica_params(t.model, t.gpu, t.config, knobs)
        point = rate_point(params, plan.workload, plan.peak_rate_rps / cap)
        sized = SizingResult(t.config.tp, cap, point, True, "", "fleet cap", t.floor)
        capped = _tier_result(scenario, tier, t.model, t.gpu, t.config, sized, knobs, plan.workload,
                              t.usd_per_gpu_hour)
        capped.alternatives = t.alternatives
        plan.tiers[index] = capped
        return plan

    return engine
