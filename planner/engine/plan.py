"""From a scenario to a plan: per tier, the cheapest fleet that meets every target at the peak
load, its latency percentiles, cost, energy and the constraint that sized it."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from planner.engine import catalog, trust
from planner.engine.cost import FleetCost, fleet_cost
from planner.engine.knobs import Calibration, Knobs, shipped_calibration
from planner.engine.roofline import ServingConfig, memory_per_gpu, replica_params, sequence_kv_tokens
from planner.engine.scenario import Scenario
from planner.engine.serving import (
    FULL,
    QUICK,
    Fidelity,
    OperatingPoint,
    RateSolution,
    Workload,
    finish_rate_point,
    offline_throughput,
    rate_point,
    solve_rate_point,
)
from planner.engine.specs import GB, TIERS, TP_DEGREES, GpuSpec, ModelSpec

MAX_REPLICAS = 100_000


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
    error_pct: dict = field(default_factory=dict)  # expected median abs. % error per metric group
    validated: dict = field(default_factory=dict)  # gpu_family / model_family / engine: measured or not
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
    caveats: list[str] = field(default_factory=list)  # where the load lies outside the checked range


# Prompts this many times the outputs (on average) make a prefill-dominated load: there, against
# the simulation of the same scheduler, the median TPOT of the short outputs read 11-34% high and
# E2E p99 10-18% low near 80% load (8B, 70B and Mixtral; 1,000-token prompts with 3-15-token
# outputs, 4,000 with 30), while 1,000 with 30 stayed within 10% (tests/simulation).
PREFILL_DOMINATED_RATIO = 50.0


def load_caveats(wl: Workload) -> list[str]:
    """What a user should know about how far to trust these numbers for this load."""
    ratio = wl.mean_in / max(wl.mean_out, 1e-9)
    if ratio < PREFILL_DOMINATED_RATIO:
        return []
    return [f"prefill-dominated load (prompts {ratio:,.0f}x the outputs): against a simulation of the same "
            f"scheduler, the median TPOT of such short outputs read up to a third high and E2E p99 up to 18% low "
            f"near 80% load"]


def resolve_precision(choice: str, model: ModelSpec, gpu: GpuSpec, kind: str) -> str:
    """'auto' means the model's native dtype (fp8 falls back to bf16 where the GPU lacks fp8 KV
    support is not an issue: vLLM stores fp8 KV on any GPU)."""
    if choice != "auto":
        return choice
    if kind == "kv":
        return "bf16" if model.dtype not in ("bf16", "fp16") else model.dtype
    return model.dtype


def knobs_for(gpu: GpuSpec, calibration: Calibration | None, engine: str | None = None) -> Knobs:
    return (calibration or shipped_calibration()).for_family(gpu.family, engine)


def fitting_tp_degrees(model: ModelSpec, gpu: GpuSpec, base: ServingConfig, knobs: Knobs, node_limit: int | None) -> list[int]:
    """TP degrees (powers of two, within one scale-up domain) whose weights and one request fit."""
    limit = node_size(gpu, node_limit)
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
        engine=scenario.fleet.engine,
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
    check: _ReplicaCheck | None = field(default=None, repr=False, compare=False)  # what the search solved


def size_replicas(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs, wl: Workload, rate: float,
                  confirm: bool = True) -> SizingResult:
    """Smallest replica count whose per-replica load meets every target and the utilisation ceiling.
    The search runs at quick fidelity; `confirm` re-checks the answer at full fidelity (reusing the
    fixed points the search solved)."""
    p = replica_params(model, gpu, cfg, knobs)
    ok = replica_check(scenario, p, wl, rate)
    sized = _size_replicas(scenario, model, gpu, cfg, wl, rate, confirm, ok)
    sized.check = ok
    return sized


def _size_replicas(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, wl: Workload, rate: float,
                   confirm: bool, ok: _ReplicaCheck) -> SizingResult:
    max_rate = ok.max_rate
    floor = ok.floor()
    if max_rate <= 0:
        return SizingResult(cfg.tp, 0, None, False, "no room for a single request's KV cache", "memory capacity", floor)
    floor_misses = slo_misses(scenario, floor)
    if floor_misses:
        return SizingResult(cfg.tp, 0, floor, False, _floor_reason(scenario, model, gpu, cfg, floor, floor_misses[0]), floor_misses[0], floor)
    if rate <= 0:
        return SizingResult(cfg.tp, 0, floor, True, "", "no load", floor)
    util_cap = scenario.slo.max_utilization
    lo = ok.least_replicas()
    if not math.isfinite(lo) or lo > MAX_REPLICAS:
        return SizingResult(cfg.tp, 0, floor, False, _too_many(rate, max_rate, util_cap), "utilisation ceiling", floor)

    def done(n: int, binding: str, point: OperatingPoint) -> SizingResult:
        if confirm:
            return _confirmed(n, binding, ok, cfg, floor)
        return SizingResult(cfg.tp, n, point, True, "", binding, floor)

    good, point = ok(lo)
    if good:
        return done(lo, "utilisation ceiling" if lo > 1 else "one replica suffices", point)
    left, hi = _first_good(lo, ok, QUICK)
    if hi is None:
        return SizingResult(cfg.tp, 0, point, False, _too_many(rate, max_rate, util_cap), "latency", floor)
    hi, point = _bisect(left, hi, ok, QUICK)
    below_misses = slo_misses(scenario, ok(hi - 1)[1], util_cap) if hi - 1 >= 1 else []
    return done(hi, below_misses[0] if below_misses else "latency", point)


def _too_many(rate: float, max_rate: float, util_cap: float) -> str:
    return (f"more than {MAX_REPLICAS:,} replicas would be needed: {rate:,.4g} req/s against {max_rate:,.4g} req/s "
            f"per replica at most, at a utilisation ceiling of {util_cap:.3g}")


def _first_good(bad: int, ok, fidelity) -> tuple[int, int | None]:
    """Gallop up from a failing count: (the last failing count, the first passing one or None
    beyond MAX_REPLICAS). Latency falls monotonically with replicas (common random numbers)."""
    step = max(1, bad // 64)
    while True:
        n = bad + step
        if n > MAX_REPLICAS:
            return bad, None
        if ok(n, fidelity)[0]:
            return bad, n
        bad, step = n, step * 2


def _bisect(bad: int, good: int, ok, fidelity) -> tuple[int, OperatingPoint]:
    """Smallest passing count in (bad, good], and its operating point."""
    point = ok(good, fidelity)[1]
    while good - bad > 1:
        mid = (bad + good) // 2
        passed, pt = ok(mid, fidelity)
        if passed:
            good, point = mid, pt
        else:
            bad = mid
    return good, point


class _ReplicaCheck:
    """Does n replicas' share of the load meet every target? Remembered per count and fidelity (the
    gallop, the bisection and the confirmation revisit counts), and each count's fixed point is
    solved once for every fidelity it is finished at. Shared by every plan with the same targets,
    replica and load (`replica_check`), so treat what it returns as read-only."""

    def __init__(self, scenario: Scenario, p, wl: Workload, rate: float, default: Fidelity) -> None:
        self.scenario, self.p, self.wl, self.rate, self.default = scenario, p, wl, rate, default
        self.solved: dict[int, RateSolution] = {}
        self.checked: dict[tuple[int, Fidelity], tuple[bool, OperatingPoint]] = {}
        self._floor: OperatingPoint | None = None
        self._max_rate: float | None = None

    def floor(self) -> OperatingPoint:
        """The single-request floor: the replica with no load, at the search's fidelity."""
        if self._floor is None:
            self._floor = idle_floor(self.p, self.wl)
        return self._floor

    @property
    def max_rate(self) -> float:
        """One replica's saturation throughput (req/s)."""
        if self._max_rate is None:
            self._max_rate = offline_throughput(self.p, self.wl)[0]
        return self._max_rate

    def least_replicas(self) -> float:
        """Replicas the utilisation ceiling alone asks for: 0 with no load, inf with no capacity."""
        if self.rate <= 0:
            return 0
        needed = self.rate / (self.max_rate * self.scenario.slo.max_utilization) if self.max_rate > 0 else math.inf
        return max(1, math.ceil(needed - 1e-9)) if math.isfinite(needed) else math.inf

    def over_ceiling(self, n: int) -> bool:
        """Whether n replicas' share of the load puts each over the utilisation ceiling (or over
        its capacity): arithmetic on the saturation throughput, nothing solved."""
        if self.max_rate <= 0:
            return True
        return self.rate / n / self.max_rate > self.scenario.slo.max_utilization + 1e-9

    def misses_at_full(self, n: int) -> tuple[list[str], OperatingPoint | None]:
        """The targets n replicas miss at full fidelity (the numbers shown), sampling at full
        fidelity only when cheaper evidence cannot tell: over the utilisation ceiling is arithmetic
        on the capacity, and an unstable replica or a quick-fidelity percentile far over its
        target misses at full fidelity too. The point is None when nothing was solved."""
        if self.over_ceiling(n):
            return ["utilisation ceiling"], None
        quick_misses, quick = self.misses(n, QUICK)
        if "unstable" in quick_misses or _clearly_misses(self.scenario, quick):
            return quick_misses, quick
        return self.misses(n, FULL)

    def __call__(self, n: int, fidelity: Fidelity | None = None) -> tuple[bool, OperatingPoint]:
        misses, point = self.misses(n, fidelity)
        return not misses, point

    def misses(self, n: int, fidelity: Fidelity | None = None) -> tuple[list[str], OperatingPoint]:
        """The targets n replicas miss (with the utilisation ceiling), and their operating point."""
        key = (n, fidelity or self.default)
        if key not in self.checked:
            if n not in self.solved:
                self.solved[n] = solve_rate_point(self.p, self.wl, self.rate / n)
            pt = finish_rate_point(self.p, self.wl, self.solved[n], fidelity=key[1])
            self.checked[key] = (slo_misses(self.scenario, pt, self.scenario.slo.max_utilization), pt)
        return self.checked[key]


