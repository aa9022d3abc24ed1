"""vLLM's KV-cache memory against what vLLM itself logged at start-up ("Available KV cache memory",
tests/data/vllm_kv_memory.csv: vLLM 0.17-0.19 on H100 at its default batch limits, each row with
the log it comes from). Llama 3.1 8B at TP 1 and Llama 3.3 70B at TP 4 set the profile's constants
(roofline.VLLM_*); the other rows check them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from planner.engine import catalog
from planner.engine.knobs import Knobs
from planner.engine.roofline import ServingConfig, memory_per_gpu, replica_params
from planner.engine.specs import GIB

ROWS = list(csv.DictReader((Path(__file__).parent / "data" / "vllm_kv_memory.csv").open()))


def _memory(row: dict) -> dict:
    cfg = ServingConfig(tp=int(row["tp"]), weights=row["weights"], kv=row["kv"], gpu_mem_util=float(row["gpu_mem_util"]))
    p = replica_params(catalog.get_model(row["model"]), catalog.get_gpu(row["gpu"]), cfg, Knobs())
    return {k: float(v) / GIB for k, v in memory_per_gpu(p).items() if k != "per_gpu"}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['model']}-tp{r['tp']}-kv{r['kv']}" for r in ROWS])
def test_kv_memory_matches_vllms_own_log(row):
    mem = _memory(row)
    # weights as vLLM loads them (gpt-oss's MXFP4 experts padded for its kernels)
    assert mem["weights"] == pytest.approx(float(row["weights_gib"]), rel=0.03)
    # the KV cache within 0.25 GiB: on one 80 GB GPU a Llama 3.1 8B sequence of 2k tokens is 0.25 GiB
    assert mem["kv"] == pytest.approx(float(row["available_kv_gib"]), abs=0.25)


def test_the_sampler_peak_grows_with_the_vocabulary_and_running_sequences():
    base = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "tp": "1", "weights": "bf16", "kv": "bf16", "gpu_mem_util": "0.95"}
    qwen = _memory({**base, "model": "qwen3-8b"})["other"] - _memory(base)["other"]
    # 1,024 sequences x (151,936 - 128,256) logits x 14.8 bytes, plus 2.56 bytes a token and hidden unit
    assert qwen == pytest.approx((1024 * (151_936 - 128_256) * 14.8) / GIB, rel=0.01)
    p = replica_params(catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm"),
                       ServingConfig(max_num_seqs=256, gpu_mem_util=0.95), Knobs())
    assert float(memory_per_gpu(p)["other"]) / GIB == pytest.approx(_memory(base)["other"] - 768 * 128_256 * 14.8 / GIB, rel=1e-9)


def test_other_engines_keep_their_own_reserve():
    row = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "tp": "1", "weights": "bf16", "kv": "bf16", "gpu_mem_util": "0.9"}
    cfg = ServingConfig(engine="sglang", gpu_mem_util=0.9)
    p = replica_params(catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm"), cfg, Knobs())
    # SGLang: 1 GiB runtime reserve, 8192 x 4096 x 8 bytes of hidden states, 2048 x 128,256 fp32 logits
    assert float(memory_per_gpu(p)["other"]) == pytest.approx(GIB + 8192 * 4096 * 8 + 2048 * 128_256 * 4, rel=1e-12)
    assert _memory(row)["other"] != pytest.approx(float(memory_per_gpu(p)["other"]) / GIB, rel=0.01)


def test_engines_take_their_share_of_the_memory_the_driver_reports():
    h100, l40s, h20 = catalog.get_gpu("h100-sxm"), catalog.get_gpu("l40s"), catalog.get_gpu("h20")
    assert h100.memory_bytes == 79.19 * GIB
    assert l40s.memory_bytes == 44.42 * GIB  # ECC on GDDR6 takes its share of the 48 GiB
    assert h20.reported_memory_gib is None and h20.memory_bytes == pytest.approx(0.99 * h20.memory_gib * GIB)
