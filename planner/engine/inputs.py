"""Rules shared by every model read from a user's file (profiles, catalogs, config.json imports).

Text is made safe where it enters: a profile or CSV is someone else's file, and a name such as
"evil\\u001b[31mRED" would otherwise drive the terminal of whoever plans with it. Cleaning the data
once, on load, covers every place it is shown (CLI tables, the app, JSON, exports) including places
added later; error messages quote input that was refused and so never became data, and quote it
through `escaped`.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

# C0 and C1 control characters (ESC starts terminal escape sequences, BEL rings, CR and BS
# overwrite what is shown) and the Unicode direction overrides and isolates, which display text in
# another order than it is stored.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BREAKS = "\t\n\r"


def printable(text: str) -> str:
    """text as it may reach a terminal: tabs and line breaks become spaces, other controls go."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: " " if m[0] in _BREAKS else "", text)


def escaped(text: str) -> str:
    """text with every unsafe character spelled as TOML and JSON spell it (\\u001b), for error
    messages that quote refused input: the user sees what is in the file."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _printable_values(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_printable_values(k): _printable_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable_values(v) for v in value]
    return value


def _holds(annotation: Any, kind: type) -> bool:
    """Whether a field of this annotation holds values of `kind` (in a union, list or dict too)."""
    if annotation is kind or annotation is Any:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        # a literal's text must match exactly (so it is quoted, escaped, when refused); true or
        # false can be a literal's value
        return kind is bool and any(isinstance(a, bool) for a in typing.get_args(annotation))
    return any(_holds(a, kind) for a in typing.get_args(annotation))


def _number_kind(annotation: Any) -> str | None:
    """'int' or 'float' when the field holds a number (possibly optional or beside a literal)."""
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    for kind in (int, float):
        if kind in members:
            return kind.__name__
    return None


class InputModel(BaseModel):
    """Base of the models users' files are read into."""

    @field_validator("*", mode="before")
    @classmethod
    def _plain_input(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool):
            # pydantic reads true as 1 for a number: `rate_rps = true` would plan 1 req/s
            kind = _number_kind(annotation)
            if kind is not None and not _holds(annotation, bool):
                raise PydanticCustomError(f"{kind}_type", "must be a whole number" if kind == "int" else "must be a number")
            return value
        if _holds(annotation, str):
            return _printable_values(value)
        return value  # a nested model cleans its own text; refused input is quoted, escaped
