"""The selected tier's monthly cost against load: the self-hosted fleet, a step for each replica
added (whole replicas are paid for, busy or idle), against a hosted API's straight line, with the
planned load and the break-even load marked."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.reactive import reactive

from planner.tui.widgets.charts import MARKER, ThemedPlot, _nice_ticks, _usd_label

if TYPE_CHECKING:  # the engine loads with the first plan, after the first frame
    from planner.engine.cost import ApiComparison
    from planner.engine.plan import TierPlan

MAX_STEPS = 2000  # replicas drawn at most: past that the staircase is a line at any terminal width


@dataclass(frozen=True)
class ApiCostView:
    """What the chart draws for one tier (note: why there is nothing to draw)."""

    tier: str
    note: str = ""
    api: ApiComparison | None = None
    replica_gpus: int = 0

    def x_max(self) -> float:
        """The load axis: past the planned load, the break-even load and three replicas' worth."""
        api = self.api
        ends = [api.mean_rate_rps * 1.5, 3 * api.replica_capacity_rps]
        if math.isfinite(api.break_even_rps):
            ends.append(api.break_even_rps * 1.5)
        return min(max(ends), MAX_STEPS * api.replica_capacity_rps)


def api_cost_view(tier_plan: TierPlan, note: str | None) -> ApiCostView:
    """The chart's data from a tier's plan; `note` is the report's api_note for the tier."""
    api = tier_plan.cost.api if tier_plan.feasible and tier_plan.cost is not None else None
    if api is None or api.replica_capacity_rps <= 0:
        return ApiCostView(tier_plan.tier, note=note or "no self-hosted fleet to compare")
    return ApiCostView(tier_plan.tier, api=api, replica_gpus=tier_plan.config.tp * tier_plan.config.pp)


class ApiCostChart(ThemedPlot):
    """Monthly cost against mean load for the selected tier: self-hosted (steps) against the API."""

    view: reactive[ApiCostView | None] = reactive(None, always_update=True, init=False)

    def watch_view(self) -> None:
        self.replot()

    def draw(self) -> None:
        plt, v = self.plt, self.view
        if v is None or v.note:  # before the first plan, or nothing to compare
            plt.title(f"{v.tier}: self-hosted vs API $/month" if v else "self-hosted vs API: computing…")
            if v:
                self.message(v.note)
            return
        api = v.api
        plt.title(f"{v.tier}: $/month vs load, self-hosted ({v.replica_gpus}-GPU replicas) vs API ({api.quote.label()} $/M tok)")
        x_hi = v.x_max()
        capacity = api.replica_capacity_rps
        xs, ys = [], []
        for n in range(1, max(math.ceil(x_hi / capacity - 1e-9), 1) + 1):  # each replica from the load that needs it
            left, right = (n - 1) * capacity, min(n * capacity, x_hi)
            xs += [left, right]
            ys += [api.self_hosted_usd_month_at((left + right) / 2)] * 2
        api_hi = api.api_usd_month_at(x_hi)
        y_hi = max(max(ys), api_hi, 1.0) * 1.12
        own_colour, api_colour, now = self.color("primary"), self.color("success"), self.color("warning")
        plt.plot(xs, ys, marker=MARKER, color=own_colour, label="self-hosted")
        plt.plot([0.0, x_hi], [0.0, api_hi], marker=MARKER, color=api_colour, label="API")
        background = self.color("surface")

        def label(text: str, x: float, y: float, colour: tuple[int, int, int]) -> None:
            """Text beside a point, on the side with room."""
            right = x > x_hi / 2
            offset = x_hi / 80
            plt.text(text, x - offset if right else x + offset, y, color=colour, background=background,
                     alignment="right" if right else "left")

        rate, even = api.mean_rate_rps, api.break_even_rps
        if 0 < rate <= x_hi:
            plt.vertical_line(rate, color=now)
            label(f"now {rate:,.3g} req/s", rate, y_hi * 0.7, now)  # below the legend
        if math.isfinite(even) and even <= x_hi:
            y = api.api_usd_month_at(even)
            plt.scatter([even], [y], marker="◆", color=self.color("accent"))
            label(f"break-even {even:,.3g} req/s", even, y + y_hi * 0.08, self.color("accent"))
        xt, xl = _nice_ticks(0.0, x_hi, lambda x: f"{x:g}")
        yt, yl = _nice_ticks(0.0, y_hi, _usd_label)
        plt.xticks(xt, xl)
        plt.yticks(yt, yl)
        plt.xlim(0.0, x_hi)
        plt.ylim(0.0, y_hi)
        never = "" if math.isfinite(even) else "; self-hosting never breaks even at this price"
        plt.xlabel(f"mean load, req/s (self-hosting: a step per replica){never}")
