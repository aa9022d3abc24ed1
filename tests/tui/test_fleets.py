"""Pilot tests of the Best fleets view (F4): the engine's search for the selected tier, applied to
the profile with Enter, closed with Escape."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, Tabs
from tui_support import WIDE

from planner.engine.search import search
from planner.profile import default_profile
from planner.service import TOP, excluded_text, search_key
from planner.tui import commands
from planner.tui.app import make_app
from planner.tui.compute import resolve
from planner.tui.screens import fleets
from planner.tui.screens.fleets import FleetsScreen
from planner.tui.screens.main import PlannerScreen
from planner.tui.testing import settle
from planner.tui.widgets.charts import FrontierChart


@pytest.fixture(autouse=True)
def charts_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The main screen's charts (a latency curve, every catalog model for the cost chart) would
    compete with the search for the CPU; these tests do not look at them."""
    monkeypatch.setattr(PlannerScreen, "_start_charts", lambda self: setattr(self, "_charts_due", False))
    monkeypatch.setattr(PlannerScreen, "_show_curve", lambda self: None)


async def wait_for_search(pilot: Pilot, timeout_s: float = 120.0) -> FleetsScreen:
    """Until the view shows the search of its tier (sleeping, so the worker thread gets the GIL)."""
    screen = pilot.app.screen
    assert isinstance(screen, FleetsScreen)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while screen.searching:
        assert loop.time() < deadline, "the search did not finish"
        await asyncio.sleep(0.05)
    await pilot.pause()
    return screen


async def open_fleets(pilot: Pilot) -> FleetsScreen:
    await settle(pilot)
    await pilot.press("f4")
    await pilot.pause()
    return await wait_for_search(pilot)


def cell(screen: FleetsScreen, row: int, column: str) -> str:
    return str(screen.query_one(DataTable).get_cell(str(row + 1), column))


async def test_f4_opens_the_cheapest_fleets_of_the_selected_tier_sorted_by_cost():
    fleets.SEARCHES.clear()  # searched in the worker, not taken from an earlier test
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_fleets(pilot)
        assert screen.tier == app.planner.tier == "medium"
        assert app.focused is screen.query_one(DataTable)  # back from the loading indicator
        assert screen.query_one(Tabs).active == "tier-medium"
        found = screen.found
        table = screen.query_one(DataTable)
        assert found is not None and table.row_count == len(found.rows) >= 2
        costs = [r.usd_month for r in found.rows]
        assert costs == sorted(costs) and all(math.isfinite(c) and c > 0 for c in costs)
        # the table shows those rows, in that order, and every row is the profile's medium model
        shown = [float(cell(screen, i, "$/month").lstrip("~").strip("$").replace(",", "")) for i in range(table.row_count)]
        assert shown == sorted(shown)
        # a fleet nobody measured carries the mark beside its GPU
        shown = [cell(screen, i, "GPU") for i in range(table.row_count)]
        assert shown == [r.gpu + ("" if r.validated else " ?") for r in found.rows]
        assert not all(r.validated for r in found.rows)  # vLLM was never measured on Blackwell: the B200 rows say so
        assert {r.model for r in found.rows} == {"llama-3.1-70b"}
        assert all(r.replicas >= 1 and r.gpus == r.replicas * r.tp for r in found.rows)
        assert all(r.ttft_p99_ms <= 2000 and r.tpot_p99_ms <= 100 for r in found.rows)  # the default targets
        # the engine's own answer (what `planner search --tier medium` prints)
        profile = app.planner.profile
        inputs = resolve(profile, Path.cwd())
        (engine,) = search(inputs.scenario, ["medium"], None, TOP, False, inputs.custom_gpus,
                           inputs.custom_models)
        assert [(c.gpu.id, c.config.tp, round(c.usd_month, 2)) for c in engine.ranked] == \
            [(r.gpu, r.tp, round(r.usd_month, 2)) for r in found.rows]
        assert found.excluded == engine.excluded and found.screened == engine.screened
        # the exclusions line, and the frontier chart drawn from the same rows
        excluded = str(screen.query_one("#fleets-excluded", Static).render())
        assert excluded_text(found) in excluded
        chart = screen.query_one(FrontierChart)
        assert [p.usd_month for p in chart.ranked] == costs and chart.frontier
        assert chart.highlight == fleets.fleet_point(found.rows[0])


