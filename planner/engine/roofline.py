"""Memory and step time of one serving replica (TP x PP GPUs), vectorised with numpy.

`ReplicaParams` holds per-configuration scalars as floats or equal-length numpy arrays, so one
configuration and a grid of twenty thousand run through the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

from planner.engine.catalog import achieved_shares
from planner.engine.engines import (
    DEFAULT_ENGINE,
    default_batched_tokens,
    default_max_seqs,
    kv_from_free_memory,
    moe_weight_padding,
    profiles_memory_peak,
    reserves_whole_sequence,
)
from planner.engine.knobs import Knobs
from planner.engine.specs import BYTES_PER_ELEMENT, GB, GIB, GpuSpec, ModelSpec, attended_pairs, kv_tokens_kept

# SGLang and TensorRT-LLM: CUDA context, CUDA graphs and allocator slack; 1 GiB is the low end of
# the 0.5-2 GB CUDA-graph range plus context (modeling digest §2.3, fleet-sim).
RUNTIME_RESERVE_BYTES = 1.0 * GIB
# ... and NCCL buffers per GPU when TP > 1: 342-392 MB in aiconfigurator system files (digest §2.3).
NCCL_BYTES = 0.4 * GB
# ... and fp32 logits for every running sequence.
LOGIT_BYTES = 4.0
# vLLM subtracts what its startup profile measured (vLLM 0.19's memory breakdowns on H100, llm-d-
# planner's accuracy sweep, tests/data/vllm_kv_memory.csv): memory outside PyTorch (CUDA context;
# with TP, NCCL and custom all-reduce buffers), 0.24-0.27 GiB on one GPU and 2.07-2.21 GiB each
# with TP 2-4; and its activation peak, which the sampler sets: a top-k/top-p pass over fp32 logits
# for max_num_seqs sequences, 14.8 bytes per logit (1.89 GiB for Llama 3.1 8B, 2.87 for gpt-oss-20b;
# up to vLLM 0.16 it took 38.5 bytes, 4.76 and 7.38 GiB), plus 2.56 bytes per token and hidden unit
# of the profiled batch (Llama 3.3 70B's peak is 0.08 GiB above 8B's at the same vocabulary), plus
# the fused-MoE kernel's three intermediate caches (moe_workspace_bytes_token). CUDA graphs are
# captured afterwards, outside the budget.
VLLM_NON_TORCH_BYTES = 0.25 * GIB
VLLM_NON_TORCH_TP_BYTES = 2.1 * GIB
VLLM_SAMPLER_BYTES_PER_LOGIT = 14.8
VLLM_HIDDEN_BYTES = 2.56
# vLLM pages KV in 16-token blocks; on average half a block per sequence is unused (digest §2.4).
BLOCK_TOKENS = 16


@dataclass(frozen=True)
class ServingConfig:
    """Engine configuration of one replica; None means "the engine's default for this GPU"."""

    tp: int = 1
    pp: int = 1
    weights: str = "bf16"
    kv: str = "bf16"
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    chunked_prefill: bool = True
    gpu_mem_util: float = 0.9
    prefix_hit: float = 0.0
    spec_k: int = 0
    spec_accept: float = 0.7
    spec_draft_ratio: float = 0.05
    prune_fraction: float = 0.0
    sparsity_2_4: bool = False
    engine: str = DEFAULT_ENGINE


@dataclass(frozen=True)
class ReplicaParams:
    """Everything the step-time and memory formulas need, as floats or arrays."""

    layers: np.ndarray | float
    hidden: np.ndarray | float
    vocab: np.ndarray | float
    q_heads_per_gpu: np.ndarray | float
    attn_dim: np.ndarray | float  # qk + v head dims: attention FLOPs per key = 2 * attn_dim
    tp: np.ndarray | float
    pp: np.ndarray | float
    # bytes and FLOP-parameters
    body_bytes: np.ndarray | float  # always-read body weights (attention, dense MLP, shared experts)
    head_bytes: np.ndarray | float  # lm head (read each step) ; embeddings are gathered, not streamed
    expert_bytes: np.ndarray | float  # one routed expert in one layer
    experts: np.ndarray | float
    experts_per_token: np.ndarray | float
    moe_layers: np.ndarray | float
    active_body_params: np.ndarray | float  # FLOP params per token excluding the lm head
    routed_active_params: np.ndarray | float  # ... of them in the routed experts a token visits
    head_params: np.ndarray | float
    weights_total_bytes: np.ndarray | float  # resident, all GPUs of the replica
    kv_bytes_token_gpu: np.ndarray | float  # KV bytes per token on one GPU, all its layers
    kv_bytes_token_layers: np.ndarray | float  # KV bytes per token read per step across the pipeline
    # sliding-window / chunked layers keep at most kv_window_tokens (kv_tokens_kept)
    kv_window_tokens: np.ndarray | float
    kv_window_share: np.ndarray | float  # share of the layers that are windowed (0: full attention)
    # hardware
    mem_bytes: np.ndarray | float
    bw_bytes_s: np.ndarray | float  # measured achievable HBM bandwidth
    flops_linear: np.ndarray | float  # measured achievable dense FLOP/s at the weight precision
    flops_attn: np.ndarray | float  # the same at bf16 (attention)
    link_bytes_s: np.ndarray | float
    # engine
    max_num_seqs: np.ndarray | float
    budget_tokens: np.ndarray | float  # chunked-prefill token budget (inf when off)
    chunked: np.ndarray | float
    gpu_mem_util: np.ndarray | float
    mem_util_of_free: np.ndarray | float  # 1: gpu_mem_util is a share of the memory the model leaves free
    kv_reserve_whole: np.ndarray | float  # 1: a request is admitted with KV room for its whole output
    profiled_peak: np.ndarray | float  # 1: the engine reserves what its startup profile peaked at (vLLM)
    moe_workspace_bytes_token: np.ndarray | float  # fused-MoE intermediate caches per token, one GPU
    prefix_hit: np.ndarray | float
    spec_k: np.ndarray | float
    spec_accept: np.ndarray | float
    spec_draft_ratio: np.ndarray | float
    # knobs
    eta_weights: np.ndarray | float
    eta_kv: np.ndarray | float
    eta_compute: np.ndarray | float
    eta_moe: np.ndarray | float
    eta_attention: np.ndarray | float
    eta_link: np.ndarray | float
    allreduce_latency_s: np.ndarray | float
    step_overhead_s: np.ndarray | float
    layer_overhead_s: np.ndarray | float
    moe_layer_overhead_s: np.ndarray | float
    seq_overhead_s: np.ndarray | float
    api_overhead_s: np.ndarray | float
    first_use_s: np.ndarray | float

    @cached_property
    def step_rates(self) -> StepRates:
        """The step-time formula's per-replica constants, made once."""
        return step_rates(self)


