"""What the app's export (F3) can write: the plan as TOML, or what `planner export --to` writes for
the engine on screen. No Textual here: the text is the CLI's, byte for byte."""

from __future__ import annotations

from planner.engine.engines import ENGINE_NAMES

# file name after the profile's stem, per target
SUFFIXES = {"toml": "-plan.toml", "vllm": "-vllm.sh", "sglang": "-sglang.sh", "k8s": "-k8s.yaml", "bench": "-bench.sh"}


def export_choices(engine: str) -> list[tuple[str, str]]:
    """(target, label): the server commands and manifests only for an engine they can run."""
    choices = [("toml", "Plan with its inputs (TOML, opens as a profile)")]
    if engine in ("vllm", "sglang"):
        choices += [(engine, f"{ENGINE_NAMES[engine]} server commands (shell)"),
                    ("k8s", "Kubernetes Deployment and Service per tier (YAML)")]
    choices.append(("bench", "vllm bench serve commands for one replica's peak load (shell)"))
    return choices
