"""Constants and helpers shared by the TUI tests (a module with a unique name: `conftest` is ambiguous
between tests/ and tests/tui/)."""

from pathlib import Path

DATA = Path(__file__).parent / "data"
WIDE = (160, 48)
NARROW = (80, 24)


def record_layout_refreshes(monkeypatch) -> list[str]:
    """From now on, the class name of every widget that asks for a layout pass."""
    from textual.widget import Widget

    layouts: list[str] = []
    refresh = Widget.refresh

    def recording(self, *regions, layout=False, **kw):
        if layout:
            layouts.append(type(self).__name__)
        return refresh(self, *regions, layout=layout, **kw)

    monkeypatch.setattr(Widget, "refresh", recording)
    return layouts