def compute_flops(gpu: GpuSpec, weights: str) -> float:
    """Dense FLOP/s of the linear layers at this weight precision. W8A8 and FP4 run on their own
    tensor-core rates where the GPU has them; weight-only 4-bit dequantises to bf16."""
    bf16 = gpu.tflops.get("bf16", gpu.tflops.get("fp16", 0.0)) * 1e12
    if weights in ("fp8", "int8", "fp4") and weights in gpu.tflops:
        return gpu.tflops[weights] * 1e12
    if weights == "fp8" and "int8" in gpu.tflops and "fp8" not in gpu.tflops:
        return bf16  # fp8 weights on Ampere run as W8A16 (Marlin): bf16 math
    # weight-only int4 (and fp4 without fp4 tensor cores) dequantises into bf16 GEMMs: Marlin is
    # near-ideal while memory-bound and runs at the bf16 rate once compute-bound (digest §6.3 [S40])
    return bf16


def replica_params(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig, knobs: Knobs) -> ReplicaParams:
    """Per-replica scalars for one configuration (modeling digest §2 and §9.1)."""
    keep = 1.0 - cfg.prune_fraction  # structured width pruning shrinks every body matrix alike
    b_w = model.bytes_per_weight(cfg.weights)
    b_kv = BYTES_PER_ELEMENT[cfg.kv]

    def stored(b: float) -> float:  # bytes per weight; 2:4 sparsity keeps half plus 2-bit indices
        return b * (0.5 + 0.5 / (4 * b)) if cfg.sparsity_2_4 else b

    # served as shipped, an experts-only quantized checkpoint keeps its other weights in dense_dtype
    b_body = BYTES_PER_ELEMENT[model.dense_dtype] if model.dense_dtype and cfg.weights == model.dtype else b_w
    # embeddings and lm head stay in bf16 under vLLM's fp8/int4 schemes
    head_bytes = model.lm_head_params * 2.0
    embed_bytes = 0.0 if model.tie_embeddings else model.embedding_params * 2.0
    body_params = model.body_dense_params * keep
    # the experts as the engine stores them: vLLM pads MXFP4 experts for its kernels, and streams
    # and multiplies the padding with them
    mxfp4 = cfg.weights == "fp4" and model.dtype == "fp4" and model.fp4_scale_block == 32
    expert_params = model.stored_expert_params(cfg.tp, *moe_weight_padding(cfg.engine, gpu, mxfp4)) * keep
    body_bytes = body_params * stored(b_body)
    expert_bytes = expert_params * stored(b_w)
    routed_bytes = model.moe_layers * model.experts * expert_bytes
    weights_total = body_bytes + routed_bytes + head_bytes + embed_bytes
    routed_active = model.moe_layers * model.experts_per_token * expert_params
    active_body = body_params + routed_active
    # KV per token (digest §2.2): GQA heads shard over TP but never below one head per GPU; the MLA
    # latent is replicated on every TP rank.
    kv_per_layer = model.kv_elements_per_token_layer * b_kv * keep
    if model.attention == "mla":
        kv_layer_gpu = kv_per_layer
    else:
        kv_layer_gpu = kv_per_layer * max(1.0 / cfg.tp, 1.0 / model.kv_heads)
    kv_bytes_token_gpu = kv_layer_gpu * model.layers / cfg.pp
    # efficiencies are fractions of what micro-benchmarks reach on this GPU, not of the datasheet
    linear_precision = cfg.weights if cfg.weights in ("fp8", "int8", "fp4") and cfg.weights in gpu.tflops else "bf16"
    mm_share, bw_share = achieved_shares(gpu, linear_precision)
    attn_share, _ = achieved_shares(gpu, "bf16")
    flops = compute_flops(gpu, cfg.weights) * (2.0 if cfg.sparsity_2_4 else 1.0) * mm_share
    bf16 = gpu.tflops.get("bf16", gpu.tflops.get("fp16", 0.0)) * 1e12 * attn_share
    budget = cfg.max_num_batched_tokens or default_batched_tokens(cfg.engine, gpu)
    # vLLM's fused-MoE kernel caches, per token and routed expert, the gate-up output (2N), the
    # activation (N) and the down output (hidden) in bf16, N being each GPU's shard of the expert
    # width; its MXFP4 path runs other kernels (gpt-oss-20b's profiled peak shows none)
    moe_workspace = 0.0
    if model.is_moe and not mxfp4:
        moe_workspace = model.experts_per_token * (3.0 * model.moe_ffn_dim / cfg.tp + model.hidden) * 2.0
    return ReplicaParams(
        layers=float(model.layers),
        hidden=float(model.hidden),
        vocab=float(model.vocab),
        q_heads_per_gpu=model.heads * keep / cfg.tp,
        attn_dim=float(model.attn_qk_dim + (model.v_head_dim or model.head_dim)),
        tp=float(cfg.tp),
        pp=float(cfg.pp),
        body_bytes=body_bytes,
        head_bytes=head_bytes,
        expert_bytes=expert_bytes,
        experts=float(model.experts),
        experts_per_token=float(model.experts_per_token),
        moe_layers=float(model.moe_layers),
        active_body_params=active_body,
        routed_active_params=routed_active,
        head_params=model.lm_head_params,
        weights_total_bytes=weights_total,
        kv_bytes_token_gpu=kv_bytes_token_gpu,
        kv_bytes_token_layers=kv_layer_gpu * model.layers,
        kv_window_tokens=float(model.sliding_window),
        kv_window_share=model.kv_window_share,
        mem_bytes=gpu.memory_bytes,
        bw_bytes_s=gpu.mem_bw_bytes_s * bw_share,
        flops_linear=flops,
        flops_attn=bf16,
        link_bytes_s=gpu.link_gb_s * 1e9,
        max_num_seqs=float(cfg.max_num_seqs or default_max_seqs(cfg.engine, gpu)),
        budget_tokens=float(budget) if cfg.chunked_prefill else np.inf,
        chunked=1.0 if cfg.chunked_prefill else 0.0,
        gpu_mem_util=cfg.gpu_mem_util,
        mem_util_of_free=1.0 if kv_from_free_memory(cfg.engine) else 0.0,
        kv_reserve_whole=1.0 if reserves_whole_sequence(cfg.engine) else 0.0,
        profiled_peak=1.0 if profiles_memory_peak(cfg.engine) else 0.0,
        moe_workspace_bytes_token=moe_workspace,
        prefix_hit=cfg.prefix_hit,
        spec_k=float(cfg.spec_k),
        spec_accept=cfg.spec_accept,
        spec_draft_ratio=cfg.spec_draft_ratio,
        eta_weights=knobs.eta_weights,
        eta_kv=knobs.eta_kv,
        eta_compute=knobs.eta_compute,
        eta_moe=knobs.eta_moe,
        eta_attention=knobs.eta_attention,
        eta_link=knobs.eta_link,
        allreduce_latency_s=knobs.allreduce_latency_us * 1e-6,
        step_overhead_s=knobs.step_overhead_us * 1e-6,
        layer_overhead_s=knobs.layer_overhead_us * 1e-6,
        moe_layer_overhead_s=knobs.moe_layer_overhead_us * 1e-6,
        seq_overhead_s=knobs.seq_overhead_us * 1e-6,
        api_overhead_s=knobs.api_overhead_ms * 1e-3,
        first_use_s=knobs.first_use_ms * 1e-3,
    )


