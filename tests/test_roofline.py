"""Formulas against hand-worked numbers (the arithmetic is in each test)."""

import math

import numpy as np
import pytest
from specs_fixtures import h100, llama8b, llama70b, mixtral

from planner.engine.knobs import Knobs
from planner.engine.roofline import ServingConfig, kv_capacity_tokens, memory_per_gpu, replica_params, step_time, touched_experts

KNOBS = Knobs(eta_weights=0.75, eta_kv=0.6, eta_compute=0.55, eta_attention=0.5, eta_link=0.75, allreduce_latency_us=10,
              step_overhead_us=130, layer_overhead_us=10, seq_overhead_us=4, api_overhead_ms=0)


def test_param_counts_include_all_three_swiglu_matrices():
    m = llama8b()
    # per layer: attention 2*4096*4096 (q,o) + 2*4096*1024 (k,v) = 41,943,040; MLP 3*4096*14336 = 176,160,768;
    # norms 8192 -> 218,112,000 x 32 = 6,979,584,000; + embeddings and untied head 2*128256*4096 = 1,050,673,152
    # + final norm ignored -> 8,030,257,152 (Meta publishes 8.03B)
    assert m.params_total == 8_030_257_152
    assert m.params_active == m.params_total


def test_moe_active_params():
    m = mixtral()
    # expert = 3*4096*14336 = 176,160,768; routed total 32*8*expert = 45.1B; active uses 2 of 8 per layer
    assert m.expert_params == 176_160_768
    assert m.params_total == pytest.approx(46.70e9, rel=0.01)  # Mistral: 46.7B total
    assert m.params_active == pytest.approx(12.9e9, rel=0.01)  # 12.9B active


def test_kv_bytes_per_token():
    p = replica_params(llama8b(), h100(), ServingConfig(), KNOBS)
    # 2 (K,V) * 32 layers * 8 kv heads * 128 dims * 2 bytes = 131,072 bytes
    assert p.kv_bytes_token_gpu == 131_072
    p4 = replica_params(llama70b(), h100(), ServingConfig(tp=4, kv="fp8"), KNOBS)
    # 2 * 80 * 8 * 128 * 1 byte = 163,840 per token per replica; TP4 holds 2 heads per GPU -> 40,960 per GPU
    assert p4.kv_bytes_token_gpu == 40_960
    p16 = replica_params(llama70b(), h100(max_gpus_per_node=16), ServingConfig(tp=16), KNOBS)
    # 16 ranks over 8 KV heads: heads are replicated, never below one head per GPU: 2*80*1*128*2 = 40,960
    assert p16.kv_bytes_token_gpu == 40_960


def test_memory_budget_and_kv_capacity():
    p = replica_params(llama8b(), h100(), ServingConfig(), KNOBS)
    mem = memory_per_gpu(p)
    # weights 8,030,257,152 * 2 bytes = 16.06 GB
    assert mem["weights"] == pytest.approx(16.0605e9, rel=1e-4)
    # other, as vLLM profiles it: 0.25 GiB outside PyTorch + the sampler's 1024 seqs * 128,256 logits
    # * 14.8 B = 1,943.7 MB + 8192 tokens * 4096 * 2.56 B = 85.9 MB
    assert mem["other"] == pytest.approx(268_435_456 + 1_943_745_331.2 + 85_899_345.92, rel=1e-9)
    # budget 0.9 * 80 GiB = 77.309 GB; KV = 77.309 - 16.061 - 2.298 = 58.951 GB -> / 131,072 = 449,759 tokens
    assert kv_capacity_tokens(p) == 449_759


