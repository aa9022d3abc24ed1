"""Operating point of one replica under the three benchmark modes: offline, closed-loop
concurrency and open-loop Poisson rate, for a vLLM-style continuous-batching scheduler with
chunked prefill (or whole-prompt prefill steps when chunking is off).

Model (derived in the modeling digest §4.3 and §9.3):
- decode-only step T_d(b) from the roofline, b = running sequences per pipeline lane;
- each prompt adds excess time x(l) to the steps that carry its chunks; with rho_x = lambda E[x]
  the share of wall time spent on that excess, conservation of time gives the mean step
  T_d / (1 - rho_x);
- the running batch obeys Little's law, B = lambda (E[L_out] - 1) TPOT, solved as a fixed point;
- prompts wait FCFS for the prefill work ahead of them: an M/G/1 queue whose service is the larger
  of a prompt's excess time and its share of the step token budget (queueing.py);
- TTFT = residual of the step in progress + wait + own chunked prefill; TPOT per request adds the
  prefill excess that lands in its own decode window (compound Poisson); E2E = TTFT + (L_out-1) TPOT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planner.engine import lengths
from planner.engine.queueing import mg1_wait_quantiles, pk_mean_wait
from planner.engine.roofline import BLOCK_TOKENS, ReplicaParams, StepTime, bound_name, kv_capacity_tokens, step_time
from planner.engine.scenario import LengthDist

PERCENTILES = (50.0, 90.0, 99.0)
SAMPLES = 2048
FIXED_POINT_ITERATIONS = 400
# Share of capacity at which a sized replica is still called stable in reports (digest §5.7 caps
# rho at 0.8-0.85 because every approximation degrades as rho -> 1).
RNG_SEED = 20260101


@dataclass(frozen=True)
class Workload:
    input_len: LengthDist
    output_len: LengthDist

    @property
    def in_grid(self) -> np.ndarray:
        return lengths.grid(self.input_len, SAMPLES)

    @property
    def out_grid(self) -> np.ndarray:
        return lengths.grid(self.output_len, SAMPLES)

    @property
    def mean_in(self) -> float:
        return float(self.in_grid.mean())

    @property
    def mean_out(self) -> float:
        return float(self.out_grid.mean())

    @property
    def decode_ctx_mean(self) -> float:
        """Mean context of a decoding sequence, weighted by its steps: E[L_in] + E[L_out^2]/(2E[L_out])."""
        out = self.out_grid
        return self.mean_in + float((out * out).mean()) / (2.0 * out.mean())


def spec_tokens_per_step(p: ReplicaParams):
    """Expected tokens per verification step, (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, Thm 3.8)."""
    a = np.minimum(p.spec_accept, 0.999)
    return np.where(p.spec_k > 0, (1.0 - a ** (p.spec_k + 1.0)) / (1.0 - a), 1.0)


def decode_step(p: ReplicaParams, b, ctx_mean) -> StepTime:
    """Decode-only step of one lane holding b sequences, plus k draft steps with speculation."""
    verify = step_time(p, b, b * ctx_mean, 0.0, 0.0, spec_tokens=p.spec_k + 1.0)
    if np.all(np.asarray(p.spec_k) == 0):
        return verify
    draft = step_time(p, b, b * ctx_mean, 0.0, 0.0).total_s * p.spec_draft_ratio * p.spec_k
    return StepTime(verify.total_s + draft, verify.compute_s, verify.memory_s, verify.comm_s, verify.overhead_s + draft)


def prompt_tokens(p: ReplicaParams, l_in):
    """Prompt tokens that need prefill compute after a prefix-cache hit (whole 16-token blocks, [S38])."""
    cached = np.floor(p.prefix_hit * l_in / BLOCK_TOKENS) * BLOCK_TOKENS
    return np.maximum(l_in - cached, 1.0), cached


def prefill_cost(p: ReplicaParams, b, ctx_mean, l_in):
    """For prompts of length l_in while b sequences decode in the lane: the number of chunks, the
    duration of its own prefill steps, and the excess x over plain decode steps."""
    new, cached = prompt_tokens(p, l_in)
    room = np.maximum(p.budget_tokens - b, 1.0)
    chunked = np.asarray(p.chunked) > 0
    n_chunks = np.where(chunked, np.ceil(new / room), 1.0)
    chunk = new / n_chunks
    attn = (new * new / 2.0 + new * cached) / n_chunks  # sum of c (c/2 + q) split evenly over chunks
    b_in_step = np.where(chunked, b, 0.0)  # whole-prompt prefill steps carry no decodes
    mixed = step_time(p, b_in_step, b_in_step * ctx_mean, chunk, attn).total_s
    base = np.where(chunked, decode_step(p, b, ctx_mean).total_s, 0.0)
    excess = n_chunks * (mixed - base)
    return n_chunks, n_chunks * mixed, excess, mixed


@dataclass
class OperatingPoint:
    """Means and distributions of one replica at one load."""

    mode: str
    stable: bool
    batch: float = 0.0
    decode_step_s: float = 0.0
    tpot_mean_s: float = float("inf")
    ttft_mean_s: float = float("inf")
    e2e_mean_s: float = float("inf")
    requests_per_s: float = 0.0
    max_rate_rps: float = 0.0
    utilization: float = 0.0
    prefill_rho: float = 0.0
    ttft_s: dict = field(default_factory=dict)
    tpot_s: dict = field(default_factory=dict)
    e2e_s: dict = field(default_factory=dict)
    prefill_bound: str = ""
    decode_bound: str = ""
    kv_tokens: float = 0.0
    max_batch: float = 0.0
    note: str = ""


def batch_cap(p: ReplicaParams, wl: Workload) -> float:
    """Running-sequence cap: max_num_seqs, and the KV cache at each sequence's mean footprint plus
    half a block of paging waste (digest §2.5, §2.4)."""
    kv = float(kv_capacity_tokens(p))
    return float(min(p.max_num_seqs, kv / (wl.decode_ctx_mean + BLOCK_TOKENS / 2)))


def _mean_terms(p: ReplicaParams, wl: Workload, rate: float, batch: float):
    """Step time, prefill excess share and TPOT at a given running batch (per replica)."""
    lanes = float(p.pp)
    b = batch / lanes
    ctx = wl.decode_ctx_mean
    t_d = float(decode_step(p, b, ctx).total_s)
    n_ch, own, excess, mixed = prefill_cost(p, b, ctx, wl.in_grid)
    rho_x = rate * float(excess.mean()) / lanes
    tokens = float(spec_tokens_per_step(p))
    tpot = t_d / max(1.0 - rho_x, 1e-12) / tokens if rho_x < 1 else float("inf")
    return t_d, rho_x, tpot, (n_ch, own, excess, mixed)


def solve_batch(p: ReplicaParams, wl: Workload, rate: float, cap: float):
    """Least fixed point of B = rate (E[L_out] - 1) TPOT(B), iterated up from zero."""
    decode_tokens = max(wl.mean_out - 1.0, 0.0)
    batch = 0.0
    for _ in range(FIXED_POINT_ITERATIONS):
        *_, tpot, _ = _mean_terms(p, wl, rate, batch)
        new = rate * decode_tokens * tpot
        if not np.isfinite(new) or new > cap:
            return None
        if abs(new - batch) <= 1e-6 * max(1.0, batch):
            return new
        batch = new
    return batch


def offline_throughput(p: ReplicaParams, wl: Workload) -> tuple[float, float, StepTime]:
    """Saturation throughput in requests/s: the queue never empties, the batch sits at its cap
    (or where the token budget just keeps up with replacing finished sequences)."""
    cap = batch_cap(p, wl)
    lanes = float(p.pp)
    m_out = wl.mean_out
    new_in, cached = prompt_tokens(p, wl.in_grid)
    mean_new = float(new_in.mean())
    tokens = float(spec_tokens_per_step(p))
    if cap < 1.0:
        return 0.0, 0.0, decode_step(p, 0.0, wl.decode_ctx_mean)
    if float(p.chunked) > 0:
        # per lane and step: b decodes emit b*tokens; b*tokens*m_new/m_out prompt tokens replace them
        budget = float(p.budget_tokens)
        b_budget = budget / (1.0 + tokens * mean_new / m_out)
        b = min(cap / lanes, b_budget)
        prefill_per_step = b * tokens * mean_new / m_out
        attn = prefill_per_step * float((new_in * new_in / 2 + new_in * cached).mean()) / mean_new
        st = step_time(p, b, b * wl.decode_ctx_mean, prefill_per_step, attn, spec_tokens=p.spec_k + 1.0)
        verify_only = step_time(p, b, b * wl.decode_ctx_mean, 0.0, 0.0, spec_tokens=p.spec_k + 1.0).total_s
        draft_s = float(decode_step(p, b, wl.decode_ctx_mean).total_s - verify_only)
        step = float(st.total_s) + draft_s
        rate = lanes * b * tokens / (m_out * step)
        return rate, b * lanes, st
    # whole-prompt prefill-first: per second, decode steps for rate*m_out tokens plus prefill steps
    b = cap / lanes
    t_d = float(decode_step(p, b, wl.decode_ctx_mean).total_s)
    _, own, _, _ = prefill_cost(p, 0.0, wl.decode_ctx_mean, wl.in_grid)
    # each request needs m_out / tokens decode steps shared by b sequences, and its own prefill step
    per_request = m_out * t_d / (b * tokens) + float(own.mean())
    rate = lanes / per_request
    return rate, b * lanes, decode_step(p, b, wl.decode_ctx_mean)


def rate_point(p: ReplicaParams, wl: Workload, rate: float, detailed: bool = True) -> OperatingPoint:
    """Open-loop Poisson arrivals at `rate` req/s to one replica."""
    cap = batch_cap(p, wl)
    max_rate, _, _ = offline_throughput(p, wl)
    util = rate / max_rate if max_rate > 0 else float("inf")
    point = OperatingPoint(mode="rate", stable=False, max_rate_rps=max_rate, utilization=util, max_batch=cap,
                           kv_tokens=float(kv_capacity_tokens(p)))
    if rate <= 0:
        return _idle_point(p, wl, point)
    if util >= 1.0:
        point.note = f"offered {rate:.3g} req/s is at or above the replica's maximum {max_rate:.3g} req/s"
        return point
    batch = solve_batch(p, wl, rate, cap)
    if batch is None:
        point.note = f"the running batch would exceed its cap of {cap:.0f} sequences at {rate:.3g} req/s"
        return point
    lanes = float(p.pp)
    t_d, rho_x, tpot, (n_ch, own, excess, mixed) = _mean_terms(p, wl, rate, batch)
    room = np.maximum(float(p.budget_tokens) - batch / lanes, 1.0)
    new_in, _ = prompt_tokens(p, wl.in_grid)
    full_step = float(mixed.max()) if float(p.chunked) == 0 else float(np.max(mixed))
    share = new_in / room * np.maximum(full_step, t_d)
    service = np.maximum(excess, share) if float(p.chunked) > 0 else own
    rho_s = rate * float(service.mean()) / lanes
    if rho_s >= 1.0:
        point.note = f"prefill queue saturates at {rate:.3g} req/s (prefill busy {rho_s:.0%})"
        return point
    point.stable = True
    point.batch = batch
    point.decode_step_s = t_d
    point.tpot_mean_s = tpot
    point.prefill_rho = rho_s
    point.requests_per_s = rate
    st_d = decode_step(p, batch / lanes, wl.decode_ctx_mean)
    point.decode_bound = str(bound_name(st_d))
    mid = len(wl.in_grid) // 2
    st_p = step_time(p, batch / lanes, batch / lanes * wl.decode_ctx_mean, new_in[mid] / n_ch[mid], new_in[mid] ** 2 / 2 / n_ch[mid])
    point.prefill_bound = str(bound_name(st_p))
    if detailed:
        _distributions(p, wl, point, rate / lanes, service, own, excess, t_d, rho_x, n_ch)
    else:
        _means(p, wl, point, rate / lanes, service, own, t_d, rho_x)
    return point


def _means(p, wl, point, lane_rate, service, own, t_d, rho_x) -> None:
    """Means only (P-K wait, half a step of residual): what closed-loop solving and validation need."""
    wait = pk_mean_wait(lane_rate, service)
    busy = 1.0 - np.exp(-point.batch)
    ttft = busy * 0.5 * t_d / max(1.0 - rho_x, 1e-12) + wait + float(own.mean()) + float(p.api_overhead_s)
    e2e = ttft + max(wl.mean_out - 1.0, 0.0) * point.tpot_mean_s
    point.ttft_s, point.tpot_s, point.e2e_s = {"mean": ttft}, {"mean": point.tpot_mean_s}, {"mean": e2e}
    point.ttft_mean_s, point.e2e_mean_s = ttft, e2e


def _idle_point(p: ReplicaParams, wl: Workload, point: OperatingPoint) -> OperatingPoint:
    """Zero load: a lone request sees an idle engine (no queue, batch of one)."""
    point.stable = True
    point.utilization = 0.0
    _, _, tpot, (n_ch, own, excess, mixed) = _mean_terms(p, wl, 0.0, 1.0)
    point.decode_step_s = tpot
    point.tpot_mean_s = tpot
    point.decode_bound = str(bound_name(decode_step(p, 1.0, wl.decode_ctx_mean)))
    point.prefill_bound = point.decode_bound
    _distributions(p, wl, point, 0.0, own * 0, own, excess * 0, tpot, 0.0)
    return point


def _pct(x: np.ndarray) -> dict:
    q = np.percentile(x, PERCENTILES)
    return {"mean": float(x.mean()), "p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}


def _distributions(p, wl, point, lane_rate, service, own, excess, t_d, rho_x, n_chunks=None) -> None:
    """Percentiles from deterministic stratified joint samples of (L_in, L_out, wait, residual)."""
    rng = np.random.default_rng(RNG_SEED)
    n = SAMPLES
    n_chunks = np.ones_like(own) if n_chunks is None else n_chunks
    u = (np.arange(n) + 0.5) / n
    perm = [rng.permutation(n) for _ in range(4)]
    l_out = wl.out_grid[perm[0]]
    in_idx = perm[1]
    wait = mg1_wait_quantiles(lane_rate, service, u)[perm[2]]
    # the step in progress at arrival: none if the engine is idle (no running batch, no prefill work)
    busy = 1.0 - np.exp(-point.batch) * (1.0 - min(lane_rate * float(service.mean()), 1.0))
    residual = np.where(u[perm[3]] < busy, u[perm[3]] / max(busy, 1e-12), 0.0) * t_d / max(1.0 - rho_x, 1e-12)
    residual = np.where(u[perm[3]] < busy, residual, 0.0)
    api = float(p.api_overhead_s)
    # prompts arriving during the residual join this prompt's step (the budget admits them together)
    joiners = rng.poisson(lane_rate * residual)
    joined = joiners * excess[rng.integers(0, len(excess), size=n)]
    ttft = residual + wait + own[in_idx] + joined + api
    # decode window of each request: (L_out - 1)/tokens steps; prefill excess landing in it is compound
    # Poisson with rate lane_rate over the window duration, approximated by a moment-matched gamma
    tokens = float(spec_tokens_per_step(p))
    steps = np.maximum(l_out - 1.0, 0.0) / tokens
    # prompts that arrived during this request's own last prefill step are prefilled in its first
    # decode step, so its window of arrivals starts one prefill step early
    window = steps * t_d / max(1.0 - rho_x, 1e-12) + own[in_idx] / n_chunks[in_idx]
    mean_x, mean_x2 = float(excess.mean()), float((excess * excess).mean())
    lam_w = lane_rate * window
    mu = lam_w * mean_x
    var = lam_w * mean_x2
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = np.where(var > 0, mu * mu / var, 0.0)
        scale = np.where(mu > 0, var / np.maximum(mu, 1e-300), 0.0)
    extra = np.where(shape > 0, rng.gamma(np.maximum(shape, 1e-9), np.maximum(scale, 1e-300)), 0.0)
    has_decode = l_out > 1.0
    tpot = np.where(has_decode, (steps * t_d + extra) / np.maximum(steps * tokens, 1e-12), np.nan)
    e2e = ttft + np.where(has_decode, (l_out - 1.0) * tpot, 0.0)
    tpot_valid = tpot[has_decode] if has_decode.any() else np.array([t_d / tokens])
    point.ttft_s, point.tpot_s, point.e2e_s = _pct(ttft), _pct(tpot_valid), _pct(e2e)
    point.ttft_mean_s = point.ttft_s["mean"]
    point.e2e_mean_s = point.e2e_s["mean"]


def concurrency_point(p: ReplicaParams, wl: Workload, clients: int, detailed: bool = True) -> OperatingPoint:
    """Closed loop: `clients` users each send their next request when the last one completes.
    Mean-value analysis: throughput X solves X * E2E_mean(X) = clients, with the open-loop model
    at rate X supplying E2E (clients beyond the batch cap wait for a slot)."""
    max_rate, _, _ = offline_throughput(p, wl)
    if max_rate <= 0:
        return OperatingPoint(mode="concurrency", stable=False, note="does not fit")
    lo, hi = 0.0, max_rate * 0.999
    best = None
    for _ in range(30):
        mid = (lo + hi) / 2
        pt = rate_point(p, wl, mid, detailed=False)
        if pt.stable and mid * pt.e2e_mean_s < clients:
            lo, best = mid, pt
        else:
            hi = mid
    if best is None or lo >= max_rate * 0.99:
        # saturated: clients keep the engine at its offline throughput; extra clients queue
        best = rate_point(p, wl, max_rate * 0.99, detailed=detailed)
        x = max_rate
        e2e = clients / x
        best.requests_per_s = x
        best.note = "closed loop saturates the replica; requests wait for a batch slot"
        best.e2e_mean_s = e2e
        best.ttft_mean_s = max(best.ttft_mean_s, e2e - (wl.mean_out - 1) * best.tpot_mean_s)
    elif detailed:
        best = rate_point(p, wl, lo, detailed=True)
    best.mode = "concurrency"
    best.utilization = best.requests_per_s / max_rate
    return best


def offline_point(p: ReplicaParams, wl: Workload) -> OperatingPoint:
    rate, batch, st = offline_throughput(p, wl)
    if rate <= 0:
        return OperatingPoint(mode="offline", stable=False, note="does not fit")
    tokens = float(spec_tokens_per_step(p))
    lanes = float(p.pp)
    step = batch / lanes * tokens / (wl.mean_out * rate / lanes) if rate > 0 else float("inf")
    tpot = step / tokens
    new_in, _ = prompt_tokens(p, wl.in_grid)
    n_ch, own, _, _ = prefill_cost(p, batch / lanes, wl.decode_ctx_mean, wl.in_grid)
    ttft = float(own.mean()) + float(p.api_overhead_s)
    e2e = ttft + (wl.mean_out - 1.0) * tpot
    point = OperatingPoint(mode="offline", stable=True, batch=batch, decode_step_s=step, tpot_mean_s=tpot,
                           ttft_mean_s=ttft, e2e_mean_s=e2e, requests_per_s=rate, max_rate_rps=rate,
                           utilization=1.0, max_batch=batch_cap(p, wl), kv_tokens=float(kv_capacity_tokens(p)))
    point.ttft_s = {"mean": ttft}
    point.tpot_s = {"mean": tpot}
    point.e2e_s = {"mean": e2e}
    point.decode_bound = str(bound_name(st))
    point.prefill_bound = str(bound_name(step_time(p, 0.0, 0.0, float(new_in.mean()), float(new_in.mean()) ** 2 / 2)))
    point.note = "offline: TTFT excludes the time requests wait in the initial queue"
    return point