def stack_params(items: list[ReplicaParams]) -> ReplicaParams:
    """Stack per-configuration params into one ReplicaParams of arrays."""
    return ReplicaParams(**{f.name: np.array([getattr(p, f.name) for p in items], dtype=float) for f in fields(ReplicaParams)})


def take_params(p: ReplicaParams, index) -> ReplicaParams:
    """Select configurations (by index or mask) from a stacked ReplicaParams."""
    return ReplicaParams(**{f.name: np.asarray(getattr(p, f.name))[index] for f in fields(ReplicaParams)})


# ---------------------------------------------------------------------------------------------
# Memory (digest §2.3): per GPU, budget = util * memory - weights share - what the engine holds
# besides (engine_memory_bytes); KV capacity in tokens is that budget over KV bytes per token.


def engine_memory_bytes(p: ReplicaParams) -> np.ndarray | float:
    """What the engine holds on each GPU besides weights and KV cache. vLLM: what its startup
    profile measures (VLLM_* above) for a budget-sized batch. SGLang and TensorRT-LLM: a runtime
    reserve, NCCL buffers with TP, a budget-sized batch of hidden states in bf16 (residual, normed
    input, attention out, MLP out) and fp32 logits for max_num_seqs sequences over the TP ranks."""
    tokens = np.where(np.isinf(p.budget_tokens), 8192.0, p.budget_tokens)
    vllm = (np.where(p.tp > 1, VLLM_NON_TORCH_TP_BYTES, VLLM_NON_TORCH_BYTES)
            + p.max_num_seqs * p.vocab * VLLM_SAMPLER_BYTES_PER_LOGIT
            + tokens * (p.hidden * VLLM_HIDDEN_BYTES + p.moe_workspace_bytes_token))
    others = (RUNTIME_RESERVE_BYTES + np.where(p.tp > 1, NCCL_BYTES, 0.0)
              + tokens * p.hidden * 2.0 * 4 + p.max_num_seqs * p.vocab * LOGIT_BYTES / p.tp)
    return np.where(p.profiled_peak > 0, vllm, others)


