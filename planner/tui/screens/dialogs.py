"""Modal dialogs: a file path (open, save as, export), a question with a few answers, and a pick
from a short list."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, ScreenResultType
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from planner.tui.widgets.inputs import OrderedInput


def display_path(path: Path) -> str:
    """A path for people: inside the home folder as ~/..."""
    try:
        inside = path.expanduser().resolve().relative_to(Path.home().resolve())
        return "~" if inside == Path(".") else f"~/{inside}"
    except (ValueError, RuntimeError, OSError):
        return str(path)


# The longest file name most filesystems take, in bytes (ext4, XFS, APFS, NTFS in UTF-16 units).
NAME_MAX = 255


def resolve_path(text: str, folder: Path) -> Path:
    """A typed path: '~' expanded, relative paths taken inside `folder`, '.toml' added when
    there is no suffix. Raises ValueError, saying why, for what cannot be a file name: a folder
    ('.', '..', '~', an existing folder), a NUL character or a name too long for the filesystem."""
    typed = text.strip()
    if "\x00" in typed:
        raise ValueError("a file name cannot contain a NUL character")
    path = Path(typed).expanduser()
    if not path.is_absolute():
        path = folder / path
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX - len(".toml") for part in path.parts):
        raise ValueError(f"a file name is at most {NAME_MAX - len('.toml')} bytes")
    if Path(typed).name in ("", ".", "..") or _is_dir(path):
        raise ValueError(f"{display_path(path)} is a folder: type a file name")
    if not path.suffix:
        path = path.with_suffix(".toml")
    return path


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False  # unreadable: the open or save that follows says why


class Dialog(ModalScreen[ScreenResultType]):
    """A modal dialog that answers once."""

    def answer(self, result: ScreenResultType | None) -> None:
        """Dismiss with the result, once. A double click queues a second selection (a file of the
        list) before the first is handled; by then this screen is gone, and dismiss() would pop
        the screen under it (the main screen: the app crashed)."""
        if self.is_active:
            self.dismiss(result)


class FileDialog(Dialog[Path | None]):
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
            yield OrderedInput(self.initial, id="dialog-path", placeholder="name.toml, or a path")
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
        try:
            if not text.strip():
                raise ValueError("type a file name")
            path = resolve_path(text, self.folder)
        except ValueError as exc:
            error = self.query_one("#dialog-error", Label)
            error.update(str(exc))
            error.add_class("-shown")
            return
        self.answer(path)

    @on(Input.Submitted, "#dialog-path")
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.value)

    @on(Button.Pressed, "#dialog-ok")
    def _ok(self) -> None:
        self._submit(self.query_one("#dialog-path", Input).value)

    @on(Button.Pressed, "#dialog-cancel")
    def action_cancel(self) -> None:
        self.answer(None)

    @on(OptionList.OptionSelected, "#dialog-files")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.answer(Path(event.option.id))


class Question(Dialog[str | None]):
    """A question with a few answers; dismisses with the chosen answer's id (None on Escape)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, message: str, choices: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.message = message
        self.choices = choices  # (id, label); the first is the default

    def action_cancel(self) -> None:
        self.answer(None)


class ConfirmDialog(Question):
    """A question with buttons."""

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
        self.answer((event.button.id or "").removeprefix("choice-"))


class ChoiceDialog(Question):
    """A question with its answers as a list: pick one with the arrows and Enter (the first is
    highlighted)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="choice", classes="dialog") as box:
            box.border_title = self.title_text
            yield Label(self.message, classes="dialog-note")
            yield OptionList(*(Option(label, id=choice_id) for choice_id, label in self.choices), id="choice-list")

    def on_mount(self) -> None:
        options = self.query_one("#choice-list", OptionList)
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected, "#choice-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.answer(event.option.id)
