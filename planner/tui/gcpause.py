"""Pausing Python's cyclic garbage collector while the TUI starts.

Start-up builds ~120k long-lived objects (modules, classes, widgets, styles) and next to no cyclic
garbage (~1k objects), yet the collector keeps re-scanning them: ~0.1 s of the ~0.8 s to the first
frame on 2 cores, and more while the first plan is computed. So collection is paused while the
TUI's modules load, and again from the app's start until its first frame is out; then the objects
that exist are frozen (left out of later collections, the plan's and keystrokes' included) and
collection resumes. The app unfreezes them when it exits, so a process that runs many apps (the
tests) still frees them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_paused = False
_frozen = False


def pause() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume(freeze: bool = False) -> None:
    """Collect again if `pause` stopped it; `freeze` first moves every object into the permanent
    generation."""
    global _paused, _frozen
    if not _paused:
        return
    if freeze:
        gc.freeze()
        _frozen = True
    gc.enable()
    _paused = False


def release() -> None:
    """Resume, and give frozen objects back to the collector (the app is closing)."""
    global _frozen
    resume()
    if _frozen:
        gc.unfreeze()
        _frozen = False


@contextmanager
def paused() -> Iterator[None]:
    was_paused = _paused
    pause()
    try:
        yield
    finally:
        if not was_paused:
            resume()
