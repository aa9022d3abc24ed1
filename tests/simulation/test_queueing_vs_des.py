"""The analytical queueing model against a discrete-event simulation of the same scheduler.

Both sides use the same step-time function, so the comparison isolates the queueing and batching
approximations. Tolerance: analytical p50/p90/p99 of TTFT, TPOT and E2E within 10% of the
simulation, for three model sizes (8B dense, 70B dense on TP4, Mixtral MoE on TP4) at utilisations
0.1 to 0.9 of the replica's capacity. At 0.9 the step durations drift further over a long request
in the simulation than the linear-noise approximation allows, so the TPOT body (p90) comes out low;
those cases are listed in KNOWN_GAPS as strict expected failures, so an improvement shows up as a
pass.
"""

import numpy as np
import pytest
from specs_fixtures import h100, llama8b, llama70b, mixtral

from planner.engine import lengths
from planner.engine.knobs import Knobs
from planner.engine.roofline import ServingConfig, kv_capacity_tokens, replica_params, step_time
from planner.engine.scenario import LengthDist
from planner.engine.serving import Workload, offline_throughput, rate_point
from simulation.des import SimConfig, simulate

TOLERANCE = 0.10
INPUT = LengthDist(kind="lognormal", mean=1000, p90=2000)
OUTPUT = LengthDist(kind="exponential", mean=128)
MODELS = {"8b-tp1": (llama8b, 1), "70b-tp4": (llama70b, 4), "mixtral-tp4": (mixtral, 4)}


def model_steps(p):
    """The simulation's step durations: the planner's own step-time formula for replica `p`, one
    step at a time and for a run of decode-only steps."""
    def step_s(n_decode, ctx_sum, n_prefill, attn_work):
        return float(step_time(p, n_decode, ctx_sum, n_prefill, attn_work).total_s)

    def decode_steps_s(n_decode, ctx_sums):
        return step_time(p, n_decode, ctx_sums, 0, 0.0).total_s

    return step_s, decode_steps_s


def compare(model_key: str, utilization: float, n_requests: int = 30000, prompts: LengthDist = INPUT,
            outputs: LengthDist = OUTPUT) -> dict[str, float]:
    make, tp = MODELS[model_key]
    p = replica_params(make(), h100(), ServingConfig(tp=tp), Knobs())
    wl = Workload(prompts, outputs)
    max_rate, _, _ = offline_throughput(p, wl)
    rate = utilization * max_rate
    analytic = rate_point(p, wl, rate)
    assert analytic.stable

    step_s, decode_steps_s = model_steps(p)

    def sample(rng, n):
        return lengths.sample(prompts, rng, n), lengths.sample(outputs, rng, n)

    cfg = SimConfig(rate_rps=rate, n_requests=n_requests, warmup_requests=n_requests // 10, max_num_seqs=int(p.max_num_seqs),
                    max_batched_tokens=int(p.budget_tokens), kv_capacity_tokens=float(kv_capacity_tokens(p)), seed=7)
    sim = simulate(cfg, sample, step_s, decode_steps_s)
    assert sim.stable
    errors = {}
    for name, dist, samples in (("ttft", analytic.ttft_s, sim.ttft_s), ("tpot", analytic.tpot_s, sim.tpot_s),
                                ("e2e", analytic.e2e_s, sim.e2e_s)):
        for pct in (50, 90, 99):
            errors[f"{name}_p{pct}"] = dist[f"p{pct}"] / float(np.percentile(samples, pct)) - 1.0
    return errors


# Cases where the model is known to miss by more than the tolerance (measured: worst metric).
KNOWN_GAPS = {
    ("8b-tp1", 0.9): "TPOT p90 -13.7%, TPOT p99 -14.1%, E2E p99 -11.7%",
    ("70b-tp4", 0.9): "TPOT p90 -19.7%, TPOT p99 -14.3%, E2E p99 -12.8%",
    ("mixtral-tp4", 0.9): "TTFT p99 +10.8%, TPOT p90 -10.9%, TPOT p99 -10.1%",
}


def cases(pairs, gaps: dict, where: str) -> list:
    """The (first, second) parameter pairs, those in `gaps` as strict expected failures."""
    return [pytest.param(*pair, marks=pytest.mark.xfail(strict=True, reason=f"known gap {where}: {gaps[pair]}"))
            if pair in gaps else pair for pair in pairs]


def assert_within_tolerance(errors: dict[str, float]) -> None:
    worst = {k: round(v * 100, 1) for k, v in errors.items() if abs(v) > TOLERANCE}
    assert not worst, f"beyond {TOLERANCE:.0%} of the simulation (in %): {worst}"


@pytest.mark.parametrize(("model_key", "utilization"),
                         cases([(m, u) for m in sorted(MODELS) for u in (0.1, 0.3, 0.5, 0.7, 0.9)], KNOWN_GAPS,
                               "near saturation"))
