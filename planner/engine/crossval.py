"""Cross-validation by source: how far the planner's numbers can be trusted on measurements it
was not fitted to.

A source is one publication's rows of one engine in one mode (a table, a benchmark sweep); one URL
can hold several (TensorRT-LLM's performance overview has an offline table and a Poisson-rate sweep
measured with another version at another precision). Sources are dealt into folds, and each fold's
rows are predicted with knobs fitted on the other folds only, so no source ever informs its own
prediction. With as many folds as sources this is leave-one-source-out; fewer folds hold more out at
once (less to fit on, so the errors are if anything pessimistic) and take a fraction of the time:
each fold is a full calibration. Each GPU family is also held out whole, the figure for a GPU nobody
measured: its rows are predicted with the knobs an unmeasured family gets. Model families are held
out whole the same way, in folds, for a model nobody measured: its rows are predicted with knobs
fitted on the other models' rows only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from planner.engine.catalog import gpu_family_of
from planner.engine.fit import calibrate, model_family_of
from planner.engine.knobs import Calibration
from planner.engine.measurements import Measurement, MeasurementSet
from planner.engine.trust import FINITE_RUNS, LOAD_BANDS
from planner.engine.validate import METRIC_GROUPS, RowResult, _evaluate_rows

# Each fold costs a full calibration (minutes on two cores); five keep a run to a quarter hour.
DEFAULT_FOLDS = 5
# Model families held out whole, dealt into three folds: each holds out a third of the rows.
MODEL_FOLDS = 3


@dataclass
class CrossValidation:
    by_source: list[RowResult]  # every row, predicted without its own source
    by_family: list[RowResult]  # every row, predicted as if its GPU family were unmeasured ([] if not asked)
    sources: int
    families: list[str]
    folds: int = 0
    by_model: list[RowResult] = field(default_factory=list)  # every row, predicted without its model family ([] if not asked)
    base_dir: Path = Path(".")  # where the rows' model config paths are read from


def source_of(m: Measurement) -> tuple[str, str, str]:
    return (m.url, m.engine, m.mode)


def fold_of_sources(rows: list[Measurement], folds: int, key: Callable[[Measurement], object] = source_of) -> dict:
    """Sources (or the groups `key` names) dealt into `folds` folds of similar row counts: largest
    first, each to the fold with the fewest rows so far (deterministic, so a figure can be
    reproduced). `folds` 0 (or as many as the groups) puts each group in a fold of its own."""
    sizes: dict = {}
    for m in rows:
        sizes[key(m)] = sizes.get(key(m), 0) + 1
    load = [0] * max(1, len(sizes) if folds <= 0 else min(folds, len(sizes)))
    fold: dict = {}
    for group, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        i = load.index(min(load))
        fold[group] = i
        load[i] += n
    return fold


def _held_out(data: MeasurementSet, start: Calibration, parallel: bool | None, key: Callable[[Measurement], object],
              folds: int, what: str, progress: Callable[[str], None] | None) -> tuple[list[RowResult], int, int]:
    """Every row predicted with knobs fitted without its fold: the groups `key` names dealt into
    `folds` folds. Returns the results in row order, the number of groups and of folds."""
    rows = list(data.rows)
    family_of = [gpu_family_of(m.gpu) for m in rows]
    fold = fold_of_sources(rows, folds, key)
    held: list[RowResult | None] = [None] * len(rows)
    n_folds = max(fold.values(), default=-1) + 1
    for k in range(n_folds):
        idx = [i for i, m in enumerate(rows) if fold[key(m)] == k]
        if progress:
            progress(f"fold {k + 1}/{n_folds}: {sum(1 for v in fold.values() if v == k)} {what}, {len(idx)} rows")
        mine = set(idx)
        touched = {family_of[i] for i in idx if family_of[i]}
        train = replace(data, rows=tuple(m for i, m in enumerate(rows) if i not in mine), errors=())
        fitted, _, _ = calibrate(train, start, parallel, families_only=touched)
        for i, r in zip(idx, _evaluate_rows([rows[i] for i in idx], fitted, data.path.parent, {})):
            held[i] = r
    return [r for r in held if r is not None], len(fold), n_folds


def cross_validate(data: MeasurementSet, start: Calibration | None = None, parallel: bool | None = None,
                   progress: Callable[[str], None] | None = None, held_out_families: bool = True,
                   folds: int | None = DEFAULT_FOLDS, fitted_on_all: Calibration | None = None,
                   held_out_models: bool = False, model_folds: int = MODEL_FOLDS) -> CrossValidation:
    """Predict each fold's rows with knobs fitted without it (from `start`, the uncalibrated
    defaults unless given), each GPU family's rows with knobs fitted without that family
    (`fitted_on_all`: the calibration fitted on every row from `start`, when the caller has it),
    and with `held_out_models` each model family's rows with knobs fitted without that family.
    `folds` None deals the sources into the default five; 0 gives each source a fold of its own."""
    start = start or Calibration()
    base_dir = data.path.parent
    rows = list(data.rows)
    family_of = [gpu_family_of(m.gpu) for m in rows]
    folds = DEFAULT_FOLDS if folds is None else folds  # 0: one source per fold
    by_source, n_sources, n_folds = _held_out(data, start, parallel, source_of, folds, "sources", progress)
    by_model: list[RowResult] = []
    if held_out_models:
        models = {id(m): model_family_of(m, base_dir) for m in rows}
        say = (lambda s: progress(f"model families held out, {s}")) if progress else None
        by_model = _held_out(data, start, parallel, lambda m: models[id(m)], model_folds, "model families", say)[0]
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
    return CrossValidation(by_source, by_family, n_sources, families, n_folds, by_model, base_dir)


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 1) if values else None


def error_table(results: list[RowResult], base_dir: Path | None = None,
                within_models: bool = False) -> dict[str, dict[str, float | None]]:
    """Median absolute % error per metric group: overall, by load band, by engine, by GPU family
    and by model family; with the row counts under `n`. `within_models` adds each load band, engine
    and GPU family within each model family (`model llama load <50%`, `model llama engine sglang`).
    Runs of N prompts sent at once have their own line (`finite runs`) and stay out of the others:
    the bands a plan shows are for a server in its steady state."""
    finite = [r for r in results if r.load_band == FINITE_RUNS]
    results = [r for r in results if r.load_band != FINITE_RUNS]

    def groups(pick, rows: list[RowResult] = results) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for group, metrics in METRIC_GROUPS.items():
            errs = [abs(r.error_pct) for r in rows if r.error_pct is not None and r.row.metric in metrics and pick(r)]
            if errs:
                out[group] = _median(errs)
                out[f"{group}_n"] = len(errs)
        return out

    family_of = {id(r): gpu_family_of(r.row.gpu) for r in results}
    model_of = {id(r): model_family_of(r.row, base_dir or Path.cwd()) for r in results}
    table = {"all": groups(lambda r: True)}
    for band in LOAD_BANDS:
        table[f"load {band}"] = groups(lambda r, b=band: r.load_band == b)
    for engine in sorted({r.row.engine for r in results}):
        table[f"engine {engine}"] = groups(lambda r, e=engine: r.row.engine == e)
    for family in sorted({f for f in family_of.values() if f}):
        table[f"gpu {family}"] = groups(lambda r, f=family: family_of[id(r)] == f)
    for family in sorted({f for f in model_of.values() if f}):
        table[f"model {family}"] = groups(lambda r, f=family: model_of[id(r)] == f)
        if within_models:
            for band in LOAD_BANDS:
                table[f"model {family} load {band}"] = groups(
                    lambda r, f=family, b=band: model_of[id(r)] == f and r.load_band == b)
            mine = [r for r in results if model_of[id(r)] == family]
            for engine in sorted({r.row.engine for r in mine}):
                table[f"model {family} engine {engine}"] = groups(
                    lambda r, f=family, e=engine: model_of[id(r)] == f and r.row.engine == e)
            for gpu in sorted({family_of[id(r)] for r in mine if family_of[id(r)]}):
                table[f"model {family} gpu {gpu}"] = groups(
                    lambda r, f=family, g=gpu: model_of[id(r)] == f and family_of[id(r)] == g)
    table[FINITE_RUNS] = groups(lambda r: True, finite)
    return {k: v for k, v in table.items() if v}


def error_by_source(results: list[RowResult]) -> list[dict]:
    """Per source (source_of: what cross-validation holds out at once; for result files, one file),
    its rows, how many were scored, the median absolute % error of its scored rows, their median
    signed error (`bias_pct`: + where the planner reads high) and the median absolute error per
    metric group. Runs of N prompts count with their source's other rows: the question is how far
    the planner agrees with one publication, or one of the user's own benchmark files. Worst first,
    so the source that disagrees most leads."""
    by: dict[tuple[str, str, str], list[RowResult]] = {}
    for r in results:
        by.setdefault(source_of(r.row), []).append(r)
    out = []
    for (url, engine, mode), rows in by.items():
        scored = [(r.row.metric, r.error_pct) for r in rows if r.error_pct is not None]
        errors = [e for _, e in scored]
        groups = {g: _median([abs(e) for metric, e in scored if metric in metrics])
                  for g, metrics in METRIC_GROUPS.items()}
        out.append({"source": url, "engine": engine, "mode": mode, "rows": len(rows), "scored": len(scored),
                    "median_ape": _median([abs(e) for e in errors]), "bias_pct": _median(errors),
                    "groups": {g: v for g, v in groups.items() if v is not None}})
    return sorted(out, key=lambda s: (s["median_ape"] is None, -(s["median_ape"] or 0.0), s["source"], s["engine"], s["mode"]))


# An engine's, a GPU family's or a model family's own band needs this many held-out rows in a group: the median of a
# handful is noise, and the overall and load-band figures stand in for it.
MIN_BAND_ROWS = 8


def error_bands(cv: CrossValidation) -> dict[str, dict[str, float]]:
    """What a plan shows: the cross-validated median error per metric group, overall (`all`), by
    load band, by engine (`engine sglang`), GPU family (`gpu hopper`) and model family
    (`model deepseek_v3`), and by load band, engine and GPU family within a model family (`model
    llama engine sglang`: one model family's rows can dominate an engine's or a load band's), each
    where enough rows were held out; for a GPU family without measurements (`unmeasured`) and for a
    model family without them (`unmeasured model`)."""
    def medians(row: dict) -> dict[str, float]:
        return {k: v for k, v in row.items() if not k.endswith("_n") and v is not None}

    def counted(row: dict) -> dict[str, float]:
        return {k: v for k, v in medians(row).items() if (row.get(f"{k}_n") or 0) >= MIN_BAND_ROWS}

    loso = error_table(cv.by_source, cv.base_dir, within_models=True)
    bands = {"all": medians(loso.get("all", {}))}
    for band in LOAD_BANDS:
        if f"load {band}" in loso:
            bands[band] = medians(loso[f"load {band}"])
    for key, row in loso.items():
        if key.startswith(("engine ", "gpu ", "model ")) and (own := counted(row)):
            bands[key] = own
    if FINITE_RUNS in loso:
        bands[FINITE_RUNS] = medians(loso[FINITE_RUNS])
    held = error_table(cv.by_family, cv.base_dir)
    if "all" in held:
        bands["unmeasured"] = medians(held["all"])
    held_models = error_table(cv.by_model, cv.base_dir)
    if "all" in held_models:
        bands["unmeasured model"] = medians(held_models["all"])
    return bands
