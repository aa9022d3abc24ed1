"""Kubernetes manifests for one planned tier: a Deployment of its replicas and a Service.

Written as YAML by a small emitter (the planner has no YAML dependency): mappings, lists and
scalars, every string double-quoted with JSON escapes, which YAML reads the same way.
"""

from __future__ import annotations

import json

from planner.deploy.commands import SERVE_PORT, server_args
from planner.deploy.settings import ExportError, TierSettings, dns_name

# Device-plugin resource names: https://github.com/NVIDIA/k8s-device-plugin and
# https://github.com/ROCm/k8s-device-plugin
GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
# Images each engine publishes for its OpenAI-compatible server (pin the tag you benchmarked).
IMAGES = {
    ("vllm", "nvidia"): "vllm/vllm-openai:latest",  # https://hub.docker.com/r/vllm/vllm-openai
    ("vllm", "amd"): "rocm/vllm:latest",  # https://hub.docker.com/r/rocm/vllm
    ("sglang", "nvidia"): "lmsysorg/sglang:latest",  # https://hub.docker.com/r/lmsysorg/sglang
}
# Both servers answer GET /health with 200 once the model is loaded (vLLM api_server.py; SGLang
# http_server.py).
HEALTH_PATH = "/health"
# Gated repositories (Llama) need a token: read from this Secret when it exists.
HF_TOKEN_SECRET = "hf-token"


def manifests(s: TierSettings, target_engine: str, draft_model: str | None, image: str | None) -> list[dict]:
    """The Deployment and the Service of a tier whose replicas fit one node each."""
    resource = GPU_RESOURCE.get(s.gpu_vendor)
    if resource is None:
        raise ExportError(f"tier {s.tier}: no Kubernetes device plugin known for {s.gpu_vendor} GPUs ({s.gpu_id})")
    image = image or IMAGES.get((target_engine, s.gpu_vendor))
    if image is None:
        raise ExportError(f"tier {s.tier}: no published {target_engine} image for {s.gpu_vendor} GPUs; pass --image")
    command = server_args(s, target_engine, draft_model)
    split = 2 if target_engine == "vllm" else 3  # `vllm serve` | `python3 -m sglang.launch_server`
    labels = {"app.kubernetes.io/name": s.name, "app.kubernetes.io/part-of": dns_name(s.profile)}
    gpus = s.gpus_per_replica
    container = {
        "name": target_engine,
        "image": image,
        "command": command[:split],
        "args": command[split:],
        "ports": [{"name": "http", "containerPort": SERVE_PORT}],
        "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": "token", "optional": True}}}],
        "resources": {"limits": {resource: gpus}},
        # readiness only: loading a large model takes minutes, and a liveness probe would restart it
        "readinessProbe": {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": 10, "failureThreshold": 3},
    }
    pod = {"containers": [container]}
    if gpus > 1:  # tensor/pipeline ranks exchange data through /dev/shm, 64 MiB by default in a pod
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
        pod["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": s.name, "labels": labels},
        "spec": {"replicas": s.replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": s.name}},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": s.name, "labels": labels},
        "spec": {"selector": {"app.kubernetes.io/name": s.name},
                 "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": "http"}]},
    }
    return [deployment, service]


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML of plain data (dicts, lists, str, int, float, bool)."""
    return "\n".join(_lines(value, indent)) + "\n"


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def _lines(value, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{_scalar(key) if not _plain_key(key) else key}:")
                out.extend(_lines(item, indent + 2))
            else:
                shown = _empty(item) if isinstance(item, (dict, list)) else _scalar(item)
                out.append(f"{pad}{key if _plain_key(key) else _scalar(key)}: {shown}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_empty(item) if isinstance(item, (dict, list)) else _scalar(item)}")
    else:
        out.append(f"{pad}{_scalar(value)}")
    return out


def _empty(value) -> str:
    return "{}" if isinstance(value, dict) else "[]"


def _plain_key(key: str) -> bool:
    return all(c.isalnum() or c in "-_./" for c in key) and key[:1].isalpha()