def test_analytical_percentiles_match_simulation(model_key, utilization):
    assert_within_tolerance(compare(model_key, utilization))


# Outputs of a few tokens (classification, routing, extraction): most requests never decode, the
# running batch stays small and turns over every step or two, faster than the prefill bursts that
# lengthen steps decay. An MoE's decode step is steep there (each new sequence touches new experts).
SHORT_PROMPTS = LengthDist(kind="fixed", mean=30)
SHORT_GAPS = {
    (3.0, 0.1): "TPOT p50 -21.6%, E2E p50 -14.3%, p90 -16.6%, p99 -10.1%",
    (3.0, 0.3): "E2E p50 -10.3%",
}


@pytest.mark.parametrize(("output_mean", "utilization"),
                         cases([(1.0, 0.1), (1.0, 0.5), (1.0, 0.9), (3.0, 0.1), (3.0, 0.3), (3.0, 0.5), (8.0, 0.3)],
                               SHORT_GAPS, "at light load"))
def test_outputs_of_a_few_tokens_on_an_moe_match_simulation(output_mean, utilization):
    # the batch's fluctuations are its own mode of the step-duration noise, not whichever mode is
    # slower: taking the prefill bursts' mode for the batch's put Mixtral's TPOT p50 at -17% to -72%
    # of the simulation and E2E p99 at -14% to -34% for outputs of one token on average (10-90% load)
    outputs = LengthDist(kind="exponential", mean=output_mean)
    assert_within_tolerance(compare("mixtral-tp4", utilization, prompts=SHORT_PROMPTS, outputs=outputs))


# Prefill-dominated loads: 1,000-token prompts and outputs of a few tokens on the 8B. The engine
# is busy mostly with prefills and the running batch is small: a busy arrival meets a prefill far
# more often than the cycles' time shares say (taking them as they were put TTFT p90 29% low at
# 3-token outputs and 30% load, p99 17% low at 8 tokens). What remains (measured: worst metric)
# is the median TPOT of requests that decode two steps.
PREFILL_PROMPTS = LengthDist(kind="fixed", mean=1000)
PREFILL_GAPS = {
    (3.0, 0.3): "TPOT p50 +10.7%",
    (3.0, 0.6): "TPOT p50 +27.3%",
    (8.0, 0.3): "TPOT p90 +10.9%, TPOT p99 +14.0%",
}


@pytest.mark.parametrize(("output_mean", "utilization"),
                         cases([(3.0, 0.3), (3.0, 0.6), (8.0, 0.3), (30.0, 0.3), (30.0, 0.6)], PREFILL_GAPS, "prefill-dominated"))
def test_long_prompts_with_outputs_of_a_few_tokens_match_simulation(output_mean, utilization):
    outputs = LengthDist(kind="exponential", mean=output_mean)
    assert_within_tolerance(compare("8b-tp1", utilization, prompts=PREFILL_PROMPTS, outputs=outputs))


@pytest.mark.parametrize(("model_key", "utilization"), [("8b-tp1", 0.9), ("mixtral-tp4", 0.9), ("70b-tp4", 0.7)])
def test_running_batch_spread_matches_simulation(model_key, utilization):
    """The running batch's standard deviation (the linear-noise approximation of step duration and
    batch) within 15% of the simulation's, step by step. Prefill-heavy steps gather more arrivals,
    so near saturation the batch spreads about twice as far as Poisson arrivals and departures
    alone would make it (an M/G/inf occupancy widened by the fixed-point gain)."""
    make, tp = MODELS[model_key]
    p = replica_params(make(), h100(), ServingConfig(tp=tp), Knobs())
    wl = Workload(INPUT, OUTPUT)
    from planner.engine.serving import solve_rate_point

    rate = utilization * offline_throughput(p, wl)[0]
    state = solve_rate_point(p, wl, rate).state
    batches = []

    def step_s(n_decode, ctx_sum, n_prefill, attn_work):
        batches.append(n_decode)
        return float(step_time(p, n_decode, ctx_sum, n_prefill, attn_work).total_s)

    def sample(rng, n):
        return lengths.sample(INPUT, rng, n), lengths.sample(OUTPUT, rng, n)

    n = 20000
    cfg = SimConfig(rate_rps=rate, n_requests=n, warmup_requests=n // 10, max_num_seqs=int(p.max_num_seqs),
                    max_batched_tokens=int(p.budget_tokens), kv_capacity_tokens=float(kv_capacity_tokens(p)), seed=11)
    assert simulate(cfg, sample, step_s).stable
    steady = np.asarray(batches[len(batches) // 10: -len(batches) // 10], dtype=float)  # without fill and drain
    assert np.sqrt(state.batch_var) == pytest.approx(steady.std(), rel=0.15)
