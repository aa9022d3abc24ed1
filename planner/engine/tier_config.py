"""A tier's serving configuration from its scenario: the precisions "auto" resolves to, the calibrated
knobs of the GPU family and engine, and a copy of a configuration with some fields changed."""

from __future__ import annotations

from planner.engine.knobs import Calibration, Knobs, shipped_calibration
from planner.engine.roofline import ServingConfig
from planner.engine.scenario import Scenario
from planner.engine.specs import GpuSpec, ModelSpec


def resolve_precision(choice: str, model: ModelSpec, gpu: GpuSpec, kind: str) -> str:
    """'auto' as one format: the model's native dtype for weights (plan_tier tries the smaller ones
    too), bf16 (fp16 for fp16 models) for the KV cache."""
    if choice != "auto":
        return choice
    if kind == "kv":
        return "bf16" if model.dtype not in ("bf16", "fp16") else model.dtype
    return model.dtype


def knobs_for(gpu: GpuSpec, calibration: Calibration | None, engine: str | None = None,
              model: ModelSpec | None = None) -> Knobs:
    return (calibration or shipped_calibration()).for_family(gpu.family, engine, model.family if model else None)


def config_with(cfg: ServingConfig, **changes) -> ServingConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


def serving_config(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, tp: int) -> ServingConfig:
    opt = scenario.optimizations
    return ServingConfig(
        tp=tp,
        pp=1 if opt.pp == "auto" else opt.pp,  # plan_tier tries more stages where one does not fit
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
