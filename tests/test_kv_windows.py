"""Sliding-window and chunked attention: KV memory per sequence, KV read per decode step, the
number of sequences that fit and a prompt's attention work count only the tokens the engine keeps
and attends (the arithmetic is in each test)."""

from __future__ import annotations

import numpy as np
import pytest

from planner.engine import catalog
from planner.engine.knobs import Knobs
from planner.engine.offline import batch_cap
from planner.engine.roofline import (
    ServingConfig,
    kv_capacity_tokens,
    prefill_attention_work,
    replica_params,
    sequence_kv_tokens,
    step_time,
)
from planner.engine.scenario import LengthDist
from planner.engine.specs import attended_pairs, kv_tokens_kept
from planner.engine.workload import Workload


def _model(model_id: str):
    return catalog.models()[model_id]


def test_gemma3_27b_keeps_1024_tokens_on_its_local_layers():
    m = _model("gemma-3-27b")
    # per token per layer: K and V of 16 heads x 128 dims x 2 bytes = 8,192 B; 62 layers = 507,904 B
    assert m.kv_bytes_per_token() == 2 * 16 * 128 * 2 * 62 == 507_904
    # 8k context: 10 global layers keep 8,192 tokens, 52 local layers 1,024:
    # 8,192 B x (10 x 8,192 + 52 x 1,024) = 8,192 x 135,168 = 1,107,296,256 B (1.03 GiB, not 4.16 GB)
    assert m.kv_bytes_per_sequence(8192) == pytest.approx(1_107_296_256, rel=1e-12)
    # 128k context: 8,192 B x (10 x 131,072 + 52 x 1,024) = 8,192 x 1,363,968 = 11,173,625,856 B (vs 66.6 GB)
    assert m.kv_bytes_per_sequence(131072) == pytest.approx(11_173_625_856, rel=1e-12)
    # inside the window every layer keeps every token
    assert m.kv_bytes_per_sequence(1000) == pytest.approx(507_904 * 1000, rel=1e-12)


def test_llama4_scout_chunks_bound_three_of_four_layers():
    m = _model("llama-4-scout")
    # per token per layer: 2 x 8 KV heads x 128 x 2 B = 4,096 B; 48 layers = 196,608 B
    assert m.kv_bytes_per_token() == 196_608
    # 8k context fills one 8,192-token chunk: every layer keeps 8,192 tokens = 1,610,612,736 B
    assert m.kv_bytes_per_sequence(8192) == pytest.approx(196_608 * 8192, rel=1e-12)
    # 128k: 12 global (NoPE) layers keep 131,072, 36 chunked layers 8,192:
    # 4,096 B x (12 x 131,072 + 36 x 8,192) = 4,096 x 1,867,776 = 7,650,410,496 B (vs 25.8 GB)
    assert m.kv_bytes_per_sequence(131072) == pytest.approx(7_650_410_496, rel=1e-12)
    # fp8 KV halves it
    assert m.kv_bytes_per_sequence(131072, "fp8") == pytest.approx(7_650_410_496 / 2, rel=1e-12)


def test_gpt_oss_alternates_a_128_token_window():
    m = _model("gpt-oss-120b")
    # 2 x 8 x 64 x 2 B = 2,048 B per layer; 18 windowed + 18 full layers
    # 8k: 2,048 x (18 x 8,192 + 18 x 128) = 2,048 x 149,760 = 306,708,480 B
    assert m.kv_bytes_per_sequence(8192) == pytest.approx(306_708_480, rel=1e-12)


def test_full_attention_models_keep_every_token():
    m = _model("llama-3.1-8b")
    assert m.kv_bytes_per_sequence(131072) == m.kv_bytes_per_token() * 131072
    assert kv_tokens_kept(np.array([10.0, 5000.0]), 0, 0.0).tolist() == [10.0, 5000.0]


def test_a_decode_step_reads_only_the_kept_kv():
    m = _model("gemma-3-27b")
    p = replica_params(m, catalog.get_gpu("h200"), ServingConfig(), Knobs())
    # the step's KV term is the only one that moves with context: 4 sequences at 128k read
    # 4 x 11,173,625,856 B at eta_kv x achieved bandwidth
    grow = step_time(p, 4.0, 4 * 131072.0, 0.0, 0.0).total_s - step_time(p, 4.0, 0.0, 0.0, 0.0).total_s
    assert grow == pytest.approx(4 * 11_173_625_856 / (p.eta_kv * p.bw_bytes_s), rel=1e-9)
    # the array path agrees with the float path
    arrays = step_time(p, np.array([4.0]), np.array([4 * 131072.0]), np.array([0.0]), np.array([0.0])).total_s
    assert float(arrays[0]) == pytest.approx(float(step_time(p, 4.0, 4 * 131072.0, 0.0, 0.0).total_s), rel=1e-12)


