"""Profiles: a plan's inputs saved as a versioned TOML file.

A profile is the Scenario sections (`models`, `fleet`, `load`, `slo`, `optimizations`, `cost`, `api`)
plus a name, an optional calibration file and optional custom catalog entries (`[[gpu]]`,
`[[model]]`). Every section and key is optional except `name`; defaults are the Scenario
classes' defaults, and `profiles/chatbot-h100.toml` lists them all with comments. A minimal
profile is two lines:

    name = "my-service"
    load.rate_rps = 5

Reading is strict and never half-succeeds: any problem raises one `ProfileError` whose message
names the file and the place. Writing is atomic (temp file, fsync, rename) and refuses to
overwrite a file that changed on disk since it was opened. Saving over the text a profile was read
from changes only the values that changed: comments, order and unset keys stay as the author
wrote them (planner.toml_edit).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import secrets
import stat
import tomllib
import types
import typing
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Union

import tomli_w
from pydantic import BaseModel, Discriminator, Field, Tag, ValidationError, model_validator

from planner.engine.inputs import escaped
from planner.engine.scenario import (
    ApiSettings,
    CostKnobs,
    Fleet,
    LengthDist,
    Load,
    Optimizations,
    Scenario,
    Strict,
    Targets,
    TierModels,
    check_prompt_fits_budget,
)
from planner.engine.specs import GpuSpec, ModelSpec

SCHEMA_VERSION = 1
DEFAULT_PROFILE = "chatbot-h100"
# Profiles and exported plans are a few kB; anything this big is the wrong file.
MAX_PROFILE_BYTES = 10 * 1024 * 1024
# TOML has no null: a target that defaults to a value but is switched off is written as "off".
OFF = "off"
# Several field errors are listed one per line; past this many the rest is only counted.
MAX_ERROR_LINES = 8

SECTIONS: dict[str, type[BaseModel]] = {
    "models": TierModels,
    "fleet": Fleet,
    "load": Load,
    "slo": Targets,
    "optimizations": Optimizations,
    "cost": CostKnobs,
    "api": ApiSettings,
}


class ProfileError(ValueError):
    """A profile could not be read, validated or saved. str() names the file and the place."""


class ProfileConflictError(ProfileError):
    """The file changed on disk since it was opened; saving would lose someone else's edits."""


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
                raise ProfileError(f"[[model]] {entry.id!r}: {_one_line(exc)}") from exc
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
        raise ProfileError(_toml_error(where, exc)) from None
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
        raise ProfileError(_validation_message(where, exc)) from None


def _reject_non_finite(data: dict, where: str) -> None:
    """TOML spells inf and nan; no plan input means anything with them (a target switched off is
    "off"). The [plan] results of an export are not inputs and are left alone."""
    places: list[str] = []

    def walk(value: Any, parts: list) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            places.append(f"{_join(parts)} = {_fmt(value)}: must be a finite number")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not (key == "plan" and not parts):
                    walk(item, [*parts, key])
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, [*parts, i])

    walk(data, [])
    if places:
        lines = [f"{where}: {place}" for place in places[:MAX_ERROR_LINES]]
        if len(places) > MAX_ERROR_LINES:
            lines.append(f"{where}: ... and {len(places) - MAX_ERROR_LINES} more problems")
        raise ProfileError("\n".join(lines))


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
        _check_unchanged(path, expected_mtime_ns)
    text = profile_to_toml(profile) if not over_text else profile_to_toml_over(over_text, profile, str(path))
    save_text_atomic(path, text)
    return LoadedProfile(profile, path, path.stat().st_mtime_ns, text)


