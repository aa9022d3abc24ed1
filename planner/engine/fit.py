"""Fit the calibration knobs of each GPU family to measurements (`planner calibrate`).

Levenberg-Marquardt (Marquardt 1963) on the log ratios predicted / measured, with two changes for
measurement files: each metric counts as much as any other (600 throughput rows must not drown 50
TTFT rows), and a soft-L1 loss (the robust loss of scipy's least_squares) so that a few rows the
model cannot explain pull the knobs no harder than rows it can. Knobs move in a transformed space
(logit of an efficiency within its range, log of an overhead), so every step stays in bounds.

The Jacobian is taken by finite differences: one prediction of the family's rows per knob, run in
parallel worker processes when the rows are many. Before fitting, the first Jacobian shows which
knobs the rows identify: a knob that moves no prediction, or whose effect the other knobs already
reproduce, keeps its starting value and is reported with the rows that would identify it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from planner.engine import catalog
from planner.engine.catalog import gpu_family_of
from planner.engine.first_use_fit import MAX_MS as MAX_FIRST_USE_MS
from planner.engine.first_use_fit import fit_first_use
from planner.engine.knobs import ENGINE_KNOBS, Calibration, Knobs, upper_median
from planner.engine.measurements import Measurement, MeasurementSet
from planner.engine.validate import MEANS_ONLY_METRICS, _evaluate_rows, is_finite_run


@dataclass(frozen=True)
class KnobRange:
    """Where a fitted knob may go. Efficiencies: a fraction of peak (logit-transformed); overheads:
    a time >= 0 (log(x + offset)-transformed, offset about the smallest value that matters)."""

    low: float
    high: float
    offset: float | None = None  # None: an efficiency

    def to_u(self, x: float) -> float:
        if self.offset is None:
            f = min(max((x - self.low) / (self.high - self.low), 1e-3), 1 - 1e-3)
            return math.log(f / (1 - f))
        return math.log(min(max(x, self.low), self.high) + self.offset)

    def from_u(self, u: float) -> float:
        if self.offset is None:
            return self.low + (self.high - self.low) / (1 + math.exp(-u))
        return min(max(math.exp(u) - self.offset, self.low), self.high)

    def at(self, x: float, edge: float) -> bool:
        """Whether x sits at `edge` on the fit's own scale: within 0.5% of the range for an
        efficiency, within 1% of (x + offset) for an overhead (2 ms is not the bottom of 0-1000 ms)."""
        if self.offset is None:
            return abs(x - edge) <= 0.005 * (self.high - self.low)
        return abs(math.log((x + self.offset) / (edge + self.offset))) <= 0.01

    def u_bounds(self) -> tuple[float, float]:
        if self.offset is None:
            return self.to_u(self.low), self.to_u(self.high)
        return math.log(self.low + self.offset), math.log(self.high + self.offset)


# Ranges of the published fits in the modeling digest §9.5 (BLIS, aiconfigurator, DistServe and
# vLLM benchmarks): a fit that wants to leave them is fitting noise or a modelling gap.
KNOB_RANGES = {
    # efficiencies as fractions of the GPU's measured achievable matmul and bandwidth (knobs.py)
    "eta_weights": KnobRange(0.5, 1.0),
    "eta_kv": KnobRange(0.35, 1.0),
    "eta_compute": KnobRange(0.35, 1.0),
    "eta_attention": KnobRange(0.35, 1.0),
    # grouped expert GEMMs against dense ones: near 1 for wide experts at large batches; about
    # 0.15-0.5 for DeepSeek-V3's at TP 8 (aiconfigurator's tables, knobs.py)
    "eta_moe": KnobRange(0.1, 1.0),
    # small-message all-reduce: nccl-tests 15.6-25 us for 8 GPUs (aiconfigurator's H100, H200, B200
    # tables); engines' own one-shot kernels run under 10 us
    "allreduce_latency_us": KnobRange(2.0, 40.0, offset=2.0),
    "step_overhead_us": KnobRange(20.0, 2000.0, offset=20.0),
    "layer_overhead_us": KnobRange(0.0, 40.0, offset=1.0),
    "moe_layer_overhead_us": KnobRange(0.0, 400.0, offset=5.0),
    "seq_overhead_us": KnobRange(1.0, 40.0, offset=1.0),
    # an HTTP server's per-request cost (BLIS alpha0 15.6 ms); DeepSeek-R1's 100-150 ms is its own
    # (knobs.py) and would set every other model's on that engine
    "api_overhead_ms": KnobRange(0.0, 40.0, offset=0.5),
}
# Knobs fitted after these, each by its own rule, whose ranges calibrate reports too: a cold
# server's first burst (first_use_fit).
LATER_KNOB_RANGES = {"first_use_ms": KnobRange(0.0, MAX_FIRST_USE_MS, offset=500.0)}

# The rows that pin each knob down, for the report of a knob the file does not identify.
IDENTIFYING_ROWS = {
    "eta_weights": "decode rows at small batches (TPOT/ITL at concurrency 1 or a low rate)",
    "eta_kv": "TPOT/ITL rows with long contexts (several thousand tokens) at a moderate batch",
    "eta_compute": "offline throughput rows at large batches or with long prompts (compute-bound steps)",
    "eta_attention": "TTFT rows with long prompts (8k tokens or more) at low load",
    "eta_moe": "TTFT rows of MoE models with prompts of thousands of tokens, or their offline throughput",
    "allreduce_latency_us": "TPOT rows at low concurrency of one model at several tensor-parallel degrees",
    "step_overhead_us": "TPOT/ITL rows of a small model at concurrency 1 (the fixed cost per engine step)",
    "layer_overhead_us": "TPOT rows at concurrency 1 of models with different layer counts",
    "moe_layer_overhead_us": "TPOT rows at low concurrency of MoE models next to dense ones",
    "seq_overhead_us": "throughput rows at running batches of hundreds of sequences",
    "api_overhead_ms": "TTFT rows at low load with short prompts",
}

MIN_ROWS_PER_FAMILY = 8
SOFT_L1_SCALE = 0.03  # log ratio where the loss turns from quadratic to linear (~3 %)
MISSING_RESIDUAL = 1.0  # a row the trial knobs make unpredictable (does not fit, unstable): e-fold off
STEP_U = 0.15  # finite-difference step in the transformed space
FLAT_SENSITIVITY = 0.01  # |d log prediction / d u| below this on every row: the knob moves nothing
MIN_MOVING_ROWS = 3  # a knob fewer rows move would be fitted to their noise (one near-capacity TTFT)
# Knobs only some metrics identify: the per-request cost is TTFT's, and end-to-end rows of long
# outputs (vLLM's MI300X sweeps, 17-50 s) would otherwise set it to whatever their decode lacks.
IDENTIFYING_METRICS = {"api_overhead_ms": frozenset(("ttft_ms_mean",))}
# Metrics whose rows may not pull a knob, though it moves their predictions. What a TTFT row
# measures above the engine's prefill is mostly the request's own cost outside the steps (HTTP, the
# chat template, tokenising), which the model holds only as a per-request cost; and each metric
# weighs as much in the fit as any other, so a few TTFT rows pulling the GEMM efficiency slowed
# every prefill to pay for that cost (vLLM on Hopper fitted 0.49 against 0.71 for SGLang and
# TensorRT-LLM on the same kernels). Throughput rows of compute-bound steps set it instead.
BLIND_METRICS = {"eta_compute": frozenset(("ttft_ms_mean",))}
TIED_SHARE = 0.1  # a knob's effect that the others reproduce to all but this share is not its own
MAX_ITERATIONS = 4  # most of the gain comes in the first few; each costs one prediction per knob
# Pull toward the starting knobs (a Gaussian prior in the transformed space): with few rows the fit
# stays near published values instead of trading one knob against another to chase noise.
PRIOR_WEIGHT = 0.2
PARALLEL_MIN_PREDICTION_S = 0.2  # one prediction of the rows slower than this: predict in parallel


@dataclass
class FamilyFit:
    family: str
    rows: int
    knobs: Knobs
    loss_before: float
    loss_after: float
    predictions: int = 0
    unidentified: dict[str, str] = field(default_factory=dict)
    # the unidentified knobs that (almost) no row moves with: the rows are indifferent to their value
    flat: set[str] = field(default_factory=set)


class _Rows:
    """One family's scorable rows and the predictions of them under trial knobs. Catalog lookups are
    shared between trials (each process keeps its own). The rows of a model family with its own
    per-request cost (`request_families`) are compared with that cost profiled out: added to
    their TTFT and end-to-end predictions at each trial, as the median of what their TTFT rows at
    low load lack, so the knobs are fitted to everything else."""

    def __init__(self, rows: tuple[Measurement, ...], base_dir: Path, request_families: frozenset[str] = frozenset()):
        # a finite run is simulated step by step (finite_run.py), too slow to predict at every trial
        # of a fit: validation and cross-validation score it, the knobs come from the other rows
        self.rows = tuple(m for m in rows if m.metric in MEANS_ONLY_METRICS and m.value > 0 and not is_finite_run(m))
        self.base_dir = base_dir
        self.specs: dict = {}
        families = [model_family_of(m, base_dir) for m in self.rows]
        self.request_groups = {f: np.array([g == f for g in families]) for f in request_families if f in families}
        self.is_ttft = np.array([m.metric == "ttft_ms_mean" for m in self.rows], dtype=bool)
        self.carries_ttft = self.is_ttft | np.array([m.metric == "e2e_ms_mean" for m in self.rows], dtype=bool)
        counts: dict[str, int] = {}
        for m in self.rows:
            counts[m.metric] = counts.get(m.metric, 0) + 1
        # every metric weighs the same in all
        self.weights = np.array([1.0 / counts[m.metric] for m in self.rows]) / max(len(counts), 1)
        self.measured = np.array([m.value for m in self.rows], dtype=float)
        # per knob of BLIND_METRICS, the rows that may not pull it
        self.blind = {knob: np.array([m.metric in metrics for m in self.rows], dtype=bool)
                      for knob, metrics in BLIND_METRICS.items()}

    def log_ratios(self, knobs: Knobs) -> np.ndarray:
        """log(predicted / measured) per row; NaN where the knobs give no prediction."""
        # a run offered more than the replica serves is scored on the throughput it saturates at,
        # but does not set the knobs: how close a run past capacity comes to the engine's offline
        # throughput depends on how long it ran, and held out, fitting to them read SGLang's
        # DeepSeek on MI300X and MI325X further off (their CDNA3 knobs moved to MLPerf's Llama rows)
        results = _evaluate_rows(self.rows, Calibration(default=knobs), self.base_dir, self.specs, saturated=False)
        pred = np.array([r.predicted if r.predicted else np.nan for r in results], dtype=float)
        if self.request_groups:
            light = np.array([r.utilization is not None and r.utilization < LIGHT_LOAD for r in results], dtype=bool)
            for group in self.request_groups.values():
                cost = _request_cost_ms(self.measured, pred, group & self.is_ttft & light)
                pred = np.where(group & self.carries_ttft, pred + cost, pred)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(pred / self.measured)

    def median_loss(self, r: np.ndarray) -> float:
        """What the fit is judged by: the median absolute log error per metric (plus a quarter of
        the mean, so a tail of bad rows counts), averaged over metrics so 600 throughput rows do
        not drown 60 latency rows, plus a penalty for rows the knobs make unpredictable."""
        per_metric: dict[str, list[float]] = {}
        for m, x in zip(self.rows, r):
            if np.isfinite(x):
                per_metric.setdefault(m.metric, []).append(abs(float(x)))
        if not per_metric:
            return math.inf
        usable = sum(len(v) for v in per_metric.values())
        spread = [float(np.median(v)) + 0.25 * float(np.mean(v)) for v in per_metric.values()]
        return float(np.mean(spread)) + 0.5 * (1 - usable / len(self.rows))


# A model family's own per-request cost (Calibration.model_request_ms) is fitted from its TTFT rows
# at light load, where queueing does not stand in for it, and only where two publishers or more
# measured them: one lab's gateway or client must not become the model's.
LIGHT_LOAD = 0.5
MIN_REQUEST_ROWS = 6
MIN_REQUEST_PUBLISHERS = 2


def model_family_of(m: Measurement, base_dir: Path) -> str:
    """The row's model family ('' where the model cannot be resolved: such rows are not predicted)."""
    try:
        return catalog.get_model(m.model, base_dir=base_dir).family
    except (ValueError, OSError):
        return ""


