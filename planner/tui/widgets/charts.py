"""Charts, drawn with plotext inside textual-plotext widgets so they follow the app theme.

Axes are logarithmic where the data spans decades; the values are log10-transformed here and
ticks are labelled in plain units, which reads better in a terminal than plotext's log axes.
Series colours come from the theme ($primary, $secondary, $error, ...), re-read on theme change.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

from textual.color import Color
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from planner.report import fmt_sig
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

    def message(self, text: str) -> None:
        """Text in the middle of an empty plot, wrapped to its width."""
        plt = self.plt
        width = max(self.size.width - 12, 20)
        lines = textwrap.wrap(text, width)[:8]
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xticks([], [])
        plt.yticks([], [])
        for i, line in enumerate(lines):
            plt.text(line, 0.02, 0.9 - i * 0.1, color=self.color("foreground"), background=self.color("surface"),
                     alignment="left")


class LatencyChart(ThemedPlot):
    """p-th percentile TTFT and TPOT of the selected tier's fleet against offered load, from idle
    to saturation, with the targets (dashed) and the planned peak rate (vertical)."""

    curve: reactive[LatencyCurve | None] = reactive(None, always_update=True, init=False)

    def watch_curve(self, old: LatencyCurve | None, new: LatencyCurve | None) -> None:
        if new is not None and new == old:
            return  # a price or another tier changed: the same curve, no plotext rebuild
        self.replot()

    def draw(self) -> None:
        plt = self.plt
        c = self.curve
        if c is None:
            plt.title("latency vs load: computing…")
            return
        if not c.rates_rps:
            plt.title(f"{c.tier}: no latency curve")
            self.message(c.note or "the model does not fit")
            return
        plt.title(f"{c.tier}: p{c.ttft_pct:g} TTFT & p{c.tpot_pct:g} TPOT vs load, {c.replicas:,} "
                  f"replica{'s' if c.replicas != 1 else ''}")
        values = [v for v in c.ttft_ms + c.tpot_ms if v > 0]
        values += [v for v in (c.ttft_target_ms, c.tpot_target_ms) if v]
        lo, hi = min(values), max(values)
        lo, hi = lo / 1.3, hi * 1.3
        plt.plot(c.rates_rps, [math.log10(v) for v in c.ttft_ms], marker=MARKER, color=self.color("primary"),
                 label="TTFT")
        plt.plot(c.rates_rps, [math.log10(v) for v in c.tpot_ms], marker=MARKER, color=self.color("success"),
                 label="TPOT")
        background = self.color("surface")
        for name, target, colour in (("TTFT", c.ttft_target_ms, "primary"), ("TPOT", c.tpot_target_ms, "success")):
            if target:
                plt.horizontal_line(math.log10(target), color=self.color(colour))
                plt.text(f"{name} target {_ms_label(target)}", c.saturation_rps * 0.98, math.log10(target),
                         color=self.color(colour), background=background, alignment="right")
        if 0 < c.peak_rps <= c.saturation_rps:
            plt.vertical_line(c.peak_rps, color=self.color("warning"))
        ticks, labels = _decade_ticks(lo, hi, _ms_label)
        plt.yticks(ticks, labels)
        plt.ylim(math.log10(lo), math.log10(hi))
        plt.xlim(0, c.saturation_rps)
        if c.peak_rps > c.saturation_rps:
            plt.xlabel(f"load, req/s: peak {fmt_sig(c.peak_rps)} > saturation {fmt_sig(c.saturation_rps)}")
        else:
            plt.xlabel(f"offered load, req/s (saturation {fmt_sig(c.saturation_rps)}; peak {fmt_sig(c.peak_rps)} ┃)")


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
        plt.title("$/month vs model size, at this load")
        points = [p for p in (self.sweep or []) if p.feasible and p.usd_month]
        chosen = []
        if self.result is not None:
            for t in self.result.data["tiers"]:
                if t["feasible"] and t["usd_month"]:
                    chosen.append((t["tier"], t["params_b"], t["usd_month"]))
        xs = [p.params_b for p in points] + [c[1] for c in chosen]
        ys = [p.usd_month for p in points] + [c[2] for c in chosen]
        if not xs:
            self.message(nothing_to_plot(self.sweep or [], self.result))
            return
        if points:
            plt.scatter([math.log10(p.params_b) for p in points], [math.log10(p.usd_month) for p in points],
                        marker="•", color=self.color("foreground-muted"))
        xlo, xhi = min(xs) / 1.5, max(xs) * 1.5
        middle = (math.log10(xlo) + math.log10(xhi)) / 2
        for tier, params, usd in chosen:
            x, y = math.log10(params), math.log10(usd)
            plt.scatter([x], [y], marker="◆", color=self.color("accent"))
            right = x > middle
            offset = (math.log10(xhi) - math.log10(xlo)) / 40
            plt.text(tier, x - offset if right else x + offset, y, color=self.color("accent"),
                     background=self.color("surface"), alignment="right" if right else "left")
        ylo, yhi = min(ys) / 1.5, max(ys) * 1.5
        xt, xl = _decade_ticks(xlo, xhi, lambda v: f"{v:g}B")
        yt, yl = _decade_ticks(ylo, yhi, _usd_label)
        plt.xticks(xt, xl)
        plt.yticks(yt, yl)
        plt.xlim(math.log10(xlo), math.log10(xhi))
        plt.ylim(math.log10(ylo), math.log10(yhi))
        plt.xlabel("parameters   ◆ chosen tiers  • catalog")


def nothing_to_plot(sweep: list[SweepPoint], result: Result | None) -> str:
    """Why the cost chart has no point: no feasible fleet, or only fleets that cost nothing (a
    log-scale chart has no place for $0)."""
    feasible = [p for p in sweep if p.feasible]
    if result is not None:
        feasible += [t for t in result.data["tiers"] if t["feasible"]]
    if not feasible:
        return "no feasible model at this load"
    return "every feasible fleet costs $0 a month (no load, or a $0 GPU-hour price)"


def _usd_label(v: float) -> str:
    if v >= 1e6:
        return f"${v / 1e6:g}M"
    if v >= 1e3:
        return f"${v / 1e3:g}k"
    return f"${v:g}"


# ---------------------------------------------------------------- best fleets


@dataclass(frozen=True)
class FleetPoint:
    """One sized fleet of the search, as the frontier chart draws it."""

    usd_month: float
    e2e_ms: float
    label: str  # e.g. "3×mi300x TP1"


def _nice_ticks(lo: float, hi: float, label, count: int = 5) -> tuple[list[float], list[str]]:
    """About `count` ticks at 1, 2, 2.5 or 5 x 10^k steps between lo and hi (linear axis)."""
    span = max(hi - lo, 1e-12)
    raw = span / count
    k = 10 ** math.floor(math.log10(raw))
    step = next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= raw)
    first = math.ceil(lo / step) * step
    ticks = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
    return ticks, [label(t) for t in ticks]


def _seconds_label(ms: float) -> str:
    return _ms_label(float(f"{ms:.4g}"))


class FrontierChart(ThemedPlot):
    """Monthly cost against p99 E2E latency of the fleets the search sized exactly: the cost-latency
    frontier (◆, joined: no other fleet is both cheaper and faster), the other ranked fleets (•),
    the fleet highlighted in the table (●) and the tier's fleet in the current plan (▲)."""

    frontier: reactive[list[FleetPoint]] = reactive(list, always_update=True, init=False)
    ranked: reactive[list[FleetPoint]] = reactive(list, always_update=True, init=False)
    highlight: reactive[FleetPoint | None] = reactive(None, always_update=True, init=False)
    now: reactive[FleetPoint | None] = reactive(None, always_update=True, init=False)
    note: reactive[str] = reactive("searching…", init=False)  # shown when there is nothing to draw

    def watch_frontier(self) -> None:
        self.replot()

    def watch_ranked(self) -> None:
        self.replot()

    def watch_highlight(self) -> None:
        self.replot()

    def watch_now(self) -> None:
        self.replot()

    def watch_note(self) -> None:
        self.replot()

    def show(self, frontier: list[FleetPoint], ranked: list[FleetPoint], highlight: FleetPoint | None,
             now: FleetPoint | None = None, note: str = "") -> None:
        """Set everything at once: one replot."""
        self.set_reactive(FrontierChart.frontier, frontier)
        self.set_reactive(FrontierChart.ranked, ranked)
        self.set_reactive(FrontierChart.highlight, highlight)
        self.set_reactive(FrontierChart.now, now)
        self.set_reactive(FrontierChart.note, note)
        self.replot()

    def draw(self) -> None:
        plt = self.plt
        plt.title("$/month vs p99 E2E latency of the fleets sized")
        found = [p for p in (*self.frontier, *self.ranked) if _drawable(p)]
        if not found:
            self.message(self.note or "no fleet meets the targets")
            return
        points = found + ([self.now] if self.now is not None and _drawable(self.now) else [])
        xs, ys = [p.e2e_ms for p in points], [p.usd_month for p in points]
        xlo, xhi = min(xs), max(xs)
        ylo, yhi = min(ys), max(ys)
        # room round the points for their labels; a single point gets a window of its own size
        xpad = (xhi - xlo) * 0.25 or xlo * 0.1
        ypad = (yhi - ylo) * 0.15 or ylo * 0.1
        xlo, xhi, ylo, yhi = max(xlo - xpad, 0), xhi + xpad, max(ylo - ypad, 0), yhi + ypad
        background = self.color("surface")
        offset = (xhi - xlo) / 60

        # approximate character cells of the plot area (axes and titles take about 7 columns, 4 rows)
        cols, rows = max(self.size.width - 7, 10), max(self.size.height - 4, 4)
        taken: list[tuple[float, float, float]] = []  # (row, first column, last column) of drawn labels

        def label(p: FleetPoint, text: str, colour: str) -> None:
            """Draw a point's label unless it could overprint one already drawn (the important
            labels are drawn first). Rows are fractional here: two labels less than a row apart can
            land on the same one, whichever way the plot rounds them."""
            right = p.e2e_ms > (xlo + xhi) / 2
            col = (p.e2e_ms - xlo) / (xhi - xlo) * cols
            row = (yhi - p.usd_month) / (yhi - ylo) * rows
            first, last = (col - 1 - len(text), col - 1) if right else (col + 1, col + 1 + len(text))
            if any(abs(r - row) < 1.0 and first <= b + 1 and a - 1 <= last for r, a, b in taken):
                return
            taken.append((row, first, last))
            plt.text(text, p.e2e_ms - offset if right else p.e2e_ms + offset, p.usd_month, color=self.color(colour),
                     background=background, alignment="right" if right else "left")

        frontier = {(p.usd_month, p.e2e_ms) for p in self.frontier}
        others = [p for p in self.ranked if (p.usd_month, p.e2e_ms) not in frontier and _drawable(p)]
        if others:
            plt.scatter([p.e2e_ms for p in others], [p.usd_month for p in others], marker="•",
                        color=self.color("foreground-muted"))
        line = sorted((p for p in self.frontier if _drawable(p)), key=lambda p: p.e2e_ms)
        if len(line) > 1:
            plt.plot([p.e2e_ms for p in line], [p.usd_month for p in line], marker=MARKER,
                     color=self.color("primary"))
        if line:
            plt.scatter([p.e2e_ms for p in line], [p.usd_month for p in line], marker="◆",
                        color=self.color("primary"))
        now = self.now
        if now is not None and _drawable(now):
            plt.scatter([now.e2e_ms], [now.usd_month], marker="▲", color=self.color("warning"))
            label(now, f"now: {now.label}", "warning")
        h = self.highlight
        if h is not None and _drawable(h):
            plt.scatter([h.e2e_ms], [h.usd_month], marker="●", color=self.color("accent"))
            if (h.usd_month, h.e2e_ms) not in frontier:
                label(h, h.label, "accent")
        for p in sorted(line, key=lambda p: p.usd_month):  # the cheapest first: it is the answer
            label(p, p.label, "primary")
        xt, xl = _nice_ticks(xlo, xhi, _seconds_label)
        yt, yl = _nice_ticks(ylo, yhi, _usd_label)
        plt.xticks(xt, xl)
        plt.yticks(yt, yl)
        plt.xlim(xlo, xhi)
        plt.ylim(ylo, yhi)
        plt.xlabel("p99 E2E latency   ◆ frontier  • other ranked  ● highlighted  ▲ current plan")


def _drawable(p: FleetPoint) -> bool:
    return math.isfinite(p.e2e_ms) and math.isfinite(p.usd_month) and p.usd_month > 0
