"""The TUI under random input: seeded sequences of keys, typed and pasted text, clicks, scrolls and
terminal resizes over the whole app (input panes, pickers, file dialogs, help, Best fleets). After
every CHECK_EVERY events and at the end the app must still run, show a plan (three tiers) or a clear
message, keep an internal profile that validates and round-trips through TOML and, when no input is
marked invalid, show in every input and picker the value the plan was computed from.

A sequence comes from its seed alone (never from the app's state), and is delivered in bursts also
drawn from the seed, so a failure names the seed and the event and

    python tests/hardening/test_hardening_tui.py SEED EVENTS [--real]

replays it, checking after every event. FAST_SEEDS run with a fast engine (a fixed plan relabelled
for the inputs: they test the UI, not the numbers) and REAL_SEEDS with the real engine and the charts
on; they run in two processes (the app takes ~50 ms of CPU per event, mostly Textual's layout and
styling, so one process could not fit thousands of events in the suite's time). HARDENING_SCALE=10
runs ten times as many events.

What the random runs leave out: quitting (the app's `exit` is replaced by a recorder), Textual's
command palette (a page key or a click at the wrong moment crashes it: the xfail test at the end,
reported) and the Best fleets view's search (a made-up result instead of seconds of search per
tier). Files are only written under the test's tmp_path (profiles folder, HOME and cwd
redirected; a write elsewhere raises).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import random
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hardening_support import UNCLEAR
from textual import events
from textual.command import CommandList
from textual.geometry import Size
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.widgets import Input, Label, Select, Static
from textual.worker import WorkerCancelled, WorkerFailed

from planner.engine import catalog
from planner.engine.plan import Plan, evaluate
from planner.engine.scenario import Scenario
from planner.engine.serving import Workload
from planner.engine.specs import TIERS
from planner.profile import Profile, profile_from_toml, profile_to_toml
from planner.tui import compute as tui_compute
from planner.tui.app import PlannerApp, make_app
from planner.tui.fields import BY_ID, get_value
from planner.tui.screens.main import PlannerScreen
from planner.tui.testing import settle
from planner.tui.widgets.panes import CUSTOM, InputPane, canonical_model
from planner.tui.widgets.results import TierDetail, TierTable

SCALE = float(os.environ.get("HARDENING_SCALE", "1"))
FAST_SEEDS = (1, 2, 3, 4, 5)
REAL_SEEDS = (101,)
FAST_EVENTS = round(250 * SCALE)
REAL_EVENTS = round(180 * SCALE)
CHECK_EVERY = 50
WORKERS = 2
SETTLE_LIMIT_S = 30.0  # a checkpoint that waits longer than this for the plan is a hang

# ---------------------------------------------------------------------------------------------
# events

TAB = ("tab", "shift+tab")
PANE = ("f6", "shift+f6")
MOVE = ("up", "down", "left", "right", "home", "end", "pageup", "pagedown", "ctrl+left", "ctrl+right", "shift+home",
        "shift+end")
EDIT = ("enter", "enter", "backspace", "backspace", "delete", "space", "escape", "ctrl+shift+a", "ctrl+w",
        "ctrl+u", "ctrl+k", "ctrl+x", "ctrl+c", "ctrl+v")
COMMAND_KEYS = ("ctrl+t", "ctrl+t", "f8", "f1", "f4", "f10", "ctrl+a")  # ctrl+a: all models in Best fleets
FILE_KEYS = ("ctrl+o", "ctrl+s", "f2", "f3")  # dialogs: answered by later events (enter, text, escape)
CHARS = "0123456789" * 3 + "abcdefghijklmnopqrstuvwxyz" + "-.e,_%+ "
TOKENS = ("nan", "inf", "-inf", "NaN", "1e308", "1e-9", "-1", "0", "-0", "0.5", "1e3", "1_000", "99.999",
          "100", "8", "0.0000001", "é", "漢", "🙂", "\u200b", "1e400", "0x10", "½", "٣", "１２",
          "9" * 40, "1" + "0" * 25, "é" * 30, "漢字" * 20, "3.14159265358979323846", "llama-3.1-8b", "a100-80gb",
          "qwen2.5-72b", "..", ".", "chatbot", "x.toml", "config.json")
PASTES = ("12", "1e3", "nan", "0.25", " 42 ", "-5", "漢字", "1\n2", "\t7", "9" * 300, "é" * 500, "100000000",
          "llama-3.2-1b", "../../x.json", "a" * 2000, "a\x00b")
# Inputs and pickers a "target" event clicks on when the main screen shows them (else it scrolls the
# inputs column): a person picks the input to edit far more often than a random point lands on one.
TARGETS = (*(2 * [s.id for s in BY_ID.values() if s.kind not in ("choice", "bool")]),
           *(s.id for s in BY_ID.values() if s.kind in ("choice", "bool")), "models-small", "models-medium",
           "models-large", "models-small-custom", "models-medium-custom", "models-large-custom", "load-mode")
# (weight, kind): mostly typing into whatever has the focus, moving the focus, and clicks
MIX = ((16, "chars"), (18, "number"), (6, "token"), (3, "paste"), (12, "target"), (5, "tab"), (3, "pane"), (5, "move"),
       (10, "edit"), (6, "click"), (2, "scroll"), (2.5, "command"), (0.8, "file"), (1, "resize"), (1, "wait"),
       (3, "escape"))


def number(rng: random.Random) -> str:
    """A number as people type them: mostly in the ranges the inputs take, sometimes not."""
    return rng.choice((
        str(rng.randrange(0, 10)), str(rng.randrange(10, 5000)), f"{rng.uniform(0, 1):.2f}", str(rng.randrange(0, 101)),
        f"{rng.uniform(0, 100):.1f}", str(rng.randrange(1, 10**rng.randrange(3, 14))), str(-rng.randrange(1, 100)),
        f"{rng.randrange(1, 10)}e{rng.randrange(-3, 9)}", f"{rng.randrange(1, 1000):,}"))


@dataclass(frozen=True)
class Event:
    kind: str  # key, text, paste, target, click, scroll, resize, wait
    value: object = None

    def __str__(self) -> str:
        return f"{self.kind}({self.value!r})"


def generate(seed: int, n: int) -> list[Event]:
    """n events from the seed alone. Clicks stay on the screen: the generator follows its own
    resizes (the start size is in the first event)."""
    rng = random.Random(seed)
    width, height = rng.randrange(60, 201), rng.randrange(20, 61)
    out = [Event("resize", (width, height))]
    weights, kinds = zip(*MIX)
    keys = {"tab": TAB, "pane": PANE, "move": MOVE, "edit": EDIT, "command": COMMAND_KEYS, "file": FILE_KEYS}
    while len(out) < n:
        kind = rng.choices(kinds, weights)[0]
        if kind == "chars":
            out.append(Event("text", "".join(rng.choice(CHARS) for _ in range(rng.randrange(1, 6)))))
        elif kind == "number":
            if rng.random() < 0.6:  # over the input's text, as a person replaces a value
                out.append(Event("key", "ctrl+shift+a"))
            out.append(Event("text", number(rng)))
        elif kind == "token":
            out.append(Event("text", rng.choice(TOKENS)))
        elif kind == "paste":
            out.append(Event("paste", rng.choice(PASTES)))
        elif kind in keys:
            out.append(Event("key", rng.choice(keys[kind])))
        elif kind == "target":
            out.append(Event("target", (rng.choice(TARGETS), rng.randrange(12))))
        elif kind == "click":
            out.append(Event("click", (rng.randrange(width), rng.randrange(height))))
        elif kind == "scroll":
            out.append(Event("scroll", (rng.randrange(width), rng.randrange(height), rng.choice((-1, 1)))))
        elif kind == "resize":
            width, height = rng.randrange(60, 201), rng.randrange(20, 61)
            out.append(Event("resize", (width, height)))
        elif kind == "wait":
            out.append(Event("wait", rng.choice((0.05, 0.2, 0.6))))  # timers fire (charts, tooltips)
        else:
            out.append(Event("key", "escape"))
    return out


def key_event(key: str) -> events.Key:
    """The Key event a terminal sends (as Pilot.press builds it)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def mouse(cls, x: int, y: int, button: int = 1):
    return cls(None, x, y, 0, 0, button, False, False, False, screen_x=x, screen_y=y)


