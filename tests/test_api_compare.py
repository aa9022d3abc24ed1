"""Self-hosting against a hosted API: the sourced price catalog, which price a tier is compared
with, and the API bill and break-even load against hand-worked numbers."""

from __future__ import annotations

import math

import pytest

from planner.engine import api_prices, catalog
from planner.engine.api_prices import ApiListing, ApiQuote, api_quote, cheapest_listing, listings
from planner.engine.cost import ApiComparison
from planner.engine.plan import evaluate
from planner.engine.scenario import ApiPrice, ApiSettings, CostKnobs, Load, Optimizations, Scenario
from planner.profile import ProfileError, profile_from_toml
from planner.report import plan_json

SECONDS = 730 * 3600  # 2,628,000 s a month


def comparison(replica_usd: float = 1460.0, capacity_rps: float = 5.0, rate_rps: float = 10.0) -> ApiComparison:
    # $0.10/M in, $0.30/M out; 1000 in + 250 out: 1000 x 0.10/1e6 + 250 x 0.30/1e6 = $0.000175 a request
    quote = ApiQuote(0.10, 0.30, "test")
    per_request = quote.usd_per_request(1000, 250)
    assert per_request == pytest.approx(0.000175)
    return ApiComparison(quote, per_request, SECONDS, 250, replica_usd, capacity_rps,
                         math.ceil(rate_rps / capacity_rps) * replica_usd, rate_rps)


def test_api_bill_hand_worked():
    c = comparison()
    # $0.000175 x 10 req/s x 2,628,000 s = $4,599 a month
    assert c.usd_month == pytest.approx(4599.0)
    # per million output tokens, the prompts included: $0.000175 / 250 tokens x 1e6 = $0.70
    assert c.usd_per_mtok_output == pytest.approx(0.70)
    # two $1,460 replicas carry 10 req/s at 5 req/s each: $2,920 < $4,599
    assert c.self_hosted_usd_month == pytest.approx(2920.0) and c.cheaper == "self-hosted"


def test_break_even_hand_worked():
    c = comparison()
    # the API costs 0.000175 x 2,628,000 = $459.90 a month per req/s; one $1,460 replica pays at
    # 1460 / 459.9 = 3.1746 req/s, within its 5 req/s
    assert c.break_even_rps == pytest.approx(1460 / 459.9)
    assert c.break_even_rps * SECONDS == pytest.approx(8_342_857, rel=1e-6)  # requests a month
    assert c.break_even_rps * SECONDS * 250 / 1e6 == pytest.approx(2085.714, rel=1e-6)  # M output tokens
    # below it the idle replica costs more than the API; above it, less
    assert c.self_hosted_usd_month_at(3.0) > c.api_usd_month_at(3.0)
    assert c.self_hosted_usd_month_at(3.3) < c.api_usd_month_at(3.3)
    # just past a full replica the second one is mostly idle: the API is cheaper again at 5.5 req/s
    assert c.self_hosted_usd_month_at(5.5) == pytest.approx(2920.0)
    assert c.api_usd_month_at(5.5) == pytest.approx(2529.45)


def test_break_even_gpu_price_hand_worked():
    # two replicas cost $2,920 at $2/GPU-hour; the API bills $4,599: GPUs at 2 x 4599 / 2920 =
    # $3.15 an hour would make the fleet cost what the API does
    assert comparison().break_even_gpu_price(2.0) == pytest.approx(3.15)
    assert comparison(replica_usd=0.0).break_even_gpu_price(0.0) == math.inf


def test_no_break_even_when_a_full_replica_costs_more_than_its_load_on_the_api():
    # a $3,000 replica carrying 5 req/s against $459.90 per req/s: 3000 / 459.9 = 6.52 > 5
    c = comparison(replica_usd=3000.0)
    assert c.break_even_rps == math.inf
    for rate in (0.5, 5.0, 5.01, 50.0, 5000.0):
        assert c.self_hosted_usd_month_at(rate) > c.api_usd_month_at(rate)


