"""Fixtures for the TUI tests: a private config folder, no cursor blink, and helpers that wait
until the plan and chart workers have finished (so every snapshot is deterministic)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from tui_support import WIDE

from planner.tui.app import make_app
from planner.tui.testing import settle


@pytest.fixture(autouse=True)
def private_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """User profiles go to a temporary folder, shown as ~/.config/planner/profiles."""
    home = tmp_path / "home"
    config = home / ".config" / "planner"
    (config / "profiles").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PLANNER_CONFIG_DIR", str(config))
    monkeypatch.chdir(tmp_path)
    return config / "profiles"


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor runs on a wall-clock timer and makes snapshots flaky; animations (scrolling
    a pane into view) only cost frames in tests."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr("textual.constants.TEXTUAL_ANIMATIONS", "none")


@pytest.fixture
def snap(snap_compare) -> Callable[..., bool]:
    """snap_compare for the planner: builds the app, runs `actions`, waits until it settles."""

    def compare(profile: str | Path | None = None, actions: Callable[[Pilot], Awaitable[None]] | None = None,
                size: tuple[int, int] = WIDE, engine=None) -> bool:
        app = make_app(profile, engine=engine)
        app.animation_level = "none"

        async def run_before(pilot: Pilot) -> None:
            await settle(pilot)
            if actions is not None:
                await actions(pilot)
                await settle(pilot)

        return snap_compare(app, terminal_size=size, run_before=run_before)

    return compare
