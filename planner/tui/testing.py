"""Helpers for driving the planner headless (tests, the benchmark, the screenshot script)."""

from __future__ import annotations

import asyncio

from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from planner.tui.app import PlannerApp
from planner.tui.textual_private import send_from_driver


async def settle(pilot: Pilot, timeout_s: float = 120.0) -> None:
    """Wait until no plan or chart computation is running or queued and the UI has caught up.

    Between checks it sleeps rather than spinning `pilot.pause()`, which would keep the event loop
    busy (and hold the GIL) while a worker thread computes or a timer is pending."""
    app = pilot.app
    assert isinstance(app, PlannerApp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.planner
        if screen.settled and screen.shown_generation == screen.generation:
            await pilot.pause()
            if screen.settled:
                return
        await asyncio.sleep(0.02)
    raise TimeoutError("the planner did not settle")


def stop_blinking(app: PlannerApp) -> None:
    """Freeze text cursors (blinking runs on a wall-clock timer; screenshots must not depend on it)."""
    for widget in app.query(Input):
        widget.cursor_blink = False
    for screen in app.screen_stack:
        for widget in screen.query(Input):
            widget.cursor_blink = False


def send_keys(app: PlannerApp, *keys: str) -> None:
    """Hand keys to the app the way a terminal's driver does, without waiting between them (a
    burst, as fast typing or a terminal that delivers several at once). `pilot.press` also waits
    for every widget of the screen to drain its queue (a callback posted to each of ~370 widgets),
    work a real keystroke never causes."""
    for key in keys:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        send_from_driver(app, event)