def test_self_hosted_staircase_pays_for_whole_replicas():
    c = comparison()
    assert c.self_hosted_usd_month_at(0.0) == 0.0
    assert c.self_hosted_usd_month_at(0.01) == pytest.approx(1460.0)  # an idle replica costs the same
    assert c.self_hosted_usd_month_at(5.0) == pytest.approx(1460.0)
    assert c.self_hosted_usd_month_at(5.01) == pytest.approx(2920.0)


# ---------------------------------------------------------------- the catalog


def test_catalog_prices_name_catalog_models_with_sources():
    known = catalog.models()
    rows = [row for model_rows in listings().values() for row in model_rows]
    assert rows
    for row in rows:
        assert row.model in known, row.model
        assert row.url.startswith("https://") and len(row.seen) == 10
        assert row.input_usd_per_mtok > 0 or row.output_usd_per_mtok > 0


def test_default_tier_models_have_three_providers():
    for model in (Scenario().models.small, Scenario().models.medium, Scenario().models.large):
        assert len({row.provider for row in listings()[model]}) >= 3, model


def test_cheapest_listing_is_the_lowest_bill_for_this_traffic():
    for model, rows in listings().items():
        for mean_in, mean_out in ((1000, 250), (100, 1000)):
            best = cheapest_listing(model, mean_in, mean_out)
            lowest = min(mean_in * r.input_usd_per_mtok + mean_out * r.output_usd_per_mtok for r in rows)
            assert best.usd_per_request(mean_in, mean_out) * 1e6 == pytest.approx(lowest)
    assert cheapest_listing("no-such-model", 1000, 250) is None


def test_which_listing_is_cheapest_depends_on_the_prompt_output_mix(monkeypatch):
    cheap_in = ApiListing(model="m", provider="A", input_usd_per_mtok=0.05, output_usd_per_mtok=0.40,
                          url="https://a.example", seen="2026-01-01")
    cheap_out = ApiListing(model="m", provider="B", input_usd_per_mtok=0.20, output_usd_per_mtok=0.20,
                           url="https://b.example", seen="2026-01-01")
    monkeypatch.setattr(api_prices, "listings", lambda: {"m": (cheap_in, cheap_out)})
    # 1000 in / 250 out: A bills 50 + 100 = 150, B 200 + 50 = 250 (micro-dollars); 100 / 1000: A 405, B 220
    assert cheapest_listing("m", 1000, 250).provider == "A"
    assert cheapest_listing("m", 100, 1000).provider == "B"


# ---------------------------------------------------------------- which price a tier uses


def test_profile_price_per_tier_wins_then_the_single_price_then_the_catalog():
    own = Scenario(api=ApiSettings(medium=ApiPrice(input=0.06, output=0.06)),
                   cost=CostKnobs(api_usd_per_mtok_input=0.5, api_usd_per_mtok_output=1.0))
    q = api_quote(own, "medium", "llama-3.1-70b", 1000, 250)
    assert (q.input_usd_per_mtok, q.output_usd_per_mtok, q.provider, q.url) == (0.06, 0.06, "profile", None)
    single = api_quote(own, "small", "llama-3.2-3b", 1000, 250)
    assert (single.input_usd_per_mtok, single.output_usd_per_mtok) == (0.5, 1.0)
    listed = api_quote(Scenario(), "small", "llama-3.2-3b", 1000, 250)
    assert listed == cheapest_listing("llama-3.2-3b", 1000, 250) and listed.url.startswith("https://")
    assert api_quote(Scenario(api=ApiSettings(enabled=False)), "small", "llama-3.2-3b", 1000, 250) is None


