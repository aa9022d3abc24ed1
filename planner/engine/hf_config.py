"""Read a local Hugging Face config.json into a ModelSpec (never touches the network).

Key names follow the transformers configuration classes of each architecture (LlamaConfig,
MistralConfig, MixtralConfig, Qwen2Config, Qwen2MoeConfig, Qwen3Config, Qwen3MoeConfig,
Gemma2Config, Gemma3TextConfig, Phi3Config, DeepseekV3Config, Glm4MoeConfig, Llama4TextConfig,
GptOssConfig; Kimi K2's kimi_k2 is DeepSeek-V3's layout).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planner.engine.specs import ModelSpec


class HfConfigError(ValueError):
    """A config.json that cannot be read as a supported decoder-only model."""


DENSE = {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"}
ROUTED = {"mixtral", "gpt_oss", "qwen2_moe", "qwen3_moe", "llama4_text", "glm4_moe"}
MLA = {"deepseek_v3", "deepseek_v2", "kimi_k2"}
SUPPORTED = DENSE | ROUTED | MLA

# architectures[0] -> model_type, for configs that omit model_type
_ARCH_TO_TYPE = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
    "Glm4MoeForCausalLM": "glm4_moe",
    "Mistral3ForConditionalGeneration": "mistral3",
    "Phi3ForCausalLM": "phi3",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "Llama4ForConditionalGeneration": "llama4",
    "Llama4ForCausalLM": "llama4_text",
    "GptOssForCausalLM": "gpt_oss",
}

# Multimodal wrappers and text-only variants that plan as one language-model family
_CANONICAL = {"llama4": "llama4_text", "gemma3_text": "gemma3", "mistral3": "mistral"}

# Keys a model's config.json may leave out because its transformers class has a default
# (Gemma3TextConfig: google/gemma-3-4b-it ships neither vocab_size nor the head counts):
# https://github.com/huggingface/transformers/blob/008f5c8c29be84d4721dc6d1e0fcd72300580be4/src/transformers/models/gemma3/configuration_gemma3.py
_CLASS_DEFAULTS = {
    "gemma3": {"vocab_size": 262_208, "max_position_embeddings": 131_072, "num_attention_heads": 8,
               "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 4096, "sliding_window_pattern": 6},
}

# float32 checkpoints (e.g. google/gemma-2-9b) are served in bf16, so they plan as bf16
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "bf16", "float8_e4m3fn": "fp8"}

_BASE_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size", "max_position_embeddings")
_FAMILY_KEYS = {
    "mixtral": ("intermediate_size", "num_local_experts", "num_experts_per_tok"),
    "gpt_oss": ("intermediate_size", "num_local_experts", "num_experts_per_tok"),
    "llama4_text": ("intermediate_size", "num_local_experts", "num_experts_per_tok"),
    "qwen2_moe": ("moe_intermediate_size", "num_experts", "num_experts_per_tok"),
    "qwen3_moe": ("moe_intermediate_size", "num_experts", "num_experts_per_tok"),
    "deepseek_v3": ("intermediate_size", "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok",
                    "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"),
}
_FAMILY_KEYS["deepseek_v2"] = _FAMILY_KEYS["kimi_k2"] = _FAMILY_KEYS["deepseek_v3"]
_FAMILY_KEYS["glm4_moe"] = ("intermediate_size", "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok")

# Keys read as whole numbers. Counts and sizes must be positive; the others may be 0 (none or off).
_POSITIVE_INT_KEYS = (
    *_BASE_KEYS, "num_key_value_heads", "head_dim", "intermediate_size", "intermediate_size_mlp",
    "moe_intermediate_size", "num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok",
    "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "decoder_sparse_step",
    "interleave_moe_layer_step",
)
_NON_NEGATIVE_INT_KEYS = (
    "q_lora_rank", "n_shared_experts", "first_k_dense_replace", "shared_expert_intermediate_size",
    "attention_chunk_size", "sliding_window",
)


def _shown_file(path: Path, display: str | None) -> str:
    """How errors name the file: as the user wrote it, and the file itself when they gave its folder."""
    given = display or str(path)
    return given if given.endswith(".json") else str(Path(given) / "config.json")


def _errors_name_the_file(read: Callable[..., ModelSpec]) -> Callable[..., ModelSpec]:
    """Whatever a config's values break further down (a type, a division, the ModelSpec's own
    checks) surfaces as one HfConfigError line that names the file, never as a bare Python error."""

    @functools.wraps(read)
    def wrapper(path: Path, display: str | None = None) -> ModelSpec:
        try:
            return read(path, display)
        except HfConfigError:
            raise
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            message = str(error.get("ctx", {}).get("error") or error["msg"])
            raise HfConfigError(f"{_shown_file(Path(path), display)}: cannot read a model: {field}: "
                                f"{' '.join(message.split())}") from exc
        except (ValueError, TypeError, ArithmeticError, KeyError, AttributeError, RecursionError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise HfConfigError(f"{_shown_file(Path(path), display)}: cannot read a model: {reason}") from exc

    return wrapper


@_errors_name_the_file
def model_from_hf_config(path: Path, display: str | None = None) -> ModelSpec:
    """Parse `path` (a config.json or a folder holding one). `display` is how the user wrote the
    path; it names the file in errors and in the spec's source."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    given = display or str(path)
    shown = _shown_file(path, display)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise HfConfigError(f"{shown}: cannot read config.json: not UTF-8 text (byte {exc.start})") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise HfConfigError(f"{shown}: cannot read config.json: {exc}") from exc
    if not isinstance(raw, dict):
        raise HfConfigError(f"{shown}: config.json is not a JSON object")
    cfg, model_type = _text_config(raw)
    cfg = _CLASS_DEFAULTS.get(model_type, {}) | cfg
    _check(cfg, model_type, shown)
    fields = _common(cfg, model_type) | _family_fields(cfg, model_type)
    fields |= _sliding(cfg, model_type, fields["layers"], fields["max_context"])
    return ModelSpec(
        id=_model_id(file, raw),
        name=raw.get("_name_or_path") or file.parent.name or "custom model",
        family=model_type,
        aliases=[raw["_name_or_path"]] if raw.get("_name_or_path") else [],
        dtype=_dtype(raw, cfg, shown),
        dense_dtype=_dense_dtype(raw, cfg),
        fp4_scale_block=32 if _quant_method(raw, cfg) == "mxfp4" else 16,
        source=f"config.json at {given}",
        **fields,
    )


