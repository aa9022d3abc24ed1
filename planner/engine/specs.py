"""Typed specs for hardware, models and serving configurations.

Pydantic models sit at the edges (catalog files, profiles, CLI); the numeric core reads plain
floats and numpy arrays out of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from planner.engine.engines import ENGINES
from planner.engine.inputs import InputModel

GIB = 1024**3
GB = 1e9


class Precision(StrEnum):
    """Numeric formats for weights, activations and the KV cache."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    FP4 = "fp4"


WEIGHT_PRECISIONS = [p.value for p in Precision]
KV_PRECISIONS = ["bf16", "fp16", "fp8", "int8"]
# Tensor-parallel degrees the planner tries (planner.engine.feasibility).
TP_DEGREES = (1, 2, 4, 8, 16, 32, 64, 72)

# Bytes per stored element. 4-bit formats carry block scales: int4 (GPTQ/AWQ group 128 with an
# fp16 scale and zero, 4 bytes per 128 weights) and NVFP4 (one fp8 scale per 16 values).
# Source: modeling digest §2.1 (GenZ mem_multiplier, llm-analysis w16/w8/w4) plus the scale sizes.
BYTES_PER_ELEMENT: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + 4 / 128,
    "fp4": 0.5 + 1 / 16,
}
# What CUDA reports of an HBM GPU's capacity: 79.19 of H100's 80 GiB, 39.38 of A100's 40, 178.35
# of B200's 180 (their reported_memory_gib); GDDR with ECC on reports less (L40S: 44.42 of 48).
REPORTED_MEMORY_SHARE = 0.99
# Bytes per weight of 4-bit floats by the number of values sharing one 8-bit scale: NVFP4's 16
# (the "fp4" above) and MXFP4's 32 (OCP Microscaling Formats v1.0, E8M0 scales:
# https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf).
FP4_BYTES_BY_SCALE_BLOCK: dict[int, float] = {16: 0.5 + 1 / 16, 32: 0.5 + 1 / 32}


def kv_tokens_kept(context, window, windowed_share):
    """KV tokens per layer, averaged over the layers, that a sequence of `context` tokens keeps
    when a share `windowed_share` of the layers attends within a window (or a chunk) of `window`
    tokens: such a layer keeps min(context, window) tokens, a full-attention layer all of them.
    vLLM's hybrid KV cache manager allocates sliding-window and chunked-local layers so
    (https://docs.vllm.ai/en/latest/design/hybrid_kv_cache_manager/); a chunk is counted as
    a window of its size, an upper bound. Share 0 is full attention. Works on floats and arrays:
    this is the one place where context becomes KV memory and KV reads."""
    beyond = context - window
    # max(beyond, 0) without numpy (the app imports specs before it needs numpy); exact in floats
    return context - windowed_share * ((beyond + abs(beyond)) / 2)


def attended_pairs(new, cached, window, windowed_share):
    """Causal attention work of a prompt chunk, in (query, key) pairs per layer averaged over the
    layers: `new` tokens after `cached` ones attend to c (c/2 + q) pairs where every layer sees the
    whole context (the integral of x from q to q + c). A windowed layer's query at position x
    attends to min(x, window) keys, which removes (max(q + c - W, 0)^2 - max(q - W, 0)^2) / 2 pairs
    on that layer: c W once the chunk lies wholly past the window. The one place where a prompt
    becomes prefill attention work; works on floats and arrays (kv_tokens_kept's windows)."""
    past_end = cached + new - window
    past_start = cached - window
    past_end = (past_end + abs(past_end)) / 2
    past_start = (past_start + abs(past_start)) / 2
    return new * (new / 2.0 + cached) - windowed_share * (past_end * past_end - past_start * past_start) / 2.0


