"""Pilot tests of the planner's flows, with assertions on the state behind the screen."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from textual.notifications import Notify
from textual.widgets import Input, Label, Select
from tui_support import DATA, WIDE

from planner.engine import catalog
from planner.engine import helper as helper_module
from planner.engine.plan import evaluate
from planner.profile import load_profile
from planner.tui import compute
from planner.tui.app import make_app
from planner.tui.screens.dialogs import ConfirmDialog, FileDialog
from planner.tui.screens.help import HelpScreen
from planner.tui.screens.main import PlannerScreen
from planner.tui.testing import send_keys, settle
from planner.tui.widgets.charts import CostChart, LatencyChart
from planner.tui.widgets.panes import Picker
from planner.tui.widgets.results import TierDetail, TierTable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def charts_on() -> None:
    """Requested by the tests that need the chart workers (see `charts_off`)."""


@pytest.fixture(autouse=True)
def charts_off(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The charts recompute after every change (a latency curve, then every catalog model for the
    cost chart): seconds of CPU these flows do not look at. They are off unless a test asks for
    `charts_on`, and then the cost sweep plans only the three tier models. The snapshot tests
    draw the full charts."""
    if "charts_on" not in request.fixturenames:
        monkeypatch.setattr(PlannerScreen, "_start_charts", lambda self: setattr(self, "_charts_due", False))
        monkeypatch.setattr(PlannerScreen, "_show_curve", lambda self: None)
        return

    def sweep(inputs, models=None, should_stop=compute.never):
        chosen = [catalog.get_model(getattr(inputs.scenario.models, t), inputs.custom_models)
                  for t in ("small", "medium", "large")]
        return compute.cost_sweep(inputs, chosen, should_stop)

    monkeypatch.setattr("planner.tui.screens.main.cost_sweep", sweep)
    monkeypatch.setattr("planner.tui.screens.main.SWEEP_DELAY_S", 0.01)


def tier(app, name: str) -> dict:
    return app.planner.result.tier_data(name)


def total_gpus(app) -> int:
    return sum(t["gpus"] for t in app.planner.result.data["tiers"])


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus an input (which selects its text) and type over it, key by key."""
    widget = pilot.app.planner.query_one(selector, Input)
    widget.focus()
    await pilot.pause()
    widget.select_all()
    await pilot.press("backspace", *text)
    await settle(pilot)


async def paste_into(pilot, selector: str, text: str) -> None:
    """Replace an input's text in one change, as a paste does (one plan instead of one per key)."""
    widget = pilot.app.planner.query_one(selector, Input)
    widget.focus()
    await pilot.pause()
    widget.value = text
    await settle(pilot)


async def pick(pilot, selector: str, value) -> None:
    """Open a Select with the keyboard and move to `value`."""
    select = pilot.app.planner.query_one(selector, Picker)
    select.focus()
    await pilot.press("enter")
    await pilot.pause()
    values = select.option_values()  # the order the overlay shows
    steps = values.index(value) - values.index(select.value)
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await settle(pilot)


async def test_raising_the_rate_raises_the_gpu_count():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        before = total_gpus(app)
        small_before = tier(app, "small")["gpus"]
        await type_into(pilot, "#load-rate-rps", "200")
        assert app.planner.profile.load.rate_rps == 200
        assert app.planner.result.data["load"]["peak_rate_rps"] == 200
        assert total_gpus(app) > before
        assert tier(app, "small")["gpus"] > small_before
        assert app.planner.dirty