def test_tensorrt_llm_takes_its_share_of_the_memory_the_model_leaves_free():
    p = replica_params(llama8b(), h100(), ServingConfig(engine="trtllm"), KNOBS)
    mem = memory_per_gpu(p)
    # other: 1 GiB + activations 268.4 MB + logits 2048 seqs * 128256 * 4 = 1,050.7 MB = 2.393 GB
    assert mem["other"] == pytest.approx(1.073741824e9 + 268_435_456 + 1_050_673_152, rel=1e-9)
    # free after loading: 85.899 - 16.061 - 2.393 = 67.446 GB; KV 0.9 of it = 60.701 GB -> / 131,072 = 463,114 tokens
    assert float(mem["kv"]) == pytest.approx(0.9 * (80 * 2**30 - mem["weights"] - mem["other"]), rel=1e-12)
    assert kv_capacity_tokens(p) == 463_114
    # a model larger than the GPU is short by what it lacks, not by a share of it
    big = replica_params(llama70b(), h100(), ServingConfig(engine="trtllm"), KNOBS)
    short = memory_per_gpu(big)
    assert float(short["shortfall"]) == pytest.approx(float(short["weights"] + short["other"]) - 80 * 2**30, rel=1e-12)
    assert float(short["kv"]) == 0.0


def test_decode_step_is_weight_streaming_bound_at_batch_one():
    p = replica_params(llama8b(), h100(), ServingConfig(), KNOBS)
    st = step_time(p, 1, 1000, 0, 0)
    # weights read: body 6,979,584,000 * 2 + head 525,336,576 * 2 = 15.0098 GB at 0.75 * 3.35 TB/s -> 5.974 ms
    # KV: 1000 tokens * 131,072 B at 0.6 * 3.35 TB/s -> 0.0652 ms; overhead 130 + 32*10 + 4 us = 0.454 ms
    expected = 15.0098e9 / 2.5125e12 + 1000 * 131072 / 2.01e12 + 454e-6
    assert float(st.total_s) == pytest.approx(expected, rel=1e-3)
    assert float(st.memory_s) > float(st.compute_s)


def test_prefill_is_compute_bound():
    p = replica_params(llama8b(), h100(), ServingConfig(), KNOBS)
    st = step_time(p, 0, 0, 4096, 4096 * 4096 / 2)
    # linear: 2 * 6.98e9 * 4096 + 2 * 525e6 (one logit row) = 5.718e13 FLOP at 0.55 * 989 TF -> 105.1 ms
    # attention: 2 * 256 dims * 32 heads * 32 layers * 4096^2/2 = 4.40e12 at 0.5 * 989 TF -> 8.9 ms
    # the weights' 5.974 ms of streaming (the batch-one test below) join the FLOPs in a smooth
    # roofline: sqrt(105.1^2 + 5.974^2) = 105.3 ms, 0.16% above the FLOPs alone
    linear = (2 * 6_979_584_000 * 4096 + 2 * 525_336_576) / (0.55 * 989e12)
    weights = 15.0098e9 / (0.75 * 3.35e12)
    attn = 2 * 256 * 32 * 32 * 4096 * 4096 / 2 / (0.5 * 989e12)
    assert float(st.total_s) == pytest.approx(math.hypot(linear, weights) + attn + 130e-6 + 320e-6 + 4e-6, rel=1e-4)
    assert float(st.compute_s) > float(st.memory_s)


def test_linear_layers_join_flops_and_weight_streaming_without_a_sharp_knee():
    from planner.engine.roofline import linear_time_s

    # at the ridge (FLOPs and streaming take as long) neither side runs at full speed: sqrt(2) x 10 ms
    assert linear_time_s(0.010, 0.010, arrays=False) == pytest.approx(0.014142, rel=1e-4)
    # a tenth of the way from either side it is the longer one plus 0.5%: sqrt(1 + 0.01)
    assert linear_time_s(0.001, 0.010, arrays=False) == pytest.approx(0.0100499, rel=1e-4)
    assert linear_time_s(np.array([0.010, 0.100]), np.array([0.001, 0.010])) == pytest.approx([0.0100499, 0.100499], rel=1e-4)
    # the same in floats and in arrays, as the step paths need
    assert linear_time_s(0.003, 0.004, arrays=False) == float(linear_time_s(np.array(0.003), np.array(0.004)))


