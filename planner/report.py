"""Plain data (JSON-ready dicts) for predictions, plans, searches, validations and the catalog: every
JSON key `planner` prints is shaped here. The CLI prints them (or tables made of them); the TUI
renders the same dicts, so both show identical numbers."""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING

from planner import __version__
from planner.engine.engines import ENGINE_NAMES, default_max_seqs
from planner.engine.numbers import fmt_gb, fmt_ms, fmt_num, fmt_sig, fmt_usd  # noqa: F401 (the CLI's and app's formatters)

if TYPE_CHECKING:  # annotations only: the TUI formats numbers before the engine (numpy) is loaded
    from planner.engine.crossval import CrossValidation
    from planner.engine.hosted_api import HostedApiOption
    from planner.engine.knobs import Calibration
    from planner.engine.plan import Plan, TierPlan
    from planner.engine.predict import Prediction
    from planner.engine.search import Candidate, SearchResult
    from planner.engine.serving import OperatingPoint
    from planner.engine.validate import RowResult


def finite(x: float | None, digits: int = 4) -> float | None:
    """JSON never carries NaN or inf: an unbounded value is null (and the row says why)."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def _ms(dist: dict, keys=("mean", "p50", "p90", "p99")) -> dict:
    return {k: finite(dist[k] * 1e3, 3) if k in dist else None for k in keys}


def point_metrics(point: OperatingPoint | None) -> dict:
    if point is None or not point.stable:
        empty = {"mean": None, "p50": None, "p90": None, "p99": None}
        return {"ttft_ms": empty, "tpot_ms": dict(empty), "e2e_ms": dict(empty)}
    return {"ttft_ms": _ms(point.ttft_s), "tpot_ms": _ms(point.tpot_s), "e2e_ms": _ms(point.e2e_s)}


def prediction_json(pred: Prediction, mean_in: float, mean_out: float) -> dict:
    req, cfg, point = pred.request, pred.config, pred.point
    out = {
        "model": req.model.id, "gpu": req.gpu.id, "tp": cfg.tp, "pp": cfg.pp, "weights": cfg.weights, "kv": cfg.kv,
        "mode": req.mode, "engine": cfg.engine, "fits": pred.fits,
        "validated": dict(pred.validated), "error_pct": {k: round(v, 1) for k, v in pred.error_pct.items()},
        "memory_gb": {k: finite(v, 3) for k, v in pred.memory_gb.items()} | {"per_gpu": True},
    }
    if req.mode == "rate":
        out["rate_rps"] = req.rate_rps
    if req.mode == "concurrency":
        out["concurrency"] = req.concurrency
    if req.num_prompts is not None:
        out["num_prompts"] = req.num_prompts
    if not pred.fits or point is None:
        out["reason"] = pred.reason
        return out
    stable = point.stable
    rps = point.requests_per_s if stable else None
    max_seqs = int(point.max_batch)  # whole sequences: the engine runs no fraction of one
    engine_max_seqs = cfg.max_num_seqs or default_max_seqs(cfg.engine, req.gpu)
    out |= {
        "stable": stable,
        "max_seqs": max_seqs,  # running-sequence cap: max_num_seqs, or fewer where the KV cache binds
        "max_num_seqs": engine_max_seqs,  # the engine's limit (its flag, or its default)
        "max_seqs_bound_by": "max_num_seqs" if max_seqs >= engine_max_seqs else "kv cache",
        "kv_capacity_tokens": int(point.kv_tokens),
        "batch": finite(min(point.batch, max_seqs), 2) if stable else None,
        **point_metrics(point),
        "output_tok_s": finite(rps * mean_out, 2) if rps else None,
        "total_tok_s": finite(rps * (mean_in + mean_out), 2) if rps else None,
        "requests_per_s": finite(rps, 4) if rps else None,
        "max_rate_rps": finite(point.max_rate_rps, 4),
        "utilization": finite(point.utilization, 4),
        "bound": {"prefill": point.prefill_bound or None, "decode": point.decode_bound or None},
    }
    if pred.first_use_ms is not None:
        out["first_use_ms"] = finite(pred.first_use_ms, 1)  # in the start-up burst's TTFT: the run starts cold
    if not stable:
        out["reason"] = f"unstable: {point.note}"
    elif point.note:
        out["note"] = point.note
    return out


def tier_json(t: TierPlan) -> dict:
    point = t.point if t.feasible else None
    cost = t.cost
    out = {
        "tier": t.tier, "model": t.model.id, "gpu": t.gpu.id, "gpus": t.gpus, "replicas": t.replicas,
        "tp": t.config.tp, "pp": t.config.pp, "weights": t.config.weights, "kv": t.config.kv,
        "weights_auto": t.weights_auto,  # weights = "auto": the planner chose this precision
        "feasible": t.feasible, "meets_slo": t.meets_slo, "binding": t.binding, "bound": t.bound or None,
        **point_metrics(point),
        "output_tok_s": None, "utilization": None, "usd_month": None, "usd_per_mtok": None,
        "usd_per_mtok_total": None, "kwh_month": None, "co2_kg_month": None,
        "memory_gb_per_gpu": {k: finite(v, 3) for k, v in t.memory_gb.items()},
        "quality": t.model.quality.model_dump() if t.model.quality else None,
        "params_b": finite(t.model.params_total / 1e9, 3),
        "alternatives": [{k: (finite(v, 2) if isinstance(v, float) else v) for k, v in a.items()} for a in t.alternatives],
    }
    out["engine"] = t.config.engine
    out["error_pct"] = {k: round(v, 1) for k, v in t.error_pct.items()}
    out["error_band_pct"] = out["error_pct"]  # the name before cross-validation: kept for scripts
    out["validated"] = dict(t.validated)
    if not t.feasible:
        out["reason"] = t.reason
    if t.feasible and cost is not None and point is not None:
        mean_rate = point.requests_per_s * t.replicas
        out |= {
            "output_tok_s": finite(mean_rate * t.mean_output_tokens, 2) if point.stable else None,
            "utilization": finite(point.utilization, 4),
            "usd_month": finite(cost.usd_month, 2),
            # an unstable fleet does not serve the load, so it has no cost per served token
            "usd_per_mtok": finite(cost.usd_per_mtok_output, 4) if point.stable else None,
            "usd_per_mtok_total": finite(cost.usd_per_mtok_total, 4) if point.stable else None,
            "kwh_month": finite(cost.kwh_month, 1),
            "co2_kg_month": finite(cost.co2_kg_month, 1),
        }
    out |= api_json(t)  # api_usd_month, break_even_rps and the rest of the hosted-API comparison
    if t.feasible and not t.meets_slo:
        out["misses"] = t.misses
    if t.feasible and t.reason:
        out["note"] = t.reason
    return out


def api_json(t: TierPlan) -> dict:
    """The hosted-API comparison of a tier: the API's bill for the same traffic, its price and
    source, which is cheaper, and the mean load from which self-hosting costs no more (break_even_*;
    null when it never does, as api_note then says). Every key is present; null when not known."""
    from planner.engine.cost import api_usd_per_mtok_output  # loaded by then: there is a plan

    q = t.api_quote
    api = t.cost.api if t.feasible and t.cost is not None else None
    out = {
        "api_usd_month": finite(t.api_usd_month, 2), "api_usd_per_mtok": None,
        "api_usd_per_mtok_input": q.input_usd_per_mtok if q else None,
        "api_usd_per_mtok_output": q.output_usd_per_mtok if q else None,
        "api_source": (q.source() | {"note": q.note}) if q else None,
        "api_cheaper": None, "break_even_rps": None, "break_even_requests_month": None, "break_even_mtok_month": None,
        "break_even_usd_per_gpu_hour": None, "api_note": api_note(t),
    }
    if q is not None:
        per_request = q.usd_per_request(t.mean_input_tokens, t.mean_output_tokens)
        out["api_usd_per_mtok"] = finite(api_usd_per_mtok_output(per_request, t.mean_output_tokens), 4)
    if api is not None:
        be = api.break_even_rps
        out |= {"api_cheaper": api.cheaper, "break_even_rps": finite(be, 4),
                "break_even_requests_month": finite(be * api.seconds_per_month, 0),
                "break_even_mtok_month": finite(be * api.seconds_per_month * api.mean_output_tokens / 1e6, 3),
                "break_even_usd_per_gpu_hour": finite(api.break_even_gpu_price(t.usd_per_gpu_hour), 4)}
    return out


def api_note(t: TierPlan) -> str | None:
    """Why a tier has no comparison or no break-even, in words (None when it has both)."""
    if not t.api_enabled:
        return "API comparison off ([api] enabled = false)"
    if t.api_quote is None:
        return f"no API price known for {t.model.id}"
    api = t.cost.api if t.feasible and t.cost is not None else None
    if api is None:
        return "no self-hosted fleet to compare: the tier is infeasible"
    if not math.isfinite(api.break_even_rps):
        return ("self-hosting never breaks even at this price: a replica costs more a month than the API bill "
                "for the load it can carry")
    return None


def unmeasured_text(t: dict, gpu_family: str, model_family: str) -> str:
    """What has no measurements behind a tier's numbers, in words ('' when everything has)."""
    v = t.get("validated")
    if not isinstance(v, dict):
        return "" if v else "this setup"
    parts = [f"{gpu_family} GPUs" if not v.get("gpu_family", True) else "",
             f"{model_family} models" if not v.get("model_family", True) else "",
             f"{ENGINE_NAMES.get(t.get('engine', ''), t.get('engine', ''))} on this GPU family"
             if not v.get("engine", True) else ""]
    return ", ".join(p for p in parts if p)


