"""The main screen: four input panes on the left, the plan on the right.

The screen owns the state: the last valid Profile, the file it came from and the last computed
Result. Panes post `InputPane.Edited`; a valid edit replaces the profile and starts the plan
worker (a thread, one at a time, the newest inputs win); results come back as messages and are
handed down to the widgets as attributes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.events import ScreenResume
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from planner.engine.specs import TIERS
from planner.profile import Profile
from planner.report import fmt_num, mean_tokens
from planner.tui import commands, gcpause
from planner.tui.compute import (
    SWEEPS,
    ComputeError,
    Evaluate,
    LatencyCurve,
    Result,
    SweepPoint,
    compute,
    cost_sweep,
    latency_curve,
    start_helper,
    sweep_key,
)
from planner.tui.edits import edited_data, place_error, refused_messages, snapped_back_message, validate_with
from planner.tui.frames import PromptFrames
from planner.tui.screens.profile_files import ProfileFiles
from planner.tui.widgets.api_chart import ApiCostChart, api_cost_view
from planner.tui.widgets.charts import CostChart, LatencyChart
from planner.tui.widgets.header import TitleHeader, show_sub_title
from planner.tui.widgets.panes import PANE_CLASSES, InputPane
from planner.tui.widgets.results import TierDetail, TierTable, targets_text, update_in_place

# The cost sweep plans every catalog model (a second or more of CPU on a 2-core machine). It starts
# once the inputs have been still this long, so typing never competes with it for the GIL.
SWEEP_DELAY_S = 0.6
# Charts follow a new plan after this pause, so the frame with the new numbers is drawn first.
CHARTS_DELAY_S = 0.05


@dataclass
class PlanReady(Message):
    generation: int
    result: Result


@dataclass
class PlanFailed(Message):
    generation: int
    error: str


@dataclass
class CurveReady(Message):
    generation: int
    curve: LatencyCurve


@dataclass
class SweepReady(Message):
    key: str
    points: list[SweepPoint]


class PlannerScreen(ProfileFiles, PromptFrames, Screen[None]):
    BINDINGS = commands.bindings()
    COMMANDS = {commands.PlannerCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (130, "-wide")]
    HELP = "Edit the inputs on the left; the plan on the right follows. F1 explains everything."

    tier: reactive[str] = reactive("medium", init=False)

    def __init__(self, profile: Profile, path: Path | None = None, mtime_ns: int | None = None,
                 engine: Evaluate | None = None, width: int | None = None, text: str = "") -> None:
        # Starting with the breakpoint class the first resize would set saves restyling every widget.
        classes = next((name for edge, name in reversed(self.HORIZONTAL_BREAKPOINTS) if (width or 0) >= edge), "")
        super().__init__(id="planner", classes=classes)
        self.profile = profile  # the last valid inputs
        self.saved = profile  # as on disk (or the built-in default): dirty = profile != saved
        self.saved_text = text  # saved's file text: a save changes only the values that changed
        self.path = path
        self.mtime_ns = mtime_ns
        self.base_dir = path.parent if path is not None else Path.cwd()
        self.engine = engine
        self.result: Result | None = None
        self.invalid: dict[str, str] = {}  # input id -> message
        # inputs showing a value a cross-field check refused: input id -> (path, value)
        self.refused: dict[str, tuple[tuple[str, ...], object]] = {}
        self.compute_error = ""
        self.generation = 0  # inputs version; bumped on every valid change
        self.shown_generation = -1  # version of the result on screen
        self._computing = False
        self._pending = False
        self._sweep_timer: Timer | None = None
        self._charts_due = False
        self._resumed = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield TitleHeader()
        with Horizontal(id="body"):
            with VerticalScroll(id="inputs", can_focus=False):
                for pane in PANE_CLASSES:
                    yield pane(self.profile)
            with VerticalScroll(id="results"):
                yield Static("", id="status")
                with Horizontal(id="results-top"):
                    yield TierTable(id="tiers")
                    yield TierDetail(id="detail")
                with Horizontal(id="charts"):
                    yield LatencyChart(id="latency-chart")
                    yield CostChart(id="cost-chart")
                yield ApiCostChart(id="api-chart")
        yield Footer()

    def on_screen_resume(self, event: ScreenResume) -> None:
        # Runs before Screen's own handler. On the first resume every widget has just been styled
        # as it mounted (and focus restyles what it touches), so restyling the whole screen again
        # (~50 ms) changes nothing; later resumes (back from a dialog) restyle as usual.
        if not self._resumed:
            self._resumed = True
            event.refresh_styles = False

    def on_mount(self) -> None:
        self.query_one(TierTable).selected = self.tier
        self.query_one(TierDetail).tier = self.tier
        self.update_title()
        self.call_after_refresh(self._started)  # the first frame is not held up by the engine

    def _started(self) -> None:
        gcpause.resume(freeze=True)  # paused by the app while it built this screen
        self.recompute()

    @property
    def panes(self) -> list[InputPane]:
        return list(self.query(InputPane))

    def show_profile(self) -> None:
        for pane in self.panes:
            pane.show(self.profile)
        self.invalid.clear()
        self.refused.clear()

    @property
    def dirty(self) -> bool:
        return self.profile != self.saved

    @property
    def settled(self) -> bool:
        """No plan or chart computation is running or waiting (tests and benchmarks wait on it)."""
        busy = self._computing or self._pending or self._charts_due or self._sweep_timer is not None
        return not busy and not any(w.group in ("charts", "sweep") and not w.is_finished for w in self.workers)

    def update_title(self) -> None:
        where = self.path.name if self.path is not None else "built-in default"
        show_sub_title(self, f"{self.profile.name} · {where}" + (" · modified" if self.dirty else ""))

    def update_status(self) -> None:
        parts: list = []
        if self.result is not None:
            load = self.result.data["load"]
            tokens_in = mean_tokens(load["input_len"], load["mean_input_tokens"])
            tokens_out = mean_tokens(load["output_len"], load["mean_output_tokens"])
            parts.append(f"peak {fmt_num(load['peak_rate_rps'])} req/s · prompt ~{fmt_num(tokens_in)} "
                         f"· output ~{fmt_num(tokens_out)} tok · targets: "
                         f"{targets_text(self.result.plan.scenario.slo)}")
        if self.invalid:
            n = len(self.invalid)
            parts.append(("   ⚠ " + (f"{n} invalid inputs" if n > 1 else "1 invalid input")
                          + ": showing the last valid plan", "$warning"))
        if self.compute_error:
            parts.append((f"   ✗ {self.compute_error} (showing the last valid plan)", "$error"))
        update_in_place(self.query_one("#status", Static), Content.assemble(*parts))

    # ------------------------------------------------------------------ edits

    @on(InputPane.Edited)
    def _edited(self, event: InputPane.Edited) -> None:
        event.stop()
        key = event.input_id or "-".join(event.path)
        self.refused.pop(key, None)  # its new text replaces the refused value
        # The pane showed this edit's own message (or none) when the text changed, but an earlier
        # edit of the same input, handled since, may have placed a cross-field message over it:
        # keys typed in a burst reach the pane before the screen. The newest text decides.
        if event.error:
            self.invalid[key] = event.error
            event.pane.set_error(key, event.error)
            self._flag_refused()
            self.update_status()
            return
        if self.invalid.pop(key, None) is not None:
            event.pane.set_error(key, "")
        self.apply(event.pane, event.path, event.value, key)

    def apply(self, pane: InputPane, path: tuple[str, ...], value, input_id: str) -> None:
        """Validate the profile with one change; on success recompute, else explain under the input."""
        data, restructure = edited_data(self.profile, path, value)
        # Inputs still showing a value a cross-field check refused go in with this edit when they
        # can (a p90 of 500 refused under a mean of 1000 is taken with a mean of 400).
        held = {} if restructure else dict(self.refused)
        try:
            profile, taken = validate_with(data, held)
        except ValidationError as exc:
            target, message = place_error(exc, input_id)
            if pane.revert(input_id, self.profile):  # a choice that cannot be made snaps back
                target, message = input_id, snapped_back_message(exc, message)
            else:
                self.refused[input_id] = (path, value)
            pane.set_error(target, message)
            self.invalid[target] = message
            self.update_status()
            return
        for key in taken:
            self.refused.pop(key)
        if profile == self.profile:
            self._flag_refused()
            self.update_status()
            return  # back to the current inputs, or a widget announcing the value it was given
        self.profile = profile
        pane.decorate(profile)
        if restructure:
            pane.show(profile)
            for key in list(self.invalid):
                if pane.query(f"#{key}"):
                    self.invalid.pop(key)
            for key in list(self.refused):
                if pane.query(f"#{key}"):
                    self.refused.pop(key)
        self._flag_refused()
        self.after_next_frame(self.update_title)  # " · modified" comes a frame after the edit's
        self.recompute()

    def _flag_refused(self) -> None:
        """Cross-field messages (✗) for the inputs still showing a refused value, and none for the
        others: a change can make an earlier message moot, and must not clear the message of an
        input whose value it did not take in."""
        for key in [k for k, msg in self.invalid.items() if msg.startswith("✗ ")]:
            self.invalid.pop(key)
            for p in self.panes:
                p.set_error(key, "")
        for target, message in refused_messages(self.profile, self.refused):
            if not self.invalid.get(target, "✗").startswith("✗"):
                continue  # the input's own message (what it accepts) comes first
            for p in self.panes:
                p.set_error(target, message)
            self.invalid[target] = message

    # ------------------------------------------------------------------ computing

    def recompute(self) -> None:
        self.generation += 1
        self.workers.cancel_group(self, "charts")
        self.workers.cancel_group(self, "sweep")
        self._cancel_sweep_timer()
        if self._computing:
            self._pending = True  # the running plan finishes, then the newest inputs run
            return
        self._start_plan()

    def _start_plan(self) -> None:
        self._computing, self._pending = True, False
        self._plan_worker(self.profile, self.base_dir, self.generation)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False, description="planning")
    def _plan_worker(self, profile: Profile, base_dir: Path, generation: int) -> None:
        try:
            result = compute(profile, base_dir, self.engine) if self.engine else compute(profile, base_dir)
        except ComputeError as exc:
            self.post_message(PlanFailed(generation, str(exc)))
            return
        except Exception as exc:  # an engine bug must not take the UI down
            self.post_message(PlanFailed(generation, f"internal error ({type(exc).__name__}): {exc}"))
            return
        self.post_message(PlanReady(generation, result))
        if not self.engine:
            start_helper(result)  # once, after the first plan is on its way: it does not delay that plan

    def _finished(self) -> None:
        self._computing = False
        if self._pending:
            self._start_plan()

    def on_plan_ready(self, message: PlanReady) -> None:
        self._finished()
        if message.generation != self.generation:
            return
        self.result = message.result
        self.shown_generation = message.generation
        self.compute_error = ""
        self.query_one(TierTable).result = message.result
        self.query_one(TierDetail).result = message.result
        self.update_status()
        # the numbers first; the charts (plotext builds, a curve worker) once that frame is out
        self._charts_due = True
        self.set_timer(CHARTS_DELAY_S, self._start_charts)

    def on_plan_failed(self, message: PlanFailed) -> None:
        self._finished()
        if message.generation != self.generation:
            return
        self.compute_error = message.error
        self.shown_generation = message.generation
        self.update_status()
        self.notify(message.error, title="Cannot plan these inputs", severity="error")

    def _cancel_sweep_timer(self) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.stop()
            self._sweep_timer = None

    def _start_charts(self) -> None:
        """The latency curve at once; the cost sweep after SWEEP_DELAY_S without changes."""
        self._charts_due = False
        result = self.result
        if result is None:
            return
        key = sweep_key(result.inputs)
        sweep = SWEEPS.get(key)
        chart = self.query_one(CostChart)
        chart.set_reactive(CostChart.sweep, sweep)
        chart.result = result  # one replot with both
        self._show_curve()
        self._show_api_chart()
        self._cancel_sweep_timer()
        if sweep is None:
            generation = self.generation

            def start_sweep() -> None:
                self._sweep_timer = None
                if generation == self.generation:
                    self._sweep_worker(result, key)

            self._sweep_timer = self.set_timer(SWEEP_DELAY_S, start_sweep)

    def _show_curve(self) -> None:
        """The selected tier's latency curve: from the cache, else computed in a worker."""
        if self.result is None:
            return
        curve = self.result.curves.get(self.tier)
        if curve is not None:
            self.query_one(LatencyChart).curve = curve
        else:
            self._charts_worker(self.result, self.tier, self.generation)

    @work(thread=True, exclusive=True, group="charts", exit_on_error=False, description="latency curve")
    def _charts_worker(self, result: Result, tier: str, generation: int) -> None:
        worker = get_current_worker()

        def stop() -> bool:
            return worker.is_cancelled

        try:
            curve = latency_curve(result, tier, stop)
            if curve is not None:
                self.post_message(CurveReady(generation, curve))
        except Exception as exc:  # charts are secondary: report, keep the plan
            self.post_message(PlanFailed(-1, f"latency chart: {type(exc).__name__}: {exc}"))

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False, description="cost sweep")
    def _sweep_worker(self, result: Result, key: str) -> None:
        worker = get_current_worker()

        def stop() -> bool:
            time.sleep(0.001)  # between models: let the UI thread take the GIL
            return worker.is_cancelled

        try:
            points = cost_sweep(result.inputs, should_stop=stop)
            if points is not None:
                self.post_message(SweepReady(key, points))
        except Exception as exc:  # charts are secondary: report, keep the plan
            self.post_message(PlanFailed(-1, f"cost chart: {type(exc).__name__}: {exc}"))

    def on_curve_ready(self, message: CurveReady) -> None:
        if message.generation != self.generation or self.result is None:
            return
        self.result.curves[message.curve.tier] = message.curve
        if message.curve.tier == self.tier:
            self.query_one(LatencyChart).curve = message.curve

    def on_sweep_ready(self, message: SweepReady) -> None:
        if self.result is not None and sweep_key(self.result.inputs) == message.key:
            self.query_one(CostChart).sweep = message.points

    def watch_tier(self, tier: str) -> None:
        self.query_one(TierTable).selected = tier
        self.query_one(TierDetail).tier = tier
        self._show_curve()
        self._show_api_chart()

    def _show_api_chart(self) -> None:
        """The selected tier's self-hosted vs API cost: arithmetic on the plan, no worker."""
        if self.result is not None:
            view = api_cost_view(self.result.tier(self.tier), self.result.tier_data(self.tier).get("api_note"))
            self.query_one(ApiCostChart).view = view

    @on(TierTable.Selected)
    def _tier_clicked(self, event: TierTable.Selected) -> None:
        self.tier = event.tier

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        from planner.tui.screens.help import HelpScreen  # Rich's Markdown: imported when first asked

        self.app.push_screen(HelpScreen())

    def action_switch_tier(self) -> None:
        self.tier = TIERS[(TIERS.index(self.tier) + 1) % len(TIERS)]

    def action_best_fleets(self) -> None:
        from planner.tui.screens.fleets import FleetsScreen  # the search engine: imported when first asked

        self.app.push_screen(FleetsScreen(self.profile, self.base_dir, self.tier, self.result), self._apply_fleet)

    def _apply_fleet(self, choice) -> None:
        """A fleet chosen in the Best fleets view: its GPU, precisions, TP, engine limits (and the
        tier's model) become the profile's inputs, and the plan follows."""
        if choice is None:
            return
        try:
            profile = choice.apply(self.profile)
        except ValidationError as exc:
            self.notify(str(exc.errors()[0]["msg"]), title="Cannot apply the fleet", severity="error", timeout=8)
            return
        self.profile = profile
        self.show_profile()
        self.update_title()
        self.tier = choice.tier
        self.recompute()
        self.notify(choice.summary, title="Fleet applied")

    def action_toggle_theme(self) -> None:
        self.app.theme = "textual-light" if self.app.current_theme.dark else "textual-dark"

    def action_focus_pane(self, step: int) -> None:
        panes = self.panes
        focused = self.app.focused
        index = -1 if step > 0 else 0
        for i, pane in enumerate(panes):
            if focused is not None and pane in focused.ancestors:
                index = i
        target = panes[(index + step) % len(panes)]
        for widget in target.query("Input, Select"):
            if widget.focusable:
                widget.focus()
                target.scroll_visible()
                return