def _request_cost_ms(measured: np.ndarray, predicted: np.ndarray, rows: np.ndarray) -> float:
    """The median of what the predicted TTFT of `rows` lacks (ms), never below zero."""
    lack = (measured - predicted)[rows]
    lack = lack[np.isfinite(lack)]
    return max(float(np.median(lack)), 0.0) if lack.size else 0.0


def publisher(url: str) -> str:
    """Who published a row: the host and, on a code host, the repository (one lab's pages count once)."""
    host, _, path = url.partition("://")[2].partition("/")
    return "/".join([host, *path.split("/")[:2]])


def _enough(rows: list[Measurement]) -> bool:
    return len(rows) >= MIN_REQUEST_ROWS and len({publisher(m.url) for m in rows}) >= MIN_REQUEST_PUBLISHERS


def _run_of(m: Measurement) -> tuple:
    """What identifies the run a row reports on: its source and every setting, not the metric."""
    return (m.url, m.model, m.gpu, m.tp, m.pp, m.weights, m.kv, m.engine, m.mode, m.rate, m.concurrency,
            m.input_len, m.output_len, m.max_seqs, m.max_batched_tokens, m.gpu_mem_util, m.num_prompts)


def _light_ttft_rows(data: MeasurementSet, calibration: Calibration, gpu_families: set[str] | None):
    """One TTFT row per run that reports a mean TTFT, predicted at light load under `calibration`
    (without model costs), with its model family, measured and predicted value: the run's median
    where it reports one too, else its mean. A short run's first requests can pay once for what
    the engine compiles on first use, which moves its mean and not its median (InferenceX's
    DeepSeek runs at 4 clients: mean 158-450 ms, median 85-167 ms, p90 up to 1.8 s on MI300X)."""
    ttft = [m for m in data.rows if m.metric in ("ttft_ms_mean", "ttft_ms_p50") and m.value > 0
            and not is_finite_run(m) and (gpu_families is None or gpu_family_of(m.gpu) in gpu_families)]
    per_run = {_run_of(m): m for m in ttft if m.metric == "ttft_ms_mean"}
    per_run.update({run: m for m in ttft if m.metric == "ttft_ms_p50" and (run := _run_of(m)) in per_run})
    rows = tuple(per_run.values())
    results = _evaluate_rows(rows, calibration.model_copy(update={"model_request_ms": {}}), data.path.parent, {})
    return [(m, model_family_of(m, data.path.parent), m.value, r.predicted) for m, r in zip(rows, results)
            if r.predicted and r.utilization is not None and r.utilization < LIGHT_LOAD]


