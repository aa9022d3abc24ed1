"""The results: three tiers side by side, and the detail of the selected tier.

Both widgets take a `compute.Result` as an attribute (set by the screen) and render the JSON the
CLI prints for it (`planner.report.plan_json`), so the numbers are the CLI's.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from textual import events
from textual.content import Content
from textual.css.scalar import Unit
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.widget import Widget
from textual.widgets import Static

from planner.engine.binding import Binding
from planner.engine.specs import TIERS
from planner.report import fmt_ms, fmt_num, unmeasured_text
from planner.tui.columns import MISSED, ROWS, status
from planner.tui.compute import Result


@dataclass(frozen=True)
class DrawnLine:
    """One screen line of a LineDrawn widget: a piece of its text's line `y`, starting at character
    `x` of that line (the offsets Textual's text selection reads, as Content's own rendering sets)."""

    content: Content
    x: int = 0
    y: int = 0


def wrap_lines(content: Content, width: int) -> list[DrawnLine]:
    """The content's lines word-wrapped to `width` (Content.wrap, so exactly as a Static wraps)."""
    out = []
    for y, line in enumerate(content.split(allow_blank=True)):
        x = 0
        for piece in line.wrap(width):
            if piece.plain:  # a piece's text starts where the previous one's ended, less trailing spaces
                x = line.plain.index(piece.plain, x)
            out.append(DrawnLine(piece, x, y))
            x += len(piece.plain)
    return out


class LineDrawn(Widget):
    """A widget drawn line by line (Textual's line API) from DrawnLines it lays out itself.

    Lines are styled once per change of lines, width or theme, not every frame, and without
    Content's general render pipeline: the table and the detail drawn as Content cost 4-7 ms of
    every results frame (a tenth of a keystroke's budget), and the detail was wrapped twice, once
    to measure its height. Subclasses set their lines with `set_lines`."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._lines: list[DrawnLine] = []
        self._text = Content()
        self._version = 0  # bumped by set_lines
        self._laid_out: tuple | None = None  # what a subclass last laid its lines out for
        self._strips_key: tuple | None = None
        self._strips: list[Strip] = []
        self._blank = Strip.blank(0)

    def set_lines(self, lines: list[DrawnLine], text: Content) -> None:
        """The lines to draw, and the text they show (what a text selection copies)."""
        self._lines, self._text = lines, text
        self._version += 1

    def lines_for(self, width: int) -> list[DrawnLine]:
        """The lines at this content width (subclasses lay out again when it changed)."""
        return self._lines

    def render(self) -> Content:
        """The text: what a text selection copies (frames are drawn by render_line)."""
        return self._text

    def render_lines(self, crop: Region) -> list[Strip]:
        base = self.visual_style
        width = self.size.width  # of the content area (padding is drawn around it)
        lines = self.lines_for(width)
        key = (self._version, width, base, self.app.theme)
        if key != self._strips_key:  # once per frame at most, not per line: Textual's attributes are not free
            self._strips = [strip.crop_extend(0, width, base.rich_style) for strip in line_strips(lines, base)]
            self._blank = Strip.blank(width, base.rich_style)
            self._strips_key = key
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        return self._strips[y] if y < len(self._strips) else self._blank


def line_strips(lines: list[DrawnLine], base: VisualStyle) -> list[Strip]:
    """DrawnLines as Strips, each styled as Content's renderer styles it: its styles over the
    widget's own, with the cell offsets text selection reads."""
    strips = []
    for line in lines:
        segments, x = [], line.x
        for text, style in line.content.render(base, end="", parse_style=VisualStyle.parse):
            segments.append(Segment(text, (base + style).rich_style_with_offset(x, line.y)))
            x += len(text)
        strips.append(Strip(segments, line.content.cell_length))
    return strips