# Checks of recent (targets, replica, workload, load) combinations: most keystrokes change one tier's
# model, a price or nothing the sizing reads, and then the other tiers' solved counts are reused.
# Thread-safe: the TUI plans, sweeps and searches in worker threads.
CHECK_CACHE_ENTRIES = 256
_CHECKS: OrderedDict[tuple, _ReplicaCheck] = OrderedDict()
_CHECKS_LOCK = threading.Lock()


def _remembered(cache: OrderedDict, key: tuple, make):
    """cache[key], made with make() on a miss and kept among the CHECK_CACHE_ENTRIES most recently
    used. make() runs outside the lock; if two threads make the same key, the first one kept wins."""
    with _CHECKS_LOCK:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
            return value
    value = make()
    with _CHECKS_LOCK:
        value = cache.setdefault(key, value)
        cache.move_to_end(key)
        while len(cache) > CHECK_CACHE_ENTRIES:
            cache.popitem(last=False)
    return value


def replica_check(scenario: Scenario, p, wl: Workload, rate: float) -> _ReplicaCheck:
    key = (tuple(scenario.slo.model_dump().values()), p, workload_key(wl), float(rate))
    return _remembered(_CHECKS, key, lambda: _ReplicaCheck(scenario, p, wl, rate, QUICK))


