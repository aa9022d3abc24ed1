"""The main screen's edit rules (planner/tui/edits.py and the input models' own rules), without
the app: what one changed input does to the profile, which refused values go in with it, and
where a message is placed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from planner.engine import catalog
from planner.engine.scenario import LengthDist, Load
from planner.profile import Profile, default_profile
from planner.tui import edits
from planner.tui.fields import BY_PATH, set_value


def test_switching_the_load_mode_keeps_the_peak_rate():
    rate = Load(rate_rps=12.5, peak_factor=2.0)
    daily = Load.model_validate(rate.in_mode("daily"))
    assert daily.rate_rps is None and daily.peak_factor == rate.peak_factor
    assert daily.peak_rate_rps == pytest.approx(rate.peak_rate_rps, rel=1e-6)
    back = Load.model_validate(daily.in_mode("rate"))
    assert back.requests_per_day is None and back.rate_rps == pytest.approx(rate.rate_rps, rel=1e-6)
    assert rate.in_mode("rate") == rate.model_dump() and daily.in_mode("daily") == daily.model_dump()


def test_a_length_made_lognormal_gets_a_p90_above_its_mean_and_loses_it_otherwise():
    exponential = LengthDist(kind="exponential", mean=300)
    lognormal = LengthDist.model_validate(exponential.of_kind("lognormal"))
    assert lognormal.p90 == 2 * exponential.mean
    kept = LengthDist(kind="lognormal", mean=300, p90=450)
    assert kept.of_kind("lognormal")["p90"] == kept.p90
    assert LengthDist.model_validate(kept.of_kind("fixed")).p90 is None


def test_edited_data_changes_one_value_and_says_when_the_inputs_restructure():
    profile = default_profile()
    data, restructure = edits.edited_data(profile, ("load", "rate_rps"), 42.0)
    assert data == set_value(profile.model_dump(), ("load", "rate_rps"), 42.0) and not restructure
    data, restructure = edits.edited_data(profile, ("load", "mode"), "daily")
    assert restructure and data["load"] == profile.load.in_mode("daily")
    data, restructure = edits.edited_data(profile, ("load", "output_len", "kind"), "lognormal")
    assert restructure and data["load"]["output_len"] == profile.load.output_len.of_kind("lognormal")
    model = next(iter(catalog.models()))
    assert not edits.edited_data(profile, ("models", "small"), model)[1]
    assert edits.edited_data(profile, ("models", "small"), "my/config.json")[1]  # a new picker option


def test_a_refused_value_goes_in_with_the_edit_that_makes_it_valid():
    profile = default_profile().model_copy(deep=True)
    profile.load.input_len = LengthDist(kind="lognormal", mean=1000, p90=2000)
    p90 = BY_PATH[("load", "input_len", "p90")]
    held = {p90.id: (p90.path, 500.0)}  # refused under a mean of 1000
    with pytest.raises(ValidationError):
        Profile.model_validate(set_value(profile.model_dump(), *held[p90.id]))
    data, _ = edits.edited_data(profile, ("load", "input_len", "mean"), 400.0)
    validated, taken = edits.validate_with(data, held)
    assert taken == (p90.id,) and validated.load.input_len.p90 == 500.0 and validated.load.input_len.mean == 400.0
    assert edits.refused_messages(validated, {}) == []
    message = edits.refused_messages(profile, held)
    assert [target for target, _ in message] == [p90.id] and message[0][1].startswith("✗ ")


def test_a_cross_field_error_is_placed_under_the_input_it_names():
    profile = default_profile()
    data = set_value(profile.model_dump(), ("load", "input_len"), {"kind": "lognormal", "mean": 1000.0, "p90": 500.0})
    with pytest.raises(ValidationError) as caught:
        Profile.model_validate(data)
    target, message = edits.place_error(caught.value, "some-input")
    assert target == BY_PATH[("load", "input_len", "p90")].id and message.startswith("✗ p90")
    snapped = edits.snapped_back_message(caught.value, message)
    assert snapped.startswith("✗ load.input_len: ") and snapped.endswith(message[2:])
