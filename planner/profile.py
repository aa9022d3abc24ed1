"""Profiles: a plan's inputs saved as a versioned TOML file.

A profile is the Scenario sections (`models`, `fleet`, `load`, `slo`, `optimizations`, `cost`, `api`)
plus a name, an optional calibration file and optional custom catalog entries (`[[gpu]]`,
`[[model]]`). Every section and key is optional except `name`; defaults are the Scenario
classes' defaults, and `profiles/chatbot-h100.toml` lists them all with comments. A minimal
profile is two lines:

    name = "my-service"
    load.rate_rps = 5

Reading is strict and never half-succeeds: any problem raises one `ProfileError` whose message
names the file and the place (the wording: planner.profile_errors). Writing is atomic (temp file,
fsync, rename: planner.profile_io) and refuses to overwrite a file that changed on disk since it
was opened. Saving over the text a profile was read
from changes only the values that changed: comments, order and unset keys stay as the author
wrote them (planner.toml_edit).
"""

from __future__ import annotations

import math
import os
import tomllib
import typing
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import BaseModel, Discriminator, Field, Tag, ValidationError, model_validator

from planner.engine.scenario import (
    ApiSettings,
    CostKnobs,
    Fleet,
    Load,
    Optimizations,
    Scenario,
    Strict,
    Targets,
    TierModels,
    check_prompt_fits_budget,
)
from planner.engine.specs import GpuSpec, ModelSpec
from planner.profile_errors import (  # the errors are re-exported: callers import them from here
    ProfileConflictError,  # noqa: F401
    ProfileError,
    capped_lines,
    one_line,
    place_of,
    shown_value,
    toml_error,
    validation_message,
)
from planner.profile_io import (  # re-exported too
    MAX_PROFILE_BYTES,  # noqa: F401
    check_unchanged,
    read_text_file,
    save_text_atomic,
)

SCHEMA_VERSION = 1
DEFAULT_PROFILE = "chatbot-h100"
# TOML has no null: a target that defaults to a value but is switched off is written as "off".
OFF = "off"

SECTIONS: dict[str, type[BaseModel]] = {
    "models": TierModels,
    "fleet": Fleet,
    "load": Load,
    "slo": Targets,
    "optimizations": Optimizations,
    "cost": CostKnobs,
    "api": ApiSettings,
}


class HfModelRef(Strict):
    """A custom model read from a Hugging Face config.json (path relative to the profile)."""

    id: str = Field(min_length=1)
    config: str = Field(min_length=1)


def _model_entry_kind(value: Any) -> str:
    has_config = isinstance(value, HfModelRef) or (isinstance(value, dict) and "config" in value)
    return "hf" if has_config else "spec"


CustomModel = Annotated[
    Annotated[ModelSpec, Tag("spec")] | Annotated[HfModelRef, Tag("hf")],
    Discriminator(_model_entry_kind),
]


