"""weights = "auto" chooses: the cheapest weight format that fits and meets every target, reported as
chosen; a precision the profile sets is kept."""

from __future__ import annotations

from planner.engine import catalog
from planner.engine.auto_choice import auto_weights, plan_tier
from planner.engine.plan import evaluate, workload_of
from planner.engine.scenario import Load, Optimizations, Scenario
from planner.profile import Profile
from planner.report import plan_json


def test_the_readme_minimal_profile_plans_every_tier():
    # README: a minimal profile is a name and a load; its 405B tier did not fit at bf16
    scenario = Profile.model_validate({"name": "my service", "load": {"rate_rps": 5}}).scenario()
    for t in plan_json(evaluate(scenario))["tiers"]:
        assert t["feasible"] and t["meets_slo"], (t["tier"], t.get("reason"), t.get("misses"))
        assert t["weights_auto"] is True
    assert plan_json(evaluate(scenario))["tiers"][2]["weights"] != "bf16"


def test_auto_is_the_cheapest_format_and_the_higher_one_at_equal_cost():
    scenario = Scenario(load=Load(rate_rps=5))
    model, gpu = catalog.get_model("llama-3.1-70b"), catalog.get_gpu("h100-sxm")
    wl = workload_of(scenario)
    chosen = plan_tier(scenario, "medium", model, gpu, wl)
    assert chosen.meets_slo and chosen.weights_auto
    formats = auto_weights(model, gpu)
    assert formats[0] == "bf16" and {"fp8", "int4"} <= set(formats)
    for w in formats:
        fixed = plan_tier(scenario.model_copy(update={"optimizations": Optimizations(weights=w)}), "medium", model, gpu, wl)
        assert not fixed.weights_auto
        if fixed.meets_slo:
            assert chosen.gpus <= fixed.gpus, (w, fixed.gpus, chosen.config.weights, chosen.gpus)
            if fixed.gpus == chosen.gpus:  # a tie goes to the higher precision
                assert formats.index(chosen.config.weights) <= formats.index(w)


def test_auto_tries_only_formats_the_gpu_runs_and_never_a_larger_one():
    assert auto_weights(catalog.get_model("llama-3.1-8b"), catalog.get_gpu("gaudi3")) == ["bf16", "fp8", "int4"]
    deepseek = catalog.get_model("deepseek-v3")  # shipped in fp8
    formats = auto_weights(deepseek, catalog.get_gpu("h100-sxm"))
    assert formats[0] == "fp8" and "bf16" not in formats


def test_a_precision_the_profile_sets_is_kept():
    scenario = Scenario(load=Load(rate_rps=5), optimizations=Optimizations(weights="bf16", pp=1))
    large = plan_json(evaluate(scenario))["tiers"][2]
    assert large["weights"] == "bf16" and large["weights_auto"] is False and not large["feasible"]


def test_pp_auto_adds_pipeline_stages_only_where_one_node_cannot_hold_the_model():
    scenario = Scenario(load=Load(rate_rps=5), optimizations=Optimizations(weights="bf16"))  # pp = "auto", the default
    small, medium, large = plan_json(evaluate(scenario))["tiers"]
    assert small["pp"] == medium["pp"] == 1  # they fit one node: no stage is added
    assert large["feasible"] and large["meets_slo"] and large["pp"] == 2 and large["tp"] == 8  # 810 GB of bf16 on 2 x 8 H100
    assert large["gpus"] == large["replicas"] * 16


def test_nothing_fitting_says_what_auto_tried():
    scenario = Scenario(load=Load(rate_rps=5), fleet={"gpu": "l4", "gpus_per_node": 2})
    large = plan_json(evaluate(scenario))["tiers"][2]  # 405B on two 24 GB cards: no format fits
    assert not large["feasible"] and 'weights "auto" tried bf16, fp8' in large["reason"], large["reason"]


def test_stages_that_hold_the_model_but_miss_a_floor_are_named_with_the_one_stage_refusal():
    scenario = Scenario(load=Load(rate_rps=5), slo={"tpot_ms": 10}, optimizations=Optimizations(weights="bf16"))
    large = plan_json(evaluate(scenario))["tiers"][2]
    assert not large["feasible"] and large["pp"] == 1 and large["binding"] == "memory capacity"
    assert "does not fit" in large["reason"] and 'with PP=2 (pp "auto") it fits, but TPOT p99' in large["reason"]
