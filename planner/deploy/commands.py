"""Engine launch commands and the benchmark command for one planned tier, as argument lists.

Flag names come from planner.deploy.flags (one table, each flag with its source); this module only
decides which settings a tier needs and their values.
"""

from __future__ import annotations

import json
import math
import shlex

from planner.deploy.flags import flag
from planner.deploy.settings import TierSettings
from planner.engine.lengths import grid
from planner.engine.scenario import LengthDist

SERVE_PORT = 8000  # vLLM's default; SGLang is given the same so manifests and benchmarks agree

# vLLM and SGLang name the dtypes as PyTorch does.
_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
# Online (load-time) weight quantization both engines document for a 16-bit checkpoint.
_ONLINE_QUANTIZATION = {"fp8": "fp8"}
# FP8 KV cache: vLLM's `fp8` is E4M3; SGLang names the format.
_KV_FP8 = {"vllm": "fp8", "sglang": "fp8_e4m3"}


def precision_notes(s: TierSettings) -> list[str]:
    """What the engines cannot do from the checkpoint alone, said once per tier."""
    notes = []
    if s.weights != s.model_dtype and s.weights not in _TORCH_DTYPES and s.weights not in _ONLINE_QUANTIZATION:
        notes.append(f"the plan assumed {s.weights} weights, which neither engine makes at load time: serve a "
                     f"pre-quantized {s.weights} checkpoint of {s.hf_id} (the engine reads its method from it)")
    if s.kv == "int8":
        notes.append("the plan assumed an int8 KV cache, which vLLM and SGLang do not offer; fp8 is the nearest")
    return notes


def _precision_args(s: TierSettings, tool: str) -> list[str]:
    args = []
    if s.weights in _TORCH_DTYPES:
        args += [flag(tool, "dtype"), _TORCH_DTYPES[s.weights]]
    elif s.weights != s.model_dtype and s.weights in _ONLINE_QUANTIZATION:
        args += [flag(tool, "quantization"), _ONLINE_QUANTIZATION[s.weights]]
    if s.kv == "fp8":
        args += [flag(tool, "kv_dtype"), _KV_FP8[tool]]
    return args


def vllm_serve_args(s: TierSettings, draft_model: str | None = None) -> list[str]:
    """`vllm serve` and its arguments."""
    t = "vllm"
    args = ["vllm", "serve", s.hf_id, flag(t, "host"), "0.0.0.0", flag(t, "port"), str(SERVE_PORT),
            flag(t, "tp"), str(s.tp), flag(t, "pp"), str(s.pp),
            flag(t, "max_seqs"), str(s.max_seqs), flag(t, "max_batched_tokens"), str(s.max_batched_tokens),
            flag(t, "gpu_mem_util"), f"{s.gpu_mem_util:g}", flag(t, "max_model_len"), str(s.max_model_len)]
    if not s.chunked_prefill:
        args.append(flag(t, "no_chunked_prefill"))
    args += _precision_args(s, t)
    if s.prefix_hit > 0:
        args.append(flag(t, "prefix_caching"))
    if s.spec_k > 0:
        # A draft model when one is named; otherwise n-gram lookup in the prompt, which needs none.
        spec = ({"model": draft_model, "num_speculative_tokens": s.spec_k} if draft_model
                else {"method": "ngram", "num_speculative_tokens": s.spec_k, "prompt_lookup_max": s.spec_k})
        args += [flag(t, "speculative"), json.dumps(spec, separators=(",", ":"))]
    return args


def sglang_args(s: TierSettings, draft_model: str | None = None) -> list[str]:
    """`python3 -m sglang.launch_server` and its arguments."""
    t = "sglang"
    args = ["python3", "-m", "sglang.launch_server", flag(t, "model"), s.hf_id, flag(t, "host"), "0.0.0.0",
            flag(t, "port"), str(SERVE_PORT), flag(t, "tp"), str(s.tp), flag(t, "pp"), str(s.pp),
            flag(t, "max_seqs"), str(s.max_seqs), flag(t, "gpu_mem_util"), f"{s.gpu_mem_util:g}",
            flag(t, "max_model_len"), str(s.max_model_len)]
    # SGLang turns chunked prefill off with a chunk size of -1 (server_args.py)
    args += [flag(t, "max_batched_tokens"), str(s.max_batched_tokens if s.chunked_prefill else -1)]
    args += _precision_args(s, t)
    if s.prefix_hit <= 0:  # the radix (prefix) cache is on by default
        args.append(flag(t, "no_prefix_caching"))
    if s.spec_k > 0 and draft_model:
        # a separate draft model; top-1 chains verify spec_k drafts plus the bonus token
        args += [flag(t, "spec_algorithm"), "STANDALONE", flag(t, "spec_draft_model"), draft_model,
                 flag(t, "spec_steps"), str(s.spec_k), flag(t, "spec_topk"), "1",
                 flag(t, "spec_draft_tokens"), str(s.spec_k + 1)]
    return args


