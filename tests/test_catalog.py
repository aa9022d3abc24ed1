"""The built-in GPU and model catalogs and name lookup."""

from __future__ import annotations

import pytest

from planner.engine import catalog
from planner.engine.catalog import CatalogError, get_gpu, get_model
from planner.engine.specs import BYTES_PER_ELEMENT, GpuSpec

GPU_IDS = [
    "l4", "a10g", "l40s", "a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h100-nvl", "gh200",
    "h200", "b200", "gb200", "mi300x", "mi325x", "gaudi3", "tpu-v5e", "tpu-v6e",
    "b300", "gb300", "mi355x", "rtx-pro-6000", "l40", "a10", "h20", "tpu-v5p",
]
MODEL_IDS = [
    "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "mistral-7b", "qwen2.5-7b", "gemma-2-9b",
    "mistral-nemo-12b", "qwen3-14b", "qwen2.5-32b", "gemma-2-27b", "llama-3.1-70b", "qwen2.5-72b",
    "mixtral-8x7b", "mixtral-8x22b", "llama-3.1-405b", "deepseek-v3",
    "gemma-3-4b", "gemma-3-12b", "gemma-3-27b", "phi-4", "mistral-small-24b", "llama-4-scout", "llama-4-maverick",
    "kimi-k2", "glm-4.5", "gpt-oss-20b", "gpt-oss-120b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b",
    "qwen3-4b",
]
FIGURES = ["memory", "bandwidth", "tflops", "interconnect", "tdp", "price"]

# Spellings in the shared measurements.csv / prices.csv `gpu` columns (copied here: tests never
# read ../shared) and the catalog id each must resolve to.
GPU_SPELLINGS = {
    "H100-SXM5-80GB": "h100-sxm",
    "H200-SXM-141GB": "h200",
    "H200-SXM-141GB (listed as 'H200 131GB HBM3' in source)": "h200",
    "A100-SXM4-80GB": "a100-80gb",
    "L40S-48GB": "l40s",
    "B200-SXM-180GB (DGX B200)": "b200",
    "GB200 (GB200 NVL72; 192GB/GPU per TRT-LLM doc)": "gb200",
    "GH200-480GB (GH200 superchip, 96GB HBM3 GPU)": "gh200",
    "B200-SXM-180GB": "b200",
    "MI300X-192GB": "mi300x",
    "MI325X-256GB": "mi325x",
    "GB200 (GB200 NVL72; listed as GB200-186GB)": "gb200",
    "B200-180GB": "b200",
    "H100-SXM-80GB": "h100-sxm",
    "A100-SXM-80GB": "a100-80gb",
    "A100-SXM-40GB": "a100-40gb",
    "GH200-96GB": "gh200",
    "H100-PCIe-80GB": "h100-pcie",
    "GB200-186GB": "gb200",
    "H200-141GB": "h200",
    "A100-80GB": "a100-80gb",
    "B200-192GB (as listed)": "b200",
    "H100 (PCIe) 80GB": "h100-pcie",
    "H100-NVL-94GB": "h100-nvl",
    "H100-80GB": "h100-sxm",
    "A100-40GB": "a100-40gb",
    "A10G-24GB": "a10g",
    "L4-24GB": "l4",
    "B300-288GB": "b300",
    "L40-48GB": "l40",
    "A10-24GB": "a10",
}
MODEL_SPELLINGS = {
    "Llama-3.1-70B": "llama-3.1-70b",
    "Llama-3.3-70B-Instruct": "llama-3.3-70b",
    "Qwen3-235B-A22B": "qwen3-235b-a22b",
    "Mistral-7B": "mistral-7b",
    "Llama-3.1-405B-Instruct": "llama-3.1-405b",
    "Mixtral-8x22B": "mixtral-8x22b",
    "gpt-oss-120b": "gpt-oss-120b",
    "Mistral-Nemo-Instruct-2407": "mistral-nemo-12b",
    "DeepSeek-R1-0528": "deepseek-v3",
    "DeepSeek-V3 (671B MoE)": "deepseek-v3",
    "Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "deepseek-r1": "deepseek-v3",
    "deepseek-ai/DeepSeek-R1": "deepseek-v3",
}


def test_every_required_id_is_present():
    assert set(GPU_IDS) <= set(catalog.gpus())
    assert set(MODEL_IDS) <= set(catalog.models())


@pytest.mark.parametrize("spelling, gpu_id", GPU_SPELLINGS.items())
def test_shared_data_gpu_spellings_resolve(spelling, gpu_id):
    assert get_gpu(spelling).id == gpu_id


@pytest.mark.parametrize("spelling, model_id", MODEL_SPELLINGS.items())
def test_shared_data_model_spellings_resolve(spelling, model_id):
    assert get_model(spelling).id == model_id


