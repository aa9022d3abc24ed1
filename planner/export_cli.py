"""`planner export`: the plan as the app's F3 TOML, or as the commands and manifests that deploy
and benchmark it (planner.deploy)."""

from __future__ import annotations

from pathlib import Path

from planner.deploy.export import DEFAULT_BASE_URL, TARGET_ENGINE, TARGETS

TIERS = ("small", "medium", "large")


def add_export_parser(sub) -> None:
    exp = sub.add_parser("export", help="the plan as TOML, or as vLLM / SGLang commands, Kubernetes manifests or benchmarks")
    exp.add_argument("profile", type=Path)
    exp.add_argument("--to", choices=("toml", *TARGETS), default="toml",
                     help="toml: the profile with its plan (as the app's F3); vllm / sglang: server commands; "
                          "k8s: Deployment and Service YAML; bench: vllm bench serve commands (default: toml)")
    exp.add_argument("--tier", choices=(*TIERS, "all"), default="all")
    exp.add_argument("-o", "--output", type=Path, help="write to this file (atomically; - for stdout, the default)")
    exp.add_argument("--force", action="store_true", help="overwrite the output file (regular files only)")
    exp.add_argument("--engine", choices=("vllm", "sglang", "trtllm"),
                     help="the engine to plan for (default: vllm for --to vllm, sglang for --to sglang, else the profile's)")
    exp.add_argument("--draft-model",
                     help="Hugging Face id of the speculative-decoding draft model (default: vLLM's n-gram lookup)")
    exp.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"server the benchmark targets (default: {DEFAULT_BASE_URL})")
    exp.add_argument("--image", help="container image for --to k8s (default: the engine's published image)")


def cmd_export(args) -> int:
    from planner import service
    from planner.cli import UsageError, outcome, resolve_profile
    from planner.deploy.export import export_for
    from planner.output import check_target, write_result

    engine = args.engine or TARGET_ENGINE.get(args.to)
    wanted = TARGET_ENGINE.get(args.to)
    if wanted and args.engine and args.engine != wanted:
        raise UsageError(f"--to {args.to} writes {wanted} commands; --engine {args.engine} would plan for another engine")
    check_target(args.output, args.force, may_replace=Path(args.profile))
    tiers = list(TIERS) if args.tier == "all" else [args.tier]
    inputs = resolve_profile(args.profile, engine, tiers)
    prof = inputs.profile
    plan = service.plan(inputs, tiers)
    text = export_for(args.to, prof, plan, tiers, draft_model=args.draft_model, base_url=args.base_url, image=args.image)
    write_result(args.output, text)
    return outcome(all(t.meets_slo for t in plan.tiers if t.tier in tiers))
