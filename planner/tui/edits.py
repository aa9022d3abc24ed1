"""The main screen's edit rules, without Textual: what one changed input does to the profile's
data, which held values go in with it, and which input a validation message belongs under.

The screen (screens/main.py) keeps the state (the profile, the inputs showing a refused value) and
shows the messages; these functions decide. A message prefixed "✗ " is a cross-field one, placed
again after every valid change."""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import ValidationError

from planner.engine import catalog
from planner.profile import Profile
from planner.tui.fields import BY_PATH, set_value

Path_ = tuple[str, ...]
Held = dict[str, tuple[Path_, Any]]  # input id -> (path, value) of inputs showing a refused value


def edited_data(profile: Profile, path: Path_, value: Any) -> tuple[dict, bool]:
    """The profile's data with one input changed, and whether the change restructures the inputs
    (other rows appear, or a picker gains an option): then no held value goes in with it. The
    load mode and a length's kind bring the fields they need (Load.in_mode, LengthDist.of_kind)."""
    data = profile.model_dump()
    if path == ("load", "mode"):
        data["load"] = profile.load.in_mode(value)
        return data, True
    if path[-1] == "kind":
        section, name = path[0], path[1]
        return set_value(data, (section, name), getattr(getattr(profile, section), name).of_kind(value)), True
    # a typed-in model becomes an option of its tier's picker
    return set_value(data, path, value), path[0] == "models" and value not in catalog.models()


def validate_with(data: dict, held: Held) -> tuple[Profile, tuple[str, ...]]:
    """The profile of `data` plus the largest set of held input values that validates with it,
    and their ids; raises the ValidationError of `data` alone when even that fails."""
    keys = list(held)[:6]  # at most 64 tries; inputs are refused one at a time, so there are few
    for size in range(len(keys), 0, -1):
        for subset in itertools.combinations(keys, size):
            candidate = data
            for key in subset:
                candidate = set_value(candidate, *held[key])
            try:
                return Profile.model_validate(candidate), subset
            except ValidationError:
                continue
    return Profile.model_validate(data), ()


def place_error(exc: ValidationError, input_id: str) -> tuple[str, str]:
    """The input a validation error belongs to (the edited one when no input has its place), and
    the message, prefixed ✗ as a cross-field message."""
    err = exc.errors()[0]
    loc = tuple(str(x) for x in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    spec = BY_PATH.get(loc) or BY_PATH.get((*loc, "p90"))
    target = spec.id if spec is not None else input_id
    return target, f"✗ {message}"


def snapped_back_message(exc: ValidationError, message: str) -> str:
    """The message for a choice that cannot be made and snaps back, under its own input: the
    field the check names (none for a check across sections), then the check's words."""
    place = ".".join(map(str, exc.errors()[0]["loc"]))
    return f"✗ {place + ': ' if place else ''}{message[2:]}"


def refused_messages(profile: Profile, held: Held) -> list[tuple[str, str]]:
    """(input id, message) for each input still showing a refused value: why it is refused with
    the current inputs, or, when it would now be taken, that it must be typed again."""
    data = profile.model_dump()
    out = []
    for key, (path, value) in held.items():
        try:
            Profile.model_validate(set_value(data, path, value))
            out.append((key, "✗ not taken with the other inputs: type it again"))
        except ValidationError as exc:
            out.append(place_error(exc, key))
    return out