def test_tensor_parallel_allreduce_over_nvlink_and_pcie():
    cfg = ServingConfig(tp=2)
    nv = replica_params(llama8b(), h100(), cfg, KNOBS)
    pcie = replica_params(llama8b(), h100(interconnect="pcie", link_gb_s=64), cfg, KNOBS)
    t_nv, t_pcie = step_time(nv, 64, 64_000, 0, 0), step_time(pcie, 64, 64_000, 0, 0)
    # per step 2 all-reduces x 32 layers; message 64 tok * 4096 * 2 B = 524,288 B; ring factor 2*(2-1)/2 = 1
    # NVLink: 64 * (10 us + 524,288 / (0.75 * 450e9)) = 64 * 11.553 us = 0.739 ms
    assert float(t_nv.comm_s) == pytest.approx(64 * (10e-6 + 524_288 / (0.75 * 450e9)), rel=1e-6)
    # PCIe Gen5 64 GB/s: 64 * (10 us + 10.92 us) = 1.339 ms
    assert float(t_pcie.comm_s) == pytest.approx(64 * (10e-6 + 524_288 / (0.75 * 64e9)), rel=1e-6)


def test_moe_touches_fewer_experts_at_small_batch():
    p = replica_params(mixtral(), h100(), ServingConfig(tp=2), KNOBS)
    # uniform top-2 of 8: one token touches 2 experts; 8 tokens touch 8*(1-(6/8)^8) = 7.20 on average
    assert float(touched_experts(p, 1)) == pytest.approx(2.0)
    assert float(touched_experts(p, 8)) == pytest.approx(8 * (1 - 0.75**8))
    one, many = step_time(p, 1, 1000, 0, 0), step_time(p, 256, 256_000, 0, 0)
    assert float(one.total_s) < float(many.total_s)


def test_routed_experts_run_at_their_own_gemm_efficiency():
    # a compute-bound Mixtral prefill at TP 2: its routed experts' FLOPs, 2 x 32 layers x 2 experts x
    # 176,160,768 = 22.55 GFLOP a token, take 1/eta_moe as long; a dense model has none to slow
    tokens = 8192
    fast, slow = (replica_params(mixtral(), h100(), ServingConfig(tp=2), KNOBS.scaled(eta_moe=e)) for e in (1.0, 0.5))
    routed_flops = 2 * 32 * 2 * 176_160_768 * tokens
    extra = routed_flops * (1 / 0.5 - 1) / (2 * 0.55 * fast.flops_linear)
    t_fast, t_slow = (float(step_time(p, 0, 0, tokens, tokens * tokens / 2).total_s) for p in (fast, slow))
    assert float(step_time(fast, 0, 0, tokens, tokens * tokens / 2).compute_s) > float(step_time(fast, 0, 0, tokens, 0).memory_s)
    # the smooth roofline joins the weights' streaming (all 47 GB a GPU: every expert is touched) as a
    # 2-norm, which takes 0.25% off the difference here
    assert t_slow - t_fast == pytest.approx(extra, rel=5e-3)
    dense = [float(step_time(replica_params(llama8b(), h100(), ServingConfig(), KNOBS.scaled(eta_moe=e)), 0, 0, tokens,
                                       tokens * tokens / 2).total_s) for e in (1.0, 0.5)]
    assert dense[0] == dense[1]


def test_fp8_halves_weight_bytes_and_doubles_flops():
    b = replica_params(llama70b(), h100(), ServingConfig(tp=4), KNOBS)
    f = replica_params(llama70b(), h100(), ServingConfig(tp=4, weights="fp8"), KNOBS)
    assert f.body_bytes == pytest.approx(b.body_bytes / 2)
    assert f.flops_linear == 1979e12 and b.flops_linear == 989e12  # dense fp8 and bf16 peaks
    assert float(step_time(f, 8, 8000, 0, 0).total_s) < float(step_time(b, 8, 8000, 0, 0).total_s)


