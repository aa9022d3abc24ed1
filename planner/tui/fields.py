"""Every input of the four panes, declared once: label, place in the profile, help text, and
a validator built from the pydantic field's constraints (so the UI allows exactly what a
profile file allows, and says so when a value is out of range).

Textual-free: the panes read these specs (widgets/inputs.py wraps `FieldSpec.parse` as an Input
validator), the help screen lists them and the screen's edit rules (edits.py) place messages.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
from pydantic.fields import FieldInfo

from planner.engine.engines import ENGINES
from planner.engine.scenario import LengthDist
from planner.profile import SECTIONS

Kind = Literal["float", "int", "choice", "bool"]

PANES: dict[str, str] = {
    "models": "Model tier",
    "fleet": "Hardware fleet",
    "load": "Request load",
    "optimizations": "Optimizations",
}


@dataclass(frozen=True)
class Bounds:
    """Numeric limits of one pydantic field (None = unbounded on that side)."""

    lo: float | None = None
    lo_incl: bool = True
    hi: float | None = None
    hi_incl: bool = True
    integer: bool = False
    optional: bool = False

    def check(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value < self.lo or (value == self.lo and not self.lo_incl)):
            return False
        if self.hi is not None and (value > self.hi or (value == self.hi and not self.hi_incl)):
            return False
        return True

    def describe(self) -> str:
        """'a number > 0 and ≤ 10,000,000', 'a whole number from 1 to 1,024'."""
        noun = "a whole number" if self.integer else "a number"
        if self.lo is not None and self.hi is not None and self.lo_incl and self.hi_incl:
            text = f"{noun} from {_num(self.lo)} to {_num(self.hi)}"
        else:
            parts = []
            if self.lo is not None:
                parts.append(f"{'≥' if self.lo_incl else '>'} {_num(self.lo)}")
            if self.hi is not None:
                parts.append(f"{'≤' if self.hi_incl else '<'} {_num(self.hi)}")
            text = f"{noun} {' and '.join(parts)}" if parts else noun
        return text


def _num(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e10:
        return f"{int(x):,}"
    return f"{x:g}"


def bounds_of(model: type, key: str) -> Bounds:
    """The constraints pydantic enforces on model.key (gt/ge/lt/le, int, Optional)."""
    info: FieldInfo = model.model_fields[key]
    lo = hi = None
    lo_incl = hi_incl = True
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Gt):
            lo, lo_incl = float(meta.gt), False
        elif isinstance(meta, annotated_types.Ge):
            lo, lo_incl = float(meta.ge), True
        elif isinstance(meta, annotated_types.Lt):
            hi, hi_incl = float(meta.lt), False
        elif isinstance(meta, annotated_types.Le):
            hi, hi_incl = float(meta.le), True
    args = typing.get_args(info.annotation)
    is_union = typing.get_origin(info.annotation) in (typing.Union, types.UnionType)
    members = [a for a in args if a is not type(None)] if is_union else [info.annotation]
    optional = is_union and type(None) in args
    integer = members == [int]
    return Bounds(lo, lo_incl, hi, hi_incl, integer, optional)


@dataclass(frozen=True)
class FieldSpec:
    """One input. `path` is its place in the profile: (section, key) or (section, key, subkey)."""

    id: str
    pane: str
    path: tuple[str, ...]
    label: str
    help: str
    kind: Kind = "float"
    blank: str = ""  # what an empty input means, for optional fields
    placeholder: str = ""  # shown in an empty input (default: `blank`)
    unit: str = ""
    scale: float = 1.0  # shown value = stored value * scale (e.g. fractions as %)
    choices: tuple[str, ...] = ()

    @property
    def model(self) -> type:
        return LengthDist if len(self.path) == 3 else SECTIONS[self.path[0]]

    @property
    def key(self) -> str:
        return self.path[-1]

    @property
    def bounds(self) -> Bounds:
        return bounds_of(self.model, self.key)

    def allowed(self) -> str:
        """What the input accepts, in the units shown: 'a number from 0 to 99%'."""
        b = self.bounds
        if self.scale != 1.0:
            b = Bounds(
                None if b.lo is None else b.lo * self.scale, b.lo_incl,
                None if b.hi is None else b.hi * self.scale, b.hi_incl, b.integer, b.optional,
            )
        text = b.describe()
        if self.unit:
            text += self.unit if self.unit == "%" else f" {self.unit}"
        if b.optional and self.blank:
            text += f", or blank for {self.blank}"
        return text

    def parse(self, text: str) -> Any:
        """The stored value for an input's text; raises ValueError with the allowed range."""
        clean = text.strip().replace(",", "").replace("_", "")
        b = self.bounds
        if not clean:
            if b.optional:
                return None
            raise ValueError(f"required: {self.allowed()}")
        try:
            shown = float(clean)
        except ValueError:
            raise ValueError(f"not a number: {self.allowed()}") from None
        value = shown / self.scale
        if b.integer:
            if not float(shown).is_integer():
                raise ValueError(f"not a whole number: {self.allowed()}")
            value = int(round(value))
        if not b.check(float(value)):
            raise ValueError(f"out of range: {self.allowed()}")
        return value

    def format(self, value: Any) -> str:
        """The input text for a stored value."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, (int, float)):
            shown = value * self.scale
            if float(shown).is_integer():
                return str(int(shown))
            return f"{shown:.6g}"
        return str(value)


def _f(pane: str, path: tuple[str, ...], label: str, help: str, **kw: Any) -> FieldSpec:
    return FieldSpec(id="-".join(path).replace("_", "-"), pane=pane, path=path, label=label, help=help, **kw)


TIER_HELP = {
    "small": "Model for the small tier (about 1-7B parameters): cheap and fast, for simple turns.",
    "medium": "Model for the medium tier (about 8-70B): the usual quality and cost balance.",
    "large": "Model for the large tier (72B and up): best quality, usually needs a multi-GPU replica.",
}

LENGTH_KINDS = ("fixed", "lognormal", "exponential")

FIELDS: tuple[FieldSpec, ...] = (
    # --- Model tier: the three Select widgets are built from the catalog, see ModelsPane
    # --- Hardware fleet
    _f("fleet", ("fleet", "gpu"), "GPU", "Accelerator type for all three tiers, from the catalog or a [[gpu]] "
       "table in the profile. Memory, bandwidth, peak FLOPS, node size and price come from its catalog entry.",
       kind="choice"),
    _f("fleet", ("fleet", "engine"), "Engine", "Serving engine: vLLM V1, SGLang or TensorRT-LLM. Sets the defaults "
       "of the batch and token limits left blank and which calibration applies; an engine never measured on this "
       "GPU family borrows its overheads from the families it was measured on, and the results say so.",
       kind="choice", choices=ENGINES),
    _f("fleet", ("fleet", "price_usd_hour"), "$/GPU-hour", "Override the catalog's on-demand price per GPU-hour "
       "(e.g. your contract price). Blank uses the catalog price.", blank="the catalog price", unit="$/h"),
    _f("fleet", ("fleet", "discount"), "Discount", "Fraction off the hourly price, e.g. 30-50% for 1-3 year "
       "reservations or spot capacity.", unit="%", scale=100.0),
    _f("fleet", ("fleet", "gpus_per_node"), "GPUs/node", "Largest tensor-parallel group: TP never spans more GPUs "
       "than this. Blank uses the GPU's scale-up domain (8 for HGX, 72 for GB200 NVL72).",
       blank="the GPU's node size", kind="int"),
    _f("fleet", ("fleet", "max_gpus"), "Max GPUs", "The most GPUs a tier may use (the servers you own, your "
       "reservation). A load needing more is planned on this many and shown missing its targets or overloaded. "
       "Blank: no limit.", blank="no limit", kind="int"),
    # --- Request load
    _f("load", ("load", "rate_rps"), "Peak rate", "Requests per second at the busiest time; the fleet is sized "
       "for this rate.", unit="req/s"),
    _f("load", ("load", "requests_per_day"), "Per day", "Daily request volume; the peak rate is this / 86,400 s "
       "times the peak factor.", unit="req/day"),
    _f("load", ("load", "peak_factor"), "Peak factor", "Busiest hour's rate divided by the day's average rate "
       "(>= 1). Used only with a daily volume."),
    _f("load", ("load", "input_len", "mean"), "Prompt tok", "Mean prompt length in tokens, including chat "
       "history and retrieved context.", unit="tok"),
    _f("load", ("load", "input_len", "kind"), "Prompt dist", "Shape of the prompt-length distribution: fixed "
       "(every prompt the same), lognormal (spread set by the p90) or exponential.", kind="choice",
       choices=LENGTH_KINDS),
    _f("load", ("load", "input_len", "p90"), "p90", "90th-percentile prompt length (lognormal only); it must "
       "be above the mean.", unit="tok"),
    _f("load", ("load", "output_len", "mean"), "Output tok", "Mean generated length in tokens.", unit="tok"),
    _f("load", ("load", "output_len", "kind"), "Output dist", "Shape of the output-length distribution: "
       "fixed, lognormal (set the p90) or exponential (memoryless, a common fit for chat).", kind="choice",
       choices=LENGTH_KINDS),
    _f("load", ("load", "output_len", "p90"), "p90", "90th-percentile output length (lognormal only).", unit="tok"),
    _f("load", ("slo", "ttft_ms"), "TTFT ≤", "Target time to first token: queueing plus prefill of the prompt. "
       "Blank switches the target off.", blank="no target", placeholder="off", unit="ms"),
    _f("load", ("slo", "ttft_percentile"), "at p", "Percentile the TTFT target applies to (99 = 99 of 100 "
       "requests are at least this fast)."),
    _f("load", ("slo", "tpot_ms"), "TPOT ≤", "Target time per output token after the first (100 ms = 10 "
       "tokens/s per stream). Blank switches it off.", blank="no target", placeholder="off", unit="ms"),
    _f("load", ("slo", "tpot_percentile"), "at p", "Percentile the TPOT target applies to."),
    _f("load", ("slo", "e2e_ms"), "E2E ≤", "Target for the whole request, TTFT + (output tokens - 1) x TPOT. "
       "Blank switches it off.", blank="no target", placeholder="off", unit="ms"),
    _f("load", ("slo", "e2e_percentile"), "at p", "Percentile the E2E target applies to."),
    _f("load", ("slo", "max_utilization"), "Max util", "Run each replica at most this busy (share of its "
       "saturation throughput), keeping headroom for bursts.", unit="%", scale=100.0),
    # --- Optimizations
    _f("optimizations", ("optimizations", "weights"), "Weights", "Weight precision. auto = the cheapest that "
       "meets every target: the model's own dtype or a smaller one the GPU runs, the higher at equal cost. "
       "fp8/int8 halve the bytes read per decode step; int4/fp4 quarter them (plus block scales).",
       kind="choice"),
    _f("optimizations", ("optimizations", "kv"), "KV cache", "KV-cache precision. fp8/int8 halve the cache, so "
       "more sequences fit in the batch and attention reads fewer bytes.", kind="choice"),
    _f("optimizations", ("optimizations", "tp"), "TP", "Tensor-parallel GPUs per replica. auto tries every "
       "power of two that fits within a node and keeps the cheapest.", kind="choice"),
    _f("optimizations", ("optimizations", "max_num_seqs"), "Max batch", "Most sequences decoded together "
       "(vLLM max_num_seqs). Blank uses the engine's default: vLLM 1024 on >= 70 GiB GPUs other than A100, "
       "else 256; SGLang and TensorRT-LLM 2048.", blank="the engine's default", kind="int"),
    _f("optimizations", ("optimizations", "chunked_prefill"), "Chunked", "Split long prompts into "
       "chunks that share steps with decoding (vLLM default on), so decodes are not stalled.", kind="bool"),
    _f("optimizations", ("optimizations", "prefix_hit"), "Prefix hit", "Share of prompt tokens served from the "
       "prefix cache (shared system prompts, chat history); they skip prefill compute.", unit="%", scale=100.0),
    _f("optimizations", ("optimizations", "spec_k"), "Spec. k", "Speculative decoding: draft tokens proposed "
       "per step (0 = off). Each step yields (1 - a^(k+1)) / (1 - a) tokens at acceptance a.", kind="int"),
    _f("optimizations", ("optimizations", "spec_accept"), "Accept", "Chance that each draft token is accepted "
       "by the target model.", unit="%", scale=100.0),
    _f("optimizations", ("optimizations", "prune_fraction"), "Pruning", "Fraction of weights removed by "
       "structured pruning: fewer bytes and FLOPs per token.", unit="%", scale=100.0),
    _f("optimizations", ("optimizations", "sparsity_2_4"), "2:4 sparse", "2:4 structured sparsity on sparse "
       "tensor cores (GPUs without them make the plan infeasible).", kind="bool"),
)

BY_ID: dict[str, FieldSpec] = {spec.id: spec for spec in FIELDS}
BY_PATH: dict[tuple[str, ...], FieldSpec] = {spec.path: spec for spec in FIELDS}

LOAD_MODE_HELP = ("Size for a peak rate in requests/s, or for a daily volume times a peak factor.")


def field(path: tuple[str, ...]) -> FieldSpec:
    return BY_PATH[path]


def get_value(data: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        if data is None:
            return None
        data = data.get(key) if isinstance(data, dict) else getattr(data, key)
    return data


def set_value(data: dict, path: tuple[str, ...], value: Any) -> dict:
    """A copy of the nested dict with data[path] = value (intermediate dicts copied)."""
    out = dict(data)
    node = out
    for key in path[:-1]:
        node[key] = dict(node.get(key) or {})
        node = node[key]
    node[path[-1]] = value
    return out