def memory_per_gpu(p: ReplicaParams) -> dict[str, np.ndarray | float]:
    gpus = p.tp * p.pp
    weights = p.weights_total_bytes / gpus
    other = engine_memory_bytes(p)
    used = weights + other
    # TensorRT-LLM's share is of what the loaded model leaves free, vLLM's and SGLang's of the GPU
    of_free = np.minimum(used, p.mem_bytes) + p.gpu_mem_util * np.maximum(p.mem_bytes - used, 0.0)
    budget = np.where(p.mem_util_of_free > 0, of_free, p.gpu_mem_util * p.mem_bytes)
    kv = np.maximum(budget - used, 0.0)
    return {"weights": weights, "other": other, "kv": kv, "budget": budget,
            "shortfall": np.maximum(used - budget, 0.0)}


def kv_capacity_tokens(p: ReplicaParams) -> np.ndarray | float:
    """Tokens of KV cache the replica holds (every GPU holds its slice of every token), counted
    on every layer: a sequence takes sequence_kv_tokens(p, context) of them."""
    mem = memory_per_gpu(p)
    return np.floor(mem["kv"] / p.kv_bytes_token_gpu)


def sequence_kv_tokens(p: ReplicaParams, context, seqs=1.0):
    """KV tokens (counted on every layer) that `seqs` sequences holding `context` tokens between
    them keep and read each decode step, each at the mean context: windowed layers keep at most
    their window (specs.kv_tokens_kept)."""
    return kv_tokens_kept(context, seqs * p.kv_window_tokens, p.kv_window_share)


