"""The main screen's file actions: open and save a profile, export the plan, and the questions
they ask (unsaved changes, a file that exists, a file changed on disk since it was opened).

`ProfileFiles` is a mixin of PlannerScreen; it reads and sets the screen's profile, path and saved
state, and asks the screen to show and recompute what it opened."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from planner.profile import (
    Profile,
    ProfileConflictError,
    ProfileError,
    load_profile,
    save_profile,
    save_text_atomic,
    user_profiles,
    user_profiles_dir,
)
from planner.tui.compute import ComputeError, resolve
from planner.tui.export_targets import SUFFIXES, export_choices
from planner.tui.screens.dialogs import ChoiceDialog, ConfirmDialog, FileDialog, display_path


class ProfileFiles:
    """Open, save, save as and export, for the screen that owns the profile (PlannerScreen), which
    also has `app`, `notify`, `dirty`, `invalid`, `result` and show_profile, update_title,
    update_status and recompute."""

    profile: Profile
    saved: Profile
    saved_text: str
    path: Path | None
    mtime_ns: int | None
    base_dir: Path
    compute_error: str

    # ------------------------------------------------------------------ questions

    def confirm_replace(self, path: Path, replace: Callable[[], object]) -> None:
        """Ask before writing over a file that exists; `replace` runs on "Replace"."""
        self.app.push_screen(
            ConfirmDialog("File exists", f"{display_path(path)} exists. Replace it?",
                          [("replace", "Replace"), ("cancel", "Cancel")]),
            lambda answer: replace() if answer == "replace" else None)

    # ------------------------------------------------------------------ open

    def action_open_profile(self) -> None:
        folder = user_profiles_dir()
        self.app.push_screen(FileDialog("Open profile", folder, action="Open", files=user_profiles()),
                             self._open_path)

    def _open_path(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            loaded = load_profile(path)
            resolve(loaded.profile, loaded.base_dir)  # unknown models, bad config.json, calibration
        except (ProfileError, ComputeError) as exc:
            self.notify(str(exc), title="Cannot open profile", severity="error", timeout=8)
            return

        def apply(answer: str | None = "discard") -> None:
            if answer != "discard":
                return
            self.profile = self.saved = loaded.profile
            self.saved_text = loaded.text
            self.path, self.mtime_ns, self.base_dir = loaded.path, loaded.mtime_ns, loaded.base_dir
            self.compute_error = ""
            self.show_profile()
            self.update_title()
            self.update_status()
            self.recompute()
            self.notify(f"Opened {display_path(loaded.path)}", title="Profile")

        if self.dirty:
            self.app.push_screen(ConfirmDialog("Unsaved changes", f"Discard the changes to {self.profile.name} and "
                                               f"open {loaded.path.name}?",
                                               [("discard", "Discard and open"), ("cancel", "Cancel")]), apply)
        else:
            apply()

    # ------------------------------------------------------------------ save

    def action_save_profile(self) -> None:
        if self.path is None:
            self.action_save_profile_as()
        else:
            self.save_to(self.path, self.mtime_ns)

    def action_save_profile_as(self) -> None:
        folder = user_profiles_dir()
        initial = self.path.name if self.path is not None else f"{self.profile.name}.toml"
        self.app.push_screen(FileDialog("Save profile as", folder, initial=initial, action="Save"),
                             self._save_as)

    def _save_as(self, path: Path | None) -> None:
        if path is None:
            return
        if path.exists() and path != self.path:
            self.confirm_replace(path, lambda: self.save_to(path, None))
            return
        self.save_to(path, None)

    def save_to(self, path: Path, expected_mtime_ns: int | None, overwrite: bool = False,
                then_quit: bool = False) -> bool:
        if path.parent == user_profiles_dir():
            user_profiles_dir(create=True)
        try:
            saved = save_profile(self.profile, path, expected_mtime_ns=expected_mtime_ns, overwrite_changed=overwrite,
                                 over_text=self.saved_text)
        except ProfileConflictError as exc:
            def answer(choice: str | None) -> None:
                if choice == "overwrite":
                    self.save_to(path, expected_mtime_ns, overwrite=True, then_quit=then_quit)

            self.notify(str(exc), title="Not saved", severity="warning")
            self.app.push_screen(ConfirmDialog("Changed on disk", f"{path.name} changed on disk since it was opened. "
                                               "Overwrite it with these inputs?",
                                               [("overwrite", "Overwrite"), ("cancel", "Cancel")]), answer)
            return False
        except ProfileError as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=8)
            return False
        self.saved, self.saved_text = saved.profile, saved.text
        self.path, self.mtime_ns, self.base_dir = saved.path, saved.mtime_ns, saved.path.parent
        self.update_title()
        note = f" ({len(self.invalid)} invalid input(s) not saved)" if self.invalid else ""
        self.notify(f"Saved {display_path(path)}{note}", title="Profile")
        if then_quit:
            self.app.exit(0)
        return True

    def request_quit(self) -> None:
        """Quit, asking first to save, discard or cancel when the inputs have unsaved changes."""
        if not self.dirty:
            self.app.exit(0)
            return

        def answer(choice: str | None) -> None:
            if choice == "discard":
                self.app.exit(0)
            elif choice == "save":
                if self.path is None:
                    self.action_save_profile_as()
                else:
                    self.save_to(self.path, self.mtime_ns, then_quit=True)

        self.app.push_screen(ConfirmDialog("Unsaved changes", f"Save the changes to {self.profile.name} before "
                                           "quitting?", [("save", "Save"), ("discard", "Quit without saving"),
                                                         ("cancel", "Cancel")]), answer)

    # ------------------------------------------------------------------ export

    def action_export_plan(self) -> None:
        if self.result is None:
            self.notify("No plan yet", severity="warning")
            return
        choices = export_choices(self.result.plan.scenario.fleet.engine)
        self.app.push_screen(ChoiceDialog("Export plan", "Write the plan as:", choices), self._export_as)

    def _export_as(self, target: str | None) -> None:
        if target is None or self.result is None:
            return
        label = dict(export_choices(self.result.plan.scenario.fleet.engine))[target]
        stem = self.path.stem if self.path is not None else self.profile.name
        self.app.push_screen(FileDialog(f"Export: {label}", user_profiles_dir(), initial=f"{stem}{SUFFIXES[target]}",
                                        action="Export"), lambda path: self._export(path, target))

    def _export(self, path: Path | None, target: str = "toml", confirmed: bool = False) -> None:
        if path is None or self.result is None:
            return
        if path.exists() and not confirmed:
            self.confirm_replace(path, lambda: self._export(path, target, True))
            return
        try:
            from planner.deploy.export import export_for

            text = export_for(target, self.result.inputs.profile, self.result.plan)
            if path.parent == user_profiles_dir():
                user_profiles_dir(create=True)
            save_text_atomic(path, text)
        except (ProfileError, ValueError) as exc:  # ValueError: a plan the target cannot deploy
            self.notify(str(exc), title="Not exported", severity="error", timeout=8)
            return
        self.notify(f"Exported {display_path(path)}", title="Plan")
