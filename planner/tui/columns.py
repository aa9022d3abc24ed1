"""The rows of the results table, declared once: label, help text and how to format a tier's
value from the JSON the CLI prints (`planner.report.tier_json`, read through compute.TierView),
so both show the same numbers.
The help screen lists these rows; the table widget renders them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from planner.engine.binding import UNSTABLE, Binding
from planner.engine.scenario import Targets
from planner.report import fmt_ms, fmt_num, fmt_usd, measured

if TYPE_CHECKING:
    from planner.tui.compute import TierView

MISSED = "✗"


@dataclass(frozen=True)
class Cell:
    text: str
    missed: bool = False
    dim: bool = False


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    help: str
    cell: Callable[[TierView, Targets], Cell]


def status(t: TierView | dict) -> str:
    """'ok', 'infeasible', 'overloaded' or 'misses'."""
    if not t["feasible"]:
        return "infeasible"
    if UNSTABLE in (t.get("misses") or []):
        return "overloaded"
    if not t["meets_slo"]:
        return "misses"
    return "ok"


def _status(t: TierView, slo: Targets) -> Cell:
    kind = status(t)
    if kind == "ok":
        return Cell("✓ OK")
    if kind == "misses":
        misses = t["misses"]
        return Cell(f"{MISSED} {misses[0]}" if len(misses) == 1 else f"{MISSED} {len(misses)} targets", missed=True)
    return Cell(f"{MISSED} {kind}", missed=True)


def _missed_metric(t: TierView, metric: str, high: bool) -> bool:
    """Whether a target on this metric is missed, shown on the p99 cell (or p50 for p<=50)."""
    misses = list(t.get("misses") or [])
    if UNSTABLE in misses:
        return True
    if not t["feasible"] and t["binding"].startswith(metric):
        misses.append(t["binding"])
    for miss in misses:
        name, _, pct = miss.partition(" p")
        if name == metric and pct:
            return (float(pct) > 50) == high
    return False


def _latency(metric: str, key: str, pct: str) -> Callable[[TierView, Targets], Cell]:
    def cell(t: TierView, slo: Targets) -> Cell:
        missed = _missed_metric(t, metric, pct == "p99")
        value = t[key][pct]
        if value is None and not t["feasible"]:
            floor = t.floor_ms.get(metric) if missed else None
            if floor is not None:
                return Cell(f"≥{fmt_ms(floor)} {MISSED}", missed=True)
            return Cell("-", dim=True)
        text = fmt_ms(value)
        return Cell(f"{text} {MISSED}" if missed else text, missed=missed)

    return cell


def _plain(fn: Callable[[TierView], str]) -> Callable[[TierView, Targets], Cell]:
    def cell(t: TierView, slo: Targets) -> Cell:
        text = fn(t)
        return Cell(text, dim=text in ("-", ""))

    return cell


def _replicas(t: TierView) -> str:
    if not t["feasible"]:
        return "-"
    pp = f"×PP{t['pp']}" if t["pp"] > 1 else ""
    return f"{t['replicas']} × TP{t['tp']}{pp}"


def _util(t: TierView, slo: Targets) -> Cell:
    util = t["utilization"]
    if util is None:
        return Cell("-", dim=True)
    over = util > slo.max_utilization + 1e-9
    text = f"{util * 100:.0f}%"
    return Cell(f"{text} {MISSED}" if over else text, missed=over)


def _error_band(t: TierView, slo: Targets) -> Cell:
    band = t.get("error_pct") or {}
    if not band or not t["feasible"]:
        return Cell("-", dim=True)
    low, high = min(band.values()), max(band.values())
    text = f"±{low:.0f}–{high:.0f}%" if round(low) != round(high) else f"±{low:.0f}%"
    return Cell(text if measured(t) else f"{text} ?", dim=True)


def _binding(t: TierView, slo: Targets) -> Cell:
    short = {Binding.UTILISATION_CEILING: "util cap", Binding.MEMORY: "memory", Binding.HARDWARE: "hardware",
             Binding.ONE_REPLICA: "1 replica", Binding.CONTEXT: "context"}
    text = short.get(t["binding"], t["binding"] or "-")
    return Cell(f"{text} {MISSED}" if not t["feasible"] else text, missed=not t["feasible"])


def _api_bill(t: TierView, slo: Targets) -> Cell:
    if t.get("api_usd_month") is None:
        return Cell("off" if (t.get("api_note") or "").startswith("API comparison off") else "no price", dim=True)
    return Cell(fmt_usd(t["api_usd_month"]))


def _cheaper(t: TierView, slo: Targets) -> Cell:
    text = {"api": "API", "self-hosted": "self-hosted", "same": "same"}.get(t.get("api_cheaper") or "", "-")
    return Cell(text, dim=text == "-")


def _break_even(t: TierView, slo: Targets) -> Cell:
    if t.get("break_even_rps") is not None:
        return Cell(f"{fmt_num(t['break_even_rps'])} req/s")
    return Cell("never" if t.get("api_cheaper") else "-", dim=True)


ROWS: tuple[Row, ...] = (
    Row("model", "Model", "The tier's model (catalog id, or a custom one).", _plain(lambda t: t["model"])),
    Row("status", "Status", "Whether the tier meets every target: ✓ OK, infeasible (no fleet size can meet them, "
        "see the detail), overloaded (the load exceeds what the fleet can serve) or the targets it misses.",
        _status),
    Row("gpus", "GPUs", "GPUs in the tier's fleet: replicas × TP × PP.",
        _plain(lambda t: f"{t['gpus']:,}" if t["feasible"] else "-")),
    Row("replicas", "Replicas×TP", "Independent engine copies, each spanning TP tensor-parallel GPUs (and PP "
        "pipeline stages). Load is spread evenly over the replicas.", _plain(_replicas)),
    Row("precision", "Weights/KV", "Weight and KV-cache precision after resolving 'auto'.",
        _plain(lambda t: f"{t['weights']}/{t['kv']}")),
    Row("ttft_p50", "TTFT p50", "Time to first token, median: queueing for prefill plus the prompt's own "
        "prefill steps.", _latency("TTFT", "ttft_ms", "p50")),
    Row("ttft_p99", "TTFT p99", "Time to first token, 99th percentile. Marked ✗ when the TTFT target is missed "
        "(≥ value: the zero-load floor is already above the target).", _latency("TTFT", "ttft_ms", "p99")),
    Row("tpot_p50", "TPOT p50", "Time per output token after the first, median.", _latency("TPOT", "tpot_ms", "p50")),
    Row("tpot_p99", "TPOT p99", "Time per output token, 99th percentile; includes prefill chunks that share "
        "steps with the request's decoding.", _latency("TPOT", "tpot_ms", "p99")),
    Row("e2e_p50", "E2E p50", "Whole request: TTFT + (output tokens − 1) × TPOT, median.",
        _latency("E2E", "e2e_ms", "p50")),
    Row("e2e_p99", "E2E p99", "Whole request, 99th percentile (long outputs dominate).",
        _latency("E2E", "e2e_ms", "p99")),
    Row("error", "± error", "Expected error of these predictions: the median absolute error of the model "
        "on published measurements it was not fitted to (each source predicted with knobs fitted without it), "
        "lowest to highest over throughput, TPOT, TTFT, E2E and the p90/p99 tails (the detail lists each); it "
        "widens with the replica's load. '?' marks a GPU family, model family or engine on that GPU family "
        "without measurements; for a GPU family nobody measured the band is that of families held out whole. A caveat in "
        "the detail marks a load outside the checked range (prompts 50 times the outputs or more: the TPOT and "
        "E2E of such short outputs are off by more).", _error_band),
    Row("tok_s", "Out tok/s", "Generated tokens per second across the fleet at the mean load.",
        _plain(lambda t: fmt_num(t["output_tok_s"]))),
    Row("util", "Utilisation", "Offered load per replica as a share of its saturation throughput; ✗ above "
        "the utilisation ceiling.", _util),
    Row("usd_month", "$/month", "GPUs × $/GPU-hour (after discount) × hours per month (730).",
        _plain(lambda t: fmt_usd(t["usd_month"]))),
    Row("usd_mtok", "$/M out tok", "Monthly cost divided by the output tokens generated at the mean load, per "
        "million.", _plain(lambda t: fmt_usd(t["usd_per_mtok"]))),
    Row("api_usd_month", "API $/month", "A hosted API's bill for the same traffic: the cheapest price the catalog "
        "lists for the model (for this prompt/output mix), or the profile's own ([api] in the profile). The detail "
        "names the provider, the price page and the day it was read.", _api_bill),
    Row("cheaper", "Cheaper", "Which costs less a month at the planned load: the self-hosted fleet or the API.",
        _cheaper),
    Row("break_even", "Break-even", "The mean load from which self-hosting costs no more than the API. Self-hosting "
        "pays for whole replicas, idle or busy, so below it the API is cheaper; 'never' when a full replica costs "
        "more than the API bill for the load it carries. The chart below shows both costs against the load.",
        _break_even),
    Row("kwh", "kWh/month", "GPU energy at the modelled activity, times the data-centre PUE.",
        _plain(lambda t: fmt_num(t["kwh_month"]))),
    Row("co2", "CO₂ kg/mo", "Energy × grid carbon intensity (kg CO₂ per kWh, a cost knob in the profile).",
        _plain(lambda t: fmt_num(t["co2_kg_month"]))),
    Row("binding", "Binding", "What sized the fleet: the utilisation ceiling, a latency target (one replica "
        "fewer would miss it), '1 replica' when a single replica already meets everything, or, for "
        "infeasible tiers, what rules it out (memory, a target below the zero-load floor, hardware "
        "support).", _binding),
)