def target_click(app: PlannerApp, widget_id: str, dx: int) -> list:
    """A click on the input (dx cells in), if the main screen is on top and shows it where a click
    lands on it; else a scroll of the inputs column towards it (nothing when that is hidden too)."""
    screen = app.planner
    widgets = screen.query(f"#{widget_id}")
    if app.screen is not screen or not widgets:
        return []
    widget = widgets.first()
    region = widget.region
    if region.area:
        x, y = region.x + dx % region.width, region.y
        try:
            hit, _ = app.get_widget_at(x, y)
        except Exception:  # noqa: BLE001 - off the screen
            hit = None
        if hit is not None and (hit is widget or widget in hit.ancestors):
            return [mouse(events.MouseDown, x, y), mouse(events.MouseUp, x, y)]
    column = screen.query_one("#inputs").region
    if not column.area or not widget.display or not (widget.parent and widget.parent.display):
        return []
    cls = events.MouseScrollUp if region.area and region.y < column.y else events.MouseScrollDown
    return [mouse(cls, column.x + 1, column.y + 1, button=0)]


def post(app: PlannerApp, event: Event) -> int:
    """Queue the event as the terminal driver would deliver it (through App.on_event); the number
    of terminal messages it took."""
    messages: list = []
    if event.kind == "key":
        messages = [key_event(str(event.value))]
    elif event.kind == "text":
        messages = [key_event(ch) for ch in str(event.value)]
    elif event.kind == "paste":
        messages = [events.Paste(str(event.value))]
    elif event.kind == "target":
        messages = target_click(app, *event.value)
    elif event.kind == "click":
        x, y = event.value
        messages = [mouse(events.MouseDown, x, y), mouse(events.MouseUp, x, y)]
    elif event.kind == "scroll":
        x, y, direction = event.value
        messages = [mouse(events.MouseScrollDown if direction > 0 else events.MouseScrollUp, x, y, button=0)]
    elif event.kind == "resize":
        size = Size(*event.value)
        app._driver._size = size  # as Pilot.resize_terminal does for the headless driver
        messages = [events.Resize(size, size)]
    for message in messages:
        message.set_sender(app)
        app.post_message(message)
    return len(messages)


