"""Frames drawn as soon as they are due.

A Textual screen draws through a repeating timer that is paused while nothing changed and resumed
when a widget needs a repaint. After it has been paused, Textual's timer (8.x) skips to the tick
after the next one (textual/timer.py: `count = int(elapsed / interval + 1)`, then the next tick at
`(count + 1) * interval`), so a frame that follows another one closely went out one to two
intervals later than the frame rate allows. A keystroke draws twice: the echo of the typed
character at once, the plan ~5-35 ms later; that second frame waited 8-17 ms more at 120 fps.

`PromptFrames` gives a screen a timer (textual_private.FrameTimer) that keeps the frame rate cap
(at most one tick per interval) without the skip: a frame that is due goes out when the previous
one is an interval old, or at once if it is older. It draws at FRAMES_PER_S, and
`after_next_frame` keeps a far-off repaint (the header's title) out of the frame that carries
the plan.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from textual import constants

from planner.tui.textual_private import SCREEN_TIMER_SUPPORTED, FrameTimer, ScreenFrameHooks

__all__ = ["FRAMES_PER_S", "SUPPORTED", "FrameTimer", "PromptFrames", "frame_wait_s"]

SUPPORTED = SCREEN_TIMER_SUPPORTED

# Textual draws at most 60 frames a second unless TEXTUAL_FPS says otherwise. A keystroke draws
# twice, its echo at once and the plan 5-35 ms later, which at 60 fps could wait up to 17 ms for
# its turn (at 120, up to 8). Frames are drawn only when something changed, so an idle screen
# costs nothing more. A user's own TEXTUAL_FPS wins.
FRAMES_PER_S = constants.MAX_FPS if "TEXTUAL_FPS" in os.environ else 120


def frame_wait_s(last_frame_s: float, now_s: float, interval_s: float) -> float:
    """How long a due frame waits: until the previous frame is one interval old, else not at all."""
    return max(0.0, last_frame_s + interval_s - now_s)


class PromptFrames(ScreenFrameHooks):
    """Screen mixin: frames go out as soon as they are due, and `after_next_frame` defers a
    repaint until the next frame is out."""

    frame_interval_s = 1 / FRAMES_PER_S
    frame_wait_s = staticmethod(frame_wait_s)
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

    def frame_drawn(self) -> None:
        if self._after_frame:
            callbacks, self._after_frame = self._after_frame, None
            for callback in callbacks:
                self.call_later(callback)  # type: ignore[attr-defined]
