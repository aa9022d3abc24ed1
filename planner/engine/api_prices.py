"""Hosted-API prices: the sourced catalog (planner/data/api_prices.toml) and which price a tier
is compared with: the profile's own for the tier, else the profile's single [cost] price, else
the catalog listing that bills this traffic least."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from pydantic import Field, ValidationError

from planner.engine.memo import memoized
from planner.engine.scenario import Scenario, Strict

CATALOG_FILE = "api_prices.toml"
PROFILE_SOURCE = "profile"


class ApiListing(Strict):
    """One provider's published price for one catalog model."""

    model: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    input_usd_per_mtok: float = Field(ge=0, le=1000)
    output_usd_per_mtok: float = Field(ge=0, le=1000)
    basis: Literal["model", "size class"] = "model"
    url: str = Field(pattern=r"^https://")
    seen: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    note: str = ""


@dataclass(frozen=True)
class ApiQuote:
    """The price a tier is compared with, and where it comes from."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float
    provider: str  # PROFILE_SOURCE for a price typed into the profile
    url: str | None = None
    seen: str | None = None
    note: str = ""

    def usd_per_request(self, mean_in: float, mean_out: float) -> float:
        return (mean_in * self.input_usd_per_mtok + mean_out * self.output_usd_per_mtok) / 1e6

    def source(self) -> dict:
        """JSON form: provider, url and date seen (url and seen are null for a profile's price)."""
        return {"provider": self.provider, "url": self.url, "seen": self.seen}

    def label(self) -> str:
        """Short words for tables: 'DeepInfra 0.10/0.28' ($ per million input/output tokens)."""
        who = "profile" if self.provider == PROFILE_SOURCE else self.provider
        return f"{who} {self.input_usd_per_mtok:g}/{self.output_usd_per_mtok:g}"


class ApiCatalogError(ValueError):
    """The shipped price catalog does not validate."""


@memoized(1)
def listings() -> dict[str, tuple[ApiListing, ...]]:
    """Every listed price, by catalog model id, in file order."""
    text = resources.files("planner").joinpath("data", CATALOG_FILE).read_text(encoding="utf-8")
    by_model: dict[str, list[ApiListing]] = {}
    for i, row in enumerate(tomllib.loads(text).get("price", []), 1):
        try:
            entry = ApiListing.model_validate(row)
        except ValidationError as exc:
            raise ApiCatalogError(f"{CATALOG_FILE}: [[price]] number {i} ({row.get('model', '?')!r}) is invalid: {exc}") from exc
        by_model.setdefault(entry.model, []).append(entry)
    return {model: tuple(rows) for model, rows in by_model.items()}


def cheapest_listing(model_id: str, mean_in: float, mean_out: float) -> ApiQuote | None:
    """The catalog price with the lowest bill for requests of these mean lengths (which listing is
    cheapest depends on the input/output mix), or None when no price is known."""
    rows = listings().get(model_id, ())
    if not rows:
        return None
    best = min(rows, key=lambda r: (mean_in * r.input_usd_per_mtok + mean_out * r.output_usd_per_mtok, r.provider))
    note = (best.note + ("; " if best.note else "") + "a size-class rate") if best.basis == "size class" else best.note
    return ApiQuote(best.input_usd_per_mtok, best.output_usd_per_mtok, best.provider, best.url, best.seen, note)


def api_quote(scenario: Scenario, tier: str, model_id: str, mean_in: float, mean_out: float) -> ApiQuote | None:
    """The price a tier's self-hosted fleet is compared with, or None (comparison off, or no price
    known for the model)."""
    api = scenario.api
    if not api.enabled:
        return None
    own = getattr(api, tier, None)
    if own is not None:
        return ApiQuote(own.input, own.output, PROFILE_SOURCE, note=f"[api] {tier} in the profile")
    cost = scenario.cost
    if cost.api_usd_per_mtok_input is not None or cost.api_usd_per_mtok_output is not None:
        return ApiQuote(cost.api_usd_per_mtok_input or 0.0, cost.api_usd_per_mtok_output or 0.0, PROFILE_SOURCE,
                        note="[cost] api_usd_per_mtok_input/output in the profile, for every tier")
    return cheapest_listing(model_id, mean_in, mean_out)
