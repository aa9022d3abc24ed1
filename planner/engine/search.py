"""Cheapest fleets: a vectorised screen of every configuration, then exact sizing of the best.

Stage 1 evaluates the whole grid (GPU x model x weight precision x KV precision x TP x max batch x
token budget) as numpy arrays: memory fit, saturation throughput, the single-request latency floors
and a lower bound on replicas from the utilisation ceiling, hence a lower bound on monthly cost.
Stage 2 sizes candidates exactly with the same function `planner plan` uses, cheapest lower bound
first, and stops once the next lower bound exceeds the N-th best exact cost found. Fleets (model,
GPU, precisions, TP) come first, each at its highest screened capacity; the remaining exact sizings
go to the other engine limits (max batch, token budget) of fleets they could still make cheaper.
The ranking lists distinct fleets, each with its best engine limits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from planner.engine import catalog, trust
from planner.engine.binding import UNSTABLE, Binding
from planner.engine.feasibility import fleet_problem, over_fleet_limit
from planner.engine.hosted_api import cheaper_hosted_apis
from planner.engine.knobs import Calibration, shipped_calibration
from planner.engine.offline import admitted_context
from planner.engine.plan import workload_of
from planner.engine.replica_checks import replica_check
from planner.engine.roofline import (
    BLOCK_TOKENS,
    ReplicaParams,
    ServingConfig,
    kv_capacity_tokens,
    memory_per_gpu,
    prefill_attention_work,
    replica_params,
    sequence_kv_tokens,
    step_time,
)
from planner.engine.scenario import Scenario
from planner.engine.serving import Workload
from planner.engine.sizing import size_replicas
from planner.engine.specs import GpuSpec, ModelSpec, attended_pairs
from planner.engine.tier_config import knobs_for, serving_config

WEIGHTS = ("bf16", "fp8", "int8", "int4", "fp4")
KVS = ("bf16", "fp8")
TPS = (1, 2, 4, 8)
MAX_SEQS = (64, 128, 256, 512, 1024)
BUDGETS = (2048, 4096, 8192, 16384)
# exact sizings per tier at most (each is a full plan sizing): the shipped profiles need 5-171 to
# finish (the long-context one's medium and large tiers 153 and 171, 2-3 s each on two cores)
EXACT_LIMIT = 200
# checks of other engine limits of sized fleets per tier at most (one count each), and sizings of
# those that pass: the shipped profiles need up to 270 and 24 to finish (40 and 10 left the
# long-context profile's medium tier at $32,412 a month where $30,660 was there to find)
VARIANT_CHECKS = 400
VARIANT_SIZINGS = 50


NO_LOAD = "no load: the peak rate is 0 req/s, so there is no fleet to size (set load.rate_rps or load.requests_per_day)"


@dataclass
class Candidate:
    model: ModelSpec
    gpu: GpuSpec
    config: ServingConfig
    lower_bound_usd: float
    usd_month: float = math.inf
    gpus: int = 0
    replicas: int = 0
    e2e_p99_ms: float = math.inf
    ttft_p99_ms: float = math.inf
    tpot_p99_ms: float = math.inf
    feasible: bool = False
    binding: str = ""  # a Binding, or the latency target that binds ("TTFT p99")
    reason: str = ""
    validated: bool = True  # measurements of its GPU family, model family and engine on that family
    price_estimated: bool = False  # the catalog's price of its GPU is an estimate (no quoted on-demand price)


@dataclass
class SearchResult:
    tier: str
    screened: int
    excluded: dict[str, int]
    ranked: list[Candidate]
    frontier_e2e: list[Candidate]
    frontier_ttft: list[Candidate]
    screen_s: float = 0.0
    exact_evaluations: int = 0
    notes: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # ids of the models searched
    hosted_apis: list = field(default_factory=list)  # HostedApiOption cheaper than every fleet ranked


# Why plan refuses a configuration (fleet_problem's binding), as the search's exclusion counts say it;
# a context-limit problem names the model and the limit, so it is counted under its own words.
RULED_OUT = {
    Binding.HARDWARE: "use an engine, precision or sparsity the GPU does not run",
    Binding.INTERCONNECT: "span more than one scale-up domain",
    Binding.PARALLELISM: "split the model's heads or layers unevenly",
    Binding.MEMORY: "do not fit in memory",
    Binding.FLEET_SIZE: "need more GPUs per replica than fleet.max_gpus",
}


def _grid(models: list[ModelSpec], gpus: list[GpuSpec], scenario: Scenario, wl: Workload,
          calibration: Calibration | None = None):
    """Per-(model, gpu, weights, kv, tp) params, then expanded over engine knobs as arrays; the
    configurations plan would refuse whatever the fleet size (`fleet_problem`) are left out and
    counted by reason, in screened configurations."""
    items, meta, ruled_out = [], [], {}
    knob_rows = [(s, b) for s in MAX_SEQS for b in BUDGETS]
    for model in models:
        for gpu in gpus:
            knobs = knobs_for(gpu, calibration, scenario.fleet.engine, model)
            base = serving_config(scenario, model, gpu, 1)
            for w in WEIGHTS:
                for kv in KVS:
                    for tp in TPS:
                        cfg = replace(base, tp=tp, weights=w, kv=kv)
                        p = replica_params(model, gpu, cfg, knobs)
                        problem = fleet_problem(scenario, model, gpu, cfg, p, wl)
                        if problem:
                            why = RULED_OUT.get(problem[0], problem[1])
                            ruled_out[why] = ruled_out.get(why, 0) + len(knob_rows)
                            continue
                        items.append(p)
                        meta.append((model, gpu, cfg))
    if not items:
        return None, [], ruled_out
    n_base, n_knob = len(items), len(knob_rows)
    names = [f.name for f in fields(ReplicaParams)]
    table = np.array([[vars(p)[name] for name in names] for p in items], dtype=float)  # one row per fleet
    stacked = {name: np.repeat(table[:, j], n_knob) for j, name in enumerate(names)}
    stacked["max_num_seqs"] = np.tile(np.array([s for s, _ in knob_rows], dtype=float), n_base)
    if scenario.optimizations.chunked_prefill:
        stacked["budget_tokens"] = np.tile(np.array([b for _, b in knob_rows], dtype=float), n_base)
    return ReplicaParams(**stacked), Configurations(meta, knob_rows), ruled_out


class Configurations(Sequence):
    """(model, GPU, serving config) of every screened row, made when a row is looked at: the
    grid's rows are its fleets x engine limits, and building tens of thousands of configs up front
    took most of the screen's time."""

    def __init__(self, fleets: list[tuple], knob_rows: list[tuple[int, int]]) -> None:
        self.fleets, self.knob_rows = fleets, knob_rows

    def __len__(self) -> int:
        return len(self.fleets) * len(self.knob_rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = int(i) % len(self)
        model, gpu, cfg = self.fleets[i // len(self.knob_rows)]
        seqs, budget = self.knob_rows[i % len(self.knob_rows)]
        return model, gpu, replace(cfg, max_num_seqs=seqs, max_num_batched_tokens=budget)

    def gpu_ids(self) -> list[str]:
        """The GPU of every row, in order."""
        return [gpu.id for _, gpu, _ in self.fleets for _ in self.knob_rows]


def screen(p: ReplicaParams, wl: Workload, scenario: Scenario, prices: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised: fit, saturation rate, idle latency floors, replica and cost lower bounds."""
    mem = memory_per_gpu(p)
    kv_tokens = kv_capacity_tokens(p)
    ctx = wl.decode_ctx_mean
    cap = np.minimum(p.max_num_seqs, kv_tokens / (sequence_kv_tokens(p, admitted_context(p, wl)) + BLOCK_TOKENS / 2))
    grid = wl.in_grid[:: max(1, len(wl.in_grid) // 64)][None, :]
    # a configuration's prompts depend on it only through its prefix hit and its model's window:
    # the grid's tokens and attention work once for each distinct pair of them
    shapes, which = np.unique(np.stack(np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (p.prefix_hit, p.kv_window_tokens, p.kv_window_share))), axis=-1),
        axis=0, return_inverse=True)
    which = which.reshape(-1)
    hit, window, windowed = (shapes[:, i, None] for i in range(3))
    cached = np.floor(hit * grid / 16.0) * 16.0  # whole 16-token blocks, as prompt_tokens()
    new = np.maximum(grid - cached, 1.0)
    mean_new = new.mean(axis=-1)[which]
    attn_mean = attended_pairs(new, cached, window, windowed).mean(axis=-1)[which]
    m_out = wl.mean_out
    b = np.minimum(cap, p.budget_tokens / (1.0 + mean_new / m_out))
    b = np.maximum(b, 1e-9)
    per_step = b * mean_new / m_out
    step = step_time(p, b, b * ctx, per_step, per_step * attn_mean / np.maximum(mean_new, 1e-9)).total_s
    max_rate = np.where(cap >= 1.0, b / (m_out * step), 0.0)
    tpot_floor_ms = step_time(p, 1.0, ctx, 0.0, 0.0).total_s * 1e3
    prompt_attn = prefill_attention_work(p, mean_new, 0.0)
    ttft_floor_ms = step_time(p, 0.0, 0.0, np.minimum(mean_new, p.budget_tokens), prompt_attn).total_s * 1e3
    rate = scenario.load.peak_rate_rps
    util = scenario.slo.max_utilization
    with np.errstate(divide="ignore", invalid="ignore"):
        replicas_lb = np.where(max_rate > 0, np.maximum(np.ceil(rate / (max_rate * util) - 1e-9), 1.0 if rate > 0 else 0.0),
                               np.inf)
    usd_lb = replicas_lb * p.tp * p.pp * prices * scenario.cost.hours_per_month
    slo = scenario.slo
    fits = (mem["kv"] > 0) & (cap >= 1.0)
    tpot_ok = np.ones_like(fits) if slo.tpot_ms is None else tpot_floor_ms <= slo.tpot_ms
    ttft_ok = np.ones_like(fits) if slo.ttft_ms is None else ttft_floor_ms <= slo.ttft_ms
    within_limit = ~over_fleet_limit(scenario, replicas_lb * p.tp * p.pp)
    return {"fits": fits, "tpot_ok": tpot_ok, "ttft_ok": ttft_ok, "within_limit": within_limit, "usd_lb": usd_lb,
            "max_rate": max_rate}


def search_tier(scenario: Scenario, tier: str, models: list[ModelSpec], gpus: list[GpuSpec], top: int = 5,
                calibration: Calibration | None = None) -> SearchResult:
    import time

    wl = workload_of(scenario)
    model_ids = [m.id for m in models]
    if scenario.load.peak_rate_rps <= 0:
        return SearchResult(tier, 0, {}, [], [], [], notes=[NO_LOAD], models=model_ids)
    start = time.perf_counter()
    p, meta, ruled_out = _grid(models, gpus, scenario, wl, calibration)
    if p is None:
        return SearchResult(tier, sum(ruled_out.values()), ruled_out or {"no configuration for these GPUs and models": 1},
                            [], [], [], screen_s=time.perf_counter() - start, models=model_ids)
    own_id = _own_gpu_id(scenario, gpus)
    price_of = {g.id: _price(scenario, g, own_id) for g in gpus}
    prices = np.array([price_of[g] for g in meta.gpu_ids()])
    s = screen(p, wl, scenario, prices)
    screen_s = time.perf_counter() - start
    excluded = dict(ruled_out)
    for why, n in (("do not fit in memory", int((~s["fits"]).sum())),
                   ("cannot meet the TPOT target even idle", int((s["fits"] & ~s["tpot_ok"]).sum())),
                   ("cannot meet the TTFT target even idle", int((s["fits"] & s["tpot_ok"] & ~s["ttft_ok"]).sum())),
                   ("need more GPUs than fleet.max_gpus",
                    int((s["fits"] & s["tpot_ok"] & s["ttft_ok"] & ~s["within_limit"]).sum()))):
        excluded[why] = excluded.get(why, 0) + n
    keep = s["fits"] & s["tpot_ok"] & s["ttft_ok"] & s["within_limit"]
    notes: list[str] = []
    order = np.argsort(np.where(keep, s["usd_lb"], np.inf), kind="stable")
    candidates: list[Candidate] = []
    best: dict[tuple, Candidate] = {}  # the cheapest sized variant of each fleet

    def size(i: int) -> None:
        model, gpu, cfg = meta[i]
        cand = _exact(scenario, model, gpu, cfg, wl, float(s["usd_lb"][i]), price_of[gpu.id], calibration)
        candidates.append(cand)
        fleet = _fleet_key(model, gpu, cfg)
        if cand.feasible and (fleet not in best
                              or (cand.usd_month, cand.e2e_p99_ms) < (best[fleet].usd_month, best[fleet].e2e_p99_ms)):
            best[fleet] = cand

    def threshold() -> float:
        costs = [c.usd_month for c in distinct(best.values())]
        return costs[top - 1] if len(costs) >= top else math.inf

    # breadth first: each fleet (model, GPU, precisions, TP) once, at its highest screened capacity
    tried, variants, unhelpful_limits = set(), [], 0
    for i in order:
        if not keep[i] or s["usd_lb"][i] > threshold():
            break
        fleet = _fleet_key(*meta[i])
        if fleet in tried:
            variants.append(i)
            continue
        if len(candidates) >= EXACT_LIMIT:
            notes.append(f"stopped after {EXACT_LIMIT} exact sizings; cheaper fleets may remain unexamined")
            break
        tried.add(fleet)
        size(i)
    # then the engine limits (max batch, token budget) of the leading fleets, while they can still
    # help: a setting makes its fleet cheaper only if one replica fewer than the fleet's best passes
    # with it, which one check at that count tells (latency falls with replicas), before sizing it.
    # Max batch changes no latency of a stable replica (it caps the batch, hence stability and
    # capacity), so a budget whose latency misses there rules out all its max-batch settings.
    # (A setting that would tie the fleet's cost with a lower p99 is not looked for.)
    fleets_sized = len(candidates)
    late: set[tuple] = set()  # (fleet, replicas, budget) whose latency misses
    checks = 0
    for i in variants:
        fleet = _fleet_key(*meta[i])
        lower = float(s["usd_lb"][i])
        if fleet not in best or lower >= best[fleet].usd_month or lower > threshold():
            continue
        fewer = best[fleet].replicas - 1
        budget = (fleet, fewer, meta[i][2].max_num_batched_tokens)
        if budget in late:
            unhelpful_limits += 1
            continue
        if len(candidates) >= fleets_sized + VARIANT_SIZINGS or checks >= VARIANT_CHECKS:
            notes.append("other max-batch and token-budget settings of the leading fleets were not all sized")
            break
        checks += 1
        misses = _misses_with(scenario, meta[i], fewer, wl, calibration)
        if misses:
            unhelpful_limits += 1
            if not {UNSTABLE, Binding.UTILISATION_CEILING} & set(misses):
                late.add(budget)
            continue
        size(i)
    if unhelpful_limits:
        excluded["max-batch or token-budget settings that save no replica"] = unhelpful_limits
    exact = len(candidates)
    misses: dict[str, int] = {}
    for c in candidates:
        if not c.feasible:
            misses[f"miss {c.binding}"] = misses.get(f"miss {c.binding}", 0) + 1
    excluded |= misses
    feasible = distinct(best.values())
    cal = calibration or shipped_calibration()
    for c in feasible:
        c.validated = all(trust.validated(cal, c.gpu.family, c.model.family, c.config.engine).values())
        c.price_estimated = c.gpu.price_estimated and not _price_overridden(scenario, c.gpu, own_id)
    return SearchResult(tier, len(meta) + sum(ruled_out.values()), {k: v for k, v in excluded.items() if v}, feasible[:top],
                        pareto(feasible, "e2e_p99_ms"), pareto(feasible, "ttft_p99_ms"), screen_s, exact, notes, model_ids)


# Latencies within this fraction of each other are the same latency to a user: well inside the model's
# cross-validated median error (12% on E2E, 42% on TTFT; README, "How the numbers are made").
SAME_LATENCY = 0.05


def distinct(cands) -> list[Candidate]:
    """The fleets worth listing, cheapest (then fastest) first. On the same hardware (model, GPU type
    and count, TP, PP) a lower precision is listed only where it is faster, by more than
    SAME_LATENCY on p99 E2E or TTFT, than every higher precision listed: otherwise it is the same
    choice at a loss of quality (fp8 and int8 weights, or fp8 and bf16 KV, at one cost and latency)."""
    kept: dict[tuple, list[Candidate]] = {}
    for c in sorted(cands, key=lambda c: (c.usd_month, _precision_rank(c.config), c.e2e_p99_ms)):
        hardware = (c.model.id, c.gpu.id, c.gpus, c.config.tp, c.config.pp)
        if not any(_not_faster(c, k) for k in kept.get(hardware, [])):
            kept.setdefault(hardware, []).append(c)
    return sorted((c for same in kept.values() for c in same), key=lambda c: (c.usd_month, c.e2e_p99_ms))


def _precision_rank(cfg: ServingConfig) -> tuple[int, int]:
    """Higher precision first: weights, then KV cache, in the order the grid lists them."""
    return WEIGHTS.index(cfg.weights), KVS.index(cfg.kv)


def _not_faster(c: Candidate, than: Candidate) -> bool:
    return all(getattr(c, lat) >= getattr(than, lat) * (1 - SAME_LATENCY) for lat in ("e2e_p99_ms", "ttft_p99_ms"))


def _fleet_key(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig) -> tuple:
    """What a user buys and deploys; max batch and token budget are engine flags on top of it."""
    return model.id, gpu.id, cfg.weights, cfg.kv, cfg.tp, cfg.pp


def _price(scenario: Scenario, gpu: GpuSpec, own_id: str | None) -> float:
    """USD per GPU-hour after discount. A profile's price override is the price of its own GPU
    type (`own_id`); every other type keeps its catalog price."""
    fleet = scenario.fleet
    price = fleet.price_usd_hour if _price_overridden(scenario, gpu, own_id) else gpu.price_usd_hour
    return price * (1 - fleet.discount)


def _price_overridden(scenario: Scenario, gpu: GpuSpec, own_id: str | None) -> bool:
    """The profile sets this GPU's price (only its own GPU type's), so the catalog's is not used."""
    return scenario.fleet.price_usd_hour is not None and gpu.id == own_id


def _own_gpu_id(scenario: Scenario, gpus: list[GpuSpec]) -> str | None:
    try:
        return catalog.get_gpu(scenario.fleet.gpu, gpus).id
    except catalog.CatalogError:
        return None


def _exact(scenario, model, gpu, cfg, wl, usd_lb, price, calibration) -> Candidate:
    knobs = knobs_for(gpu, calibration, cfg.engine, model)
    sized = size_replicas(scenario, model, gpu, cfg, knobs, wl, scenario.load.peak_rate_rps)
    cand = Candidate(model, gpu, cfg, usd_lb, feasible=sized.feasible, binding=sized.binding, reason=sized.reason)
    if sized.feasible and over_fleet_limit(scenario, sized.replicas * cfg.tp * cfg.pp):
        cand.feasible, cand.binding = False, Binding.FLEET_SIZE  # plan would cap it at fleet.max_gpus, missing the targets
    if cand.feasible:
        cand.replicas = sized.replicas
        cand.gpus = sized.replicas * cfg.tp * cfg.pp
        cand.usd_month = cand.gpus * price * scenario.cost.hours_per_month
        if sized.point is not None and sized.point.e2e_s:
            cand.e2e_p99_ms = sized.point.e2e_s["p99"] * 1e3
            cand.ttft_p99_ms = sized.point.ttft_s["p99"] * 1e3
            cand.tpot_p99_ms = sized.point.tpot_s["p99"] * 1e3
    return cand


def _misses_with(scenario: Scenario, config: tuple, replicas: int, wl: Workload, calibration) -> list[str]:
    """What `replicas` replicas of this configuration miss at the peak load (at the fidelity plan
    shows), with the checks plan's sizing remembers; no replica at all misses everything. The
    utilisation ceiling is arithmetic and a clear quick-fidelity miss needs no full sampling, as in
    plan's confirmation."""
    if replicas < 1:
        return [UNSTABLE]
    model, gpu, cfg = config
    p = replica_params(model, gpu, cfg, knobs_for(gpu, calibration, cfg.engine, model))
    return replica_check(scenario, p, wl, scenario.load.peak_rate_rps).misses_at_full(replicas)[0]


def pareto(cands: list[Candidate], latency: str) -> list[Candidate]:
    """Non-dominated set on (monthly cost, latency): sorted by cost, strictly falling latency."""
    out, best = [], math.inf
    for c in sorted(cands, key=lambda c: (c.usd_month, getattr(c, latency))):
        if getattr(c, latency) < best:
            out.append(c)
            best = getattr(c, latency)
    return out


def search(scenario: Scenario, tiers: list[str], gpu_ids: list[str] | None = None, top: int = 5, all_models: bool = False,
           custom_gpus=(), custom_models=(), calibration: Calibration | None = None) -> list[SearchResult]:
    gpus = [catalog.get_gpu(g, custom_gpus) for g in gpu_ids] if gpu_ids else list(catalog.gpus().values())
    results = []
    for tier in tiers:
        if all_models:
            customs = [m for m in custom_models if m.tier == tier]
            models = customs + [m for m in catalog.models().values() if m.tier == tier and m.id not in {c.id for c in customs}]
        else:
            models = [catalog.get_model(getattr(scenario.models, tier), list(custom_models))]
        results.append(search_tier(scenario, tier, models, gpus, top, calibration))
        cheapest = results[-1].ranked[0].usd_month if results[-1].ranked else math.inf
        results[-1].hosted_apis = cheaper_hosted_apis(scenario, tier, models, cheapest)
    return results
