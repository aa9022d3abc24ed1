"""A closed loop past saturation: the engine with every batch slot taken (its throughput, TTFT
and TPOT drawn cycle by cycle), the slot wait of the clients it does not admit, and the blend
from the open loop's last point to the full batch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner.engine.cycles import cycle_duration, cycle_moments, cycle_samples, decode_step, known_draft_s, spec_tokens_per_step
from planner.engine.distributions import FULL
from planner.engine.fixed_point import arrival_count_pmf
from planner.engine.lengths import norm_ppf
from planner.engine.memo import Memo
from planner.engine.numbers import fmt_sig
from planner.engine.offline import OperatingPoint, batch_cap, offline_throughput
from planner.engine.quantiles import poisson_quantiles, strata_midpoints, summarise, weighted_quantiles
from planner.engine.roofline import ReplicaParams, bound_name, kv_capacity_tokens, step_time
from planner.engine.seeded_draws import sample_draws, shuffled_outputs
from planner.engine.workload import RNG_SEED, Workload

# decode steps of a saturated engine drawn one by one per TPOT sample (the rest: their sum's normal law)
SATURATED_PATH_STEPS = 32
SATURATED_BLEND = 0.25  # the blend from the open loop to the full batch spans at least this share of its start's clients


@dataclass
class SaturatedEngine:
    """A closed loop's engine with every batch slot taken (the queue of clients never empties):
    the offline engine, with its cycles drawn as they come. A slot frees when its request ends and
    the next client's prompt is prefilled in the following step, so a step carries the prompts of
    the requests that ended in the one before: Poisson with mean `per_cycle` (requests end at
    batch x tokens per step / E[L_out] a step whatever the steps last, unlike the open loop's
    arrivals, which come in proportion to time). Statistics of an admitted request (no slot wait)."""

    rate_rps: float  # throughput X: the offline maximum, or less where prefill steps come in bursts
    batch: float  # running sequences, all lanes (offline_throughput's)
    step_s: float  # mean step of one lane
    t_decode_s: float  # decode-only step at the batch
    per_cycle: float  # prompts (finished requests) a cycle
    wait_var_s2: float  # variance of the slot wait per client queued ahead
    ttft_mean_s: float
    e2e_mean_s: float
    ttft: np.ndarray | None = None  # samples (detailed): TTFT of an admitted request
    tpot: np.ndarray | None = None  # per-request TPOT samples, with the output lengths' weights
    e2e: np.ndarray | None = None
    out_weights: np.ndarray | None = None
    has_decode: np.ndarray | None = None
    decode_bound: str = ""
    prefill_bound: str = ""

    @property
    def clients_full(self) -> float:
        """Clients that just fill the engine: X x E2E of an admitted request (Little's law)."""
        return self.rate_rps * self.e2e_mean_s


def saturated_engine(p: ReplicaParams, wl: Workload, detailed: bool) -> SaturatedEngine:
    """The full engine, made once per replica and workload (kept next to the offline maximum it
    starts from: the same at every client count)."""
    key = ("saturated", p, detailed)
    made = wl.per_replica.get(key)
    if made is None:
        made = wl.per_replica.setdefault(key, _make_saturated(p, wl, detailed))
    return made


def _make_saturated(p: ReplicaParams, wl: Workload, detailed: bool) -> SaturatedEngine:
    """Throughput, TTFT and TPOT of the full engine. The batch and the step's mean make the offline
    maximum (a mean-value formula: one step at the mean prompt load); with few prompts a step (a
    small batch, long prompts) the mean of the steps is well above the step at the mean load (a
    plain decode step is memory-bound, one with a prompt compute-bound), so the throughput is the
    mixture's: at 32 sequences and 1,000-token prompts on an 8B the offline formula says 24 req/s
    where the simulated engine (and the open-loop model's stability edge) make 17.3."""
    max_rate, batch, st = offline_throughput(p, wl)
    lanes = float(p.pp)
    b = batch / lanes
    ctx = wl.decode_ctx_mean
    tokens = float(spec_tokens_per_step(p))
    pool = wl.pool(p)
    draft = known_draft_s(p)
    t_d = float(decode_step(p, b, ctx).total_s)
    per_step = b * tokens / wl.mean_out  # requests ending a step: each slot turns over every E[L_out] / tokens steps
    steps_mean, pmf, dur, dur2, steps = 1.0, np.array([1.0]), np.array([t_d]), np.array([t_d * t_d]), np.ones(1)
    for _ in range(8):  # a cycle that spills over the token budget lasts several steps and gathers more
        pmf = arrival_count_pmf(per_step * steps_mean, 0.0, 1.0)
        dur, dur2, steps = cycle_moments(p, pool, b, ctx, t_d, len(pmf) - 1, draft)
        done = abs(float(pmf @ steps) - steps_mean) <= 1e-6 * steps_mean
        steps_mean = float(pmf @ steps)
        if done:
            break
    cycle_s = float(pmf @ dur)
    step_s = cycle_s / steps_mean
    rate = min(lanes * b * tokens / (wl.mean_out * step_s), max_rate)
    step_s = lanes * b * tokens / (wl.mean_out * rate)  # the offline step where the offline maximum holds
    tpot_mean = step_s / tokens
    # The slot wait: a client with M others ahead is admitted once M requests have ended. With K
    # ending in a cycle and Y the next cycle (it prefills those K), the time to M ends has variance
    # M / E[K] x Var(Y - r K), r = E[Y] / E[K] (renewal reward): a cycle with many ends is followed
    # by a long one, which takes away much of the spread. Ends over many cycles disperse as the
    # slots' lifetimes do (index of dispersion cv^2 of the steps a request holds its slot).
    k = np.arange(len(pmf), dtype=float)
    ends = float(pmf @ k)
    life = 1.0 + np.maximum(wl.out_grid - 1.0, 0.0) / tokens
    cv2_life = float(life.var() / life.mean() ** 2)
    r = cycle_s / max(ends, 1e-300)
    var_y = max(float(pmf @ dur2) - cycle_s ** 2, 0.0)
    cov_yk = float(pmf @ (k * dur)) - cycle_s * ends
    wait_var = max(var_y - 2.0 * r * cov_yk + r * r * ends * cv2_life, 0.0) / max(ends, 1e-300) / lanes ** 2
    co_count = ends  # Poisson: the others admitted with a request that took a freed slot
    api = float(p.api_overhead_s)
    mid = pool.median_tokens
    room = float(p.budget_tokens) - b if float(p.chunked) > 0 else np.inf
    sat = SaturatedEngine(rate_rps=rate, batch=batch, step_s=step_s, t_decode_s=t_d, per_cycle=ends, wait_var_s2=wait_var,
                     ttft_mean_s=0.0, e2e_mean_s=0.0, decode_bound=str(bound_name(st)),
                     prefill_bound=str(bound_name(step_time(p, b, b * ctx, min(mid, room), mid * mid / 2))))
    if not detailed:
        own, _ = cycle_duration(p, b, ctx, pool.tokens + co_count * float(pool.tokens.mean()),
                                pool.attn + co_count * float(pool.attn.mean()), t_d, draft)
        sat.ttft_mean_s = float(own.mean()) + api
        sat.e2e_mean_s = sat.ttft_mean_s + max(wl.mean_out - 1.0, 0.0) * tpot_mean
        return sat
    n, m = FULL.ttft, FULL.tpot
    draws = sample_draws(n, m, len(pool.order), 0)
    co_counts = poisson_quantiles(np.full(n, co_count), draws.co_uniforms)
    co_tok, co_att = pool.sums(co_counts, draws.co_offsets)
    own, _ = cycle_duration(p, b, ctx, pool.tokens[draws.own_picks] + co_tok, pool.attn[draws.own_picks] + co_att, t_d, draft)
    ttft = own + api
    # TPOT: the steps after the request's own are independent draws of the stationary step (their
    # prompts are the requests that ended in the step before, whatever it lasted): the first
    # SATURATED_PATH_STEPS one by one (short requests set the tail), the rest by their sum's normal law
    per_count = int(max(16, min(FULL.table, 65536 // len(pmf))))
    durs, counts = cycle_samples(p, pool, b, ctx, t_d, len(pmf) - 1, per_count, draft)
    step_vals = (durs / counts).ravel()
    step_w = (np.repeat(pmf, per_count) / per_count) * counts.ravel()  # each cycle counts for its steps
    step_w /= step_w.sum()
    step_vals = step_vals * (step_s / float(step_w @ step_vals))  # the mean step of the throughput
    step_sd = math.sqrt(max(float(step_w @ (step_vals - step_s) ** 2), 0.0))
    l_out, w_out = shuffled_outputs(wl.output_len, m, tokens, draws.output_order)
    need = np.maximum(l_out - 1.0, 1.0) / tokens
    u = _saturated_uniforms(SATURATED_PATH_STEPS, m)
    path = weighted_quantiles(step_vals, step_w, u.ravel()).reshape(SATURATED_PATH_STEPS, m)
    cum = np.cumsum(path, axis=0)
    first = np.minimum(need, SATURATED_PATH_STEPS)
    whole = np.floor(first).astype(np.int64)
    cols = np.arange(m)
    within = np.where(whole > 0, cum[np.maximum(whole - 1, 0), cols], 0.0)
    within += (first - whole) * path[np.minimum(whole, SATURATED_PATH_STEPS - 1), cols]
    rest = need - first
    total = within + rest * step_s + np.sqrt(rest) * step_sd * draws.beyond_normals
    tpot = np.maximum(total, 1e-12) / (need * tokens)
    has_decode = l_out > 1.0
    e2e = ttft[:m] + np.where(has_decode, (l_out - 1.0) * tpot, 0.0)
    sat.ttft, sat.tpot, sat.e2e, sat.out_weights, sat.has_decode = ttft, tpot, e2e, w_out, has_decode
    sat.ttft_mean_s = float(ttft.mean())
    sat.e2e_mean_s = float(w_out @ e2e) / float(w_out.sum())
    return sat


_UNIFORMS: Memo[tuple[int, int], np.ndarray] = Memo()


def _saturated_uniforms(rows: int, m: int) -> np.ndarray:
    def make() -> np.ndarray:
        made = np.random.default_rng(RNG_SEED + 1).random((rows, m))
        made.flags.writeable = False
        return made

    return _UNIFORMS.get_or_make((rows, m), make)


def _wait_samples(mean_s: float, var_s2: float, n: int) -> np.ndarray:
    """n stratified draws, in a seeded order, of the slot wait: positive, with this mean and variance.
    A first-passage time is skewed to the right (inverse Gaussian); a lognormal of the same two
    moments stands in for it. The spread matters only for a short queue: it grows like the square
    root of the clients queued ahead while the mean grows like their number (8x the batch: +-6%)."""
    if mean_s <= 0:
        return np.zeros(n)
    s2 = math.log1p(var_s2 / (mean_s * mean_s))
    z = norm_ppf(strata_midpoints(n))[np.random.default_rng(RNG_SEED + 2).permutation(n)]
    return np.exp(math.log(mean_s) - s2 / 2.0 + math.sqrt(s2) * z)


def saturated_point(p: ReplicaParams, wl: Workload, clients: int, sat: SaturatedEngine, start: OperatingPoint | None,
                     start_clients: float) -> OperatingPoint:
    """The closed loop at or past saturation. Beyond `full` clients (those that fill the engine,
    and at least SATURATED_BLEND past the open loop's last point) every slot is taken: X the full
    engine's throughput, the admitted batch, its TPOT, and the clients it does not admit queue for
    a slot, W = clients / X - E2E of an admitted request (FIFO, drained at X: TTFT and E2E move by
    W, TPOT does not). From the open-loop point at the edge of saturation (`start`, reached at
    `start_clients`) to there, each figure moves linearly with the clients, and E2E's mean is
    clients / X throughout (Little's law; its percentiles move with it)."""
    tokens = float(spec_tokens_per_step(p))
    full = max(sat.clients_full, start_clients * (1.0 + SATURATED_BLEND))
    point = _saturated_at(p, wl, float(clients), sat)
    if start is None or clients >= full or full <= start_clients:
        return point
    w = max(min((clients - start_clients) / (full - start_clients), 1.0), 0.0)
    point.requests_per_s = start.requests_per_s + w * (point.requests_per_s - start.requests_per_s)
    for name in ("batch", "decode_step_s", "prefill_rho"):
        setattr(point, name, getattr(start, name) + w * (getattr(point, name) - getattr(start, name)))
    # the blend runs to the full engine as it is at the start's clients; the slot wait that the
    # clients past those add comes on top whole (a blend towards a target that moves with the
    # clients would make the wait climb faster than clients / X)
    at_start = _saturated_at(p, wl, start_clients, sat)
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        a, b, now = getattr(start, name), getattr(at_start, name), getattr(point, name)
        setattr(point, name, {k: a[k] + w * (b[k] - a[k]) + now[k] - b[k] for k in now if k in a})
    # E2E's mean: Little's law, clients / X, plus what the open-loop end has over its own (the
    # sampled distributions' mean can exceed the solved means' clients / X by 15% near saturation;
    # means alone have nothing over), fading with the weight: continuous at the start, exact from
    # the full batch on. The percentiles move with the mean
    start_excess = start.e2e_s["mean"] - start_clients / start.requests_per_s
    shift = clients / point.requests_per_s + (1.0 - w) * start_excess - point.e2e_s["mean"]
    point.e2e_s = {k: v + shift for k, v in point.e2e_s.items()}
    point.tpot_mean_s = point.tpot_s.get("mean", point.decode_step_s / tokens)
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]
    if w < 1.0 and not point.note.startswith("closed loop saturates"):
        point.note = f"closed loop near saturation: {clients} clients, the full batch at {full:.0f}"
    return point


def _saturated_at(p: ReplicaParams, wl: Workload, clients: float, sat: SaturatedEngine) -> OperatingPoint:
    """The full engine with `clients` clients: a slot wait of clients / X - E2E (none below the
    clients that fill it)."""
    tokens = float(spec_tokens_per_step(p))
    x = sat.rate_rps
    e2e_mean = clients / x
    wait = max(e2e_mean - sat.e2e_mean_s, 0.0)
    queued = wait * x  # clients ahead in the queue
    point = OperatingPoint(mode="concurrency", stable=True, batch=sat.batch, decode_step_s=sat.step_s,
                           tpot_mean_s=sat.step_s / tokens, requests_per_s=x, max_rate_rps=x, utilization=1.0,
                           prefill_rho=max(1.0 - sat.t_decode_s / sat.step_s, 0.0), max_batch=batch_cap(p, wl),
                           kv_tokens=float(kv_capacity_tokens(p)), decode_bound=sat.decode_bound, prefill_bound=sat.prefill_bound)
    if sat.ttft is None:
        point.ttft_s, point.tpot_s = {"mean": sat.ttft_mean_s + wait}, {"mean": point.tpot_mean_s}
    else:
        waits = _wait_samples(wait, queued * sat.wait_var_s2, len(sat.ttft))
        ttft = sat.ttft + waits
        e2e = sat.e2e + waits[:len(sat.e2e)]
        point.ttft_s = summarise(ttft)
        has, w = sat.has_decode, sat.out_weights
        point.tpot_s = summarise(sat.tpot[has], w[has]) if has.any() else summarise(np.array([point.tpot_mean_s]))
        point.e2e_s = summarise(e2e, w)
        point.ttft_s["mean"] = sat.ttft_mean_s + wait
    point.e2e_s = {**(point.e2e_s or {}), "mean": max(e2e_mean, sat.e2e_mean_s)}
    point.tpot_mean_s = point.tpot_s["mean"]
    point.ttft_mean_s, point.e2e_mean_s = point.ttft_s["mean"], point.e2e_s["mean"]
    if wait > 0:
        many = round(queued) != 1
        point.note = (f"closed loop saturates the replica; {queued:,.0f} request{'s' if many else ''} wait{'' if many else 's'} "
                      f"~{_seconds(wait)} for a batch slot")
    else:
        point.note = "closed loop fills every batch slot"
    return point


def _seconds(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1.0 else f"{fmt_sig(s)} s"