# ---------------------------------------------------------------------------------------------
# the app under test


_TEMPLATE: list[Plan] = []


def fast_engine(scenario: Scenario, custom_gpus=(), custom_models=(), calibration=None) -> Plan:
    """The default profile's plan, relabelled with these inputs: the lookups the real engine does
    (unknown GPU or model raise CatalogError) and no serving math. Microseconds instead of ~0.2 s."""
    catalog.get_gpu(scenario.fleet.gpu, list(custom_gpus))
    for tier in TIERS:
        catalog.get_model(getattr(scenario.models, tier), list(custom_models))
    if not _TEMPLATE:
        _TEMPLATE.append(evaluate(Scenario()))
    return Plan(scenario=scenario, workload=Workload(scenario.load.input_len, scenario.load.output_len),
                peak_rate_rps=scenario.load.peak_rate_rps, tiers=_TEMPLATE[0].tiers)


def prepare(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """Profiles folder, HOME and cwd under tmp; saves and exports only there; no cursor blink and
    no animations."""
    home = tmp / "home"
    config = home / ".config" / "planner"
    (config / "profiles").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("PLANNER_CONFIG_DIR", str(config))
    monkeypatch.chdir(tmp)
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr("textual.constants.TEXTUAL_ANIMATIONS", "none")
    import planner.tui.screens.profile_files as files

    root = tmp.resolve()

    def guarded(real):
        def write(first, *args, **kwargs):
            path = first if isinstance(first, (str, os.PathLike)) else args[0]
            if not Path(path).resolve().is_relative_to(root):
                raise Failure(f"a write outside tmp_path: {path}")
            return real(first, *args, **kwargs)

        return write

    monkeypatch.setattr(files, "save_profile", guarded(files.save_profile))
    monkeypatch.setattr(files, "save_text_atomic", guarded(files.save_text_atomic))


def charts(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    """Off: no latency curve or cost sweep. On: the cost sweep plans only the three tier models and
    starts sooner (as in tests/tui/test_flows.py)."""
    if not on:
        monkeypatch.setattr(PlannerScreen, "_start_charts", lambda self: setattr(self, "_charts_due", False))
        monkeypatch.setattr(PlannerScreen, "_show_curve", lambda self: None)
        return

    def sweep(inputs, models=None, should_stop=tui_compute.never):
        chosen = [catalog.get_model(getattr(inputs.scenario.models, t), inputs.custom_models) for t in TIERS]
        return tui_compute.cost_sweep(inputs, chosen, should_stop)

    monkeypatch.setattr("planner.tui.screens.main.cost_sweep", sweep)
    monkeypatch.setattr("planner.tui.screens.main.SWEEP_DELAY_S", 0.05)


def fast_fleets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Best fleets view (F4), if present, with a made-up search result instead of the engine's
    search (seconds of CPU per tier): three fleets of the tier's model, validated like any edit when
    applied."""
    try:
        from planner.tui.screens import fleets
    except ImportError:
        return

    def run_search(profile, base_dir, tier, all_models=False, top=5):
        inputs = tui_compute.resolve(profile, base_dir)  # ComputeError, as the real search raises
        model = getattr(inputs.scenario.models, tier)
        rows = [fleets.FleetRow(model, gpu, weights, kv, tp, seqs, tokens, replicas, replicas * tp, usd, 150.0, 30.0,
                                8000.0, "TTFT p99", frontier)
                for gpu, weights, kv, tp, seqs, tokens, replicas, usd, frontier in (
                    ("h100-sxm", "fp8", "fp8", 1, None, None, 3, 4800.0, True),
                    ("a100-80gb", "bf16", "auto", 2, 256, 8192, 2, 5100.0, False),
                    ("l4", "int4", "fp8", 4, 1024, None, 5, 9000.0, True))]
        return fleets.FleetSearch(tier, [model], len(catalog.gpus()), 1234, 12, {"do not fit in memory": 900},
                                  rows, [r for r in rows if r.frontier])

    monkeypatch.setattr(fleets, "fleet_search", run_search)


# ---------------------------------------------------------------------------------------------
# a run and its checks


class Failure(AssertionError):
    pass


@dataclass
class Run:
    seed: int
    real: bool = False
    exits: list = field(default_factory=list)  # quit requests (ignored)
    checks: int = 0
    index: int = -1  # the last event delivered
    event: Event | None = None
    messages: int = 0  # key, mouse, paste and resize messages delivered
    edits: int = 0  # edits that reached the screen (valid on their own)
    plans: int = 0

    @property
    def engine(self):
        return None if self.real else fast_engine


def where(run: Run, index: int, event: Event | None) -> str:
    replay = f"python tests/hardening/test_hardening_tui.py {run.seed} {index + 1}{' --real' if run.real else ''}"
    return f"seed {run.seed}, event #{index} {event or ''} (replay: {replay})"


def alive(app: PlannerApp, run: Run, index: int, event: Event | None) -> None:
    if app._exception is not None:
        raise Failure(f"{where(run, index, event)}: unhandled {type(app._exception).__name__}: "
                      f"{app._exception}") from app._exception
    if not app.is_running:
        raise Failure(f"{where(run, index, event)}: the app stopped")


def status_text(screen: PlannerScreen) -> str:
    return str(screen.query_one("#status", Static).render())


def check(app: PlannerApp, run: Run, index: int, event: Event | None) -> None:
    """The invariants of a settled app."""
    run.checks += 1
    at = where(run, index, event)
    alive(app, run, index, event)
    screen = app.planner
    profile = screen.profile
    # the profile the screen plans from validates and round-trips through its TOML writer
    assert Profile.model_validate(profile.model_dump()) == profile, f"{at}: the profile no longer validates as is"
    text = profile_to_toml(profile)
    assert profile_from_toml(text) == profile, f"{at}: the profile does not round-trip through TOML:\n{text}"
    # a plan of three tiers, for the current inputs or with a clear message why not
    table = screen.query_one(TierTable)
    result = table.result
    assert result is not None, f"{at}: no plan on screen"
    assert [t.tier for t in result.plan.tiers] == list(TIERS), f"{at}: tiers {[t.tier for t in result.plan.tiers]}"
    assert [t["tier"] for t in result.data["tiers"]] == list(TIERS), f"{at}: table data tiers"
    assert screen.shown_generation == screen.generation, f"{at}: the plan on screen is not for the last inputs"
    status = status_text(screen)
    if screen.compute_error:
        message = screen.compute_error
        assert message.strip() and message in status, f"{at}: compute error {message!r} not in status {status!r}"
        for needle in UNCLEAR:
            assert needle not in message, f"{at}: unclear compute error {message!r}"
    else:
        assert result.inputs.profile == profile, f"{at}: the plan on screen is not for the current profile"
    # the title says whether the inputs differ from the file; table, detail and screen agree on the tier
    assert ("modified" in app.sub_title) == screen.dirty, f"{at}: title {app.sub_title!r}, dirty={screen.dirty}"
    assert table.selected == screen.tier == screen.query_one(TierDetail).tier, f"{at}: selected tier differs"
    # a message under an input is one the status counts (the models pane's own hints aside)
    for label in screen.query(".input-error.-shown"):
        owner = (label.id or "").removesuffix("-error")
        assert owner in screen.invalid or owner.startswith("models-"), \
            f"{at}: #{owner} shows {str(label.render())!r}, not counted as invalid"
    if screen.invalid:
        assert "invalid input" in status, f"{at}: {len(screen.invalid)} invalid inputs, status {status!r}"
        for key, message in screen.invalid.items():
            assert message.strip(), f"{at}: empty message for {key}"
    else:
        assert "invalid" not in status, f"{at}: status {status!r} with no invalid input"
        inputs_show(screen, profile, at)


def inputs_show(screen: PlannerScreen, profile: Profile, at: str) -> None:
    """With no input marked invalid, every input and picker shows the value the plan uses."""
    data = profile.model_dump()
    for pane in screen.query(InputPane):
        for widget in pane.query(Input):
            spec = BY_ID.get(widget.id or "")
            if spec is None:
                continue
            want = get_value(data, spec.path)
            try:
                shown = spec.parse(widget.value)
            except ValueError as exc:
                raise Failure(f"{at}: #{widget.id} shows {widget.value!r} ({exc}) but is not marked invalid; "
                              f"the plan uses {want!r}") from None
            same = (shown is None and want is None) or (
                shown is not None and want is not None and math.isclose(shown, want, rel_tol=1e-5, abs_tol=1e-12))
            assert same, f"{at}: #{widget.id} shows {widget.value!r}, the plan uses {want!r}"
        for select in pane.query(Select):
            spec = BY_ID.get(select.id or "")
            if select.id == "load-mode":
                want = "daily" if profile.load.requests_per_day is not None else "rate"
            elif (select.id or "").startswith("models-"):
                if select.value == CUSTOM:
                    continue  # "custom…" picked, the id or path not entered yet: the plan keeps the model
                want = canonical_model(getattr(profile.models, (select.id or "").removeprefix("models-")), profile)
            elif select.id == "fleet-gpu":
                try:
                    want = catalog.get_gpu(profile.fleet.gpu, profile.gpu).id
                except catalog.CatalogError:
                    want = profile.fleet.gpu
            elif spec is not None:
                want = get_value(data, spec.path)
            else:
                continue
            assert select.value == want, f"{at}: #{select.id} shows {select.value!r}, the plan uses {want!r}"


async def settled(pilot, limit: float = SETTLE_LIMIT_S) -> None:
    """planner.tui.testing.settle, which waits on app.workers.wait_for_complete(): that raises
    WorkerCancelled when a chart worker it waits on is cancelled by a newer plan (reported); the
    wait starts again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        try:
            return await settle(pilot, max(deadline - loop.time(), 0.1))
        except WorkerCancelled:
            if loop.time() > deadline:
                raise TimeoutError from None


async def checkpoint(app: PlannerApp, pilot, run: Run, index: int, event: Event | None) -> None:
    await pilot.pause()
    alive(app, run, index, event)
    try:
        await settled(pilot)
    except TimeoutError:
        raise Failure(f"{where(run, index, event)}: the plan did not settle in {SETTLE_LIMIT_S:g} s") from None
    check(app, run, index, event)


async def drive(app: PlannerApp, pilot, run: Run, sequence: list[Event], check_every: int) -> None:
    """Deliver the events in bursts of 1 to 16 (a pause after each), checking every check_every
    events and at the end."""
    bursts = random.Random(run.seed * 7919)
    burst, size = 0, bursts.randrange(1, 17)
    event: Event | None = None
    index = -1
    for index, event in enumerate(sequence):
        run.index, run.event = index, event
        if event.kind == "wait":
            await pilot.pause()
            await asyncio.sleep(float(event.value))  # type: ignore[arg-type]
        else:
            run.messages += post(app, event)
            burst += 1
            if burst >= size or event.kind == "resize":
                burst, size = 0, bursts.randrange(1, 17)
                await pilot.pause()
        alive(app, run, index, event)
        if (index + 1) % check_every == 0:
            await checkpoint(app, pilot, run, index, event)
    await checkpoint(app, pilot, run, index, event)


async def play(run: Run, sequence: list[Event], check_every: int = CHECK_EVERY) -> None:
    app = make_app(engine=run.engine)
    app.animation_level = "none"
    app.exit = lambda *args, **kwargs: run.exits.append(args)  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settled(pilot)
            screen = app.planner
            apply, recompute = screen.apply, screen.recompute

            def counted_apply(*args, **kwargs):
                run.edits += 1
                return apply(*args, **kwargs)

            def counted_recompute():
                run.plans += 1
                return recompute()

            screen.apply, screen.recompute = counted_apply, counted_recompute  # type: ignore[method-assign]
            check(app, run, -1, None)
            await drive(app, pilot, run, sequence, check_every)
    except Failure:
        raise
    except Exception as exc:  # surfaced by run_test on exit: name the seed and the event
        raise Failure(f"{where(run, run.index, run.event)}: {type(exc).__name__}: {exc}") from exc


def run_seed(seed: int, n: int, real: bool, tmp: str, check_every: int = CHECK_EVERY) -> dict:
    """One seed in a sandbox under tmp (in this process or a worker): its counts, and the failure
    message if any."""
    monkeypatch = pytest.MonkeyPatch()
    run = Run(seed, real)
    start = time.perf_counter()
    try:
        prepare(monkeypatch, Path(tmp) / f"seed-{seed}")
        charts(monkeypatch, on=real)
        fast_fleets(monkeypatch)
        monkeypatch.setattr(PlannerApp, "ENABLE_COMMAND_PALETTE", False)
        if real:
            tui_compute.PLANS.clear()
        asyncio.run(play(run, generate(seed, n), check_every))
        failure = ""
    except AssertionError as exc:
        failure = str(exc)
    finally:
        monkeypatch.undo()
    return dict(seed=seed, real=real, events=n, messages=run.messages, edits=run.edits, plans=run.plans, checks=run.checks,
                quits=len(run.exits), seconds=time.perf_counter() - start, failure=failure)


# ---------------------------------------------------------------------------------------------
# the random runs


@pytest.mark.slow
def test_random_events(tmp_path: Path) -> None:
    jobs = [(seed, REAL_EVENTS, True) for seed in REAL_SEEDS] + [(seed, FAST_EVENTS, False) for seed in FAST_SEEDS]
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_seed, seed, n, real, str(tmp_path)) for seed, n, real in jobs]
        results = [f.result(timeout=600) for f in futures]
    for r in results:
        engine = " (real engine)" if r["real"] else ""
        print(f"seed {r['seed']}{engine}: {r['events']} events ({r['messages']} messages), {r['edits']} edits, "
              f"{r['plans']} plans, {r['checks']} checks, {r['quits']} quit requests, {r['seconds']:.1f} s"
              + (f"\n  FAILED: {r['failure']}" if r["failure"] else ""))
    print(f"in all: {sum(r['events'] for r in results)} events, {sum(r['messages'] for r in results)} messages")
    failures = [r["failure"] for r in results if r["failure"]]
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------------------------
# regressions: the minimal sequences behind what the random runs found


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    prepare(monkeypatch, tmp_path)
    charts(monkeypatch, on=False)
    return tmp_path


