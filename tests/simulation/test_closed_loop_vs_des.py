"""The closed loop (concurrency_point) against the discrete-event simulation's closed-loop mode:
N clients, each sending its next request the instant its last one completes. Same step-time
function on both sides, so the comparison isolates the queueing and batching model. Tolerance 10%
(as the open-loop comparison) on the mean and p50/p90/p99 of TTFT, TPOT and E2E and on the
throughput, for an 8B on one H100 with max_num_seqs 32 (a small batch keeps the simulation fast),
1,000-token lognormal prompts and exponential outputs (mean 128), at 0.5x, 1x, 2x and 8x the batch.

Past the batch (2x, 8x) the engine runs full and the clients it does not admit queue for a slot:
everything within 2% of the simulation. The offline formula's 24 req/s would be 38% high there:
at 32 sequences a step with a prompt is compute-bound and a plain decode step memory-bound, so the
mean step is well above the step at the mean load; the simulated engine makes 17.3 req/s, as the
full engine's cycle mixture does (17.4). Up to the batch (0.5x, 1x) the closed loop is the open
loop's mean-value analysis: throughput and E2E hold, but a closed-loop prompt arrives as a step ends
(when the request before it completes) and is prefilled in the next, while the open-loop model
makes it wait out the residual of a step in progress (TTFT 45-113% high), and the TPOT tail comes
out high; those are strict expected failures (measured figures in KNOWN_GAPS).
"""

import numpy as np
import pytest
from specs_fixtures import h100, llama8b

from planner.engine import lengths
from planner.engine.knobs import Knobs
from planner.engine.roofline import ServingConfig, kv_capacity_tokens, replica_params
from planner.engine.scenario import LengthDist
from planner.engine.serving import Workload, concurrency_point
from simulation.des import SimConfig, simulate_closed_loop
from simulation.test_queueing_vs_des import model_steps

TOLERANCE = 0.10
MAX_SEQS = 32
INPUT = LengthDist(kind="lognormal", mean=1000, p90=2000)
OUTPUT = LengthDist(kind="exponential", mean=128)
STATS = ("mean", "p50", "p90", "p99")


def replica():
    return replica_params(llama8b(), h100(), ServingConfig(max_num_seqs=MAX_SEQS), Knobs())


_SIMULATED: dict = {}


def simulated(clients: int):
    """The simulation of `clients` (about a second each), made once per session."""
    if clients not in _SIMULATED:
        p = replica()

        step_s, decode_steps_s = model_steps(p)

        def sample(rng, n):
            return lengths.sample(INPUT, rng, n), lengths.sample(OUTPUT, rng, n)

        cfg = SimConfig(rate_rps=1.0, n_requests=20000, warmup_requests=max(2000, 3 * clients), max_num_seqs=MAX_SEQS,
                        max_batched_tokens=int(p.budget_tokens), kv_capacity_tokens=float(kv_capacity_tokens(p)), seed=7)
        _SIMULATED[clients] = simulate_closed_loop(cfg, clients, sample, step_s, decode_steps_s)
    return _SIMULATED[clients]


def errors(clients: int) -> dict[str, float]:
    analytic = concurrency_point(replica(), Workload(INPUT, OUTPUT), clients)
    sim = simulated(clients)
    assert analytic.stable and sim.stable
    out = {"throughput": analytic.requests_per_s / sim.throughput_rps - 1.0}
    for name, dist, samples in (("ttft", analytic.ttft_s, sim.ttft_s), ("tpot", analytic.tpot_s, sim.tpot_s),
                                ("e2e", analytic.e2e_s, sim.e2e_s)):
        for stat in STATS:
            ref = samples.mean() if stat == "mean" else np.percentile(samples, int(stat[1:]))
            out[f"{name}_{stat}"] = dist[stat] / float(ref) - 1.0
    return out


def beyond(errs: dict[str, float], keys=None) -> dict[str, float]:
    return {k: round(v * 100, 1) for k, v in errs.items() if abs(v) > TOLERANCE and (keys is None or k in keys)}


# Measured (analytic vs simulation, worst metrics): the open-loop mean-value analysis below saturation
KNOWN_GAPS = {
    0.5: "TTFT mean +54.7%, p50 +45.1%, p90 +56.4%, p99 +73.3%; TPOT p90 +10.9%, p99 +46.2%",
    1.0: "TTFT mean +83.1%, p50 +65.9%, p90 +93.0%, p99 +114.5%; TPOT p90 +19.2%, p99 +59.7%",
}


@pytest.mark.parametrize("multiple", [
    pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=f"known gap below saturation: {KNOWN_GAPS[m]}"))
    if m in KNOWN_GAPS else m for m in (0.5, 1.0, 2.0, 8.0)])
def test_closed_loop_matches_simulation(multiple):
    worst = beyond(errors(int(multiple * MAX_SEQS)))
    assert not worst, f"beyond {TOLERANCE:.0%} of the simulation (in %): {worst}"


@pytest.mark.parametrize("multiple", [0.5, 1.0, 2.0, 8.0])
def test_closed_loop_throughput_and_mean_e2e_match_simulation(multiple):
    # what the known gaps above leave out holds at every client count: throughput, E2E (mean and
    # percentiles), TPOT's mean and median
    keys = {"throughput", "e2e_mean", "e2e_p50", "e2e_p90", "e2e_p99", "tpot_mean", "tpot_p50"}
    worst = beyond(errors(int(multiple * MAX_SEQS)), keys)
    assert not worst, f"beyond {TOLERANCE:.0%} of the simulation (in %): {worst}"


def test_saturated_slot_wait_spread_matches_simulation():
    # 2x the batch: 32 clients queue ahead of each request; the wait's spread (TTFT p99 - p50, half
    # a second) is the time 32 slots take to free, not a constant
    analytic = concurrency_point(replica(), Workload(INPUT, OUTPUT), 2 * MAX_SEQS)
    sim = simulated(2 * MAX_SEQS)
    spread = analytic.ttft_s["p99"] - analytic.ttft_s["p50"]
    assert spread == pytest.approx(float(np.percentile(sim.ttft_s, 99) - np.percentile(sim.ttft_s, 50)), rel=0.15)


def test_simulated_closed_loop_by_hand():
    # 8 clients, 4 slots, 100-token prompts, 5 output tokens, 10 ms steps: four requests run
    # (prefill step + 4 decode steps = 50 ms) while four wait 50 ms for their slots; so each
    # request waits 50 ms, its first token 10 ms after admission, and ends 100 ms after it was sent
    cfg = SimConfig(rate_rps=1.0, n_requests=2000, warmup_requests=100, max_num_seqs=4)
    sim = simulate_closed_loop(cfg, 8, lambda rng, n: (np.full(n, 100), np.full(n, 5)), lambda *step: 0.010)
    assert sim.e2e_s == pytest.approx(np.full(len(sim.e2e_s), 0.100))
    assert sim.ttft_s == pytest.approx(np.full(len(sim.ttft_s), 0.060))
    assert sim.throughput_rps == pytest.approx(80.0)
    assert sim.max_running == 4 and sim.stable
    one = simulate_closed_loop(SimConfig(rate_rps=1.0, n_requests=200, warmup_requests=10), 1,
                               lambda rng, n: (np.full(n, 100), np.full(n, 5)), lambda *step: 0.010)
    assert one.e2e_s == pytest.approx(np.full(len(one.e2e_s), 0.050)) and one.throughput_rps == pytest.approx(20.0)