async def test_with_helper_processes_the_plans_are_those_of_one_process(monkeypatch: pytest.MonkeyPatch):
    # the TUI plans the large tier on a helper process once it is up (the suite otherwise plans in
    # one process): the plans on screen are the ones planning in one process gives
    monkeypatch.setenv(helper_module.DISABLE_ENV, "1")
    helper = helper_module.TierHelper()
    monkeypatch.setattr(helper_module, "HELPER", helper)
    app = make_app()
    try:
        async with app.run_test(size=WIDE) as pilot:
            await settle(pilot)
            assert helper.wait_ready()
            sent = []
            for one in helper._helpers:
                send = one.send
                monkeypatch.setattr(one, "send", lambda fn, *args, send=send: sent.append(args[1]) or send(fn, *args))
            before = tier(app, "large")["gpus"]
            await type_into(pilot, "#load-rate-rps", "40")
            assert app.planner.result.data["load"]["peak_rate_rps"] == 40
            assert tier(app, "large")["gpus"] > before
            alone = compute.compute(app.planner.profile, app.planner.base_dir, engine=evaluate)
            assert app.planner.result.data == alone.data
            assert ("large",) in sent and helper.ready  # the helper planned the large tier of these keystrokes
    finally:
        helper.shutdown()


async def test_fp8_lowers_the_cost_of_the_large_tier():
    app = make_app(DATA / "bf16-h200.toml")
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.planner.profile.name == "bf16-h200" and "bf16-h200.toml" in app.sub_title
        large = tier(app, "large")
        assert large["feasible"] and large["weights"] == "bf16"
        await pick(pilot, "#optimizations-weights", "fp8")
        assert app.planner.profile.optimizations.weights == "fp8"
        after = tier(app, "large")
        assert after["weights"] == "fp8"
        assert after["usd_month"] < large["usd_month"]


async def test_save_then_open_gives_the_same_profile(private_config: Path):
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await paste_into(pilot, "#load-rate-rps", "25")
        await pilot.press("ctrl+s")  # the built-in default has no file yet: asks for a name
        await pilot.pause()
        assert isinstance(app.screen, FileDialog)
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        saved_path = private_config / "mine.toml"
        assert saved_path.is_file()
        assert not app.planner.dirty
        saved = app.planner.profile
        assert load_profile(saved_path).profile == saved
        # a new profile from the built-in default keeps the default's comments
        default = (ROOT / "planner" / "profiles" / "chatbot-h100.toml").read_text(encoding="utf-8")
        assert comment_lines(saved_path.read_text(encoding="utf-8")) == comment_lines(default)

        await paste_into(pilot, "#load-rate-rps", "30")  # an unsaved change
        assert app.planner.dirty
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, FileDialog)
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)  # discard the unsaved change?
        await pilot.press("enter")
        await settle(pilot)
        assert app.planner.profile == saved
        assert app.planner.profile.load.rate_rps == 25
        assert app.planner.path == saved_path
        assert app.planner.query_one("#load-rate-rps", Input).value == "25"
        assert app.planner.result.data["load"]["peak_rate_rps"] == 25
        assert not app.planner.dirty


def comment_lines(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


async def test_ctrl_s_keeps_a_hand_written_profile_as_written(private_config: Path):
    path = private_config / "e.toml"
    original = (ROOT / "profiles" / "edge-assistant.toml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    app = make_app(path)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await paste_into(pilot, "#load-rate-rps", "2.5")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not app.planner.dirty
    text = path.read_text(encoding="utf-8")
    assert comment_lines(text) == comment_lines(original)  # 30 comment lines, none lost
    changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines(), strict=True) if a != b]
    assert [b.split("#")[0].strip() for _, b in changed] == ["rate_rps = 2.5"]
    assert load_profile(path).profile.load.rate_rps == 2.5


async def test_chunked_prefill_can_be_switched_off_unless_the_budget_is_below_the_prompt(private_config: Path):
    path = private_config / "budget.toml"
    path.write_text('name = "b"\nload.rate_rps = 2\nload.input_len = 2000\n', encoding="utf-8")
    app = make_app(path)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pick(pilot, "#optimizations-chunked-prefill", False)  # "off" is a choice, not the blank
        assert app.planner.profile.optimizations.chunked_prefill is False
    path.write_text(path.read_text(encoding="utf-8") + "optimizations.max_num_batched_tokens = 512\n",
                    encoding="utf-8")
    app = make_app(path)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pick(pilot, "#optimizations-chunked-prefill", False)
        assert app.planner.profile.optimizations.chunked_prefill is True  # refused: the picker snaps back
        message = app.planner.invalid["optimizations-chunked-prefill"]
        assert message.startswith("✗ optimizations.max_num_batched_tokens (512) is below the p99 prompt")