def measured(t: dict) -> bool:
    """Whether measurements of the GPU family, the model family and the engine all stand behind a
    tier's or a prediction's numbers."""
    v = t.get("validated")
    return all(v.values()) if isinstance(v, dict) else bool(v)


def plan_json(plan: Plan) -> dict:
    s = plan.scenario
    return {
        "planner_version": __version__,
        "load": {
            "peak_rate_rps": finite(plan.peak_rate_rps, 4),
            "mean_rate_rps": finite(s.load.mean_rate_rps, 4),
            "input_len": _finite_values(s.load.input_len.model_dump(exclude_none=True)),
            "output_len": _finite_values(s.load.output_len.model_dump(exclude_none=True)),
            "mean_input_tokens": finite(plan.workload.mean_in, 1),
            "mean_output_tokens": finite(plan.workload.mean_out, 1),
            "caveats": list(plan.caveats),
        },
        "slo": _finite_values(s.slo.model_dump(exclude_none=True)),
        "fleet": _finite_values(s.fleet.model_dump(exclude_none=True)),
        "tiers": [tier_json(t) for t in plan.tiers],
    }


def _finite_values(data: dict) -> dict:
    """Echoed inputs obey the same rule as results: a Scenario built in code may hold inf."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in data.items()}


def plan_export(plan: Plan, inputs: dict) -> dict:
    """The TOML export: the full inputs plus a [plan] table of results."""
    results = plan_json(plan)
    return inputs | {"plan": {"planner_version": __version__, "date": date.today().isoformat(),
                              "tiers": _drop_none(results["tiers"])}}


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Human formatting shared by the CLI tables and the TUI (the number formatters live with the engine,
# whose messages use them too)


def mean_tokens(length: dict, sampled: float | None) -> float | None:
    """The mean prompt or output length to show: the one the profile set, unless a `max` truncates
    the distribution (then the sampled mean, which is what was planned). The sampled mean of an
    untruncated lognormal or exponential falls a hair short of it (2,048 stratified quantiles miss
    the far tail: 2999 for 3000), which is no reason to show a number the user did not set."""
    if length.get("max") is None and length.get("mean") is not None:
        return float(length["mean"])
    return sampled


# ---------------------------------------------------------------------------------------------
# search, validate, calibrate and catalog: the JSON `planner` prints (and its tables render)


def candidate_json(c: Candidate) -> dict:
    """One fleet the search sized."""
    return {"model": c.model.id, "gpu": c.gpu.id, "tp": c.config.tp, "weights": c.config.weights, "kv": c.config.kv,
            "max_seqs": c.config.max_num_seqs, "max_batched_tokens": c.config.max_num_batched_tokens,
            "replicas": c.replicas, "gpus": c.gpus, "usd_month": finite(c.usd_month, 2),
            "e2e_p99_ms": finite(c.e2e_p99_ms, 1), "ttft_p99_ms": finite(c.ttft_p99_ms, 1),
            "tpot_p99_ms": finite(c.tpot_p99_ms, 1), "binding": c.binding, "engine": c.config.engine,
            "validated": c.validated, "price_estimated": c.price_estimated}


def search_json(r: SearchResult) -> dict:
    """One tier's search: what was screened and excluded, the ranking and the frontiers."""
    return {"tier": r.tier, "screened": r.screened, "exact_sizings": r.exact_evaluations, "screen_ms": round(r.screen_s * 1e3, 1),
            "excluded": r.excluded, "top": [candidate_json(c) for c in r.ranked],
            "frontier_e2e_p99": [candidate_json(c) for c in r.frontier_e2e],
            "frontier_ttft_p99": [candidate_json(c) for c in r.frontier_ttft], "notes": r.notes,
            "hosted_api": [hosted_api_json(o) for o in r.hosted_apis]}


