"""Every command of the planner, declared once. From this table come the key bindings (with ids
for keymaps, shown in the footer), the command-palette entries and the keys table of the help
screen.

Keys are ctrl or function keys so they work while a text input has focus.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Command:
    id: str
    key: str
    action: str  # an action of the main screen ("app." prefix for the app's)
    footer: str  # short label in the footer
    title: str  # command palette entry, "namespace: Verb"
    help: str
    show: bool = True
    priority: bool = False  # before the focused widget's own binding for the key


COMMANDS: tuple[Command, ...] = (
    Command("help", "f1", "help", "Help", "Help: Inputs, results and sources",
            "Explain every input and result, and where the numbers come from."),
    Command("open", "ctrl+o", "open_profile", "Open", "Profile: Open…",
            "Open a profile TOML file (default folder: your profiles folder)."),
    Command("save", "ctrl+s", "save_profile", "Save", "Profile: Save",
            "Save the inputs to the profile's file (asks for a name the first time)."),
    Command("save-as", "f2", "save_profile_as", "Save as", "Profile: Save as…",
            "Save the inputs to a new profile file."),
    Command("export", "f3", "export_plan", "Export", "Plan: Export…",
            "Write the inputs plus the computed plan as TOML, or the engine's server commands, Kubernetes "
            "manifests or benchmark commands for each tier (the CLI's `export --to`)."),
    Command("best-fleets", "f4", "best_fleets", "Best fleets", "Plan: Best fleets…",
            "Search every catalog GPU, precision, TP degree and engine setting for the cheapest fleets "
            "that meet the targets (the CLI's `search`), for the selected tier; apply one to the profile."),
    Command("next-pane", "f6", "focus_pane(1)", "Next pane", "View: Next input pane",
            "Move the focus to the next input pane."),
    Command("previous-pane", "shift+f6", "focus_pane(-1)", "Prev pane", "View: Previous input pane",
            "Move the focus to the previous input pane."),
    Command("switch-tier", "ctrl+t", "switch_tier", "Tier", "View: Switch tier",
            "Select the next tier (small, medium, large) for the detail view and the latency chart."),
    Command("toggle-theme", "f8", "toggle_theme", "Theme", "View: Toggle light/dark theme",
            "Switch between the dark and the light theme."),
    Command("quit", "ctrl+q", "app.quit", "Quit", "App: Quit planner",
            "Quit (asks first when there are unsaved changes)."),
)

# The Best fleets view's own commands (actions of FleetsScreen).
FLEETS_COMMANDS: tuple[Command, ...] = (
    Command("apply", "enter", "apply", "Apply", "Fleets: Apply the highlighted fleet",
            "Set the profile's GPU, weight and KV precision, TP degree, max sequences and token budget "
            "(and the tier's model) to the highlighted fleet's, close the view and re-plan. A click on "
            "the highlighted row does the same.", priority=True),
    Command("switch-tier", "ctrl+t", "switch_tier", "Tier", "Fleets: Switch tier",
            "Search the next tier (small, medium, large); results already found are kept."),
    Command("all-models", "ctrl+a", "toggle_all_models", "All models", "Fleets: Toggle all models of the tier",
            "Search every catalog model of the tier, not only the profile's model for it (slower: one "
            "grid per model)."),
    Command("close", "escape", "close", "Close", "Fleets: Close",
            "Close the view without changing the profile."),
)

BY_ID = {c.id: c for c in COMMANDS}


def bindings(table: tuple[Command, ...] = COMMANDS, namespace: str = "planner") -> list[Binding]:
    return [Binding(c.key, c.action, c.footer, show=c.show, id=f"{namespace}.{c.id}", tooltip=c.help,
                    priority=c.priority)
            for c in table]


def key_display(key: str) -> str:
    return "+".join(part.capitalize() if len(part) > 1 else part.upper() for part in key.split("+"))


class PlannerCommands(Provider):
    """The command palette entries of the main screen: the COMMANDS table."""

    TABLE: tuple[Command, ...] = COMMANDS

    def _commands(self) -> Iterable[Command]:
        return self.TABLE

    async def _run(self, command: Command) -> None:
        await self.screen.run_action(command.action)

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(f"{command.title}  ({key_display(command.key)})", partial(self._run, command),
                               help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), partial(self._run, command), help=command.help)


class FleetsCommands(PlannerCommands):
    """The command palette entries of the Best fleets view: the FLEETS_COMMANDS table."""

    TABLE = FLEETS_COMMANDS
