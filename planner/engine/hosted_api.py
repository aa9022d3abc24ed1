"""Hosted APIs as candidates of `search`: for each model searched with a known API price, the API's
monthly bill for the tier's traffic, kept where it undercuts every self-hosted fleet found."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.engine.api_prices import ApiQuote, api_quote
from planner.engine.cost import api_usd_month
from planner.engine.plan import workload_of
from planner.engine.scenario import Scenario
from planner.engine.specs import ModelSpec


@dataclass(frozen=True)
class HostedApiOption:
    model: str
    quote: ApiQuote
    usd_month: float


def cheaper_hosted_apis(scenario: Scenario, tier: str, models: list[ModelSpec],
                        cheapest_fleet_usd: float) -> list[HostedApiOption]:
    """API bills below the cheapest self-hosted fleet (any bill when no fleet meets the targets),
    cheapest first. The API's latency is not modelled: it is a price, not a prediction."""
    wl = workload_of(scenario)
    options = []
    for model in models:
        quote = api_quote(scenario, tier, model.id, wl.mean_in, wl.mean_out)
        if quote is None:
            continue
        usd = api_usd_month(quote.usd_per_request(wl.mean_in, wl.mean_out), scenario.load.mean_rate_rps,
                            scenario.cost.hours_per_month)
        if usd < cheapest_fleet_usd or not math.isfinite(cheapest_fleet_usd):
            options.append(HostedApiOption(model.id, quote, usd))
    return sorted(options, key=lambda o: (o.usd_month, o.model))