def _text_config(raw: dict) -> tuple[dict, str]:
    """Multimodal wrappers (Llama 4, Gemma 3, Mistral Small 3.1) keep the language model under
    text_config, which is what the planner sizes; outer keys such as quantization_config stay
    readable from `raw`."""
    model_type = raw.get("model_type") or _ARCH_TO_TYPE.get((raw.get("architectures") or [""])[0], "")
    if isinstance(raw.get("text_config"), dict):
        text = raw["text_config"]
        inner = text.get("model_type") or model_type
        return text, _CANONICAL.get(inner, inner)
    return raw, _CANONICAL.get(model_type, model_type)


def _check(cfg: dict, model_type: str, shown: str) -> None:
    if model_type not in SUPPORTED:
        arch = (cfg.get("architectures") or ["?"])[0]
        raise HfConfigError(
            f"{shown}: unsupported architecture {arch!r} (model_type {model_type!r}); "
            f"supported model_types: {', '.join(sorted(SUPPORTED))}"
        )
    needed = _BASE_KEYS + _FAMILY_KEYS.get(model_type, ("intermediate_size",))
    missing = [key for key in needed if cfg.get(key) is None]
    if missing:
        raise HfConfigError(f"{shown}: cannot read a model: missing {', '.join(missing)} (model_type {model_type!r})")
    for key in _POSITIVE_INT_KEYS + _NON_NEGATIVE_INT_KEYS:
        _check_whole_number(cfg, key, shown, least=1 if key in _POSITIVE_INT_KEYS else 0)
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    if heads % kv_heads:
        # grouped-query attention shares each KV head among an equal group of query heads
        raise HfConfigError(f"{shown}: num_attention_heads ({heads:g}) must be a multiple of num_key_value_heads "
                            f"({kv_heads:g}): each KV head serves an equal group of query heads")


