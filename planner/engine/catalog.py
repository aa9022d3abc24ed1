"""The built-in GPU and model catalogs (planner/data/*.toml) and name lookup.

Lookups are by id or alias, case-insensitively; user-defined entries passed as `extra` win over
built-ins. `get_model` also accepts a path to a Hugging Face config.json (or its folder).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from planner.engine.hf_config import model_from_hf_config
from planner.engine.memo import memoized
from planner.engine.specs import GpuSpec, ModelSpec

Spec = TypeVar("Spec", GpuSpec, ModelSpec)

_MAX_SUGGESTIONS = 3


class CatalogError(ValueError):
    """An unknown name, or a catalog file that does not validate."""


def normalize(name: str) -> str:
    """Lookup key: lowercase, a trailing "(comment)" dropped (measurement tables annotate names
    that way, e.g. "B200-SXM-180GB (DGX B200)"), and runs of spaces/underscores read as '-'."""
    key = re.sub(r"\s*\([^()]*\)\s*$", "", name.strip())
    return re.sub(r"[\s_]+", "-", key).lower()


def _read_toml(filename: str) -> dict:
    text = resources.files("planner").joinpath("data", filename).read_text(encoding="utf-8")
    return tomllib.loads(text)


def _validate(cls: type[Spec], rows: list[dict], filename: str) -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    for row in rows:
        try:
            spec = cls.model_validate(row)
        except ValidationError as exc:
            raise CatalogError(f"{filename}: entry {row.get('id', '?')!r} is invalid: {exc}") from exc
        if spec.id in specs:
            raise CatalogError(f"{filename}: duplicate id {spec.id!r}")
        specs[spec.id] = spec
    _index(specs.values(), filename)  # fails early on alias clashes in the shipped data
    return specs


@memoized(1)
def gpus() -> dict[str, GpuSpec]:
    """Built-in accelerators by id, in catalog order."""
    return _validate(GpuSpec, _read_toml("gpus.toml").get("gpu", []), "gpus.toml")


@memoized(1)
def models() -> dict[str, ModelSpec]:
    """Built-in models by id, in catalog order."""
    return _validate(ModelSpec, _read_toml("models.toml").get("model", []), "models.toml")


def _keys(spec: BaseModel) -> list[str]:
    # models only: the repositories they are served from name them too
    served = [name for name in (getattr(spec, "hf_id", ""), getattr(spec, "hf_id_fp8", "")) if name]
    names = [spec.id, *spec.aliases, *served]
    return list(dict.fromkeys(normalize(name) for name in names))


def _index(specs: Iterable[Spec], where: str) -> dict[str, Spec]:
    """Map every id and alias key to its spec; a key naming two specs is a data error."""
    index: dict[str, Spec] = {}
    for spec in specs:
        for key in _keys(spec):
            other = index.get(key)
            if other is not None and other.id != spec.id:
                raise CatalogError(f"{where}: name {key!r} is used by both {other.id!r} and {spec.id!r}")
            index[key] = spec
    return index


@memoized(1)
def _gpu_index() -> dict[str, GpuSpec]:
    return _index(gpus().values(), "gpus.toml")


@memoized(1)
def _model_index() -> dict[str, ModelSpec]:
    return _index(models().values(), "models.toml")


def _find(name: str, builtin: dict[str, Spec], extra: Iterable[Spec]) -> Spec | None:
    key = normalize(name)
    for spec in extra:  # user-defined entries take precedence over built-ins
        if key in _keys(spec):
            return spec
    return builtin.get(key)


def _unknown(kind: str, name: str, index: dict[str, Spec], extra: Iterable[Spec], listing: str) -> CatalogError:
    """A one-line error naming the closest ids (difflib ratio over ids and aliases)."""
    candidates = {key: spec.id for spec in extra for key in _keys(spec)}
    candidates.update({key: spec.id for key, spec in index.items() if key not in candidates})
    close = difflib.get_close_matches(normalize(name), list(candidates), n=10, cutoff=0.5)
    ids = list(dict.fromkeys(candidates[key] for key in close))[:_MAX_SUGGESTIONS]
    hint = f"; did you mean {', '.join(ids)}?" if ids else "; no close match"
    return CatalogError(f"unknown {kind} {name!r}{hint} (see `{listing}`)")


def get_gpu(name: str, extra: Iterable[GpuSpec] = ()) -> GpuSpec:
    """A GPU by id or alias, case-insensitively; `extra` (user-defined) entries win."""
    extra = list(extra)
    found = _find(name, _gpu_index(), extra)
    if found is None:
        raise _unknown("GPU", name, _gpu_index(), extra, "planner catalog gpus")
    return found


def _config_path(name: str, base_dir: Path | None) -> Path | None:
    """The config.json a name points at, if it is a path to one (or to its folder)."""
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if path.is_dir():
        path = path / "config.json"
    return path if path.is_file() else None


def get_model(name: str, extra: Iterable[ModelSpec] = (), base_dir: Path | None = None) -> ModelSpec:
    """A model by id or alias (case-insensitive, `extra` first), else a path to a Hugging Face
    config.json or a folder holding one, resolved against `base_dir` (default: the cwd)."""
    extra = list(extra)
    found = _find(name, _model_index(), extra)
    if found is not None:
        return found
    config = _config_path(name, base_dir)
    if config is not None:
        return model_from_hf_config(config, display=name)
    raise _unknown("model", name, _model_index(), extra, "planner catalog models")


def gpu_family_of(gpu_id: str) -> str:
    """The GPU's calibration family ('' for a GPU outside the catalog)."""
    try:
        return get_gpu(gpu_id).family
    except ValueError:
        return ""


@memoized(1)
def _measured_shares() -> tuple[dict[str, float], dict[str, float], float, float]:
    """Median matmul and bandwidth shares of the built-in GPUs measured, per family; and the
    lowest of all, for a family nobody measured."""
    mm: dict[str, list[float]] = {}
    bw: dict[str, list[float]] = {}
    for g in gpus().values():
        if (share := g.achieved_share("bf16")) is not None:
            mm.setdefault(g.family, []).append(share)
        if (share := g.achieved_bw_share) is not None:
            bw.setdefault(g.family, []).append(share)

    def median(v: list[float]) -> float:
        return sorted(v)[len(v) // 2]

    return ({f: median(v) for f, v in mm.items()}, {f: median(v) for f, v in bw.items()},
            min(x for v in mm.values() for x in v), min(x for v in bw.values() for x in v))


def achieved_shares(gpu: GpuSpec, precision: str) -> tuple[float, float]:
    """(matmul share of the dense peak at `precision`, bandwidth share of the datasheet): the
    GPU's own measurements; else its family's median; else the lowest measured share of any GPU,
    so that a GPU without measurements is never credited with more of its datasheet than those
    measured."""
    mm_family, bw_family, mm_low, bw_low = _measured_shares()
    mm = gpu.achieved_share(precision)
    bw = gpu.achieved_bw_share
    return (mm if mm is not None else mm_family.get(gpu.family, mm_low),
            bw if bw is not None else bw_family.get(gpu.family, bw_low))
