"""The planner's text inputs: keys applied in the order they were typed, values checked against
their FieldSpec."""

from __future__ import annotations

from textual import events
from textual.validation import ValidationResult, Validator
from textual.widgets import Input

from planner.tui.fields import FieldSpec
from planner.tui.textual_private import own_bindings, restart_blink


class OrderedInput(Input):
    """Input, with its own key bindings (backspace, delete, arrows, home, end, ...) run as the key
    arrives. Textual runs a bound key only once its event has bubbled up to the app, while a
    character is inserted at once, so keys typed in a burst (fast typing, a macro, a terminal
    that delivers several at once) were applied out of order: backspace x4, 8, 0, 0 on "1000"
    left "100" (Textualize/textual#6605)."""

    async def on_key(self, event: events.Key) -> None:
        # runs before Input's own key handler (a subclass's handler comes first)
        if event.is_printable:
            return  # Input's own handler inserts it
        for binding in own_bindings(self, event.key):
            if not binding.priority and await self.app.run_action(binding.action, self):
                restart_blink(self)
                event.stop()
                event.prevent_default()  # handled: neither Input's handler nor the app runs it again
                return


class FieldValidator(Validator):
    """An Input validator for one FieldSpec; the failure text says what is allowed."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__()
        self.spec = spec

    def validate(self, value: str) -> ValidationResult:
        try:
            self.spec.parse(value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()
