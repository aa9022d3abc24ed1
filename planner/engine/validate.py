"""Compare predictions with measurements (`planner validate`); the fit to them is in fit.py."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from planner.engine import catalog
from planner.engine.finite_run import finite_run_point, past_capacity, rate_run_point
from planner.engine.knobs import Calibration
from planner.engine.measurements import Measurement, MeasurementSet
from planner.engine.offline import OperatingPoint
from planner.engine.roofline import ServingConfig, replica_params
from planner.engine.scenario import LengthDist
from planner.engine.serving import Workload, concurrency_point, offline_point, rate_point
from planner.engine.specs import GpuSpec, ModelSpec
from planner.engine.startup import as_benchmarked
from planner.engine.trust import FINITE_RUNS, LOAD_BANDS, load_band

METRIC_GROUPS = {
    "throughput": ("output_tok_s", "total_tok_s", "requests_per_s"),
    "tpot": ("tpot_ms_mean", "tpot_ms_p50", "itl_ms_mean", "itl_ms_p50"),
    "ttft": ("ttft_ms_mean", "ttft_ms_p50"),
    "e2e": ("e2e_ms_mean", "e2e_ms_p50"),
    # the tails: p90 and p99 of every latency
    "p99": ("ttft_ms_p90", "tpot_ms_p90", "e2e_ms_p90", "ttft_ms_p99", "tpot_ms_p99", "e2e_ms_p99"),
}


def is_finite_run(m: Measurement) -> bool:
    """A run of a stated number of prompts sent at once (finite_run.py). A run of a stated number
    sent at a rate past the replica's capacity is simulated the same way (RowResult.finite_run),
    but only the prediction can tell."""
    return m.mode == "offline" and m.num_prompts is not None


@dataclass
class RowResult:
    row: Measurement
    predicted: float | None
    reason: str = ""
    utilization: float | None = None  # the predicted share of the replica's capacity the row ran at
    finite_run: bool = False  # predicted by simulating the run to its end (finite_run.py)

    @property
    def load_band(self) -> str:
        """Where the row sits on the latency-load curve: errors grow toward capacity. A finite run
        sits on no point of it (it starts full and drains to empty)."""
        if self.finite_run or is_finite_run(self.row):
            return FINITE_RUNS
        if self.row.mode == "offline":
            return LOAD_BANDS[-1]
        return "unknown" if self.utilization is None else load_band(self.utilization)

    @property
    def error_pct(self) -> float | None:
        if self.predicted is None or self.row.value == 0:
            return None
        return (self.predicted / self.row.value - 1.0) * 100.0


def _config_key(m: Measurement) -> tuple:
    return (m.model, m.gpu, m.tp, m.pp or 1, m.weights, m.kv, m.mode, m.rate, m.concurrency, m.input_len, m.output_len,
            m.max_seqs, m.max_batched_tokens, m.prefix_hit or 0.0, m.engine, m.metric not in MEANS_ONLY_METRICS,
            m.input_dist, m.output_dist, m.input_p90, m.output_p90, m.num_prompts, m.gpu_mem_util)


def _resolve(m: Measurement, base_dir: Path, cache: dict) -> tuple[ModelSpec, GpuSpec]:
    """Catalog entries of a row; failures are cached too (an unknown name costs a fuzzy match)."""
    key = (m.model, m.gpu)
    if key not in cache:
        try:
            cache[key] = (catalog.get_model(m.model, base_dir=base_dir), catalog.get_gpu(m.gpu))
        except ValueError as exc:
            cache[key] = str(exc)
    if isinstance(cache[key], str):
        raise ValueError(cache[key])
    return cache[key]


def _metric(point, m: Measurement, mean_in: float, mean_out: float) -> float | None:
    name = m.metric
    if name in ("output_tok_s", "total_tok_s", "requests_per_s"):
        rps = point.requests_per_s
        return {"output_tok_s": rps * mean_out, "total_tok_s": rps * (mean_in + mean_out), "requests_per_s": rps}[name]
    kind, _, stat = name.partition("_ms_")
    if kind == "itl" and stat in ("p90", "p99"):
        return None  # per-token gaps' tails (a decode step that carried a prompt) are not per-request TPOT
    if kind == "itl" and stat == "mean" and point.itl_mean_s is not None:
        return point.itl_mean_s * 1e3  # a finite run's gaps between tokens, over all requests
    kind = "tpot" if kind == "itl" else kind
    dist = {"ttft": point.ttft_s, "tpot": point.tpot_s, "e2e": point.e2e_s}[kind]
    value = dist.get(stat)
    return value * 1e3 if value is not None else None


MEANS_ONLY_METRICS = frozenset(("output_tok_s", "total_tok_s", "requests_per_s", "ttft_ms_mean", "tpot_ms_mean", "itl_ms_mean",
                                "e2e_ms_mean"))  # what offline_point and the means-only rate/closed-loop points report


def offline_latency_reason(m: Measurement) -> str:
    """Offline rows the steady-state model does not pin down. A burst benchmark's TTFT and
    end-to-end include the wait behind every request sent at once (their number is not in the row),
    and past the compute knee its TPOT grows with the engine's running-batch cap while throughput
    does not, so an offline TPOT/ITL needs the row's max_seqs. A run of a stated number of prompts
    (`vllm bench serve` at an infinite rate) is simulated as it ran (finite_run.py)."""
    if m.mode != "offline" or is_finite_run(m):
        return ""
    kind = m.metric.partition("_ms_")[0]
    if kind in ("ttft", "e2e"):
        return f"offline {m.metric} includes the wait behind every request sent at once; measure it with mode rate or concurrency"
    if kind in ("tpot", "itl") and m.max_seqs is None:
        return f"offline {m.metric} is set by the engine's running-batch cap: fill in max_seqs"
    return ""


def short_run_tail_reason(m: Measurement) -> str:
    """A tail percentile of a run too short to have one: the p-th percentile of N requests has
    N (1 - p) requests above it, and below one it is the run's slowest request or two (numpy's
    interpolation between the largest values). That is a one-off (the start-up burst, kernels
    compiled at first use) rather than the long run's tail the planner predicts."""
    stat = m.metric.partition("_ms_")[2]
    if m.num_prompts is None or not stat.startswith("p") or not stat[1:].isdigit():
        return ""
    above_share = 1.0 - int(stat[1:]) / 100.0
    if m.num_prompts * above_share >= 1.0:
        return ""
    return (f"{m.metric} of a run of {m.num_prompts} requests is its slowest one or two, a one-off rather than a "
            f"percentile; a {stat} needs at least {round(1.0 / above_share)} requests")


