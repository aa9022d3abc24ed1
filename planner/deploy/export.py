"""`planner export --to vllm|sglang|k8s|bench`: a plan as the text that deploys or benchmarks it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner import __version__
from planner.deploy.commands import bench_args, bench_plan, serve_notes, server_args, shell
from planner.deploy.k8s import manifests, to_yaml
from planner.deploy.settings import ExportError, TierSettings, tier_settings
from planner.engine.engines import ENGINE_NAMES
from planner.engine.plan import Plan
from planner.engine.specs import TIERS
from planner.report import fmt_ms

if TYPE_CHECKING:
    from planner.profile import Profile

TARGETS = ("vllm", "sglang", "k8s", "bench")
# The engine a target's commands run; k8s and bench follow the plan's engine.
TARGET_ENGINE = {"vllm": "vllm", "sglang": "sglang"}
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
_WHAT = {"vllm": "vLLM server commands", "sglang": "SGLang server commands", "k8s": "Kubernetes manifests",
         "bench": "vllm bench serve commands"}


def export_for(target: str, profile: Profile, plan: Plan, tiers: list[str] | None = None, **options) -> str:
    """What `planner export --to TARGET` writes (and the app's F3): "toml" is the profile with its
    plan, as the app saves it; the others go through export_text with `options`."""
    if target == "toml":
        import tomli_w

        from planner.profile import profile_to_dict
        from planner.report import plan_export

        return tomli_w.dumps(plan_export(plan, profile_to_dict(profile)))
    return export_text(plan, profile.name, target, list(tiers or TIERS), **options)


def export_text(plan: Plan, profile_name: str, target: str, tiers: list[str], draft_model: str | None = None,
                base_url: str = DEFAULT_BASE_URL, image: str | None = None) -> str:
    """The export of the named tiers; a tier that cannot be exported says why in a comment."""
    if target == "k8s" and plan.scenario.fleet.engine not in ("vllm", "sglang"):
        raise ExportError(f"k8s manifests run vLLM or SGLang, and this plan is for "
                          f"{ENGINE_NAMES[plan.scenario.fleet.engine]}: pass --engine vllm or --engine sglang")
    parts = [f"# planner {__version__}: {_WHAT[target]} for profile {profile_name!r}, one per tier; "
             f"{ENGINE_NAMES[plan.scenario.fleet.engine]} planned"]
    for tier in plan.tiers:
        if tier.tier not in tiers:
            continue
        try:
            s = tier_settings(plan, tier, profile_name)
        except ExportError as exc:
            parts.append(f"# {exc}: not exported")
            continue
        parts.append(_tier_text(s, target, draft_model, base_url, image))
    return "\n\n".join(parts) + "\n"


def _tier_text(s: TierSettings, target: str, draft_model: str | None, base_url: str, image: str | None) -> str:
    lines = [summary(s)]
    if target == "bench":
        b = bench_plan(s)
        prefix = f", {b['prefix_len']} tokens shared as the cached prefix" if b["prefix_len"] else ""
        lines.append(f"# one replica's share of the peak: {b['rate_rps']:g} req/s Poisson for {b['num_prompts']:,} requests "
                     f"(about {b['duration_s'] / 60:,.0f} min); lengths uniform within +-{b['range_ratio']:.0%} of the means "
                     f"(the tool's only spread){prefix}")
        lines.append(f"# run it against ONE replica (e.g. `kubectl port-forward deploy/{s.name} 8000`), then: "
                     f"planner validate {s.name}.json")
        return "\n".join(lines + [shell(bench_args(s, base_url))])
    engine = TARGET_ENGINE.get(target, s.engine)
    notes = serve_notes(s, engine, draft_model)
    if s.multi_node:
        notes.append(f"each replica spans {s.gpus_per_replica} GPUs, more than the {s.gpus_per_node} of one node: "
                     f"start it across nodes as the engine's multi-node guide says (vLLM: one Ray cluster per replica)")
    lines += [f"# note: {n}" for n in notes]
    if target != "k8s":
        return "\n".join(lines + [shell(server_args(s, engine, draft_model))])
    if s.multi_node:
        lines.append(f"# no Deployment for tier {s.tier}: a Pod runs on one node, and one replica needs "
                     f"{s.pp} nodes; deploy each replica as a group (e.g. a LeaderWorkerSet of {s.pp} pods)")
        return "\n".join(lines)
    docs = manifests(s, engine, draft_model, image)
    return "\n".join(lines) + "\n---\n" + "---\n".join(to_yaml(doc) for doc in docs).rstrip("\n")


def summary(s: TierSettings) -> str:
    """The comment line that says what the plan expects of this tier."""
    gpus = s.replicas * s.gpus_per_replica
    line = (f"# tier {s.tier}: {s.model_id} on {s.gpu_id}, {_count(s.replicas, 'replica')} x TP={s.tp} PP={s.pp} "
            f"({_count(gpus, 'GPU')}); at the {s.peak_rate_rps:.4g} req/s peak "
            f"({s.rate_per_replica_rps:.4g} per replica) predicted p99 TTFT {fmt_ms(s.ttft_p99_ms)}, "
            f"TPOT {fmt_ms(s.tpot_p99_ms)}, E2E {fmt_ms(s.e2e_p99_ms)}")
    if not s.meets_slo:
        line += f"; misses {', '.join(s.misses) or 'its targets'}"
    return line


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
