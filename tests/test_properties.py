"""Properties of the engine over synthetic GPUs, models and workloads (hypothesis), plus a sweep of
the real catalog. Formulas against hand-worked numbers live in test_roofline.py; these tests only
check shapes that must hold for every input: finite, ordered, monotone.

Deterministic: every hypothesis test runs derandomized with no example database.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st
from specs_fixtures import h100, llama8b, llama70b, mixtral

from planner.engine import catalog
from planner.engine.cycles import decode_step, spec_tokens_per_step
from planner.engine.knobs import Knobs
from planner.engine.offline import batch_cap
from planner.engine.predict import PredictError, PredictRequest, predict, smallest_fitting_tp
from planner.engine.roofline import ServingConfig, kv_capacity_tokens, memory_per_gpu, replica_params, step_time
from planner.engine.scenario import LengthDist
from planner.engine.serving import QUICK, Workload, offline_throughput, rate_point
from planner.engine.specs import KV_PRECISIONS, WEIGHT_PRECISIONS, GpuSpec, ModelSpec

KNOBS = Knobs()
PROPS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FEW = settings(PROPS, max_examples=30)  # the rate-mode properties evaluate several operating points each
# known engine bugs (xfail): find a counterexample, skip shrinking it (the pinned @example says it all)
KNOWN_BUG = settings(FEW, phases=[Phase.explicit, Phase.generate])

# a dense grid of engine states: decoding batch 0-4096 and prompt chunk 0-65536 tokens
BATCHES = np.array([0, 1, 2, 3, 7, 16, 31, 64, 100, 255, 512, 1000, 2048, 4095, 4096], dtype=float)
PREFILLS = np.array([0, 1, 15, 128, 500, 2048, 8192, 20000, 32768, 65536], dtype=float)


# ---------------------------------------------------------------------------------------------
# strategies


def synthetic_gpu(memory_gib: float, bw_tb_s: float, tflops: dict[str, float], link_gb_s: float) -> GpuSpec:
    return GpuSpec(
        id="prop-gpu", name="Synthetic GPU", vendor="nvidia", family="synthetic", memory_gib=memory_gib,
        mem_bw_tb_s=bw_tb_s, tflops=tflops, interconnect="nvlink", link_gb_s=link_gb_s, max_gpus_per_node=8,
        tdp_w=700, price_usd_hour=2.0, price_provider="test", price_date="2026-01-01", sources={},
    )


@st.composite
def synthetic_gpus(draw, fp8: bool | None = None) -> GpuSpec:
    bf16 = draw(st.floats(50, 3000))
    with_fp8 = draw(st.booleans()) if fp8 is None else fp8
    tflops = {"bf16": bf16} | ({"fp8": 2.0 * bf16} if with_fp8 else {})
    return synthetic_gpu(draw(st.floats(16, 300)), draw(st.floats(0.3, 10)), tflops, draw(st.floats(25, 1800)))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def dense_models(draw) -> ModelSpec:
    units = draw(st.integers(8, 128))  # hidden / 128
    hidden = 128 * units
    heads = draw(st.sampled_from(_divisors(units)))
    kv_heads = draw(st.sampled_from(_divisors(heads)))
    return ModelSpec(
        id="prop-dense", name="Synthetic dense", family="synthetic", layers=draw(st.integers(8, 128)), hidden=hidden,
        heads=heads, kv_heads=kv_heads, head_dim=hidden // heads, ffn_dim=draw(st.integers(2 * hidden, 4 * hidden)),
        vocab=draw(st.integers(32_000, 256_000)), tie_embeddings=draw(st.booleans()), max_context=131072, source="test",
    )


FIXTURE_MODELS = [llama8b(), llama70b(), mixtral()]
models = st.one_of(st.sampled_from(FIXTURE_MODELS), dense_models())
input_lens = st.integers(1, 32_000)
output_lens = st.integers(1, 4_000)


@st.composite
def length_dists(draw, lo: int, hi: int) -> LengthDist:
    mean = float(draw(st.integers(lo, hi)))
    kind = draw(st.sampled_from(["fixed", "exponential", "lognormal"]))
    if kind == "lognormal":
        return LengthDist(kind=kind, mean=mean, p90=mean * draw(st.floats(1.05, 2.27)))
    return LengthDist(kind=kind, mean=mean)


def fixed(n: float) -> LengthDist:
    return LengthDist(kind="fixed", mean=float(n))


@st.composite
def engine_configs(draw) -> ServingConfig:
    """Any engine configuration, fitting or not (TP is fixed up later where it must fit)."""
    return ServingConfig(
        tp=draw(st.sampled_from([1, 2, 4, 8])),
        pp=draw(st.sampled_from([1, 1, 2, 4])),
        weights=draw(st.sampled_from(WEIGHT_PRECISIONS)),
        kv=draw(st.sampled_from(KV_PRECISIONS)),
        max_num_seqs=draw(st.one_of(st.none(), st.integers(1, 4096))),
        max_num_batched_tokens=draw(st.one_of(st.none(), st.integers(16, 65536))),
        chunked_prefill=draw(st.booleans()),
        prefix_hit=draw(st.sampled_from([0.0, 0.0, 0.5, 0.9])),
        spec_k=draw(st.sampled_from([0, 0, 2, 4])),
        prune_fraction=draw(st.sampled_from([0.0, 0.0, 0.3])),
        sparsity_2_4=draw(st.booleans()),
    )


def fitted(model: ModelSpec, gpu: GpuSpec, cfg: ServingConfig = ServingConfig()) -> ServingConfig | None:
    """cfg at the smallest TP whose weights leave room for KV cache, or None."""
    tp = smallest_fitting_tp(model, gpu, cfg, KNOBS)
    return None if tp is None else replace(cfg, tp=tp)


def serving(model: ModelSpec, gpu: GpuSpec, wl: Workload, cfg: ServingConfig = ServingConfig()):
    """Replica params of a configuration that holds at least one request, else the example is skipped."""
    cfg = fitted(model, gpu, cfg)
    assume(cfg is not None)
    p = replica_params(model, gpu, cfg, KNOBS)
    assume(batch_cap(p, wl) >= 1.0)
    return p, cfg


def grid_step(p, ctx: float):
    """Step time over the BATCHES x PREFILLS grid with `ctx` cached tokens per decoding sequence."""
    b, n = np.meshgrid(BATCHES, PREFILLS, indexing="ij")
    return step_time(p, b, b * ctx, n, n * n / 2.0)


def _finite_nonneg(x) -> bool:
    x = np.asarray(x, dtype=float)
    return bool(np.all(np.isfinite(x)) and np.all(x >= 0))


# ---------------------------------------------------------------------------------------------
# (a) step time is always a finite, non-negative duration


@PROPS
@given(model=models, gpu=synthetic_gpus(), cfg=engine_configs(), ctx=st.integers(0, 40_000),
       batch=st.integers(0, 4096), prefill=st.integers(0, 65536), cached=st.integers(0, 32_000))
def test_step_time_finite_and_non_negative(model, gpu, cfg, ctx, batch, prefill, cached):
    p = replica_params(model, gpu, cfg, KNOBS)
    st_grid = grid_step(p, float(ctx))
    for part in (st_grid.total_s, st_grid.compute_s, st_grid.memory_s, st_grid.comm_s, st_grid.overhead_s):
        assert _finite_nonneg(part)
    assert np.all(st_grid.total_s > 0)  # every step pays the scheduler overhead
    spec = float(spec_tokens_per_step(p)) if cfg.spec_k else 1.0
    one = step_time(p, batch, batch * ctx, prefill, prefill * (prefill / 2.0 + cached), spec_tokens=spec)
    assert _finite_nonneg(one.total_s) and float(one.total_s) > 0
    assert _finite_nonneg(decode_step(p, float(batch), float(ctx)).total_s)


# ---------------------------------------------------------------------------------------------
# (b) more memory bandwidth is never slower


@PROPS
@given(model=models, gpu=synthetic_gpus(), cfg=engine_configs(), ctx=st.integers(0, 40_000), factor=st.floats(1.0, 8.0))
def test_more_bandwidth_never_slower_step(model, gpu, cfg, ctx, factor):
    fast_gpu = faster_memory(gpu, factor)
    slow = grid_step(replica_params(model, gpu, cfg, KNOBS), float(ctx)).total_s
    fast = grid_step(replica_params(model, fast_gpu, cfg, KNOBS), float(ctx)).total_s
    assert np.all(fast <= slow)


def faster_memory(gpu, factor: float):
    """The same GPU with `factor` times its bandwidth, on the datasheet and as measured."""
    measured = gpu.achievable_bw_tb_s * factor if gpu.achievable_bw_tb_s else None
    return gpu.model_copy(update={"mem_bw_tb_s": gpu.mem_bw_tb_s * factor, "achievable_bw_tb_s": measured})


def _bandwidth_pair(model, gpu, in_len, out_len, factor, load):
    """Operating points of the same replica on `gpu` and on `gpu` with `factor` times its bandwidth, at
    the same offered rate (`load` times the slower replica's capacity)."""
    wl = Workload(fixed(in_len), fixed(out_len))
    p_slow, cfg = serving(model, gpu, wl)
    fast_gpu = faster_memory(gpu, factor)
    p_fast = replica_params(model, fast_gpu, cfg, KNOBS)
    max_slow, max_fast = offline_throughput(p_slow, wl)[0], offline_throughput(p_fast, wl)[0]
    rate = load * max_slow
    return max_slow, max_fast, rate_point(p_slow, wl, rate), rate_point(p_fast, wl, rate)


BANDWIDTH_RATE_ARGS = dict(model=models, gpu=synthetic_gpus(), in_len=input_lens, out_len=output_lens,
                           factor=st.floats(1.01, 8.0), load=st.floats(0.05, 0.9))


@FEW
@given(**BANDWIDTH_RATE_ARGS)
def test_more_bandwidth_never_lowers_capacity_or_raises_tpot(model, gpu, in_len, out_len, factor, load):
    max_slow, max_fast, slow, fast = _bandwidth_pair(model, gpu, in_len, out_len, factor, load)
    assert max_fast >= max_slow
    if slow.stable:
        assert fast.stable, fast.note
        assert fast.tpot_mean_s <= slow.tpot_mean_s


@FEW
@given(**BANDWIDTH_RATE_ARGS)
# regression: H100 SXM -> H200 bandwidth (3.35 -> 4.8 TB/s), Mixtral TP2, 1000 in / 10 out at 80 % load raised
# mean TTFT 43.9 -> 48.2 ms when the prefill queue's service was the excess over a decode step
@example(model=mixtral(), gpu=h100(), in_len=1000, out_len=10, factor=4.8 / 3.35, load=0.8)
def test_more_bandwidth_never_raises_ttft_at_the_same_rate(model, gpu, in_len, out_len, factor, load):
    _, _, slow, fast = _bandwidth_pair(model, gpu, in_len, out_len, factor, load)
    if slow.stable:
        assert fast.stable, fast.note
        assert fast.ttft_mean_s <= slow.ttft_mean_s


@pytest.mark.xfail(strict=True, reason="known residual: a mostly idle replica's mean TTFT moves by up to 0.2% either "
                                       "way with the decode step, whose cycles stand in for its idle time")
def test_more_bandwidth_never_raises_the_ttft_of_a_mostly_idle_replica():
    # found by the bandwidth property: the 8B at TP=2 on 16 GB GPUs with a slow link, 32-token prompts and
    # 2-token outputs at half load: mean TTFT 23.475 ms at 6 TB/s, 23.284 at 12, 23.309 at 42 (with the
    # sharp roofline it rose from 12 to 42 TB/s as well). Too small to show (the table rounds to 0.1 ms),
    # recorded so that a fix is noticed
    wl = Workload(fixed(32), fixed(2))
    gpu = synthetic_gpu(16.0, 6.0, {"bf16": 50.0}, 25.0)
    cfg = fitted(llama8b(), gpu)
    p_slow = replica_params(llama8b(), gpu.model_copy(update={"mem_bw_tb_s": 12.0}), cfg, KNOBS)
    p_fast = replica_params(llama8b(), gpu.model_copy(update={"mem_bw_tb_s": 42.0}), cfg, KNOBS)
    rate = 0.5 * offline_throughput(replica_params(llama8b(), gpu, cfg, KNOBS), wl)[0]
    slow, fast = rate_point(p_slow, wl, rate), rate_point(p_fast, wl, rate)
    assert slow.stable and fast.stable
    assert fast.ttft_mean_s <= slow.ttft_mean_s


@pytest.mark.xfail(strict=True, reason="known residual: with outputs of a few tokens an MoE's step noise has two "
                                       "modes of similar persistence, and the batch drift follows the one nearer "
                                       "the batch's; where they trade places the drift's memory jumps")
def test_moe_tpot_of_three_token_outputs_never_falls_with_load():
    # Mixtral on 80 GB, 2 TB/s GPUs, 1,000-token prompts and exponential outputs of 3 tokens on average: TPOT
    # p50 53.5 ms at 50% of capacity and 39.5 ms at 55% (with the sharp roofline: 42.5 ms at 55% and 23.8 at
    # 60%, the batch drift's memory falling from 5.0 to 1.4 steps)
    wl = Workload(fixed(1000), LengthDist(kind="exponential", mean=3.0))
    gpu = synthetic_gpu(80.0, 2.0, {"bf16": 500.0}, 300.0)
    p = replica_params(mixtral(), gpu, fitted(mixtral(), gpu), KNOBS)
    max_rate = offline_throughput(p, wl)[0]
    low, high = rate_point(p, wl, 0.50 * max_rate), rate_point(p, wl, 0.55 * max_rate)
    assert low.stable and high.stable
    assert high.tpot_s["p50"] >= low.tpot_s["p50"]


# ---------------------------------------------------------------------------------------------
# (c) a bigger running batch never lowers decode throughput while its KV cache fits


@PROPS
@given(model=models, gpu=synthetic_gpus(), in_len=input_lens, out_len=output_lens, spec_k=st.sampled_from([0, 0, 3]),
       weights=st.sampled_from(["bf16", "fp8", "int4"]))
def test_bigger_batch_never_lowers_decode_throughput(model, gpu, in_len, out_len, spec_k, weights):
    wl = Workload(fixed(in_len), fixed(out_len))
    p, _ = serving(model, gpu, wl, ServingConfig(weights=weights, spec_k=spec_k))
    ctx = wl.decode_ctx_mean
    fits = int(min(float(kv_capacity_tokens(p)) // (ctx + 8), 4096))
    b = np.arange(1, fits + 1, dtype=float)
    tok_s = b * float(spec_tokens_per_step(p)) / decode_step(p, b, ctx).total_s
    assert np.all(np.diff(tok_s) >= 0), f"decode tokens/s drops after batch {int(b[np.argmax(np.diff(tok_s) < 0)])}"


@PROPS
@given(model=models, gpu=synthetic_gpus(), in_len=input_lens, out_len=output_lens, chunked=st.booleans(),
       seqs=st.integers(1, 2048), more=st.integers(1, 2048))
def test_offline_throughput_grows_with_the_running_batch(model, gpu, in_len, out_len, chunked, seqs, more):
    """Raising max_num_seqs lets the offline batch grow, and a bigger batch never lowers throughput. The
    batch can only shrink because vLLM reserves fp32 logits for max_num_seqs sequences out of the KV pool."""
    wl = Workload(fixed(in_len), fixed(out_len))
    cfg = fitted(model, gpu, ServingConfig(chunked_prefill=chunked))
    assume(cfg is not None)
    p_small = replica_params(model, gpu, replace(cfg, max_num_seqs=seqs), KNOBS)
    p_large = replica_params(model, gpu, replace(cfg, max_num_seqs=seqs + more), KNOBS)
    (small, b_small, _), (large, b_large, _) = offline_throughput(p_small, wl), offline_throughput(p_large, wl)
    if b_large >= b_small:
        assert large >= small
    else:
        assert float(kv_capacity_tokens(p_large)) < float(kv_capacity_tokens(p_small))


# ---------------------------------------------------------------------------------------------
# (d) fp8 weights are never slower than bf16 on a GPU with fp8 tensor cores


@PROPS
@given(model=models, gpu=synthetic_gpus(fp8=True), ctx=st.integers(0, 40_000), tp=st.sampled_from([1, 2, 4, 8]),
       kv=st.sampled_from(["bf16", "fp8"]))
def test_fp8_step_never_slower_than_bf16(model, gpu, ctx, tp, kv):
    bf16 = grid_step(replica_params(model, gpu, ServingConfig(tp=tp, kv=kv), KNOBS), float(ctx)).total_s
    fp8 = grid_step(replica_params(model, gpu, ServingConfig(tp=tp, kv=kv, weights="fp8"), KNOBS), float(ctx)).total_s
    assert np.all(fp8 <= bf16)


@FEW
@given(model=models, gpu=synthetic_gpus(fp8=True), in_len=input_lens, out_len=output_lens, load=st.floats(0.05, 0.9))
def test_fp8_serving_never_slower_than_bf16(model, gpu, in_len, out_len, load):
    wl = Workload(fixed(in_len), fixed(out_len))
    p_bf16, cfg = serving(model, gpu, wl)
    p_fp8 = replica_params(model, gpu, replace(cfg, weights="fp8"), KNOBS)
    max_bf16 = offline_throughput(p_bf16, wl)[0]
    assert offline_throughput(p_fp8, wl)[0] >= max_bf16
    rate = load * max_bf16
    bf16, fp8 = rate_point(p_bf16, wl, rate), rate_point(p_fp8, wl, rate)
    if bf16.stable:
        assert fp8.stable, fp8.note
        assert fp8.ttft_mean_s <= bf16.ttft_mean_s
        assert fp8.tpot_mean_s <= bf16.tpot_mean_s


# ---------------------------------------------------------------------------------------------
# (e) a longer prompt never lowers TTFT


@PROPS
@given(model=models, gpu=synthetic_gpus(), cfg=engine_configs(), short=st.integers(1, 65536), extra=st.integers(1, 65536))
def test_longer_prompt_never_faster_single_prefill_step(model, gpu, cfg, short, extra):
    p = replica_params(model, gpu, cfg, KNOBS)
    lengths = np.array([short, short + extra], dtype=float)
    t = step_time(p, 0.0, 0.0, lengths, lengths * lengths / 2.0).total_s
    assert t[1] >= t[0]


@FEW
@given(model=models, gpu=synthetic_gpus(), cfg=engine_configs(), short=input_lens, extra=st.integers(1, 16_000),
       out_len=output_lens, load=st.floats(0.01, 0.2))
def test_longer_prompt_never_lowers_ttft_at_a_fixed_low_rate(model, gpu, cfg, short, extra, out_len, load):
    # no prefix cache here: with block-granular hits a longer prompt can legitimately need less prefill
    short_wl, long_wl = Workload(fixed(short), fixed(out_len)), Workload(fixed(short + extra), fixed(out_len))
    p, _ = serving(model, gpu, long_wl, replace(cfg, prefix_hit=0.0))
    rate = load * offline_throughput(p, long_wl)[0]
    for r in (0.0, rate):  # the unloaded floor and a fixed low rate
        a, b = rate_point(p, short_wl, r), rate_point(p, long_wl, r)
        assert a.stable and b.stable, (a.note, b.note)
        assert b.ttft_mean_s >= a.ttft_mean_s


# ---------------------------------------------------------------------------------------------
# (f) offline throughput is a finite, non-negative number for every configuration


@PROPS
@given(model=models, gpu=synthetic_gpus(), cfg=engine_configs(), in_len=length_dists(1, 32_000),
       out_len=length_dists(1, 4_000))
def test_offline_throughput_finite_and_non_negative(model, gpu, cfg, in_len, out_len):
    wl = Workload(in_len, out_len)
    p = replica_params(model, gpu, cfg, KNOBS)
    rate, batch, st_ = offline_throughput(p, wl)
    assert math.isfinite(rate) and rate >= 0
    assert math.isfinite(batch) and batch >= 0
    assert _finite_nonneg(st_.total_s)
    if float(memory_per_gpu(p)["kv"]) <= 0:
        assert rate == 0.0


# ---------------------------------------------------------------------------------------------
# (g) rate-mode percentiles: ordered and finite when stable; never a finite p99 past capacity


@FEW
@given(model=models, gpu=synthetic_gpus(), in_len=length_dists(1, 32_000), out_len=length_dists(1, 4_000),
       cfg=engine_configs(), load=st.floats(0.0, 0.999))
def test_rate_point_percentiles_ordered_when_stable(model, gpu, in_len, out_len, cfg, load):
    wl = Workload(in_len, out_len)
    p, _ = serving(model, gpu, wl, cfg)
    point = rate_point(p, wl, load * offline_throughput(p, wl)[0])
    if not point.stable:
        assert point.note  # an unstable point says why
        return
    for dist in (point.ttft_s, point.tpot_s, point.e2e_s):
        values = [dist["mean"], dist["p50"], dist["p90"], dist["p99"]]
        assert all(math.isfinite(v) and v >= 0 for v in values), dist
        assert dist["p50"] <= dist["p90"] <= dist["p99"], dist
    assert point.e2e_s["p50"] >= point.ttft_s["p50"]


@FEW
@given(model=models, gpu=synthetic_gpus(), in_len=length_dists(1, 32_000), out_len=length_dists(1, 4_000),
       cfg=engine_configs(), over=st.floats(1.0, 100.0))
def test_rate_at_or_above_capacity_is_unstable(model, gpu, in_len, out_len, cfg, over):
    wl = Workload(in_len, out_len)
    p, _ = serving(model, gpu, wl, cfg)
    max_rate = offline_throughput(p, wl)[0]
    point = rate_point(p, wl, over * max_rate)
    assert not point.stable
    assert point.note
    for dist in (point.ttft_s, point.tpot_s, point.e2e_s):
        assert not math.isfinite(dist.get("p99", math.inf))
    assert not math.isfinite(point.ttft_mean_s)


# ---------------------------------------------------------------------------------------------
# (h) more offered load never lowers latency (size_replicas bisects on this)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(model=models, gpu=synthetic_gpus(), in_len=length_dists(1, 32_000), out_len=length_dists(1, 4_000),
       load=st.floats(0.02, 0.9), step=st.floats(1.0, 1.1))
@example(model=llama70b(), gpu=h100(), in_len=LengthDist(kind="lognormal", mean=1000, p90=2000),
         out_len=LengthDist(kind="exponential", mean=250), load=0.49, step=0.50 / 0.49)
def test_more_load_never_lowers_latency(model, gpu, in_len, out_len, load, step):
    wl = Workload(in_len, out_len)
    p, _ = serving(model, gpu, wl)
    max_rate = offline_throughput(p, wl)[0]
    low, high = rate_point(p, wl, load * max_rate), rate_point(p, wl, min(load * step, 0.95) * max_rate)
    # TPOT is defined only for requests that decode (more than one output token)
    names = ("ttft_s", "tpot_s", "e2e_s") if (wl.out_grid > 1.0).any() else ("ttft_s", "e2e_s")
    if high.stable:
        assert low.stable, low.note
        for name in names:
            for stat in ("mean", "p99"):
                # weighted percentiles interpolate between samples of unequal weight, so when every
                # sample rises a heavy one overtaking a light one can move the p99 down by a rounding
                # amount (7e-7 seen); a sampling wobble would be orders of magnitude larger
                assert getattr(high, name)[stat] >= getattr(low, name)[stat] * (1.0 - 1e-6), (name, stat)


def test_moe_latency_never_falls_as_a_light_load_grows():
    # an MoE's decode step climbs steeply while the first few sequences touch new experts, then
    # flattens once every expert is touched: a batch drift taken along the steep slope alone put
    # the TPOT p99 at 2% of capacity above its value at 6% (14.4 against 12.3 ms for Mixtral with
    # speculation), more load giving lower latency
    p = replica_params(mixtral(), h100(), ServingConfig(tp=2, spec_k=3), Knobs())
    wl = Workload(fixed(512), fixed(128))
    max_rate = offline_throughput(p, wl)[0]
    points = [rate_point(p, wl, u * max_rate, fidelity=QUICK) for u in np.linspace(0.005, 0.12, 24)]
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        for stat in ("p50", "p90", "p99"):
            values = [getattr(pt, name)[stat] for pt in points]
            assert all(b >= a for a, b in zip(values, values[1:])), (name, stat, values)


def test_moe_tpot_with_outputs_of_a_few_tokens_never_falls_with_load():
    # Mixtral at TP=2 on an H100, 30-token prompts, outputs of one token on average: the batch
    # turns over faster than prefill bursts decay, and the drift taken from the bursts' mode put the
    # mean TPOT of the requests that decode at 15.9, 28.0, 11.7, 8.8, 7.5, 6.3 ms at 2, 5, 10, 20,
    # 40 and 80% of capacity (the simulation's rises from about 8 to 12 ms)
    wl = Workload(fixed(30), LengthDist(kind="exponential", mean=1.0))
    p = replica_params(mixtral(), h100(), ServingConfig(tp=2), Knobs())
    max_rate = offline_throughput(p, wl)[0]
    points = [rate_point(p, wl, u * max_rate) for u in (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)]
    assert all(pt.stable for pt in points)
    tpot = [pt.tpot_s["mean"] for pt in points]
    assert all(b >= a for a, b in zip(tpot, tpot[1:])), tpot


# ---------------------------------------------------------------------------------------------
# the real catalog: every model on every GPU at its smallest fitting TP


@pytest.mark.parametrize("gpu_id", list(catalog.gpus()))
def test_catalog_pairs_offline_finite_or_clear_reason(gpu_id):
    gpu = catalog.gpus()[gpu_id]
    problems = []
    for model in catalog.models().values():
        cfg = ServingConfig(weights=model.dtype, kv="fp16" if model.dtype == "fp16" else "bf16")
        req = PredictRequest(model=model, gpu=gpu, config=cfg, input_len=fixed(1000), output_len=fixed(200), mode="offline",
                             tp_auto=True)
        try:
            pred = predict(req)
        except PredictError as exc:  # refused up front: say what the GPU lacks
            if gpu.id not in str(exc):
                problems.append(f"{model.id}: refused without naming the GPU: {exc}")
            continue
        if pred.fits:
            pt = pred.point
            ok = pt is not None and pt.stable and math.isfinite(pt.requests_per_s) and pt.requests_per_s > 0
            ok = ok and all(math.isfinite(x) and x > 0 for x in (pt.ttft_mean_s, pt.tpot_mean_s, pt.e2e_mean_s))
            if not ok:
                problems.append(f"{model.id}: fits at TP={pred.config.tp} but offline point is {pt}")
        elif "memory capacity" not in pred.reason or model.id not in pred.reason and "KV cache" not in pred.reason:
            problems.append(f"{model.id}: fits=False without a clear reason: {pred.reason!r}")
    assert not problems, "\n".join(problems)


def test_poisson_counts_are_poisson_and_grow_with_the_mean():
    """Inverse-CDF draws: the sample mean and variance match the Poisson mean (below and above
    the normal-approximation switch), and the same seeded uniform never maps to fewer arrivals at a
    larger mean (the sizing search relies on it)."""
    from planner.engine.quantiles import poisson_counts

    for lam in (0.05, 0.7, 4.0, 22.0, 45.0):
        draws = poisson_counts(np.random.default_rng(7), np.full(40_000, lam))
        assert draws.mean() == pytest.approx(lam, rel=0.03, abs=0.005)
        assert draws.var() == pytest.approx(lam, rel=0.06, abs=0.005)
    means = np.random.default_rng(3).uniform(0.0, 60.0, 5000)
    low = poisson_counts(np.random.default_rng(11), means)
    high = poisson_counts(np.random.default_rng(11), means * 1.1)
    assert np.all(high >= low)


@pytest.mark.parametrize("rate", [5e-324, 1e-300, 1e-12])
def test_a_vanishing_load_gives_the_idle_latencies_not_nan(rate):
    # a rate so small that lane rate x step underflows took the log of zero in the next-cycle
    # table, and the batch drift divided by a vanishing memory (NaN TPOT p99)
    import warnings

    p = replica_params(llama8b(), h100(), ServingConfig(), Knobs())
    wl = Workload(LengthDist(kind="fixed", mean=1000), LengthDist(kind="fixed", mean=100))
    idle = rate_point(p, wl, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        point = rate_point(p, wl, rate)
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        for stat in ("p50", "p90", "p99"):
            value = getattr(point, name)[stat]
            assert math.isfinite(value) and value == pytest.approx(getattr(idle, name)[stat], rel=0.02), (name, stat)
