"""The app header, with a title that repaints in place.

Textual's HeaderTitle asks for a layout pass whenever the title text changes, and a layout pass
reflows and redraws every widget on the screen (about 200 here): the first edit after opening or
saving, which adds " · modified" to the sub-title, took a whole-screen redraw. The title's box is
fixed by the header (one row, the full width), so its text never changes its size.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Header

from planner.tui.textual_private import HeaderTitle


class FixedTitle(HeaderTitle):
    """A HeaderTitle whose updates repaint it without a layout pass."""

    def update(self, content="", *, layout: bool = True) -> None:
        super().update(content, layout=False)


class TitleHeader(Header):
    """Header with a FixedTitle in place of Textual's title."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            yield FixedTitle() if type(widget) is HeaderTitle else widget


def show_sub_title(screen: Screen, sub_title: str) -> None:
    """Set the app's sub-title and repaint the screen's header title alone. App.sub_title is a
    repainting reactive: setting it repaints every widget on the screen (~20 ms each time the
    " · modified" marker comes or goes, most of that keystroke's redraw). The header is one of the
    screen's own children: looking among those alone spares a walk over ~200 widgets (~2 ms)."""
    app = screen.app
    if app.sub_title == sub_title:
        return
    app.set_reactive(App.sub_title, sub_title)
    for header in screen.query_children(TitleHeader):
        header.query_one(FixedTitle).update(header.format_title())
