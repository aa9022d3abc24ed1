"""How results reach the screen: frames go out as soon as they are due, the line-drawn table and
detail draw exactly what Textual's own text rendering would, and a plan that changes the detail's
length by a line does not lay the whole screen out again."""

from __future__ import annotations

import pytest
from textual.content import Content
from textual.visual import Visual
from tui_support import DATA, NARROW, WIDE, record_layout_refreshes

from planner.tui import frames
from planner.tui.app import make_app
from planner.tui.testing import settle
from planner.tui.widgets.results import TierDetail, TierTable, line_strips, wrap_lines


def test_a_due_frame_waits_only_for_the_previous_frame_to_be_an_interval_old():
    interval = 1 / 120
    assert frames.frame_wait_s(10.0, 10.002, interval) == pytest.approx(interval - 0.002)
    assert frames.frame_wait_s(10.0, 10.5, interval) == 0.0  # after an idle spell: at once
    assert frames.frame_wait_s(float("-inf"), 0.0, interval) == 0.0  # the first frame


@pytest.mark.skipif(not frames.SUPPORTED, reason="this Textual has no screen update timer to replace")
async def test_the_planner_screen_draws_through_the_frame_timer():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert isinstance(app.planner._update_timer, frames.FrameTimer)  # noqa: SLF001
        assert app.planner.result is not None  # and frames went out: the plan is on screen
        assert "✓ OK" in str(app.planner.query_one(TierTable).render())


def cells(strips) -> list[list[tuple[str, object]]]:
    """Each line's segments as (text, Rich style) pairs, empty segments left out."""
    return [[(seg.text, seg.style) for seg in strip if seg.text] for strip in strips]


@pytest.mark.parametrize("profile", [None, "infeasible.toml", "overloaded.toml"])
async def test_the_line_drawn_results_match_textuals_own_rendering(profile):
    app = make_app(DATA / profile if profile else None)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        detail = app.planner.query_one(TierDetail)
        table = app.planner.query_one(TierTable)
        base = detail.visual_style
        for tier in ("small", "medium", "large"):
            detail.tier = tier
            await pilot.pause()
            text = detail.render()
            for width in (24, 45, 61, 90):  # narrow enough to wrap the long lines several ways
                lines = wrap_lines(text, width)
                assert len(lines) == text.get_height(detail.styles, width)
                assert cells(line_strips(lines, base)) == cells(Visual.to_strips(detail, text, width, None, base))
        width = table.size.width
        lines = table.lines_for(width)
        text = Content("\n").join(line.content for line in lines)
        assert cells(line_strips(lines, table.visual_style)) == cells(
            Visual.to_strips(table, text, width, None, table.visual_style))


async def rate_app(pilot) -> TierDetail:
    """The app settled, its cursor at the end of the peak-rate input (10 req/s); its detail."""
    await settle(pilot)
    pilot.app.planner.query_one("#load-rate-rps").focus()
    await pilot.press("end")
    return pilot.app.planner.query_one(TierDetail)


async def type_key(pilot, key: str) -> None:
    await pilot.press(key)
    await settle(pilot)


async def test_a_detail_a_line_longer_beside_the_table_does_not_lay_the_screen_out(monkeypatch):
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        detail = await rate_app(pilot)
        texts = []
        asked = record_layout_refreshes(monkeypatch)
        # 100, 1,000, 10,000 and 100,000 req/s and back: the selected tier's detail changes length
        # on the way (which rates change it moves with the model and the catalog)
        for key in ("0", "0", "0", "0", "backspace", "backspace", "backspace"):
            await type_key(pilot, key)
            texts.append(len(wrap_lines(detail.render(), detail.size.width)))
        assert len(set(texts)) >= 2, f"the plans' details should differ in length: {texts}"
        assert "TierDetail" not in asked
        assert detail.size.height == max(texts[-1], app.planner.query_one(TierTable).size.height)


async def test_a_detail_that_changes_length_below_the_table_is_laid_out_again():
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        detail = await rate_app(pilot)
        for key in ("5", "backspace"):
            await type_key(pilot, key)
            # the box holds every wrapped line, and the top padding line: nothing cut, nothing blank
            assert detail.size.height == len(wrap_lines(detail.render(), detail.size.width))


async def test_the_line_drawn_table_follows_a_theme_change():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        table = app.planner.query_one(TierTable)
        dark = cells(table.render_lines(table.region.reset_offset))
        app.planner.action_toggle_theme()
        await settle(pilot)
        drawn = cells(table.render_lines(table.region.reset_offset))
        lines = table.lines_for(table.size.width)
        text = Content("\n").join(line.content for line in lines)
        assert drawn != dark
        assert drawn == cells(Visual.to_strips(table, text, table.size.width, None, table.visual_style))


@pytest.mark.skipif(not frames.SUPPORTED, reason="this Textual has no screen update timer to hook")
async def test_the_modified_marker_and_the_plan_are_drawn_in_frames_of_their_own(monkeypatch):
    # drawn together, the header's title row and the results on the right make Textual repaint
    # the box around both: the input panes too
    from textual._compositor import Compositor

    from planner.tui.widgets.header import FixedTitle

    frames_drawn: list[set[str]] = []  # the widgets each frame repaints
    update_widgets = Compositor.update_widgets

    def recording(self, widgets):
        frames_drawn.append({type(widget).__name__ for widget in widgets})
        return update_widgets(self, widgets)

    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await rate_app(pilot)
        monkeypatch.setattr(Compositor, "update_widgets", recording)
        for key in ("5", "backspace"):  # the saved 10 req/s -> 105 (modified) -> 10 (saved again)
            await type_key(pilot, key)
            assert ("modified" in str(app.screen.query_one(FixedTitle).render())) == (key == "5")
    with_title = [names for names in frames_drawn if "FixedTitle" in names]
    assert len(with_title) == 2 and any("TierTable" in names for names in frames_drawn)
    assert not any("TierTable" in names for names in with_title)


async def test_clicking_a_tier_column_of_the_line_drawn_table_selects_it():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        table = app.planner.query_one(TierTable)
        label_w, col_w = table.layout_widths()
        for index, tier in ((2, "large"), (0, "small")):
            await pilot.click(TierTable, offset=(label_w + 1 + index * (col_w + 1) + col_w // 2, 5))
            await settle(pilot)
            assert app.planner.tier == table.selected == tier
            assert str(app.planner.query_one(TierDetail).render()).startswith(tier.capitalize())