def test_pruning_and_sparsity_touch_only_their_terms():
    base = replica_params(llama8b(), h100(), ServingConfig(), KNOBS)
    pruned = replica_params(llama8b(), h100(), ServingConfig(prune_fraction=0.25), KNOBS)
    assert pruned.body_bytes == pytest.approx(base.body_bytes * 0.75)
    assert pruned.head_bytes == base.head_bytes  # the vocabulary projection is not pruned
    sparse = replica_params(llama8b(), h100(), ServingConfig(sparsity_2_4=True), KNOBS)
    # 2:4 keeps half the values plus 2-bit indices per kept value: bf16 -> 0.5 + 0.5/8 = 0.5625 of the bytes
    assert sparse.body_bytes == pytest.approx(base.body_bytes * 0.5625)
    assert sparse.flops_linear == 2 * base.flops_linear
    assert math.isclose(sparse.kv_bytes_token_gpu, base.kv_bytes_token_gpu)


@pytest.mark.parametrize("model, tp, pp, spec_k",
                         [(llama8b, 1, 1, 0), (llama70b, 4, 2, 0), (mixtral, 2, 1, 3), (llama70b, 8, 1, 4)])
@pytest.mark.parametrize("batch", [0.0, 1.0, 37.5])
def test_steps_known_to_carry_a_prompt_are_the_step_time_formula(model, tp, pp, spec_k, batch):
    """The sampled cycles time their prompt-carrying steps without testing each for a prompt: the
    same figures as step_time, to the bit."""
    from planner.engine.roofline import step_total_s

    p = replica_params(model(), h100(), ServingConfig(tp=tp, pp=pp, spec_k=spec_k), KNOBS)
    chunk = np.geomspace(1.0, 16384.0, 257)
    attn = chunk * np.linspace(1.0, 8000.0, 257)
    expected = step_time(p, batch, batch * 1234.0, chunk, attn, spec_tokens=spec_k + 1.0).total_s
    assert np.array_equal(step_total_s(p, batch, batch * 1234.0, chunk, attn, spec_k + 1.0, prompts=1.0), expected)


def test_one_client_closed_loop_is_a_lone_request_on_an_idle_engine():
    # one client sends its next request when the last completes: no request ever waits, so TTFT is
    # the prompt's own prefill step (plus the API overhead), TPOT a batch-1 decode step, and the
    # throughput 1 / E2E (Poisson arrivals at that rate would have queued it behind a busy engine)
    from planner.engine.cycles import decode_step
    from planner.engine.scenario import LengthDist
    from planner.engine.serving import Workload, concurrency_point

    p = replica_params(llama8b(), h100(), ServingConfig(), Knobs(api_overhead_ms=3.0))
    prompt = Workload(LengthDist(kind="fixed", mean=2048), LengthDist(kind="fixed", mean=1))
    point = concurrency_point(p, prompt, 1)
    prefill_s = float(step_time(p, 0.0, 0.0, 2048.0, 2048.0 ** 2 / 2).total_s)
    assert point.ttft_mean_s == pytest.approx(prefill_s + 0.003, rel=0.01)
    assert point.ttft_s["p99"] == pytest.approx(point.ttft_mean_s, rel=1e-9)
    assert point.requests_per_s == pytest.approx(1.0 / point.e2e_mean_s)
    chat = Workload(LengthDist(kind="fixed", mean=512), LengthDist(kind="fixed", mean=129))
    point = concurrency_point(p, chat, 1)
    assert point.tpot_mean_s == pytest.approx(float(decode_step(p, 1.0, chat.decode_ctx_mean).total_s), rel=1e-6)
    assert point.e2e_mean_s == pytest.approx(point.ttft_mean_s + 128 * point.tpot_mean_s, rel=1e-6)