def hosted_api_json(option: HostedApiOption) -> dict:
    """A hosted API cheaper than every fleet search found: a price, no fleet and no latency."""
    q = option.quote
    return {"model": option.model, "hosted_api": True, "provider": q.provider, "usd_month": finite(option.usd_month, 2),
            "api_usd_per_mtok_input": q.input_usd_per_mtok, "api_usd_per_mtok_output": q.output_usd_per_mtok,
            "api_source": q.source() | {"note": q.note}}


def validation_row(r: RowResult) -> dict:
    """One measurement against its prediction (`reason` where none was made)."""
    m = r.row
    err = r.error_pct
    row = {"model": m.model, "gpu": m.gpu, "tp": m.tp, "mode": m.mode, "rate": m.rate, "concurrency": m.concurrency,
           "input_len": m.input_len, "output_len": m.output_len, "metric": m.metric, "measured": m.value,
           "predicted": round(r.predicted, 4) if r.predicted is not None else None,
           "error_pct": round(err, 2) if err is not None else None,
           "abs_error_pct": round(abs(err), 2) if err is not None else None,
           "source": m.source, "engine": m.engine, "load_band": r.load_band if r.predicted is not None else None}
    if r.predicted is None:
        row["reason"] = r.reason
    return row


def validation_json(rows: list[dict], summary: dict, cv: dict | None, unparsed: list, by_source: list[dict]) -> dict:
    """`planner validate --format json`: the rows, their error summary, the error of each source
    (crossval.error_by_source), the cross-validation if run, and the lines that could not be read."""
    extra = {"cross_validation": cv} if cv else {}
    skipped = [{"line": e.line, "column": e.column, "reason": e.message} for e in unparsed]
    return {"rows": rows, **summary, "by_source": by_source, **extra, "unparsed": skipped}


def calibration_data(calibration: Calibration) -> dict:
    """A calibration as `planner calibrate` writes it, knobs to four decimals: the fit is not more
    precise than that, and the file stays readable."""

    def rounded(value):
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return value

    return rounded(calibration.model_dump(exclude_none=True))


def cross_validation_json(held: CrossValidation) -> dict:
    """Errors of rows predicted with knobs fitted without their source, GPU family or model family."""
    from planner.engine.crossval import error_table

    return {"sources": held.sources, "folds": held.folds,
            "leave_one_source_out": error_table(held.by_source, held.base_dir),
            "gpu_family_held_out": error_table(held.by_family, held.base_dir),
            "model_family_held_out": error_table(held.by_model, held.base_dir)}


def catalog_json(kind: str) -> list[dict]:
    """The built-in GPUs or models, with the models' derived sizes and tiers."""
    from planner.engine import catalog

    if kind == "gpus":
        return [g.model_dump() for g in catalog.gpus().values()]
    return [m.model_dump() | {"params_total": m.params_total, "params_active": m.params_active, "tier": m.tier}
            for m in catalog.models().values()]
