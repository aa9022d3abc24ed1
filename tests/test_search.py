"""The search's answer is the plan's answer, and its frontier is non-dominated."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.engine import catalog
from planner.engine.auto_choice import plan_tier
from planner.engine.knobs import shipped_calibration
from planner.engine.plan import workload_of
from planner.engine.scenario import Fleet, Load, Scenario, Targets
from planner.engine.search import SAME_LATENCY, Candidate, distinct, pareto, search_tier
from planner.engine.serving import Workload
from planner.engine.sizing import size_replicas

SCENARIO = Scenario(load=Load(rate_rps=4.0, input_len=800, output_len=200), slo=Targets(ttft_ms=1500, tpot_ms=80))
GPUS = ["l40s", "a100-80gb", "h100-sxm"]


def _result():
    model = catalog.get_model("llama-3.1-8b")
    gpus = [catalog.get_gpu(g) for g in GPUS]
    return search_tier(SCENARIO, "medium", [model], gpus, top=3)


def test_best_agrees_with_exact_sizing_and_is_never_beaten_by_sampled_configs():
    result = _result()
    assert result.ranked, result.excluded
    best = result.ranked[0]
    wl = Workload(SCENARIO.load.input_len, SCENARIO.load.output_len)
    knobs = shipped_calibration().for_family(best.gpu.family)
    sized = size_replicas(SCENARIO, best.model, best.gpu, best.config, knobs, wl, SCENARIO.load.peak_rate_rps)
    assert sized.feasible and sized.replicas == best.replicas
    # a sample of single configurations evaluated one by one never beats the search's best
    from planner.engine.search import _grid

    _, meta, _ = _grid([best.model], [catalog.get_gpu(g) for g in GPUS], SCENARIO, wl)
    for model, gpu, cfg in meta[:: max(1, len(meta) // 25)]:
        knobs = shipped_calibration().for_family(gpu.family)
        s = size_replicas(SCENARIO, model, gpu, cfg, knobs, wl, SCENARIO.load.peak_rate_rps)
        if s.feasible:
            usd = s.replicas * cfg.tp * gpu.price_usd_hour * SCENARIO.cost.hours_per_month
            assert usd >= best.usd_month - 1e-6, (gpu.id, cfg)


def test_exclusions_are_counted():
    result = _result()
    assert result.screened > 1000
    assert all(v > 0 for v in result.excluded.values())


def _cand(usd: float, lat: float) -> Candidate:
    c = Candidate(model=None, gpu=None, config=None, lower_bound_usd=0.0)  # type: ignore[arg-type]
    c.usd_month, c.e2e_p99_ms, c.feasible = usd, lat, True
    return c


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.floats(1, 1e6), st.floats(1, 1e6)), min_size=1, max_size=40))
def test_frontier_is_non_dominated(points):
    cands = [_cand(usd, latency) for usd, latency in points]
    front = pareto(cands, "e2e_p99_ms")
    for f in front:
        assert not any(c.usd_month <= f.usd_month and c.e2e_p99_ms < f.e2e_p99_ms or
                       c.usd_month < f.usd_month and c.e2e_p99_ms <= f.e2e_p99_ms for c in cands)
    # every candidate is dominated by or equal to a frontier point
    for c in cands:
        assert any(f.usd_month <= c.usd_month and f.e2e_p99_ms <= c.e2e_p99_ms for f in front) or math.isnan(c.usd_month)


def test_ranking_lists_distinct_fleets():
    fleets = [(c.model.id, c.gpu.id, c.config.weights, c.config.kv, c.config.tp) for c in _result().ranked]
    assert len(fleets) == len(set(fleets)) > 1


def test_a_price_override_is_the_price_of_the_profiles_own_gpu_only():
    from planner.engine.scenario import Fleet

    scenario = SCENARIO.model_copy(update={"fleet": Fleet(gpu="h100-sxm", price_usd_hour=0.01)})
    model = catalog.get_model("llama-3.1-8b")
    result = search_tier(scenario, "medium", [model], [catalog.get_gpu(g) for g in GPUS], top=3)
    hours = scenario.cost.hours_per_month
    for c in result.ranked:
        price = 0.01 if c.gpu.id == "h100-sxm" else c.gpu.price_usd_hour
        assert math.isclose(c.usd_month, c.gpus * price * hours)
    assert result.ranked[0].gpu.id == "h100-sxm"  # at a cent an hour it wins


def _search(scenario, gpus=("l40s", "h100-sxm"), model="llama-3.1-8b", top=3):
    return search_tier(scenario, "medium", [catalog.get_model(model)], [catalog.get_gpu(g) for g in gpus], top=top)


def _with_load(**load) -> Scenario:
    return SCENARIO.model_copy(update={"load": Load(**({"rate_rps": 4.0, "input_len": 800, "output_len": 200} | load))})


def test_requests_beyond_the_context_limit_are_refused_before_any_sizing():
    result = _search(_with_load(input_len=200_000), model="llama-3.2-3b")
    assert not result.ranked and result.exact_evaluations == 0
    assert any("131,072-token context limit of llama-3.2-3b" in why for why in result.excluded), result.excluded


def test_fleet_max_gpus_bounds_every_row_and_refuses_what_needs_more():
    capped = SCENARIO.model_copy(update={"fleet": Fleet(max_gpus=1), "load": Load(rate_rps=500.0, input_len=800, output_len=200)})
    result = _search(capped)
    assert not result.ranked and result.exact_evaluations == 0, [(c.gpus, c.gpu.id) for c in result.ranked]
    assert result.excluded.get("need more GPUs than fleet.max_gpus", 0) > 0


def test_no_load_is_reported_as_no_load_not_as_fleets_of_zero_gpus():
    result = _search(_with_load(rate_rps=0.0))
    assert not result.ranked and result.exact_evaluations == 0
    assert any(n.startswith("no load") for n in result.notes)


def _plan_of_row(scenario: Scenario, c: Candidate):
    """Plan the row's fleet as a profile would set it: its GPU, precisions, TP and engine limits."""
    cfg = c.config
    opt = scenario.optimizations.model_copy(update={"weights": cfg.weights, "kv": cfg.kv, "tp": cfg.tp, "pp": cfg.pp,
                                                    "max_num_seqs": cfg.max_num_seqs,
                                                    "max_num_batched_tokens": cfg.max_num_batched_tokens})
    fixed = scenario.model_copy(update={"fleet": scenario.fleet.model_copy(update={"gpu": c.gpu.id}), "optimizations": opt})
    return plan_tier(fixed, "medium", c.model, c.gpu, workload_of(fixed))


