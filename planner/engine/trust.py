"""How far a predicted number can be trusted: the cross-validated error band that applies to it,
and whether measurements of its GPU family, model family and engine stand behind it."""

from __future__ import annotations

from planner.engine.knobs import Calibration

# The groups a band gives, as in the JSON contract (`error_pct`).
BAND_GROUPS = ("throughput", "tpot", "ttft", "e2e", "p99")
# Shares of a replica's capacity: errors grow toward capacity, so bands are kept apart.
LOAD_BANDS = ("<50%", "50-80%", ">80%")


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
               engine: str | None = None, gpu_family: str | None = None, model_family: str | None = None) -> dict[str, float]:
    """Median absolute % error to expect, per metric group. Leave-one-source-out figures of the
    operating point's load band, of its model family, and of its engine and GPU family (within its
    model family where that has enough rows of them: one model family's rows can dominate an
    engine's), each where it was measured; the figures of families held out whole where they were
    not; the in-sample figures when the calibration has no cross-validation. Each group takes the
    widest of the bands that apply, so a band never narrows as load rises, and an engine or family
    the model reads worse on says so."""
    cv = calibration.cv_error_pct
    if not cv:
        return dict(calibration.error_pct)
    model_known = checked.get("model_family", True) and model_family is not None

    def own(kind: str, name: str) -> dict[str, float]:
        """An engine's or GPU family's band, group by group within the model family where it has one."""
        inside = cv.get(f"model {model_family} {kind} {name}", {}) if model_known else {}
        return cv.get(f"{kind} {name}", {}) | inside

    candidates = [cv.get("all", {})]
    band = load_band(utilization)
    if band in LOAD_BANDS:
        candidates += [cv.get(b, {}) for b in LOAD_BANDS[: LOAD_BANDS.index(band) + 1]]
    if engine is not None:
        candidates.append(own("engine", engine))
    if not checked["gpu_family"]:
        candidates.append(cv.get("unmeasured", {}))
    elif gpu_family is not None:
        candidates.append(own("gpu", gpu_family))
    if not checked.get("model_family", True):
        candidates.append(cv.get("unmeasured model", {}))
    elif model_family is not None:
        candidates.append(cv.get(f"model {model_family}", {}))
    out: dict[str, float] = {}
    for group in BAND_GROUPS:
        values = [c[group] for c in candidates if c.get(group) is not None]
        if values:
            out[group] = max(values)
    return out