def test_concurrency_counts_the_kept_kv():
    m = _model("gemma-3-27b")
    gpu = catalog.get_gpu("h200")
    p = replica_params(m, gpu, ServingConfig(max_num_seqs=4096), Knobs())
    full = replica_params(m.model_copy(update={"sliding_window": 0, "sliding_layers_fraction": 0.0}), gpu,
                          ServingConfig(max_num_seqs=4096), Knobs())
    wl = Workload(LengthDist(kind="fixed", mean=32000), LengthDist(kind="fixed", mean=1000))
    ctx = wl.decode_ctx_mean
    # windowed: each sequence holds 10 x ctx + 52 x 1,024 tokens of the 62 layers' worth
    kept = (10 * ctx + 52 * 1024) / 62
    assert float(sequence_kv_tokens(p, ctx)) == pytest.approx(kept, rel=1e-12)
    assert batch_cap(p, wl) == pytest.approx(float(kv_capacity_tokens(p)) / (kept + 8), rel=1e-12)
    assert batch_cap(p, wl) > 4 * batch_cap(full, wl)


def test_a_windowed_layer_attends_at_most_its_window():
    # full attention: 1,000 tokens after 3,000 cached attend 1,000 x (500 + 3,000) = 3,500,000 pairs
    assert attended_pairs(1000.0, 3000.0, 0.0, 0.0) == 3_500_000
    # every layer windowed at 128 and the chunk wholly past it: 1,000 x 128 pairs
    assert attended_pairs(1000.0, 3000.0, 128.0, 1.0) == pytest.approx(128_000, rel=1e-12)
    # a chunk inside the window attends as full attention does: 100 x (50 + 20) = 7,000
    assert attended_pairs(100.0, 20.0, 128.0, 1.0) == pytest.approx(7_000, rel=1e-12)
    # a chunk across the window's edge, 0 to 1,000 with W = 128: 128^2 / 2 + 872 x 128 = 119,808
    assert attended_pairs(1000.0, 0.0, 128.0, 1.0) == pytest.approx(8_192 + 111_616, rel=1e-12)
    # half the layers windowed: the mean of 500,000 and 119,808 pairs
    assert attended_pairs(1000.0, 0.0, 128.0, 0.5) == pytest.approx((500_000 + 119_808) / 2, rel=1e-12)
    # arrays work alike, and the whole prompt is the sum of its chunks
    chunks = attended_pairs(np.array([400.0, 600.0]), np.array([0.0, 400.0]), 128.0, 0.5)
    assert float(chunks.sum()) == pytest.approx(attended_pairs(1000.0, 0.0, 128.0, 0.5), rel=1e-12)


def test_a_long_prompt_on_gpt_oss_costs_the_attention_of_its_full_layers_only():
    m = _model("gpt-oss-120b")
    p = replica_params(m, catalog.get_gpu("h100-sxm"), ServingConfig(weights="fp4"), Knobs())
    # 32,000 tokens: 18 full layers attend 32,000^2 / 2 = 512,000,000 pairs, 18 windowed layers
    # 128^2 / 2 + 31,872 x 128 = 4,087,808: averaged over the 36 layers 258,043,904
    assert float(prefill_attention_work(p, 32000.0, 0.0)) == pytest.approx(258_043_904, rel=1e-12)
    # and the prefill step's attention term is that much smaller than full attention's
    full_work = 32000.0 * 32000.0 / 2
    saved = (step_time(p, 0.0, 0.0, 32000.0, full_work).total_s
             - step_time(p, 0.0, 0.0, 32000.0, prefill_attention_work(p, 32000.0, 0.0)).total_s)
    per_pair_s = 2.0 * p.attn_dim * p.q_heads_per_gpu * p.layers / (p.eta_attention * p.flops_attn)
    assert saved == pytest.approx((full_work - 258_043_904) * per_pair_s, rel=1e-9)


def test_experts_only_fp4_keeps_attention_in_bf16():
    m = _model("gpt-oss-120b")
    gpu = catalog.get_gpu("b200")
    shipped = replica_params(m, gpu, ServingConfig(weights="fp4"), Knobs())
    all_fp4 = replica_params(m.model_copy(update={"dense_dtype": ""}), gpu, ServingConfig(weights="fp4"), Knobs())
    # attention, norms and router (body_dense_params) at 2 bytes instead of MXFP4's 0.53125
    assert shipped.body_bytes == pytest.approx(m.body_dense_params * 2.0, rel=1e-12)
    assert (shipped.weights_total_bytes - all_fp4.weights_total_bytes
            == pytest.approx(m.body_dense_params * (2.0 - 0.53125), rel=1e-9))
    # requanting the whole model to fp8 sizes every body weight at fp8
    fp8 = replica_params(m, gpu, ServingConfig(weights="fp8"), Knobs())
    assert fp8.body_bytes == pytest.approx(m.body_dense_params * 1.0, rel=1e-12)


