"""Why a model does not fit, in words with advice: its weights on the GPU at the largest (or the
asked) TP, or the KV cache of one request in what the weights leave."""

from __future__ import annotations

from planner.engine.binding import Binding
from planner.engine.feasibility import context_problem, fitting_tp_degrees, node_size, tp_divides
from planner.engine.knobs import Knobs
from planner.engine.numbers import fmt_gb, fmt_sig
from planner.engine.offline import admitted_context
from planner.engine.roofline import ServingConfig, memory_per_gpu, replica_params, sequence_kv_tokens
from planner.engine.specs import GB, TP_DEGREES, GpuSpec, ModelSpec
from planner.engine.tier_config import config_with
from planner.engine.tier_plan import TierPlan
from planner.engine.workload import Workload


def does_not_fit(tier, model, gpu, base, knobs, node_limit, price, wl: Workload, tp: int | None = None) -> TierPlan:
    """The weights do not fit: at the largest TP of one scale-up domain, or at the TP the profile
    asks for (then the smallest TP that fits is the first advice)."""
    chosen = tp is not None
    limit = node_size(gpu, node_limit)
    tp = tp if chosen else max([d for d in TP_DEGREES if d <= limit and tp_divides(model, d)] or [1])
    p = replica_params(model, gpu, config_with(base, tp=tp), knobs)
    mem = memory_per_gpu(p)
    short_gb = float(mem["shortfall"]) / GB
    fitting = fitting_tp_degrees(model, gpu, base, knobs, node_limit) if chosen else []
    advice = (f"use TP={fitting[0]} (the smallest that fits; TP 'auto' picks it), quantize, or use a larger GPU" if fitting
              else "quantize, raise PP, or use a larger GPU")
    reason = (
        f"{model.id} {base.weights} does not fit on {gpu.id} {'at' if chosen else 'even at'} TP={tp} (memory capacity bound): "
        f"weights need {fmt_gb(float(mem['weights']) / GB)} per GPU (plus {fmt_gb(float(mem['other']) / GB)} other), "
        f"{fmt_gb(short_gb)} over the {fmt_gb(float(mem['budget']) / GB)} budget; {advice}"
    )
    too_long = context_problem(model, wl)
    if too_long:
        reason += f"; also, {too_long}"
    plan = TierPlan(tier, model, gpu, config_with(base, tp=tp), False, reason, usd_per_gpu_hour=price, binding=Binding.MEMORY)
    plan.memory_gb = {k: float(v) / GB for k, v in mem.items()}
    return plan


def request_kv_reason(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs, wl: Workload) -> str:
    """Memory capacity taken by the KV cache of the mean request, against what the GPU has left."""
    p = replica_params(model, gpu, cfg, knobs)
    need_gb = float(p.kv_bytes_token_gpu * sequence_kv_tokens(p, admitted_context(p, wl))) / GB
    free_gb = float(memory_per_gpu(p)["kv"]) / GB
    return (f"memory capacity: the mean request's KV cache takes {fmt_gb(need_gb)} per GPU at TP={cfg.tp}, "
            f"of {fmt_gb(free_gb)} left after the weights")


def kv_reason(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs, wl: Workload) -> str:
    p = replica_params(model, gpu, cfg, knobs)
    kv_gb = float(memory_per_gpu(p)["kv"]) / GB
    return (f"memory capacity bound: after the weights, {fmt_gb(kv_gb)} of KV cache per GPU at TP={cfg.tp} does not hold "
            f"one request of {fmt_sig(float(admitted_context(p, wl)))} tokens for {model.id}; shorten the prompts, "
            "quantize the KV cache, "
            f"or use larger GPUs")