async def test_a_profile_cannot_send_escape_sequences_to_the_terminal(private_config: Path):
    path = private_config / "evil.toml"
    path.write_text('name = "evil\\u001b]0;pwned\\u0007\\u001b[31mRED"\nload.rate_rps = 2\n', encoding="utf-8")
    app = make_app(path)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.sub_title.startswith("evil]0;pwned[31mRED")  # the title bar shows the name, inert
        assert not any(ch in app.sub_title + app.export_screenshot() for ch in "\x1b\x07")


async def test_opening_a_bad_file_shows_an_error_and_keeps_the_plan(private_config: Path):
    (private_config / "bad.toml").write_text('name = "bad"\n[load]\nrate_rps = "fast\n', encoding="utf-8")
    (private_config / "wrong.toml").write_text('name = "wrong"\n[load]\nrate_rps = -5\n', encoding="utf-8")
    messages: list = []
    app = make_app()
    async with app.run_test(size=WIDE, message_hook=messages.append) as pilot:
        await settle(pilot)
        result, profile = app.planner.result, app.planner.profile
        for name, expected in (("bad", "invalid TOML"), ("wrong", "rate_rps"), ("missing", "no such file")):
            await pilot.press("ctrl+o")
            await pilot.pause()
            await pilot.press(*name, "enter")
            await settle(pilot)
            errors = [m.notification for m in messages if isinstance(m, Notify)
                      and m.notification.severity == "error"]
            assert errors and expected in errors[-1].message
            assert app.planner.result is result
            assert app.planner.profile == profile
            assert app.planner.path is None
            assert app.screen is app.planner  # no dialog left open


async def test_invalid_input_keeps_the_last_plan_and_says_what_is_allowed():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        result = app.planner.result
        await paste_into(pilot, "#load-rate-rps", "-3")
        error = app.planner.query_one("#load-rate-rps-error", Label)
        assert error.has_class("-shown")
        assert "from 0 to 10,000,000" in str(error.render())
        assert app.planner.query_one("#load-rate-rps", Input).has_class("-invalid")
        assert app.planner.result is result
        assert app.planner.invalid
        await paste_into(pilot, "#load-rate-rps", "12")
        assert not error.has_class("-shown")
        assert not app.planner.invalid
        assert app.planner.result.data["load"]["peak_rate_rps"] == 12


async def typing_into(app, pilot, selector: str) -> Input:
    """Focus an input of the planner with the cursor after its text."""
    widget = app.planner.query_one(selector, Input)
    widget.focus()
    await pilot.press("end")
    return widget


async def test_keys_typed_in_a_burst_apply_in_order():
    # a terminal can hand the app several keys at once (fast typing, a macro): editing keys and
    # characters must apply in the order typed, in the planner's inputs and in the path dialog
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        prompt = await typing_into(app, pilot, "#load-input-len-mean")
        send_keys(app, *["backspace"] * 4 + ["8", "0", "0"])
        await settle(pilot)
        assert prompt.value == "800"
        send_keys(app, "left", "left", "delete", "9", "end", "backspace", "5")
        await settle(pilot)
        assert prompt.value == "895"
        await pilot.press("ctrl+s")  # a new profile: save asks for a path
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, FileDialog)
        path = dialog.query_one("#dialog-path", Input)
        path.value, path.cursor_position = "plan.toml", len("plan.toml")
        send_keys(app, *["backspace"] * 5 + ["x", ".", "t", "o", "m", "l"])
        await pilot.pause()
        assert path.value == "planx.toml"


