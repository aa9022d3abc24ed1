"""The help screen: every key, input and result explained, and where the numbers come from.

Rendered with Rich's Markdown in one Static: it draws in tens of milliseconds, where Textual's
Markdown widget (a widget per block) takes about a second for a document this long."""

from __future__ import annotations

from rich.markdown import Markdown as RichMarkdown
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from planner.tui.help_text import help_markdown
from planner.tui.widgets.header import TitleHeader


class HelpScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,f1,q", "close", "Close help", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        yield TitleHeader()
        with VerticalScroll(id="help-scroll"):
            yield Static(RichMarkdown(help_markdown(), hyperlinks=False), id="help-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
