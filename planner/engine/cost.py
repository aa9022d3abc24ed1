"""Money, energy and carbon of a fleet (modeling digest §7)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.engine.api_prices import ApiQuote
from planner.engine.scenario import CostKnobs

# GPU power while serving, as a share of TDP: 0.43 idle to 0.86 at full activity, linear in between
# (fleet-sim computed profile fitted to ML.ENERGY measurements, digest §7 [S5][S35]).
IDLE_POWER_FRACTION = 0.43
BUSY_POWER_FRACTION = 0.86


@dataclass(frozen=True)
class FleetCost:
    usd_month: float
    usd_per_mtok_output: float
    usd_per_mtok_total: float
    power_w_per_gpu: float
    kwh_month: float
    co2_kg_month: float
    api_usd_month: float | None
    break_even_rps: float | None
    api: ApiComparison | None = None


@dataclass(frozen=True)
class ApiComparison:
    """Self-hosting against a hosted API at the same traffic. Self-hosting pays for whole replicas
    whatever their load (idle GPUs cost the same), so its bill is a staircase in the load: one
    replica's price per `replica_capacity_rps` of mean load started. The API bill is a straight
    line: the price per request times the requests."""

    quote: ApiQuote
    usd_per_request: float
    seconds_per_month: float
    mean_output_tokens: float
    replica_usd_month: float
    replica_capacity_rps: float  # mean load one replica carries (its peak capacity / peak factor)
    self_hosted_usd_month: float  # the planned fleet's bill
    mean_rate_rps: float

    def api_usd_month_at(self, rate_rps: float) -> float:
        return api_usd_month(self.usd_per_request, rate_rps, self.seconds_per_month / 3600.0)

    def self_hosted_usd_month_at(self, rate_rps: float) -> float:
        """Whole replicas for a mean load (the staircase); inf past any finite capacity."""
        if rate_rps <= 0:
            return 0.0
        if self.replica_capacity_rps <= 0:
            return math.inf
        return math.ceil(rate_rps / self.replica_capacity_rps - 1e-9) * self.replica_usd_month

    @property
    def usd_month(self) -> float:
        return self.api_usd_month_at(self.mean_rate_rps)

    @property
    def usd_per_mtok_output(self) -> float:
        return api_usd_per_mtok_output(self.usd_per_request, self.mean_output_tokens)

    @property
    def break_even_rps(self) -> float:
        """The lowest mean load at which self-hosting costs no more than the API; inf if none.
        With a the API's $/month per req/s, R one replica's $/month and c its capacity: on the
        n-th step self-hosting costs n*R and the API a*rate <= a*n*c, so self-hosting can only be
        cheaper on a step if n*R/a <= n*c, that is R/a <= c, the same for every n. Then the first
        crossing is on the first step, at R/a; otherwise there is none at any load."""
        per_rps = self.usd_per_request * self.seconds_per_month
        if self.replica_usd_month <= 0:
            return 0.0
        if per_rps <= 0:  # (denormal prices times seconds can underflow to 0)
            return math.inf
        rate = self.replica_usd_month / per_rps
        return rate if rate <= self.replica_capacity_rps * (1 + 1e-9) else math.inf

    def break_even_gpu_price(self, usd_per_gpu_hour: float) -> float:
        """The GPU-hour price at which the planned fleet would cost what the API does at the
        planned load (its bill scales with the price): what renting or owning GPUs must cost for
        self-hosting to pay. inf for a fleet that costs nothing."""
        if self.self_hosted_usd_month <= 0:
            return math.inf
        return usd_per_gpu_hour * self.usd_month / self.self_hosted_usd_month

    @property
    def cheaper(self) -> str:
        """'api', 'self-hosted' or 'same' at the planned load."""
        api, own = self.usd_month, self.self_hosted_usd_month
        if math.isclose(api, own, rel_tol=1e-9, abs_tol=1e-9):
            return "same"
        return "api" if api < own else "self-hosted"


def api_usd_month(usd_per_request: float, mean_rate_rps: float, hours_per_month: float) -> float:
    """A pay-per-token API's monthly bill: price per request x requests in the month."""
    return usd_per_request * mean_rate_rps * hours_per_month * 3600.0


def api_usd_per_mtok_output(usd_per_request: float, mean_output_tokens: float) -> float:
    """An API's bill per million output tokens, the prompts' tokens included: comparable with a
    fleet's usd_per_mtok_output."""
    return usd_per_request / mean_output_tokens * 1e6 if mean_output_tokens > 0 else math.inf


def gpu_power_w(tdp_w: float, activity: float) -> float:
    """Average draw of one GPU at an activity share in [0, 1]."""
    activity = min(max(activity, 0.0), 1.0)
    return tdp_w * (IDLE_POWER_FRACTION + (BUSY_POWER_FRACTION - IDLE_POWER_FRACTION) * activity)


def fleet_cost(
    *,
    gpus: int,
    usd_per_gpu_hour: float,
    tdp_w: float,
    activity: float,
    mean_rate_rps: float,
    mean_in: float,
    mean_out: float,
    replica_usd_month: float,
    replica_capacity_rps: float,
    knobs: CostKnobs,
    api_quote: ApiQuote | None = None,
) -> FleetCost:
    """Monthly cost = GPUs x USD/GPU-hour x hours (730 h [S41]); cost per million tokens at the
    mean load; kWh = GPUs x power x hours x PUE; CO2 = kWh x grid intensity. With an API price,
    the API's bill for the same traffic and the break-even load (ApiComparison)."""
    hours = knobs.hours_per_month
    usd_month = gpus * usd_per_gpu_hour * hours
    seconds = hours * 3600.0
    out_tokens = mean_rate_rps * mean_out * seconds
    all_tokens = mean_rate_rps * (mean_in + mean_out) * seconds
    per_out = usd_month / out_tokens * 1e6 if out_tokens > 0 else float("inf") if usd_month > 0 else 0.0
    per_all = usd_month / all_tokens * 1e6 if all_tokens > 0 else float("inf") if usd_month > 0 else 0.0
    power = gpu_power_w(tdp_w, activity)
    kwh = gpus * power * hours / 1000.0 * knobs.pue
    api = None
    if api_quote is not None:
        api = ApiComparison(api_quote, api_quote.usd_per_request(mean_in, mean_out), seconds, mean_out,
                            replica_usd_month, replica_capacity_rps, usd_month, mean_rate_rps)
    return FleetCost(
        usd_month=usd_month,
        usd_per_mtok_output=per_out,
        usd_per_mtok_total=per_all,
        power_w_per_gpu=power,
        kwh_month=kwh,
        co2_kg_month=kwh * knobs.grid_kg_per_kwh,
        api_usd_month=api.usd_month if api is not None else None,
        break_even_rps=api.break_even_rps if api is not None else None,
        api=api,
    )
