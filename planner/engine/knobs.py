"""Calibration knobs: a few physical efficiencies and overheads per GPU family.

Defaults and ranges come from the modeling digest §9.5; the shipped per-family values in
`data/calibration.toml` are fitted on the packaged measurements by `planner calibrate`.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # achieved fraction of peak HBM bandwidth when streaming weights (0.73 BLIS, 0.8 aiconfigurator)
    eta_weights: float = Field(0.75, gt=0.05, le=1.0)
    # achieved fraction of peak bandwidth on decode KV reads (0.51 BLIS, 0.64-0.68 DistServe fits)
    eta_kv: float = Field(0.6, gt=0.05, le=1.0)
    # GEMM MFU in compute-bound steps (0.45 H100 / 0.38 A100 BLIS, 0.59 vLLM DistServe fit)
    eta_compute: float = Field(0.55, gt=0.05, le=1.0)
    # prefill attention kernel utilisation (FA2 35%, FA3 75% of H100)
    eta_attention: float = Field(0.5, gt=0.05, le=1.0)
    # achieved fraction of link bandwidth in all-reduce (BLIS beta4 0.75)
    eta_link: float = Field(0.75, gt=0.05, le=1.0)
    # per-message collective latency (8 us llm-analysis, 10 us aiconfigurator)
    allreduce_latency_us: float = Field(10.0, ge=0, le=1000)
    # fixed scheduler/launch cost per engine step (BLIS beta7 126 us)
    step_overhead_us: float = Field(130.0, ge=0, le=100_000)
    # per-layer launch/sync cost (3 us aiconfigurator .. 32 us BLIS)
    layer_overhead_us: float = Field(10.0, ge=0, le=1000)
    # per-sequence bookkeeping per step (BLIS beta6 4.4 us)
    seq_overhead_us: float = Field(4.0, ge=0, le=1000)
    # request ingest/tokenise/detokenise cost added to TTFT (BLIS alpha0 15.6 ms for an HTTP server)
    api_overhead_ms: float = Field(0.0, ge=0, le=10_000)

    def scaled(self, **changes: float) -> Knobs:
        return self.model_copy(update=changes)


DEFAULT_KNOBS = Knobs()


class Calibration(BaseModel):
    """Knobs per GPU family plus a default; `planner calibrate` writes this shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Knobs = DEFAULT_KNOBS
    families: dict[str, Knobs] = {}
    source: str = ""
    # expected error bands (median absolute % error per metric group) from validation
    error_pct: dict[str, float] = {}
    validated_families: list[str] = []
    validated_models: list[str] = []

    def for_family(self, family: str) -> Knobs:
        return self.families.get(family, self.default)


def calibration_from_toml(text: str) -> Calibration:
    data = tomllib.loads(text)
    return Calibration.model_validate(data)


@lru_cache(maxsize=1)
def shipped_calibration() -> Calibration:
    path = resources.files("planner") / "data" / "calibration.toml"
    try:
        return calibration_from_toml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Calibration()


def load_calibration(path: Path) -> Calibration:
    return calibration_from_toml(Path(path).read_text(encoding="utf-8"))