async def test_a_burst_that_passes_through_an_invalid_value_leaves_no_stale_message():
    # "10" -> "1" -> "" (neither a rate nor a daily volume: a cross-field message) -> "1" -> "12",
    # typed faster than the screen handles the edits: the pane clears the input's message on each
    # change, the screen places the cross-field one while handling the second edit, and the later
    # texts (valid) must clear it again
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        rate = await typing_into(app, pilot, "#load-rate-rps")
        send_keys(app, "backspace", "backspace", "1", "2")
        await settle(pilot)
        assert rate.value == "12"
        assert not app.planner.invalid
        assert not rate.has_class("-invalid")
        assert not [label for label in app.planner.query(".input-error") if label.has_class("-shown")]
        assert app.planner.result.data["load"]["peak_rate_rps"] == 12


async def test_a_cross_field_error_is_shown_under_the_input_it_concerns():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        result = app.planner.result
        await paste_into(pilot, "#load-input-len-p90", "500")  # below the mean of 1000
        error = app.planner.query_one("#load-input-len-p90-error", Label)
        assert error.has_class("-shown") and "above the mean" in str(error.render())
        assert app.planner.result is result
        await paste_into(pilot, "#load-input-len-p90", "2000")  # back to the current, valid value
        assert not error.has_class("-shown") and not app.planner.invalid
        await paste_into(pilot, "#load-input-len-p90", "500")
        await paste_into(pilot, "#load-input-len-mean", "400")  # now p90 500 > mean 400: valid
        assert not error.has_class("-shown")
        assert app.planner.profile.load.input_len.mean == 400


async def test_daily_volume_mode_converts_the_rate():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pick(pilot, "#load-mode", "daily")
        load = app.planner.profile.load
        assert load.rate_rps is None and load.requests_per_day == 864_000
        assert app.planner.result.data["load"]["peak_rate_rps"] == 10
        assert app.planner.query_one("#load-requests-per-day", Input).display


async def test_switch_tier_moves_the_detail_and_the_chart(charts_on):
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.planner.tier == "medium"
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert app.planner.tier == "large"
        assert app.planner.query_one(TierTable).selected == "large"
        assert app.planner.query_one(TierDetail).tier == "large"
        assert app.planner.query_one(LatencyChart).curve.tier == "large"
        assert app.planner.query_one(CostChart).sweep  # every catalog model was planned


async def test_next_pane_cycles_the_focus():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        app.screen.set_focus(None)
        seen = []
        for _ in range(5):
            await pilot.press("f6")
            pane = next(a for a in app.focused.ancestors if a.id and a.id.startswith("pane-"))
            seen.append(pane.id)
        assert seen == ["pane-models", "pane-fleet", "pane-load", "pane-optimizations", "pane-models"]
        await pilot.press("shift+f6")
        assert next(a for a in app.focused.ancestors if a.id and a.id.startswith("pane-")).id == "pane-optimizations"


async def test_quit_asks_when_there_are_unsaved_changes():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await paste_into(pilot, "#load-rate-rps", "11")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running and app.screen is app.planner
        await pilot.press("ctrl+q")
        await pilot.pause()
        app.screen.query_one("#choice-discard").press()
        await pilot.pause()
    assert app.return_value == 0


async def test_help_opens_and_closes_and_quit_without_changes_exits_at_once():
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.planner
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_value == 0


async def export_with_f3(pilot, *keys: str) -> None:
    """F3, the keys that pick what to export, then the suggested file name."""
    await pilot.press("f3")
    await pilot.pause()
    await pilot.press(*keys)
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()