class TierTable(LineDrawn):
    """Rows of ROWS, one column per tier; missed targets are marked ✗ in the error colour and the
    selected tier's column is highlighted. Click a column (or press the switch-tier key) to select
    a tier. One line-drawn block of text: a widget per cell made start-up and updates slower."""

    result: reactive[Result | None] = reactive(None, always_update=True, init=False)
    selected: reactive[str] = reactive("medium", init=False)

    @dataclass
    class Selected(Message):
        tier: str

    def layout_widths(self, width: int | None = None) -> tuple[int, int]:
        """(label column, tier column) widths for a width (default: the current one)."""
        width = max(self.size.width if width is None else width, 30)
        label = 13 if width >= 56 else 11
        return label, max((width - label - 3) // 3, 4)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(ROWS) + 1

    def lines_for(self, width: int) -> list[DrawnLine]:
        key = (self.result, self.selected, width)
        if key != self._laid_out:
            lines = self.table_lines(width)
            self.set_lines([DrawnLine(line, 0, y) for y, line in enumerate(lines)], Content("\n").join(lines))
            self._laid_out = key
        return self._lines

    def table_lines(self, width: int) -> list[Content]:
        label_w, col_w = self.layout_widths(width)
        lines = [self._header(label_w, col_w)]
        if self.result is None:
            return lines
        slo = self.result.plan.scenario.slo
        views = self.result.views
        for row in ROWS:
            parts: list = [(_fit(row.label, label_w).ljust(label_w), "$text-muted")]
            for tier in TIERS:
                cell = row.cell(views[tier], slo)
                style = "bold $error" if cell.missed else ("$text-disabled" if cell.dim else "")
                if tier == self.selected:
                    style = f"{style} on $boost".strip()
                parts += [" ", (_fit(cell.text, col_w).rjust(col_w), style)]
            lines.append(Content.assemble(*parts))
        return lines

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


class TierDetail(LineDrawn):
    """Memory per GPU, the active bound and the binding constraint of the selected tier: a Static's
    word-wrapped text, laid out once per plan; its height is the number of wrapped lines."""

    result: reactive[Result | None] = reactive(None, always_update=True, init=False)
    tier: reactive[str] = reactive("medium", init=False)

    def watch_result(self) -> None:
        self.refresh_detail()

    def watch_tier(self) -> None:
        self.refresh_detail()

    def on_resize(self) -> None:
        self.refresh_detail()

    def lines_for(self, width: int) -> list[DrawnLine]:
        return self._lay_out(width)

    def _lay_out(self, content_width: int) -> list[DrawnLine]:
        key = (self.result, self.tier, content_width)
        if key != self._laid_out and self.result is not None and content_width > 0:
            text = detail_content(self.result, self.tier, max(content_width, 20))
            self.set_lines(wrap_lines(text, content_width), text)
            self._laid_out = key
        return self._lines

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lay_out(width))

    def refresh_detail(self) -> None:
        """Lay out the new detail; the screen is laid out again only if that changes the height."""
        if self.result is None or not self.is_mounted:
            return
        width = self.content_region.width
        if not width:
            self.refresh(layout=True)
            return
        height = max(len(self._lay_out(width)), _min_content_height(self))
        self.refresh(layout=height != self.content_region.height)


def update_in_place(widget: Static, content) -> None:
    """Static.update, with a reflow of the screen only when the new content changes the widget's
    height (an auto-height widget reflowed the whole screen on every keystroke: most of the
    redraw's time). A min-height the content stays under keeps the height as it is."""
    width = widget.content_region.width
    widget.update(content, layout=False)
    if not widget.is_mounted or not width:
        widget.refresh(layout=True)
        return
    height = max(widget.get_content_height(widget.content_region.size, widget.screen.size, width),
                 _min_content_height(widget))
    if height != widget.content_region.height:
        widget.refresh(layout=True)