_FLOORS: OrderedDict[tuple, OperatingPoint] = OrderedDict()


def idle_floor(p, wl: Workload) -> OperatingPoint:
    """The replica with no load (one request at a time), remembered by replica and workload: it
    does not depend on the rate or the targets, which most sizing keystrokes change."""
    return _remembered(_FLOORS, (p, workload_key(wl)), lambda: rate_point(p, wl, 0.0, fidelity=QUICK))


def clear_check_cache() -> None:
    """Forget every remembered check and floor (benchmarks time the engine cold with this)."""
    with _CHECKS_LOCK:
        _CHECKS.clear()
        _FLOORS.clear()


def workload_key(wl: Workload) -> tuple:
    """A workload as a cache key (its length distributions' fields)."""
    return tuple(wl.input_len.model_dump().values()) + tuple(wl.output_len.model_dump().values())


def confirm_replicas(scenario, model, gpu, cfg, knobs, wl, rate, quick: SizingResult) -> SizingResult:
    ok = quick.check or replica_check(scenario, replica_params(model, gpu, cfg, knobs), wl, rate)
    return _confirmed(quick.replicas, quick.binding, ok, cfg, quick.floor)


def _confirmed(n: int, binding: str, ok, cfg: ServingConfig, floor) -> SizingResult:
    """The smallest count that passes at full fidelity (the numbers shown), starting from the one the
    quick search found. Sampling can move a percentile across its target either way: search upward
    while the full-fidelity answer fails, downward while it passes (gallop, then bisect). Latency
    falls with replicas (common random numbers), so the answer does not depend on where the quick
    search stopped, only the number of full-fidelity checks does."""

    def full(m: int, _fidelity=None) -> tuple[bool, OperatingPoint | None]:
        misses, point = ok.misses_at_full(m)
        return not misses, point

    good, point = full(n)
    if good:
        bad, step = 0, 1
        while n > 1:
            m = max(n - step, 1)
            passed, pt = full(m)
            if not passed:
                bad = m
                break
            n, point, step = m, pt, step * 2
        if n - bad > 1:
            n, point = _bisect(bad, n, full, FULL)
    else:
        bad, first = _first_good(n, full, FULL)
        if first is None:
            return SizingResult(cfg.tp, 0, point, False, f"more than {MAX_REPLICAS:,} replicas would be needed", binding, floor)
        n, point = _bisect(bad, first, full, FULL)
    return SizingResult(cfg.tp, n, point, True, "", _binding_below(n, ok, full, binding), floor)


