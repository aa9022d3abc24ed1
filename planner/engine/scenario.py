"""The inputs of a plan: load, targets, fleet choices, optimizations, cost knobs.

These pydantic models are the profile schema's body (the profile module adds file I/O and the
custom catalog tables). Every field has a documented default so a minimal profile is short.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from planner.engine.engines import DEFAULT_ENGINE, Engine
from planner.engine.inputs import InputModel
from planner.engine.numbers import fmt_sig
from planner.engine.specs import KV_PRECISIONS, WEIGHT_PRECISIONS

# Monthly hours: 8760 / 12, the infracost/AWS-calculator convention (modeling digest §7 [S41]).
HOURS_PER_MONTH = 730.0
# Average data-centre PUE 1.58: Uptime Institute Global Data Center Survey 2023 (digest [S44]).
DEFAULT_PUE = 1.58
# World average grid intensity 0.436 kg CO2/kWh in 2022: Ember Global Electricity Review 2023 ([S46]).
DEFAULT_GRID_KG_PER_KWH = 0.436


class Strict(InputModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# The memory share a server may be given (vLLM's gpu_memory_utilization and its peers): above this
# floor and at most this ceiling, in a profile, on predict's command line and in a measurements file.
MEM_UTIL_FLOOR, MEM_UTIL_CEILING = 0.05, 0.99

# A lognormal's p90/mean is exp(z*s - s^2/2) with z = 1.2816, largest at s = z: exp(z^2/2).
LOGNORMAL_MAX_P90_RATIO = math.exp(1.2815515655446004**2 / 2)


class LengthDist(Strict):
    """A token-length distribution. `fixed` uses the mean; `lognormal` takes its spread from the p90;
    `exponential` is memoryless with that mean."""

    kind: Literal["fixed", "lognormal", "exponential"] = "fixed"
    mean: float = Field(gt=0, le=10_000_000)
    p90: float | None = Field(None, gt=0, description="lognormal only: 90th percentile, above the mean")
    max: float | None = Field(None, gt=0, description="truncate samples at this length (e.g. max_tokens)")

    @model_validator(mode="after")
    def _check(self) -> LengthDist:
        if self.kind == "lognormal":
            if self.p90 is None:
                raise ValueError("lognormal needs p90 (the 90th-percentile length)")
            if self.p90 <= self.mean:
                raise ValueError(f"p90 ({fmt_sig(self.p90, 6)}) must be above the mean ({fmt_sig(self.mean, 6)}) for a lognormal")
            widest = self.mean * LOGNORMAL_MAX_P90_RATIO
            if self.p90 > widest:
                raise ValueError(f"no lognormal has mean {fmt_sig(self.mean, 6)} and p90 {fmt_sig(self.p90, 6)}: its p90 is "
                                 f"at most {LOGNORMAL_MAX_P90_RATIO:.3f} x the mean ({widest:,.0f}); lower p90, or use "
                                 f"kind = \"exponential\" (p90 = 2.303 x the mean)")
        if self.max is not None and self.max < self.mean:
            # truncating below the mean would plan every request at `max`, not the load described
            raise ValueError(f"max ({self.max:g}) must be at least the mean ({self.mean:g}): it truncates the "
                             f"longest requests, as max_tokens does")
        return self

    def of_kind(self, kind: str) -> dict:
        """This distribution's fields with another kind: a lognormal keeps a p90 above the mean (else
        twice the mean, a typical spread), the others need none."""
        data = self.model_dump()
        data["kind"] = kind
        if kind == "lognormal":
            if data["p90"] is None or data["p90"] <= data["mean"]:
                data["p90"] = round(data["mean"] * 2, 6)
        else:
            data["p90"] = None
        return data

    @property
    def sigma(self) -> float:
        """Lognormal shape from mean m and p90 q: q/m = exp(1.2816*s - s^2/2); solve for s."""
        if self.kind != "lognormal" or self.p90 is None:
            return 0.0
        ratio = math.log(self.p90 / self.mean)
        z = 1.2815515655446004
        # s^2/2 - z*s + ratio = 0, smaller root
        disc = max(z * z - 2 * ratio, 0.0)  # >= 0: p90 <= LOGNORMAL_MAX_P90_RATIO x mean is validated
        return z - math.sqrt(disc)


def as_length(value: float | int | dict | LengthDist) -> LengthDist:
    if isinstance(value, LengthDist):
        return value
    if isinstance(value, dict):
        return LengthDist(**value)
    return LengthDist(kind="fixed", mean=float(value))


class Load(Strict):
    """Offered traffic. Give `rate_rps`, or `requests_per_day` with a `peak_factor`."""

    rate_rps: float | None = Field(None, ge=0, le=1e7)
    requests_per_day: float | None = Field(None, ge=0, le=1e12)
    peak_factor: float = Field(1.0, ge=1.0, le=100.0)
    input_len: LengthDist = LengthDist(kind="lognormal", mean=1000, p90=2000)
    output_len: LengthDist = LengthDist(kind="exponential", mean=250)

    @model_validator(mode="before")
    @classmethod
    def _lengths(cls, data):
        if isinstance(data, dict):
            for key in ("input_len", "output_len"):
                if key in data and isinstance(data[key], (int, float)) and not isinstance(data[key], bool):
                    data = {**data, key: {"kind": "fixed", "mean": data[key]}}
        return data

    @model_validator(mode="after")
    def _one_rate(self) -> Load:
        if self.rate_rps is None and self.requests_per_day is None:
            raise ValueError("give rate_rps or requests_per_day")
        if self.rate_rps is not None and self.requests_per_day is not None:
            raise ValueError("give rate_rps or requests_per_day, not both")
        return self

    def in_mode(self, mode: str) -> dict:
        """This load's fields with the rate given as `mode` says ("rate": req/s at the peak, "daily":
        requests a day with the peak factor), at the same peak rate, rounded as a person would type
        it; unchanged when it is given that way already."""
        data = self.model_dump()
        if mode == "daily" and self.requests_per_day is None:
            data["requests_per_day"] = round(self.peak_rate_rps * 86400 / self.peak_factor)
            data["rate_rps"] = None
        elif mode == "rate" and self.rate_rps is None:
            data["rate_rps"] = round(self.peak_rate_rps, 6)
            data["requests_per_day"] = None
        return data

    @property
    def peak_rate_rps(self) -> float:
        """The rate to size for: daily volume averaged over 86,400 s times the peak factor."""
        if self.rate_rps is not None:
            return self.rate_rps
        return (self.requests_per_day or 0.0) / 86400.0 * self.peak_factor

    @property
    def mean_rate_rps(self) -> float:
        if self.rate_rps is not None:
            return self.rate_rps
        return (self.requests_per_day or 0.0) / 86400.0


class Targets(Strict):
    """Latency SLOs at a percentile, and a utilisation ceiling that keeps headroom."""

    ttft_ms: float | None = Field(2000.0, gt=0)
    ttft_percentile: float = Field(99, ge=50, le=99, description="50 to 99: the model reports p50, p90 and p99")
    tpot_ms: float | None = Field(100.0, gt=0)
    tpot_percentile: float = Field(99, ge=50, le=99, description="50 to 99: the model reports p50, p90 and p99")
    e2e_ms: float | None = Field(None, gt=0)
    e2e_percentile: float = Field(99, ge=50, le=99, description="50 to 99: the model reports p50, p90 and p99")
    max_utilization: float = Field(0.8, gt=0, le=0.99)


class Fleet(Strict):
    """Hardware choice shared by the three tiers."""

    gpu: str = "h100-sxm"
    engine: Engine = Field(DEFAULT_ENGINE, description="serving engine: its default limits and its calibration")
    price_usd_hour: float | None = Field(None, ge=0, description="override the catalog's on-demand price")
    discount: float = Field(0.0, ge=0, lt=1, description="reserved/spot discount off the hourly price")
    gpus_per_node: int | None = Field(None, ge=1, le=1024, description="limit TP to this many GPUs")
    max_gpus: int | None = Field(None, ge=1, description="the most GPUs a tier may use: a load needing more is planned on "
                                                         "this many and reported as missing its targets or unstable")


class Optimizations(Strict):
    """Serving-engine knobs. Unset engine knobs follow the fleet engine's documented defaults."""

    weights: Literal["auto", *WEIGHT_PRECISIONS] = "auto"  # type: ignore[valid-type]
    kv: Literal["auto", *KV_PRECISIONS] = "auto"  # type: ignore[valid-type]
    tp: Literal["auto"] | int = "auto"
    pp: Literal["auto"] | int = "auto"
    max_num_seqs: int | None = Field(None, ge=1, le=65536)
    chunked_prefill: bool = True
    max_num_batched_tokens: int | None = Field(None, ge=16, le=1_048_576)
    gpu_mem_util: float = Field(0.9, gt=MEM_UTIL_FLOOR, le=MEM_UTIL_CEILING)
    prefix_hit: float = Field(0.0, ge=0, le=0.99)
    spec_k: int = Field(0, ge=0, le=16)
    spec_accept: float = Field(0.7, ge=0, le=0.99)
    spec_draft_ratio: float = Field(0.05, ge=0, le=1.0, description="draft step cost / target step cost")
    prune_fraction: float = Field(0.0, ge=0, le=0.9)
    sparsity_2_4: bool = False

    @model_validator(mode="after")
    def _tp(self) -> Optimizations:
        if isinstance(self.tp, int) and (self.tp < 1 or self.tp > 1024):
            raise ValueError("tp must be 'auto' or a whole number from 1 to 1024")
        if isinstance(self.pp, int) and (self.pp < 1 or self.pp > 64):
            raise ValueError("pp must be 'auto' or a whole number from 1 to 64")
        return self


