"""Frames drawn as soon as they are due.

A Textual screen draws through a repeating timer that is paused while nothing changed and resumed
when a widget needs a repaint. After it has been paused, Textual's timer (8.x) skips to the tick
after the next one (textual/timer.py: `count = int(elapsed / interval + 1)`, then the next tick at
`(count + 1) * interval`), so a frame that follows another one closely went out one to two
intervals later than the frame rate allows. A keystroke draws twice: the echo of the typed
character at once, the plan ~5-35 ms later; that second frame waited 8-17 ms more at 120 fps.

`FrameTimer` keeps the frame rate cap (at most one tick per interval) without the skip: a frame
that is due goes out when the previous one is an interval old, or at once if it is older.
`PromptFrames` gives a screen that timer, and `after_next_frame` to keep a far-off repaint (the
header's title) out of the frame that carries the plan.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from textual import screen as textual_screen
from textual.timer import EventTargetGone, Timer


def frame_wait_s(last_frame_s: float, now_s: float, interval_s: float) -> float:
    """How long a due frame waits: until the previous frame is one interval old, else not at all."""
    return max(0.0, last_frame_s + interval_s - now_s)


class FrameTimer(Timer):
    """A screen's update timer without the skipped tick (see the module's docstring)."""

    async def _run(self) -> None:
        last_frame_s = -math.inf
        count = 0
        while True:
            await self._active.wait()  # paused until the screen has something to draw
            wait_s = frame_wait_s(last_frame_s, time.monotonic(), self._interval)
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


# Textual internals the timer relies on; another Textual version keeps its own timer (and
# after_next_frame runs its callback at once).
SUPPORTED = (all(hasattr(Timer, name) for name in ("_run", "_tick", "_active", "_start"))
             and isinstance(getattr(textual_screen.Screen, "_update_timer", None), property)
             and hasattr(textual_screen.Screen, "_on_timer_update")
             and hasattr(textual_screen, "UPDATE_PERIOD"))


class PromptFrames:
    """Screen mixin: the screen's update timer is a FrameTimer (when this Textual has the hooks),
    and `after_next_frame` defers a repaint until the next frame is out."""

    _frame_timer: Timer | None = None
    _after_frame: list[Callable[[], object]] | None = None

    def after_next_frame(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the next frame has been drawn. Textual repaints the box around
        everything that changed: a one-row change at the top drawn in the same frame as a change
        lower down on the right repaints the whole width in between (the input panes too)."""
        if not SUPPORTED:
            self.call_later(callback)  # type: ignore[attr-defined]
            return
        if self._after_frame is None:
            self._after_frame = []
        self._after_frame.append(callback)

    def _on_timer_update(self) -> None:
        drawing = any(getattr(self, name, True) for name in ("_dirty_widgets", "_layout_required", "_repaint_required"))
        super()._on_timer_update()  # type: ignore[misc]
        if drawing and self._after_frame:
            callbacks, self._after_frame = self._after_frame, None
            for callback in callbacks:
                self.call_later(callback)  # type: ignore[attr-defined]

    @property
    def _update_timer(self) -> Timer:
        if not SUPPORTED:
            return super()._update_timer  # type: ignore[misc]
        if self._frame_timer is None:
            timer = FrameTimer(self, textual_screen.UPDATE_PERIOD, name="screen_update",  # type: ignore[arg-type]
                               callback=self._on_timer_update, pause=True)  # type: ignore[attr-defined]
            timer._start()
            self._timers.add(timer)  # type: ignore[attr-defined]  # stopped with the screen, as set_interval's are
            self._frame_timer = timer
        return self._frame_timer
