"""Every use of Textual's private names, in one module, for the tested Textual (TESTED_TEXTUAL, as
pyproject.toml pins it). Each use says why the public API cannot do the job. Another Textual may
rename or drop any of them: `problems()` names what this installation lacks, and
tests/tui/test_textual_private.py fails with that list when the installed Textual is not the tested
one. The rest of the planner's UI uses the public API only.

What the public API did the same job for, and is used instead: a public `on_key` handler (Input's
key handling, before Textual's own), `Widget.get_content_height` (a Static's text height) and the
frame rate given to the planner's own frame timer (no TEXTUAL_FPS set on import). `textual.lazy.Lazy`
defers mounting a whole widget; the pickers defer a child that Select's own methods look up on
every value change, so it cannot replace DeferredListSelect below.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Callable, Iterable
from importlib import import_module
from importlib.metadata import version
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.timer import EventTargetGone, Timer
from textual.widget import Widget
from textual.widgets import Input, Select

from planner.tui.widgets.preset import preset

TESTED_TEXTUAL = ((8, 2), (8, 3))  # >=8.2,<8.3: the range pyproject.toml pins

# (module, attribute path): every private name below, checked by problems().
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("textual.widgets._header", "HeaderTitle"),
    ("textual.widgets._select", "SelectCurrent"),
    ("textual.widgets._select", "SelectOverlay"),
    ("textual.timer", "Timer._run"),
    ("textual.timer", "Timer._tick"),
    ("textual.timer", "Timer._start"),
    ("textual.timer", "Timer._active"),
    ("textual.timer", "Timer._interval"),
    ("textual.timer", "Timer._reset"),
    ("textual.screen", "Screen._update_timer"),
    ("textual.screen", "Screen._on_timer_update"),
    ("textual.screen", "Screen._timers"),
    ("textual.screen", "Screen._dirty_widgets"),
    ("textual.screen", "Screen._layout_required"),
    ("textual.screen", "Screen._repaint_required"),
    ("textual.widgets", "OptionList._move_page"),
    ("textual.widgets", "Select._setup_options_renderables"),
    ("textual.widgets", "Select._watch_value"),
    ("textual.widgets", "Select._watch_expanded"),
    ("textual.widgets", "Select._options"),
    ("textual.widgets", "Select._allow_blank"),
    ("textual.widgets", "Select._type_to_search"),
    ("textual.widgets", "Select._value"),
    ("textual.widgets", "Input._watch_value"),
    ("textual.widgets", "Input._restart_blink"),
    ("textual.widgets", "Input._bindings"),
    ("textual.app", "App._driver"),
)


def _has(owner: Any, name: str) -> bool:
    """A class attribute, or an instance attribute some class of the MRO assigns in its source."""
    if hasattr(owner, name):
        return True
    if not inspect.isclass(owner):
        return False
    for cls in owner.__mro__:
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if f"self.{name} =" in source or f"self.{name}:" in source:
            return True
    return False


def problems() -> list[str]:
    """What keeps this installation from being the tested one: the Textual version outside
    TESTED_TEXTUAL, and every private name it lacks. Empty when all is as tested."""
    found: list[str] = []
    installed = version("textual")
    major_minor = tuple(int(part) for part in installed.split(".")[:2])
    low, high = TESTED_TEXTUAL
    if not low <= major_minor < high:
        found.append(f"Textual {installed} is installed; the planner is tested with "
                     f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}")
    for module_name, path in PRIVATE_NAMES:
        try:
            owner: Any = import_module(module_name)
        except ImportError:
            found.append(f"{module_name} (module) is missing")
            continue
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        if owner is None or not _has(owner, name):
            found.append(f"{module_name}.{path} is missing")
    return found


# --------------------------------------------------------------------------------------------
# Header: the title widget. textual.widgets exports Header but not the HeaderTitle inside it, whose
# update() the planner makes repaint without a layout pass (widgets/header.py).

from textual.widgets._header import HeaderTitle  # noqa: E402, F401

# The pickers' parts: textual.widgets.select exports neither the label nor the drop-down list.
from textual.widgets._select import SelectCurrent, SelectOverlay  # noqa: E402

# --------------------------------------------------------------------------------------------
# Frames. A screen draws through a private repeating timer (Screen._update_timer) that Textual
# creates and resumes itself; no public hook replaces it or says when a frame went out.

SCREEN_TIMER_SUPPORTED = (all(_has(Timer, name) for name in ("_run", "_tick", "_active", "_start"))
                          and isinstance(getattr(Screen, "_update_timer", None), property)
                          and hasattr(Screen, "_on_timer_update"))


class FrameTimer(Timer):
    """A screen's update timer whose next tick is `wait_s(last_frame_s, now_s, interval_s)` away:
    Timer._run is the loop that decides when a tick goes out, and it has no public parameter."""

    def __init__(self, *args: Any, wait_s: Callable[[float, float, float], float], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.wait_s = wait_s

    async def _run(self) -> None:
        last_frame_s = -math.inf
        count = 0
        while True:
            await self._active.wait()  # paused until the screen has something to draw
            wait_s = self.wait_s(last_frame_s, time.monotonic(), self._interval)
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                await self._active.wait()
            self._reset = False  # nothing to restart: each tick is timed from the previous one
            last_frame_s = time.monotonic()
            count += 1
            try:
                await self._tick(next_timer=last_frame_s, count=count)
            except EventTargetGone:
                break


class ScreenFrameHooks:
    """Screen mixin: the screen's update timer is a FrameTimer ticking every `frame_interval_s`,
    timed by `frame_wait_s`, and `frame_drawn()` runs after each tick that drew something. Without
    the hooks (another Textual) the screen keeps Textual's own timer and frame_drawn never runs."""

    frame_interval_s: ClassVar[float]
    frame_wait_s: ClassVar[Callable[[float, float, float], float]]
    _frame_timer: Timer | None = None

    def frame_drawn(self) -> None:
        """Called after a frame that drew something."""

    def _on_timer_update(self) -> None:
        drawing = any(getattr(self, name, True) for name in ("_dirty_widgets", "_layout_required", "_repaint_required"))
        super()._on_timer_update()  # type: ignore[misc]
        if drawing:
            self.frame_drawn()

    @property
    def _update_timer(self) -> Timer:
        if not SCREEN_TIMER_SUPPORTED:
            return super()._update_timer  # type: ignore[misc]
        if self._frame_timer is None:
            timer = FrameTimer(self, self.frame_interval_s, name="screen_update",  # type: ignore[arg-type]
                               callback=self._on_timer_update, pause=True, wait_s=type(self).frame_wait_s)
            # what Screen's own property does through set_interval, which takes no timer class:
            # start it, and stop it with the screen
            timer._start()
            self._timers.add(timer)  # type: ignore[attr-defined]
            self._frame_timer = timer
        return self._frame_timer


