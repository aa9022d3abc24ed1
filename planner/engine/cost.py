"""Money, energy and carbon of a fleet (modeling digest §7)."""

from __future__ import annotations

from dataclasses import dataclass

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


def gpu_power_w(tdp_w: float, activity: float) -> float:
    """Average draw of one GPU at an activity share in [0, 1]."""
    activity = min(max(activity, 0.0), 1.0)
    return tdp_w * (IDLE_POWER_FRACTION + (BUSY_POWER_FRACTION - IDLE_POWER_FRACTION) * activity)


def api_usd_per_request(knobs: CostKnobs, mean_in: float, mean_out: float) -> float | None:
    if knobs.api_usd_per_mtok_input is None and knobs.api_usd_per_mtok_output is None:
        return None
    return (mean_in * (knobs.api_usd_per_mtok_input or 0.0) + mean_out * (knobs.api_usd_per_mtok_output or 0.0)) / 1e6


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
    replica_max_rps: float,
    knobs: CostKnobs,
) -> FleetCost:
    """Monthly cost = GPUs x USD/GPU-hour x hours (730 h [S41]); cost per million tokens at the
    mean load; kWh = GPUs x power x hours x PUE; CO2 = kWh x grid intensity."""
    hours = knobs.hours_per_month
    usd_month = gpus * usd_per_gpu_hour * hours
    seconds = hours * 3600.0
    out_tokens = mean_rate_rps * mean_out * seconds
    all_tokens = mean_rate_rps * (mean_in + mean_out) * seconds
    per_out = usd_month / out_tokens * 1e6 if out_tokens > 0 else float("inf") if usd_month > 0 else 0.0
    per_all = usd_month / all_tokens * 1e6 if all_tokens > 0 else float("inf") if usd_month > 0 else 0.0
    power = gpu_power_w(tdp_w, activity)
    kwh = gpus * power * hours / 1000.0 * knobs.pue
    api_req = api_usd_per_request(knobs, mean_in, mean_out)
    api_month = api_req * mean_rate_rps * seconds if api_req is not None else None
    break_even = None
    if api_req is not None and api_req * seconds > 0:  # (denormal prices times seconds can still underflow)
        # the load at which one replica's monthly bill equals the API bill; beyond one replica's
        # capacity self-hosting never catches up at this price
        rps = replica_usd_month / (api_req * seconds)
        break_even = rps if rps <= replica_max_rps else float("inf")
    return FleetCost(
        usd_month=usd_month,
        usd_per_mtok_output=per_out,
        usd_per_mtok_total=per_all,
        power_w_per_gpu=power,
        kwh_month=kwh,
        co2_kg_month=kwh * knobs.grid_kg_per_kwh,
        api_usd_month=api_month,
        break_even_rps=break_even,
    )