def test_idle_replica_latencies_come_from_the_length_grids():
    # no load: TTFT is each prompt's own prefill, every decode step the one-sequence step, and E2E
    # adds (L_out - 1) of them: percentiles of those exact values, with no queueing in them
    from planner.engine import lengths
    from planner.engine.cycles import decode_step
    from planner.engine.scenario import LengthDist
    from planner.engine.serving import Workload, rate_point

    p = replica_params(llama8b(), h100(), ServingConfig(), Knobs(api_overhead_ms=2.0))
    wl = Workload(LengthDist(kind="lognormal", mean=1000, p90=2000), LengthDist(kind="exponential", mean=200))
    point = rate_point(p, wl, 0.0)
    prompts = lengths.grid(wl.input_len, 2048)
    prefill_s = np.array([float(step_time(p, 0.0, 0.0, n, n * n / 2).total_s) for n in np.percentile(prompts, [50, 99])]) + 0.002
    assert point.ttft_s["p50"] == pytest.approx(prefill_s[0], rel=0.01)
    assert point.ttft_s["p99"] == pytest.approx(prefill_s[1], rel=0.01)
    step_s = float(decode_step(p, 1.0, wl.decode_ctx_mean).total_s)
    assert point.tpot_s["p50"] == point.tpot_s["p99"] == pytest.approx(step_s, rel=1e-9)
    assert point.e2e_s["mean"] == pytest.approx(point.ttft_s["mean"] + (wl.mean_out - 1.0) * step_s, rel=2e-3)
    assert point.e2e_s["p99"] > point.ttft_s["p99"] + np.percentile(lengths.grid(wl.output_len, 2048), 90) * step_s


def test_weighted_percentiles():
    from planner.engine.quantiles import summarise

    x = np.arange(1.0, 1001.0)
    even = summarise(x, np.ones_like(x))
    assert even["p50"] == pytest.approx(np.percentile(x, 50), rel=1e-3)
    assert even["p99"] == pytest.approx(np.percentile(x, 99), rel=1e-3)
    # the top 10 samples carry half the mass: the median sits at their bottom, the mean moves up
    w = np.where(x > 990, 50.0, 500.0 / 990)
    skew = summarise(x, w)
    assert 990 <= skew["p50"] <= 991.5
    assert skew["mean"] == pytest.approx(0.5 * 495.5 + 0.5 * 995.5)


@pytest.mark.parametrize("n", [4096, 5000, 8192])
def test_weighted_percentiles_by_blocks_are_the_full_sort(n):
    # large samples sort only the value block holding each percentile; the answer must be the
    # full sort's: even, two-class (importance sampling) and arbitrary weights, heavy tails, ties
    # (with even weights: tied samples of unequal weight have no one order), and percentiles at
    # and beyond both ends
    from planner.engine.quantiles import _weighted_percentiles

    rng = np.random.default_rng(n)
    probs = [0.0, 0.01, 50.0, 90.0, 99.0, 99.99, 100.0]
    for trial in range(60):
        x = rng.lognormal(0.0, rng.uniform(0.1, 3.0), n)
        w = [np.ones(n), np.where(rng.random(n) < rng.uniform(0.01, 0.9), rng.uniform(0.01, 1.0), 1.0),
             rng.uniform(0.001, 1.0, n)][trial % 3]
        if trial % 3 == 0 and trial % 2:
            x = np.round(x, 1)  # many ties
        order = np.argsort(x, kind="stable")
        mass = w[order] / w.sum()
        full = np.interp(np.array(probs) / 100.0, np.cumsum(mass) - mass / 2.0, x[order])
        assert _weighted_percentiles(x, w, probs) == pytest.approx(full, rel=1e-9, abs=0.0), trial


@pytest.mark.parametrize("model, tp, chunked, utilization",
                         [(llama70b, 4, True, 0.1), (llama70b, 4, False, 0.8), (llama8b, 1, True, 0.5)])
