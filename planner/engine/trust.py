"""How far a predicted number can be trusted: the cross-validated error band that applies to it,
and whether measurements of its GPU family, model family and engine stand behind it."""

from __future__ import annotations

from planner.engine.knobs import Calibration

# The groups a band gives, as in the JSON contract (`error_pct`).
BAND_GROUPS = ("throughput", "tpot", "ttft", "e2e", "p99")
# Shares of a replica's capacity: errors grow toward capacity, so bands are kept apart.
LOAD_BANDS = ("<50%", "50-80%", ">80%")
FINITE_RUNS = "finite runs"  # the band of runs of N prompts sent at once


def load_band(utilization: float | None) -> str:
    """The load band of an operating point, as cross-validation splits its rows ('all' unknown)."""
    if utilization is None:
        return "all"
    return LOAD_BANDS[0] if utilization < 0.5 else LOAD_BANDS[1] if utilization <= 0.8 else LOAD_BANDS[2]


def validated(calibration: Calibration, gpu_family: str, model_family: str, engine: str) -> dict[str, bool]:
    measured = calibration.measured(gpu_family, engine)
    models_ok = not calibration.validated_models or model_family in calibration.validated_models
    return {"gpu_family": measured["gpu_family"], "model_family": models_ok, "engine": measured["engine"]}


def error_band(calibration: Calibration, checked: dict[str, bool], utilization: float | None,
               engine: str | None = None, gpu_family: str | None = None, model_family: str | None = None,
               finite_run: bool = False) -> dict[str, float]:
    """Median absolute % error to expect, per metric group. Leave-one-source-out figures overall,
    of the operating point's load band and those below it, of its engine and of its GPU family, each
    read within its model family where that has enough held-out rows of them (one model family's
    rows can dominate an engine's, a load band's or the overall figure); the figures of families
    held out whole where a GPU or model family was not measured; the in-sample figures when the
    calibration has no cross-validation. Each group takes the widest of the bands that apply, so a
    band never narrows as load rises, and an engine or family the model reads worse on says so. A
    run of N prompts sent at once (`finite_run`) adds the figures of such runs."""
    cv = calibration.cv_error_pct
    if not cv:
        return dict(calibration.error_pct)
    model_known = checked.get("model_family", True) and model_family is not None

    def own(key: str, inside_key: str) -> dict[str, float]:
        """A band, group by group within the model family where that has its own figure."""
        inside = cv.get(f"model {model_family}{inside_key}", {}) if model_known else {}
        return cv.get(key, {}) | inside

    candidates = [own("all", "")]
    band = load_band(utilization)
    if band in LOAD_BANDS:
        candidates += [own(b, f" load {b}") for b in LOAD_BANDS[: LOAD_BANDS.index(band) + 1]]
    if engine is not None:
        candidates.append(own(f"engine {engine}", f" engine {engine}"))
    if not checked["gpu_family"]:
        candidates.append(cv.get("unmeasured", {}))
    elif gpu_family is not None:
        candidates.append(own(f"gpu {gpu_family}", f" gpu {gpu_family}"))
    if not checked.get("model_family", True):
        candidates.append(cv.get("unmeasured model", {}))
    if finite_run:
        candidates.append(cv.get(FINITE_RUNS, {}))
    out: dict[str, float] = {}
    for group in BAND_GROUPS:
        values = [c[group] for c in candidates if c.get(group) is not None]
        if values:
            out[group] = max(values)
    return out