class Profile(Strict):
    """A named, versioned set of plan inputs (see the module docstring for the file layout)."""

    schema_version: int = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    name: str = Field(min_length=1)
    description: str = ""
    calibration: str | None = Field(None, description="calibration TOML, relative to the profile")
    models: TierModels = TierModels()
    fleet: Fleet = Fleet()
    load: Load = Load(rate_rps=10.0)
    slo: Targets = Targets()
    optimizations: Optimizations = Optimizations()
    cost: CostKnobs = CostKnobs()
    api: ApiSettings = ApiSettings()
    gpu: list[GpuSpec] = Field([], description="custom GPUs, written as [[gpu]] tables")
    model: list[CustomModel] = Field([], description="custom models, written as [[model]] tables")
    # An exported plan's results. Accepted so a plan file opens as a profile; never written back
    # by profile_to_toml, because after any edit the results would no longer match the inputs.
    plan: dict | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Profile:
        for table, items in (("gpu", self.gpu), ("model", self.model)):
            counts = Counter(item.id for item in items)  # linear: a 10 MB file may hold 100k entries
            twice = sorted(i for i, n in counts.items() if n > 1)
            if twice:
                raise ValueError(f"[[{table}]] id {twice[0]!r} is defined more than once")
        return self

    @model_validator(mode="after")
    def _prompt_fits_budget(self) -> Profile:
        check_prompt_fits_budget(self.load, self.optimizations)
        return self

    @classmethod
    def from_scenario(cls, scenario: Scenario, name: str, description: str = "") -> Profile:
        return cls(name=name, description=description, **_sections_of(scenario))

    def scenario(self) -> Scenario:
        return Scenario(**_sections_of(self))

    def custom_gpus(self) -> list[GpuSpec]:
        return list(self.gpu)

    def custom_models(self, base_dir: Path | str) -> list[ModelSpec]:
        """Custom models; `config` entries are read from base_dir (the profile's folder)."""
        specs = []
        for entry in self.model:
            if isinstance(entry, ModelSpec):
                specs.append(entry)
                continue
            # Imported here: only profiles with config.json entries need the HF reader.
            from planner.engine.hf_config import model_from_hf_config

            config_path = Path(base_dir) / Path(entry.config).expanduser()
            file = config_path / "config.json" if config_path.is_dir() else config_path
            if file.exists() and not file.is_file():  # a FIFO or device would block or never end
                raise ProfileError(f"[[model]] {entry.id!r}: {file}: not a regular file")
            try:
                spec = model_from_hf_config(config_path, display=str(config_path))
            except (OSError, ValueError, KeyError, TypeError) as exc:  # the reader names the file
                raise ProfileError(f"[[model]] {entry.id!r}: {one_line(exc)}") from exc
            specs.append(spec.model_copy(update={"id": entry.id}))
        return specs

    def calibration_path(self, base_dir: Path | str) -> Path | None:
        if self.calibration is None:
            return None
        return Path(base_dir) / Path(self.calibration).expanduser()


def _sections_of(obj: BaseModel) -> dict[str, BaseModel]:
    # Copies, so editing a Scenario never edits the Profile it came from (and vice versa).
    return {name: getattr(obj, name).model_copy(deep=True) for name in SECTIONS}


@dataclass(frozen=True)
class LoadedProfile:
    """A profile as read from disk; mtime_ns lets save_profile detect edits made meanwhile, and
    text (the file as read or written) lets it keep the author's comments and layout."""

    profile: Profile
    path: Path
    mtime_ns: int
    text: str = ""

    @property
    def base_dir(self) -> Path:
        return self.path.parent


# ---------------------------------------------------------------- TOML text <-> Profile