@settings(max_examples=6, deadline=None, derandomize=True)
@given(rate=st.sampled_from([0.5, 3.0, 12.0]), input_len=st.sampled_from([300, 2000, 60_000, 140_000]),
       max_gpus=st.sampled_from([None, 1, 2, 3]), tpot_ms=st.sampled_from([25.0, 80.0]))
def test_every_search_row_is_a_fleet_plan_accepts(rate, input_len, max_gpus, tpot_ms):
    scenario = Scenario(load=Load(rate_rps=rate, input_len=input_len, output_len=200), slo=Targets(ttft_ms=4000, tpot_ms=tpot_ms),
                        fleet=Fleet(max_gpus=max_gpus))
    for c in _search(scenario, gpus=("l4", "l40s", "h100-sxm")).ranked:
        planned = _plan_of_row(scenario, c)
        assert planned.feasible and planned.meets_slo, (c.gpu.id, c.config, planned.reason, planned.misses)
        assert planned.gpus == c.gpus, (c.gpu.id, c.config, planned.gpus, c.gpus)
        assert max_gpus is None or c.gpus <= max_gpus


def test_rows_on_the_same_hardware_differ_in_latency():
    result = _search(SCENARIO, gpus=("l40s", "h100-sxm", "a100-80gb"), top=8)
    rows = result.ranked
    assert len(rows) > 1
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if (a.model.id, a.gpu.id, a.gpus, a.config.tp) == (b.model.id, b.gpu.id, b.gpus, b.config.tp):
                assert abs(a.e2e_p99_ms - b.e2e_p99_ms) > SAME_LATENCY * min(a.e2e_p99_ms, b.e2e_p99_ms) or \
                    abs(a.ttft_p99_ms - b.ttft_p99_ms) > SAME_LATENCY * min(a.ttft_p99_ms, b.ttft_p99_ms), (a.config, b.config)


def test_precisions_with_the_same_cost_and_latency_collapse_to_the_higher_one():
    from dataclasses import replace

    from planner.engine.roofline import ServingConfig

    model, gpu = catalog.get_model("llama-3.1-8b"), catalog.get_gpu("l40s")

    def row(weights: str, kv: str, e2e: float, gpus: int = 1) -> Candidate:
        c = Candidate(model, gpu, replace(ServingConfig(), weights=weights, kv=kv), 0.0)
        c.usd_month, c.gpus, c.e2e_p99_ms, c.ttft_p99_ms, c.feasible = 1000.0 * gpus, gpus, e2e, 100.0, True
        return c

    kept = distinct([row("int8", "fp8", 900.0), row("fp8", "fp8", 900.0), row("int4", "fp8", 600.0), row("int4", "bf16", 905.0),
                     row("int8", "fp8", 900.0, gpus=2)])
    assert [(c.config.weights, c.config.kv, c.gpus) for c in kept] == [("int4", "fp8", 1), ("fp8", "fp8", 1), ("int8", "fp8", 2)]


def test_a_fleet_on_an_estimated_gpu_price_says_so():
    """MI355X's catalog price is an estimate (no quoted on-demand price); H100's is quoted. A price
    the profile sets for its own GPU is the user's, not an estimate."""
    assert catalog.get_gpu("mi355x").price_estimated and not catalog.get_gpu("h100-sxm").price_estimated
    scenario = Scenario(load=Load(rate_rps=5))
    rows = _search(scenario, gpus=("mi355x", "h100-sxm"), top=20).ranked
    assert {(c.gpu.id, c.price_estimated) for c in rows} == {("mi355x", True), ("h100-sxm", False)}
    own = Scenario(load=Load(rate_rps=5), fleet=Fleet(gpu="mi355x", price_usd_hour=2.5))
    assert not any(c.price_estimated for c in _search(own, gpus=("mi355x",)).ranked)


def test_the_search_table_marks_estimated_prices(capsys):
    from planner.cli import main

    main(["search", "profiles/chatbot-h100.toml", "--tier", "medium", "--gpus", "mi355x"])
    out = capsys.readouterr().out
    assert "~$" in out and "estimate" in out