def test_tpot_tail_is_sampled_precisely(model, tp, chunked, utilization, monkeypatch):
    # the TPOT p99 is set by short requests (a few steps, one prefill-heavy cycle among them);
    # importance sampling gives them half the samples. Over seeds, the shown (8,192-sample) p99
    # scatters by under 4% and centres within 3% of a 65,536-sample estimate (with even weights
    # single seeds strayed 5-7%)
    from planner.engine import seeded_draws
    from planner.engine.scenario import LengthDist
    from planner.engine.serving import FULL, Fidelity, Workload, finish_rate_point, offline_throughput, solve_rate_point

    p = replica_params(model(), h100(), ServingConfig(tp=tp, chunked_prefill=chunked), Knobs())
    wl = Workload(LengthDist(kind="lognormal", mean=1000, p90=2000), LengthDist(kind="exponential", mean=128))
    solved = solve_rate_point(p, wl, utilization * offline_throughput(p, wl)[0])
    precise = finish_rate_point(p, wl, solved, fidelity=Fidelity(65536, 65536, 4096, 16)).tpot_s["p99"]
    shown = []
    for seed in range(6):
        monkeypatch.setattr(seeded_draws, "RNG_SEED", 1000 + seed)
        shown.append(finish_rate_point(p, wl, solved, fidelity=FULL).tpot_s["p99"])
    shown = np.array(shown)
    assert shown.std() / shown.mean() < 0.04
    assert shown.mean() == pytest.approx(precise, rel=0.03)