def serve_notes(s: TierSettings, target: str, draft_model: str | None) -> list[str]:
    notes = precision_notes(s)
    if s.max_model_len < s.longest_request:
        notes.append(f"the load's longest requests ({s.longest_request:,} tokens) exceed what one replica holds "
                     f"({s.max_model_len:,}: the model's context or its KV cache); longer requests are refused")
    if s.spec_k > 0 and not draft_model:
        if target == "sglang":
            notes.append(f"the plan assumed speculative decoding ({s.spec_k} draft tokens); SGLang needs a draft model "
                         f"for it: export with --draft-model HF_ID, else this server runs without it")
        else:
            notes.append(f"speculative decoding by n-gram lookup ({s.spec_k} tokens); export with --draft-model HF_ID "
                         f"for a draft model (the plan assumed drafts cost {s.spec_draft_ratio:g} of a target step "
                         f"and {s.spec_accept:g} acceptance)")
    return notes


def server_args(s: TierSettings, target: str, draft_model: str | None) -> list[str]:
    return sglang_args(s, draft_model) if target == "sglang" else vllm_serve_args(s, draft_model)


# ---------------------------------------------------------------------------------------------
# Benchmark

# A p99 needs about 1,000 requests to rest on ten beyond it, and the run must outlast the warm-up
# (a few end-to-end latencies) many times over, so the steady state dominates what is measured.
MIN_BENCH_REQUESTS = 1000
MIN_BENCH_S = 300.0
BENCH_E2E_MULTIPLE = 20.0
# vllm bench serve's random lengths are uniform in [L(1-r), L(1+r)] with 0 <= r < 1.
MAX_RANGE_RATIO = 0.99
# Its backends: `vllm` for a vLLM server, the OpenAI completions API for any other.
BENCH_BACKEND = {"vllm": "vllm"}


def range_ratio(dist: LengthDist) -> float:
    """The uniform half-width (as a fraction of the mean) with the distribution's spread: a
    uniform on [L(1-r), L(1+r)] has a coefficient of variation of r / sqrt(3)."""
    x = grid(dist)
    mean = float(x.mean())
    cv = float(x.std()) / mean if mean > 0 else 0.0
    return min(math.sqrt(3.0) * cv, MAX_RANGE_RATIO)


def bench_plan(s: TierSettings) -> dict:
    """The benchmark's numbers: lengths, shared prefix, rate and request count."""
    prefix = round(s.prefix_hit * s.mean_input_tokens)
    ratio = round((range_ratio(s.input_len) + range_ratio(s.output_len)) / 2, 2)  # one ratio for both sides
    e2e_s = (s.e2e_p99_ms or 0.0) / 1e3
    duration_s = max(MIN_BENCH_S, BENCH_E2E_MULTIPLE * e2e_s)
    prompts = max(MIN_BENCH_REQUESTS, math.ceil(s.rate_per_replica_rps * duration_s))
    return {"input_len": max(1, round(s.mean_input_tokens) - prefix), "output_len": max(1, round(s.mean_output_tokens)),
            "prefix_len": prefix, "range_ratio": ratio, "rate_rps": round(s.rate_per_replica_rps, 4),
            "num_prompts": prompts, "duration_s": prompts / s.rate_per_replica_rps if s.rate_per_replica_rps > 0 else math.inf}


def bench_metadata(s: TierSettings) -> dict[str, str]:
    """What the result file must say for `planner validate` to predict it: written into it with
    --metadata, read back by planner.engine.bench_results."""
    return {"planner_model": s.model_id, "planner_gpu": s.gpu_id, "planner_tp": str(s.tp), "planner_pp": str(s.pp),
            "planner_weights": s.weights, "planner_kv": s.kv, "planner_engine": s.engine,
            "planner_max_seqs": str(s.max_seqs), "planner_max_batched_tokens": str(s.max_batched_tokens),
            "planner_prefix_hit": f"{s.prefix_hit:g}", "planner_gpu_mem_util": f"{s.gpu_mem_util:g}"}


def bench_args(s: TierSettings, base_url: str) -> list[str]:
    """`vllm bench serve` reproducing the load one replica takes at the plan's peak."""
    t = "bench"
    b = bench_plan(s)
    args = ["vllm", "bench", "serve", flag(t, "backend"), BENCH_BACKEND.get(s.engine, "openai"),
            flag(t, "base_url"), base_url, flag(t, "model"), s.hf_id,
            flag(t, "dataset"), "random", flag(t, "input_len"), str(b["input_len"]),
            flag(t, "output_len"), str(b["output_len"]), flag(t, "range_ratio"), f"{b['range_ratio']:g}"]
    if b["prefix_len"] > 0:
        args += [flag(t, "prefix_len"), str(b["prefix_len"])]
    args += [flag(t, "ignore_eos"), flag(t, "rate"), f"{b['rate_rps']:g}", flag(t, "burstiness"), "1",
             flag(t, "num_prompts"), str(b["num_prompts"]), flag(t, "seed"), "0",
             flag(t, "percentile_metrics"), "ttft,tpot,itl,e2el", flag(t, "metric_percentiles"), "50,90,99",
             flag(t, "save_result"), flag(t, "save_detailed"), flag(t, "result_filename"), f"{s.name}.json",
             flag(t, "metadata"), *(f"{k}={v}" for k, v in bench_metadata(s).items())]
    return args


def shell(args: list[str]) -> str:
    """One command, a flag and its value per line, quoted for a POSIX shell."""
    lines: list[list[str]] = [[]]
    for arg in args:
        if arg.startswith("--") and lines[-1]:
            lines.append([])
        lines[-1].append(shlex.quote(arg))
    return " \\\n  ".join(" ".join(line) for line in lines)