CLEAR_MISS = 1.25  # quick-fidelity percentile over target by this factor: a miss at full fidelity too


def _clearly_misses(scenario: Scenario, quick: OperatingPoint) -> bool:
    """Whether a quick-fidelity point misses a latency target by CLEAR_MISS or more. Quick p99s
    have come out 0.79-1.09 times the full-fidelity ones (96 operating points of five models with
    and without speculation, chunking and prefix hits, 2-90% load), p90s 0.94-1.09, so such a miss
    is a miss at full fidelity and needs no full-fidelity sampling to show it."""
    slo = scenario.slo
    checks = ((slo.ttft_ms, slo.ttft_percentile, quick.ttft_s), (slo.tpot_ms, slo.tpot_percentile, quick.tpot_s),
              (slo.e2e_ms, slo.e2e_percentile, quick.e2e_s))
    return any(target_ms is not None and percentile_of(dist, pct) * 1e3 > CLEAR_MISS * target_ms
               for target_ms, pct, dist in checks)


def _binding_below(n: int, ok, full, fallback: str) -> str:
    """What stops one replica fewer: the utilisation ceiling, or the first target it misses."""
    if n <= 1:
        return "one replica suffices"
    if ok.over_ceiling(n - 1):
        return "utilisation ceiling"
    _, below = full(n - 1)
    misses = slo_misses(ok.scenario, below, ok.scenario.slo.max_utilization)
    return misses[0] if misses else fallback


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
    knobs = knobs_for(gpu, calibration, scenario.fleet.engine)
    fleet = scenario.fleet
    price = (fleet.price_usd_hour if fleet.price_usd_hour is not None else gpu.price_usd_hour) * (1.0 - fleet.discount)
    base = serving_config(scenario, model, gpu, 1)
    rate = scenario.load.peak_rate_rps
    opt_tp = scenario.optimizations.tp
    explicit = None if opt_tp == "auto" else _with(base, tp=int(opt_tp))
    problem = config_problem(model, gpu, explicit or base, fleet.gpus_per_node)
    if problem:
        binding, reason = problem
        return TierPlan(tier, model, gpu, explicit or base, False, reason, usd_per_gpu_hour=price, binding=binding)
    if explicit and float(memory_per_gpu(replica_params(model, gpu, explicit, knobs))["shortfall"]) > 0:
        return _does_not_fit(tier, model, gpu, base, knobs, fleet.gpus_per_node, price, wl, tp=explicit.tp)
    degrees = [explicit.tp] if explicit else fitting_tp_degrees(model, gpu, base, knobs, fleet.gpus_per_node)
    if not degrees:
        return _does_not_fit(tier, model, gpu, base, knobs, fleet.gpus_per_node, price, wl)
    too_long = context_problem(model, wl)
    if too_long:
        cfg = _with(base, tp=degrees[-1])
        return TierPlan(tier, model, gpu, cfg, False, f"{too_long} ({_request_kv(model, gpu, cfg, knobs, wl)})",
                        usd_per_gpu_hour=price, binding="context limit")
    configs = [_with(base, tp=tp) for tp in degrees]
    results, unsized = _size_tp_degrees(scenario, model, gpu, knobs, wl, rate, configs)
    cfg, best = _confirm_cheapest(scenario, model, gpu, knobs, wl, rate, results)
    if best is not None and best.replicas > 0:
        cfg, best = _fewest_at_full(scenario, model, gpu, knobs, wl, rate, configs, results, unsized, cfg, best)
    if best is None:
        # nothing meets the targets: the largest TP is the closest to fitting and has the lowest floor
        cfg, best = results[-1]
        if best.binding == "memory capacity":
            best.reason = _kv_reason(model, gpu, cfg, knobs, wl)
    tp_plan = _tier_result(scenario, tier, model, gpu, cfg, best, knobs, wl, price)
    hours = scenario.cost.hours_per_month
    sized_by_tp = {c.tp: s for c, s in results}
    tp_plan.alternatives = []
    for c in configs:
        if c.tp in sized_by_tp:
            s = sized_by_tp[c.tp]
            tp_plan.alternatives.append({"tp": c.tp, "replicas": s.replicas, "gpus": s.replicas * c.tp * c.pp, "feasible": s.feasible,
                                         "reason": s.reason, "usd_month": s.replicas * c.tp * c.pp * price * hours, "sized": True})
        else:
            at_least = unsized[c.tp]
            gpus = at_least * c.tp * c.pp
            tp_plan.alternatives.append({
                "tp": c.tp, "replicas": at_least, "gpus": gpus, "feasible": None, "usd_month": gpus * price * hours, "sized": False,
                "reason": (f"not sized: the utilisation ceiling alone needs at least {gpus:,} GPUs at TP={c.tp}, "
                           f"{'more than' if gpus > tp_plan.gpus else 'no fewer than'} TP={cfg.tp}'s {tp_plan.gpus:,}")})
    if fleet.max_gpus is not None and tp_plan.gpus > fleet.max_gpus:
        return _capped(scenario, tp_plan, fleet.max_gpus, knobs, wl, price)
    return tp_plan