def request_cost_families(data: MeasurementSet, calibration: Calibration, gpu_families: set[str] | None = None) -> frozenset[str]:
    """Model families with enough TTFT rows at light load (MIN_REQUEST_ROWS, from
    MIN_REQUEST_PUBLISHERS publishers) under `calibration` to carry a per-request cost of their own."""
    found: dict[str, list[Measurement]] = {}
    for m, family, _, _ in _light_ttft_rows(data, calibration, gpu_families):
        if family:
            found.setdefault(family, []).append(m)
    return frozenset(f for f, ms in found.items() if _enough(ms))


def model_request_costs(data: MeasurementSet, calibration: Calibration, families: frozenset[str],
                        gpu_families: set[str] | None = None) -> dict[str, float]:
    """Per model family in `families`, the median of what its TTFT rows at light load lack under
    `calibration` (ms, to a tenth), over the rows on `gpu_families`; none where that is zero or
    those rows are too few or from one publisher."""
    light = _light_ttft_rows(data, calibration, gpu_families)
    out = {}
    for family in sorted(families):
        mine = [(m, v, p) for m, f, v, p in light if f == family]
        if not _enough([m for m, _, _ in mine]):
            continue
        measured, predicted = np.array([v for _, v, _ in mine]), np.array([p for _, _, p in mine])
        cost = _request_cost_ms(measured, predicted, np.ones(len(mine), dtype=bool))
        if cost > 0:
            out[family] = round(cost, 1)
    return out