def prefill_attention_work(p: ReplicaParams, new, cached):
    """The causal attention work (step_time's `prefill_attn_work`) of `new` prompt tokens after
    `cached` ones: windowed layers attend within their window (specs.attended_pairs)."""
    return attended_pairs(new, cached, p.kv_window_tokens, p.kv_window_share)


# ---------------------------------------------------------------------------------------------
# Step time (digest §9.2): one engine iteration of one micro-batch through every layer.


def touched_experts(p: ReplicaParams, tokens) -> np.ndarray | float:
    """Expected distinct experts per MoE layer hit by `tokens` tokens under uniform top-k routing:
    E * (1 - (1 - k/E)^T) (digest §3.3, derived)."""
    if isinstance(p.experts, _SCALARS):
        if p.experts <= 0:
            return 0.0  # dense model: no experts (skips the array work on the hot path)
        if isinstance(tokens, _SCALARS):
            frac = min(max(p.experts_per_token / p.experts, 0.0), 1.0)
            return p.experts * (1.0 - (1.0 - frac) ** max(tokens, 0.0))
    e = np.maximum(p.experts, 1.0)
    frac = np.clip(p.experts_per_token / e, 0.0, 1.0)
    return np.where(p.experts > 0, e * (1.0 - (1.0 - frac) ** np.maximum(tokens, 0.0)), 0.0)


def fixed_step_s(p: ReplicaParams):
    """Cost of a step that does not scale with its tokens: the engine's scheduling and launch
    per step, a launch/sync cost per layer, and per MoE layer the router, the token permutation
    and the grouped-GEMM launch (aiconfigurator's measured DeepSeek-V3 MoE layer at one token,
    0.288 ms on H100, is about 0.18 ms above its weight-streaming time: digest §3.3)."""
    return p.step_overhead_s + p.layers * p.layer_overhead_s + p.moe_layers * p.moe_layer_overhead_s


@dataclass(frozen=True)
class StepRates:
    """The step-time formula's per-replica constants (digest §9.2), each the seconds one unit of its
    driver costs: made once per replica (ReplicaParams.step_rates), so a step only multiplies them
    by its tokens and sums. Floats, or arrays for stacked params."""

    token_flops_s: np.ndarray | float  # one token through the body's linear layers: 2 (N_dense + N_routed / eta_moe) / (TP eta F)
    logit_flops_s: np.ndarray | float  # one logit through the lm head: 2 N_head / (TP eta F)
    weights_s: np.ndarray | float  # streaming the always-read weights: (body + head bytes) / (TP eta BW)
    expert_s: np.ndarray | float  # one routed expert touched in every MoE layer
    kv_token_s: np.ndarray | float  # one cached token's KV read, all layers of the lane
    attn_work_s: np.ndarray | float  # one unit of causal attention work, c (c/2 + q): 2 d_attn FLOPs per pair and head
    comm_fixed_s: np.ndarray | float  # TP all-reduces (ring, twice per layer: alpha [S18]) and PP hand-offs: latency
    comm_token_s: np.ndarray | float  # ... and 2(n-1)/n x bytes / BW per token of the step
    fixed_s: np.ndarray | float  # fixed_step_s
    seq_s: np.ndarray | float  # per sequence the step carries (decodes, and a prompt)


