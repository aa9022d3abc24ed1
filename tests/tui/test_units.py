"""The TUI's pure parts: input specs built from the pydantic constraints, and the chart data."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.engine.scenario import Load, Optimizations, Targets
from planner.profile import default_profile
from planner.tui.columns import ROWS
from planner.tui.compute import compute, cost_sweep, latency_curve
from planner.tui.fields import BY_PATH, FIELDS, bounds_of


def test_bounds_come_from_the_pydantic_fields():
    rate = bounds_of(Load, "rate_rps")
    assert (rate.lo, rate.lo_incl, rate.optional, rate.integer) == (0.0, True, True, False)
    seqs = bounds_of(Optimizations, "max_num_seqs")
    assert seqs.integer and seqs.optional and seqs.lo == 1
    pct = bounds_of(Targets, "ttft_percentile")
    assert pct.hi is not None and not pct.optional


@pytest.mark.parametrize("spec", [s for s in FIELDS if s.kind in ("float", "int")], ids=lambda s: s.id)
def test_every_numeric_input_accepts_its_default_and_says_what_is_allowed(spec):
    profile = default_profile().model_dump()
    value = profile
    for key in spec.path:
        value = value[key]
    text = spec.format(value)
    assert spec.parse(text) == value or (value is None and text == "")
    with pytest.raises(ValueError) as bad:
        spec.parse("not a number")
    assert spec.allowed() in str(bad.value)


def test_percent_inputs_scale_and_check_the_stored_range():
    discount = BY_PATH[("fleet", "discount")]
    assert discount.parse("30") == pytest.approx(0.3)
    assert discount.format(0.3) == "30"
    with pytest.raises(ValueError, match="< 100%"):
        discount.parse("100")


def test_results_table_rows_have_help():
    assert all(row.help for row in ROWS)
    assert {"gpus", "replicas", "ttft_p99", "tpot_p99", "e2e_p99", "usd_month", "co2", "binding"} <= {
        row.id for row in ROWS}


def test_latency_curve_rises_with_load_and_sweep_covers_the_catalog():
    result = compute(default_profile(), Path.cwd())
    curve = latency_curve(result, "small")
    assert curve is not None and len(curve.rates_rps) > 3
    assert curve.rates_rps == sorted(curve.rates_rps)
    assert curve.ttft_ms[-1] > curve.ttft_ms[0]
    assert curve.saturation_rps >= curve.rates_rps[-1]
    small = [result.tier("small").model]
    points = cost_sweep(result.inputs, small)
    assert points and points[0].model == small[0].id
    assert points[0].usd_month == pytest.approx(result.tier_data("small")["usd_month"], abs=0.01)


def test_the_detail_shows_the_caveat_of_a_prefill_dominated_load():
    from planner.engine.scenario import LengthDist
    from planner.tui.widgets.results import detail_content

    short = default_profile().model_copy(update={"load": Load(rate_rps=5.0, input_len=LengthDist(kind="fixed", mean=1000),
                                                              output_len=LengthDist(kind="fixed", mean=10))})
    text = detail_content(compute(short, Path.cwd()), "medium", 60).plain
    assert "Caveat prefill-dominated load (prompts 100x the outputs)" in text
    assert "Caveat" not in detail_content(compute(default_profile(), Path.cwd()), "medium", 60).plain


def test_the_cost_chart_says_why_it_has_nothing_to_plot():
    from planner.tui.widgets.charts import nothing_to_plot

    base = default_profile()
    free = base.model_copy(update={"fleet": base.fleet.model_copy(update={"price_usd_hour": 0.0})})
    idle = base.model_copy(update={"load": base.load.model_copy(update={"rate_rps": 0.0})})
    for profile in (free, idle):
        result = compute(profile, Path.cwd())
        assert all(t["usd_month"] == 0 for t in result.data["tiers"])
        assert "costs $0" in nothing_to_plot([], result)
    assert nothing_to_plot([], None) == "no feasible model at this load"


def test_api_chart_view_follows_the_plan(tmp_path: Path):
    from planner.tui.widgets.api_chart import api_cost_view

    result = compute(default_profile(), tmp_path)
    for t in result.plan.tiers:
        data = result.tier_data(t.tier)
        view = api_cost_view(t, data["api_note"])
        if not t.feasible:
            assert view.note and view.api is None
            continue
        api = view.api
        # the staircase at the planned load is the planned fleet's bill, the line the API's
        assert api.self_hosted_usd_month_at(api.mean_rate_rps) == pytest.approx(data["usd_month"], rel=1e-6)
        assert api.api_usd_month_at(api.mean_rate_rps) == pytest.approx(data["api_usd_month"], abs=0.01)
        assert view.x_max() >= api.mean_rate_rps and view.x_max() >= 3 * api.replica_capacity_rps - 1e-9
        assert view.replica_gpus == t.config.tp * t.config.pp


def test_pickers_offer_every_catalog_entry():
    from planner.engine import catalog
    from planner.tui.widgets.panes import gpu_options, model_options

    profile = default_profile()
    models = {value for _, value in model_options(profile, "llama-3.1-70b")}
    gpus = {value for _, value in gpu_options(profile)}
    assert set(catalog.models()) <= models
    assert set(catalog.gpus()) == gpus
    assert {"gemma-3-27b", "llama-4-scout", "kimi-k2", "glm-4.5"} <= models
    assert {"b300", "gb300", "mi355x", "rtx-pro-6000", "l40", "a10", "h20", "tpu-v5p"} <= gpus
    assert "qwen3-4b" in models


def test_an_unreachable_target_shows_the_zero_load_floor_from_the_tier_view():
    """The results table reads a tier through one typed view: the JSON's numbers, plus the floor
    that only the plan holds, here for a TPOT target below what one request alone can reach."""
    from planner.engine.targets import percentile_of
    from planner.profile import Profile
    from planner.report import fmt_ms

    data = default_profile().model_dump()
    data["slo"]["tpot_ms"] = 1.0
    result = compute(Profile.model_validate(data), Path("."), cache=False)
    slo = result.plan.scenario.slo
    tpot_p99 = next(row for row in ROWS if row.id == "tpot_p99")
    for tier in result.plan.tiers:
        view = result.views[tier.tier]
        assert view.data is result.tier_data(tier.tier) and not view["feasible"]
        floor_ms = percentile_of(tier.floor.tpot_s, slo.tpot_percentile) * 1e3
        assert floor_ms > slo.tpot_ms and view.floor_ms["TPOT"] == pytest.approx(floor_ms)
        cell = tpot_p99.cell(view, slo)
        assert cell.missed and cell.text.startswith(f"≥{fmt_ms(floor_ms)} ")
        assert view.gpu is tier.gpu and view.model_family == tier.model.family