def _min_content_height(widget: Widget) -> int:
    """The content height a min-height in cells holds the widget's box to (0 without one)."""
    low = widget.styles.min_height
    if low is None or low.unit != Unit.CELLS:
        return 0
    return max(int(low.value) - widget.styles.gutter.height, 0)


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
    t = result.views[tier]
    slo = result.plan.scenario.slo
    gpu = t.gpu
    kind = status(t)
    lines: list[Content] = []
    head_style = "bold $error" if kind != "ok" else "bold $accent"
    lines.append(Content.assemble((tier.capitalize(), head_style), " · ", (t["model"], "bold"),
                                  f" · {t['params_b']:,.1f}B"))
    pp = f" × PP{t['pp']}" if t["pp"] > 1 else ""
    weights = f"{t['weights']} weights" + (" (auto)" if t.get("weights_auto") else "")
    if t["feasible"]:
        n = t["replicas"]
        lines.append(Content(f"{t['gpus']:,} × {gpu.id} = {n:,} replica{'s' if n != 1 else ''} × TP{t['tp']}{pp} · "
                             f"{weights} · {t['kv']} KV"))
    else:
        lines.append(Content(f"{gpu.id} · TP{t['tp']}{pp} · {weights} · {t['kv']} KV"))
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
        band = t.get("error_pct") or {}
        if band:
            parts = " · ".join(f"±{v:g}% {k.upper() if k != 'throughput' else k}" for k, v in band.items())
            missing = unmeasured_text(t, gpu.family, t.model_family)
            where = f" (not measured: {missing})" if missing else ""
            lines.append(Content.assemble(("Expected error ", "bold"), parts, (where, "$warning")))
        for caveat in result.data["load"].get("caveats", []):
            lines.append(Content.assemble(("Caveat ", "bold $warning"), (caveat, "$warning")))
    api = api_text(t)
    if api is not None:
        lines.append(api)
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


def api_text(t: dict) -> Content | None:
    """The hosted-API comparison in words: price, bill, which is cheaper and the break-even load
    (per second, and requests and output tokens a month). The price's page is in the JSON."""
    src = t.get("api_source")
    if src is None:
        return Content.assemble(("API ", "bold"), (t.get("api_note") or "", "$text-muted")) if t.get("api_note") else None
    who = "profile" if src["provider"] == "profile" else src["provider"]
    text = (f"{who} ${t['api_usd_per_mtok_input']:g}/${t['api_usd_per_mtok_output']:g} per M tok: "
            f"{_money(t['api_usd_month'] or 0)}/month")
    cheaper = t.get("api_cheaper")
    if cheaper in ("api", "self-hosted") and t.get("usd_month") is not None:
        saved = _money(abs(t["usd_month"] - t["api_usd_month"]))
        text += f"; {'the API' if cheaper == 'api' else 'self-hosting'} is {saved} cheaper"
    if t.get("break_even_rps") is not None:
        text += (f"; break-even {fmt_num(t['break_even_rps'])} req/s = {fmt_num(t['break_even_requests_month'])} req "
                 f"= {fmt_num(t['break_even_mtok_month'] * 1e6)} out tok a month")
    elif cheaper:
        text += "; self-hosting never breaks even at this price"
        if t.get("break_even_usd_per_gpu_hour") is not None and cheaper == "api":
            text += f" (it would at ${t['break_even_usd_per_gpu_hour']:.2f}/GPU-hour)"
    return Content.assemble(("API ", "bold"), text)


def binding_text(t: dict, max_util: float) -> str:
    b = t["binding"]
    n = t["replicas"]
    util = t["utilization"]
    if b == Binding.UTILISATION_CEILING:
        now = f" (now {util:.0%})" if util is not None else ""
        return (f"the utilisation ceiling: {n:,} replica{'s' if n != 1 else ''} at most {max_util:.0%} busy{now}; "
                "latency targets have slack.")
    if b == Binding.ONE_REPLICA:
        now = f" at {util:.0%} busy" if util is not None else ""
        return f"one replica meets every target{now}; the smallest fleet for this model."
    if b == Binding.FLEET_SIZE:
        return f"the fleet limit: {t.get('note', '')}"
    if b == Binding.NO_LOAD:
        return "no load: the rate is 0, so no replicas are needed."
    if b and b.split(" p")[0] in ("TTFT", "TPOT", "E2E"):
        if n == 1 and t.get("note"):  # the target chose the TP degree: a smaller replica misses it
            return f"the {b} target: {t['note']}."
        return f"the {b} target: one replica fewer would miss it."
    return b or "-"
