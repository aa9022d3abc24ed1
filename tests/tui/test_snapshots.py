"""Snapshot tests of the planner TUI (pytest-textual-snapshot). Each docstring says what a
reviewer should see. Update with `pytest tests/tui --snapshot-update` only after looking at the
report: the numbers come from the engine, so an engine change legitimately changes them."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from tui_support import DATA, NARROW


class TestMainScreen:
    def test_default(self, snap):
        """The built-in default profile at 160x48: four input panes on the left (the first input has
        the focus, so Model tier is highlighted), three tiers side by side (all ✓ OK) with their API bill,
        which is cheaper and the break-even load, the medium tier's detail (memory bar, bound, sizing,
        the API line: DeepInfra's price, the API cheaper, never breaking even; TP options), the
        latency-vs-load chart with both targets and the peak line, and the cost-vs-size chart."""
        assert snap()

    def test_narrow(self, snap):
        """80x24: narrower input panes (scrollable) and the results in a scrolling column; the
        table fits with short labels."""
        assert snap(size=NARROW)

    @pytest.mark.parametrize("pane", ["models", "fleet", "load", "optimizations"])
    def test_pane_focused(self, snap, pane):
        """One pane focused (its border and title in the accent colour), its first input focused."""

        async def focus(pilot: Pilot) -> None:
            # one focus change (each re-lays out the footer); F6/Shift+F6 are covered by test_flows
            target = pilot.app.planner.query_one(f"#pane-{pane}")
            target.query("Input, Select").first().focus()
            await pilot.pause()
            assert pilot.app.focused is not None and target in pilot.app.focused.ancestors

        assert snap(actions=focus)

    def test_invalid_input(self, snap):
        """The peak rate reads 'abc': the input is marked invalid with the allowed range under it,
        the status line says one input is invalid, and the plan for 10 req/s stays on screen."""

        async def type_bad(pilot: Pilot) -> None:
            pilot.app.planner.query_one("#load-rate-rps").focus()
            await pilot.press("a", "b", "c")

        assert snap(actions=type_bad)


class TestPlans:
    def test_infeasible(self, snap):
        """bf16 weights and a 10 ms TPOT target: small is OK; medium is infeasible (its TPOT p99 cell
        shows the zero-load floor above the target, ✗); large is infeasible because 405B bf16 does
        not fit (selected: the memory bar overflows in red and the reason is spelled out)."""

        async def select_large(pilot: Pilot) -> None:
            await pilot.press("ctrl+t")

        assert snap(DATA / "infeasible.toml", actions=select_large)

    def test_overloaded(self, snap):
        """40 req/s on a fleet capped at 8 GPUs (fleet.max_gpus): medium and large show ✗ overloaded,
        ∞ latencies marked ✗, and the detail names the fleet limit, the offered and the maximum load."""
        assert snap(DATA / "overloaded.toml")


class TestScreens:
    def test_save_dialog(self, snap):
        """F2 opens 'Save profile as' over the main screen, in ~/.config/planner/profiles, with the
        profile's name as the file name."""

        async def save_as(pilot: Pilot) -> None:
            await pilot.press("f2")
            await pilot.pause()

        assert snap(actions=save_as)

    def test_export_dialog(self, snap):
        """F3 asks what to export: the plan as TOML, the engine's server commands, Kubernetes
        manifests or benchmark commands (what `planner export --to` writes)."""

        async def export(pilot: Pilot) -> None:
            await pilot.press("f3")
            await pilot.pause()

        assert snap(actions=export)

    def test_help(self, snap):
        """F1 shows the help: keys table first, then inputs, results and sources below."""

        async def show_help(pilot: Pilot) -> None:
            await pilot.press("f1")
            await pilot.pause()

        assert snap(actions=show_help)



class TestApiChart:
    def test_small_tier_against_the_api(self, snap):
        """The small tier against the profile's $0.06/$0.06 API price ([api] small), selected and
        scrolled to the bottom: the chart of $/month against load, the self-hosted staircase (one
        step per 1-GPU replica), the API's straight line through the origin, the planned load
        ("now 10 req/s", where the line is still below the first step: the API is cheaper) and the
        break-even load (◆, about 15 req/s) where the line crosses the first step."""

        async def small_and_scroll(pilot: Pilot) -> None:
            await pilot.press("ctrl+t")  # large
            await pilot.press("ctrl+t")  # small
            await pilot.pause()
            pilot.app.planner.query_one("#results").scroll_end(animate=False)
            await pilot.pause()

        assert snap(DATA / "api-price.toml", actions=small_and_scroll)