_WORKER_ROWS: _Rows | None = None


def _worker_init(rows: _Rows) -> None:
    global _WORKER_ROWS
    _WORKER_ROWS = rows


def _worker_log_ratios(knobs: Knobs) -> np.ndarray:
    assert _WORKER_ROWS is not None
    return _WORKER_ROWS.log_ratios(knobs)


class _Evaluator:
    """Predicts the rows for several knob sets, in worker processes once one prediction is slow
    enough for them to pay (forking costs ~50 ms; closed-loop rows cost ~25 ms each)."""

    def __init__(self, rows: _Rows, parallel: bool | None):
        self.rows = rows
        self.count = 0
        self.parallel = parallel
        self.pool = None

    def __call__(self, knob_sets: list[Knobs]) -> list[np.ndarray]:
        if self.pool is None and len(knob_sets) > 1 and self.parallel is not False:
            self._start_pool()
        self.count += len(knob_sets)
        if self.pool is None or len(knob_sets) == 1:
            if self.parallel is None and self.count == 1:
                started = time.perf_counter()
                out = [self.rows.log_ratios(knob_sets[0])]
                self.parallel = time.perf_counter() - started > PARALLEL_MIN_PREDICTION_S
                return out
            return [self.rows.log_ratios(k) for k in knob_sets]
        return list(self.pool.map(_worker_log_ratios, knob_sets))

    def _start_pool(self) -> None:
        workers = min(os.cpu_count() or 1, 4)
        # fork only a single-threaded process: a lock held by another thread stays held in the child
        if (self.parallel and workers > 1 and threading.active_count() == 1
                and "fork" in multiprocessing.get_all_start_methods()):
            # fork: the workers inherit the imported engine and the rows (no re-import, no pickling)
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                            initializer=_worker_init, initargs=(self.rows,))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _objective(r: np.ndarray, usable: np.ndarray, weights: np.ndarray, pull: np.ndarray) -> float:
    """Weighted soft-L1 of the log ratios (a usable row without a prediction counts as
    MISSING_RESIDUAL) plus the prior's pull, `pull` the knobs' distance from the start in u."""
    x = np.where(np.isfinite(r), r, MISSING_RESIDUAL)[usable]
    z = (x / SOFT_L1_SCALE) ** 2
    return float(weights[usable] @ (2.0 * (np.sqrt(1.0 + z) - 1.0))) + PRIOR_WEIGHT * float(pull @ pull)


