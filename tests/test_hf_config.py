"""Reading Hugging Face config.json files (fixtures in tests/data/hf/<id>/config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.engine import catalog
from planner.engine.hf_config import HfConfigError, model_from_hf_config

FIXTURES = Path(__file__).parent / "data" / "hf"
FIXTURE_DIRS = sorted(p for p in FIXTURES.iterdir() if (p / "config.json").is_file())
ARCH_FIELDS = [
    "layers", "hidden", "heads", "kv_heads", "head_dim", "ffn_dim", "vocab", "tie_embeddings", "gated_mlp",
    "attention", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
    "experts", "experts_per_token", "shared_experts", "moe_ffn_dim", "dense_layers", "sliding_window",
    "sliding_layers_fraction", "max_context", "dtype", "dense_dtype",
]


def _write(tmp_path: Path, config: dict, folder: str = "custom") -> Path:
    path = tmp_path / folder / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(config))
    return path


def _base_config(**overrides) -> dict:
    config = json.loads((FIXTURES / "llama-3.1-8b" / "config.json").read_text())
    config.update(overrides)
    return config


def test_every_supported_architecture_has_a_fixture():
    types = {model_from_hf_config(d).family for d in FIXTURE_DIRS}
    assert types >= {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2", "phi3",
                     "deepseek_v3", "llama4_text", "gpt_oss", "kimi_k2"}


@pytest.mark.parametrize("folder", FIXTURE_DIRS, ids=lambda p: p.name)
def test_fixture_matches_catalog_entry(folder):
    spec = model_from_hf_config(folder)
    assert spec.id == folder.name
    assert spec.source == f"config.json at {folder}"
    entry = catalog.models().get(folder.name)
    if entry is None:
        pytest.skip(f"{folder.name} has no catalog entry")
    for field in ARCH_FIELDS:
        assert getattr(spec, field) == getattr(entry, field), f"{folder.name}.{field}"


def test_deepseek_v3_reads_mla_moe_and_fp8():
    spec = model_from_hf_config(FIXTURES / "deepseek-v3" / "config.json")
    assert spec.attention == "mla" and spec.kv_lora_rank == 512 and spec.qk_rope_head_dim == 64
    assert (spec.experts, spec.experts_per_token, spec.shared_experts, spec.dense_layers) == (256, 8, 1, 3)
    assert spec.dtype == "fp8"
    assert spec.params_total == pytest.approx(671e9, rel=0.03)


def test_qwen2_moe_shared_expert_counts_as_expert_multiples():
    spec = model_from_hf_config(FIXTURES / "qwen1.5-moe-a2.7b")
    assert spec.shared_experts == 4  # 5632 / 1408
    # model card: "14.3B parameters in total and 2.7B activated"
    assert spec.params_total == pytest.approx(14.3e9, rel=0.03)
    assert spec.params_active == pytest.approx(2.7e9, rel=0.03)


def test_llama4_nested_text_config():
    spec = model_from_hf_config(FIXTURES / "llama-4-scout-17b-16e")
    assert spec.family == "llama4_text" and spec.hidden == 5120 and spec.layers == 48
    assert (spec.experts, spec.experts_per_token, spec.shared_experts, spec.dense_layers) == (16, 1, 1, 0)
    # Meta: 109B total, 17B active
    assert spec.params_total == pytest.approx(109e9, rel=0.03)
    assert spec.params_active == pytest.approx(17e9, rel=0.03)


def test_llama4_interleaved_moe_layers(tmp_path):
    config = json.loads((FIXTURES / "llama-4-scout-17b-16e" / "config.json").read_text())
    config["text_config"]["interleave_moe_layer_step"] = 2  # Maverick's layout
    spec = model_from_hf_config(_write(tmp_path, config))
    assert spec.dense_layers == 24 and spec.ffn_dim == 16384


def test_gemma2_defaults_to_tied_embeddings_and_bf16():
    spec = model_from_hf_config(FIXTURES / "gemma-2-9b")
    assert spec.tie_embeddings and spec.head_dim == 256
    assert spec.dtype == "bf16"  # the float32 checkpoint is served in bf16


def test_phi3_is_mha_and_ignores_an_oversized_window():
    spec = model_from_hf_config(FIXTURES / "phi-3.5-mini")
    assert spec.attention == "mha" and spec.head_dim == 96
    assert spec.sliding_window == 0
    assert spec.aliases == ["Phi-3.5-mini-instruct"]


def test_mistral_v01_window_covers_every_layer(tmp_path):
    spec = model_from_hf_config(_write(tmp_path, _base_config(model_type="mistral", sliding_window=4096)))
    assert spec.sliding_window == 4096 and spec.sliding_layers_fraction == 1.0


@pytest.mark.parametrize(
    "quant, dtype",
    [
        ({"quant_method": "fp8"}, "fp8"),
        ({"quant_method": "gptq", "bits": 4}, "int4"),
        ({"quant_method": "awq", "bits": 4}, "int4"),
        ({"quant_method": "gptq", "bits": 8}, "int8"),
        ({"quant_method": "mxfp4"}, "fp4"),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "fp4"),
        ({"quant_method": "compressed-tensors", "format": "float-quantized",
          "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}}}, "fp8"),
        ({"quant_method": "compressed-tensors", "format": "pack-quantized",
          "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int"}}}}, "int4"),
        ({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized", "config_groups": {}}, "fp4"),
    ],
)
def test_quantization_config_sets_dtype(tmp_path, quant, dtype):
    assert model_from_hf_config(_write(tmp_path, _base_config(quantization_config=quant))).dtype == dtype


def test_torch_dtype_sets_dtype(tmp_path):
    assert model_from_hf_config(_write(tmp_path, _base_config(torch_dtype="float16"))).dtype == "fp16"


def test_unknown_architecture_is_a_clear_error(tmp_path):
    path = _write(tmp_path, {"architectures": ["FooForCausalLM"], "model_type": "foo", "hidden_size": 8})
    with pytest.raises(HfConfigError, match=r"config\.json: unsupported architecture 'FooForCausalLM' \(model_type 'foo'\)"):
        model_from_hf_config(path)


def test_missing_keys_are_named(tmp_path):
    config = _base_config()
    del config["num_hidden_layers"], config["hidden_size"]
    path = _write(tmp_path, config)
    with pytest.raises(HfConfigError) as err:
        model_from_hf_config(path, display="models/custom/config.json")
    assert str(err.value) == (
        "models/custom/config.json: cannot read a model: missing num_hidden_layers, hidden_size (model_type 'llama')"
    )


def test_unreadable_file_is_an_hf_config_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(HfConfigError, match="cannot read config.json"):
        model_from_hf_config(path)


@pytest.mark.parametrize(("key", "raw", "shown", "allowed"), [
    ("hidden_size", '"big"', '"big"', "a positive whole number"),
    ("num_hidden_layers", "NaN", "NaN", "a positive whole number"),
    ("vocab_size", "Infinity", "Infinity", "a positive whole number"),
    ("num_attention_heads", "0", "0", "a positive whole number"),
    ("intermediate_size", "14336.5", "14336.5", "a positive whole number"),
    ("num_key_value_heads", "true", "true", "a positive whole number"),
    ("sliding_window", "-1", "-1", "a whole number, 0 or more"),
])
def test_bad_numbers_name_the_file_and_the_key(tmp_path, key, raw, shown, allowed):
    # NaN and Infinity are what Python's json writes and reads for non-finite floats
    text = json.dumps(_base_config(**{key: "PLACEHOLDER"})).replace('"PLACEHOLDER"', raw)
    path = tmp_path / "custom" / "config.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(HfConfigError) as err:
        model_from_hf_config(path, display="models/custom/config.json")
    assert str(err.value) == f"models/custom/config.json: {key} = {shown}: must be {allowed}"


def test_query_heads_must_split_evenly_among_kv_heads(tmp_path):
    path = _write(tmp_path, _base_config(num_attention_heads=7, num_key_value_heads=3, hidden_size=7 * 128))
    with pytest.raises(HfConfigError) as err:
        model_from_hf_config(path, display="custom/config.json")
    assert str(err.value) == ("custom/config.json: num_attention_heads (7) must be a multiple of "
                              "num_key_value_heads (3): each KV head serves an equal group of query heads")


@pytest.mark.parametrize("quant", [{"quant_method": "gptq", "bits": "four"}, {"quant_method": "awq", "bits": None}])
def test_other_bad_values_still_name_the_file(tmp_path, quant):
    path = _write(tmp_path, _base_config(quantization_config=quant))
    with pytest.raises(HfConfigError, match=r"^custom/config\.json: cannot read a model: "):
        model_from_hf_config(path, display="custom")


def test_model_spec_refusals_name_the_file(tmp_path):
    config = _base_config(model_type="mixtral", num_local_experts=4, num_experts_per_tok=6)
    path = _write(tmp_path, config)
    with pytest.raises(HfConfigError) as err:
        model_from_hf_config(path, display="custom/config.json")
    assert str(err.value).startswith("custom/config.json: cannot read a model: experts_per_token: ")
    assert "\n" not in str(err.value)


def test_a_config_nested_too_deeply_names_the_file(tmp_path):
    path = tmp_path / "deep" / "config.json"
    path.parent.mkdir()
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HfConfigError, match=r"^deep/config\.json: cannot read a model: maximum recursion depth"):
        model_from_hf_config(path, display="deep")


# google/gemma-3-27b-it's text_config as the Hub ships it: vocab, positions and the layer pattern
# are Gemma3TextConfig defaults (dims as in MaxText's copy, see the gemma-3-27b catalog entry)
GEMMA3_27B = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {"head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
                    "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16,
                    "query_pre_attn_scalar": 168, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "torch_dtype": "bfloat16",
    "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model", "num_hidden_layers": 27},
}


def test_gemma3_reads_the_language_model_with_its_class_defaults(tmp_path):
    spec = model_from_hf_config(_write(tmp_path, GEMMA3_27B, "gemma-3-27b"))
    assert spec.family == "gemma3" and spec.tie_embeddings
    assert (spec.vocab, spec.max_context) == (262208, 131072)  # Gemma3TextConfig defaults
    # five local layers to one global: 62 layers -> 10 global, 52 with a 1024-token window
    assert spec.sliding_window == 1024 and spec.sliding_layers_fraction == 52 / 62
    entry = catalog.models()["gemma-3-27b"]
    for field in ARCH_FIELDS:
        assert getattr(spec, field) == getattr(entry, field), field


def test_gemma3_layer_types_win_over_the_pattern(tmp_path):
    config = json.loads(json.dumps(GEMMA3_27B))
    config["text_config"]["layer_types"] = ["sliding_attention"] * 31 + ["full_attention"] * 31
    spec = model_from_hf_config(_write(tmp_path, config))
    assert spec.sliding_layers_fraction == 0.5


def test_gemma3_4b_config_without_head_counts_takes_the_defaults(tmp_path):
    text = {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
            "sliding_window": 1024}
    spec = model_from_hf_config(_write(tmp_path, {"model_type": "gemma3", "text_config": text}))
    assert (spec.heads, spec.kv_heads, spec.head_dim) == (8, 4, 256)
    assert spec.sliding_layers_fraction == 29 / 34
    assert spec.params_total == pytest.approx(3_880_099_328, rel=1e-3)  # KerasHub gemma3_4b_text


def test_llama4_no_rope_layers_set_the_chunked_share(tmp_path):
    config = json.loads((FIXTURES / "llama-4-scout-17b-16e" / "config.json").read_text())
    assert model_from_hf_config(_write(tmp_path, config, "default")).sliding_layers_fraction == 0.75  # 36 of 48
    config["text_config"]["no_rope_layers"] = [1, 0] * 24  # every other layer global
    spec = model_from_hf_config(_write(tmp_path, config, "explicit"))
    assert spec.sliding_window == 8192 and spec.sliding_layers_fraction == 0.5


def test_gpt_oss_window_layers_and_mxfp4_experts():
    spec = model_from_hf_config(FIXTURES / "gpt-oss-120b")
    assert spec.sliding_window == 128 and spec.sliding_layers_fraction == 0.5  # layer_types alternate
    assert (spec.experts, spec.experts_per_token) == (128, 4)
    assert spec.dtype == "fp4" and spec.dense_dtype == "bf16"  # attention, router, embeddings not converted
    assert spec.fp4_scale_block == 32  # MXFP4: one scale per 32 values, as the catalog's entry
    assert spec.bytes_per_weight("fp4") == catalog.get_model("gpt-oss-120b").bytes_per_weight("fp4") == 0.53125


def test_kimi_k2_is_deepseek_v3_with_more_experts():
    spec = model_from_hf_config(FIXTURES / "kimi-k2")
    assert spec.attention == "mla" and spec.kv_lora_rank == 512
    assert (spec.experts, spec.experts_per_token, spec.shared_experts, spec.dense_layers) == (384, 8, 1, 1)
    assert spec.dtype == "fp8"
    assert spec.params_total == pytest.approx(1e12, rel=0.03)  # "1 trillion total parameters"


def test_glm4_moe_reads_routed_and_shared_experts(tmp_path):
    # zai-org/GLM-4.5 config.json keys that size the model
    config = {"architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "first_k_dense_replace": 3,
              "head_dim": 128, "hidden_size": 5120, "intermediate_size": 12288, "max_position_embeddings": 131072,
              "moe_intermediate_size": 1536, "n_routed_experts": 160, "n_shared_experts": 1, "num_attention_heads": 96,
              "num_experts_per_tok": 8, "num_hidden_layers": 92, "num_key_value_heads": 8, "num_nextn_predict_layers": 1,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 151552}
    spec = model_from_hf_config(_write(tmp_path, config, "glm-4.5"))
    assert (spec.experts, spec.experts_per_token, spec.shared_experts, spec.dense_layers) == (160, 8, 1, 3)
    assert spec.attention == "gqa" and spec.head_dim == 128
    entry = catalog.models()["glm-4.5"]
    for field in ARCH_FIELDS:
        assert getattr(spec, field) == getattr(entry, field), field
