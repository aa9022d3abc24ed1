"""What the start-up leaves out or defers: the numeric engine is not imported before the first
frame, a picker's drop-down list is mounted after it, and the garbage collector paused meanwhile
is running again (and nothing stays frozen) once the app is up and after it exits."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from textual.app import App, ComposeResult
from tui_support import WIDE, record_layout_refreshes

from planner.tui.app import make_app
from planner.tui.testing import settle
from planner.tui.textual_private import DeferredListSelect, PickerOverlay
from planner.tui.widgets.panes import Picker

ROOT = Path(__file__).resolve().parent.parent.parent


def test_importing_the_tui_leaves_the_engine_and_the_collector_alone():
    code = (
        "import gc, json, sys\n"
        "import planner.tui.app\n"
        "heavy = ['numpy', 'planner.engine.plan', 'planner.engine.serving', 'planner.engine.roofline']\n"
        "print(json.dumps([[m for m in heavy if m in sys.modules], gc.isenabled()]))\n"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(proc.stdout) == [[], True]


async def test_the_collector_runs_once_the_app_is_up_and_after_it_exits():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert gc.isenabled()
        assert app.planner.result is not None
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


class OnePicker(App[None]):
    def compose(self) -> ComposeResult:
        yield Picker([("one", 1), ("two", 2), ("three", 3)], value=2, allow_blank=False, id="picker")


async def test_a_picker_opened_before_its_list_is_mounted_opens_with_it(monkeypatch):
    monkeypatch.setattr(DeferredListSelect, "on_mount", lambda self: None)  # the list waits until the test mounts it
    app = OnePicker()
    async with app.run_test() as pilot:
        picker = app.query_one(Picker)
        assert not picker.query(PickerOverlay)
        assert picker.value == 2 and picker.has_class("-textual-compact")
        picker.value = 3  # before the list exists: the label follows
        await pilot.pause()
        assert "three" in str(picker.query_one("SelectCurrent #label").render())
        picker.action_show_overlay()
        await pilot.pause()
        assert picker.expanded and not picker.has_class("-expanded")
        await picker.mount_list()  # what on_mount schedules after the first frame
        await pilot.pause()
        overlay = picker.query_one(PickerOverlay)
        assert picker.has_class("-expanded") and overlay.display
        assert overlay.option_count == 3 and overlay.highlighted == 2
        assert app.focused is overlay
        await pilot.press("up", "up", "enter")
        await pilot.pause()
        assert picker.value == 1 and not picker.expanded
        assert overlay.highlighted == 0


class OneField(App[None]):
    CSS = "Input { width: 20; height: 1; }"

    def compose(self) -> ComposeResult:
        from planner.tui.fields import BY_ID
        from planner.tui.widgets.panes import input_for

        yield input_for(BY_ID["load-rate-rps"], "10")


async def test_typing_in_a_field_repaints_it_without_reflowing_the_screen(monkeypatch):
    # Input sizes its scroll area to its text, a layout property: every keystroke reflowed and
    # redrew the whole screen. A field's box comes from the CSS, so only the field is repainted.
    app = OneField()
    async with app.run_test() as pilot:
        field = app.query_one("Input")
        field.focus()
        await pilot.press("end")
        await pilot.pause()
        layouts = record_layout_refreshes(monkeypatch)
        await pilot.press("5", "backspace", "backspace", "7")
        await pilot.pause()
        assert field.value == "17"
        assert field.virtual_size.width == field.content_width  # scrolling still knows the text's width
    assert layouts == []


async def test_the_modified_marker_repaints_the_title_without_reflowing_the_screen(monkeypatch):
    # the first edit after opening or saving adds " · modified" to the header's sub-title; Textual's
    # HeaderTitle asked for a layout pass on every title change, which redrew the whole screen
    from planner.tui.app import PlannerApp
    from planner.tui.widgets.header import FixedTitle

    app = PlannerApp()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        title = app.screen.query_one(FixedTitle)
        layouts = record_layout_refreshes(monkeypatch)
        app.sub_title = "chatbot-h100 · built-in default · modified"
        await pilot.pause()
        assert "modified" in str(title.render())
    assert "FixedTitle" not in layouts


async def test_the_first_edit_marks_the_title_modified_without_repainting_the_screen(monkeypatch):
    # App.sub_title is a repainting reactive: setting it repainted every widget on the screen each
    # time " · modified" came or went (~20 ms of that keystroke's redraw); the title alone repaints
    from textual.widget import Widget

    from planner.tui.app import PlannerApp
    from planner.tui.testing import settle
    from planner.tui.widgets.header import FixedTitle

    app = PlannerApp()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        screen = app.planner
        repainted: list[str] = []
        refresh = Widget.refresh

        def recording(self, *regions, **kw):
            if self is screen or self is app:
                repainted.append(type(self).__name__)
            return refresh(self, *regions, **kw)

        field = screen.query_one("#load-rate-rps")
        field.focus()
        await pilot.press("end")
        await settle(pilot)
        monkeypatch.setattr(Widget, "refresh", recording)
        await pilot.press("5")
        await settle(pilot)
        assert screen.dirty and "modified" in app.sub_title
        assert "modified" in str(screen.query_one(FixedTitle).render())
        await pilot.press("backspace")
        await settle(pilot)
        assert not screen.dirty and "modified" not in app.sub_title
        assert "modified" not in str(screen.query_one(FixedTitle).render())
        assert repainted == []
