"""Every command-line flag `planner export` writes, in one table, each with where it is documented.

The names were checked against each tool's own argument parser or documentation at the URL given;
tests check every emitted flag against this table, so a flag never appears without its source.
"""

from __future__ import annotations

from dataclasses import dataclass

# vLLM builds `vllm serve`'s engine flags from the EngineArgs fields (booleans also get --no-...).
VLLM_ENGINE_ARGS = "https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py"
VLLM_ENGINE_DOCS = "https://docs.vllm.ai/en/latest/configuration/engine_args/"
VLLM_NGRAM_DOCS = "https://docs.vllm.ai/en/latest/features/speculative_decoding/n_gram/"
VLLM_SERVER_ARGS = "https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/openai/cli_args.py"
VLLM_BENCH = "https://github.com/vllm-project/vllm/blob/main/vllm/benchmarks/serve.py"
VLLM_BENCH_DATASETS = "https://github.com/vllm-project/vllm/blob/main/vllm/benchmarks/datasets/arg_utils.py"
SGLANG_DOCS = "https://docs.sglang.io/advanced_features/server_arguments.html"
SGLANG_ARGS = "https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/server_args.py"


@dataclass(frozen=True)
class Flag:
    name: str  # as typed on the command line
    source: str  # where the tool documents it


# tool -> setting -> flag. Tools: "vllm" (vllm serve), "sglang" (python -m sglang.launch_server),
# "bench" (vllm bench serve).
FLAGS: dict[str, dict[str, Flag]] = {
    "vllm": {
        "host": Flag("--host", VLLM_SERVER_ARGS),
        "port": Flag("--port", VLLM_SERVER_ARGS),
        "tp": Flag("--tensor-parallel-size", VLLM_ENGINE_ARGS),
        "pp": Flag("--pipeline-parallel-size", VLLM_ENGINE_ARGS),
        "max_seqs": Flag("--max-num-seqs", VLLM_ENGINE_ARGS),
        "max_batched_tokens": Flag("--max-num-batched-tokens", VLLM_ENGINE_ARGS),
        "no_chunked_prefill": Flag("--no-enable-chunked-prefill", VLLM_ENGINE_ARGS),
        "gpu_mem_util": Flag("--gpu-memory-utilization", VLLM_ENGINE_DOCS),
        "dtype": Flag("--dtype", VLLM_ENGINE_DOCS),
        "quantization": Flag("--quantization", VLLM_ENGINE_DOCS),
        "kv_dtype": Flag("--kv-cache-dtype", VLLM_ENGINE_DOCS),
        "prefix_caching": Flag("--enable-prefix-caching", VLLM_ENGINE_DOCS),
        "max_model_len": Flag("--max-model-len", VLLM_ENGINE_DOCS),
        "speculative": Flag("--speculative-config", VLLM_NGRAM_DOCS),
    },
    "sglang": {
        "model": Flag("--model-path", SGLANG_DOCS),
        "host": Flag("--host", SGLANG_DOCS),
        "port": Flag("--port", SGLANG_DOCS),
        "tp": Flag("--tp", SGLANG_DOCS),
        "pp": Flag("--pp-size", SGLANG_ARGS),
        "max_seqs": Flag("--max-running-requests", SGLANG_DOCS),
        "max_batched_tokens": Flag("--chunked-prefill-size", SGLANG_DOCS),
        "gpu_mem_util": Flag("--mem-fraction-static", SGLANG_DOCS),
        "dtype": Flag("--dtype", SGLANG_DOCS),
        "quantization": Flag("--quantization", SGLANG_DOCS),
        "kv_dtype": Flag("--kv-cache-dtype", SGLANG_DOCS),
        "no_prefix_caching": Flag("--disable-radix-cache", SGLANG_DOCS),
        "max_model_len": Flag("--context-length", SGLANG_DOCS),
        "spec_algorithm": Flag("--speculative-algorithm", SGLANG_ARGS),
        "spec_draft_model": Flag("--speculative-draft-model-path", SGLANG_ARGS),
        "spec_steps": Flag("--speculative-num-steps", SGLANG_ARGS),
        "spec_topk": Flag("--speculative-eagle-topk", SGLANG_ARGS),
        "spec_draft_tokens": Flag("--speculative-num-draft-tokens", SGLANG_ARGS),
    },
    "bench": {
        "backend": Flag("--backend", VLLM_BENCH),
        "base_url": Flag("--base-url", VLLM_BENCH),
        "model": Flag("--model", VLLM_BENCH),
        "dataset": Flag("--dataset-name", VLLM_BENCH_DATASETS),
        "input_len": Flag("--random-input-len", VLLM_BENCH_DATASETS),
        "output_len": Flag("--random-output-len", VLLM_BENCH_DATASETS),
        "range_ratio": Flag("--random-range-ratio", VLLM_BENCH_DATASETS),
        "prefix_len": Flag("--random-prefix-len", VLLM_BENCH_DATASETS),
        "num_prompts": Flag("--num-prompts", VLLM_BENCH_DATASETS),
        "seed": Flag("--seed", VLLM_BENCH_DATASETS),
        "ignore_eos": Flag("--ignore-eos", VLLM_BENCH),
        "rate": Flag("--request-rate", VLLM_BENCH),
        "burstiness": Flag("--burstiness", VLLM_BENCH),
        "percentile_metrics": Flag("--percentile-metrics", VLLM_BENCH),
        "metric_percentiles": Flag("--metric-percentiles", VLLM_BENCH),
        "save_result": Flag("--save-result", VLLM_BENCH),
        "save_detailed": Flag("--save-detailed", VLLM_BENCH),
        "result_filename": Flag("--result-filename", VLLM_BENCH),
        "metadata": Flag("--metadata", VLLM_BENCH),
    },
}


def flag(tool: str, setting: str) -> str:
    return FLAGS[tool][setting].name
