"""What one tier of a plan assumed about its serving engine, resolved to concrete values.

A profile may leave limits unset ("the engine's default"); the export writes the value the plan
used, so the deployment runs what was planned even if an engine release changes its defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.engine.engines import default_batched_tokens, default_max_seqs
from planner.engine.feasibility import node_size
from planner.engine.lengths import quantiles
from planner.engine.scenario import LengthDist
from planner.engine.tier_plan import Plan, TierPlan

# The longest request the server must accept: vLLM and SGLang refuse a prompt plus max_tokens
# above their context limit. Lengths without a `max` are taken at this quantile, so one request
# in 10,000 is longer than the limit written (the plan itself checks the p99 prompt + p99 output).
LONGEST_REQUEST_QUANTILE = 0.9999


class ExportError(ValueError):
    """A tier that cannot be exported as asked, in one line."""


@dataclass(frozen=True)
class TierSettings:
    """Everything an engine command, a manifest or a benchmark needs about one planned tier."""

    profile: str
    tier: str
    model_id: str  # catalog id
    hf_id: str  # the Hugging Face repository served
    model_dtype: str  # of the checkpoint served
    gpu_id: str
    gpu_vendor: str
    gpus_per_node: int
    engine: str
    replicas: int
    tp: int
    pp: int
    weights: str
    kv: str
    max_seqs: int
    max_batched_tokens: int
    chunked_prefill: bool
    gpu_mem_util: float
    prefix_hit: float
    spec_k: int
    spec_accept: float
    spec_draft_ratio: float
    max_model_len: int
    longest_request: int  # tokens, prompt + output, before the model's and the KV cache's limits
    peak_rate_rps: float
    rate_per_replica_rps: float
    mean_input_tokens: float
    mean_output_tokens: float
    input_len: LengthDist
    output_len: LengthDist
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None
    e2e_p99_ms: float | None
    meets_slo: bool
    misses: tuple[str, ...]

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def multi_node(self) -> bool:
        return self.gpus_per_replica > self.gpus_per_node

    @property
    def name(self) -> str:
        """A DNS-1123 name for manifests and result files: lowercase letters, digits and '-'."""
        return dns_name(f"{self.profile}-{self.tier}")


def dns_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower().encode("ascii", "ignore").decode())
    cleaned = "-".join(part for part in cleaned.split("-") if part)
    return (cleaned[:63].rstrip("-")) or "planner"


def tier_settings(plan: Plan, tier: TierPlan, profile_name: str) -> TierSettings:
    """The resolved settings of a feasible tier; ExportError names why a tier cannot be exported."""
    if not tier.feasible or tier.replicas < 1 or tier.point is None:
        raise ExportError(f"tier {tier.tier}: no fleet to export ({tier.reason or 'not feasible'})")
    if not tier.model.hf_id:
        raise ExportError(f"tier {tier.tier}: model {tier.model.id} has no Hugging Face id to serve; "
                          f"give its [[model]] table an hf_id")
    scenario, cfg, gpu, model = plan.scenario, tier.config, tier.gpu, tier.model
    # fp8 weights from the publisher's FP8 checkpoint where there is one: no load-time quantization
    fp8_checkpoint = cfg.weights == "fp8" and bool(model.hf_id_fp8)
    load = scenario.load
    point = tier.point
    # the engines refuse to start when one request of max_model_len tokens does not fit the KV cache
    kv_tokens = int(point.kv_tokens) if point.kv_tokens > 0 else model.max_context
    longest = _longest(load.input_len) + _longest(load.output_len)
    max_len = min(model.max_context, kv_tokens, longest)
    budget = cfg.max_num_batched_tokens or default_batched_tokens(cfg.engine, gpu)
    if not cfg.chunked_prefill:  # whole prompts in one step: the budget must hold the longest
        budget = max(budget, max_len)
    return TierSettings(
        profile=profile_name, tier=tier.tier, model_id=model.id, hf_id=model.hf_id_fp8 if fp8_checkpoint else model.hf_id,
        model_dtype="fp8" if fp8_checkpoint else model.dtype,
        gpu_id=gpu.id, gpu_vendor=gpu.vendor.lower(), gpus_per_node=node_size(gpu, scenario.fleet.gpus_per_node),
        engine=cfg.engine, replicas=tier.replicas, tp=cfg.tp, pp=cfg.pp, weights=cfg.weights, kv=cfg.kv,
        max_seqs=cfg.max_num_seqs or default_max_seqs(cfg.engine, gpu), max_batched_tokens=budget,
        chunked_prefill=cfg.chunked_prefill, gpu_mem_util=cfg.gpu_mem_util, prefix_hit=cfg.prefix_hit,
        spec_k=cfg.spec_k, spec_accept=cfg.spec_accept, spec_draft_ratio=cfg.spec_draft_ratio, max_model_len=max_len,
        longest_request=longest,
        peak_rate_rps=plan.peak_rate_rps, rate_per_replica_rps=plan.peak_rate_rps / tier.replicas,
        mean_input_tokens=plan.workload.mean_in, mean_output_tokens=plan.workload.mean_out,
        input_len=load.input_len, output_len=load.output_len,
        ttft_p99_ms=_p99_ms(point.ttft_s), tpot_p99_ms=_p99_ms(point.tpot_s), e2e_p99_ms=_p99_ms(point.e2e_s),
        meets_slo=tier.meets_slo, misses=tuple(tier.misses),
    )


def _longest(dist: LengthDist) -> int:
    if dist.max is not None:
        return math.ceil(dist.max)
    return math.ceil(float(quantiles(dist, [LONGEST_REQUEST_QUANTILE])[0]))


def _p99_ms(dist: dict) -> float | None:
    value = dist.get("p99") if dist else None
    return value * 1e3 if value is not None and math.isfinite(value) else None