def _knobs_at(start: Knobs, names: list[str], u: np.ndarray) -> Knobs:
    return start.scaled(**{n: KNOB_RANGES[n].from_u(float(v)) for n, v in zip(names, u)})


def _jacobian(evaluate: _Evaluator, start: Knobs, names: list[str], u: np.ndarray, r0: np.ndarray,
              which: list[int]) -> np.ndarray:
    """d log prediction / d u for the knobs `which` (a column each), by forward differences."""
    steps = []
    for i in which:
        lo, hi = KNOB_RANGES[names[i]].u_bounds()
        steps.append(STEP_U if u[i] + STEP_U <= hi or u[i] - STEP_U < lo else -STEP_U)
    trials = []
    for i, h in zip(which, steps):
        v = u.copy()
        v[i] += h
        trials.append(_knobs_at(start, names, v))
    cols = [(r - r0) / h for r, h in zip(evaluate(trials), steps)]
    # a row that loses its prediction under a step says nothing about the slope
    jac = np.nan_to_num(np.column_stack(cols), nan=0.0, posinf=0.0, neginf=0.0)
    for col, i in enumerate(which):
        if names[i] in evaluate.rows.blind:
            jac[evaluate.rows.blind[names[i]], col] = 0.0
    return jac


def _identified(names: list[str], jac: np.ndarray, weights: np.ndarray,
                metrics: list[str] | None = None) -> tuple[list[int], dict[str, str], set[str]]:
    """Knobs the rows pin down. Flat: fewer than MIN_MOVING_ROWS rows (of the metrics that identify
    it, `metrics` naming each row's) move with the knob. Tied: its weighted
    column is (nearly) a combination of stronger knobs' columns, so the rows cannot tell them apart.
    Returns the indices of the identified knobs, the reason for each other one, and the flat ones."""
    scaled = jac * np.sqrt(weights)[:, None]
    norms = np.linalg.norm(scaled, axis=0)
    kept: list[int] = []
    why: dict[str, str] = {}
    flat: set[str] = set()
    for i in np.argsort(-norms):
        name = names[i]
        rows = np.abs(jac[:, i]) >= FLAT_SENSITIVITY
        kind = "row"
        if metrics is not None and name in IDENTIFYING_METRICS:
            rows &= np.array([m in IDENTIFYING_METRICS[name] for m in metrics], dtype=bool)
            kind = " or ".join(sorted(IDENTIFYING_METRICS[name])) + " row"
        moving = int(np.count_nonzero(rows))
        if moving < MIN_MOVING_ROWS:
            flat.add(name)
        if moving == 0:
            why[name] = f"no {kind}'s prediction moves with it; {IDENTIFYING_ROWS[name]} would identify it"
            continue
        if moving < MIN_MOVING_ROWS:
            rows_move = f"{kind} moves" if moving == 1 else f"{kind}s move"
            why[name] = (f"only {moving} {rows_move} with it, too few to tell it from their noise; "
                         f"{IDENTIFYING_ROWS[name]} would identify it")
            continue
        if kept:
            basis = scaled[:, kept]
            coef, *_ = np.linalg.lstsq(basis, scaled[:, i], rcond=None)
            left = np.linalg.norm(scaled[:, i] - basis @ coef)
            if left < TIED_SHARE * norms[i]:
                twin = names[kept[int(np.argmax(np.abs(coef)))]]
                why[name] = (f"these rows cannot tell it apart from {twin}; {IDENTIFYING_ROWS[name]} would identify it")
                continue
        kept.append(int(i))
    return sorted(kept), why, flat


