"""The serving engine as an input: documented defaults, calibration per engine and GPU family, and
the bands and marks that say how far a number can be trusted."""

import json

import pytest

from planner.cli import main
from planner.engine import catalog
from planner.engine.engines import ENGINES, default_batched_tokens, default_max_seqs
from planner.engine.knobs import Calibration, Knobs
from planner.engine.offline import batch_cap
from planner.engine.roofline import ServingConfig, kv_capacity_tokens, replica_params
from planner.engine.scenario import LengthDist
from planner.engine.trust import error_band, validated
from planner.engine.workload import Workload


@pytest.mark.parametrize("gpu, engine, seqs, tokens", [
    ("h100-sxm", "vllm", 1024, 8192), ("a100-80gb", "vllm", 256, 2048), ("l4", "vllm", 256, 2048),
    ("h100-sxm", "sglang", 2048, 8192), ("l4", "sglang", 2048, 2048), ("b200", "sglang", 2048, 16384),
    ("mi300x", "sglang", 2048, 16384), ("h200", "sglang", 2048, 8192),
    ("h100-sxm", "trtllm", 2048, 8192), ("l4", "trtllm", 2048, 8192),
])
def test_each_engine_takes_its_documented_defaults(gpu, engine, seqs, tokens):
    g = catalog.get_gpu(gpu)
    assert (default_max_seqs(engine, g), default_batched_tokens(engine, g)) == (seqs, tokens)
    p = replica_params(catalog.get_model("llama-3.1-8b"), g, ServingConfig(engine=engine), Knobs())
    assert (p.max_num_seqs, p.budget_tokens) == (seqs, tokens)


def test_set_limits_win_over_the_engines_defaults():
    p = replica_params(catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm"),
                       ServingConfig(engine="sglang", max_num_seqs=64, max_num_batched_tokens=512), Knobs())
    assert (p.max_num_seqs, p.budget_tokens) == (64, 512)


def test_tensorrt_llm_admits_a_request_only_with_room_for_its_whole_output():
    """GUARANTEED_NO_EVICT: the running batch is the KV cache over prompt + output per sequence, not
    over the mean context of a decoding sequence (prompt + half the output) as vLLM's preempting
    scheduler fills it."""
    model, gpu = catalog.get_model("llama-3.1-8b"), catalog.get_gpu("h100-sxm")
    wl = Workload(LengthDist(kind="fixed", mean=1000.0), LengthDist(kind="fixed", mean=3000.0))
    caps = {}
    for engine in ("vllm", "trtllm"):
        p = replica_params(model, gpu, ServingConfig(engine=engine, max_num_seqs=100_000), Knobs())
        kv = float(kv_capacity_tokens(p))
        caps[engine] = (batch_cap(p, wl), kv)
    # vLLM: mean context 1000 + 3000/2 = 2500 tokens, plus half a 16-token block
    assert caps["vllm"][0] == pytest.approx(caps["vllm"][1] / 2508.0, rel=1e-12)
    # TensorRT-LLM: the whole 4000 tokens
    assert caps["trtllm"][0] == pytest.approx(caps["trtllm"][1] / 4008.0, rel=1e-12)


def knobs(**changes) -> Knobs:
    return Knobs().scaled(**changes)


def test_knobs_by_engine_and_family_with_fallbacks():
    cal = Calibration(
        families={"hopper": knobs(eta_weights=0.8, step_overhead_us=100), "cdna3": knobs(eta_weights=0.6, eta_compute=0.5)},
        engines={"sglang": {"hopper": knobs(eta_weights=0.7, step_overhead_us=300)},
                 "vllm": {"hopper": knobs(step_overhead_us=200, moe_layer_overhead_us=6),
                          "cdna3": knobs(step_overhead_us=400, moe_layer_overhead_us=217)}})
    assert cal.for_family("hopper", "sglang").eta_weights == 0.7  # fitted for the pair
    # measured family, engine not measured on it: the family's knobs, the engine's own overheads
    k = cal.for_family("cdna3", "sglang")
    assert (k.eta_weights, k.step_overhead_us) == (0.6, 300)
    # vllm on an unmeasured family: the least favourable efficiencies of the measured families, and
    # the median of vllm's overheads
    k = cal.for_family("blackwell", "vllm")
    assert (k.eta_weights, k.eta_compute) == (0.6, 0.5)
    assert k.step_overhead_us == 400  # host software: of 200 and 400, the upper median
    assert k.moe_layer_overhead_us == 6  # kernels: from the family of the same vendor (NVIDIA)
    assert cal.for_family("cdna3", "vllm").moe_layer_overhead_us == 217
    # an engine measured nowhere on an unmeasured family: the family fallback alone
    assert cal.for_family("blackwell", "trtllm").eta_weights == 0.6
    assert Calibration().for_family("hopper", "vllm") == Knobs()


