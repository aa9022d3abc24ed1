"""The results: three tiers side by side, and the detail of the selected tier.

Both widgets take a `compute.Result` as an attribute (set by the screen) and render the JSON the
CLI prints for it (`planner.report.plan_json`), so the numbers are the CLI's.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from planner.engine.specs import TIERS
from planner.report import fmt_ms
from planner.tui.columns import MISSED, ROWS, status
from planner.tui.compute import Result


class TierTable(Widget):
    """Rows of ROWS, one column per tier; missed targets are marked ✗ in the error colour and the
    selected tier's column is highlighted. Click a column (or press the switch-tier key) to select
    a tier. Drawn as one block of text: a widget per cell made start-up and updates slower."""

    result: reactive[Result | None] = reactive(None, always_update=True, init=False)
    selected: reactive[str] = reactive("medium", init=False)

    @dataclass
    class Selected(Message):
        tier: str

    def layout_widths(self) -> tuple[int, int]:
        """(label column, tier column) widths for the current size."""
        width = max(self.size.width, 30)
        label = 13 if width >= 56 else 11
        return label, max((width - label - 3) // 3, 4)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(ROWS) + 1

    def render(self) -> Content:
        label_w, col_w = self.layout_widths()
        lines = [self._header(label_w, col_w)]
        if self.result is None:
            return Content("\n").join(lines)
        slo = self.result.plan.scenario.slo
        cells = {tier: (self.result.tier_data(tier), self.result.tier(tier)) for tier in TIERS}
        for row in ROWS:
            parts: list = [(_fit(row.label, label_w).ljust(label_w), "$text-muted")]
            for tier in TIERS:
                cell = row.cell(*cells[tier], slo)
                style = "bold $error" if cell.missed else ("$text-disabled" if cell.dim else "")
                if tier == self.selected:
                    style = f"{style} on $boost".strip()
                parts += [" ", (_fit(cell.text, col_w).rjust(col_w), style)]
            lines.append(Content.assemble(*parts))
        return Content("\n").join(lines)

    def _header(self, label_w: int, col_w: int) -> Content:
        parts: list = [(" " * label_w, "")]
        for tier in TIERS:
            bad = self.result is not None and status(self.result.tier_data(tier)) != "ok"
            if tier == self.selected:
                style = "bold $text on $accent"
            else:
                style = "bold $error on $panel" if bad else "bold on $panel"
            parts += [" ", (_fit(tier, col_w).center(col_w), style)]
        return Content.assemble(*parts)

    def on_click(self, event: events.Click) -> None:
        label_w, col_w = self.layout_widths()
        column = (event.x - label_w - 1) // (col_w + 1)
        if 0 <= column < len(TIERS) and event.x >= label_w:
            self.post_message(self.Selected(TIERS[column]))


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


BOUND_WHY = {
    "memory bandwidth": "each decode step streams the weights and the KV cache from HBM; lower-precision "
    "weights or KV help most.",
    "compute": "the batch is large enough that matrix maths sets the step time; fp8 maths or more GPUs "
    "per replica help.",
    "interconnect": "tensor-parallel all-reduces dominate the step; a smaller TP or a faster link helps.",
    "overhead": "fixed per-step scheduling and launch costs dominate (small model or batch).",
}

MEMORY_STYLES = {"weights": "$primary", "kv": "$success", "other": "$warning", "shortfall": "$error"}


class TierDetail(Static):
    """Memory per GPU, the active bound and the binding constraint of the selected tier."""

    result: reactive[Result | None] = reactive(None, always_update=True, init=False)
    tier: reactive[str] = reactive("medium", init=False)

    def watch_result(self) -> None:
        self.refresh_detail()

    def watch_tier(self) -> None:
        self.refresh_detail()

    def on_resize(self) -> None:
        self.refresh_detail()

    def refresh_detail(self) -> None:
        if self.result is None or not self.is_mounted:
            return
        update_in_place(self, detail_content(self.result, self.tier, max(self.content_region.width, 20)))


def update_in_place(widget: Static, content) -> None:
    """Static.update, with a reflow of the screen only when the new content's height differs (an
    auto-height widget reflowed the whole screen on every keystroke: most of the redraw's time)."""
    width = widget.content_region.width
    widget.update(content, layout=False)
    if not widget.is_mounted or not width or widget._render().get_height(widget.styles, width) != widget.content_region.height:
        widget.refresh(layout=True)


def memory_bar(mem: dict, width: int) -> Content:
    """A stacked bar of weights, other and KV cache memory per GPU, scaled to the usable budget
    (or to weights + other when they overflow it; the overflow is drawn in the error colour)."""
    weights, kv, other = mem.get("weights", 0.0), mem.get("kv", 0.0), mem.get("other", 0.0)
    budget, short = mem.get("budget", 0.0), mem.get("shortfall", 0.0)
    total = max(budget, weights + other, 1e-9)
    cells: list[tuple[str, str]] = []
    used = 0
    for name, value in (("weights", weights), ("other", other), ("kv", kv)):
        n = min(int(round(value / total * width)), width - used)
        if value > 0 and n == 0 and used < width:
            n = 1
        cells.append(("█" * n, MEMORY_STYLES[name]))
        used += n
    if used < width:
        cells.append(("░" * (width - used), "$foreground-muted"))
    if short > 0:  # recolour the part beyond the budget
        over = int(round(short / total * width))
        plain = "".join(text for text, _ in cells)
        keep = max(len(plain) - over, 0)
        out, pos = [], 0
        for text, style in cells:
            head = text[: max(keep - pos, 0)]
            if head:
                out.append((head, style))
            pos += len(text)
        out.append((plain[keep:], MEMORY_STYLES["shortfall"]))
        cells = out
    return Content.assemble(*cells)


