"""One path from a profile to the engine, for the CLI and the app alike: the profile resolved against
its folder (its [[gpu]] and [[model]] entries, tier models given as a config.json, the calibration it
names), then planned or searched.

Textual-free (a test proves it). The numeric engine (numpy) is imported by the functions that run
it, so the app's first frame and `planner --help` do not wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from planner.engine import catalog
from planner.engine.knobs import Calibration
from planner.engine.scenario import Scenario
from planner.engine.specs import TIERS, GpuSpec, ModelSpec
from planner.profile import Profile, ProfileError, parse_toml, read_text_file

if TYPE_CHECKING:
    from pydantic import ValidationError

    from planner.engine.plan import Plan
    from planner.engine.search import Candidate, SearchResult

# The engine's whole-plan function (engine.plan.evaluate, the app's helper, a test's stand-in).
Evaluate = Callable[..., "Plan"]


class ComputeError(ValueError):
    """The profile is valid but cannot be planned: an unknown GPU or model, an unreadable
    config.json or calibration. `field`: the profile key at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def validation_text(exc: ValidationError) -> str:
    """pydantic's errors as one line: 'place: what is wrong; ...'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


def load_calibration(path: Path | str) -> Calibration:
    """A calibration TOML (as `planner calibrate` writes); every failure is one line naming the
    file. The read is bounded and never blocks on a FIFO or device."""
    from pydantic import ValidationError

    text, _ = read_text_file(path, kind="calibration")
    try:
        return Calibration.model_validate(parse_toml(text, str(path)))
    except ValidationError as exc:
        raise ComputeError(f"{path}: {validation_text(exc)}") from None


@dataclass(frozen=True)
class Inputs:
    """A profile resolved against its folder: custom catalog entries and calibration loaded."""

    profile: Profile
    scenario: Scenario
    custom_gpus: list[GpuSpec]
    custom_models: list[ModelSpec]
    calibration: Calibration | None


def resolve(profile: Profile, base_dir: Path, engine: str | None = None, tiers: Iterable[str] = TIERS,
            fleet: bool = True) -> Inputs:
    """Load what the profile points at, relative to its folder, and check every id the engine will
    look up first, so an unknown one names the profile key (ComputeError.field). `engine` replaces
    fleet.engine; `tiers`: the tiers whose models are looked up; `fleet`: whether fleet.gpu is.
    A tier model given as a path to a Hugging Face config.json becomes a custom model."""
    try:
        gpus, models = profile.custom_gpus(), profile.custom_models(base_dir)
        scenario = profile.scenario()
        if engine:
            scenario = scenario.model_copy(update={"fleet": scenario.fleet.model_copy(update={"engine": engine})})
        if fleet:
            _look_up("fleet.gpu", catalog.get_gpu, scenario.fleet.gpu, gpus)
        for tier in tiers:
            name = getattr(scenario.models, tier)
            spec = _look_up(f"models.{tier}", catalog.get_model, name, models, base_dir)
            if all(spec is not m for m in (*catalog.models().values(), *models)):  # read from a config.json
                models.append(spec.model_copy(update={"id": name}))
        path = profile.calibration_path(base_dir)
        calibration = load_calibration(path) if path is not None else None
    except ComputeError:
        raise
    except ProfileError as exc:
        raise ComputeError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise ComputeError(" ".join(str(exc).split()) or type(exc).__name__) from exc
    return Inputs(profile, scenario, gpus, models, calibration)


def _look_up(place: str, lookup: Callable, *args):
    try:
        return lookup(*args)
    except catalog.CatalogError as exc:
        raise ComputeError(str(exc), place) from None


def plan(inputs: Inputs, tiers: Sequence[str] | None = None, evaluate: Evaluate | None = None) -> Plan:
    """The plan of the named tiers (default: all three). `evaluate`: another engine for the whole
    plan (the app's helper process, a test's stand-in)."""
    from planner.engine import plan as engine_plan

    args = (inputs.scenario, inputs.custom_gpus, inputs.custom_models, inputs.calibration)
    try:
        if tiers is None or list(tiers) == TIERS:
            return (evaluate or engine_plan.evaluate)(*args)
        if evaluate is not None:
            raise ValueError("another engine plans all three tiers")
        return engine_plan.assemble(inputs.scenario, engine_plan.plan_tiers(inputs.scenario, tiers, *args[1:]))
    except catalog.CatalogError as exc:
        raise ComputeError(str(exc)) from exc


def search(inputs: Inputs, tiers: Sequence[str], gpu_ids: list[str] | None = None, top: int = 5,
           all_models: bool = False) -> list[SearchResult]:
    """The cheapest fleets per tier over `gpu_ids` (default: the catalog and the profile's [[gpu]]s)."""
    from planner.engine.search import search as engine_search

    if gpu_ids is None and inputs.custom_gpus:
        gpu_ids = list(dict.fromkeys([*catalog.gpus(), *(g.id for g in inputs.custom_gpus)]))
    try:
        return engine_search(inputs.scenario, list(tiers), gpu_ids, top, all_models, inputs.custom_gpus,
                             inputs.custom_models, inputs.calibration)
    except catalog.CatalogError as exc:
        raise ComputeError(str(exc)) from exc


# ---------------------------------------------------------------- the app's Best fleets

TOP = 5  # ranked fleets per tier (the CLI's default --top)


@dataclass(frozen=True)
class FleetRow:
    """One fleet the search sized, as the Best fleets view shows it."""

    model: str
    gpu: str
    weights: str
    kv: str
    tp: int
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    replicas: int
    gpus: int
    usd_month: float
    ttft_p99_ms: float
    tpot_p99_ms: float
    e2e_p99_ms: float
    binding: str
    frontier: bool = False
    validated: bool = True  # False: its GPU family, model family or engine on it was never measured
    price_estimated: bool = False  # its GPU's catalog price is an estimate

    @property
    def label(self) -> str:
        return f"{self.gpus}×{self.gpu} TP{self.tp}"


@dataclass(frozen=True)
class FleetSearch:
    """One tier's search: the engine's SearchResult with the candidates as rows."""

    tier: str
    models: list[str]
    gpu_types: int
    screened: int
    exact_sizings: int
    excluded: dict[str, int]
    rows: list[FleetRow]
    frontier: list[FleetRow]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class FleetChoice:
    """A fleet chosen from a search, for one tier."""

    tier: str
    row: FleetRow

    @property
    def summary(self) -> str:
        from planner.engine.numbers import fmt_usd

        r = self.row
        return (f"{self.tier}: {r.model} on {r.gpus:,}×{r.gpu} TP{r.tp} {r.weights}/{r.kv}, "
                f"{fmt_usd(r.usd_month)}/month in the search")

    def apply(self, profile: Profile) -> Profile:
        """The profile with this fleet: GPU, precisions, TP, engine limits and the tier's model.
        Validated like any edit (raises pydantic's ValidationError)."""
        data = profile.model_dump()
        row = self.row
        data["fleet"] = {**data["fleet"], "gpu": row.gpu}
        data["optimizations"] = {**data["optimizations"], "weights": row.weights, "kv": row.kv, "tp": row.tp,
                                 "max_num_seqs": row.max_num_seqs,
                                 "max_num_batched_tokens": row.max_num_batched_tokens}
        if data["models"][self.tier] != row.model:
            data["models"] = {**data["models"], self.tier: row.model}
        return Profile.model_validate(data)


def uses_files(profile: Profile) -> bool:
    """Whether the profile reads files relative to its folder (config.json models, calibration)."""
    tiers = (profile.models.small, profile.models.medium, profile.models.large)
    return bool(profile.calibration or profile.model) or any("/" in t or t.endswith(".json") for t in tiers)


def search_key(profile: Profile, base_dir: Path, tier: str, all_models: bool) -> str:
    """Everything a search depends on: the inputs (not the name), the folder if files are read."""
    where = str(Path(base_dir).resolve()) if uses_files(profile) else ""
    inputs = profile.model_dump_json(exclude={"name", "description", "plan"})
    return f"{tier}|{all_models}|{where}|{inputs}"


def fleet_search(profile: Profile, base_dir: Path, tier: str, all_models: bool = False, top: int = TOP) -> FleetSearch:
    """One tier's search over the whole GPU catalog (and the profile's [[gpu]]s), with the profile
    resolved as for a plan. Raises ComputeError."""
    start = time.perf_counter()
    inputs = resolve(profile, base_dir)
    (found,) = search(inputs, [tier], None, top, all_models)
    on_frontier = {id(c) for c in found.frontier_e2e}

    def row(c: Candidate) -> FleetRow:
        cfg = c.config
        return FleetRow(c.model.id, c.gpu.id, cfg.weights, cfg.kv, cfg.tp, cfg.max_num_seqs, cfg.max_num_batched_tokens,
                        c.replicas, c.gpus, c.usd_month, c.ttft_p99_ms, c.tpot_p99_ms, c.e2e_p99_ms,
                        c.binding, id(c) in on_frontier, c.validated, c.price_estimated)

    gpu_types = len({*catalog.gpus(), *(g.id for g in inputs.custom_gpus)})
    return FleetSearch(tier, list(found.models), gpu_types, found.screened, found.exact_evaluations, dict(found.excluded),
                       [row(c) for c in found.ranked], [row(c) for c in found.frontier_e2e], list(found.notes),
                       time.perf_counter() - start)


def excluded_text(found: FleetSearch) -> str:
    """The exclusion counts in words: '1,889 do not fit in memory · 3 miss TPOT p99'."""
    return " · ".join(f"{n:,} {why}" for why, n in found.excluded.items())