@pytest.mark.parametrize("model_id", ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v3", "gpt-oss-120b", "gemma-3-27b"])
def test_one_step_in_floats_is_the_array_formula(model_id):
    # the fixed point and the bounds time single steps in plain floats; every part must be the
    # array formula's (dense, MoE and MLA; TP and PP hand-offs; speculation; prompts or none), to
    # the last place: numpy's vectorised power may round the MoE term's differently
    import itertools

    from planner.engine import catalog

    rng = np.random.default_rng(5)
    model = catalog.get_model(model_id)
    for gpu_id, tp, pp in itertools.product(["h100-sxm", "l40s"], [1, 2, 8], [1, 2]):
        p = replica_params(model, catalog.get_gpu(gpu_id), ServingConfig(tp=tp, pp=pp), Knobs())
        for _ in range(10):
            args = (float(rng.integers(0, 300)), float(rng.uniform(0, 1e6)), float(rng.choice([0.0, rng.uniform(1, 9000)])),
                    float(rng.uniform(0, 1e7)), float(rng.choice([1.0, 4.0])))
            floats = step_time(p, *args)
            assert isinstance(floats.total_s, float)
            arrays = step_time(p, *(np.array([x]) for x in args[:4]), spec_tokens=np.array([args[4]]))
            for part in ("total_s", "compute_s", "memory_s", "comm_s", "overhead_s"):
                assert getattr(floats, part) == pytest.approx(float(np.ravel(getattr(arrays, part))[0]), rel=1e-15, abs=0), part


@pytest.mark.parametrize("model, tp, utilization", [(llama8b, 1, 0.3), (llama8b, 1, 0.9), (llama70b, 4, 0.7)])
def test_the_next_cycle_table_is_fine_enough(model, tp, utilization):
    # decode paths draw each next cycle from a table of 256 draws a row; eight times as many move
    # the TPOT and E2E p99 (65,536 samples, so little sampling noise) by under 5%
    from planner.engine.scenario import LengthDist
    from planner.engine.serving import Fidelity, Workload, finish_rate_point, offline_throughput, solve_rate_point

    p = replica_params(model(), h100(), ServingConfig(tp=tp), Knobs())
    wl = Workload(LengthDist(kind="lognormal", mean=1000, p90=2000), LengthDist(kind="exponential", mean=128))
    solved = solve_rate_point(p, wl, utilization * offline_throughput(p, wl)[0])
    shown = finish_rate_point(p, wl, solved, fidelity=Fidelity(65536, 65536, 4096, 16, 256))
    finer = finish_rate_point(p, wl, solved, fidelity=Fidelity(65536, 65536, 4096, 16, 2048))
    for name in ("tpot_s", "e2e_s"):
        assert getattr(shown, name)["p99"] == pytest.approx(getattr(finer, name)["p99"], rel=0.05), name


@pytest.mark.parametrize("model_id", ["llama-3.1-8b", "mixtral-8x7b", "gemma-3-27b"])
def test_many_steps_of_one_replica_are_each_steps_formula(model_id):
    # the batch-drift curve times thousands of decode-only steps, and the sampled cycles thousands
    # of prompt-carrying ones, in one call each; every step must be the one-step formula's (dense
    # and MoE, TP and PP, speculation), to the last place
    import itertools

    from planner.engine import catalog
    from planner.engine.roofline import step_total_s

    model = catalog.get_model(model_id)
    rng = np.random.default_rng(9)
    batches = np.concatenate([[0.0, 1.0], rng.uniform(0, 600, 100)])
    chunks = np.concatenate([[0.0, 1.0], rng.uniform(0, 8192, 100)])
    for gpu_id, tp, pp, spec in itertools.product(["h100-sxm", "l40s"], [1, 2, 8], [1, 2], [1.0, 4.0]):
        p = replica_params(model, catalog.get_gpu(gpu_id), ServingConfig(tp=tp, pp=pp), Knobs())
        decodes = step_total_s(p, batches, batches * 1500.0, 0.0, 0.0, spec)
        assert decodes.tolist() == pytest.approx([step_time(p, b, b * 1500.0, 0.0, 0.0, spec).total_s for b in batches.tolist()],
                                                 rel=1e-15, abs=0)
        prompts = step_total_s(p, 37.0, 37.0 * 1500.0, chunks, chunks * chunks / 2.0, spec)
        assert prompts.tolist() == pytest.approx([step_time(p, 37.0, 37.0 * 1500.0, c, c * c / 2.0, spec).total_s
                                                  for c in chunks.tolist()], rel=1e-15, abs=0)


def test_efficiencies_are_fractions_of_the_measured_bandwidth_and_matmul():
    # measured 2.97 of 3.35 TB/s and 794.5 of 989 TFLOPS: the same knobs give proportionally slower steps
    measured = h100(achievable_tflops={"bf16": 794.5}, achievable_bw_tb_s=2.97)
    fast = replica_params(llama8b(), h100(), ServingConfig(), KNOBS)
    slow = replica_params(llama8b(), measured, ServingConfig(), KNOBS)
    assert slow.bw_bytes_s == pytest.approx(2.97e12)
    assert slow.flops_linear == pytest.approx(794.5e12)
    assert slow.flops_attn == pytest.approx(794.5e12)
    # batch one streams the weights: 15.0098 GB at 0.75 * 2.97 TB/s = 6.738 ms (vs 5.974 at the datasheet)
    weights_s = lambda p: float(step_time(p, 1, 0, 0, 0).memory_s)  # noqa: E731
    assert weights_s(slow) == pytest.approx(15.0098e9 / (0.75 * 2.97e12), rel=1e-3)
    assert weights_s(fast) == pytest.approx(15.0098e9 / (0.75 * 3.35e12), rel=1e-3)


def test_a_gpu_without_measurements_gets_its_familys_share_or_the_lowest():
    from planner.engine.catalog import achieved_shares

    bare = h100(achievable_tflops={}, achievable_bw_tb_s=None)
    mm, bw = achieved_shares(bare, "bf16")
    assert mm == pytest.approx(794.5 / 989, rel=1e-3)  # the hopper GPUs measured: H100 SXM and H200 share 0.803
    unknown = h100(family="nobody-measured", achievable_tflops={}, achievable_bw_tb_s=None)
    mm, bw = achieved_shares(unknown, "bf16")
    assert mm == pytest.approx(668.4 / 1307.4, rel=1e-3)  # MI300X: the lowest share of any catalog GPU
    assert bw == pytest.approx(4.09 / 5.3, rel=1e-3)