def _size_tp_degrees(scenario, model, gpu, knobs, wl, rate, configs) -> tuple[list, dict[int, int]]:
    """Quick sizings of the TP degrees that can need the fewest GPUs, branch and bound: a degree
    whose utilisation-ceiling replicas alone (arithmetic on its capacity) need more GPUs than a
    degree already sized is not sized here (plan_tier checks it again against the confirmed
    choice). Returns the sized (config, result) in TP order and the unsized degrees' least
    replicas."""
    least = {c.tp: replica_check(scenario, replica_params(model, gpu, c, knobs), wl, rate).least_replicas() for c in configs}
    order = sorted(configs, key=lambda c: (least[c.tp] * c.tp * c.pp, c.tp))
    sized: dict[int, SizingResult] = {}

    def fewest_gpus() -> float:
        gpus = [sized[c.tp].replicas * c.tp * c.pp for c in configs if c.tp in sized and sized[c.tp].feasible]
        return min(gpus, default=math.inf)

    for c in order:  # no room at all (inf) sizes too: the result says why
        if not math.isfinite(least[c.tp]) or least[c.tp] * c.tp * c.pp <= fewest_gpus():
            sized[c.tp] = size_replicas(scenario, model, gpu, c, knobs, wl, rate, confirm=False)
    results = [(c, sized[c.tp]) for c in configs if c.tp in sized]
    return results, {tp: n for tp, n in least.items() if tp not in sized}