def evaluate_rows(data: MeasurementSet, calibration: Calibration | None = None, base_dir: Path | None = None) -> list[RowResult]:
    """Predict every row; rows sharing a configuration share one prediction."""
    return _evaluate_rows(data.rows, calibration or Calibration(), base_dir or data.path.parent, {})


def _evaluate_rows(rows, calibration: Calibration, base_dir: Path, specs: dict, scored_only: bool = False,
                   saturated: bool = True) -> list[RowResult]:
    """`scored_only`: skip the prediction of rows whose metric no prediction reports (percentiles:
    validation predicts means), which never score; they come back unpredicted, as they would.
    `saturated=False` (the fit): a rate past the replica's capacity comes back unpredicted
    (saturated_point), and one with a count of prompts is not simulated as a run (rate_run_point)."""
    points: dict = {}
    out = []
    for m in rows:
        if scored_only and m.metric not in MEANS_ONLY_METRICS:
            out.append(RowResult(m, None, f"model gives no {m.metric}"))
            continue
        if unidentified := offline_latency_reason(m) or short_run_tail_reason(m):
            out.append(RowResult(m, None, unidentified))
            continue
        key = _config_key(m)
        if key not in points:
            points[key] = _predict_row(m, calibration, base_dir, specs, runs=saturated)
        point, reason, mean_in, mean_out = points[key]
        if point is None or (not saturated and not point.stable):
            out.append(RowResult(m, None, reason))
            continue
        value = _metric(point, m, mean_in, mean_out)
        if value is None or not np.isfinite(value):
            out.append(RowResult(m, None, reason or _no_metric_reason(m)))
        else:
            out.append(RowResult(m, float(value), utilization=float(point.utilization), finite_run=point.finite_run))
    return out


def length_of(kind: str, mean: float, p90: float | None) -> LengthDist:
    return LengthDist(kind=kind, mean=mean, p90=p90 if kind == "lognormal" else None)


def _no_metric_reason(m: Measurement) -> str:
    if m.metric in ("itl_ms_p90", "itl_ms_p99"):
        return f"model gives per-request TPOT percentiles, not the per-token {m.metric} tail"
    return f"model gives no {m.metric} in {m.mode} mode"