class Tier(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


TIERS = [t.value for t in Tier]


def tier_for_params(params_total: float) -> str:
    """Seed tier by total parameters: small 1-7B (< 8B), medium 8-70B (70B-class such as
    Llama-3.1-70B at 70.6B included), large 72B and up."""
    billions = params_total / 1e9
    if billions < 8.0:
        return "small"
    if billions < 72.0:
        return "medium"
    return "large"


class Sourced(InputModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class QualityScore(Sourced):
    benchmark: str
    score: float
    source: str


class GpuSpec(Sourced):
    """One accelerator. Every figure is dense (no 2:4 sparsity) and per device."""

    id: str
    name: str
    vendor: str
    family: str = Field(description="calibration family, e.g. ampere, hopper, blackwell, ada, cdna3")
    aliases: list[str] = []
    memory_gib: float = Field(gt=0, description="HBM capacity; vendors' 'GB' figures are GiB-sized")
    reported_memory_gib: float | None = Field(None, gt=0, description="what the driver reports (CUDA's total memory)")
    mem_bw_tb_s: float = Field(gt=0)
    tflops: dict[str, float] = Field(description="dense peak per precision: bf16, fp16, fp8, int8, fp4")
    # What micro-benchmarks measured (max achievable matmul, STREAM-like bandwidth): the model's
    # efficiencies are fractions of these, so a GPU whose kernels reach less of the datasheet is
    # not credited with the datasheet
    achievable_tflops: dict[str, float] = Field({}, description="measured max achievable dense matmul TFLOPS per precision")
    achievable_bw_tb_s: float | None = Field(None, gt=0, description="measured achievable HBM bandwidth")
    sparse_2_4: bool = False
    interconnect: str = Field(description="nvlink, pcie, infinity-fabric, ici, roce")
    link_gb_s: float = Field(gt=0, description="scale-up bandwidth per GPU per direction")
    max_gpus_per_node: int = Field(ge=1)
    tdp_w: float = Field(gt=0)
    tdp_estimated: bool = False
    price_usd_hour: float = Field(ge=0)
    price_estimated: bool = Field(False, description="no quoted on-demand price was found; see notes")
    price_provider: str
    price_date: str
    # TensorRT-LLM runs on NVIDIA GPUs only; a TPU serves through vLLM's TPU backend
    engines: list[str] = Field(list(ENGINES), min_length=1, description="serving engines that run on it")
    sources: dict[str, str] = Field(description="figure name -> source URL")
    notes: str = ""

    @model_validator(mode="after")
    def _needs_bf16(self) -> GpuSpec:
        if "bf16" not in self.tflops and "fp16" not in self.tflops:
            raise ValueError(f"gpu {self.id}: tflops needs a bf16 or fp16 figure")
        return self

    @field_validator("engines")
    @classmethod
    def _known_engines(cls, engines: list[str]) -> list[str]:
        unknown = [e for e in engines if e not in ENGINES]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not one of {', '.join(ENGINES)}")
        return engines

    @property
    def mem_bw_bytes_s(self) -> float:
        return self.mem_bw_tb_s * 1e12

    @property
    def memory_bytes(self) -> float:
        """The memory the driver reports, of which engines take their shares (vLLM's
        gpu_memory_utilization): the GPU's own reported figure, else REPORTED_MEMORY_SHARE of its
        capacity."""
        return (self.reported_memory_gib or self.memory_gib * REPORTED_MEMORY_SHARE) * GIB

    def achieved_share(self, precision: str) -> float | None:
        """Measured matmul TFLOPS over the dense peak at this precision (bf16's share for a
        precision without its own measurement); None when nothing was measured."""
        peak = self.tflops.get(precision)
        got = self.achievable_tflops.get(precision)
        if peak and got:
            return min(got / peak, 1.0)
        bf16 = self.tflops.get("bf16", self.tflops.get("fp16"))
        got = self.achievable_tflops.get("bf16", self.achievable_tflops.get("fp16"))
        return min(got / bf16, 1.0) if bf16 and got else None

    @property
    def achieved_bw_share(self) -> float | None:
        return min(self.achievable_bw_tb_s / self.mem_bw_tb_s, 1.0) if self.achievable_bw_tb_s else None

    def supports(self, precision: str) -> bool:
        return precision in self.tflops or precision in ("bf16", "fp16", "int4")


class ModelSpec(Sourced):
    """A decoder-only transformer. MoE fields are zero for dense models."""

    id: str
    name: str
    family: str
    aliases: list[str] = []
    hf_id: str = Field("", description="Hugging Face repository served by `planner export`")
    hf_id_fp8: str = Field("", description="the publisher's FP8 checkpoint, served for fp8 weights")
    layers: int = Field(ge=1)
    hidden: int = Field(ge=1)
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    ffn_dim: int = Field(ge=0, description="dense MLP intermediate size")
    vocab: int = Field(ge=1)
    tie_embeddings: bool = False
    gated_mlp: bool = True
    attention: Literal["mha", "gqa", "mla"] = "gqa"
    # MLA (DeepSeek-V2/V3): latent KV rank and decoupled rope dims
    kv_lora_rank: int = Field(0, ge=0)
    q_lora_rank: int = Field(0, ge=0)
    qk_rope_head_dim: int = Field(0, ge=0)
    qk_nope_head_dim: int = Field(0, ge=0)
    v_head_dim: int = Field(0, ge=0)
    # MoE
    experts: int = Field(0, ge=0)
    experts_per_token: int = Field(0, validate_default=True)  # checked against experts below
    shared_experts: int = Field(0, ge=0)
    moe_ffn_dim: int = Field(0, ge=0)
    dense_layers: int = Field(0, ge=0, description="leading layers with a dense MLP in an MoE model")
    sliding_window: int = Field(0, ge=0)
    sliding_layers_fraction: float = Field(0.0, ge=0.0, le=1.0)
    max_context: int = Field(ge=1)
    dtype: str = "bf16"
    # A checkpoint that quantizes only its routed experts (gpt-oss: MXFP4 experts) keeps the
    # other weights (attention, dense MLPs, shared experts) in this format; "" = all in dtype
    dense_dtype: Literal["", "bf16", "fp16", "fp8"] = ""
    # values per scale of a shipped fp4 checkpoint: 32 for MXFP4 (gpt-oss), 16 for NVFP4; a model
    # quantized to fp4 by its server is taken as NVFP4
    fp4_scale_block: Literal[16, 32] = 16
    params_published: float | None = Field(None, description="published total params, for checks")
    active_published: float | None = None
    quality: QualityScore | None = None
    source: str
    notes: str = ""

    @field_validator("experts_per_token")
    @classmethod
    def _routing_possible(cls, per_token: int, info: ValidationInfo) -> int:
        experts = info.data.get("experts", 0)
        if experts and not 1 <= per_token <= experts:
            raise ValueError(f"an MoE model with {experts} experts routes each token to 1..{experts} of them")
        if not experts and per_token:
            raise ValueError("experts_per_token needs experts > 0")
        return per_token

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    # --- parameter counting: every matrix, SwiGLU has three (modeling digest §1.1) ---
    @property
    def attn_params_per_layer(self) -> float:
        d = self.hidden
        if self.attention == "mla":
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = (d * self.q_lora_rank + self.q_lora_rank * self.heads * qk) if self.q_lora_rank else d * self.heads * qk
            kv_down = d * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_up = self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim)
            out = self.heads * self.v_head_dim * d
            return float(q + kv_down + kv_up + out)
        q_and_o = 2 * d * self.heads * self.head_dim
        k_and_v = 2 * d * self.kv_heads * self.head_dim
        return float(q_and_o + k_and_v)

    def _mlp_params(self, inner: int) -> float:
        return float((3 if self.gated_mlp else 2) * self.hidden * inner)

    @property
    def expert_params(self) -> float:
        """Parameters of one routed expert in one layer."""
        return self._mlp_params(self.moe_ffn_dim) if self.is_moe else 0.0

    def stored_expert_params(self, tp: int, hidden_multiple: int = 1, inner_multiple: int = 1) -> float:
        """One routed expert's parameters as a kernel that pads its matrices stores them: the hidden
        dimension rounded up to `hidden_multiple`, each GPU's TP shard of the inner one to
        `inner_multiple` (engines.moe_weight_padding)."""
        if not self.is_moe:
            return 0.0
        hidden = -(-self.hidden // hidden_multiple) * hidden_multiple
        shard = -(-self.moe_ffn_dim // tp)
        inner = tp * (-(-shard // inner_multiple) * inner_multiple)
        return float((3 if self.gated_mlp else 2) * hidden * inner)

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def routed_expert_params(self) -> float:
        """All routed-expert parameters of the model."""
        return self.moe_layers * self.experts * self.expert_params

    @property
    def embedding_params(self) -> float:
        return float(self.vocab * self.hidden)

    @property
    def lm_head_params(self) -> float:
        """The output projection; it is read every step even when tied to the embedding."""
        return float(self.vocab * self.hidden)

    @property
    def body_dense_params(self) -> float:
        """Per-token-always-used params outside embeddings: attention, dense MLPs, shared experts,
        routers and norms."""
        per_layer_norms = 2 * self.hidden
        dense_mlp = self._mlp_params(self.ffn_dim) * (self.dense_layers if self.is_moe else self.layers)
        shared = self.moe_layers * self.shared_experts * self.expert_params
        router = self.moe_layers * self.experts * self.hidden
        return float(self.layers * (self.attn_params_per_layer + per_layer_norms) + dense_mlp + shared + router)

    @property
    def params_total(self) -> float:
        lm_head = 0.0 if self.tie_embeddings else self.lm_head_params
        return self.embedding_params + lm_head + self.body_dense_params + self.routed_expert_params

    @property
    def params_active(self) -> float:
        """Parameters used per token (FLOPs = 2 x this, modeling digest §1.1)."""
        routed = self.moe_layers * self.experts_per_token * self.expert_params
        lm_head = 0.0 if self.tie_embeddings else self.lm_head_params
        return self.embedding_params + lm_head + self.body_dense_params + routed

    @property
    def tier(self) -> str:
        return tier_for_params(self.params_total)

    # --- KV cache, modeling digest §2.2 ---
    @property
    def kv_elements_per_token_layer(self) -> float:
        """Elements cached per token per layer (both K and V)."""
        if self.attention == "mla":
            # MLA caches the compressed latent plus the decoupled rope key (DeepSeek-V2, §2.2)
            return float(self.kv_lora_rank + self.qk_rope_head_dim)
        return float(2 * self.kv_heads * self.head_dim)

    @property
    def kv_window_share(self) -> float:
        """Share of the layers whose KV is bounded by sliding_window (0 without a window)."""
        return self.sliding_layers_fraction if self.sliding_window else 0.0

    def kv_bytes_per_token(self, kv: str = "bf16") -> float:
        """KV bytes a token adds across all layers while every window still holds it."""
        return self.kv_elements_per_token_layer * BYTES_PER_ELEMENT[kv] * self.layers

    def bytes_per_weight(self, weights: str) -> float:
        """Bytes per stored weight served at precision `weights`: the checkpoint's own fp4 format
        (its scale block) when it is served as shipped, else BYTES_PER_ELEMENT."""
        if weights == "fp4" and self.dtype == "fp4":
            return FP4_BYTES_BY_SCALE_BLOCK[self.fp4_scale_block]
        return BYTES_PER_ELEMENT[weights]

    def kv_bytes_per_sequence(self, context, kv: str = "bf16"):
        """KV bytes one sequence of `context` tokens keeps (windowed layers keep at most their window)."""
        return self.kv_bytes_per_token(kv) * kv_tokens_kept(context, self.sliding_window, self.kv_window_share)

    @property
    def attn_qk_dim(self) -> int:
        """Per-head dimension used in attention FLOPs."""
        if self.attention == "mla":
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.head_dim
