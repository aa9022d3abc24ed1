"""Charts, drawn with plotext inside textual-plotext widgets so they follow the app theme.

Axes are logarithmic where the data spans decades; the values are log10-transformed here and
ticks are labelled in plain units, which reads better in a terminal than plotext's log axes.
Series colours come from the theme ($primary, $secondary, $error, ...), re-read on theme change.
"""

from __future__ import annotations

import math

from textual.color import Color
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from planner.tui.compute import LatencyCurve, Result, SweepPoint

MARKER = "hd"  # block glyphs: braille misaligns in SVG screenshots


def _ms_label(ms: float) -> str:
    return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms:g}ms"


def _decade_ticks(lo: float, hi: float, label) -> tuple[list[float], list[str]]:
    """Ticks at 1, 2, 5 x 10^k between lo and hi, as log10 positions and labels."""
    ticks, labels = [], []
    k = math.floor(math.log10(lo))
    while 10**k <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10**k
            if lo * 0.9999 <= v <= hi * 1.0001:
                ticks.append(math.log10(v))
                labels.append(label(v))
        k += 1
    if len(ticks) > 6:  # keep the decades only
        keep = [i for i, lab in enumerate(labels) if lab.lstrip("$").startswith("1")]
        ticks, labels = [ticks[i] for i in keep], [labels[i] for i in keep]
    return ticks, labels


class ThemedPlot(PlotextPlot):
    """A PlotextPlot that redraws its data when the app theme changes."""

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.replot())
        self.replot()

    def color(self, variable: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable) or self.app.theme_variables.get("foreground", "white")
        return Color.parse(value).rgb

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.draw()
        self.refresh()

    def draw(self) -> None:  # pragma: no cover - overridden
        pass


class LatencyChart(ThemedPlot):
    """p-th percentile TTFT and TPOT of the selected tier's fleet against offered load, from idle
    to saturation, with the targets (dashed) and the planned peak rate (vertical)."""

    curve: reactive[LatencyCurve | None] = reactive(None, always_update=True, init=False)

    def watch_curve(self) -> None:
        self.replot()

    def draw(self) -> None:
        plt = self.plt
        c = self.curve
        if c is None:
            plt.title("latency vs load: computing…")
            return
        if not c.rates_rps:
            plt.title(f"{c.tier}: no latency curve")
            plt.xlabel(_wrap(c.note or "the model does not fit", 60))
            return
        plt.title(f"{c.tier}: p{c.ttft_pct:g} TTFT & p{c.tpot_pct:g} TPOT vs load, {c.replicas:,} "
                  f"replica{'s' if c.replicas != 1 else ''}")
        values = [v for v in c.ttft_ms + c.tpot_ms if v > 0]
        values += [v for v in (c.ttft_target_ms, c.tpot_target_ms) if v]
        lo, hi = min(values), max(values)
        lo, hi = lo / 1.3, hi * 1.3
        plt.plot(c.rates_rps, [math.log10(v) for v in c.ttft_ms], marker=MARKER, color=self.color("primary"),
                 label="TTFT")
        plt.plot(c.rates_rps, [math.log10(v) for v in c.tpot_ms], marker=MARKER, color=self.color("secondary"),
                 label="TPOT")
        if c.ttft_target_ms:
            plt.horizontal_line(math.log10(c.ttft_target_ms), color=self.color("primary"))
        if c.tpot_target_ms:
            plt.horizontal_line(math.log10(c.tpot_target_ms), color=self.color("secondary"))
        if 0 < c.peak_rps <= c.saturation_rps:
            plt.vertical_line(c.peak_rps, color=self.color("warning"))
        ticks, labels = _decade_ticks(lo, hi, _ms_label)
        plt.yticks(ticks, labels)
        plt.ylim(math.log10(lo), math.log10(hi))
        plt.xlim(0, c.saturation_rps)
        plt.xlabel(f"offered load, req/s (saturation {c.saturation_rps:,.3g}; peak {c.peak_rps:,.3g} ┃)")


class CostChart(ThemedPlot):
    """Monthly cost of every catalog model at the current load and fleet, against its size; the
    three chosen tier models are the large markers."""

    result: reactive[Result | None] = reactive(None, always_update=True, init=False)
    sweep: reactive[list[SweepPoint] | None] = reactive(None, always_update=True, init=False)

    def watch_result(self) -> None:
        self.replot()

    def watch_sweep(self) -> None:
        self.replot()

    def draw(self) -> None:
        plt = self.plt
        plt.title("monthly cost vs model size (all catalog models, this load)")
        points = [p for p in (self.sweep or []) if p.feasible and p.usd_month]
        chosen = []
        if self.result is not None:
            for t in self.result.data["tiers"]:
                if t["feasible"] and t["usd_month"]:
                    chosen.append((t["tier"], t["params_b"], t["usd_month"]))
        xs = [p.params_b for p in points] + [c[1] for c in chosen]
        ys = [p.usd_month for p in points] + [c[2] for c in chosen]
        if not xs:
            plt.xlabel("no feasible model at this load")
            return
        if points:
            plt.scatter([math.log10(p.params_b) for p in points], [math.log10(p.usd_month) for p in points],
                        marker="•", color=self.color("foreground-muted"), label="catalog")
        for tier, params, usd in chosen:
            plt.scatter([math.log10(params)], [math.log10(usd)], marker="◆", color=self.color("accent"))
            plt.text(f" {tier}", math.log10(params), math.log10(usd), color=self.color("accent"), alignment="left")
        xlo, xhi = min(xs) / 1.5, max(xs) * 1.5
        ylo, yhi = min(ys) / 1.5, max(ys) * 1.5
        xt, xl = _decade_ticks(xlo, xhi, lambda v: f"{v:g}B")
        yt, yl = _decade_ticks(ylo, yhi, _usd_label)
        plt.xticks(xt, xl)
        plt.yticks(yt, yl)
        plt.xlim(math.log10(xlo), math.log10(xhi))
        plt.ylim(math.log10(ylo), math.log10(yhi))
        plt.xlabel("parameters (log)   ◆ chosen tiers   • other catalog models")


def _usd_label(v: float) -> str:
    if v >= 1e6:
        return f"${v / 1e6:g}M"
    if v >= 1e3:
        return f"${v / 1e3:g}k"
    return f"${v:g}"


def _wrap(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

