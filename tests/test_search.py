"""The search's answer is the plan's answer, and its frontier is non-dominated."""

import math

from hypothesis import given, settings, strategies as st

from planner.engine import catalog
from planner.engine.knobs import shipped_calibration
from planner.engine.plan import size_replicas
from planner.engine.scenario import Load, Scenario, Targets
from planner.engine.search import Candidate, pareto, search_tier
from planner.engine.serving import Workload

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

    _, meta = _grid([best.model], [catalog.get_gpu(g) for g in GPUS], SCENARIO, None)
    for model, gpu, cfg in meta[:: max(1, len(meta) // 25)]:
        s = size_replicas(SCENARIO, model, gpu, cfg, shipped_calibration().for_family(gpu.family), wl, SCENARIO.load.peak_rate_rps)
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
    cands = [_cand(u, l) for u, l in points]
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
