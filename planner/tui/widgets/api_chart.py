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
    from planner.engine.plan import TierPlan

MAX_STEPS = 2000  # replicas drawn at most: past that the staircase is a line at any terminal width


@dataclass(frozen=True)
class ApiCostView:
    """What the chart draws for one tier (note: why there is nothing to draw)."""

    tier: str
    note: str = ""
    rate_rps: float = 0.0  # the planned mean load
    replica_usd_month: float = 0.0
    replica_capacity_rps: float = 0.0
    api_usd_month_per_rps: float = 0.0
    break_even_rps: float = math.inf
    provider: str = ""
    replica_gpus: int = 0

    def self_hosted_usd_month(self, rate_rps: float) -> float:
        if rate_rps <= 0:
            return 0.0
        return math.ceil(rate_rps / self.replica_capacity_rps - 1e-9) * self.replica_usd_month

    def x_max(self) -> float:
        """The load axis: past the planned load, the break-even load and three replicas' worth."""
        ends = [self.rate_rps * 1.5, 3 * self.replica_capacity_rps]
        if math.isfinite(self.break_even_rps):
            ends.append(self.break_even_rps * 1.5)
        return min(max(ends), MAX_STEPS * self.replica_capacity_rps)


def api_cost_view(tp: TierPlan, note: str | None) -> ApiCostView:
    """The chart's data from a tier's plan; `note` is the report's api_note for the tier."""
    api = tp.cost.api if tp.feasible and tp.cost is not None else None
    if api is None or api.replica_capacity_rps <= 0:
        return ApiCostView(tp.tier, note=note or "no self-hosted fleet to compare")
    return ApiCostView(tp.tier, rate_rps=api.mean_rate_rps, replica_usd_month=api.replica_usd_month,
                       replica_capacity_rps=api.replica_capacity_rps,
                       api_usd_month_per_rps=api.api_usd_month_at(1.0), break_even_rps=api.break_even_rps,
                       provider=api.quote.label(), replica_gpus=tp.config.tp * tp.config.pp)


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
        plt.title(f"{v.tier}: $/month vs load, self-hosted ({v.replica_gpus}-GPU replicas) vs API ({v.provider} $/M tok)")
        x_hi = v.x_max()
        steps = max(math.ceil(x_hi / v.replica_capacity_rps - 1e-9), 1)
        xs, ys = [], []
        for n in range(1, steps + 1):  # each replica's price from the load that needs it
            xs += [(n - 1) * v.replica_capacity_rps, min(n * v.replica_capacity_rps, x_hi)]
            ys += [n * v.replica_usd_month] * 2
        api_hi = v.api_usd_month_per_rps * x_hi
        y_hi = max(max(ys), api_hi, 1.0) * 1.12
        own, api, now = self.color("primary"), self.color("success"), self.color("warning")
        plt.plot(xs, ys, marker=MARKER, color=own, label="self-hosted")
        plt.plot([0.0, x_hi], [0.0, api_hi], marker=MARKER, color=api, label="API")
        background = self.color("surface")

        def label(text: str, x: float, y: float, colour: tuple[int, int, int]) -> None:
            """Text beside a point, on the side with room."""
            right = x > x_hi / 2
            offset = x_hi / 80
            plt.text(text, x - offset if right else x + offset, y, color=colour, background=background,
                     alignment="right" if right else "left")

        if 0 < v.rate_rps <= x_hi:
            plt.vertical_line(v.rate_rps, color=now)
            label(f"now {v.rate_rps:,.3g} req/s", v.rate_rps, y_hi * 0.7, now)  # below the legend
        if math.isfinite(v.break_even_rps) and v.break_even_rps <= x_hi:
            y = v.api_usd_month_per_rps * v.break_even_rps
            plt.scatter([v.break_even_rps], [y], marker="◆", color=self.color("accent"))
            label(f"break-even {v.break_even_rps:,.3g} req/s", v.break_even_rps, y + y_hi * 0.08, self.color("accent"))
        xt, xl = _nice_ticks(0.0, x_hi, lambda x: f"{x:g}")
        yt, yl = _nice_ticks(0.0, y_hi, _usd_label)
        plt.xticks(xt, xl)
        plt.yticks(yt, yl)
        plt.xlim(0.0, x_hi)
        plt.ylim(0.0, y_hi)
        never = "" if math.isfinite(v.break_even_rps) else "; self-hosting never breaks even at this price"
        plt.xlabel(f"mean load, req/s (self-hosting: a step per replica){never}")
