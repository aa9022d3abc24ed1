"""The results: three tiers side by side, and the detail of the selected tier.

Both widgets take a `compute.Result` as an attribute (set by the screen) and render the JSON the
CLI prints for it (`planner.report.plan_json`), so the numbers are the CLI's.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label, Static

from planner.engine.specs import TIERS
from planner.report import fmt_ms, fmt_usd
from planner.tui.columns import MISSED, ROWS, status
from planner.tui.compute import Result


class TierTable(Widget):
    """Rows of ROWS, one column per tier; missed targets are marked ✗ in the error colour.
    Click a column (or press the switch-tier key) to select a tier."""

    result: reactive[Result | None] = reactive(None, always_update=True, init=False)
    selected: reactive[str] = reactive("medium", init=False)

    @dataclass
    class Selected(Message):
        tier: str

    def compose(self) -> ComposeResult:
        with Grid(id="tier-grid"):
            yield Label("", classes="row-label head")
            for tier in TIERS:
                yield Label(tier, id=f"head-{tier}", classes=f"head tier-{tier}")
            for row in ROWS:
                label = Label(row.label, classes="row-label")
                label.tooltip = row.help
                yield label
                for tier in TIERS:
                    yield Label("", id=f"cell-{row.id}-{tier}", classes=f"cell tier-{tier}")

    def on_mount(self) -> None:
        self.watch_selected(self.selected)

    def watch_selected(self, tier: str) -> None:
        for other in TIERS:
            for label in self.query(f".tier-{other}"):
                label.set_class(other == tier, "-selected")

    def watch_result(self, result: Result | None) -> None:
        if result is None:
            return
        slo = result.plan.scenario.slo
        for tier in TIERS:
            data, plan = result.tier_data(tier), result.tier(tier)
            self.query_one(f"#head-{tier}", Label).set_class(status(data) != "ok", "-bad")
            for row in ROWS:
                cell = row.cell(data, plan, slo)
                label = self.query_one(f"#cell-{row.id}-{tier}", Label)
                label.update(cell.text)
                label.set_class(cell.missed, "-missed")
                label.set_class(cell.dim, "-dim")

    def on_click(self, event: events.Click) -> None:
        widget = event.widget
        if widget is None:
            return
        for tier in TIERS:
            if widget.has_class(f"tier-{tier}"):
                self.post_message(self.Selected(tier))
                return


BOUND_WHY = {
    "memory bandwidth": "each decode step streams the weights and every running sequence's KV cache from "
    "HBM, so step time ≈ bytes ÷ bandwidth. Lower-precision weights or KV help most.",
    "compute": "the batch is large enough that matrix maths, not memory traffic, sets the step time. "
    "fp8 maths or more GPUs per replica help.",
    "interconnect": "tensor-parallel all-reduces dominate the step. A smaller TP degree or a faster link "
    "(NVLink) helps.",
    "overhead": "fixed per-step scheduling and kernel-launch costs dominate (small model or small batch).",
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
        self.update(detail_content(self.result, self.tier, max(self.content_region.width, 20)))


def memory_bar(mem: dict, width: int) -> Content:
    """A stacked bar of weights, KV cache and other memory per GPU, scaled to the usable budget
    (or to the total when the weights alone overflow it)."""
    weights, kv, other = mem.get("weights", 0.0), mem.get("kv", 0.0), mem.get("other", 0.0)
    budget, short = mem.get("budget", 0.0), mem.get("shortfall", 0.0)
    total = max(budget, weights + other, 1e-9)
    parts = [("weights", weights), ("other", other), ("kv", kv)]
    cells = []
    used = 0
    for name, value in parts:
        n = int(round(value / total * width))
        n = min(n, width - used)
        if value > 0 and n == 0 and used < width:
            n = 1
        cells.append(("█" * n, MEMORY_STYLES[name]))
        used += n
    if used < width:
        cells.append(("░" * (width - used), "$foreground-muted"))
    bar = Content.assemble(*cells)
    if short > 0:
        over = int(round(short / total * width))
        marker = max(width - over, 0)
        bar = Content.assemble(bar[:marker], (bar[marker:].plain, MEMORY_STYLES["shortfall"]))
    return bar


def detail_content(result: Result, tier: str, width: int) -> Content:
    t = result.tier_data(tier)
    tp = result.tier(tier)
    slo = result.plan.scenario.slo
    lines: list[Content] = []
    kind = status(t)
    head_style = "bold $error" if kind != "ok" else "bold $accent"
    lines.append(Content.assemble((f"{tier.capitalize()} tier", head_style), " · ", (t["model"], "bold"),
                                  f" · {t['params_b']:,.1f}B params"))
    gpu = tp.gpu
    if t["feasible"]:
        replicas = t["replicas"]
        lines.append(Content(
            f"{t['gpus']:,} × {gpu.id}: {replicas:,} replica{'s' if replicas != 1 else ''} × TP{t['tp']}"
            + (f" × PP{t['pp']}" if t["pp"] > 1 else "") + f" · weights {t['weights']} · KV {t['kv']}"))
    else:
        lines.append(Content(f"{gpu.id} · TP{t['tp']} · weights {t['weights']} · KV {t['kv']}"))
    lines.append(Content(""))
    mem = t["memory_gb_per_gpu"]
    if mem:
        lines.append(Content.assemble(("Memory per GPU", "bold"),
                                      f"  (usable {mem.get('budget', 0):.1f} GB of {gpu.memory_gib:g} GiB)"))
        lines.append(memory_bar(mem, max(width - 2, 10)))
        legend = [("■", MEMORY_STYLES["weights"]), f" weights {mem.get('weights', 0):.1f} GB  ",
                  ("■", MEMORY_STYLES["kv"]), f" KV cache {mem.get('kv', 0):.1f} GB  ",
                  ("■", MEMORY_STYLES["other"]), f" other {mem.get('other', 0):.1f} GB"]
        if mem.get("shortfall", 0) > 0:
            legend += ["  ", (f"{MISSED} {mem['shortfall']:.1f} GB over", MEMORY_STYLES["shortfall"])]
        lines.append(Content.assemble(*legend))
        lines.append(Content(""))
    if not t["feasible"]:
        lines.append(Content.assemble((f"{MISSED} Infeasible: ", "bold $error"), t.get("reason", "")))
    else:
        bound = t["bound"] or ""
        if bound:
            lines.append(Content.assemble(("Bound: ", "bold"), f"decode is {bound} bound: ",
                                          BOUND_WHY.get(bound, "")))
        lines.append(Content.assemble(("Sized by: ", "bold"), binding_text(t, slo.max_utilization)))
        if kind == "overloaded":
            lines.append(Content.assemble((f"{MISSED} Overloaded: ", "bold $error"),
                                          "the offered load is above what this fleet can serve; latency grows "
                                          "without bound. Add replicas or lower the rate."))
        elif kind == "misses":
            lines.append(Content.assemble((f"{MISSED} Misses: ", "bold $error"), ", ".join(t["misses"])))
    alts = t.get("alternatives") or []
    if len(alts) > 1:
        lines.append(Content(""))
        parts: list = [("TP options: ", "bold")]
        for i, a in enumerate(alts):
            if i:
                parts.append(" · ")
            chosen = a["tp"] == t["tp"] and t["feasible"]
            text = (f"TP{a['tp']} {a['gpus']} GPUs {fmt_usd(a['usd_month'])}" if a["feasible"]
                    else f"TP{a['tp']} {MISSED}")
            parts.append((text + (" ✓" if chosen else ""), "bold $accent" if chosen else ""))
        lines.append(Content.assemble(*parts))
    targets = []
    for name, ms, pct in (("TTFT", slo.ttft_ms, slo.ttft_percentile), ("TPOT", slo.tpot_ms, slo.tpot_percentile),
                          ("E2E", slo.e2e_ms, slo.e2e_percentile)):
        if ms is not None:
            targets.append(f"{name} p{pct:g} ≤ {fmt_ms(ms)}")
    targets.append(f"util ≤ {slo.max_utilization:.0%}")
    lines.append(Content(""))
    lines.append(Content.assemble(("Targets: ", "bold"), " · ".join(targets)))
    return Content("\n").join(lines)


def binding_text(t: dict, max_util: float) -> str:
    b = t["binding"]
    n = t["replicas"]
    util = t["utilization"]
    if b == "utilisation ceiling":
        now = f" (now {util:.0%})" if util is not None else ""
        return (f"the utilisation ceiling: {n:,} replica{'s' if n != 1 else ''} keep each at most {max_util:.0%} "
                f"busy{now}; every latency target has slack.")
    if b == "no load":
        return "no load: the rate is 0, so no replicas are needed."
    if b and b.split(" p")[0] in ("TTFT", "TPOT", "E2E"):
        return f"the {b} target: with one replica fewer it would be missed."
    return b or "-"