def _fewest_at_full(scenario, model, gpu, knobs, wl, rate, configs, results, unsized, cfg, best) -> tuple[ServingConfig, SizingResult]:
    """The confirmed choice, made the fewest GPUs at full fidelity among every degree: quick sizes
    can be off by a replica or more either way, so the quick order alone can pick a degree another
    beats once both are confirmed. A degree beats the choice only if it passes with fewer GPUs,
    which one full-fidelity check at its most replicas under the choice's GPUs tells (latency falls
    with replicas; mostly settled by the utilisation ceiling or a clear quick miss); one that
    passes is sized and confirmed, and the round repeats with it. `results` and `unsized` are
    updated in place."""
    improved = True
    while improved:
        improved = False
        best_gpus = best.replicas * cfg.tp * cfg.pp
        for c in configs:
            per_replica = c.tp * c.pp
            fewer = (best_gpus - 1) // per_replica  # the most replicas of c with fewer GPUs
            if c.tp == cfg.tp or fewer < 1 or unsized.get(c.tp, 0) > fewer:
                continue
            if replica_check(scenario, replica_params(model, gpu, c, knobs), wl, rate).misses_at_full(fewer)[0]:
                continue
            sized = size_replicas(scenario, model, gpu, c, knobs, wl, rate)
            if sized.feasible and sized.replicas * per_replica < best_gpus:
                results[:] = sorted([r for r in results if r[0].tp != c.tp] + [(c, sized)], key=lambda r: r[0].tp)
                unsized.pop(c.tp, None)
                cfg, best, improved = c, sized, True
                break
    return cfg, best


def _confirm_cheapest(scenario, model, gpu, knobs, wl, rate, results) -> tuple[ServingConfig, SizingResult | None]:
    """The feasible TP with the fewest GPUs, re-checked at full fidelity (the numbers shown); when the
    check fails, the next cheapest. `results` is updated in place with the confirmed sizes."""
    # fewest GPUs, then (with no load, all zero) the smallest replica, then the lowest latency
    order = sorted((i for i, (_, s) in enumerate(results) if s.feasible),
                   key=lambda i: (results[i][1].replicas * results[i][0].tp * results[i][0].pp,
                                  results[i][0].tp if results[i][1].replicas == 0 else 0, _p99(results[i][1].point)))
    for i in order:
        cfg, sized = results[i]
        if sized.replicas > 0:
            sized = confirm_replicas(scenario, model, gpu, cfg, knobs, wl, rate, sized)
            results[i] = (cfg, sized)
        if sized.feasible:
            return cfg, sized
    return results[0][0], None


def _request_kv(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs, wl: Workload) -> str:
    """Memory capacity taken by the KV cache of the mean request, against what the GPU has left."""
    p = replica_params(model, gpu, cfg, knobs)
    need_gb = float(p.kv_bytes_token_gpu * sequence_kv_tokens(p, wl.decode_ctx_mean)) / GB
    free_gb = float(memory_per_gpu(p)["kv"]) / GB
    return (f"memory capacity: the mean request's KV cache takes {need_gb:,.1f} GB per GPU at TP={cfg.tp}, "
            f"of {free_gb:,.1f} GB left after the weights")


def _replicas(n: int) -> str:
    return f"{n:,} replica{'s' if n != 1 else ''}"


