"""What a plan holds: each tier's plan (TierPlan: its fleet, operating point, cost, the constraint that
sized it and the hosted-API comparison) and the Plan of every tier under one scenario."""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.engine.api_prices import ApiQuote
from planner.engine.cost import FleetCost
from planner.engine.offline import OperatingPoint
from planner.engine.roofline import ServingConfig
from planner.engine.scenario import Scenario
from planner.engine.specs import GpuSpec, ModelSpec
from planner.engine.workload import Workload


@dataclass
class TierPlan:
    tier: str
    model: ModelSpec
    gpu: GpuSpec
    config: ServingConfig
    feasible: bool
    reason: str = ""
    replicas: int = 0
    point: OperatingPoint | None = None
    meets_slo: bool = False
    binding: str = ""  # a Binding, or the latency target that binds ("TTFT p99")
    bound: str = ""
    cost: FleetCost | None = None
    memory_gb: dict = field(default_factory=dict)
    alternatives: list[dict] = field(default_factory=list)
    floor: OperatingPoint | None = None
    usd_per_gpu_hour: float = 0.0
    error_pct: dict = field(default_factory=dict)  # expected median abs. % error per metric group
    validated: dict = field(default_factory=dict)  # gpu_family / model_family / engine: measured or not
    misses: list[str] = field(default_factory=list)
    mean_output_tokens: float = 0.0
    api_quote: ApiQuote | None = None  # the hosted-API price this tier is compared with
    api_usd_month: float | None = None  # that API's bill for the tier's traffic (infeasible tiers too)
    api_enabled: bool = True  # false: the profile turned the comparison off ([api] enabled = false)
    mean_input_tokens: float = 0.0
    weights_auto: bool = False  # the weight precision was chosen by the planner (weights = "auto")

    @property
    def gpus(self) -> int:
        return self.replicas * self.config.tp * self.config.pp


@dataclass
class Plan:
    scenario: Scenario
    workload: Workload
    peak_rate_rps: float
    tiers: list[TierPlan]
    caveats: list[str] = field(default_factory=list)  # where the load lies outside the checked range
