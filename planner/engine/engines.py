"""The serving engines the planner models, and each one's documented defaults for the knobs a
profile leaves unset.

All three run continuous batching with chunked prefill under a per-step token budget and a cap on
running sequences; what differs for the queueing model is the size of those two limits (below) and
the per-step costs of each engine's scheduler and kernels, which calibration fits per engine and
GPU family (knobs.Calibration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the CLI reads ENGINES before it loads the engine
    from planner.engine.specs import GpuSpec

Engine = Literal["vllm", "sglang", "trtllm"]
ENGINES: tuple[str, ...] = ("vllm", "sglang", "trtllm")
DEFAULT_ENGINE = "vllm"
ENGINE_NAMES = {"vllm": "vLLM V1", "sglang": "SGLang", "trtllm": "TensorRT-LLM"}

def _big_non_ampere(gpu: GpuSpec) -> bool:
    return gpu.memory_gib >= 70 and gpu.family != "ampere"


def default_max_seqs(engine: str, gpu: GpuSpec) -> int:
    """Running-sequence cap when the profile sets none.
    vLLM V1 (API server): 1024 on GPUs of >= 70 GiB other than A100, else 256 (vllm/engine/
    arg_utils.py, EngineArgs.get_batch_defaults).
    SGLang: its request pool (max_running_requests unset) holds 2048 requests at usual context
    lengths (python/sglang/srt/model_executor/model_runner.py clamps it to 2048-4096); the KV cache
    binds long before that on most loads.
    TensorRT-LLM: trtllm-serve's --max_batch_size 2048 (docs: commands/trtllm-serve)."""
    if engine == "vllm":
        return 1024 if _big_non_ampere(gpu) else 256
    return 2048


def kv_from_free_memory(engine: str) -> bool:
    """Whether the memory share (`gpu_mem_util`) is of the memory left free once the model is
    loaded. TensorRT-LLM gives its KV cache that share of the free memory (KvCacheConfig.
    free_gpu_memory_fraction, default 0.9: https://nvidia.github.io/TensorRT-LLM/examples/
    kvcacheconfig.html); vLLM's gpu_memory_utilization and SGLang's mem_fraction_static are shares of
    the whole GPU that weights, activations and the KV cache split between them."""
    return engine == "trtllm"


def reserves_whole_sequence(engine: str) -> bool:
    """Whether the engine admits a request only once the KV cache can hold its prompt and every
    output token it may generate. TensorRT-LLM's default capacity scheduler, GUARANTEED_NO_EVICT,
    does (https://nvidia.github.io/TensorRT-LLM/torch/scheduler.html); vLLM and SGLang admit on the
    prompt and preempt when the cache runs out, so their running batch is set by the mean context."""
    return engine == "trtllm"


def profiles_memory_peak(engine: str) -> bool:
    """Whether the engine holds back, besides weights and KV cache, what its start-up profile
    measured (vLLM's profile run: roofline.engine_memory_bytes) rather than a fixed reserve."""
    return engine == "vllm"


def default_batched_tokens(engine: str, gpu: GpuSpec) -> int:
    """Per-step token budget (chunked-prefill size) when the profile sets none.
    vLLM V1 (API server): 8192 on GPUs of >= 70 GiB other than A100, else 2048.
    SGLang: chunked_prefill_size 2048 under 35 GiB, 8192 under 160 GiB, 16384 above
    (python/sglang/srt/server_args.py).
    TensorRT-LLM: trtllm-serve's --max_num_tokens 8192."""
    if engine == "vllm":
        return 8192 if _big_non_ampere(gpu) else 2048
    if engine == "sglang":
        if gpu.memory_gib < 35:
            return 2048
        return 8192 if gpu.memory_gib < 160 else 16384
    return 8192


def moe_weight_padding(engine: str, gpu: GpuSpec, mxfp4: bool) -> tuple[int, int]:
    """(hidden, inner) multiples to which the engine pads each routed expert's matrices, the inner
    one per TP shard; (1, 1) where it stores them as the checkpoint has them.
    vLLM pads MXFP4 experts for its MoE kernels (vllm/model_executor/layers/quantization/mxfp4.py,
    Mxfp4MoEMethod.create_weights): Marlin, its kernel on GPUs without a native path (Ampere, Ada),
    to 256 and 128; FlashInfer on Blackwell to 256 and 256; on Hopper its Triton kernels keep the
    inner size (a multiple of 64) and the weights load as if the hidden size were padded to 256:
    gpt-oss-120b takes 64.38 GiB on one H100 there (vLLM issue 33155) and 65.97 GiB under Marlin
    (vLLM issue 23278), which these paddings give to within 0.2%, against 60.6 GiB unpadded."""
    if engine != "vllm" or not mxfp4 or gpu.vendor != "nvidia":
        return (1, 1)
    if gpu.family == "hopper":
        return (256, 64)
    if gpu.family == "blackwell":
        return (256, 256)
    return (256, 128)
