"""What rules a serving configuration out before any sizing: an engine that does not run on the
GPU, hardware support for its formats, the scale-up domain, how TP shards the heads, memory for the
weights and one request, the context limit and the fleet limit. `plan`, `predict` and `search`
refuse the same things through these."""

from __future__ import annotations

import numpy as np

from planner.engine.binding import Binding
from planner.engine.engines import ENGINE_NAMES
from planner.engine.knobs import Knobs
from planner.engine.roofline import ServingConfig, memory_per_gpu, replica_params
from planner.engine.scenario import Scenario
from planner.engine.specs import TP_DEGREES, GpuSpec, ModelSpec
from planner.engine.tier_config import config_with
from planner.engine.workload import Workload


def config_problem(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, node_limit: int | None = None) -> tuple[str, str] | None:
    """Why this serving configuration cannot run at all, as (binding, reason), or None. Shared by
    `plan` and `predict` so both refuse the same things."""
    if cfg.engine not in gpu.engines:
        return Binding.HARDWARE, (f"{ENGINE_NAMES[cfg.engine]} does not run on {gpu.id}; it is served with "
                                    f"{' or '.join(ENGINE_NAMES[e] for e in gpu.engines)} (--engine, fleet.engine)")
    if cfg.sparsity_2_4 and not gpu.sparse_2_4:
        return Binding.HARDWARE, f"2:4 sparsity needs sparse tensor cores, which {gpu.id} does not have"
    unsupported = weights_problem(gpu, cfg.weights)
    if unsupported:
        return Binding.HARDWARE, unsupported
    limit = node_size(gpu, node_limit)
    if cfg.tp > limit:
        return Binding.INTERCONNECT, (
            f"TP={cfg.tp} spans more than the {limit} GPUs of one {gpu.id} scale-up domain: tensor parallelism "
            f"all-reduces every layer and needs the node's fast interconnect; use TP<={limit} and PP across nodes")
    if model.heads % cfg.tp:
        return Binding.PARALLELISM, f"TP={cfg.tp} does not divide the {model.heads} attention heads of {model.id}"
    if not tp_divides(model, cfg.tp):
        return Binding.PARALLELISM, (f"TP={cfg.tp} neither divides the {model.kv_heads} KV heads of {model.id} nor is a "
                               f"multiple of them, so they can be neither split nor replicated evenly")
    if cfg.pp > model.layers:
        return Binding.PARALLELISM, (f"PP={cfg.pp} exceeds the {model.layers} layers of {model.id}: every pipeline stage "
                                     "needs a layer")
    return None


# Weight formats that run without tensor cores for them: on NVIDIA (Ampere and later) as weight-only
# formats dequantised to bf16 in the matmul (Marlin kernels: fp8 and int8 W8A16, fp4 W4A16), per
# https://docs.vllm.ai/en/stable/features/quantization/fp8/ ("FP8 models will run on compute
# capability >= 7.5 as weight-only W8A16, utilizing FP8 Marlin"). int4 (AWQ/GPTQ) is weight-only
# everywhere; bf16 and fp16 run on every GPU.
NATIVE_ONLY_WEIGHTS = ("fp8", "int8", "fp4")


def weights_problem(gpu: GpuSpec, weights: str) -> str:
    """Why the GPU cannot run weights in this format ('' when it can)."""
    if weights in NATIVE_ONLY_WEIGHTS and weights not in gpu.tflops and gpu.vendor.lower() != "nvidia":
        return f"{gpu.id} has no {weights} support for weights"
    return ""


def fleet_problem(scenario: Scenario, model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, p,
                  wl: Workload) -> tuple[str, str] | None:
    """Why no number of replicas of this configuration (its replica parameters `p`) can carry the
    scenario's load, as (binding, reason), or None: the checks `plan` makes before sizing, in its
    order. `search` screens every configuration with it, so each fleet it ranks is one plan accepts."""
    problem = config_problem(model, gpu, cfg, scenario.fleet.gpus_per_node)
    if problem:
        return problem
    if not holds_a_request(p):
        return Binding.MEMORY, f"{model.id} {cfg.weights} leaves no room for a request's KV cache on {gpu.id} at TP={cfg.tp}"
    too_long = context_problem(model, wl)
    if too_long:
        return Binding.CONTEXT, too_long
    if over_fleet_limit(scenario, cfg.tp * cfg.pp):
        return Binding.FLEET_SIZE, (f"one replica at TP={cfg.tp} PP={cfg.pp} needs {cfg.tp * cfg.pp} GPUs, more than the "
                                    f"fleet limit of {scenario.fleet.max_gpus:,} (fleet.max_gpus)")
    return None


def holds_a_request(p) -> bool:
    """Whether the weights leave room for some KV cache on each GPU (array-wise for the search's grid)."""
    return memory_per_gpu(p)["kv"] > 0


def over_fleet_limit(scenario: Scenario, gpus):
    """Whether a fleet of `gpus` GPUs (a number or an array) is more than fleet.max_gpus allows."""
    limit = scenario.fleet.max_gpus
    return np.asarray(gpus) > limit if limit is not None else np.zeros(np.shape(gpus), dtype=bool)


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


def tp_divides(model: ModelSpec, tp: int) -> bool:
    """vLLM shards attention heads evenly: heads % tp == 0, and KV heads either split evenly or
    replicate evenly."""
    return model.heads % tp == 0 and (model.kv_heads % tp == 0 or tp % model.kv_heads == 0)


def fitting_tp_degrees(model: ModelSpec, gpu: GpuSpec, base: ServingConfig, knobs: Knobs, node_limit: int | None) -> list[int]:
    """TP degrees (powers of two, within one scale-up domain) whose weights and one request fit."""
    limit = node_size(gpu, node_limit)
    out = []
    for tp in TP_DEGREES:
        if tp > limit or not tp_divides(model, tp):
            continue
        if holds_a_request(replica_params(model, gpu, config_with(base, tp=tp), knobs)):
            out.append(tp)
    return out