def test_lookup_is_case_insensitive():
    assert get_gpu("H100").id == "h100-sxm"
    assert get_gpu("h100-sxm5-80gb").id == "h100-sxm"
    assert get_gpu("mi300X").id == "mi300x"
    assert get_gpu("H100 SXM").id == "h100-sxm"  # spaces read as dashes
    assert get_model("LLAMA-3.1-8B").id == "llama-3.1-8b"


@pytest.mark.parametrize("gpu_id", GPU_IDS)
def test_every_gpu_figure_has_a_source_and_a_price(gpu_id):
    gpu = catalog.gpus()[gpu_id]
    for figure in FIGURES:
        assert gpu.sources.get(figure, "").startswith("https://"), f"{gpu_id}: no source for {figure}"
    assert gpu.price_usd_hour > 0
    assert gpu.price_provider and gpu.price_date
    if gpu.price_estimated or gpu.tdp_estimated:
        assert "ESTIMATE" in gpu.notes or "proxy" in gpu.notes, f"{gpu_id}: estimate not explained in notes"


def test_dense_tflops_sanity():
    gpus = catalog.gpus()
    assert gpus["h100-sxm"].tflops["bf16"] == 989
    assert gpus["h100-sxm"].tflops["fp8"] == 1979
    assert gpus["h100-nvl"].tflops["bf16"] == pytest.approx(1671 / 2)  # NVIDIA prints sparse
    for ampere in ("a100-40gb", "a100-80gb", "a10g"):
        assert "fp8" not in gpus[ampere].tflops
    for gpu_id in ("b200", "gb200"):
        assert gpus[gpu_id].tflops["fp4"] == 2 * gpus[gpu_id].tflops["fp8"]
    for gpu in gpus.values():
        if "fp8" in gpu.tflops and gpu.family != "gaudi":  # Gaudi 3 runs fp8 at the bf16 rate
            assert gpu.tflops["fp8"] == pytest.approx(2 * gpu.tflops["bf16"], rel=0.02), gpu.id


def test_nvidia_parts_support_2_4_sparsity():
    for gpu in catalog.gpus().values():
        if gpu.vendor == "nvidia":
            assert gpu.sparse_2_4, gpu.id


def test_scale_up_domains():
    gpus = catalog.gpus()
    assert gpus["gb200"].max_gpus_per_node == 72
    assert gpus["h100-nvl"].max_gpus_per_node == 2
    assert gpus["gh200"].max_gpus_per_node == 1
    assert gpus["h100-sxm"].link_gb_s == 450 and gpus["a100-80gb"].link_gb_s == 300
    assert gpus["mi300x"].link_gb_s == 7 * 64  # 7 Infinity Fabric links x 64 GB/s per direction


def test_no_name_names_two_entries():
    for specs in (catalog.gpus(), catalog.models()):
        seen: dict[str, str] = {}
        for spec in specs.values():
            for key in {catalog.normalize(n) for n in [spec.id, *spec.aliases]}:
                assert seen.setdefault(key, spec.id) == spec.id, f"{key!r} names {seen[key]} and {spec.id}"


def test_unknown_gpu_suggests_the_nearest_id():
    with pytest.raises(CatalogError) as err:
        get_gpu("h1000")
    message = str(err.value)
    assert "h100-sxm" in message and "planner catalog gpus" in message
    assert "\n" not in message


def test_unknown_model_error_is_one_line():
    with pytest.raises(CatalogError, match=r"unknown model 'llama-9000'; did you mean .*llama"):
        get_model("llama-9000")
    with pytest.raises(CatalogError, match="no close match"):
        get_model("zzzzzzzz")


def test_extra_entries_take_precedence():
    custom = catalog.gpus()["h100-sxm"].model_copy(update={"id": "my-h100", "aliases": ["H100"], "price_usd_hour": 1.0})
    assert get_gpu("h100", extra=[custom]).id == "my-h100"
    assert get_gpu("my-h100", extra=[custom]).price_usd_hour == 1.0
    assert get_gpu("h100").id == "h100-sxm"
    assert isinstance(custom, GpuSpec)


def test_get_model_reads_a_config_path(tmp_path):
    import json
    import shutil
    from pathlib import Path

    fixture = Path(__file__).parent / "data" / "hf" / "qwen3-14b"
    shutil.copytree(fixture, tmp_path / "my-model")
    by_folder = get_model("my-model", base_dir=tmp_path)
    by_file = get_model(str(tmp_path / "my-model" / "config.json"))
    assert by_folder.id == by_file.id == "my-model"
    assert by_folder.hidden == 5120
    assert by_folder.source == "config.json at my-model"
    assert json.loads((tmp_path / "my-model" / "config.json").read_text())["model_type"] == "qwen3"


# --- models ---------------------------------------------------------------------------------