def test_a_model_familys_own_request_cost_adds_to_the_engines_wherever_it_runs():
    cal = Calibration(families={"hopper": knobs(api_overhead_ms=12.0)}, model_request_ms={"deepseek_v3": 150.0})
    assert cal.for_family("hopper", "sglang", "deepseek_v3").api_overhead_ms == 162.0
    assert cal.for_family("blackwell", "vllm", "deepseek_v3").api_overhead_ms == 162.0  # unmeasured family: hopper's
    assert cal.for_family("hopper", "sglang", "llama") == cal.for_family("hopper", "sglang") == knobs(api_overhead_ms=12.0)


def test_validated_marks_name_what_has_no_measurements():
    cal = Calibration(families={"hopper": Knobs()}, engines={"vllm": {"hopper": Knobs()}},
                      validated_families=["hopper"], validated_models=["llama"], validated_engines=["vllm"])
    assert validated(cal, "hopper", "llama", "vllm") == {"gpu_family": True, "model_family": True, "engine": True}
    assert validated(cal, "hopper", "qwen3", "sglang") == {"gpu_family": True, "model_family": False, "engine": False}
    assert validated(cal, "cdna3", "llama", "vllm") == {"gpu_family": False, "model_family": True, "engine": False}


def test_error_bands_widen_with_load_and_without_measurements():
    cal = Calibration(cv_error_pct={
        "all": {"throughput": 10, "tpot": 20}, "<50%": {"throughput": 5, "tpot": 15},
        "50-80%": {"throughput": 12, "tpot": 30}, ">80%": {"throughput": 11, "tpot": 60},
        "unmeasured": {"throughput": 25, "tpot": 40}})
    measured = {"gpu_family": True, "model_family": True, "engine": True}
    low, mid, high = (error_band(cal, measured, u) for u in (0.2, 0.7, 0.95))
    assert low == {"throughput": 10, "tpot": 20}  # never narrower than the overall figure
    assert mid == {"throughput": 12, "tpot": 30}
    assert high == {"throughput": 12, "tpot": 60}  # the widest band at or below this load
    assert all(high[k] >= mid[k] >= low[k] for k in low)
    unmeasured = error_band(cal, measured | {"gpu_family": False}, 0.2)
    assert unmeasured == {"throughput": 25, "tpot": 40}
    # no cross-validation in the file: the in-sample figures
    assert error_band(Calibration(error_pct={"tpot": 9.0}), measured, 0.5) == {"tpot": 9.0}


def test_predict_json_names_engine_marks_and_bands(capsys):
    args = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--input-len", "500", "--output-len", "100",
            "--rate", "2", "--format", "json"]
    for engine in ENGINES:
        assert main(args + ["--engine", engine]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["engine"] == engine
        assert set(data["validated"]) == {"gpu_family", "model_family", "engine"}
        assert set(data["error_pct"]) <= {"throughput", "tpot", "ttft", "e2e", "p99"}
    assert main(args + ["--engine", "tgi"]) == 2
    assert "invalid choice: 'tgi'" in capsys.readouterr().err


def test_an_unmeasured_gpu_family_says_so_in_plan_json(tmp_path, capsys):
    profile = tmp_path / "p.toml"
    profile.write_text('name = "x"\n[fleet]\ngpu = "tpu-v6e"\nengine = "sglang"\n[load]\nrate_rps = 1\n')
    main(["plan", str(profile), "--format", "json"])
    tiers = json.loads(capsys.readouterr().out)["tiers"]
    assert all(t["engine"] == "sglang" and t["validated"]["gpu_family"] is False for t in tiers)
    main(["plan", str(profile), "--format", "json", "--engine", "trtllm"])
    assert {t["engine"] for t in json.loads(capsys.readouterr().out)["tiers"]} == {"trtllm"}
