"""`planner export --to vllm|sglang|k8s|bench`: every output parsed (shlex, a YAML parser) and held
against the plan it came from and the one table of documented flags."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from planner.cli import main
from planner.deploy.export import export_text
from planner.deploy.flags import FLAGS
from planner.deploy.k8s import to_yaml
from planner.engine import catalog
from planner.engine.engines import default_batched_tokens, default_max_seqs
from planner.engine.plan import evaluate
from planner.profile import load_profile

ROOT = Path(__file__).parent.parent
PROFILES = sorted((ROOT / "profiles").glob("*.toml"))
CHATBOT = ROOT / "profiles" / "chatbot-h100.toml"
CODE = ROOT / "profiles" / "code-assistant.toml"
TIERS = ["small", "medium", "large"]
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def plan_of(path: Path, engine: str | None = None):
    prof = load_profile(path).profile
    scenario = prof.scenario()
    if engine:
        scenario = scenario.model_copy(update={"fleet": scenario.fleet.model_copy(update={"engine": engine})})
    return prof.name, evaluate(scenario, prof.custom_gpus(), prof.custom_models(path.parent))


@pytest.fixture(scope="module")
def vllm_plans():
    """Each shipped profile planned for vLLM: the plan behind --to vllm, k8s and bench."""
    return {path.stem: plan_of(path, "vllm") for path in PROFILES}


def commands(text: str) -> list[list[str]]:
    """The commands of an export, each as its argv: comments dropped, continuations joined."""
    blocks = [b for b in text.split("\n\n")]
    out = []
    for block in blocks:
        body = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
        if body.strip():
            out.append(shlex.split(body.replace("\\\n", " ")))
    return out


def options(argv: list[str]) -> dict[str, list[str]]:
    """--flag -> the values after it (empty for a switch)."""
    found: dict[str, list[str]] = {}
    current = None
    for arg in argv:
        if arg.startswith("--"):
            current = arg
            found[arg] = []
        elif current is not None:
            found[current].append(arg)
    return found


def documented(tool: str) -> set[str]:
    return {f.name for f in FLAGS[tool].values()}


def feasible(plan):
    return [t for t in plan.tiers if t.feasible and t.replicas > 0]


def test_every_flag_has_a_source_and_one_name():
    for tool, table in FLAGS.items():
        names = [f.name for f in table.values()]
        assert len(names) == len(set(names)), tool
        for f in table.values():
            assert f.name.startswith("--") and f.source.startswith("https://"), (tool, f)


def test_every_catalog_model_names_the_repository_it_is_served_from():
    for model in catalog.models().values():
        for repo in filter(None, (model.hf_id, model.hf_id_fp8)):
            assert re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo), model.id
            assert catalog.get_model(repo).id == model.id  # a bench result's model_id finds it


def test_fp8_weights_are_served_from_the_publishers_fp8_checkpoint(vllm_plans):
    profile, plan = vllm_plans["chatbot-h100"]  # fp8 weights; Meta publishes the 405B in FP8
    large = next(t for t in plan.tiers if t.tier == "large")
    (argv,) = commands(export_text(plan, profile, "vllm", ["large"]))
    assert argv[2] == large.model.hf_id_fp8 == "meta-llama/Llama-3.1-405B-Instruct-FP8"
    assert "--quantization" not in options(argv)


@pytest.mark.parametrize("name", [p.stem for p in PROFILES])
def test_vllm_commands_carry_every_setting_the_plan_assumed(vllm_plans, name):
    profile, plan = vllm_plans[name]
    text = export_text(plan, profile, "vllm", TIERS)
    cmds = commands(text)
    tiers = feasible(plan)
    assert len(cmds) == len(tiers)
    for tier, argv in zip(tiers, cmds):
        cfg = tier.config
        prequantized = cfg.weights == "fp8" and tier.model.hf_id_fp8  # the publisher's FP8 checkpoint
        assert argv[:3] == ["vllm", "serve", tier.model.hf_id_fp8 if prequantized else tier.model.hf_id]
        opts = options(argv[3:])
        assert set(opts) <= documented("vllm"), set(opts) - documented("vllm")
        assert opts["--tensor-parallel-size"] == [str(cfg.tp)] and opts["--pipeline-parallel-size"] == [str(cfg.pp)]
        assert opts["--max-num-seqs"] == [str(cfg.max_num_seqs or default_max_seqs("vllm", tier.gpu))]
        assert opts["--max-num-batched-tokens"] == [str(cfg.max_num_batched_tokens or default_batched_tokens("vllm", tier.gpu))]
        assert float(opts["--gpu-memory-utilization"][0]) == cfg.gpu_mem_util
        assert ("--enable-prefix-caching" in opts) == (cfg.prefix_hit > 0)
        assert ("--quantization" in opts) == (cfg.weights == "fp8" and tier.model.dtype != "fp8" and not prequantized)
        assert opts.get("--kv-cache-dtype") == (["fp8"] if cfg.kv == "fp8" else None)
        max_len = int(opts["--max-model-len"][0])
        assert max_len <= tier.model.max_context and max_len <= tier.point.kv_tokens  # else the engine refuses to start
        assert max_len >= plan.workload.in_grid.max() + plan.workload.out_grid.max() - 1 or max_len == tier.model.max_context
        if cfg.spec_k:
            spec = json.loads(opts["--speculative-config"][0])
            assert spec["num_speculative_tokens"] == cfg.spec_k
        else:
            assert "--speculative-config" not in opts
    for tier in tiers:  # the comment line: replicas, GPU and the predicted p99s
        line = next(ln for ln in text.splitlines() if ln.startswith(f"# tier {tier.tier}:"))
        assert tier.gpu.id in line and f"TP={tier.config.tp}" in line and "TTFT" in line and "E2E" in line
        assert f"{tier.replicas:,} replica" in line


@pytest.mark.parametrize("name", [p.stem for p in PROFILES])
def test_k8s_manifests_parse_and_match_the_plan(vllm_plans, name):
    profile, plan = vllm_plans[name]
    text = export_text(plan, profile, "k8s", TIERS)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    tiers = feasible(plan)
    assert len(docs) == 2 * len(tiers)
    serve = commands(export_text(plan, profile, "vllm", TIERS))
    for tier, (deployment, service), argv in zip(tiers, zip(docs[::2], docs[1::2]), serve):
        assert deployment["kind"] == "Deployment" and deployment["apiVersion"] == "apps/v1"
        assert service["kind"] == "Service" and service["apiVersion"] == "v1"
        name_ = deployment["metadata"]["name"]
        assert DNS_1123.match(name_) and len(name_) <= 63
        assert deployment["spec"]["replicas"] == tier.replicas
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        container = pod["spec"]["containers"][0]
        assert container["command"] + container["args"] == argv  # the same server as --to vllm
        gpus = tier.config.tp * tier.config.pp
        assert container["resources"]["limits"] == {"nvidia.com/gpu": gpus}
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        port = container["ports"][0]["containerPort"]
        assert argv[argv.index("--port") + 1] == str(port) and service["spec"]["ports"][0]["targetPort"] == "http"
        if gpus > 1:
            mount = container["volumeMounts"][0]
            volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
            assert mount["mountPath"] == "/dev/shm" and volume["emptyDir"]["medium"] == "Memory"
        else:
            assert "volumes" not in pod["spec"]


@pytest.mark.parametrize("name", [p.stem for p in PROFILES])
def test_bench_reproduces_one_replicas_share_of_the_peak(vllm_plans, name):
    profile, plan = vllm_plans[name]
    cmds = commands(export_text(plan, profile, "bench", TIERS))
    tiers = feasible(plan)
    assert len(cmds) == len(tiers)
    for tier, argv in zip(tiers, cmds):
        assert argv[:3] == ["vllm", "bench", "serve"]
        opts = options(argv[3:])
        assert set(opts) <= documented("bench"), set(opts) - documented("bench")
        assert opts["--dataset-name"] == ["random"] and opts["--model"][0] in (tier.model.hf_id, tier.model.hf_id_fp8)
        assert float(opts["--request-rate"][0]) == pytest.approx(plan.peak_rate_rps / tier.replicas, rel=1e-3)
        assert opts["--percentile-metrics"] == ["ttft,tpot,itl,e2el"] and opts["--metric-percentiles"] == ["50,90,99"]
        assert "--save-result" in opts and "--save-detailed" in opts  # per-request lengths come back
        assert int(opts["--num-prompts"][0]) >= 1000
        prefix = int(opts.get("--random-prefix-len", ["0"])[0])
        assert int(opts["--random-input-len"][0]) + prefix == pytest.approx(plan.workload.mean_in, abs=1)
        assert int(opts["--random-output-len"][0]) == pytest.approx(plan.workload.mean_out, abs=1)
        assert 0 <= float(opts["--random-range-ratio"][0]) < 1
        assert prefix == round(tier.config.prefix_hit * plan.workload.mean_in)
        meta = dict(item.split("=", 1) for item in opts["--metadata"])
        assert meta["planner_gpu"] == tier.gpu.id and meta["planner_tp"] == str(tier.config.tp)
        assert meta["planner_model"] == tier.model.id and meta["planner_weights"] == tier.config.weights


def test_sglang_commands_use_sglang_flags_and_the_sglang_plan():
    profile, plan = plan_of(CHATBOT, "sglang")
    cmds = commands(export_text(plan, profile, "sglang", TIERS))
    for tier, argv in zip(feasible(plan), cmds):
        assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
        opts = options(argv[3:])
        assert set(opts) <= documented("sglang"), set(opts) - documented("sglang")
        assert opts["--model-path"][0] in (tier.model.hf_id, tier.model.hf_id_fp8) and opts["--tp"] == [str(tier.config.tp)]
        assert opts["--max-running-requests"] == [str(default_max_seqs("sglang", tier.gpu))]
        assert opts["--chunked-prefill-size"] == [str(default_batched_tokens("sglang", tier.gpu))]
        assert "--disable-radix-cache" in opts  # the plan assumed no prefix hits


def test_cli_plans_for_the_engine_it_exports(capsys):
    assert main(["export", str(CHATBOT), "--to", "sglang", "--tier", "small"]) == 0
    assert "SGLang planned" in capsys.readouterr().out
    assert main(["export", str(CHATBOT), "--to", "vllm", "--engine", "sglang"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--engine sglang" in err


def test_cli_without_to_writes_the_apps_toml_export(tmp_path, capsys):
    out = tmp_path / "plan.toml"
    assert main(["export", str(CHATBOT), "-o", str(out)]) == 0
    data = tomllib.loads(out.read_text())
    assert data["name"] == "chatbot-h100" and [t["tier"] for t in data["plan"]["tiers"]] == TIERS
    assert main(["export", str(CHATBOT), "--to", "k8s", "-o", str(out)]) == 2  # no silent overwrite
    assert "--force" in capsys.readouterr().err
    assert main(["export", str(CHATBOT), "--to", "k8s", "--tier", "small", "-o", str(out), "--force"]) == 0
    assert [d["kind"] for d in yaml.safe_load_all(out.read_text()) if d] == ["Deployment", "Service"]


def test_draft_model_goes_into_both_engines_speculative_settings(capsys):
    draft = "meta-llama/Llama-3.2-1B-Instruct"
    assert main(["export", str(CODE), "--to", "vllm", "--tier", "small", "--draft-model", draft]) == 0
    (argv,) = commands(capsys.readouterr().out)
    spec = json.loads(options(argv)["--speculative-config"][0])
    assert spec == {"model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 4}
    assert main(["export", str(CODE), "--to", "sglang", "--tier", "small", "--draft-model", draft]) == 0
    (argv,) = commands(capsys.readouterr().out)
    opts = options(argv)
    assert opts["--speculative-algorithm"] == ["STANDALONE"] and opts["--speculative-num-steps"] == ["4"]
    assert opts["--speculative-draft-model-path"] == ["meta-llama/Llama-3.2-1B-Instruct"]


def _profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text('name = "Multi Node!"\n[load]\nrate_rps = 1.0\n' + body)
    return path


def test_multi_node_replicas_get_a_note_not_an_impossible_manifest(tmp_path, capsys):
    path = _profile(tmp_path, '[models]\nlarge = "llama-3.1-405b"\n[optimizations]\nweights = "fp8"\ntp = 8\npp = 2\n')
    assert main(["export", str(path), "--to", "k8s", "--tier", "large"]) == 0
    text = capsys.readouterr().out
    assert [d for d in yaml.safe_load_all(text) if d] == []
    assert "no Deployment for tier large" in text and "16 GPUs" in text
    assert main(["export", str(path), "--to", "vllm", "--tier", "large"]) == 0
    text = capsys.readouterr().out
    assert "more than the 8 of one node" in text
    assert options(commands(text)[0])["--pipeline-parallel-size"] == ["2"]


def test_precisions_the_engines_cannot_make_are_said_not_faked(tmp_path, capsys):
    path = _profile(tmp_path, '[optimizations]\nweights = "int4"\nkv = "int8"\nchunked_prefill = false\n')
    assert main(["export", str(path), "--to", "vllm", "--tier", "small"]) == 0
    text = capsys.readouterr().out
    opts = options(commands(text)[0])
    assert "--quantization" not in opts and "--kv-cache-dtype" not in opts
    assert "pre-quantized int4 checkpoint" in text and "int8 KV cache" in text
    assert "--no-enable-chunked-prefill" in opts  # whole prompts: the step budget holds the longest
    assert int(opts["--max-num-batched-tokens"][0]) >= int(opts["--max-model-len"][0])


def test_k8s_refuses_an_engine_it_cannot_run(capsys):
    assert main(["export", str(CHATBOT), "--to", "k8s", "--engine", "trtllm"]) == 2
    assert "--engine vllm" in capsys.readouterr().err


@pytest.mark.parametrize("value", [
    {"a": 'quote " and \\ backslash', "b": ["x: y", "- dash", "#hash", "", "ünï", "multi\nline"], "c": {}, "d": [],
     "nvidia.com/gpu": 2, "e": True, "f": 0.9, "g": {"h": [{"i": 1, "j": [1, 2]}]}},
])
def test_yaml_emitter_round_trips(value):
    assert yaml.safe_load(to_yaml(value)) == value


def test_a_context_limit_below_the_loads_longest_request_is_said(vllm_plans):
    profile, plan = vllm_plans["rag-long-context"]
    text = export_text(plan, profile, "vllm", TIERS)
    longest = plan.scenario.load.input_len.max  # 120k-token prompts plus their answers: beyond a 128k context
    for tier, argv in zip(feasible(plan), commands(text)):
        assert int(options(argv)["--max-model-len"][0]) == min(tier.model.max_context, int(tier.point.kv_tokens))
        assert longest > tier.model.max_context - plan.workload.out_grid.max()
    assert text.count("longer requests are refused") == len(feasible(plan))


def test_manifest_names_and_labels_are_valid_whatever_the_profile_is_called(tmp_path, capsys):
    path = _profile(tmp_path, "")  # named "Multi Node!"
    assert main(["export", str(path), "--to", "k8s", "--tier", "small"]) == 0
    for doc in (d for d in yaml.safe_load_all(capsys.readouterr().out) if d):
        assert DNS_1123.match(doc["metadata"]["name"])
        assert all(DNS_1123.match(value) and len(value) <= 63 for value in doc["metadata"]["labels"].values())
