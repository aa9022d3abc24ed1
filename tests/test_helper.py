"""The helper processes that plan the tiers at the same time: the same plan as planning in one
process, the engine's own errors as they would be raised, and helpers that die or are turned off
change nothing but the time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planner.engine import catalog
from planner.engine.helper import DISABLE_ENV, TierHelper
from planner.engine.plan import evaluate
from planner.engine.replica_checks import clear_check_cache
from planner.profile import load_profile
from planner.report import plan_json

ROOT = Path(__file__).resolve().parent.parent


def inputs(name: str):
    path = ROOT / "profiles" / name
    prof = load_profile(path).profile
    return prof.scenario(), prof.custom_gpus(), prof.custom_models(path.parent)


def as_json(plan) -> str:
    return json.dumps(plan_json(plan), sort_keys=True)


@pytest.fixture(scope="module")
def helper():
    mp = pytest.MonkeyPatch()
    mp.setenv(DISABLE_ENV, "1")
    made = TierHelper()
    made.start(*inputs("chatbot-h100.toml"))
    assert made.wait_ready(), "the helper processes did not start"
    yield made
    made.shutdown()
    mp.undo()


@pytest.mark.parametrize("profile", ["chatbot-h100.toml", "rag-long-context.toml", "edge-assistant.toml"])
def test_the_helper_gives_the_plan_of_one_process(helper: TierHelper, profile: str):
    scenario, gpus, models = inputs(profile)
    clear_check_cache()
    helper.clear_caches()
    helped = helper.evaluate(scenario, gpus, models)
    assert [t.tier for t in helped.tiers] == ["small", "medium", "large"]
    assert as_json(helped) == as_json(evaluate(scenario, gpus, models))


def test_an_engine_error_in_the_helper_is_raised_as_in_one_process(helper: TierHelper):
    scenario, gpus, models = inputs("chatbot-h100.toml")
    unknown = scenario.model_copy(update={"models": scenario.models.model_copy(update={"large": "no-such-model"})})
    with pytest.raises(catalog.CatalogError) as alone:
        evaluate(unknown, gpus, models)
    with pytest.raises(catalog.CatalogError) as helped:
        helper.evaluate(unknown, gpus, models)
    assert str(helped.value) == str(alone.value)
    assert helper.ready  # an input's error is not the helper's: it stays in use


def test_an_engine_error_here_leaves_no_reply_of_the_helper_behind(helper: TierHelper):
    # the small tier is planned in the calling thread while the helper plans the large one: an
    # error here must still collect the helper's reply, or the next plan would read it as its own
    scenario, gpus, models = inputs("chatbot-h100.toml")
    unknown = scenario.model_copy(update={"models": scenario.models.model_copy(update={"small": "no-such-model"})})
    with pytest.raises(catalog.CatalogError):
        helper.evaluate(unknown, gpus, models)
    other, gpus, models = inputs("rag-long-context.toml")
    assert as_json(helper.evaluate(other, gpus, models)) == as_json(evaluate(other, gpus, models))
    assert helper.ready  # still in step: it was not given up as out of order


def test_a_helper_that_died_is_replaced_by_planning_in_the_caller(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(DISABLE_ENV, "1")
    scenario, gpus, models = inputs("chatbot-h100.toml")
    helper = TierHelper()
    helper.start(scenario, gpus, models)
    assert helper.wait_ready()
    processes = helper.processes()
    assert len(processes) == 1  # the large tier's helper
    for process in processes:
        process.kill()
        process.join()
    try:
        assert as_json(helper.evaluate(scenario, gpus, models)) == as_json(evaluate(scenario, gpus, models))
        assert not helper.ready
        assert as_json(helper.evaluate(scenario, gpus, models)) == as_json(evaluate(scenario, gpus, models))
    finally:
        helper.shutdown()


def test_a_helper_turned_off_never_starts(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(DISABLE_ENV, "0")
    scenario, gpus, models = inputs("chatbot-h100.toml")
    helper = TierHelper()
    helper.start(scenario, gpus, models)
    assert not helper.processes() and not helper.ready and not helper.wait_ready()
    assert as_json(helper.evaluate(scenario, gpus, models)) == as_json(evaluate(scenario, gpus, models))


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path):
    # a spawned process re-runs the parent's main script unless it is told otherwise: a script that
    # opens the app (or plans) at its top level would have run twice
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "print('top level ran', flush=True)\n"
        "from planner.engine.helper import TierHelper\n"
        "from planner.profile import load_profile\n"
        f"scenario = load_profile({str(ROOT / 'profiles' / 'chatbot-h100.toml')!r}).profile.scenario()\n"
        "helper = TierHelper()\n"
        "helper.start(scenario)\n"
        "print('ready', helper.wait_ready(), flush=True)\n"
        "helper.shutdown()\n"
    )
    env = {**os.environ, DISABLE_ENV: "1"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["top level ran", "ready True"]
