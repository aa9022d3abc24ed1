"""Constants shared by the TUI tests (a module with a unique name: `conftest` is ambiguous
between tests/ and tests/tui/)."""

from pathlib import Path

DATA = Path(__file__).parent / "data"
WIDE = (160, 48)
NARROW = (80, 24)