def _money(v: float) -> str:
    if v >= 1e6:
        return f"${v / 1e6:.2g}M"
    if v >= 1e4:
        return f"${v / 1e3:.0f}k"
    if v >= 1e3:
        return f"${v / 1e3:.1f}k"
    return f"${v:.0f}"


def targets_text(slo) -> str:
    targets = []
    for name, ms, pct in (("TTFT", slo.ttft_ms, slo.ttft_percentile), ("TPOT", slo.tpot_ms, slo.tpot_percentile),
                          ("E2E", slo.e2e_ms, slo.e2e_percentile)):
        if ms is not None:
            targets.append(f"{name} p{pct:g} ≤ {fmt_ms(ms)}")
    targets.append(f"util ≤ {slo.max_utilization:.0%}")
    return ", ".join(targets)


def detail_content(result: Result, tier: str, width: int) -> Content:
    t = result.tier_data(tier)
    tp = result.tier(tier)
    slo = result.plan.scenario.slo
    gpu = tp.gpu
    kind = status(t)
    lines: list[Content] = []
    head_style = "bold $error" if kind != "ok" else "bold $accent"
    lines.append(Content.assemble((tier.capitalize(), head_style), " · ", (t["model"], "bold"),
                                  f" · {t['params_b']:,.1f}B"))
    pp = f" × PP{t['pp']}" if t["pp"] > 1 else ""
    if t["feasible"]:
        n = t["replicas"]
        lines.append(Content(f"{t['gpus']:,} × {gpu.id} = {n:,} replica{'s' if n != 1 else ''} × TP{t['tp']}{pp} · "
                             f"{t['weights']} weights · {t['kv']} KV"))
    else:
        lines.append(Content(f"{gpu.id} · TP{t['tp']}{pp} · {t['weights']} weights · {t['kv']} KV"))
    mem = t["memory_gb_per_gpu"]
    if mem:
        lines.append(Content.assemble(("Memory per GPU", "bold"), f" of {mem.get('budget', 0):.1f} GB usable "
                                      f"({gpu.memory_gib:g} GiB)"))
        lines.append(memory_bar(mem, max(width, 10)))
        legend: list = [("■", MEMORY_STYLES["weights"]), f" weights {mem.get('weights', 0):.1f}  ",
                        ("■", MEMORY_STYLES["kv"]), f" KV {mem.get('kv', 0):.1f}  ",
                        ("■", MEMORY_STYLES["other"]), f" other {mem.get('other', 0):.1f} GB"]
        if mem.get("shortfall", 0) > 0:
            legend += ["  ", (f"{MISSED} {mem['shortfall']:.1f} GB over", "bold " + MEMORY_STYLES["shortfall"])]
        lines.append(Content.assemble(*legend))
    if not t["feasible"]:
        lines.append(Content.assemble((f"{MISSED} Infeasible: ", "bold $error"), t.get("reason", "")))
    else:
        bound = t["bound"] or ""
        if bound:
            lines.append(Content.assemble(("Bound ", "bold"), (bound, "$accent"), ": ", BOUND_WHY.get(bound, "")))
        lines.append(Content.assemble(("Sized by ", "bold"), binding_text(t, slo.max_utilization)))
        if kind == "overloaded":
            lines.append(Content.assemble((f"{MISSED} Overloaded: ", "bold $error"),
                                          "the load is above what this fleet can serve, so queues and latency "
                                          "grow without bound. Add GPUs or lower the rate."))
        elif kind == "misses":
            lines.append(Content.assemble((f"{MISSED} Misses ", "bold $error"), ", ".join(t["misses"])))
        band = t.get("error_band_pct") or {}
        if band:
            parts = " · ".join(f"±{v:g}% {k.upper() if k != 'throughput' else k}" for k, v in band.items())
            where = "" if t.get("validated") else f" (no measurements of {gpu.family} GPUs or of {tp.model.family} models: a guess)"
            lines.append(Content.assemble(("Expected error ", "bold"), parts, (where, "$warning")))
        for caveat in result.data["load"].get("caveats", []):
            lines.append(Content.assemble(("Caveat ", "bold $warning"), (caveat, "$warning")))
    alts = t.get("alternatives") or []
    if len(alts) > 1:
        parts: list = [("TP options ", "bold")]
        for i, a in enumerate(alts):
            if i:
                parts.append(" · ")
            chosen = a["tp"] == t["tp"] and t["feasible"]
            if a.get("sized") is False:  # ruled out by its capacity alone: a lower bound
                text = f"{a['tp']}: ≥{a['gpus']} GPUs"
            else:
                text = f"{a['tp']}: {a['gpus']} GPUs {_money(a['usd_month'])}" if a["feasible"] else f"{a['tp']}: {MISSED}"
            parts.append((text + (" ✓" if chosen else ""), "bold $accent" if chosen else ""))
        lines.append(Content.assemble(*parts))
    return Content("\n").join(lines)


def binding_text(t: dict, max_util: float) -> str:
    b = t["binding"]
    n = t["replicas"]
    util = t["utilization"]
    if b == "utilisation ceiling":
        now = f" (now {util:.0%})" if util is not None else ""
        return (f"the utilisation ceiling: {n:,} replica{'s' if n != 1 else ''} at most {max_util:.0%} busy{now}; "
                "latency targets have slack.")
    if b == "one replica suffices":
        now = f" at {util:.0%} busy" if util is not None else ""
        return f"one replica meets every target{now}; the smallest fleet for this model."
    if b == "fleet size":
        return f"the fleet limit: {t.get('note', '')}"
    if b == "no load":
        return "no load: the rate is 0, so no replicas are needed."
    if b and b.split(" p")[0] in ("TTFT", "TPOT", "E2E"):
        return f"the {b} target: one replica fewer would miss it."
    return b or "-"