async def started(pilot) -> Run:
    await settle(pilot)
    return Run(0)


async def paste_into(app: PlannerApp, pilot, selector: str, text: str) -> None:
    """Focus an input, select its text and paste over it (one change)."""
    widget = app.planner.query_one(selector, Input)
    widget.focus()
    await pilot.pause()
    widget.select_all()
    post(app, Event("paste", text))
    await settle(pilot)


def message_under(app: PlannerApp, widget_id: str) -> str:
    labels = app.planner.query(f"#{widget_id}-error")
    return str(labels.first(Label).render()) if labels and labels.first().has_class("-shown") else ""


async def test_double_click_on_a_profile_in_the_open_dialog_opens_it_once(sandbox: Path) -> None:
    """Found by seed 1 (then in Textual's command palette; the Open dialog's list has the same
    flaw): the second click's selection dismissed the dialog again, which popped the main screen
    (ScreenStackError: the app crashed)."""
    (sandbox / "home" / ".config" / "planner" / "profiles" / "mine.toml").write_text('name = "mine"\n')
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        x, y = app.screen.query_one("#dialog-files").region.offset
        for _ in range(2):
            post(app, Event("click", (x + 2, y + 1)))
        await pilot.pause()
        alive(app, run, 0, None)
        await settle(pilot)
        check(app, run, 0, None)
        assert app.screen is app.planner and app.planner.profile.name == "mine"