# Knobs of the GPUs themselves, fitted on every engine's rows of a family and kept by each engine's
# own fit: a collective's latency is set by the link and its all-reduce kernels, and one engine's
# rows (often one model family at one TP) cannot tell it from that engine's per-layer costs (vLLM's
# MoE models at TP 8 on H200 fitted 35 us to it, which made every dense TP 8 decode slow).
GPU_KNOBS = ("allreduce_latency_us",)


def fit_family(data: MeasurementSet, family: str, start: Knobs, parallel: bool | None = None,
               names: list[str] | None = None, request_families: frozenset[str] = frozenset()) -> FamilyFit:
    """Fit `names` (every knob with a range unless given) to the rows, from `start`, with the
    per-request costs of `request_families` profiled out (_Rows)."""
    rows = _Rows(data.rows, data.path.parent, request_families)
    names = names or list(KNOB_RANGES)
    evaluate = _Evaluator(rows, parallel)
    try:
        return _fit(rows, evaluate, family, start, names)
    finally:
        evaluate.close()


def _fit(rows: _Rows, evaluate: _Evaluator, family: str, start: Knobs, names: list[str]) -> FamilyFit:
    u = np.array([KNOB_RANGES[n].to_u(getattr(start, n)) for n in names])
    (r,) = evaluate([start])
    usable = np.isfinite(r)
    w = rows.weights
    fit = FamilyFit(family, int(usable.sum()), start, rows.median_loss(r), math.inf)
    if not usable.any():
        fit.loss_after = fit.loss_before
        fit.unidentified = {n: "no row of this family can be predicted" for n in names}
        fit.flat = set(names)
        return fit
    u0 = u.copy()
    cost = _objective(r, usable, w, u - u0)
    jac = _jacobian(evaluate, start, names, u, r, list(range(len(names))))
    active, fit.unidentified, fit.flat = _identified(names, jac[usable], w[usable],
                                           [m.metric for m, ok in zip(rows.rows, usable) if ok])
    jac = jac[:, active]
    damping = 1e-2
    lo = np.array([KNOB_RANGES[n].u_bounds()[0] for n in names])
    hi = np.array([KNOB_RANGES[n].u_bounds()[1] for n in names])
    for _ in range(MAX_ITERATIONS):
        if not active:
            break
        x = np.where(np.isfinite(r), r, MISSING_RESIDUAL)[usable]
        # IRLS weights of the soft-L1 loss: rho'(x^2) = 1 / sqrt(1 + (x/s)^2)
        irls = w[usable] / np.sqrt(1.0 + (x / SOFT_L1_SCALE) ** 2)
        j = jac[usable]
        # Gauss-Newton Hessian and gradient of the soft-L1 term (d rho / dx = 2 x irls / s^2) and the prior's
        a = (2.0 / SOFT_L1_SCALE ** 2) * (j.T @ (irls[:, None] * j)) + 2.0 * PRIOR_WEIGHT * np.eye(len(active))
        g = (2.0 / SOFT_L1_SCALE ** 2) * (j.T @ (irls * x)) + 2.0 * PRIOR_WEIGHT * (u - u0)[active]
        # two damping levels at once (one per worker); keep the better if it lowers the cost
        candidates = []
        for lam in (damping, damping * 10.0):
            step = np.linalg.solve(a + lam * np.diag(np.diag(a)) + 1e-12 * np.eye(len(active)), -g)
            v = u.copy()
            v[active] = np.clip(u[active] + step, lo[active], hi[active])
            candidates.append((lam, v))
        results = evaluate([_knobs_at(start, names, v) for _, v in candidates])
        costs = [_objective(rr, usable, w, v - u0) for rr, (_, v) in zip(results, candidates)]
        best = int(np.argmin(costs))
        if costs[best] >= cost:
            damping *= 100.0
            if damping > 1e6:
                break
            continue
        lam, v = candidates[best]
        moved = float(np.max(np.abs(v - u)))
        improvement = (cost - costs[best]) / max(cost, 1e-12)
        u, r, cost = v, results[best], costs[best]
        damping = max(lam / 10.0, 1e-4)
        if improvement < 1e-3 or moved < 1e-3:
            break
        jac = _jacobian(evaluate, start, names, u, r, active)
    # the knobs the rows do not identify keep their start exactly (not through the transform's rounding)
    fitted = _knobs_at(start, [names[i] for i in active], u[active])
    fit.loss_after = rows.median_loss(r)
    # the soft-L1 optimum is not the median's: never hand back knobs that score worse than the start
    fit.knobs = fitted if fit.loss_after <= fit.loss_before else start
    fit.loss_after = min(fit.loss_after, fit.loss_before)
    fit.predictions = evaluate.count
    return fit