def _check_whole_number(cfg: dict, key: str, shown: str, least: int) -> None:
    value = cfg.get(key)
    if value is None:
        return  # absent or null: the reader's default applies
    whole = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if not whole or value < least:
        allowed = "a positive whole number" if least == 1 else "a whole number, 0 or more"
        raise HfConfigError(f"{shown}: {key} = {json.dumps(value)[:40]}: must be {allowed}")


def _common(cfg: dict, model_type: str) -> dict[str, Any]:
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    hidden = int(cfg["hidden_size"])
    return {
        "layers": int(cfg["num_hidden_layers"]),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": int(cfg.get("head_dim") or hidden // heads),
        "ffn_dim": int(cfg.get("intermediate_size") or 0),
        "vocab": int(cfg["vocab_size"]),
        # Gemma2Config and Gemma3TextConfig default tie_word_embeddings to True; the others to False
        "tie_embeddings": bool(cfg.get("tie_word_embeddings", model_type in ("gemma2", "gemma3"))),
        "attention": "gqa" if kv_heads < heads else "mha",
        "max_context": int(cfg["max_position_embeddings"]),
    }


def _family_fields(cfg: dict, model_type: str) -> dict[str, Any]:
    if model_type in MLA:
        return _deepseek(cfg)
    if model_type in ("qwen2_moe", "qwen3_moe"):
        return _qwen_moe(cfg)
    if model_type == "llama4_text":
        return _llama4(cfg)
    if model_type == "glm4_moe":
        return _glm4_moe(cfg)
    if model_type in ("mixtral", "gpt_oss"):
        # every layer routes; intermediate_size is the expert width (MixtralConfig, GptOssConfig)
        return {
            "experts": int(cfg["num_local_experts"]),
            "experts_per_token": int(cfg["num_experts_per_tok"]),
            "moe_ffn_dim": int(cfg["intermediate_size"]),
        }
    return {}


def _qwen_moe(cfg: dict) -> dict[str, Any]:
    """Qwen2MoeSparseMoeBlock: routed experts of moe_intermediate_size plus (Qwen2-MoE only) one
    shared expert of shared_expert_intermediate_size. ModelSpec sizes shared experts like routed
    ones, so the shared expert counts as round(shared/moe) experts; this is exact for released
    checkpoints (Qwen1.5-MoE-A2.7B 5632/1408 = 4, Qwen2-57B-A14B 20480/2560 = 8)."""
    layers, moe = int(cfg["num_hidden_layers"]), int(cfg["moe_intermediate_size"])
    step = int(cfg.get("decoder_sparse_step") or 1)
    mlp_only = set(cfg.get("mlp_only_layers") or [])
    # transformers Qwen2MoeDecoderLayer: sparse iff not in mlp_only_layers and (i + 1) % step == 0
    moe_layers = sum(1 for i in range(layers) if i not in mlp_only and (i + 1) % step == 0)
    return {
        "experts": int(cfg["num_experts"]),
        "experts_per_token": int(cfg["num_experts_per_tok"]),
        "moe_ffn_dim": moe,
        "shared_experts": round(int(cfg.get("shared_expert_intermediate_size") or 0) / moe),
        "dense_layers": layers - moe_layers,
    }


def _llama4(cfg: dict) -> dict[str, Any]:
    """Llama 4: MoE layers hold num_local_experts routed experts of intermediate_size plus one
    shared expert of the same size; the other layers are dense with intermediate_size_mlp.
    MoE layers are listed in moe_layers, or every interleave_moe_layer_step-th layer. ModelSpec
    places dense layers first; the count, not the position, sets params and FLOPs."""
    layers = int(cfg["num_hidden_layers"])
    step = int(cfg.get("interleave_moe_layer_step") or 1)
    moe_layers = cfg.get("moe_layers")
    n_moe = len(moe_layers) if moe_layers is not None else sum(1 for i in range(layers) if (i + 1) % step == 0)
    return {
        "experts": int(cfg["num_local_experts"]),
        "experts_per_token": int(cfg["num_experts_per_tok"]),
        "shared_experts": 1,
        "moe_ffn_dim": int(cfg["intermediate_size"]),
        "ffn_dim": int(cfg.get("intermediate_size_mlp") or cfg["intermediate_size"]),
        "dense_layers": layers - n_moe,
    }