async def test_a_name_that_is_not_a_file_keeps_the_save_dialog_open(sandbox: Path) -> None:
    """'.', '..' and '~' named the folder itself ('.' saved ~/.config/planner/profiles.toml), a NUL
    or a name over 255 bytes made the save raise outside ProfileError (the app crashed)."""
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        await pilot.press("f2")
        await pilot.pause()
        dialog = app.screen
        for name in (".", "..", "~", "a\x00b", "é" * 200):
            field_ = dialog.query_one("#dialog-path", Input)
            field_.value = name
            await pilot.press("enter")
            await pilot.pause()
            alive(app, run, 0, None)
            assert app.screen is dialog, name
            assert dialog.query_one("#dialog-error", Label).has_class("-shown"), name
        await pilot.press("escape")
        await settle(pilot)
        check(app, run, 1, None)
    assert sorted(p.name for p in sandbox.rglob("*.toml")) == []


async def test_a_page_key_in_the_frame_a_click_opens_a_picker(sandbox: Path) -> None:
    """Found by seed 3: a click opens a picker's list and PageDown arrives before the list is drawn;
    Textual's OptionList looked the highlight up in a line cache still empty (KeyError: crash)."""
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        for i, (select, key) in enumerate((("#load-mode", "pagedown"), ("#optimizations-tp", "pageup"),
                                           ("#models-small", "pagedown"))):
            widget = app.planner.query_one(select)
            widget.focus()
            await pilot.pause()
            post(app, Event("click", (widget.region.x + 2, widget.region.y)))
            post(app, Event("key", key))
            await pilot.pause()
            alive(app, run, i, Event("key", key))
            post(app, Event("key", "escape"))
        await settle(pilot)
        check(app, run, 3, None)


