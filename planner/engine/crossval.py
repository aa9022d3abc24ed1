"""Cross-validation by source: how far the planner's numbers can be trusted on measurements it
was not fitted to.

A source is one publication's rows of one engine in one mode (a table, a benchmark sweep); one URL
can hold several (TensorRT-LLM's performance overview has an offline table and a Poisson-rate sweep
measured with another version at another precision). Sources are dealt into folds, and each fold's
rows are predicted with knobs fitted on the other folds only, so no source ever informs its own
prediction. With as many folds as sources this is leave-one-source-out; fewer folds hold more out at
once (less to fit on, so the errors are if anything pessimistic) and take a fraction of the time:
each fold is a full calibration. Each GPU family is also held out whole, the figure for a GPU nobody
measured: its rows are predicted with the knobs an unmeasured family gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from planner.engine import catalog
from planner.engine.fit import calibrate
from planner.engine.knobs import Calibration
from planner.engine.measurements import Measurement, MeasurementSet
from planner.engine.trust import LOAD_BANDS
from planner.engine.validate import METRIC_GROUPS, RowResult, _evaluate_rows

# Each fold costs a full calibration (minutes on two cores); five keep a run to a quarter hour.
DEFAULT_FOLDS = 5


@dataclass
class CrossValidation:
    by_source: list[RowResult]  # every row, predicted without its own source
    by_family: list[RowResult]  # every row, predicted as if its GPU family were unmeasured ([] if not asked)
    sources: int
    families: list[str]
    folds: int = 0


def source_of(m: Measurement) -> tuple[str, str, str]:
    return (m.url, m.engine, m.mode)


def _family(gpu_id: str) -> str | None:
    try:
        return catalog.get_gpu(gpu_id).family
    except ValueError:
        return None


def fold_of_sources(rows: list[Measurement], folds: int) -> dict[tuple[str, str, str], int]:
    """Sources dealt into `folds` folds of similar row counts: largest first, each to the fold with
    the fewest rows so far (deterministic, so a figure can be reproduced)."""
    sizes: dict[tuple[str, str, str], int] = {}
    for m in rows:
        sizes[source_of(m)] = sizes.get(source_of(m), 0) + 1
    load = [0] * max(1, min(folds, len(sizes)))
    fold: dict[tuple[str, str, str], int] = {}
    for key, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        i = load.index(min(load))
        fold[key] = i
        load[i] += n
    return fold


def cross_validate(data: MeasurementSet, start: Calibration | None = None, parallel: bool | None = None,
                   progress: Callable[[str], None] | None = None, held_out_families: bool = True,
                   folds: int = DEFAULT_FOLDS, fitted_on_all: Calibration | None = None) -> CrossValidation:
    """Predict each fold's rows with knobs fitted without it (from `start`, the uncalibrated
    defaults unless given), and each GPU family's rows with knobs fitted without that family
    (`fitted_on_all`: the calibration fitted on every row from `start`, when the caller has it)."""
    start = start or Calibration()
    base_dir = data.path.parent
    rows = list(data.rows)
    family_of = [_family(m.gpu) for m in rows]
    fold = fold_of_sources(rows, folds)
    held: list[RowResult | None] = [None] * len(rows)
    n_folds = max(fold.values(), default=-1) + 1
    for k in range(n_folds):
        idx = [i for i, m in enumerate(rows) if fold[source_of(m)] == k]
        if progress:
            progress(f"fold {k + 1}/{n_folds}: {sum(1 for v in fold.values() if v == k)} sources, {len(idx)} rows")
        mine = set(idx)
        touched = {family_of[i] for i in idx if family_of[i]}
        train = replace(data, rows=tuple(m for i, m in enumerate(rows) if i not in mine), errors=())
        fitted, _, _ = calibrate(train, start, parallel, families_only=touched)
        for i, r in zip(idx, _evaluate_rows([rows[i] for i in idx], fitted, base_dir, {})):
            held[i] = r
    families = sorted({f for f in family_of if f})
    by_family: list[RowResult] = []
    if held_out_families:
        # the pooled fit of every family once; then each family's rows with the others' knobs only
        if progress and fitted_on_all is None:
            progress("fitting every family on every row, for the families held out whole")
        full = fitted_on_all or calibrate(replace(data, errors=()), start, parallel)[0]
        by_row: dict[int, RowResult] = {}
        for family in families:
            if progress:
                progress(f"GPU family {family} held out")
            idx = [i for i, f in enumerate(family_of) if f == family]
            others = full.model_copy(update={
                "families": {f: k for f, k in full.families.items() if f != family},
                "engines": {e: {f: k for f, k in fs.items() if f != family} for e, fs in full.engines.items()}})
            by_row.update(zip(idx, _evaluate_rows([rows[i] for i in idx], others, base_dir, {})))
        # rows on GPUs outside the catalog come back unpredicted, with the reason
        rest = [i for i in range(len(rows)) if i not in by_row]
        by_row.update(zip(rest, _evaluate_rows([rows[i] for i in rest], start, base_dir, {})))
        by_family = [by_row[i] for i in range(len(rows))]
    return CrossValidation([r for r in held if r is not None], by_family, len(fold), families, n_folds)


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 1) if values else None


def error_table(results: list[RowResult]) -> dict[str, dict[str, float | None]]:
    """Median absolute % error per metric group: overall, by load band, by engine and by GPU
    family; with the row counts under `n`."""
    def groups(pick) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for group, metrics in METRIC_GROUPS.items():
            errs = [abs(r.error_pct) for r in results if r.error_pct is not None and r.row.metric in metrics and pick(r)]
            if errs:
                out[group] = _median(errs)
                out[f"{group}_n"] = len(errs)
        return out

    family_of = {id(r): _family(r.row.gpu) for r in results}
    table = {"all": groups(lambda r: True)}
    for band in LOAD_BANDS:
        table[f"load {band}"] = groups(lambda r, b=band: r.load_band == b)
    for engine in sorted({r.row.engine for r in results}):
        table[f"engine {engine}"] = groups(lambda r, e=engine: r.row.engine == e)
    for family in sorted({f for f in family_of.values() if f}):
        table[f"gpu {family}"] = groups(lambda r, f=family: family_of[id(r)] == f)
    return {k: v for k, v in table.items() if v}


# An engine's or a GPU family's own band needs this many held-out rows in a group: the median of a
# handful is noise, and the overall and load-band figures stand in for it.
MIN_BAND_ROWS = 8


def error_bands(cv: CrossValidation) -> dict[str, dict[str, float]]:
    """What a plan shows: the cross-validated median error per metric group, overall (`all`), by
    load band, by engine (`engine sglang`) and GPU family (`gpu hopper`) where enough rows were
    held out, and for a GPU family without measurements (`unmeasured`)."""
    def medians(row: dict) -> dict[str, float]:
        return {k: v for k, v in row.items() if not k.endswith("_n") and v is not None}

    def counted(row: dict) -> dict[str, float]:
        return {k: v for k, v in medians(row).items() if (row.get(f"{k}_n") or 0) >= MIN_BAND_ROWS}

    loso = error_table(cv.by_source)
    bands = {"all": medians(loso.get("all", {}))}
    for band in LOAD_BANDS:
        if f"load {band}" in loso:
            bands[band] = medians(loso[f"load {band}"])
    for key, row in loso.items():
        if key.startswith(("engine ", "gpu ")) and (own := counted(row)):
            bands[key] = own
    held = error_table(cv.by_family)
    if "all" in held:
        bands["unmeasured"] = medians(held["all"])
    return bands