def _kv_reason(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs, wl: Workload) -> str:
    p = replica_params(model, gpu, cfg, knobs)
    kv_gb = float(memory_per_gpu(p)["kv"]) / GB
    return (f"memory capacity bound: after the weights, {kv_gb:.1f} GB of KV cache per GPU at TP={cfg.tp} does not hold "
            f"one request of {wl.decode_ctx_mean:,.0f} tokens for {model.id}; shorten the prompts, quantize the KV cache, "
            f"or use larger GPUs")


def _capped(scenario: Scenario, need: TierPlan, max_gpus: int, knobs: Knobs, wl: Workload, price: float) -> TierPlan:
    """The targets need more GPUs than fleet.max_gpus allows: plan the largest fleet allowed and show
    what it does under the load (its misses, or unstable with the offered and maximum load)."""
    cfg = need.config
    replicas = max_gpus // (cfg.tp * cfg.pp)
    why = f"the targets need {need.gpus:,} GPUs, more than the fleet limit of {max_gpus:,} (fleet.max_gpus)"
    if replicas < 1:
        return TierPlan(need.tier, need.model, need.gpu, cfg, False, f"{why}; one replica needs {cfg.tp * cfg.pp}",
                        usd_per_gpu_hour=price, binding="fleet size")
    p = replica_params(need.model, need.gpu, cfg, knobs)
    point = replica_check(scenario, p, wl, scenario.load.peak_rate_rps)(replicas, FULL)[1]
    misses = slo_misses(scenario, point, scenario.slo.max_utilization)
    if not point.stable:
        max_rps = replicas * offline_throughput(p, wl)[0]
        detail = f"unstable: {scenario.load.peak_rate_rps:,.4g} req/s offered, at most {max_rps:,.4g} req/s on {_replicas(replicas)}"
    else:
        detail = f"on {_replicas(replicas)} it misses {', '.join(misses)}"
    # sized, so feasible: the fleet exists; its misses (or instability) say it cannot carry the load
    sized = SizingResult(cfg.tp, replicas, point, True, f"{why}; {detail}", "fleet size", need.floor)
    capped = _tier_result(scenario, need.tier, need.model, need.gpu, cfg, sized, knobs, wl, price)
    capped.alternatives = need.alternatives
    return capped


def _p99(point: OperatingPoint | None) -> float:
    return point.e2e_s.get("p99", float("inf")) if point and point.e2e_s else float("inf")


def config_problem(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, node_limit: int | None = None) -> tuple[str, str] | None:
    """Why this serving configuration cannot run at all, as (binding, reason), or None. Shared by
    `plan` and `predict` so both refuse the same things."""
    if cfg.sparsity_2_4 and not gpu.sparse_2_4:
        return "hardware support", f"2:4 sparsity needs sparse tensor cores, which {gpu.id} does not have"
    if cfg.weights == "fp8" and "fp8" not in gpu.tflops and gpu.vendor.lower() != "nvidia":
        return "hardware support", f"{gpu.id} has no fp8 support for weights"
    limit = node_size(gpu, node_limit)
    if cfg.tp > limit:
        return "interconnect", (
            f"TP={cfg.tp} spans more than the {limit} GPUs of one {gpu.id} scale-up domain: tensor parallelism "
            f"all-reduces every layer and needs the node's fast interconnect; use TP<={limit} and PP across nodes")
    if not tp_divides(model, cfg.tp):
        return "parallelism", (f"TP={cfg.tp} does not divide the {model.heads} attention heads "
                               f"({model.kv_heads} KV heads) of {model.id}")
    if cfg.pp > model.layers:
        return "parallelism", f"PP={cfg.pp} exceeds the {model.layers} layers of {model.id}: every pipeline stage needs a layer"
    return None


def node_size(gpu: GpuSpec, node_limit: int | None) -> int:
    """GPUs in one scale-up domain: the GPU's own (NVLink/ICI) limit or the fleet's smaller one."""
    return min(gpu.max_gpus_per_node, node_limit or gpu.max_gpus_per_node)