async def test_an_edit_elsewhere_keeps_the_message_of_a_refused_p90(sandbox: Path) -> None:
    """Found by seed 6: a p90 refused by the lognormal check (20004 for a mean of 1000) lost its
    message at the next valid edit of another input, leaving "20004" on screen, no warning, and a
    plan made with p90 = 2000."""
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        await paste_into(app, pilot, "#load-input-len-p90", "20004")
        assert "no lognormal" in message_under(app, "load-input-len-p90")
        await paste_into(app, pilot, "#load-rate-rps", "12")
        assert app.planner.profile.load.rate_rps == 12 and app.planner.profile.load.input_len.p90 == 2000
        assert "no lognormal" in message_under(app, "load-input-len-p90")
        check(app, run, 1, None)
        await paste_into(app, pilot, "#load-input-len-p90", "2100")
        assert not app.planner.invalid and app.planner.profile.load.input_len.p90 == 2100
        check(app, run, 2, None)


async def test_a_refused_mean_stays_flagged_until_it_is_taken_in(sandbox: Path) -> None:
    """The same with the mean as the refused input (its message is under the p90 it conflicts with):
    a p90 that fits the profile but not the typed mean keeps the mean flagged; one that fits both
    takes both in. And a refused p90 goes in with the mean that makes it valid."""
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        await paste_into(app, pilot, "#load-input-len-mean", "3000")
        assert "above the mean" in message_under(app, "load-input-len-p90")
        await paste_into(app, pilot, "#load-input-len-p90", "2100")  # fits the mean of 1000, not 3000
        dist = app.planner.profile.load.input_len
        assert (dist.mean, dist.p90) == (1000, 2100) and "above the mean" in message_under(app, "load-input-len-p90")
        check(app, run, 1, None)
        await paste_into(app, pilot, "#load-input-len-p90", "5000")  # fits 3000: both go in
        dist = app.planner.profile.load.input_len
        assert (dist.mean, dist.p90) == (3000, 5000) and not app.planner.invalid
        await paste_into(app, pilot, "#load-input-len-p90", "2000")  # below the mean of 3000: refused
        await paste_into(app, pilot, "#load-input-len-mean", "1500")  # 1500 alone: p90 5000 is too wide
        dist = app.planner.profile.load.input_len
        assert (dist.mean, dist.p90) == (1500, 2000) and not app.planner.invalid
        check(app, run, 2, None)


