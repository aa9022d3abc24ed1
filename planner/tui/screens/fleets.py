"""The Best fleets view: the cheapest fleets for one tier over the whole GPU catalog (what
`planner search` prints), their cost-latency frontier, and a way to apply one to the profile.

The engine's `search` runs in a thread worker, one search at a time (it cannot be interrupted, so a
tier asked for meanwhile waits for the running one); results are cached per inputs and tier, so
switching back to a tier or reopening the view is immediate. Choosing a row dismisses the screen
with a `FleetChoice`, which the main screen applies to its profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, Tab, Tabs

from planner.engine.memo import Memo
from planner.engine.numbers import estimated_usd
from planner.engine.specs import TIERS
from planner.profile import Profile
from planner.report import fmt_ms, fmt_usd
from planner.service import ComputeError, FleetChoice, FleetRow, FleetSearch, excluded_text, fleet_search, search_key
from planner.tui import commands
from planner.tui.compute import Result
from planner.tui.frames import PromptFrames
from planner.tui.widgets.charts import FleetPoint, FrontierChart
from planner.tui.widgets.header import TitleHeader

COLUMNS: tuple[tuple[str, str], ...] = (  # (label, justify)
    ("#", "right"), ("model", "left"), ("GPU", "left"), ("weights/KV", "left"), ("TP", "right"),
    ("replicas", "right"), ("GPUs", "right"), ("$/month", "right"), ("TTFT p99", "right"), ("TPOT p99", "right"),
    ("E2E p99", "right"), ("sized by", "left"), ("seqs", "right"), ("budget", "right"),
)
# what the columns mean: the help screen lists these
COLUMN_HELP: tuple[tuple[str, str], ...] = (
    ("#", "rank by monthly cost (then p99 E2E); ★ marks fleets on the cost / p99 E2E frontier"),
    ("model", "the tier's model (every catalog model of the tier with Ctrl+A)"),
    ("GPU", "the GPU type; ? marks a fleet whose GPU family, model family or engine on it was never measured"),
    ("weights/KV", "weight and KV-cache precision"),
    ("TP", "tensor-parallel GPUs per replica"),
    ("replicas, GPUs", "replicas the peak load needs, and GPUs in all"),
    ("$/month", "GPUs × $/GPU-hour × hours a month, as in the plan; ~ where the GPU's catalog price is an estimate "
                "(no quoted on-demand price)"),
    ("TTFT p99, TPOT p99, E2E p99", "latency of one replica at its share of the peak load"),
    ("sized by", "what set the replica count: a latency target, the utilisation ceiling, or one replica suffices"),
    ("seqs, budget", "the engine's max running sequences and max batched tokens per step"),
)


# Searches of recently seen inputs (worker threads write, the UI thread reads).
SEARCHES: Memo[str, FleetSearch] = Memo(24)


def fleet_point(row: FleetRow) -> FleetPoint:
    return FleetPoint(row.usd_month, row.e2e_p99_ms, row.label)


# ---------------------------------------------------------------- the screen


@dataclass
class SearchDone(Message):
    key: str
    found: FleetSearch


@dataclass
class SearchFailed(Message):
    key: str
    error: str


def _cell(text: str, justify: str, style: str = "") -> Text:
    return Text(text, style=style, justify=justify, no_wrap=True)  # type: ignore[arg-type]


class FleetsScreen(PromptFrames, Screen[FleetChoice | None]):
    """Best fleets for one tier: a ranked table, the exclusions and the cost-latency frontier."""

    BINDINGS = commands.bindings(commands.FLEETS_COMMANDS, "fleets")
    COMMANDS = {commands.FleetsCommands}
    HELP = "The cheapest fleets for the tier over every GPU type. Enter applies the highlighted one."
    AUTO_FOCUS = "#fleets-table"

    def __init__(self, profile: Profile, base_dir: Path, tier: str, current: Result | None = None) -> None:
        super().__init__(id="fleets")
        self.profile = profile
        self.base_dir = base_dir
        self.tier = tier
        self.current = current  # the main screen's plan, for the "now" figure
        self.all_models = False
        self.found: FleetSearch | None = None  # on screen
        self.error = ""
        self._in_worker: str | None = None  # key of the search in the worker
        self._wanted = ""  # key of the search the view shows (or waits for)

    def compose(self) -> ComposeResult:
        yield TitleHeader()
        tabs = Tabs(*(Tab(t, id=f"tier-{t}") for t in TIERS), active=f"tier-{self.tier}", id="fleets-tiers")
        tabs.can_focus = False  # the table keeps the focus; Ctrl+T or a click switches tiers
        yield tabs
        with VerticalScroll(id="fleets-body", can_focus=False):
            yield Static("", id="fleets-summary")
            yield DataTable(id="fleets-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="fleets-excluded")
            yield FrontierChart(id="fleets-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Best fleets · {self.profile.name}"
        table = self.query_one(DataTable)
        for label, justify in COLUMNS:
            table.add_column(_cell(label, justify), key=label)
        table.focus()
        self.start()

    # ------------------------------------------------------------------ searching

    @property
    def key(self) -> str:
        return search_key(self.profile, self.base_dir, self.tier, self.all_models)

    @property
    def searching(self) -> bool:
        """A search is running or waiting for the running one (tests wait on it)."""
        return self._in_worker is not None or self.found is None and not self.error

    def start(self) -> None:
        """Show the current tier's search: from the cache, else searched in the worker."""
        key = self._wanted = self.key
        self.error = ""
        if (hit := SEARCHES.get(key)) is not None:
            self.show(hit)
            return
        self.found = None
        self.show_searching()
        if self._in_worker is None:
            self._in_worker = key
            self._search_worker(key, self.profile, self.base_dir, self.tier, self.all_models)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False, description="fleet search")
    def _search_worker(self, key: str, profile: Profile, base_dir: Path, tier: str, all_models: bool) -> None:
        try:
            found = fleet_search(profile, base_dir, tier, all_models)
        except ComputeError as exc:
            self.post_message(SearchFailed(key, str(exc)))
            return
        except Exception as exc:  # an engine bug must not take the UI down
            self.post_message(SearchFailed(key, f"internal error ({type(exc).__name__}): {exc}"))
            return
        SEARCHES.put(key, found)
        self.post_message(SearchDone(key, found))

    def on_search_done(self, message: SearchDone) -> None:
        self._in_worker = None
        if message.key == self._wanted:
            self.show(message.found)
        else:  # another tier (or model set) was asked for meanwhile: now its turn
            self.start()

    def on_search_failed(self, message: SearchFailed) -> None:
        self._in_worker = None
        if message.key != self._wanted:
            self.start()
            return
        self.error = message.error
        self.found = None
        table = self.query_one(DataTable)
        table.loading = False
        table.clear()
        self.query_one("#fleets-summary", Static).update(Content.assemble((f"✗ {message.error}", "$error")))
        self.query_one("#fleets-excluded", Static).update("")
        self.query_one(FrontierChart).show([], [], None, note="no search: the inputs cannot be planned")

    # ------------------------------------------------------------------ showing

    def _models_text(self) -> str:
        if self.all_models:
            return f"every {self.tier} catalog model"
        return getattr(self.profile.models, self.tier)

    def show_searching(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        table.loading = True
        self.query_one("#fleets-summary", Static).update(Content.assemble(
            (f"Searching {self._models_text()} on every GPU type", "bold"),
            ("  (precisions × TP × engine limits, then exact sizing of the cheapest)…", "$text-muted")))
        self.query_one("#fleets-excluded", Static).update("")
        self.query_one(FrontierChart).show([], [], None, note=f"searching {self.tier}…")

    def show(self, found: FleetSearch) -> None:
        self.log.info(f"fleet search {found.tier}: {found.screened:,} screened, {found.exact_sizings} sized, "
                      f"{found.seconds:.2f} s")
        self.found = found
        table = self.query_one(DataTable)
        table.loading = False
        table.clear()
        for i, r in enumerate(found.rows, 1):
            table.add_row(*self._cells(i, r), key=str(i))
        self.query_one("#fleets-summary", Static).update(self._summary(found))
        self.query_one("#fleets-excluded", Static).update(self._exclusions(found))
        table.move_cursor(row=0)
        table.focus()  # a loading table cannot take the focus: it gets it now
        self._chart()

    def _cells(self, rank: int, r: FleetRow) -> list[Text]:
        values = (
            f"{rank}{'★' if r.frontier else ' '}", r.model, r.gpu if r.validated else f"{r.gpu} ?", f"{r.weights}/{r.kv}",
            str(r.tp), f"{r.replicas:,}", f"{r.gpus:,}", estimated_usd(r.usd_month, r.price_estimated), fmt_ms(r.ttft_p99_ms),
            fmt_ms(r.tpot_p99_ms),
            fmt_ms(r.e2e_p99_ms), r.binding, _opt(r.max_num_seqs), _opt(r.max_num_batched_tokens),
        )
        return [_cell(v, justify, "bold" if label == "$/month" else "")
                for v, (label, justify) in zip(values, COLUMNS)]

    def _summary(self, found: FleetSearch) -> Content:
        what = (f"{len(found.models)} {self.tier} models" if self.all_models and len(found.models) != 1
                else found.models[0] if found.models else self.tier)
        parts: list = [(f"{what} on {found.gpu_types} GPU types: ", "bold"),
                       (f"{found.screened:,} configurations screened, {found.exact_sizings} sized exactly", "")]
        now = self._now()
        if now:
            parts += ["   ", ("now: ", "$text-muted"), now]
        return Content.assemble(*parts)

    def _current_tier(self) -> dict | None:
        """The tier in the current plan, if that is the plan of these inputs."""
        if self.current is None or self.current.inputs.profile != self.profile:
            return None
        return self.current.tier_data(self.tier)

    def _now_point(self) -> FleetPoint | None:
        t = self._current_tier()
        if t is None or not t["feasible"] or not t["usd_month"] or not t["gpus"]:
            return None
        return FleetPoint(t["usd_month"], t["e2e_ms"]["p99"], f"{t['gpus']:,}×{t['gpu']} TP{t['tp']}")

    def _now(self) -> str:
        """The tier's fleet in the current plan, in words."""
        t = self._current_tier()
        if t is None:
            return ""
        if not t["feasible"]:
            return f"{t['gpu']}, infeasible"
        return f"{t['gpus']:,}×{t['gpu']} TP{t['tp']} {t['weights']}/{t['kv']}, {fmt_usd(t['usd_month'])}/month"

    def _exclusions(self, found: FleetSearch) -> Content:
        parts: list = []
        if not found.rows:
            parts.append(("✗ no configuration meets the targets", "bold $error"))
        excluded = excluded_text(found)
        if excluded:
            parts += [("  " if parts else "", ""), ("excluded: ", "$text-muted"), excluded]
        if any(r.frontier for r in found.rows):
            parts += [(" · ★ on the cost / p99 E2E frontier", "$text-muted")]
        if any(r.price_estimated for r in found.rows):
            parts += [(" · ~ an estimated GPU price", "$text-muted")]
        warnings = list(found.notes)
        for note in warnings:
            parts += [("\n⚠ ", "$warning"), (note, "$warning")]
        parts += [("\nEnter applies the highlighted fleet: the GPU, precisions, TP and engine limits are shared "
                   "by all three tiers, which are re-planned with them.", "$text-muted")]
        return Content.assemble(*parts)

    def _chart(self) -> None:
        found = self.found
        if found is None:
            return
        table = self.query_one(DataTable)
        row = found.rows[table.cursor_row] if 0 <= table.cursor_row < len(found.rows) else None
        self.query_one(FrontierChart).show([fleet_point(r) for r in found.frontier], [fleet_point(r) for r in found.rows],
                                           fleet_point(row) if row is not None else None, self._now_point(),
                                           "no fleet meets the targets")

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._chart()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_apply()

    @on(Tabs.TabActivated)
    def _tab(self, event: Tabs.TabActivated) -> None:
        self.select_tier(str(event.tab.id).removeprefix("tier-"))

    def select_tier(self, tier: str) -> None:
        if tier != self.tier:
            self.tier = tier
            self.query_one(Tabs).active = f"tier-{tier}"
            self.start()

    # ------------------------------------------------------------------ actions

    def action_apply(self) -> None:
        if not self.is_active:
            return  # a double click selects the row twice; the first choice already closed the view
        if self.found is None or not self.found.rows:
            self.app.bell()
            return
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.found.rows):
            self.dismiss(FleetChoice(self.tier, self.found.rows[row]))

    def action_switch_tier(self) -> None:
        self.select_tier(TIERS[(TIERS.index(self.tier) + 1) % len(TIERS)])

    def action_toggle_all_models(self) -> None:
        self.all_models = not self.all_models
        self.start()

    def action_close(self) -> None:
        self.dismiss(None)


def _opt(value: int | None) -> str:
    return "default" if value is None else f"{value:,}"
