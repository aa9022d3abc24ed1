"""Words a person reads about a plan or a prediction say what the numbers say: no empty, wrong or
Python-internal words."""

from __future__ import annotations

import json
import re

from rich.console import Console

from planner.cli import main
from planner.engine import catalog
from planner.engine.feasibility import config_problem
from planner.engine.plan import evaluate
from planner.engine.roofline import ServingConfig
from planner.engine.scenario import Load, Optimizations, Scenario, Targets, TierModels
from planner.report import plan_json
from planner.tables import plan_table, prediction_table

PREDICT = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--input-len", "1000", "--output-len", "200",
           "--format", "json"]


def _predict(capsys, *mode: str) -> dict:
    assert main([*PREDICT, *mode]) == 0
    return json.loads(capsys.readouterr().out)


def _text(renderable) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_one_client_keeps_one_request_running(capsys):
    assert _predict(capsys, "--concurrency", "1")["batch"] == 1.0


def test_the_running_batch_never_exceeds_the_cap_it_is_shown_with(capsys):
    # 408.9 mean-size sequences fit this KV cache: 408 run, not "409 running / cap 408"
    data = _predict(capsys, "--offline")
    assert data["batch"] <= data["max_seqs"]


def test_the_engine_limit_and_the_kv_limited_cap_are_both_given(capsys):
    kv_bound = _predict(capsys, "--offline")
    assert kv_bound["max_num_seqs"] == 1024  # vLLM V1's default on an 80 GB Hopper
    assert kv_bound["max_seqs"] < 1024 and kv_bound["max_seqs_bound_by"] == "kv cache"
    engine_bound = _predict(capsys, "--offline", "--max-seqs", "64")
    assert engine_bound["max_num_seqs"] == engine_bound["max_seqs"] == 64 and engine_bound["max_seqs_bound_by"] == "max_num_seqs"


def test_a_tp_that_splits_the_attention_heads_but_not_the_kv_heads_names_the_kv_heads():
    model = catalog.get_model("llama-3.2-3b")  # 24 attention heads, 8 KV heads
    _, reason = config_problem(model, catalog.get_gpu("h100-sxm"), ServingConfig(tp=3))
    assert "8 KV heads" in reason and "24 attention heads" not in reason


def _plan(**slo) -> dict:
    scenario = Scenario(models=TierModels(small="llama-3.2-3b", medium="llama-3.1-70b", large="llama-3.1-405b"),
                        load=Load(rate_rps=0.2, input_len=1000, output_len=500), slo=Targets(**slo),
                        optimizations=Optimizations(weights="fp8"))
    return plan_json(evaluate(scenario))


def test_a_tp_chosen_for_a_latency_floor_is_not_called_one_replica_suffices():
    # 70B fp8 on H100: TP=1 and TP=2 cannot meet a 6 s E2E p99 even idle, so TP=8 is for the E2E target
    medium = _plan(e2e_ms=6000, tpot_ms=100)["tiers"][1]
    assert medium["feasible"] and medium["replicas"] == 1 and medium["tp"] > 2
    assert medium["binding"] == "E2E p99" and f"at TP={medium['tp'] // 2}" in medium["note"], medium


def test_a_ttft_floor_names_what_bounds_the_prefill_of_the_prompt_it_is_about():
    # the p99 of 300-token exponential prompts is ~1,380 tokens: on 70B at TP=8 that prefill does
    # ~190 TFLOP against ~9 GB of weights per GPU, compute bound (the median prompt's step is not)
    scenario = Scenario(load=Load(rate_rps=1, input_len={"kind": "exponential", "mean": 300}, output_len=100),
                        slo=Targets(ttft_ms=10), optimizations=Optimizations(weights="fp8"))
    medium = plan_json(evaluate(scenario))["tiers"][1]
    assert not medium["feasible"] and medium["binding"] == "TTFT p99"
    assert "(compute bound)" in medium["reason"], medium["reason"]


def test_tables_carry_no_python_none_and_no_empty_verdict(capsys):
    data = _predict(capsys, "--concurrency", "4")
    data["bound"] = {"prefill": None, "decode": None}
    assert "None" not in _text(prediction_table(data))
    # 405B bf16: no fit
    plan = plan_json(evaluate(Scenario(load=Load(rate_rps=5), optimizations=Optimizations(weights="bf16", pp=1))))
    assert any(not t["feasible"] for t in plan["tiers"])
    text = _text(plan_table(plan, "minimal"))
    assert "None" not in text
    assert not re.search(r"no:\s*(│|$)", text, re.M), text
