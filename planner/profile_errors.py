"""Errors of the files users edit (profiles, exported plans) and their wording: one line per
problem, naming the file, the place and what is allowed there."""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import BaseModel, Tag, ValidationError

from planner.engine.inputs import escaped
from planner.engine.scenario import LengthDist

# Several field errors are listed one per line; past this many the rest is only counted.
MAX_ERROR_LINES = 8


class ProfileError(ValueError):
    """A profile could not be read, validated or saved. str() names the file and the place."""


class ProfileConflictError(ProfileError):
    """The file changed on disk since it was opened; saving would lose someone else's edits."""


def os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__



def toml_error(where: str, exc: tomllib.TOMLDecodeError) -> str:
    """tomllib says "Expected '=' ... (at line 3, column 9)"; compilers say "file:3:9: ..."."""
    text = str(exc)
    at = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", text, re.S)
    if at:
        return f"{where}:{at[2]}:{at[3]}: invalid TOML: {at[1]}"
    at_end = re.fullmatch(r"(.*) \(at end of document\)", text, re.S)
    if at_end:
        return f"{where}: invalid TOML at end of file: {at_end[1]}"
    return f"{where}: invalid TOML: {text}"


def validation_message(where: str, exc: ValidationError, root: type[BaseModel],
                       note: Callable[[type[BaseModel], str], str] = lambda owner, key: "") -> str:
    """One line per place the data fails `root`'s validation, each saying what is allowed there
    (`note`: more for a key of a model, e.g. another spelling it accepts), capped at MAX_ERROR_LINES."""
    problems: dict[str, list[str]] = {}  # place -> explanations (a union gives one per branch)
    missing: dict[str, list[str]] = {}  # parent place -> missing keys
    for error in exc.errors():
        parts, owner, target = _walk(error["loc"], root)
        if error["type"] == "missing":
            missing.setdefault(place_of(parts[:-1]), []).append(str(parts[-1]))
            continue
        value = error.get("input")
        shown = f" = {shown_value(value)}" if error["type"] != "extra_forbidden" and _is_scalar(value) else ""
        place = place_of(parts) + shown
        text = _explain(error, owner, target, parts)
        if parts and owner is not None:
            text += note(owner, str(parts[-1]))
        problems.setdefault(place, []).append(text)
    lines = [f"{place}: {_merge(texts)}" if place else _merge(texts) for place, texts in problems.items()]
    for parent, keys in missing.items():
        noun = "key" if len(keys) == 1 else "keys"
        text = f"missing required {noun}: " + ", ".join(f"`{k}`" for k in keys)
        lines.append(f"{parent}: {text}" if parent else text)
    return capped_lines(where, lines)


def capped_lines(where: str, lines: list[str]) -> str:
    """Problems one per line, naming the file; past MAX_ERROR_LINES the rest only counted."""
    shown = [f"{where}: {line}" for line in lines[:MAX_ERROR_LINES]]
    if len(lines) > MAX_ERROR_LINES:
        shown.append(f"{where}: ... and {len(lines) - MAX_ERROR_LINES} more problems")
    return "\n".join(shown)


def _walk(loc: tuple, root: type[BaseModel]) -> tuple[list, type[BaseModel] | None, Any]:
    """Follow a pydantic error location through the root model's types. Returns the user-facing
    path parts (union branch labels such as "int" dropped), the model class that holds the last
    key, and the type expected at that key."""
    parts: list = []
    owner: type[BaseModel] | None = None
    target: Any = root
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


def place_of(parts: list) -> str:
    """A path of keys and indexes as TOML readers write it: fleet.gpu, model[0].id."""
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
        return f"must be {op} {shown_value(ctx[name])}"
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
        return one_line(ctx["error"])
    return one_line(error["msg"])


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


def shown_value(value: Any) -> str:
    """A value as it would be written in TOML (short strings quoted, long ones cut)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return '"' + escaped(shown.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return str(value)
