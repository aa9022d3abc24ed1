"""Qwen3 4B, NVIDIA H20 and Cloud TPU v5p in the catalog: their figures enter the formulas as
hand-worked below, a TPU is served only by the engines that run on it, and plans on the two new
accelerators say that nothing was measured on them."""

from __future__ import annotations

import pytest

from planner.engine import catalog
from planner.engine.feasibility import config_problem, fitting_tp_degrees, weights_problem
from planner.engine.knobs import Knobs
from planner.engine.plan import evaluate
from planner.engine.roofline import ServingConfig, memory_per_gpu, replica_params, step_time
from planner.engine.scenario import Fleet, Load, Scenario, Targets, TierModels
from planner.engine.search import search_tier
from planner.report import plan_json

KNOBS = Knobs(eta_weights=0.75, eta_kv=0.6, eta_compute=0.55, eta_attention=0.5, eta_link=0.75, allreduce_latency_us=10,
              step_overhead_us=130, layer_overhead_us=10, seq_overhead_us=4, api_overhead_ms=0)


def _as_measured(gpu_id: str):
    """The catalog GPU with its datasheet taken as measured, so a hand-worked figure needs no
    measured share (the catalog entry itself has none)."""
    gpu = catalog.gpus()[gpu_id]
    return gpu.model_copy(update={"achievable_tflops": dict(gpu.tflops), "achievable_bw_tb_s": gpu.mem_bw_tb_s})


# --- qwen3-4b ---------------------------------------------------------------------------------

def test_qwen3_4b_counts_its_parameters_from_the_config():
    m = catalog.get_model("Qwen/Qwen3-4B")
    # per layer: q,o 2 x 2560 x 4096 = 20,971,520; k,v 2 x 2560 x 1024 = 5,242,880; SwiGLU 3 x 2560 x 9728 =
    # 74,711,040; norms 5,120 -> 100,930,560 x 36 = 3,633,500,160 (the card: 3.6B non-embedding)
    # + tied embedding 151,936 x 2560 = 388,956,160 -> 4,022,456,320 (the card: 4.0B)
    assert m.params_total == 4_022_456_320
    assert m.params_total - m.embedding_params == 3_633_500_160
    assert m.tier == "small"
    assert m.quality.benchmark == catalog.models()["qwen3-8b"].quality.benchmark == "MMLU 5-shot (base model)"


def test_qwen3_4b_kv_and_weight_memory():
    m = catalog.models()["qwen3-4b"]
    # K and V of 8 heads x 128 dims x 2 bytes on 36 layers = 147,456 B per token; 8k context 1,207,959,552 B
    assert m.kv_bytes_per_token() == 2 * 8 * 128 * 2 * 36 == 147_456
    assert m.kv_bytes_per_sequence(8192) == 1_207_959_552
    assert m.kv_bytes_per_token("fp8") == 73_728
    p = replica_params(m, catalog.gpus()["l4"], ServingConfig(), KNOBS)
    # resident bf16 weights: 4,022,456,320 x 2 = 8,044,912,640 B (the tied head is stored once)
    assert memory_per_gpu(p)["weights"] == 8_044_912_640
    assert p.kv_bytes_token_gpu == 147_456


# --- h20 --------------------------------------------------------------------------------------

def test_h20_figures():
    gpu = catalog.get_gpu("H20")
    assert (gpu.memory_gib, gpu.mem_bw_tb_s, gpu.tdp_w) == (96, 4.0, 400)
    assert gpu.tflops == {"bf16": 148, "fp16": 148, "fp8": 296, "int8": 296}
    assert gpu.link_gb_s == 450 and gpu.max_gpus_per_node == 8  # NVLink4 900 GB/s both ways, HGX 8-GPU
    assert gpu.price_estimated and "ESTIMATE" in gpu.notes
    assert catalog.get_gpu("H200").id == "h200"  # the new alias takes nothing from the H200


