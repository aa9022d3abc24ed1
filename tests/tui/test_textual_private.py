"""The Textual the planner runs on is the one it is tested with, and has every private name the
planner uses (all of them in planner/tui/textual_private.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from planner.tui import textual_private


def test_the_installed_textual_is_the_tested_one_with_every_private_name_the_planner_uses():
    found = textual_private.problems()
    assert not found, ("planner/tui/textual_private.py relies on Textual internals this installation does not "
                       "have as tested:\n  " + "\n  ".join(found) + "\nTest the planner on this Textual and update "
                       "textual_private.py (and TESTED_TEXTUAL and the pin in pyproject.toml), or install the tested Textual.")


def test_a_missing_private_name_or_an_untested_version_is_named(monkeypatch):
    monkeypatch.setattr(textual_private, "PRIVATE_NAMES", (("textual.widgets", "Select._no_such_name"),
                                                          ("textual.no_such_module", "Thing")))
    monkeypatch.setattr(textual_private, "version", lambda name: "99.1.0")
    found = textual_private.problems()
    assert found[0].startswith("Textual 99.1.0 is installed; the planner is tested with >=8.2,<8.3")
    assert found[1:] == ["textual.widgets.Select._no_such_name is missing", "textual.no_such_module (module) is missing"]


def test_pyproject_pins_the_tested_range():
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    (low, high) = textual_private.TESTED_TEXTUAL
    pin = f"textual>={low[0]}.{low[1]},<{high[0]}.{high[1]}"
    assert pin in project["dependencies"]


def test_only_textual_private_names_textual_private_modules():
    package = Path(textual_private.__file__).parent
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                   if p.name != "textual_private.py" and ("textual.widgets._" in p.read_text() or "._driver" in p.read_text()))
    assert users == []