def context_problem(model: ModelSpec, wl: Workload) -> str:
    """vLLM refuses requests longer than max_model_len; plan for the p99 prompt plus the p99 output."""
    longest = int(np.quantile(wl.in_grid, 0.99) + np.quantile(wl.out_grid, 0.99))
    if longest <= model.max_context:
        return ""
    return (f"requests of up to {longest:,} tokens (p99 prompt + p99 output) exceed the {model.max_context:,}-token "
            f"context limit of {model.id}: cap the lengths or choose a longer-context model")


def _does_not_fit(tier, model, gpu, base, knobs, node_limit, price, wl: Workload, tp: int | None = None) -> TierPlan:
    """The weights do not fit: at the largest TP of one scale-up domain, or at the TP the profile
    asks for (then the smallest TP that fits is the first advice)."""
    chosen = tp is not None
    limit = node_size(gpu, node_limit)
    tp = tp if chosen else max([d for d in TP_DEGREES if d <= limit and tp_divides(model, d)] or [1])
    p = replica_params(model, gpu, _with(base, tp=tp), knobs)
    mem = memory_per_gpu(p)
    short_gb = float(mem["shortfall"]) / GB
    fitting = fitting_tp_degrees(model, gpu, base, knobs, node_limit) if chosen else []
    advice = (f"use TP={fitting[0]} (the smallest that fits; TP 'auto' picks it), quantize, or use a larger GPU" if fitting
              else "quantize, raise PP, or use a larger GPU")
    reason = (
        f"{model.id} {base.weights} does not fit on {gpu.id} {'at' if chosen else 'even at'} TP={tp} (memory capacity bound): "
        f"weights need {float(mem['weights']) / GB:.1f} GB per GPU (plus {float(mem['other']) / GB:.1f} GB other), "
        f"{short_gb:.1f} GB over the {float(mem['budget']) / GB:.1f} GB budget; {advice}"
    )
    too_long = context_problem(model, wl)
    if too_long:
        reason += f"; also, {too_long}"
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
    wl = workload_of(scenario)
    return assemble(scenario, plan_tiers(scenario, TIERS, custom_gpus, custom_models, calibration, wl), wl)


def workload_of(scenario: Scenario) -> Workload:
    return Workload(scenario.load.input_len, scenario.load.output_len)


def plan_tiers(scenario: Scenario, tiers: Iterable[str], custom_gpus: Iterable[GpuSpec] = (), custom_models: Iterable[ModelSpec] = (),
               calibration: Calibration | None = None, wl: Workload | None = None) -> list[TierPlan]:
    """The plans of the named tiers: each tier's model on the scenario's fleet (the tiers are
    independent, so they can be planned apart and put together with `assemble`). `wl`: the
    scenario's workload when the caller has it (its prompt pools and capacities are kept on it)."""
    gpus, models = list(custom_gpus), list(custom_models)
    gpu = catalog.get_gpu(scenario.fleet.gpu, gpus)
    wl = wl or workload_of(scenario)
    planned = [plan_tier(scenario, tier, catalog.get_model(getattr(scenario.models, tier), models), gpu, wl, calibration) for tier in tiers]
    for t in planned:
        _mark_trust(t, calibration or shipped_calibration())
    return planned


def _mark_trust(t: TierPlan, calibration: Calibration) -> None:
    """The error band that applies to the tier's numbers and what stands behind it."""
    t.validated = trust.validated(calibration, t.gpu.family, t.model.family, t.config.engine)
    utilization = t.point.utilization if t.feasible and t.point is not None else None
    t.error_pct = trust.error_band(calibration, t.validated, utilization)


def assemble(scenario: Scenario, tiers: Iterable[TierPlan], wl: Workload | None = None) -> Plan:
    """The plan made of its tiers' plans, in tier order; `wl` as for plan_tiers."""
    wl = wl or workload_of(scenario)
    ordered = sorted(tiers, key=lambda t: TIERS.index(t.tier))
    return Plan(scenario=scenario, workload=wl, peak_rate_rps=scenario.load.peak_rate_rps, tiers=ordered, caveats=load_caveats(wl))