def test_mxfp4_experts_carry_one_scale_per_32_values():
    m = _model("gpt-oss-120b")
    gpu = catalog.get_gpu("h100-sxm")
    # an engine that keeps the checkpoint's layout (vLLM pads it: the test below)
    shipped = replica_params(m, gpu, ServingConfig(weights="fp4", engine="trtllm"), Knobs())
    # 36 layers x 128 experts x 3 x 2880 x 2880 weights at 4 bits + one byte per 32 (0.53125 B)
    experts = 36 * 128 * 3 * 2880 * 2880
    assert m.moe_layers * m.experts * m.expert_params == experts
    assert shipped.expert_bytes * m.moe_layers * m.experts == pytest.approx(experts * 0.53125, rel=1e-12)
    # the model card (arXiv 2508.10925) lists checkpoints of 60.8 GiB and 12.8 GiB; at NVFP4's
    # scale per 16 values gpt-oss-120b would be 3.6 GB more, taken from the KV cache of one 80 GB GPU
    assert shipped.weights_total_bytes == pytest.approx(60.8 * 2**30, rel=0.005)
    small = replica_params(_model("gpt-oss-20b"), gpu, ServingConfig(weights="fp4", engine="trtllm"), Knobs())
    assert small.weights_total_bytes == pytest.approx(12.8 * 2**30, rel=0.005)
    nvfp4 = replica_params(m.model_copy(update={"fp4_scale_block": 16}), gpu, ServingConfig(weights="fp4", engine="trtllm"),
                           Knobs())
    assert nvfp4.weights_total_bytes - shipped.weights_total_bytes == pytest.approx(experts / 32, rel=1e-12)
    # a model quantized to fp4 by its server is taken as NVFP4
    assert _model("llama-3.3-70b").bytes_per_weight("fp4") == 0.5625



def test_vllm_loads_mxfp4_experts_padded_for_its_kernels():
    m = _model("gpt-oss-120b")
    hopper, ampere = catalog.get_gpu("h100-sxm"), catalog.get_gpu("a100-80gb")
    checkpoint = replica_params(m, hopper, ServingConfig(weights="fp4", engine="trtllm"), Knobs())
    experts = 36 * 128 * 3 * 2880 * 2880 * 0.53125
    # Triton on Hopper: the hidden size as if padded to 3072, the inner one kept (2880 = 45 x 64);
    # vLLM logs "Model loading took 64.38 GiB" on one H100 (vLLM issue 33155)
    triton = replica_params(m, hopper, ServingConfig(weights="fp4"), Knobs())
    assert triton.weights_total_bytes - checkpoint.weights_total_bytes == pytest.approx(experts * (3072 / 2880 - 1), rel=1e-9)
    assert triton.weights_total_bytes == pytest.approx(64.38 * 2**30, rel=0.005)
    # Marlin (Ampere, or Hopper without Triton's kernels): 3072 x 2944; 65.97 GiB (vLLM issue 23278)
    marlin = replica_params(m, ampere, ServingConfig(weights="fp4"), Knobs())
    assert marlin.weights_total_bytes == pytest.approx(65.97 * 2**30, rel=0.005)
    # each GPU pads its own TP shard of the inner size: 1440 -> 1536 under Marlin at TP 2
    tp2 = replica_params(m, ampere, ServingConfig(weights="fp4", tp=2), Knobs())
    assert tp2.expert_bytes == pytest.approx(3 * 3072 * 2 * 1536 * 0.53125, rel=1e-12)
    # the padding is streamed with the weights: a decode step reads it
    assert triton.step_rates.expert_s / checkpoint.step_rates.expert_s == pytest.approx(3072 / 2880, rel=1e-12)
    # weights vLLM quantizes itself, and other engines, are stored as counted
    llama = _model("llama-3.3-70b")
    assert (replica_params(llama, hopper, ServingConfig(weights="fp4", tp=2), Knobs()).weights_total_bytes
            == replica_params(llama, hopper, ServingConfig(weights="fp4", tp=2, engine="sglang"), Knobs()).weights_total_bytes)


NEW_MODELS = {
    "gemma-3-4b": ("a10", 1), "gemma-3-12b": ("l40", 1), "gemma-3-27b": ("h100-sxm", 1), "phi-4": ("rtx-pro-6000", 1),
    "mistral-small-24b": ("h100-sxm", 1), "gpt-oss-20b": ("l4", 2), "llama-4-scout": ("h100-sxm", 4),
    "llama-4-maverick": ("gb300", 4), "kimi-k2": ("b300", 8), "glm-4.5": ("mi355x", 4),
}


@pytest.mark.parametrize("model_id, placement", NEW_MODELS.items(), ids=list(NEW_MODELS))
def test_predict_is_finite_for_each_new_model(model_id, placement):
    from planner.engine.predict import PredictRequest, predict

    gpu_id, tp = placement
    model, gpu = catalog.get_model(model_id), catalog.get_gpu(gpu_id)
    cfg = ServingConfig(tp=tp, weights=model.dtype, kv="bf16")
    req = PredictRequest(model, gpu, cfg, LengthDist(kind="fixed", mean=2000), LengthDist(kind="fixed", mean=500),
                         mode="concurrency", concurrency=8)
    pred = predict(req)
    assert pred.fits, pred.reason
    point = pred.point
    for value in (point.ttft_mean_s, point.tpot_mean_s, point.requests_per_s):
        assert np.isfinite(value) and value > 0