def _predict_row(m: Measurement, calibration: Calibration, base_dir: Path, specs: dict, runs: bool = True):
    """`runs=False` (the fit): a rate past capacity stays unstable, not simulated as a run."""
    try:
        model, gpu = _resolve(m, base_dir, specs)
    except ValueError as exc:
        return None, str(exc).split(";")[0], 0.0, 0.0
    # empty precisions: predict's defaults (the model's dtype; bf16 KV, fp16 for fp16 models)
    weights = m.weights or model.dtype
    kv = m.kv or ("fp16" if model.dtype == "fp16" else "bf16")
    memory = {"gpu_mem_util": m.gpu_mem_util} if m.gpu_mem_util is not None else {}  # else predict's default
    cfg = ServingConfig(tp=m.tp, pp=m.pp or 1, weights=weights, kv=kv, max_num_seqs=m.max_seqs,
                        max_num_batched_tokens=m.max_batched_tokens, prefix_hit=m.prefix_hit or 0.0, engine=m.engine,
                        **memory)
    p = replica_params(model, gpu, cfg, calibration.for_family(gpu.family, m.engine, model.family))
    # percentiles need the sampled distributions; means come from the fixed point alone
    detailed = m.metric not in MEANS_ONLY_METRICS
    wl = Workload(length_of(m.input_dist, m.input_len, m.input_p90), length_of(m.output_dist, m.output_len, m.output_p90))
    try:
        if is_finite_run(m):
            point = finite_run_point(p, wl, int(m.num_prompts or 0))
        elif m.mode == "offline":
            point = offline_point(p, wl)
        elif m.mode == "concurrency":
            point = concurrency_point(p, wl, int(m.concurrency or 1), detailed=detailed)
            point = as_benchmarked(p, wl, point, int(m.concurrency or 1), m.num_prompts)
        else:
            point = rate_point(p, wl, float(m.rate or 0.0), detailed=detailed)
            if runs:
                point = rate_run_point(p, wl, point, float(m.rate or 0.0), m.num_prompts)
    except (ValueError, ZeroDivisionError) as exc:
        return None, str(exc), 0.0, 0.0
    if not point.stable:
        if saturated := saturated_point(point):
            return saturated, point.note, wl.mean_in, wl.mean_out
        return None, point.note or "does not fit or is unstable", 0.0, 0.0
    return point, "", wl.mean_in, wl.mean_out


def saturated_point(point: OperatingPoint) -> OperatingPoint | None:
    """An open-loop rate at or above the replica's maximum, as a benchmark measures it: requests
    arrive faster than they finish, so the engine always has a queue and serves at its offline
    throughput (TensorRT-LLM's rate sweep of Llama 3.1 70B on 4 x H100 offers 32 req/s and
    completes 16). Its throughput is that maximum; its latencies grow with the run's length and
    have no steady state to predict. None for any other unstable point."""
    if not past_capacity(point):
        return None
    return replace(point, requests_per_s=point.max_rate_rps)


def summarize(results: list[RowResult]) -> dict:
    """Absolute % error per metric and overall, of the rows of a server in its steady state; runs
    of N prompts sent at once apart (`finite_runs`), as the bands a plan shows leave them out."""
    out = _summary([r for r in results if r.load_band != FINITE_RUNS])
    finite = [r for r in results if r.load_band == FINITE_RUNS]
    if any(r.error_pct is not None for r in finite):
        out["finite_runs"] = _summary(finite)
    return out


def _summary(results: list[RowResult]) -> dict:
    per_metric: dict[str, list[float]] = {}
    for r in results:
        if r.error_pct is not None:
            per_metric.setdefault(r.row.metric, []).append(abs(r.error_pct))
    summary = {k: _stats(v) for k, v in sorted(per_metric.items())}
    overall = _stats([x for v in per_metric.values() for x in v])
    return {"summary": summary, "overall": overall}


def group_errors(results: list[RowResult]) -> dict[str, float]:
    """Median absolute % error per metric group (the error bands the plan shows): the rows of a
    server in its steady state."""
    out = {}
    for group, metrics in METRIC_GROUPS.items():
        errs = [abs(r.error_pct) for r in results if r.error_pct is not None and r.row.metric in metrics
                and r.load_band != FINITE_RUNS]
        if errs:
            out[group] = float(np.median(errs))
    return out


def validated_families(results: list[RowResult], base_dir: Path | None = None) -> tuple[list[str], list[str]]:
    """GPU families and model families with at least one scored measurement: where the error
    bands were measured rather than assumed."""
    gpus, models, cache = set(), set(), {}
    for r in results:
        if r.error_pct is None:
            continue
        model, gpu = _resolve(r.row, base_dir or Path.cwd(), cache)
        gpus.add(gpu.family)
        models.add(model.family)
    return sorted(gpus), sorted(models)


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median_ape": None, "mean_ape": None}
    arr = np.asarray(values)
    return {"n": int(arr.size), "median_ape": round(float(np.median(arr)), 2), "mean_ape": round(float(arr.mean()), 2)}