async def test_choosing_row_2_applies_its_fleet_and_the_plan_follows():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        before = app.planner.result.tier_data("medium")
        screen = await open_fleets(pilot)
        row = screen.found.rows[1]
        await pilot.press("down")
        await pilot.pause()
        assert screen.query_one(FrontierChart).highlight == fleets.fleet_point(row)
        await pilot.press("enter")
        await settle(pilot)
        planner = app.planner
        assert app.screen is planner and planner.dirty and "modified" in app.sub_title
        profile = planner.profile
        assert profile.fleet.gpu == row.gpu
        opt = profile.optimizations
        assert (opt.tp, opt.weights, opt.kv) == (row.tp, row.weights, row.kv)
        assert (opt.max_num_seqs, opt.max_num_batched_tokens) == (row.max_num_seqs, row.max_num_batched_tokens)
        assert profile.models.medium == row.model
        # the inputs show it, and the plan of the applied inputs is the search's fleet at its cost
        assert str(planner.query_one("#optimizations-tp").value) == str(row.tp)
        assert planner.result.inputs.profile == profile
        after = planner.result.tier_data("medium")
        assert after["feasible"] and after["gpu"] == row.gpu and after["tp"] == row.tp
        assert after["gpus"] == row.gpus and after["replicas"] == row.replicas
        assert after["usd_month"] == pytest.approx(row.usd_month, abs=0.01)
        assert after["usd_month"] != before["usd_month"] or after["gpu"] != before["gpu"]
        assert after["tpot_ms"]["p99"] == pytest.approx(row.tpot_p99_ms, abs=0.01)
        assert after["e2e_ms"]["p99"] == pytest.approx(row.e2e_p99_ms, abs=0.01)
        assert planner.tier == "medium"


async def test_escape_closes_without_changes_even_while_searching(monkeypatch: pytest.MonkeyPatch):
    fleets.SEARCHES.clear()
    gate = threading.Event()  # the search waits for it: the test decides when it finishes
    real_search = fleets.fleet_search

    def gated_search(*args, **kwargs):
        assert gate.wait(60)
        return real_search(*args, **kwargs)

    monkeypatch.setattr(fleets, "fleet_search", gated_search)
    app = make_app()
    try:
        await escape_while_searching(app, gate)
    finally:
        gate.set()  # never leave the worker thread waiting


async def escape_while_searching(app, gate: threading.Event) -> None:
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        profile, result = app.planner.profile, app.planner.result
        await pilot.press("f4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetsScreen) and screen.searching
        assert screen.query_one(DataTable).loading
        assert "Searching llama-3.1-70b" in str(screen.query_one("#fleets-summary", Static).render())
        await pilot.press("escape")  # the worker thread keeps the search; the UI does not wait for it
        await pilot.pause()
        assert app.screen is app.planner and screen.searching
        assert app.planner.profile == profile and not app.planner.dirty and app.planner.result is result
        # once the search is done, reopening shows it at once
        gate.set()
        key = search_key(profile, app.planner.base_dir, "medium", False)
        for _ in range(2400):
            if fleets.SEARCHES.get(key) is not None:
                break
            await asyncio.sleep(0.05)
        await pilot.press("f4")
        await pilot.pause()
        assert not app.screen.searching and app.screen.found.rows
        assert app.focused is app.screen.query_one(DataTable)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.planner and app.planner.profile == profile and not app.planner.dirty


async def test_switching_tier_searches_that_tier():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_fleets(pilot)
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert screen.tier == "large" and screen.query_one(Tabs).active == "tier-large"
        await wait_for_search(pilot)
        assert {r.model for r in screen.found.rows} == {"llama-3.1-405b"}
        await pilot.click("#tier-small")
        await pilot.pause()
        assert screen.tier == "small"
        await wait_for_search(pilot)
        assert screen.found.tier == "small" and {r.model for r in screen.found.rows} == {"llama-3.2-3b"}
        await pilot.press("enter")
        await settle(pilot)
        assert app.planner.tier == "small" and app.planner.profile.fleet.gpu == screen.found.rows[0].gpu


async def test_all_models_can_change_the_tier_model():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_fleets(pilot)
        await pilot.press("ctrl+a")
        await pilot.pause()
        await wait_for_search(pilot)
        found = screen.found
        assert found.models and "llama-3.1-70b" in found.models and len(found.models) > 1
        assert found.screened > 1 and found.rows
        cheapest = found.rows[0]
        await pilot.press("enter")
        await settle(pilot)
        assert app.planner.profile.models.medium == cheapest.model
        medium = app.planner.result.tier_data("medium")
        assert medium["model"] == cheapest.model and medium["usd_month"] == pytest.approx(cheapest.usd_month, abs=0.01)


async def test_the_palette_of_the_view_runs_its_commands():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, FleetsScreen)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"fleets close")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.screen is app.planner and not app.planner.dirty


def test_the_view_declares_its_commands_once():
    bindings = {b.id: b for b in FleetsScreen.BINDINGS}
    for command in commands.FLEETS_COMMANDS:
        binding = bindings[f"fleets.{command.id}"]
        assert binding.key == command.key and binding.action == command.action and binding.show
        assert command.title.startswith("Fleets: ") and command.help
    opener = commands.BY_ID["best-fleets"]
    assert opener.key == "f4" and opener.title == "Plan: Best fleets…"
    assert opener.key not in {c.key for c in commands.COMMANDS if c is not opener}


def test_a_choice_is_validated_like_an_edit():
    profile = default_profile()
    row = fleets.FleetRow("llama-3.1-70b", "mi300x", "fp8", "fp8", 1, 64, 2048, 3, 3, 4051.5, 900.0, 57.0,
                          32000.0, "TPOT p99")
    applied = fleets.FleetChoice("medium", row).apply(profile)
    assert applied.fleet.gpu == "mi300x" and applied.optimizations.tp == 1
    assert applied.optimizations.kv == "fp8" and applied.optimizations.max_num_batched_tokens == 2048
    assert applied.models == profile.models and applied.load == profile.load
