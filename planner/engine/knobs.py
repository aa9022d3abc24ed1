"""Calibration knobs: a few physical efficiencies and overheads per GPU family.

Defaults and ranges come from the modeling digest §9.5; the shipped per-family values in
`data/calibration.toml` are fitted on the packaged measurements by `planner calibrate`.
"""

from __future__ import annotations

import tomllib
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from planner.engine.memo import memoized


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Efficiencies are fractions of what micro-benchmarks reach on the GPU (STREAM-like bandwidth,
    # max achievable matmul: GpuSpec.achievable_*), so 1.0 is the benchmark itself; the published
    # fractions of the datasheet quoted below are divided by H100's measured shares (0.89, 0.80).
    # weight streaming (0.73 BLIS, 0.8 aiconfigurator of the datasheet)
    eta_weights: float = Field(0.85, gt=0.05, le=1.0)
    # decode KV reads (0.51 BLIS, 0.64-0.68 DistServe fits of the datasheet)
    eta_kv: float = Field(0.7, gt=0.05, le=1.0)
    # GEMMs in compute-bound steps (0.45 H100 BLIS, 0.59 vLLM DistServe fit of the datasheet)
    eta_compute: float = Field(0.7, gt=0.05, le=1.0)
    # routed experts' grouped GEMMs as a share of eta_compute: each expert's rows are padded to the
    # kernel's M block (DeepGEMM's README), and at TP 8 each GPU holds a narrow slice of every expert;
    # aiconfigurator's measured DeepSeek-V3 expert GEMMs at TP 8 reach 155-600 TFLOPS on H200 and
    # B200, 8-30% of the fp8 datasheet. 0.8 is a start for the fit, not a measurement.
    eta_moe: float = Field(0.8, gt=0.05, le=1.0)
    # prefill attention kernels (FA2 35%, FA3 75% of H100's datasheet)
    eta_attention: float = Field(0.6, gt=0.05, le=1.0)
    # achieved fraction of link bandwidth in all-reduce (BLIS beta4 0.75)
    eta_link: float = Field(0.75, gt=0.05, le=1.0)
    # per-message collective latency (8 us llm-analysis, 10 us aiconfigurator)
    allreduce_latency_us: float = Field(10.0, ge=0, le=1000)
    # fixed scheduler/launch cost per engine step (BLIS beta7 126 us)
    step_overhead_us: float = Field(130.0, ge=0, le=100_000)
    # per-layer launch/sync cost (3 us aiconfigurator .. 32 us BLIS)
    layer_overhead_us: float = Field(10.0, ge=0, le=1000)
    # per MoE layer per step: routing, token permutation, grouped-GEMM launch (roofline.fixed_step_s;
    # aiconfigurator's DeepSeek-V3 MoE layer at one token is ~180 us above weight streaming on H100)
    moe_layer_overhead_us: float = Field(50.0, ge=0, le=1000)
    # per-sequence bookkeeping per step (BLIS beta6 4.4 us)
    seq_overhead_us: float = Field(4.0, ge=0, le=1000)
    # per-request cost added to TTFT outside the engine's steps: HTTP, tokenising, scheduling, the
    # first token's trip back (BLIS alpha0 15.6 ms). DeepSeek-R1's TTFT at one to four clients sits
    # 100-150 ms above aiconfigurator's summed kernel times of its prefill on SGLang and TensorRT-LLM,
    # but Llama 3.3 70B's on SGLang/H200 does not: that cost is the model's (model_request_ms below).
    api_overhead_ms: float = Field(0.0, ge=0, le=10_000)
    # what the start-up burst of a benchmark run waits, once, on a server nobody warmed up: kernels
    # compiled and autotuned for the shapes the burst meets first (Triton's autotuner, JIT-built
    # kernels). It moves such a run's TTFT mean and tail and not its median (InferenceX's runs).
    # A server in its steady state never carries it; only a run of a given number of prompts does.
    first_use_ms: float = Field(0.0, ge=0, le=100_000)

    def scaled(self, **changes: float) -> Knobs:
        return self.model_copy(update=changes)


DEFAULT_KNOBS = Knobs()


# Knobs of the engine's own host software (scheduler, sequence bookkeeping, API server): an
# engine measured on one GPU family carries these to a family it was not measured on.
ENGINE_KNOBS = ("step_overhead_us", "seq_overhead_us", "api_overhead_ms", "first_use_ms")
# Launch costs of the engine's kernels, per layer and per MoE layer: they belong to the engine's
# kernel stack on one vendor's GPUs (vLLM's MoE layer fits 6 us above weight streaming on Hopper
# and 217 us on CDNA3), so they carry only to a family of the same vendor.
KERNEL_KNOBS = ("layer_overhead_us", "moe_layer_overhead_us")


class Calibration(BaseModel):
    """Knobs per GPU family (pooled over engines), per engine and GPU family where that engine was
    measured on it, and a default; `planner calibrate` writes this shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Knobs = DEFAULT_KNOBS
    families: dict[str, Knobs] = {}
    # engine -> GPU family -> knobs fitted on that engine's rows, starting from (and pulled
    # toward) the family's pooled knobs
    engines: dict[str, dict[str, Knobs]] = {}
    source: str = ""
    # expected error bands (median absolute % error per metric group) from validation
    error_pct: dict[str, float] = {}
    # the same, from leave-one-source-out cross-validation: by metric group, and by load band
    # and metric group ("<50%", "50-80%", ">80%"); `unmeasured` for families held out whole
    cv_error_pct: dict[str, dict[str, float]] = {}
    # model family -> what its requests add to TTFT beyond the engine's per-request cost, in ms:
    # fitted where its TTFT rows at light load come from two publishers or more (fit.model_request_costs)
    model_request_ms: dict[str, float] = {}
    validated_families: list[str] = []
    validated_models: list[str] = []
    validated_engines: list[str] = []

    def for_family(self, family: str, engine: str | None = None, model_family: str | None = None) -> Knobs:
        """The knobs for a GPU family under an engine, serving a model family: fitted for the pair
        where the engine was measured on the family; else the family's pooled knobs with the
        engine's own overheads (the median over the families it was measured on); a family without
        measurements takes the least favourable efficiency of the measured families, so that an
        unmeasured GPU is never the optimistic choice. A model family's own per-request cost adds
        to the engine's."""
        knobs = self._for_family(family, engine)
        extra = self.model_request_ms.get(model_family or "", 0.0)
        return knobs.scaled(api_overhead_ms=knobs.api_overhead_ms + extra) if extra else knobs

    def _for_family(self, family: str, engine: str | None) -> Knobs:
        fitted = self.engines.get(engine or "", {}).get(family)
        if fitted is not None:
            return fitted
        base = self.families.get(family) or self.unmeasured_family()
        overheads = self.engine_overheads(engine, family)
        return base.scaled(**overheads) if overheads else base

    def engine_overheads(self, engine: str | None, family: str) -> dict[str, float]:
        """The engine's own overheads where it was not measured on `family`: the median over the
        families it was measured on (the upper one of two) for its host software, and over those
        of the same vendor for its kernels' launch costs."""
        fits = self.engines.get(engine or "", {})
        if not fits:
            return {}
        out = _medians(list(fits.values()), ENGINE_KNOBS)
        same_vendor = [k for f, k in fits.items() if vendor_of(f) == vendor_of(family)]
        return out | _medians(same_vendor, KERNEL_KNOBS)

    def unmeasured_family(self) -> Knobs:
        if not self.families:
            return self.default
        fits = list(self.families.values())
        worst = {k: min(getattr(f, k) for f in fits) for k in Knobs.model_fields if k.startswith("eta_")}
        return self.default.scaled(**worst, **_medians(fits, [k for k in Knobs.model_fields if not k.startswith("eta_")]))

    def measured(self, family: str, engine: str | None = None) -> dict[str, bool]:
        """Whether measurements of this GPU family, and of this engine on it, stand behind the knobs."""
        gpus = self.validated_families or list(self.families)
        return {"gpu_family": family in gpus, "engine": family in self.engines.get(engine or "", {})}


def _medians(fits: list[Knobs], names) -> dict[str, float]:
    """Per knob, the median over `fits` (upper_median); {} without fits."""
    if not fits:
        return {}
    return {k: float(upper_median([getattr(f, k) for f in fits])) for k in names}


def upper_median(values) -> float | None:
    """The median, the upper of the two middle values for an even count (always a value some fit
    reached); None without values."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def vendor_of(family: str) -> str:
    """The vendor of a GPU family in the catalog ('' for a family it does not know)."""
    from planner.engine import catalog  # the catalog reads specs only: no cycle at run time

    return next((g.vendor.lower() for g in catalog.gpus().values() if g.family == family), "")


def calibration_from_toml(text: str) -> Calibration:
    data = tomllib.loads(text)
    return Calibration.model_validate(data)


@memoized(1)
def shipped_calibration() -> Calibration:
    path = resources.files("planner") / "data" / "calibration.toml"
    try:
        return calibration_from_toml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Calibration()
