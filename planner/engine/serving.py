"""Operating point of one replica under the three benchmark modes: offline, closed-loop
concurrency and open-loop Poisson rate, for a vLLM-style continuous-batching scheduler with
chunked prefill (or whole-prompt prefill steps when chunking is off).

Open-loop model (derived from the modeling digest §4.3, §5 and §9.3):
- a decode-only step T_d(b) comes from the roofline, b = running sequences per pipeline lane;
- the engine runs in cycles: the step(s) that prefill the prompts which arrived during the
  previous cycle, all admitted together under the token budget (spilling into more steps when they
  exceed it); a cycle without prompts is one decode step. Cycle durations form a Markov chain;
  its stationary law comes from a fixed point on the arrival-count mixture, together with the
  running batch from Little's law, B = lambda (E[L_out] - 1) x mean step;
- TTFT = residual of the length-biased cycle in progress + the cycle that prefills this prompt with
  the prompts that arrived alongside it;
- TPOT per request follows the cycles after its own prefill (their prompts arrived during the
  cycle before, which clusters slow steps), each drawn from a table of the next cycle by the
  arrivals the last one brings (NextCycles), and the drift of the running batch, whose
  fluctuations the fixed point's gain amplifies near saturation; E2E = TTFT + (L_out - 1) TPOT.
  Short requests are importance-sampled (they set the TPOT tail); an idle replica needs no
  sampling at all.
Checked against a discrete-event simulation of the same scheduler (tests/simulation).

The model lives in modules of one job each; this one gathers the entry points the rest of the
planner uses (a test of one part imports it from its own module):
- workload: length grids and moments, prompt tokens after prefix hits, the seeded prompt pool;
- cycles: the decode step, a prompt's prefill, the open loop's cycle durations;
- offline: the operating point every mode reports, the batch cap and the offline maximum;
- fixed_point: the open loop's stationary state and the batch's fluctuations around it;
- open_loop: a rate solved once (RateSolution), then finished into means or distributions;
- distributions: TTFT, TPOT and E2E percentiles from seeded joint samples (sample fidelities);
- seeded_draws, next_cycles, quantiles: the samples' seeded inputs, the next-cycle table a
  decode path walks, and the quantile helpers;
- closed_loop and saturated: concurrency below saturation, and the full engine past it.
"""

from planner.engine.closed_loop import concurrency_point
from planner.engine.distributions import FULL, QUICK, Fidelity
from planner.engine.offline import OperatingPoint, offline_point, offline_throughput
from planner.engine.open_loop import RateSolution, finish_rate_point, rate_point, solve_rate_point
from planner.engine.workload import Workload, prompt_tokens

__all__ = [
    "FULL",
    "QUICK",
    "Fidelity",
    "OperatingPoint",
    "RateSolution",
    "Workload",
    "concurrency_point",
    "finish_rate_point",
    "offline_point",
    "offline_throughput",
    "prompt_tokens",
    "rate_point",
    "solve_rate_point",
]