def test_h20_decode_streams_qwen3_4b_at_its_bandwidth():
    p = replica_params(catalog.models()["qwen3-4b"], _as_measured("h20"), ServingConfig(), KNOBS)
    st = step_time(p, 1, 1000, 0, 0)
    # weights read each step: body 3,633,500,160 x 2 + head 388,956,160 x 2 = 8,044,912,640 B at 0.75 x 4.0 TB/s
    # = 2.6816 ms; KV 1,000 x 147,456 B at 0.6 x 4.0 TB/s = 0.0614 ms
    assert float(st.memory_s) == pytest.approx(8_044_912_640 / 3.0e12 + 147_456_000 / 2.4e12, rel=1e-9)
    # one token's FLOPs 2 x 3,633,500,160 at 0.55 x 148 TF = 0.089 ms: still bound by bandwidth
    assert float(st.compute_s) == 0.0


def test_h20_prefill_runs_at_its_148_tflops():
    p = replica_params(catalog.models()["qwen3-4b"], _as_measured("h20"), ServingConfig(), KNOBS)
    st = step_time(p, 0, 0, 4096, 0)
    # 2 x 3,633,500,160 x 4,096 + one logit 2 x 388,956,160 = 2.9766e13 FLOP at 0.55 x 148 TF = 365.7 ms
    # (an H100 at 989 TF: 54.7 ms)
    assert float(st.compute_s) == pytest.approx((2 * 3_633_500_160 * 4096 + 2 * 388_956_160) / (0.55 * 148e12), rel=1e-9)


# --- tpu-v5p ----------------------------------------------------------------------------------

def test_tpu_v5p_figures_and_weight_formats():
    gpu = catalog.get_gpu("TPU v5p")
    assert (gpu.memory_gib, gpu.mem_bw_tb_s) == (95, 2.765)
    assert gpu.tflops == {"bf16": 459, "int8": 918}
    assert gpu.interconnect == "ici" and gpu.link_gb_s == 600 and gpu.max_gpus_per_node == 4
    assert gpu.engines == ["vllm"]
    assert gpu.price_estimated and gpu.tdp_estimated and "only provider" in gpu.notes
    # no FP8 or FP4 matrix path: those weights are refused; int8 runs on its 918 TOPS
    assert "no fp8 support" in weights_problem(gpu, "fp8")
    assert "no fp4 support" in weights_problem(gpu, "fp4")
    assert weights_problem(gpu, "int8") == weights_problem(gpu, "bf16") == ""


def test_tpu_v5p_decode_streams_llama_8b_at_its_bandwidth():
    p = replica_params(catalog.models()["llama-3.1-8b"], _as_measured("tpu-v5p"), ServingConfig(), KNOBS)
    st = step_time(p, 1, 1000, 0, 0)
    # body 6,979,584,000 x 2 + head 525,336,576 x 2 = 15,009,841,152 B at 0.75 x 2.765 TB/s = 7.238 ms;
    # KV 1,000 x 131,072 B at 0.6 x 2.765 TB/s = 0.079 ms
    assert float(st.memory_s) == pytest.approx(15_009_841_152 / (0.75 * 2.765e12) + 131_072_000 / (0.6 * 2.765e12), rel=1e-9)


def test_llama_70b_needs_two_tpu_v5p_chips_of_one_host():
    model, gpu = catalog.models()["llama-3.1-70b"], catalog.gpus()["tpu-v5p"]
    # bf16 weights 70.55e9 x 2 = 141.1 GB: over one chip's 0.9 x 95 GiB = 91.8 GB, 70.6 GB a chip at TP2;
    # TP8 would leave the 4-chip host
    assert fitting_tp_degrees(model, gpu, ServingConfig(), KNOBS, None) == [2, 4]
    problem = config_problem(model, gpu, ServingConfig(tp=8))
    assert problem is not None and problem[0] == "interconnect" and "4 GPUs" in problem[1]