def parse_toml(text: str, where: str) -> dict:
    """TOML text as data, or a ProfileError naming `where` (and the line for syntax errors)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(toml_error(where, exc)) from None
    except RecursionError:  # tomllib recurses per nesting level: `a = [[[[...` thousands deep
        raise ProfileError(f"{where}: invalid TOML: arrays or tables nested too deeply") from None


def profile_from_toml(text: str, path_for_messages: str = "<profile>") -> Profile:
    where = str(path_for_messages)
    data = parse_toml(text, where)
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ProfileError(
            f"{where}: schema_version {version} is newer than this planner understands "
            f"({SCHEMA_VERSION}); upgrade planner"
        )
    _reject_non_finite(data, where)
    try:
        return Profile.model_validate(_off_to_none(data))
    except ValidationError as exc:
        raise ProfileError(validation_message(where, exc, Profile, _off_note)) from None


def _reject_non_finite(data: dict, where: str) -> None:
    """TOML spells inf and nan; no plan input means anything with them (a target switched off is
    "off"). The [plan] results of an export are not inputs and are left alone."""
    places: list[str] = []

    def walk(value: Any, parts: list) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            places.append(f"{place_of(parts)} = {shown_value(value)}: must be a finite number")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not (key == "plan" and not parts):
                    walk(item, [*parts, key])
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, [*parts, i])

    walk(data, [])
    if places:
        raise ProfileError(capped_lines(where, places))


def profile_to_dict(profile: Profile) -> dict:
    """The profile as TOML-ready data (no None, "off" for disabled targets, no [plan])."""
    data = profile.model_dump(mode="json", exclude={"plan"})
    data = _drop_none(_none_to_off(data))
    for table in ("gpu", "model"):  # `gpu = []` would only be noise
        if not data[table]:
            del data[table]
    return data


def profile_to_toml(profile: Profile, *, plan: dict | None = None) -> str:
    """The profile as TOML; `plan` (results of an export) is written as a trailing [plan] table."""
    data = profile_to_dict(profile)
    if plan is not None:
        data["plan"] = _drop_none(plan)
    return tomli_w.dumps(data)


def profile_to_toml_over(text: str, profile: Profile, where: str = "<profile>") -> str:
    """`text` (a profile file's content) changed to hold `profile`: only the values that differ
    are written, so comments, key order and the keys left unset stay as they were. A [plan] table
    of results is dropped, as profile_to_toml never writes one: the inputs may have changed."""
    from planner.toml_edit import edit_toml  # tomlkit is only needed to save

    before = profile_to_dict(profile_from_toml(text, where))
    before["plan"] = True  # anything not in `after`: removed
    return edit_toml(text, before, profile_to_dict(profile))


def _off_fields(section: type[BaseModel]) -> set[str]:
    """Keys that accept None but default to a value: None must be spelled out as "off"."""
    return {
        name
        for name, field in section.model_fields.items()
        if field.default is not None and type(None) in typing.get_args(field.annotation)
    }


def _off_note(owner: type[BaseModel], key: str) -> str:
    """A target that can be switched off also accepts "off"."""
    return f' or "{OFF}"' if owner in SECTIONS.values() and key in _off_fields(owner) else ""


def _off_to_none(data: dict) -> dict:
    data = dict(data)
    for name, section in SECTIONS.items():
        if isinstance(data.get(name), dict):
            table = dict(data[name])
            for key in _off_fields(section) & table.keys():
                if table[key] == OFF:
                    table[key] = None
            data[name] = table
    return data


def _none_to_off(data: dict) -> dict:
    for name, section in SECTIONS.items():
        for key in _off_fields(section):
            if key in data[name] and data[name][key] is None:
                data[name][key] = OFF
    return data


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value if v is not None]
    return value


# ---------------------------------------------------------------- files


def load_profile(path: Path | str) -> LoadedProfile:
    path = Path(path)
    text, mtime_ns = read_text_file(path)
    return LoadedProfile(profile_from_toml(text, str(path)), path, mtime_ns, text)


def save_profile(
    profile: Profile,
    path: Path | str,
    *,
    expected_mtime_ns: int | None = None,
    overwrite_changed: bool = False,
    over_text: str | None = None,
) -> LoadedProfile:
    """Write atomically. With expected_mtime_ns (from load_profile), refuse to overwrite a file
    that changed since it was opened, unless overwrite_changed. With over_text (the text the
    profile was read from: LoadedProfile.text, default_profile_text()), write that text with only
    the changed values changed; else a fresh file. Returns the saved state."""
    path = Path(path)
    if expected_mtime_ns is not None and not overwrite_changed:
        check_unchanged(path, expected_mtime_ns)
    text = profile_to_toml(profile) if not over_text else profile_to_toml_over(over_text, profile, str(path))
    save_text_atomic(path, text)
    return LoadedProfile(profile, path, path.stat().st_mtime_ns, text)


# ---------------------------------------------------------------- folders and built-ins


def user_profiles_dir(create: bool = False) -> Path:
    """Where user profiles live: $PLANNER_CONFIG_DIR/profiles if set, else the platform's
    config folder (e.g. ~/.config/planner/profiles on Linux)."""
    override = os.environ.get("PLANNER_CONFIG_DIR")
    if override:
        base = Path(override).expanduser()
    else:
        from platformdirs import user_config_path

        base = user_config_path("planner")
    folder = base / "profiles"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def user_profiles() -> list[Path]:
    folder = user_profiles_dir()
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def default_profile() -> Profile:
    """The built-in default, shipped inside the package (a copy of profiles/chatbot-h100.toml)."""
    return profile_from_toml(default_profile_text(), f"{DEFAULT_PROFILE}.toml")


def default_profile_text() -> str:
    """The built-in default's text: a profile started from it is saved with its comments."""
    resource = resources.files("planner") / "profiles" / f"{DEFAULT_PROFILE}.toml"
    return resource.read_text(encoding="utf-8")