def _glm4_moe(cfg: dict) -> dict[str, Any]:
    """GLM-4.5 (Glm4MoeConfig): GQA attention; the first first_k_dense_replace layers are dense
    (intermediate_size), the rest hold n_routed_experts of moe_intermediate_size and
    n_shared_experts of the same width. The multi-token-prediction layer
    (num_nextn_predict_layers) is a draft module, not part of the served model."""
    return {
        "experts": int(cfg["n_routed_experts"]),
        "experts_per_token": int(cfg["num_experts_per_tok"]),
        "shared_experts": int(cfg.get("n_shared_experts") or 0),
        "moe_ffn_dim": int(cfg["moe_intermediate_size"]),
        "dense_layers": int(cfg.get("first_k_dense_replace") or 0),
    }


def _deepseek(cfg: dict) -> dict[str, Any]:
    """DeepSeek-V2/V3 MLA + MoE. The first first_k_dense_replace layers are dense; head_dim is the
    nominal no-RoPE q/k width (hidden/heads does not describe MLA heads)."""
    return {
        "attention": "mla",
        "head_dim": int(cfg["qk_nope_head_dim"]),
        "kv_lora_rank": int(cfg["kv_lora_rank"]),
        "q_lora_rank": int(cfg.get("q_lora_rank") or 0),  # V2-Lite has no query compression
        "qk_rope_head_dim": int(cfg["qk_rope_head_dim"]),
        "qk_nope_head_dim": int(cfg["qk_nope_head_dim"]),
        "v_head_dim": int(cfg["v_head_dim"]),
        "experts": int(cfg["n_routed_experts"]),
        "experts_per_token": int(cfg["num_experts_per_tok"]),
        "shared_experts": int(cfg.get("n_shared_experts") or 0),
        "moe_ffn_dim": int(cfg["moe_intermediate_size"]),
        "dense_layers": int(cfg.get("first_k_dense_replace") or 0),
    }


def _sliding(cfg: dict, model_type: str, layers: int, max_context: int) -> dict[str, Any]:
    """Sliding-window (or Llama 4 chunked) attention and the share of layers that use it."""
    if model_type == "llama4_text" and cfg.get("attention_chunk_size"):
        return {"sliding_window": int(cfg["attention_chunk_size"]), "sliding_layers_fraction": _llama4_chunked_share(cfg, layers)}
    window = cfg.get("sliding_window")
    if not window or int(window) >= max_context or cfg.get("use_sliding_window") is False:
        return {}  # e.g. Phi-3.5's 262144 exceeds its context; Qwen2 ships use_sliding_window false
    layer_types = cfg.get("layer_types")
    if layer_types:  # gpt-oss, newer Gemma 3 configs
        fraction = sum(kind == "sliding_attention" for kind in layer_types) / len(layer_types)
    elif cfg.get("sliding_window_pattern"):
        # Gemma 3: layer i is global iff (i + 1) % pattern == 0, five local to one global
        # (transformers Gemma3TextConfig; Gemma 3 report, arXiv 2503.19786)
        pattern = int(cfg["sliding_window_pattern"])
        fraction = sum(1 for i in range(layers) if (i + 1) % pattern) / layers
    elif model_type == "gemma2":
        fraction = 0.5  # local and global layers alternate (Gemma 2 report, arXiv 2408.00118)
    else:
        fraction = 1.0  # Mistral-7B-v0.1: every layer windowed
    return {"sliding_window": int(window), "sliding_layers_fraction": fraction}