class CostKnobs(Strict):
    pue: float = Field(DEFAULT_PUE, ge=1.0, le=3.0)
    grid_kg_per_kwh: float = Field(DEFAULT_GRID_KG_PER_KWH, ge=0, le=2.0)
    hours_per_month: float = Field(HOURS_PER_MONTH, gt=0, le=744)
    api_usd_per_mtok_input: float | None = Field(None, ge=0)
    api_usd_per_mtok_output: float | None = Field(None, ge=0)


class ApiPrice(Strict):
    """A hosted API's price for one tier's model, USD per million tokens."""

    input: float = Field(ge=0, le=1000, description="USD per million input (prompt) tokens")
    output: float = Field(ge=0, le=1000, description="USD per million output (generated) tokens")


class ApiSettings(Strict):
    """The hosted-API comparison. By default each tier is compared with the cheapest price the
    catalog lists for its model (for this traffic's prompt/output mix); a tier's own price here
    overrides it; enabled = false turns the comparison off."""

    enabled: bool = True
    small: ApiPrice | None = None
    medium: ApiPrice | None = None
    large: ApiPrice | None = None


class TierModels(Strict):
    small: str = "llama-3.2-3b"
    medium: str = "llama-3.1-70b"
    large: str = "llama-3.1-405b"


class Scenario(Strict):
    """Everything a plan needs besides the catalogs."""

    models: TierModels = TierModels()
    fleet: Fleet = Fleet()
    load: Load = Load(rate_rps=10.0)
    slo: Targets = Targets()
    optimizations: Optimizations = Optimizations()
    cost: CostKnobs = CostKnobs()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _prompt_fits_budget(self) -> Scenario:
        check_prompt_fits_budget(self.load, self.optimizations)
        return self


