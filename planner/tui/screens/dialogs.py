"""Modal dialogs: a file path (open, save as, export) and a question with a few answers."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option


def display_path(path: Path) -> str:
    """A path for people: inside the home folder as ~/..."""
    try:
        return "~/" + str(path.expanduser().resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError, OSError):
        return str(path)


def resolve_path(text: str, folder: Path) -> Path:
    """A typed path: '~' expanded, relative paths taken inside `folder`, '.toml' added when
    there is no suffix."""
    path = Path(text.strip()).expanduser()
    if not path.is_absolute():
        path = folder / path
    if not path.suffix:
        path = path.with_suffix(".toml")
    return path


class FileDialog(ModalScreen[Path | None]):
    """Ask for a file. Relative names are resolved in `folder`; the folder's profiles are listed
    (Tab to the list and pick one with the arrows and Enter, or type a name)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, folder: Path, initial: str = "", action: str = "Open",
                 files: list[Path] | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.folder = folder
        self.initial = initial
        self.action_label = action
        self.files = files or []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog") as box:
            box.border_title = self.title_text
            yield Label(f"Folder: {display_path(self.folder)}", id="dialog-folder", classes="dialog-note")
            yield Input(self.initial, id="dialog-path", placeholder="name.toml, or a path")
            if self.files:
                yield Label("Profiles in this folder:", classes="dialog-note")
                yield OptionList(*(Option(p.name, id=str(p)) for p in self.files), id="dialog-files")
            yield Label("", id="dialog-error", classes="input-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.action_label, variant="primary", id="dialog-ok")
                yield Button("Cancel", id="dialog-cancel")

    def on_mount(self) -> None:
        self.query_one("#dialog-path", Input).focus()

    def _submit(self, text: str) -> None:
        if not text.strip():
            error = self.query_one("#dialog-error", Label)
            error.update("type a file name")
            error.add_class("-shown")
            return
        self.dismiss(resolve_path(text, self.folder))

    @on(Input.Submitted, "#dialog-path")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.value)

    @on(Button.Pressed, "#dialog-ok")
    def _ok(self) -> None:
        self._submit(self.query_one("#dialog-path", Input).value)

    @on(Button.Pressed, "#dialog-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(OptionList.OptionSelected, "#dialog-files")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.dismiss(Path(event.option.id))


class ConfirmDialog(ModalScreen[str | None]):
    """A question with buttons; dismisses with the chosen button's id (None on Escape)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, message: str, choices: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.message = message
        self.choices = choices  # (id, label); the first is the default

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog") as box:
            box.border_title = self.title_text
            yield Label(self.message, id="confirm-message")
            with Horizontal(classes="dialog-buttons"):
                for i, (choice_id, label) in enumerate(self.choices):
                    yield Button(label, id=f"choice-{choice_id}", variant="primary" if i == 0 else "default")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_cancel(self) -> None:
        self.dismiss(None)
