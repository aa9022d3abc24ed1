"""Textual's command palette, guarded against a choice made twice: a double click or a double
Enter on an entry chose it twice, and the second choice dismissed the palette again, popping the
main screen (ScreenStackError: the app crashed), and ran the command twice."""

from __future__ import annotations

from textual import on
from textual.command import CommandPalette
from textual.widgets import Input, OptionList


class PlannerCommandPalette(CommandPalette):
    @on(Input.Submitted)
    @on(OptionList.OptionSelected)
    def _ignore_once_closed(self, event: Input.Submitted | OptionList.OptionSelected) -> None:
        # Runs before CommandPalette's own handlers; prevent_default skips them.
        if not self.is_active:
            event.prevent_default()
            event.stop()
