"""Regenerate the README screenshots: SVG from Textual, PNG from the SVG with rsvg-convert.

    python screenshots/make_screenshots.py

Drives the real app headless with Textual's pilot, waits until every plan and chart is computed,
and saves each screen next to this script. The user profile folder is a temporary one shown as
~/.config/planner/profiles, so no machine paths end up in the pictures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROFILES = ROOT / "tests" / "tui" / "data"

Action = Callable[..., Awaitable[None]]


async def nothing(pilot) -> None:
    return None


def keys(*names: str) -> Action:
    async def run(pilot) -> None:
        await pilot.press(*names)
        await pilot.pause()

    return run


def light(pilot_action: Action) -> Action:
    async def run(pilot) -> None:
        pilot.app.theme = "textual-light"
        await pilot_action(pilot)

    return run


async def best_fleets(pilot) -> None:
    """F4, then wait (up to two minutes) for the search to finish."""
    await pilot.press("f4")
    await pilot.pause()
    for _ in range(2400):
        if not getattr(pilot.app.screen, "searching", False):
            break
        await asyncio.sleep(0.05)
    await pilot.pause()


async def api_chart(pilot) -> None:
    """The small tier selected, the results scrolled down to its self-hosted vs API chart."""
    await pilot.press("ctrl+t", "ctrl+t")
    await pilot.pause()
    pilot.app.planner.query_one("#results").scroll_end(animate=False)
    await pilot.pause()


# name, terminal size, profile (None = built-in default), what to do before the picture
SHOTS: list[tuple[str, tuple[int, int], Path | None, Action]] = [
    ("main", (160, 48), None, nothing),
    ("narrow-80x24", (80, 24), None, nothing),
    ("best-fleets", (160, 48), None, best_fleets),
    ("overloaded", (160, 48), PROFILES / "overloaded.toml", nothing),
    ("infeasible", (160, 48), PROFILES / "infeasible.toml", keys("ctrl+t")),
    ("light-theme", (160, 48), PROFILES / "bf16-h200.toml", light(keys("f6", "f6", "f6", "f6"))),
    ("save-dialog", (160, 48), None, keys("f2")),
    ("help", (160, 48), None, keys("f1")),
    ("self-host-vs-api", (160, 48), PROFILES / "api-price.toml", api_chart),
]


async def shoot(name: str, size: tuple[int, int], profile: Path | None, action: Action) -> Path:
    from planner.tui.app import make_app
    from planner.tui.testing import settle, stop_blinking

    app = make_app(profile)
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await action(pilot)
        await settle(pilot)
        stop_blinking(app)
        await pilot.pause()
        path = HERE / f"{name}.svg"
        path.write_text(app.export_screenshot(title="planner"), encoding="utf-8")
    return path


def to_png(converter: str, svg: Path, png: Path) -> None:
    """rsvg-convert drops the leading no-break spaces of each text run (right-aligned numbers
    shift left) unless whitespace is preserved; the SVG itself is left as Textual wrote it."""
    text = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False, encoding="utf-8") as tmp:
        tmp.write(text)
    try:
        subprocess.run([converter, tmp.name, "-o", str(png)], check=True)
    finally:
        os.unlink(tmp.name)


def main() -> int:
    home = tempfile.mkdtemp(prefix="planner-shots-")
    os.environ["HOME"] = home
    os.environ["PLANNER_CONFIG_DIR"] = str(Path(home) / ".config" / "planner")
    os.chdir(home)
    converter = shutil.which("rsvg-convert")
    for name, size, profile, action in SHOTS:
        svg = asyncio.run(shoot(name, size, profile, action))
        line = f"{svg.relative_to(ROOT)}"
        if converter:
            png = svg.with_suffix(".png")
            to_png(converter, svg, png)
            line += f", {png.relative_to(ROOT)}"
        print(line)
    if not converter:
        print("rsvg-convert not found (apt-get install librsvg2-bin): PNGs not written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
