"""One replica, one workload, one mode: the engine behind `planner predict` and `validate`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from planner.engine import trust
from planner.engine.feasibility import config_problem, context_problem, tp_divides
from planner.engine.finite_run import finite_run_point, rate_run_point
from planner.engine.knobs import Calibration, Knobs, shipped_calibration
from planner.engine.numbers import fmt_gb
from planner.engine.offline import admitted_context
from planner.engine.roofline import ServingConfig, kv_capacity_tokens, memory_per_gpu, replica_params
from planner.engine.scenario import LengthDist
from planner.engine.serving import OperatingPoint, Workload, concurrency_point, offline_point, rate_point
from planner.engine.specs import GB, GpuSpec, ModelSpec
from planner.engine.startup import as_benchmarked, has_startup_burst

TP_CHOICES = (1, 2, 4, 8, 16, 32, 64, 72)


class PredictError(ValueError):
    """A request the model cannot evaluate, with the reason in words."""


@dataclass(frozen=True)
class PredictRequest:
    model: ModelSpec
    gpu: GpuSpec
    config: ServingConfig
    input_len: LengthDist
    output_len: LengthDist
    mode: str  # offline | concurrency | rate
    concurrency: int = 0
    rate_rps: float = 0.0
    tp_auto: bool = False
    num_prompts: int | None = None  # a run of this many requests: sent at once (offline), by the clients, or at the rate

    @property
    def finite_run(self) -> bool:
        """N prompts sent at once (finite_run.py), not the steady state."""
        return self.mode == "offline" and self.num_prompts is not None


@dataclass
class Prediction:
    request: PredictRequest
    config: ServingConfig
    fits: bool
    reason: str
    memory_gb: dict
    point: OperatingPoint | None
    validated: dict = field(default_factory=dict)  # gpu_family / model_family / engine: measured or not
    error_pct: dict = field(default_factory=dict)  # expected median abs. % error per metric group
    first_use_ms: float | None = None  # what each request of a closed-loop run's start-up burst waits on a cold server


def smallest_fitting_tp(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs) -> int | None:
    for tp in TP_CHOICES:
        if tp > gpu.max_gpus_per_node:
            break
        if not tp_divides(model, tp):
            continue
        p = replica_params(model, gpu, replace(cfg, tp=tp), knobs)
        if float(memory_per_gpu(p)["kv"]) > 0:
            return tp
    return None


def check_support(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig) -> None:
    """Refuse what `plan` refuses: unsupported precision or sparsity, TP beyond a node or not
    dividing the heads, PP beyond the layers."""
    problem = config_problem(model, gpu, cfg)
    if problem:
        raise PredictError(problem[1])


def predict(req: PredictRequest, calibration: Calibration | None = None) -> Prediction:
    calibration = calibration or shipped_calibration()
    pred = _predict(req, calibration)
    pred.validated = trust.validated(calibration, req.gpu.family, req.model.family, pred.config.engine)
    utilization = pred.point.utilization if pred.point is not None and pred.point.stable else None
    ran_to_its_end = req.finite_run or (pred.point is not None and pred.point.finite_run)
    pred.error_pct = trust.error_band(calibration, pred.validated, utilization, pred.config.engine, req.gpu.family,
                                      req.model.family, finite_run=ran_to_its_end)
    return pred


def _predict(req: PredictRequest, calibration: Calibration) -> Prediction:
    knobs = calibration.for_family(req.gpu.family, req.config.engine, req.model.family)
    cfg = req.config
    check_support(req.model, req.gpu, cfg)
    if req.tp_auto:
        tp = smallest_fitting_tp(req.model, req.gpu, cfg, knobs)
        if tp is None:
            tp = min(req.gpu.max_gpus_per_node, 8)
        cfg = replace(cfg, tp=tp)
    p = replica_params(req.model, req.gpu, cfg, knobs)
    mem = memory_per_gpu(p)
    memory_gb = {"weights": float(mem["weights"]) / GB, "kv": float(mem["kv"]) / GB, "other": float(mem["other"]) / GB,
                 "budget": float(mem["budget"]) / GB}
    if float(mem["kv"]) <= 0:
        reason = (
            f"does not fit (memory capacity bound): {req.model.id} {cfg.weights} needs {fmt_gb(memory_gb['weights'])} of "
            f"weights plus {fmt_gb(memory_gb['other'])} runtime per GPU at TP={cfg.tp} PP={cfg.pp}, "
            f"{fmt_gb(float(mem['shortfall']) / GB)} over the {fmt_gb(memory_gb['budget'])} budget of {req.gpu.id}"
        )
        fitting = None if req.tp_auto else smallest_fitting_tp(req.model, req.gpu, cfg, knobs)
        if fitting is not None:
            reason += f"; TP={fitting} is the smallest that fits (leave --tp out to get it)"
        return Prediction(req, cfg, False, reason, memory_gb, None)
    wl = Workload(req.input_len, req.output_len)
    too_long = context_problem(req.model, wl)
    if too_long:
        raise PredictError(too_long)
    if req.finite_run:
        point = finite_run_point(p, wl, int(req.num_prompts or 0))
    elif req.mode == "offline":
        point = offline_point(p, wl)
    elif req.mode == "concurrency":
        point = as_benchmarked(p, wl, concurrency_point(p, wl, req.concurrency), req.concurrency, req.num_prompts)
    else:
        point = rate_run_point(p, wl, rate_point(p, wl, req.rate_rps), req.rate_rps, req.num_prompts)
    if point.max_batch < 1:
        reason = (
            f"does not fit (memory capacity bound): KV cache holds {float(kv_capacity_tokens(p)):,.0f} tokens, less "
            f"than one request of {float(admitted_context(p, wl)):,.0f} tokens"
        )
        return Prediction(req, cfg, False, reason, memory_gb, None)
    burst = req.mode == "concurrency" and has_startup_burst(req.concurrency, req.num_prompts)
    return Prediction(req, cfg, True, "", memory_gb, point, first_use_ms=knobs.first_use_ms if burst else None)