# --- engines that run on the hardware ------------------------------------------------------

def test_tensorrt_llm_is_refused_on_a_tpu_with_the_engine_that_runs_there():
    model = catalog.models()["llama-3.1-8b"]
    for gpu_id in ("tpu-v5p", "tpu-v5e", "tpu-v6e"):
        binding, reason = config_problem(model, catalog.gpus()[gpu_id], ServingConfig(engine="trtllm"))
        assert binding == "hardware support"
        assert reason == f"TensorRT-LLM does not run on {gpu_id}; it is served with vLLM V1 (--engine, fleet.engine)"
    assert config_problem(model, catalog.gpus()["tpu-v5p"], ServingConfig(engine="vllm")) is None


def test_amd_and_gaudi_serve_with_vllm_and_sglang_only():
    model = catalog.models()["llama-3.1-8b"]
    for gpu_id in ("mi300x", "mi325x", "mi355x", "gaudi3"):
        gpu = catalog.gpus()[gpu_id]
        assert config_problem(model, gpu, ServingConfig(engine="sglang")) is None, gpu_id
        assert "TensorRT-LLM does not run" in config_problem(model, gpu, ServingConfig(engine="trtllm"))[1]
    for gpu in catalog.gpus().values():  # every NVIDIA GPU runs all three
        if gpu.vendor == "nvidia":
            assert gpu.engines == ["vllm", "sglang", "trtllm"], gpu.id


def test_a_trtllm_plan_on_a_tpu_is_infeasible_and_says_why():
    scenario = Scenario(load=Load(rate_rps=1), fleet=Fleet(gpu="tpu-v5p", engine="trtllm"), models=TierModels(small="qwen3-4b"))
    small = plan_json(evaluate(scenario))["tiers"][0]
    assert not small["feasible"] and small["binding"] == "hardware support"
    assert "TensorRT-LLM does not run on tpu-v5p" in small["reason"]


def test_a_trtllm_search_leaves_the_tpu_out():
    scenario = Scenario(load=Load(rate_rps=2.0, input_len=800, output_len=200), slo=Targets(ttft_ms=2000, tpot_ms=100),
                        fleet=Fleet(engine="trtllm"))
    gpus = [catalog.gpus()[g] for g in ("tpu-v5p", "h100-sxm")]
    result = search_tier(scenario, "small", [catalog.models()["qwen3-4b"]], gpus, top=3)
    assert result.ranked and {c.gpu.id for c in result.ranked} == {"h100-sxm"}
    assert result.excluded.get("use an engine, precision or sparsity the GPU does not run", 0) > 0


def test_unknown_engine_in_a_gpu_table_is_refused_naming_the_field():
    data = catalog.gpus()["tpu-v5p"].model_dump() | {"engines": ["vllm", "jetstream"]}
    with pytest.raises(ValueError, match="jetstream is not one of vllm, sglang, trtllm"):
        type(catalog.gpus()["tpu-v5p"]).model_validate(data)


# --- the not-measured mark ----------------------------------------------------------------

@pytest.mark.parametrize("gpu_id", ["tpu-v5p", "h20"])
def test_plans_on_the_new_accelerators_carry_the_not_measured_mark(gpu_id):
    scenario = Scenario(load=Load(rate_rps=1), fleet=Fleet(gpu=gpu_id, engine="vllm"), models=TierModels(small="qwen3-4b"))
    small = plan_json(evaluate(scenario))["tiers"][0]
    assert small["feasible"], small.get("reason")
    assert small["validated"]["gpu_family"] is False
    # the H20 is not credited with the Hopper fit: a Hopper GPU's plan is measured
    hopper = Scenario(load=Load(rate_rps=1), fleet=Fleet(gpu="h100-sxm", engine="vllm"), models=TierModels(small="qwen3-4b"))
    assert plan_json(evaluate(hopper))["tiers"][0]["validated"]["gpu_family"] is True