def step_rates(p: ReplicaParams) -> StepRates:
    """The rates of step_time's terms for p (per replica, or stacked). Linear layers run at the
    measured matmul rate of their TP shards, or stream their weights at the measured bandwidth;
    causal attention costs 2 x attn_dim FLOPs per (query, key) pair and head; TP all-reduces are a
    ring, twice per layer, alpha + 2(n-1)/n x bytes / BW (nccl-tests [S18], digest §3.1), none at
    TP=1; a PP hand-off passes one token's activations per stage boundary."""
    linear_rate = p.tp * p.eta_compute * p.flops_linear
    weight_rate = p.tp * p.eta_weights * p.bw_bytes_s
    link_s_per_token = p.hidden * 2.0 / (p.eta_link * p.link_bytes_s)  # one token's activations, bf16
    ring = 2.0 * (p.tp - 1) / p.tp
    if np.ndim(p.tp) == 0:
        tp_fixed, tp_token = ((2.0 * p.layers * p.allreduce_latency_s, 2.0 * p.layers * ring * link_s_per_token)
                              if p.tp > 1 else (0.0, 0.0))
    else:
        tp_fixed = np.where(p.tp > 1, 2.0 * p.layers * p.allreduce_latency_s, 0.0)
        tp_token = np.where(p.tp > 1, 2.0 * p.layers * ring * link_s_per_token, 0.0)
    return StepRates(
        token_flops_s=2.0 * (p.active_body_params + p.routed_active_params * (1.0 / p.eta_moe - 1.0)) / linear_rate,
        logit_flops_s=2.0 * p.head_params / linear_rate,
        weights_s=(p.body_bytes + p.head_bytes) / weight_rate,
        expert_s=p.moe_layers * p.expert_bytes / weight_rate,
        kv_token_s=p.kv_bytes_token_layers / (p.eta_kv * p.bw_bytes_s),
        attn_work_s=2.0 * p.attn_dim * p.q_heads_per_gpu * p.layers / (p.eta_attention * p.flops_attn),
        comm_fixed_s=tp_fixed + (p.pp - 1) * p.allreduce_latency_s,
        comm_token_s=tp_token + (p.pp - 1) * link_s_per_token,
        fixed_s=fixed_step_s(p),
        seq_s=p.seq_overhead_s,
    )


@dataclass(frozen=True)
class StepTime:
    total_s: np.ndarray
    compute_s: np.ndarray  # linear-layer FLOPs plus prefill attention
    memory_s: np.ndarray  # weight streaming plus KV reads
    comm_s: np.ndarray
    overhead_s: np.ndarray


def step_time(p: ReplicaParams, n_decode, decode_ctx_sum, n_prefill, prefill_attn_work, spec_tokens=1.0) -> StepTime:
    """Duration of one step with `n_decode` decoding sequences (reading `decode_ctx_sum` cached
    tokens in total) and `n_prefill` prompt tokens whose causal attention work is
    `prefill_attn_work` = the sum over chunks of prefill_attention_work (c (c/2 + q) for c new
    tokens after q cached ones, less what windowed layers do not attend).

    T = |(FLOPs/F, bytes/BW)| for linear layers (a smooth roofline: linear_time_s) + KV reads/BW + prefill attention FLOPs
        + TP all-reduces + PP hand-offs + overheads  (scaling book [S2], digest §9.2).
    `spec_tokens` = tokens verified per decoding sequence (speculative decoding: k + 1).
    """
    return _step(p, n_decode, decode_ctx_sum, n_prefill, prefill_attn_work, spec_tokens, None, True)


def step_total_s(p: ReplicaParams, n_decode, decode_ctx_sum, n_prefill, prefill_attn_work, spec_tokens=1.0, prompts=None):
    """step_time(...).total_s alone, for the sampled cycles' thousands of steps a call. `prompts`:
    1.0 where every step carries a prompt (saves testing n_prefill > 0 step by step)."""
    return _step(p, n_decode, decode_ctx_sum, n_prefill, prefill_attn_work, spec_tokens, prompts, False)


_SCALARS = (float, int, np.floating, np.integer)