def knobs_at_bounds(calibration: Calibration) -> list[str]:
    """Fitted knobs that ended at an edge of their range (KnobRange.at), one line each: the
    rows wanted a value the range refuses, so a term the model lacks is being absorbed there.
    A knob at its published default was not moved by the fit and is not listed."""
    default = Knobs()
    pairs = [(family, k) for family, k in calibration.families.items()]
    pairs += [(f"{engine} {family}", k) for engine, fams in calibration.engines.items() for family, k in fams.items()]
    lines = []
    for where, knobs in pairs:
        for name, span in (KNOB_RANGES | LATER_KNOB_RANGES).items():
            value = getattr(knobs, name)
            if value == getattr(default, name):
                continue
            for edge, side in ((span.low, "bottom"), (span.high, "top")):
                if span.at(value, edge):
                    lines.append(f"{where} {name} = {value:g}, the {side} of its range {span.low:g}-{span.high:g}")
    return lines


def calibrate(data: MeasurementSet, start: Calibration | None = None, parallel: bool | None = None,
              families_only: set[str] | None = None) -> tuple[Calibration, dict[str, str], list[FamilyFit]]:
    """Fit knobs per GPU family on every engine's rows (the family's pooled knobs), then per engine
    and family starting from, and pulled toward, the pooled knobs (the GPU's own, GPU_KNOBS, stay
    as pooled): an engine with few rows on a family stays near what the family's other rows say.
    Families or pairs with too few usable rows
    keep their starting knobs, and knobs the rows do not identify keep theirs; both are named with
    the reason. `families_only` limits the fit to those GPU families (cross-validation refits only
    the families a held-out source touches). A model family whose TTFT rows two publications
    measured gets its own per-request cost (model_request_costs), profiled out while the knobs
    are fitted: DeepSeek-R1's 100-150 ms would otherwise set every model's on its engines."""
    start = start or Calibration()
    families: dict[str, list[Measurement]] = {}
    skipped: dict[str, str] = {}
    unknown: dict[str, int] = {}
    for m in data.rows:
        try:
            gpu = catalog.get_gpu(m.gpu)
        except ValueError:
            unknown[m.gpu] = unknown.get(m.gpu, 0) + 1
            continue
        if families_only is None or gpu.family in families_only:
            families.setdefault(gpu.family, []).append(m)
    for gpu_id, n in unknown.items():
        skipped[f"GPU {gpu_id!r}"] = f"not in the catalog: {n} row{'s' if n != 1 else ''} not used"
    own_cost = request_cost_families(data, start, set(families))
    pooled = dict(start.families)
    per_engine = {e: dict(f) for e, f in start.engines.items()}
    unidentified: dict[tuple[str, str], set[str]] = {}  # (engine, family) -> knobs its rows left at the start
    fits = []
    pooled_fits: dict[str, FamilyFit] = {}
    for family, rows in sorted(families.items()):
        fit = _fit_rows(data, rows, family, start.families.get(family, start.default), parallel, skipped,
                        request_families=own_cost)
        if fit is not None:
            fits.append(fit)
            pooled_fits[family] = fit
    for family, knobs in _least_favourable_where_flat(pooled_fits, skipped).items():
        pooled_fits[family].knobs = knobs
    for family, fit in sorted(pooled_fits.items()):
        rows = families[family]
        pooled[family] = fit.knobs
        engines = sorted({m.engine for m in rows})
        for engine in engines:
            engine_rows = [m for m in rows if m.engine == engine]
            if len(engines) == 1:
                per_engine.setdefault(engine, {})[family] = fit.knobs  # the pooled fit is this engine's
                unidentified[engine, family] = set(fit.unidentified)
                continue
            sub = _fit_rows(data, engine_rows, f"{engine} {family}", fit.knobs, parallel, skipped,
                            [n for n in KNOB_RANGES if n not in GPU_KNOBS], own_cost)
            if sub is not None:
                fits.append(sub)
                per_engine.setdefault(engine, {})[family] = sub.knobs
                unidentified[engine, family] = set(sub.unidentified)
    fitted = start.model_copy(update={"families": pooled, "engines": _own_host_costs(per_engine, unidentified)})
    costs = model_request_costs(data, fitted, own_cost, set(families))
    fitted = fitted.model_copy(update={"model_request_ms": costs})
    rows = tuple(m for m in data.rows if gpu_family_of(m.gpu) in families)
    return fit_first_use(rows, fitted, data.path.parent, skipped, set(families)), skipped, fits