def _models_with(field: str):
    return [m for m in catalog.models().values() if getattr(m, field) is not None]


@pytest.mark.parametrize("model", _models_with("params_published"), ids=lambda m: m.id)
def test_params_total_matches_published_within_3_percent(model):
    assert model.params_total == pytest.approx(model.params_published, rel=0.03)


@pytest.mark.parametrize("model", _models_with("active_published"), ids=lambda m: m.id)
def test_params_active_matches_published_within_3_percent(model):
    # Publishers differ on whether the input-embedding lookup counts as active (OpenAI excludes
    # it for gpt-oss); accept either convention.
    with_embedding = model.params_active
    without_embedding = model.params_active - model.embedding_params
    assert min(abs(with_embedding / model.active_published - 1), abs(without_embedding / model.active_published - 1)) < 0.03


def test_published_anchor_counts():
    models = catalog.models()
    anchors = {"llama-3.1-8b": 8.03e9, "llama-3.1-70b": 70.6e9, "llama-3.1-405b": 405.9e9, "mixtral-8x7b": 46.7e9,
               "deepseek-v3": 671e9, "qwen2.5-72b": 72.7e9, "gemma-2-9b": 9.24e9, "gemma-2-27b": 27.2e9,
               "llama-3.2-1b": 1.24e9, "llama-3.2-3b": 3.21e9}
    for model_id, count in anchors.items():
        assert models[model_id].params_total == pytest.approx(count, rel=0.03), model_id


def _kv_bytes_per_token(model_id: str, precision: str = "bf16") -> float:
    model = catalog.models()[model_id]
    return model.kv_elements_per_token_layer * model.layers * BYTES_PER_ELEMENT[precision]


def test_kv_bytes_per_token_hand_worked():
    assert _kv_bytes_per_token("llama-3.1-8b") == 2 * 32 * 8 * 128 * 2 == 131072
    assert _kv_bytes_per_token("llama-3.1-70b") == 2 * 80 * 8 * 128 * 2 == 327680
    # MLA: the 512 latent + 64 RoPE key per layer (DeepSeek-V2 paper)
    assert _kv_bytes_per_token("deepseek-v3") == 61 * (512 + 64) * 2 == 70272
    assert _kv_bytes_per_token("llama-3.1-8b", "fp8") == 65536


def test_tiers():
    models = catalog.models()
    expected = {"llama-3.2-3b": "small", "llama-3.1-70b": "medium", "llama-3.1-405b": "large",
                "mixtral-8x7b": "medium", "deepseek-v3": "large"}
    for model_id, tier in expected.items():
        assert models[model_id].tier == tier, model_id


def test_architecture_conventions():
    models = catalog.models()
    for model in models.values():
        if model.attention != "mla":
            assert model.attention == ("gqa" if model.kv_heads < model.heads else "mha"), model.id
        assert model.quality is not None and model.quality.source.startswith("https://"), model.id
        assert model.source.startswith("https://"), model.id
    assert models["gemma-2-9b"].tie_embeddings and models["gemma-2-9b"].sliding_layers_fraction == 0.5
    assert models["llama-3.2-1b"].tie_embeddings and models["llama-3.2-3b"].tie_embeddings
    assert models["deepseek-v3"].dtype == "fp8"


NOT_BASE_MMLU = {"llama-3.3-70b", "phi-4", "kimi-k2", "glm-4.5", "gpt-oss-20b", "gpt-oss-120b"}


def test_quality_uses_one_benchmark_where_published():
    base_mmlu = [m for m in catalog.models().values() if m.quality.benchmark == "MMLU 5-shot (base model)"]
    assert {m.id for m in base_mmlu} >= set(MODEL_IDS) - NOT_BASE_MMLU
    for model_id in NOT_BASE_MMLU:  # the exceptions say what they are
        assert catalog.models()[model_id].quality.benchmark != "MMLU 5-shot (base model)"


def test_new_gpu_families_are_marked_unmeasured():
    from planner.engine.knobs import shipped_calibration

    gpus = catalog.gpus()
    assert gpus["b300"].family == gpus["gb300"].family == "blackwell"
    for gpu_id in ("mi355x", "rtx-pro-6000", "h20", "tpu-v5p"):
        assert shipped_calibration().measured(gpus[gpu_id].family)["gpu_family"] is False, gpu_id
    # Blackwell Ultra halved INT8: no figure rather than Hopper's 2x bf16
    assert "int8" not in gpus["b300"].tflops and "int8" not in gpus["gb300"].tflops
    # a GPU without its own measurements takes its family's measured shares: GB300 takes Blackwell's
    from planner.engine.catalog import achieved_shares

    assert achieved_shares(gpus["gb300"], "bf16") == achieved_shares(gpus["b200"], "bf16")