async def test_export_writes_inputs_and_results(private_config: Path):
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await export_with_f3(pilot, "enter")  # the first choice: the plan as TOML
        path = private_config / "chatbot-h100-plan.toml"
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert data["name"] == "chatbot-h100"
        tiers = {t["tier"]: t for t in data["plan"]["tiers"]}
        assert tiers["medium"]["gpus"] == tier(app, "medium")["gpus"]
        assert load_profile(path).profile.plan is not None  # an exported plan opens as a profile


async def test_export_offers_what_the_cli_exports(private_config: Path, capsys):
    from planner.cli import main
    from planner.tui.export_targets import export_choices

    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        choices = export_choices(app.planner.result.plan.scenario.fleet.engine)
        assert [c for c, _ in choices] == ["toml", "vllm", "k8s", "bench"]  # the engine on screen: vLLM
        await export_with_f3(pilot, "down", "down", "enter")  # Kubernetes manifests
        written = (private_config / "chatbot-h100-k8s.yaml").read_text(encoding="utf-8")
    assert main(["export", str(ROOT / "profiles" / "chatbot-h100.toml"), "--to", "k8s"]) == 0
    assert written == capsys.readouterr().out


async def test_a_file_changed_on_disk_is_not_overwritten_without_asking(private_config: Path):
    path = private_config / "shared.toml"
    path.write_text('name = "shared"\n[load]\nrate_rps = 10.0\n', encoding="utf-8")
    messages: list = []
    app = make_app(path)
    async with app.run_test(size=WIDE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await paste_into(pilot, "#load-rate-rps", "20")
        someone_else = 'name = "shared"\n[load]\nrate_rps = 99.0\n'
        path.write_text(someone_else, encoding="utf-8")
        os.utime(path, ns=(path.stat().st_mtime_ns + 10**9, path.stat().st_mtime_ns + 10**9))
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)  # changed on disk: overwrite?
        assert any(isinstance(m, Notify) and "changed on disk" in m.notification.message for m in messages)
        await pilot.press("escape")
        await pilot.pause()
        assert path.read_text(encoding="utf-8") == someone_else
        assert app.planner.dirty
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#choice-overwrite").press()
        await pilot.pause()
        assert load_profile(path).profile.load.rate_rps == 20
        assert not app.planner.dirty


async def test_a_save_that_fails_shows_an_error(private_config: Path):
    blocker = private_config / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    messages: list = []
    app = make_app()
    async with app.run_test(size=WIDE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await pilot.pause()
        dialog_input = app.screen.query_one("#dialog-path", Input)
        dialog_input.value = "not-a-folder/mine.toml"
        await pilot.press("enter")
        await pilot.pause()
        errors = [m.notification for m in messages if isinstance(m, Notify) and m.notification.severity == "error"]
        assert errors and "cannot save" in errors[-1].message
        assert app.planner.path is None and app.is_running


async def test_the_command_palette_runs_planner_commands(private_config: Path):
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"save as")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, FileDialog)
        assert app.screen.title_text == "Save profile as"


def test_every_command_has_a_binding_with_an_id_and_a_palette_entry():
    from planner.tui.commands import COMMANDS

    bindings = {b.id: b for b in PlannerScreen.BINDINGS}
    for command in COMMANDS:
        binding = bindings[f"planner.{command.id}"]
        assert binding.key == command.key and binding.action == command.action and binding.show
        assert ":" in command.title and command.help


async def test_a_custom_model_from_a_config_json():
    config = Path(__file__).resolve().parent.parent / "data" / "hf" / "qwen2.5-7b" / "config.json"
    app = make_app()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pick(pilot, "#models-small", "__custom__")
        custom = app.planner.query_one("#models-small-custom", Input)
        assert app.focused is custom
        custom.value = str(config)
        await pilot.press("enter")
        await settle(pilot)
        assert app.planner.profile.models.small == str(config)
        assert app.planner.query_one("#models-small", Select).value == str(config)  # now an option
        small = tier(app, "small")
        assert small["feasible"] and small["params_b"] == pytest.approx(7.6, abs=0.1)