def test_profile_api_section_reads_and_rejects_bad_prices():
    p = profile_from_toml('name = "x"\n[api]\nsmall = {input = 0.06, output = 0.06}\n')
    assert p.scenario().api.small == ApiPrice(input=0.06, output=0.06)
    assert profile_from_toml('name = "x"\n[api]\nenabled = false\n').scenario().api.enabled is False
    with pytest.raises(ProfileError, match="api.small.output"):
        profile_from_toml('name = "x"\n[api]\nsmall = {input = 0.06, output = -1}\n', "p.toml")
    with pytest.raises(ProfileError, match="api"):
        profile_from_toml('name = "x"\n[api]\ntiny = {input = 0.06, output = 0.06}\n', "p.toml")


# ---------------------------------------------------------------- the plan's JSON


def test_default_plan_compares_every_tier_with_the_catalog():
    sc = Scenario(load=Load(rate_rps=2.0, input_len=1000, output_len=250), optimizations=Optimizations(weights="fp8"))
    data = plan_json(evaluate(sc))
    for t in data["tiers"]:
        src = t["api_source"]
        assert src["url"].startswith("https://") and src["seen"]
        per_request = (1000 * t["api_usd_per_mtok_input"] + 250 * t["api_usd_per_mtok_output"]) / 1e6
        assert t["api_usd_month"] == pytest.approx(per_request * 2.0 * SECONDS, abs=0.01)
        assert t["api_usd_per_mtok"] == pytest.approx(per_request / 250 * 1e6, abs=1e-4)
        if t["feasible"]:
            assert t["api_cheaper"] == ("api" if t["api_usd_month"] < t["usd_month"] else "self-hosted")
            price = t["usd_month"] / (t["gpus"] * 730)  # the GPU-hour price the plan used
            assert t["break_even_usd_per_gpu_hour"] == pytest.approx(price * t["api_usd_month"] / t["usd_month"], rel=1e-3)
            if t["break_even_rps"] is None:
                assert t["api_note"].startswith("self-hosting never breaks even")
            else:
                assert t["break_even_requests_month"] == pytest.approx(t["break_even_rps"] * SECONDS, rel=1e-3)
                assert t["break_even_mtok_month"] == pytest.approx(t["break_even_rps"] * SECONDS * 250 / 1e6, rel=1e-3)


def test_comparison_off_and_unknown_model_say_why():
    off = plan_json(evaluate(Scenario(api=ApiSettings(enabled=False))))
    assert all(t["api_usd_month"] is None and t["api_note"].startswith("API comparison off") for t in off["tiers"])
    unpriced = next(m for m in catalog.models() if m not in listings())
    unknown = plan_json(evaluate(Scenario(models={"small": unpriced, "medium": unpriced, "large": unpriced})))
    assert all(t["api_source"] is None and t["api_note"] == f"no API price known for {t['model']}" for t in unknown["tiers"])


# ---------------------------------------------------------------- search


def test_search_lists_a_hosted_api_only_where_it_undercuts_every_fleet():
    from planner.engine.search import search
    from planner.report import hosted_api_json

    load = Load(rate_rps=1.0, input_len=1000, output_len=250)
    cheap = Scenario(load=load, api=ApiSettings(small=ApiPrice(input=0.01, output=0.01)))
    [result] = search(cheap, ["small"], ["h100-sxm"], top=2)
    # 1,250 tokens x $0.01/M = $0.0000125 a request x 1 req/s x 2,628,000 s = $32.85 a month
    [option] = result.hosted_apis
    assert option.usd_month == pytest.approx(32.85) and option.usd_month < result.ranked[0].usd_month
    data = hosted_api_json(option)
    assert data["hosted_api"] is True and data["provider"] == "profile" and data["usd_month"] == 32.85
    dear = Scenario(load=load, api=ApiSettings(small=ApiPrice(input=100.0, output=100.0)))
    assert search(dear, ["small"], ["h100-sxm"], top=2)[0].hosted_apis == []
    off = Scenario(load=load, api=ApiSettings(enabled=False, small=ApiPrice(input=0.01, output=0.01)))
    assert search(off, ["small"], ["h100-sxm"], top=2)[0].hosted_apis == []