def _least_favourable_where_flat(fits: dict[str, FamilyFit], skipped: dict[str, str]) -> dict[str, Knobs]:
    """Pooled knobs of the families whose rows leave an efficiency flat (no more than a row or two
    move with it), with that efficiency at the lowest value the families whose rows fit it reached:
    the rule for a GPU family nobody measured (Calibration.unmeasured_family), for a knob nobody
    measured on a family. The family's own rows do not mind; the rows it was not fitted to (another
    model family, another engine on the GPU) meet the least favourable measured value rather than
    the optimistic start (CDNA3 fitted on dense Llama rows alone kept a start of 0.8 for the expert
    GEMMs that every measured family put lower)."""
    out: dict[str, Knobs] = {}
    for knob in (n for n in KNOB_RANGES if n.startswith("eta_")):
        fitted = [getattr(f.knobs, knob) for f in fits.values() if knob not in f.unidentified]
        if not fitted:
            continue
        lowest = min(fitted)
        for family, f in fits.items():
            if knob in f.flat and getattr(f.knobs, knob) > lowest:
                out[family] = out.get(family, f.knobs).scaled(**{knob: lowest})
                why = skipped.get(f"{family} {knob}", "the rows do not identify it")
                skipped[f"{family} {knob}"] = f"{why}; set to {lowest:.3g}, the least favourable of the families that fit it"
    return out


def _own_host_costs(per_engine: dict[str, dict[str, Knobs]],
                    unidentified: dict[tuple[str, str], set[str]]) -> dict[str, dict[str, Knobs]]:
    """An engine's host-software knob (ENGINE_KNOBS) that its rows on a family leave unidentified
    takes the engine's own value from the families whose rows identify it (the median, the upper of
    two), not the family's pooled value: that is fitted on the other engines' rows (SGLang's
    DeepSeek rows set CDNA3's per-request cost, which vLLM's rows there cannot see)."""
    out = {e: dict(fs) for e, fs in per_engine.items()}
    for engine, fams in per_engine.items():
        for knob in ENGINE_KNOBS:
            known = upper_median(getattr(k, knob) for f, k in fams.items() if knob not in unidentified.get((engine, f), {knob}))
            if known is None:
                continue
            for f in fams:
                if knob in unidentified.get((engine, f), set()):
                    out[engine][f] = out[engine][f].scaled(**{knob: known})
    return out


def _fit_rows(data: MeasurementSet, rows: list[Measurement], name: str, start: Knobs, parallel: bool | None,
              skipped: dict[str, str], names: list[str] | None = None,
              request_families: frozenset[str] = frozenset()) -> FamilyFit | None:
    scorable = [m for m in rows if m.metric in MEANS_ONLY_METRICS and m.value > 0 and not is_finite_run(m)]
    if len(scorable) < MIN_ROWS_PER_FAMILY:
        skipped[name] = (f"only {len(scorable)} rows with a mean metric; need {MIN_ROWS_PER_FAMILY} "
                         "(offline throughput and low-load TPOT/TTFT rows identify the knobs)")
        return None
    fit = fit_family(replace(data, rows=tuple(rows), errors=()), name, start, parallel, names, request_families)
    for knob, why in fit.unidentified.items():
        skipped[f"{name} {knob}"] = why
    return fit
