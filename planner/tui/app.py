"""The planner TUI: `planner [PROFILE.toml]` opens a profile (or the built-in default) in the
interactive planner. `make_app` is the one factory used by the CLI, the tests, the screenshot
script and the benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

from planner.tui import gcpause

with gcpause.paused():  # Textual, pydantic and the screens: ~90k objects the collector need not scan
    from textual.app import App

    from planner.profile import LoadedProfile, ProfileError, default_profile, default_profile_text, load_profile
    from planner.tui.compute import Evaluate
    from planner.tui.palette import PlannerCommandPalette
    from planner.tui.screens.main import PlannerScreen


class PlannerApp(App[int]):
    CSS_PATH = ["app.tcss", "dialogs.tcss"]
    TITLE = "planner"

    def __init__(self, loaded: LoadedProfile | None = None, *, engine: Evaluate | None = None) -> None:
        super().__init__()
        self.loaded = loaded
        self.engine = engine

    def on_load(self) -> None:
        gcpause.pause()  # until the first frame is out (PlannerScreen.on_mount resumes it)

    def on_unmount(self) -> None:
        gcpause.release()

    def get_default_screen(self) -> PlannerScreen:
        width = self.size.width
        if self.loaded is None:
            return PlannerScreen(default_profile(), engine=self.engine, width=width, text=default_profile_text())
        return PlannerScreen(self.loaded.profile, self.loaded.path, self.loaded.mtime_ns, engine=self.engine,
                             width=width, text=self.loaded.text)

    @property
    def planner(self) -> PlannerScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, PlannerScreen)
        return screen

    def action_command_palette(self) -> None:
        """Textual's command palette, with a choice made twice ignored (planner.tui.palette)."""
        if self.use_command_palette and not PlannerCommandPalette.is_open(self):
            self.push_screen(PlannerCommandPalette(id="--command-palette"))

    async def action_quit(self) -> None:
        """Quit, asking first when the inputs have unsaved changes."""
        if len(self.screen_stack) > 1 and self.planner.dirty:
            return  # a dialog is open; answer it first
        self.planner.request_quit()


def make_app(profile_path: str | Path | None = None, *, engine: Evaluate | None = None) -> PlannerApp:
    """The app for a profile file (None: the built-in default). Raises ProfileError."""
    loaded = load_profile(Path(profile_path)) if profile_path else None
    return PlannerApp(loaded, engine=engine)


def run(profile_path: str | None) -> int:
    try:
        app = make_app(profile_path)
    except ProfileError as exc:
        print(f"planner: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = app.run()
    finally:
        from planner.engine.helper import HELPER

        HELPER.shutdown()
    return result if isinstance(result, int) else 0