def check_prompt_fits_budget(load: Load, opt: Optimizations) -> None:
    """Refuse a token budget that cannot hold a prompt when prefill is not chunked."""
    need = unchunked_budget_shortfall(opt.max_num_batched_tokens, opt.chunked_prefill, load.input_len)
    if need is not None:
        raise ValueError(
            f"optimizations.max_num_batched_tokens ({opt.max_num_batched_tokens:,}) is below the p99 prompt of "
            f"load.input_len ({need:,} tokens): with chunked_prefill off each prompt is prefilled in one step, "
            f"and the engine refuses a budget that cannot hold it; raise it to at least {need:,} or turn "
            f"chunked_prefill on")


def unchunked_budget_shortfall(budget: int | None, chunked: bool, input_len: LengthDist) -> int | None:
    """The per-step token budget these prompts need when `budget` is too small for them, else None.
    Without chunked prefill each prompt is prefilled in one engine step, so the budget must hold the
    longest prompt: vLLM refuses to start when max_num_batched_tokens is below max_model_len with
    chunked prefill off (vllm/config/scheduler.py, SchedulerConfig). The plan sizes for the p99
    prompt (as its context-limit check does), so the budget must hold that. An unset budget is
    the engine's, which it raises to the context length when prefill is not chunked."""
    if chunked or budget is None:
        return None
    from planner.engine.lengths import quantiles  # lengths imports this module

    need = math.ceil(float(quantiles(input_len, [0.99])[0]))
    return need if budget < need else None