# --------------------------------------------------------------------------------------------
# Pickers: a Select whose drop-down list (SelectOverlay) is mounted after the first frame. Select
# composes the list itself and reaches it from private watchers (_watch_value,
# _setup_options_renderables) on every value change; only overriding those defers it.


class PickerOverlay(SelectOverlay):
    """A picker's drop-down list. OptionList finds the highlighted option's line in a cache it
    fills once it has a size: a PageDown or PageUp that arrives in the frame a click opened the
    list raised KeyError (Textual 8.2) and took the app down. _move_page is where it is read."""

    def _move_page(self, direction: Any) -> None:
        if self.scrollable_content_region:
            super()._move_page(direction)


class DeferredListSelect(Select):
    """A Select whose list is mounted once the first frame is out; opening it before then opens it
    as soon as the list is mounted."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._overlay: PickerOverlay | None = None

    def compose(self) -> ComposeResult:
        current = SelectCurrent(self.prompt)
        if not self._allow_blank:
            preset(current, SelectCurrent.has_value, True, "-has-value")  # it always shows a value
        yield current

    def on_mount(self) -> None:
        self.call_after_refresh(self.mount_list)

    async def mount_list(self) -> None:
        if self._overlay is not None:
            return
        overlay = preset(PickerOverlay(type_to_search=self._type_to_search), SelectOverlay.compact, self.compact,
                         "-textual-compact")
        await self.mount(overlay)
        if overlay.parent is not self or not overlay.is_attached:
            return  # the app closed meanwhile
        self._overlay = overlay
        super()._setup_options_renderables()
        for index, (_prompt, value) in enumerate(self._options):
            if value == self.value:
                overlay.highlighted = index  # as Select._watch_value keeps it
                break
        if self.expanded:
            self._watch_expanded(True)

    def option_values(self) -> list[Any]:
        """The options' values, in the order the list shows them."""
        return [value for _prompt, value in self._options]

    def _setup_options_renderables(self) -> None:
        if self._overlay is not None:  # else the list gets the options when it is mounted
            super()._setup_options_renderables()

    def _watch_value(self, value: Any) -> None:
        if self._overlay is not None:
            super()._watch_value(value)
            return
        # Select._watch_value without the list's highlight (set when the list is mounted)
        self._value = value
        current = self.query_children(SelectCurrent)
        if not current:
            return
        if value == self.NULL:
            current.first().update(self.NULL)
        else:
            for prompt, option in self._options:
                if option == value:
                    current.first().update(prompt)
                    break
        self.post_message(self.Changed(self, value))

    def action_show_overlay(self) -> None:
        if self._overlay is not None:
            super().action_show_overlay()
            return
        self.query_one(SelectCurrent).has_value = True
        self.expanded = True  # shown by mount_list


# --------------------------------------------------------------------------------------------
# Inputs


class SteadyBoxInput(Input):
    """An Input whose box comes from the CSS, never from its text. Input's private value watcher
    sizes its scroll area to the text (a layout property, so each keystroke reflowed the whole
    screen); the new size is set quietly first, so the watcher finds it unchanged."""

    def _watch_value(self, value: str) -> None:
        if not self.styles.auto_dimensions:
            self.set_reactive(Widget.virtual_size, Size(self.content_width, 1))
            self.refresh()
        super()._watch_value(value)


def own_bindings(widget: Input, key: str) -> Iterable[Binding]:
    """The widget's own bindings for a key. The public active_bindings are the whole focus
    chain's, resolved once the key has bubbled to the app: too late for keys typed in a burst."""
    return widget._bindings.key_to_bindings.get(key, ())


def restart_blink(widget: Input) -> None:
    """Show the cursor at once after a key, as Input does for the keys it handles itself."""
    widget._restart_blink()


def send_from_driver(app: App, message: Any) -> None:
    """Hand a message to the app the way the terminal's driver does (no public call queues input
    without also waiting for the screen's widgets: Pilot.press does)."""
    app._driver.send_message(message)  # type: ignore[union-attr]
