"""From a scenario to a plan: per tier, the cheapest fleet that meets every target at the peak
load, its latency percentiles, cost, energy and the constraint that sized it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from planner.engine import catalog
from planner.engine.cost import FleetCost, fleet_cost
from planner.engine.knobs import Calibration, Knobs, shipped_calibration
from planner.engine.roofline import ServingConfig, memory_per_gpu, replica_params
from planner.engine.scenario import Scenario
from planner.engine.serving import FULL, QUICK, OperatingPoint, Workload, offline_throughput, rate_point
from planner.engine.specs import GB, TIERS, GpuSpec, ModelSpec

MAX_REPLICAS = 100_000
TP_DEGREES = (1, 2, 4, 8, 16, 32, 64, 72)


@dataclass
class TierPlan:
    tier: str
    model: ModelSpec
    gpu: GpuSpec
    config: ServingConfig
    feasible: bool
    reason: str = ""
    replicas: int = 0
    point: OperatingPoint | None = None
    meets_slo: bool = False
    binding: str = ""
    bound: str = ""
    cost: FleetCost | None = None
    memory_gb: dict = field(default_factory=dict)
    alternatives: list[dict] = field(default_factory=list)
    floor: OperatingPoint | None = None
    usd_per_gpu_hour: float = 0.0
    error_pct: dict = field(default_factory=dict)
    validated: bool = True
    misses: list[str] = field(default_factory=list)
    mean_output_tokens: float = 0.0

    @property
    def gpus(self) -> int:
        return self.replicas * self.config.tp * self.config.pp


@dataclass
class Plan:
    scenario: Scenario
    workload: Workload
    peak_rate_rps: float
    tiers: list[TierPlan]


def resolve_precision(choice: str, model: ModelSpec, gpu: GpuSpec, kind: str) -> str:
    """'auto' means the model's native dtype (fp8 falls back to bf16 where the GPU lacks fp8 KV
    support is not an issue: vLLM stores fp8 KV on any GPU)."""
    if choice != "auto":
        return choice
    if kind == "kv":
        return "bf16" if model.dtype not in ("bf16", "fp16") else model.dtype
    return model.dtype


def knobs_for(gpu: GpuSpec, calibration: Calibration | None) -> Knobs:
    return (calibration or shipped_calibration()).for_family(gpu.family)


def fitting_tp_degrees(model: ModelSpec, gpu: GpuSpec, base: ServingConfig, knobs: Knobs, node_limit: int | None) -> list[int]:
    """TP degrees (powers of two, within one scale-up domain) whose weights and one request fit."""
    limit = min(gpu.max_gpus_per_node, node_limit or gpu.max_gpus_per_node)
    out = []
    for tp in TP_DEGREES:
        if tp > limit or not tp_divides(model, tp):
            continue
        p = replica_params(model, gpu, _with(base, tp=tp), knobs)
        if float(memory_per_gpu(p)["kv"]) > 0:
            out.append(tp)
    return out


def tp_divides(model: ModelSpec, tp: int) -> bool:
    """vLLM shards attention heads evenly: heads % tp == 0, and KV heads either split evenly or
    replicate evenly."""
    return model.heads % tp == 0 and (model.kv_heads % tp == 0 or tp % model.kv_heads == 0)


def _with(cfg: ServingConfig, **changes) -> ServingConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


def serving_config(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, tp: int) -> ServingConfig:
    opt = scenario.optimizations
    return ServingConfig(
        tp=tp,
        pp=opt.pp,
        weights=resolve_precision(opt.weights, model, gpu, "weights"),
        kv=resolve_precision(opt.kv, model, gpu, "kv"),
        max_num_seqs=opt.max_num_seqs,
        max_num_batched_tokens=opt.max_num_batched_tokens,
        chunked_prefill=opt.chunked_prefill,
        gpu_mem_util=opt.gpu_mem_util,
        prefix_hit=opt.prefix_hit,
        spec_k=opt.spec_k,
        spec_accept=opt.spec_accept,
        spec_draft_ratio=opt.spec_draft_ratio,
        prune_fraction=opt.prune_fraction,
        sparsity_2_4=opt.sparsity_2_4,
    )


# ---------------------------------------------------------------------------------------------
# SLO checks


def slo_misses(scenario: Scenario, point: OperatingPoint, max_util: float | None = None) -> list[str]:
    """Targets the operating point misses, in words."""
    slo = scenario.slo
    if not point.stable:
        return ["unstable"]
    misses = []
    checks = (
        ("TTFT", slo.ttft_ms, slo.ttft_percentile, point.ttft_s),
        ("TPOT", slo.tpot_ms, slo.tpot_percentile, point.tpot_s),
        ("E2E", slo.e2e_ms, slo.e2e_percentile, point.e2e_s),
    )
    for name, target_ms, pct, dist in checks:
        if target_ms is None:
            continue
        value_ms = percentile_of(dist, pct) * 1e3
        if value_ms > target_ms:
            misses.append(f"{name} p{pct:g}")
    if max_util is not None and point.utilization > max_util + 1e-9:
        misses.append("utilisation ceiling")
    return misses


def percentile_of(dist: dict, pct: float) -> float:
    """A percentile from the p50/p90/p99 summary (log-linear between them, exact at those three)."""
    key = f"p{pct:g}"
    if key in dist:
        return dist[key]
    pts = [(50.0, dist["p50"]), (90.0, dist["p90"]), (99.0, dist["p99"])]
    if pct <= 50:
        return dist["p50"]
    if pct >= 99:
        return dist["p99"]
    for (a, va), (b, vb) in zip(pts, pts[1:]):
        if a <= pct <= b:
            # interpolate in log(1 - p): tails are roughly exponential
            ta, tb, t = math.log(1 - a / 100), math.log(1 - b / 100), math.log(1 - pct / 100)
            return va + (vb - va) * (t - ta) / (tb - ta)
    return dist["p99"]


# ---------------------------------------------------------------------------------------------
# Sizing


@dataclass
class SizingResult:
    tp: int
    replicas: int
    point: OperatingPoint | None
    feasible: bool
    reason: str = ""
    binding: str = ""
    floor: OperatingPoint | None = None


def size_replicas(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs, wl: Workload, rate: float,
                  confirm: bool = True) -> SizingResult:
    """Smallest replica count whose per-replica load meets every target and the utilisation ceiling.
    The search runs at quick fidelity; `confirm` re-checks the answer at full fidelity."""
    p = replica_params(model, gpu, cfg, knobs)
    max_rate, _, _ = offline_throughput(p, wl)
    floor = rate_point(p, wl, 0.0, fidelity=QUICK)
    if max_rate <= 0:
        return SizingResult(cfg.tp, 0, None, False, "no room for a single request's KV cache", "memory capacity", floor)
    floor_misses = slo_misses(scenario, floor)
    if floor_misses:
        return SizingResult(cfg.tp, 0, floor, False, _floor_reason(scenario, model, gpu, cfg, floor, floor_misses[0]), floor_misses[0], floor)
    if rate <= 0:
        return SizingResult(cfg.tp, 0, floor, True, "", "no load", floor)
    util_cap = scenario.slo.max_utilization
    lo = max(1, math.ceil(rate / (max_rate * util_cap) - 1e-9))

    def ok(n: int, fidelity=QUICK) -> tuple[bool, OperatingPoint]:
        pt = rate_point(p, wl, rate / n, fidelity=fidelity)
        return not slo_misses(scenario, pt, util_cap), pt

    def done(n: int, binding: str, point: OperatingPoint) -> SizingResult:
        if confirm:
            return _confirmed(n, binding, ok, cfg, floor)
        return SizingResult(cfg.tp, n, point, True, "", binding, floor)

    good, point = ok(lo)
    if good:
        return done(lo, "utilisation ceiling" if lo > 1 else "one replica suffices", point)
    hi = lo
    while not good:
        hi *= 2
        if hi > MAX_REPLICAS:
            return SizingResult(cfg.tp, 0, point, False, f"more than {MAX_REPLICAS:,} replicas would be needed", "latency", floor)
        good, point = ok(hi)
    left = lo  # fails
    while hi - left > 1:
        mid = (left + hi) // 2
        good_mid, pt_mid = ok(mid)
        if good_mid:
            hi, point = mid, pt_mid
        else:
            left = mid
    _, below = ok(hi - 1) if hi - 1 >= 1 else (True, None)
    binding = slo_misses(scenario, below, util_cap)[0] if below is not None and slo_misses(scenario, below, util_cap) else "latency"
    return done(hi, binding, point)


def confirm_replicas(scenario, model, gpu, cfg, knobs, wl, rate, quick: SizingResult) -> SizingResult:
    p = replica_params(model, gpu, cfg, knobs)

    def ok(n: int, fidelity=FULL):
        pt = rate_point(p, wl, rate / n, fidelity=fidelity)
        return not slo_misses(scenario, pt, scenario.slo.max_utilization), pt

    return _confirmed(quick.replicas, quick.binding, ok, cfg, quick.floor)


def _confirmed(n: int, binding: str, ok, cfg: ServingConfig, floor) -> SizingResult:
    """Re-check the count the quick search found at full fidelity (the numbers shown); step up if
    sampling moved a percentile across its target."""
    for extra in range(8):
        good, point = ok(n + extra, FULL)
        if good:
            return SizingResult(cfg.tp, n + extra, point, True, "", binding, floor)
    return SizingResult(cfg.tp, 0, point, False, f"the full-fidelity check misses the targets even at {n + 7} replicas", binding, floor)


def _floor_reason(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, floor: OperatingPoint, miss: str) -> str:
    name, pct = miss.split(" p")
    dist = {"TTFT": floor.ttft_s, "TPOT": floor.tpot_s, "E2E": floor.e2e_s}[name]
    target = {"TTFT": scenario.slo.ttft_ms, "TPOT": scenario.slo.tpot_ms, "E2E": scenario.slo.e2e_ms}[name]
    value = percentile_of(dist, float(pct)) * 1e3
    bound = floor.prefill_bound if name == "TTFT" else floor.decode_bound
    return (
        f"{name} p{pct} target {target:g} ms is below the single-request floor of {value:.0f} ms for "
        f"{model.id} {cfg.weights} on {gpu.id} at TP={cfg.tp} ({bound} bound): relax the target, "
        f"quantize, or use a faster GPU"
    )


# ---------------------------------------------------------------------------------------------
# The plan


def plan_tier(scenario: Scenario, tier: str, model: ModelSpec, gpu: GpuSpec, wl: Workload, calibration: Calibration | None = None) -> TierPlan:
    knobs = knobs_for(gpu, calibration)
    fleet = scenario.fleet
    price = (fleet.price_usd_hour if fleet.price_usd_hour is not None else gpu.price_usd_hour) * (1.0 - fleet.discount)
    base = serving_config(scenario, model, gpu, 1)
    rate = scenario.load.peak_rate_rps
    unsupported = _unsupported(base, gpu)
    if unsupported:
        return TierPlan(tier, model, gpu, base, False, unsupported, usd_per_gpu_hour=price, binding="hardware support")
    opt_tp = scenario.optimizations.tp
    if opt_tp == "auto":
        degrees = fitting_tp_degrees(model, gpu, base, knobs, fleet.gpus_per_node)
    else:
        degrees = [int(opt_tp)]
    if not degrees:
        return _does_not_fit(tier, model, gpu, base, knobs, fleet.gpus_per_node, price)
    results = []
    for tp in degrees:
        cfg = _with(base, tp=tp)
        sized = size_replicas(scenario, model, gpu, cfg, knobs, wl, rate, confirm=False)
        results.append((cfg, sized))
    feasible = [(c, s) for c, s in results if s.feasible]
    if feasible:
        # fewest GPUs, then (with no load, all zero) the smallest replica, then the lowest latency
        cfg, best = min(feasible, key=lambda cs: (cs[1].replicas * cs[0].tp * cs[0].pp, cs[0].tp if cs[1].replicas == 0 else 0,
                                                  _p99(cs[1].point)))
        if best.replicas > 0:  # the numbers shown: re-check the chosen count at full fidelity
            best = confirm_replicas(scenario, model, gpu, cfg, knobs, wl, rate, best)
            results = [(c, best if c == cfg else s) for c, s in results]
    else:
        cfg, best = results[0]
    tp_plan = _tier_result(scenario, tier, model, gpu, cfg, best, knobs, wl, price)
    tp_plan.alternatives = [
        {"tp": c.tp, "replicas": s.replicas, "gpus": s.replicas * c.tp * c.pp, "feasible": s.feasible,
         "reason": s.reason, "usd_month": s.replicas * c.tp * c.pp * price * scenario.cost.hours_per_month}
        for c, s in results
    ]
    return tp_plan


def _p99(point: OperatingPoint | None) -> float:
    return point.e2e_s.get("p99", float("inf")) if point and point.e2e_s else float("inf")


def _unsupported(cfg: ServingConfig, gpu: GpuSpec) -> str:
    if cfg.sparsity_2_4 and not gpu.sparse_2_4:
        return f"2:4 sparsity needs sparse tensor cores, which {gpu.id} does not have"
    if cfg.weights == "fp8" and "fp8" not in gpu.tflops and gpu.vendor.lower() != "nvidia":
        return f"{gpu.id} has no fp8 support for weights"
    return ""


def _does_not_fit(tier, model, gpu, base, knobs, node_limit, price) -> TierPlan:
    limit = min(gpu.max_gpus_per_node, node_limit or gpu.max_gpus_per_node)
    tp = max([d for d in TP_DEGREES if d <= limit] or [1])
    p = replica_params(model, gpu, _with(base, tp=tp), knobs)
    mem = memory_per_gpu(p)
    short_gb = float(mem["shortfall"]) / GB
    reason = (
        f"{model.id} {base.weights} does not fit on {gpu.id} even at TP={tp} (memory capacity bound): "
        f"weights need {float(mem['weights']) / GB:.1f} GB per GPU, {short_gb:.1f} GB over the "
        f"{float(mem['budget']) / GB:.1f} GB budget; quantize, raise PP, or use a larger GPU"
    )
    plan = TierPlan(tier, model, gpu, _with(base, tp=tp), False, reason, usd_per_gpu_hour=price, binding="memory capacity")
    plan.memory_gb = {k: float(v) / GB for k, v in mem.items()}
    return plan


def _tier_result(scenario, tier, model, gpu, cfg, sized: SizingResult, knobs, wl, price) -> TierPlan:
    p = replica_params(model, gpu, cfg, knobs)
    mem = memory_per_gpu(p)
    plan = TierPlan(tier, model, gpu, cfg, sized.feasible, sized.reason, replicas=sized.replicas, point=sized.point,
                    binding=sized.binding, floor=sized.floor, usd_per_gpu_hour=price)
    plan.memory_gb = {k: float(v) / GB for k, v in mem.items()}
    plan.mean_output_tokens = wl.mean_out
    point = sized.point
    plan.bound = point.decode_bound if point else ""
    plan.misses = slo_misses(scenario, point) if point else []
    plan.meets_slo = sized.feasible and not plan.misses
    max_rate, _, _ = offline_throughput(p, wl)
    mean_rate = scenario.load.mean_rate_rps
    activity = (mean_rate / max(sized.replicas, 1)) / max_rate if max_rate > 0 else 0.0
    replica_usd = cfg.tp * cfg.pp * price * scenario.cost.hours_per_month
    plan.cost = fleet_cost(
        gpus=plan.gpus, usd_per_gpu_hour=price, tdp_w=gpu.tdp_w, activity=activity, mean_rate_rps=mean_rate if sized.feasible else 0.0,
        mean_in=wl.mean_in, mean_out=wl.mean_out, replica_usd_month=replica_usd, replica_max_rps=max_rate, knobs=scenario.cost,
    )
    return plan


def evaluate(scenario: Scenario, custom_gpus: Iterable[GpuSpec] = (), custom_models: Iterable[ModelSpec] = (), calibration: Calibration | None = None) -> Plan:
    """The whole plan: one model per tier on the scenario's fleet."""
    gpus, models = list(custom_gpus), list(custom_models)
    gpu = catalog.get_gpu(scenario.fleet.gpu, gpus)
    wl = Workload(scenario.load.input_len, scenario.load.output_len)
    tiers = []
    for tier in TIERS:
        model = catalog.get_model(getattr(scenario.models, tier), models)
        tiers.append(plan_tier(scenario, tier, model, gpu, wl, calibration))
    return Plan(scenario=scenario, workload=wl, peak_rate_rps=scenario.load.peak_rate_rps, tiers=tiers)