def _llama4_chunked_share(cfg: dict, layers: int) -> float:
    """Llama 4 attends within attention_chunk_size-token chunks on its RoPE layers and globally on
    its NoPE layers: no_rope_layers[i] is 1 for a chunked layer, and defaults to every layer but
    each no_rope_layer_interval-th (4), so 3 of 4 layers are chunked (Llama4TextConfig). A chunk
    bounds the KV a layer keeps like a window of the same size (an upper bound)."""
    flags = cfg.get("no_rope_layers")
    if flags:
        return sum(1 for flag in flags if flag) / len(flags)
    interval = int(cfg.get("no_rope_layer_interval") or 4)
    return sum(1 for i in range(layers) if (i + 1) % interval) / layers


def _dtype(raw: dict, cfg: dict, shown: str) -> str:
    quant = raw.get("quantization_config") or cfg.get("quantization_config")
    if quant:
        return _quant_dtype(quant, shown)
    torch_dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or raw.get("torch_dtype") or "bfloat16")
    return _TORCH_DTYPES.get(torch_dtype.removeprefix("torch."), "bf16")


def _dense_dtype(raw: dict, cfg: dict) -> str:
    """The format of the weights outside the routed experts when a checkpoint quantizes only its
    experts: gpt-oss ships MXFP4 experts and lists attention, router, embeddings and head under
    modules_to_not_convert, which stay bf16 (openai/gpt-oss-120b config.json)."""
    quant = raw.get("quantization_config") or cfg.get("quantization_config") or {}
    kept = " ".join(str(m) for m in quant.get("modules_to_not_convert") or [])
    return "bf16" if _quant_method(raw, cfg) == "mxfp4" and "self_attn" in kept else ""


def _quant_method(raw: dict, cfg: dict) -> str:
    """quantization_config's quant_method, lower case ("" without one)."""
    quant = raw.get("quantization_config") or cfg.get("quantization_config") or {}
    return str(quant.get("quant_method", "")).lower()


def _quant_dtype(quant: dict, shown: str) -> str:
    """Weight format from quantization_config (transformers quantizer names)."""
    method = str(quant.get("quant_method", "")).lower()
    if method in ("fp8", "fbgemm_fp8"):
        return "fp8"
    if method in ("mxfp4", "nvfp4"):
        return "fp4"
    if method in ("gptq", "awq"):
        return _int_bits(int(quant.get("bits", 4)), shown)
    if method == "bitsandbytes":
        return "int4" if quant.get("load_in_4bit") else "int8"
    if method == "modelopt":
        algo = str(quant.get("quant_algo", "")).upper()
        return "fp4" if "FP4" in algo else "fp8"
    if method == "compressed-tensors":
        return _compressed_tensors(quant, shown)
    raise HfConfigError(f"{shown}: unsupported quantization_config quant_method {method!r}")


def _int_bits(bits: int, shown: str) -> str:
    if bits not in (4, 8):
        raise HfConfigError(f"{shown}: unsupported {bits}-bit integer quantization")
    return f"int{bits}"


def _compressed_tensors(quant: dict, shown: str) -> str:
    """llm-compressor configs: weight bits and type live in config_groups.*.weights."""
    if "fp4" in str(quant.get("format", "")).lower():
        return "fp4"  # e.g. "nvfp4-pack-quantized"
    for group in (quant.get("config_groups") or {}).values():
        weights = group.get("weights") or {}
        bits, kind = int(weights.get("num_bits", 16)), str(weights.get("type", "int"))
        if kind == "float":
            return {8: "fp8", 4: "fp4"}.get(bits, "bf16")
        return _int_bits(bits, shown)
    raise HfConfigError(f"{shown}: compressed-tensors quantization_config has no config_groups weights")


def _model_id(file: Path, raw: dict) -> str:
    """The folder name, else the tail of _name_or_path, lowercased."""
    folder = file.resolve().parent.name
    if folder:
        return folder.lower()
    tail = str(raw.get("_name_or_path") or "custom-model").rstrip("/").split("/")[-1]
    return tail.lower()