async def test_a_load_mode_switch_that_cannot_be_made_snaps_back(sandbox: Path) -> None:
    """A daily volume x peak factor above the largest peak rate a profile takes (1e7 req/s): the switch
    to a peak rate is refused; the picker returns to the daily volume and says why (it showed "peak
    rate" over a plan still sized for the daily volume)."""
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        select = app.planner.query_one("#load-mode", Select)
        select.value = "daily"
        await settle(pilot)
        await paste_into(app, pilot, "#load-requests-per-day", "900000000000")
        await paste_into(app, pilot, "#load-peak-factor", "100")
        before = app.planner.profile
        assert before.load.requests_per_day == 9e11
        select.value = "rate"
        await settle(pilot)
        assert app.planner.profile == before and select.value == "daily"
        assert "rate_rps" in message_under(app, "load-mode")
        check(app, run, 1, None)
        await paste_into(app, pilot, "#load-peak-factor", "2")
        assert not app.planner.invalid
        check(app, run, 2, None)


async def test_double_click_on_a_best_fleets_row(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A double click on the highlighted row of Best fleets selects it twice: the second choice
    dismissed the view again, which popped the main screen (ScreenStackError: the app crashed)."""
    pytest.importorskip("planner.tui.screens.fleets")
    fast_fleets(monkeypatch)
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        await pilot.press("f4")
        await pilot.pause(0.3)
        x, y = app.screen.query_one("#fleets-table").region.offset
        for _ in range(2):
            post(app, Event("click", (x + 3, y + 1)))
        await pilot.pause(0.3)
        alive(app, run, 1, None)
        await settle(pilot)
        check(app, run, 2, None)


# ---------------------------------------------------------------------------------------------
# Textual's own bugs (reported): these fail until it, or a guard in PlannerApp, handles them


async def palette_case(case: str) -> None:
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        if case == "page key":
            sequence = [Event("key", "ctrl+p"), Event("key", "down"), Event("key", "pagedown")]
        elif case == "click outside":
            sequence = [Event("key", "ctrl+p"), Event("text", "N"), Event("click", (5, 30))]
        else:
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            x, y = app.screen.query_one(CommandList).region.offset
            sequence = [Event("click", (x + 4, y + 1)) if case == "double click" else Event("key", "enter")] * 2
        for event in sequence:
            post(app, event)
        await pilot.pause(0.3)
        alive(app, run, len(sequence) - 1, sequence[-1])
        await settle(pilot)
        check(app, run, len(sequence), None)


@pytest.mark.parametrize("case", ["double enter", "double click"])
async def test_a_command_chosen_twice_in_the_palette_closes_it_once(sandbox: Path, case: str) -> None:
    """Textual 8.2.8's command palette dismissed itself once per choice: the second popped the main
    screen (ScreenStackError: the app crashed), and ran the command twice. PlannerCommandPalette
    ignores a choice once closed."""
    await palette_case(case)


async def test_the_planner_command_chosen_with_a_double_enter_runs_once(sandbox: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    helps = []
    action_help = PlannerScreen.action_help
    monkeypatch.setattr(PlannerScreen, "action_help", lambda self: helps.append(action_help(self)))
    app = make_app(engine=fast_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        run = await started(pilot)
        await pilot.press("ctrl+p", *"Help: Inputs")
        await pilot.pause(0.3)
        for _ in range(2):
            post(app, Event("key", "enter"))
        await pilot.pause(0.3)
        alive(app, run, 1, None)
        await settle(pilot)
        check(app, run, 2, None)
    assert len(helps) == 1


@pytest.mark.xfail(strict=True, raises=(Failure, KeyError, WorkerFailed),
                   reason="Textual 8.2.8's command palette: a page key before its list is drawn raises KeyError; "
                   "a click outside it while it gathers commands makes its worker fail (NoMatches). Each takes "
                   "the app down; this fails at the first")
async def test_textual_command_palette(sandbox: Path) -> None:
    for case in ("page key", "click outside"):
        await palette_case(case)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """Replay a seed's first EVENTS events in a temporary sandbox, checking after every one."""
    args = [a for a in argv if not a.startswith("--")]
    seed, n = int(args[0]), int(args[1]) if len(args) > 1 else FAST_EVENTS
    with tempfile.TemporaryDirectory() as tmp:
        result = run_seed(seed, n, "--real" in argv, tmp, check_every=1)
    print(result["failure"] or f"seed {seed}: {n} events, no failure")
    return 1 if result["failure"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
