"""Synthetic specs with round, published-like figures, independent of the shipped catalog."""

from planner.engine.specs import GpuSpec, ModelSpec


def h100(**changes) -> GpuSpec:
    data = dict(id="test-h100", name="H100 SXM", vendor="nvidia", family="hopper", memory_gib=80,
                reported_memory_gib=80, mem_bw_tb_s=3.35,
                tflops={"bf16": 989, "fp8": 1979, "int8": 1979}, sparse_2_4=True, interconnect="nvlink", link_gb_s=450,
                max_gpus_per_node=8, tdp_w=700, price_usd_hour=4.0, price_provider="test", price_date="2026-01-01", sources={},
                # measured = datasheet, so hand-worked figures need no measured shares
                achievable_tflops={"bf16": 989, "fp8": 1979, "int8": 1979}, achievable_bw_tb_s=3.35)
    return GpuSpec(**(data | changes))


def llama8b(**changes) -> ModelSpec:
    data = dict(id="test-llama-8b", name="Llama 8B", family="llama", layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128,
                ffn_dim=14336, vocab=128256, max_context=131072, source="test")
    return ModelSpec(**(data | changes))


def llama70b(**changes) -> ModelSpec:
    data = dict(id="test-llama-70b", name="Llama 70B", family="llama", layers=80, hidden=8192, heads=64, kv_heads=8, head_dim=128,
                ffn_dim=28672, vocab=128256, max_context=131072, source="test")
    return ModelSpec(**(data | changes))


def mixtral(**changes) -> ModelSpec:
    data = dict(id="test-mixtral", name="Mixtral 8x7B", family="mixtral", layers=32, hidden=4096, heads=32, kv_heads=8,
                head_dim=128, ffn_dim=0, moe_ffn_dim=14336, experts=8, experts_per_token=2, vocab=32000, max_context=32768,
                source="test")
    return ModelSpec(**(data | changes))