def _step(p: ReplicaParams, n_decode, decode_ctx_sum, n_prefill, prefill_attn_work, spec_tokens, prompts, parts: bool):
    """The step-time formula, once, as the running sequences' part plus the prompt tokens' (linear
    in them): one step of one replica runs in plain floats (the fixed point and the bounds time
    hundreds a plan, where numpy's per-call cost was most of the time), and arrays of steps of one
    replica at one batch sum the prompt tokens' terms in place onto the sequences' scalars. Every
    path adds the same terms in the same order, so they agree to the last place (numpy's
    vectorised power may round the MoE term differently)."""
    rates = p.step_rates
    if not isinstance(n_decode, _SCALARS):
        n_decode = np.asarray(n_decode, dtype=float)
    if not isinstance(n_prefill, _SCALARS):
        n_prefill = np.asarray(n_prefill, dtype=float)
    if not isinstance(decode_ctx_sum, _SCALARS):
        decode_ctx_sum = np.asarray(decode_ctx_sum, dtype=float)
    if not isinstance(prefill_attn_work, _SCALARS):
        prefill_attn_work = np.asarray(prefill_attn_work, dtype=float)
    if prompts is None:
        prompts = (1.0 if n_prefill > 0 else 0.0) if isinstance(n_prefill, _SCALARS) else np.where(n_prefill > 0, 1.0, 0.0)
    decode_tokens = n_decode * spec_tokens
    # the running sequences' part, with each prompt's one logit and its sequence's overhead (in
    # place where these are arrays: a fresh temporary costs more than its arithmetic)
    seq_flops = decode_tokens * rates.token_flops_s
    logits = decode_tokens + prompts
    logits *= rates.logit_flops_s
    seq_flops += logits
    t_kv = sequence_kv_tokens(p, decode_ctx_sum, n_decode) * rates.kv_token_s  # windowed layers read at most their window
    comm_per_token = not isinstance(rates.comm_token_s, _SCALARS) or rates.comm_token_s != 0.0  # TP > 1 or PP > 1
    seq_comm = rates.comm_fixed_s
    if comm_per_token:
        seq_comm = decode_tokens * rates.comm_token_s
        seq_comm += rates.comm_fixed_s
    overhead = n_decode + prompts
    overhead *= rates.seq_s
    overhead += rates.fixed_s
    # linear layers: the FLOPs and the weight streaming, joined by a smooth roofline (linear_time_s)
    t_flops = n_prefill * rates.token_flops_s
    t_flops += seq_flops
    t_weights = rates.weights_s
    if not isinstance(p.experts, _SCALARS) or p.experts > 0:
        t_weights = t_weights + touched_experts(p, decode_tokens + n_prefill) * rates.expert_s
    arrays = isinstance(t_flops, np.ndarray) or isinstance(t_weights, np.ndarray)
    total = linear_time_s(t_flops, t_weights, arrays)
    t_attn = prefill_attn_work * rates.attn_work_s
    total += t_attn
    prompt_comm = n_prefill * rates.comm_token_s if comm_per_token else 0.0
    total += prompt_comm
    rest = t_kv + seq_comm
    rest += overhead
    total += rest
    if not parts:
        return total
    compute_bound = t_flops >= t_weights
    if arrays:
        compute = np.where(compute_bound, t_flops, 0.0) + t_attn
        memory = np.where(compute_bound, 0.0, t_weights) + t_kv
    else:
        compute = (t_flops if compute_bound else 0.0) + t_attn
        memory = (0.0 if compute_bound else t_weights) + t_kv
    return StepTime(total_s=total, compute_s=compute, memory_s=memory, comm_s=seq_comm + prompt_comm, overhead_s=overhead)


def linear_time_s(t_flops, t_weights, arrays: bool = True):
    """Time of the linear layers from their FLOPs' time and their weights' streaming time: the
    2-norm of the two, a roofline without its sharp knee. Far from the ridge it is the longer of
    the two (at a tenth of it, 0.5% above); at the ridge, where a GEMM's tiles neither stream at
    full bandwidth nor keep the tensor cores busy, 41% above. A constant efficiency per side misses
    the measured GEMM times by 64-341%, and utilisation interpolated over tokens per GEMM brings
    that to 7-15% (aiconfigurator's leave-one-out test, digest §8). The exponent was chosen on
    held-out error against max() and a 3-norm (the README gives the figures)."""
    return np.hypot(t_flops, t_weights) if arrays else math.hypot(t_flops, t_weights)


def bound_name(st: StepTime) -> np.ndarray:
    """Which resource dominates a step: compute, memory bandwidth, interconnect or overhead."""
    parts = np.stack(np.broadcast_arrays(st.compute_s, st.memory_s, st.comm_s, st.overhead_s))
    names = np.array(["compute", "memory bandwidth", "interconnect", "overhead"])
    return names[np.argmax(parts, axis=0)]