def save_text_atomic(path: Path | str, text: str) -> None:
    """Write text to a temp file beside path, fsync it and rename it over path: readers see the
    old file or the new one, never a half-written one (crash, full disk). Raises ProfileError."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()  # replace the link's target; renaming over the link would cut it
    if not path.name or path.name in (".", "..") or path.is_dir():
        raise ProfileError(f"{path}: cannot save: is a folder; give a file name")
    if path.exists() and not path.is_file():  # the rename would replace a FIFO or device node with a file
        raise ProfileError(f"{path}: cannot save: not a regular file")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # 0o666 lets the umask decide a new file's mode, as a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot save: {_os_reason(exc)}") from exc
    try:
        try:
            _write_all(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        with suppress(FileNotFoundError):
            old = os.stat(path)
            os.chmod(tmp, stat.S_IMODE(old.st_mode))  # keep an existing file's mode
            _advance_mtime(tmp, old.st_mtime_ns)
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ProfileError(f"{path}: cannot save: {_os_reason(exc)}") from exc
        raise
    _fsync_dir(path.parent)


def _advance_mtime(tmp: Path, old_mtime_ns: int) -> None:
    """Conflict detection compares mtimes, and filesystems stamp them with a coarse clock (ext4:
    one kernel tick, ~4 ms): a save right after another could keep the old mtime and a second
    window would overwrite the first one's save unwarned. Every save moves the mtime forward."""
    st = os.stat(tmp)
    if st.st_mtime_ns <= old_mtime_ns:
        os.utime(tmp, ns=(st.st_atime_ns, old_mtime_ns + 1))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort, the data is already safe."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_unchanged(path: Path, expected_mtime_ns: int) -> None:
    # A check-then-rename race remains, but it is milliseconds wide instead of a whole session.
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return  # deleted since it was opened: saving recreates it and loses nothing
    if mtime_ns != expected_mtime_ns:
        raise ProfileConflictError(
            f"{path}: changed on disk since it was opened; reload it, or save with overwrite"
        )


def read_text_file(path: Path | str, kind: str = "profile", max_bytes: int = MAX_PROFILE_BYTES) -> tuple[str, int]:
    """A small TOML file's text and mtime_ns, or a one-line ProfileError naming it. Never blocks
    on a FIFO or device and never reads more than max_bytes (+1)."""
    path = Path(path)
    where = str(path)
    try:
        # stat first: opening a FIFO or device could block or never end
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ProfileError(f"{where}: is a folder, not a {kind} file")
        if not stat.S_ISREG(mode):
            raise ProfileError(f"{where}: not a regular file")
        with path.open("rb") as f:
            mtime_ns = os.fstat(f.fileno()).st_mtime_ns  # before reading: later edits show up
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ProfileError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ProfileError(f"{where}: is a folder, not a {kind} file") from None
    except PermissionError:
        raise ProfileError(f"{where}: permission denied") from None
    except OSError as exc:
        raise ProfileError(f"{where}: cannot read: {_os_reason(exc)}") from None
    if len(raw) > max_bytes:
        raise ProfileError(f"{where}: over {max_bytes // 2**20} MiB; not a {kind}")
    if b"\x00" in raw:
        raise ProfileError(f"{where}: binary file, not a TOML {kind}")
    try:
        return raw.decode("utf-8-sig"), mtime_ns  # -sig: tolerate the BOM some editors add
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{where}: not UTF-8 text (bad byte at offset {exc.start})") from None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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


# ---------------------------------------------------------------- error messages


def _toml_error(where: str, exc: tomllib.TOMLDecodeError) -> str:
    """tomllib says "Expected '=' ... (at line 3, column 9)"; compilers say "file:3:9: ..."."""
    text = str(exc)
    at = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", text, re.S)
    if at:
        return f"{where}:{at[2]}:{at[3]}: invalid TOML: {at[1]}"
    at_end = re.fullmatch(r"(.*) \(at end of document\)", text, re.S)
    if at_end:
        return f"{where}: invalid TOML at end of file: {at_end[1]}"
    return f"{where}: invalid TOML: {text}"


