"""Snapshot of the Best fleets view (pytest-textual-snapshot). The docstring says what a reviewer
should see. Update with `pytest tests/tui/test_fleets_snapshot.py --snapshot-update` only after
looking at the report: the rows come from the engine's search, so an engine change changes them."""

from __future__ import annotations

import asyncio

from textual.pilot import Pilot
from tui_support import WIDE

from planner.tui.screens.fleets import FleetsScreen


class TestBestFleets:
    def test_medium(self, snap):
        """F4 on the built-in default profile at 160x48: the medium tab selected; llama-3.1-70b on 25
        GPU types with the current plan (4×h100-sxm TP4) for comparison; five ranked fleets, cheapest
        first, row 1 highlighted and marked ★ (on the frontier); the exclusion counts under the table
        (no note: the search finished); the chart of $/month against p99 E2E with the frontier ◆, the
        highlighted row ● and the current plan ▲. No loading indicator: the search has finished."""

        async def best_fleets(pilot: Pilot) -> None:
            await pilot.press("f4")
            await pilot.pause()
            screen = pilot.app.screen
            assert isinstance(screen, FleetsScreen)
            for _ in range(2400):
                if not screen.searching:
                    break
                await asyncio.sleep(0.05)
            assert screen.found is not None and screen.found.rows
            await pilot.pause()

        assert snap(actions=best_fleets, size=WIDE)