def _validation_message(where: str, exc: ValidationError) -> str:
    problems: dict[str, list[str]] = {}  # place -> explanations (a union gives one per branch)
    missing: dict[str, list[str]] = {}  # parent place -> missing keys
    for error in exc.errors():
        parts, owner, target = _walk(error["loc"])
        if error["type"] == "missing":
            missing.setdefault(_join(parts[:-1]), []).append(str(parts[-1]))
            continue
        value = error.get("input")
        shown = f" = {_fmt(value)}" if error["type"] != "extra_forbidden" and _is_scalar(value) else ""
        place = _join(parts) + shown
        text = _explain(error, owner, target, parts)
        if parts and owner in SECTIONS.values() and parts[-1] in _off_fields(owner):
            text += f' or "{OFF}"'
        problems.setdefault(place, []).append(text)
    lines = [f"{place}: {_merge(texts)}" if place else _merge(texts) for place, texts in problems.items()]
    for parent, keys in missing.items():
        noun = "key" if len(keys) == 1 else "keys"
        text = f"missing required {noun}: " + ", ".join(f"`{k}`" for k in keys)
        lines.append(f"{parent}: {text}" if parent else text)
    shown_lines = [f"{where}: {line}" for line in lines[:MAX_ERROR_LINES]]
    if len(lines) > MAX_ERROR_LINES:
        shown_lines.append(f"{where}: ... and {len(lines) - MAX_ERROR_LINES} more problems")
    return "\n".join(shown_lines)


def _walk(loc: tuple) -> tuple[list, type[BaseModel] | None, Any]:
    """Follow a pydantic error location through the Profile's types. Returns the user-facing
    path parts (union branch labels such as "int" dropped), the model class that holds the last
    key, and the type expected at that key."""
    parts: list = []
    owner: type[BaseModel] | None = None
    target: Any = Profile
    for key in loc:
        target = _unwrap(target)
        origin = typing.get_origin(target)
        if isinstance(target, type) and issubclass(target, BaseModel):
            owner = target
            parts.append(key)
            field = target.model_fields.get(key)
            target = field.annotation if field else None
        elif origin is list and isinstance(key, int):
            parts.append(key)
            target = typing.get_args(target)[0]
        elif origin is dict:
            parts.append(key)
            args = typing.get_args(target)
            target = args[1] if args else None
        elif _is_union(target):
            target = _tagged_member(target, key) or target  # else a branch label: stay put
        else:
            parts.append(key)
            target = None
    return parts, owner, _unwrap(target)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional so the walk sees the type that matters."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        elif _is_union(tp):
            members = [m for m in typing.get_args(tp) if m is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _tagged_member(union: Any, key: Any) -> Any:
    for member in typing.get_args(union):
        if typing.get_origin(member) is Annotated:
            if any(isinstance(m, Tag) and m.tag == key for m in member.__metadata__):
                return typing.get_args(member)[0]
    return None


def _join(parts: list) -> str:
    text = ""
    for part in parts:
        name = escaped(str(part))
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text


_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}
_KINDS = {
    "must be a number": {"float_type", "float_parsing", "finite_number"},
    "must be a whole number": {"int_type", "int_parsing", "int_from_float"},
    "must be true or false": {"bool_type", "bool_parsing"},
    "must be text (a quoted string)": {"string_type"},
    "must be a table": {"model_type", "model_attributes_type", "dict_type"},
    "must be an array": {"list_type"},
}


def _explain(error: dict, owner: type[BaseModel] | None, target: Any, parts: list) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _did_you_mean(str(parts[-1]), owner)
    if kind in _BOUNDS:
        op, name = _BOUNDS[kind]
        return f"must be {op} {_fmt(ctx[name])}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return f"must be one of {expected}" if " or " in expected else f"must be {expected}"
    if target is LengthDist and kind == "model_type":
        return 'must be a number (a fixed length) or a table like {kind = "lognormal", mean = 1000, p90 = 2500}'
    for text, kinds in _KINDS.items():
        if kind in kinds:
            return text
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return _one_line(ctx["error"])
    return _one_line(error["msg"])


def _did_you_mean(key: str, owner: type[BaseModel] | None) -> str:
    names = list(owner.model_fields) if owner else []
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    return "unknown key; expected one of: " + ", ".join(names) if names else "unknown key"


def _merge(texts: list[str]) -> str:
    """Union branches fail separately: "must be 'auto'" + "must be a whole number" reads as
    "must be 'auto' or a whole number"."""
    unique = list(dict.fromkeys(texts))
    if len(unique) > 1 and all(t.startswith("must be ") for t in unique):
        return "must be " + " or ".join(t.removeprefix("must be ") for t in unique)
    return "; ".join(unique)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return '"' + escaped(shown.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return str(value)
