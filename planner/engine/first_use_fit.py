"""The cold server's first burst (Knobs.first_use_ms), fitted per engine and GPU family after the
other knobs.

A closed-loop benchmark that starts on a server nobody warmed up meets the engine's first-use
costs in its start-up burst: kernels compiled and autotuned for shapes met for the first time. It
moves the TTFT mean and the p90/p99 that the burst holds, never the median, and nothing in a server
in its steady state; so the knob is fitted on those rows alone, with the other knobs and the model
families' request costs (set from medians) held where the fit put them. The rows' predictions are
linear in the cost (the burst's TTFTs shift by it), so two predictions of them give every trial
value: the robust loss of the knob fit (soft-L1 of the log ratios) is minimised on a grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from planner.engine.catalog import gpu_family_of
from planner.engine.knobs import Calibration, Knobs, upper_median
from planner.engine.measurements import Measurement
from planner.engine.startup import has_startup_burst
from planner.engine.validate import _evaluate_rows, is_finite_run

# the rows a cold start moves: a burst's share of the mean, and the tail it holds
BURST_METRICS = ("ttft_ms_mean", "ttft_ms_p90", "ttft_ms_p99")
PROBE_MS = 1000.0  # the second prediction, from which each row's slope is read
MIN_ROWS = 3  # rows that move with the cost, per engine and family, for a fit of their own
MOVES = 0.01  # a row moves when a second of first-use cost changes its prediction by 1% or more
MAX_MS = 20_000.0  # above InferenceX's worst cold bursts but one (a 72 s p99 on B200)
GRID_MS = np.concatenate([np.arange(0.0, 2000.0, 10.0), np.arange(2000.0, MAX_MS + 1.0, 50.0)])
SOFT_L1_SCALE = 0.03  # as fit.SOFT_L1_SCALE: quadratic within ~3%, linear beyond


def burst_rows(rows: tuple[Measurement, ...]) -> tuple[Measurement, ...]:
    """TTFT mean and tail rows of closed-loop runs with a start-up burst (more than one client and
    a known number of prompts), the only rows whose prediction the cost reaches."""
    return tuple(m for m in rows if m.mode == "concurrency" and has_startup_burst(m.concurrency, m.num_prompts)
                 and m.metric in BURST_METRICS and m.value > 0 and not is_finite_run(m))


def with_first_use(calibration: Calibration, ms: float) -> Calibration:
    """The calibration with every knob set's first-use cost at `ms`."""
    def at(k: Knobs) -> Knobs:
        return k.scaled(first_use_ms=ms)
    return calibration.model_copy(update={
        "default": at(calibration.default),
        "families": {f: at(k) for f, k in calibration.families.items()},
        "engines": {e: {f: at(k) for f, k in fs.items()} for e, fs in calibration.engines.items()},
    })


def best_cost_ms(base: np.ndarray, slope: np.ndarray, measured: np.ndarray) -> float:
    """The grid value whose predictions `base + slope * cost` fit `measured` best (soft-L1 of the
    log ratios, summed)."""
    pred = base[None, :] + GRID_MS[:, None] * slope[None, :]
    x = np.log(pred / measured[None, :]) / SOFT_L1_SCALE
    loss = (2.0 * (np.sqrt(1.0 + x * x) - 1.0)).sum(axis=1)
    return float(GRID_MS[int(np.argmin(loss))])


def fit_first_use(rows: tuple[Measurement, ...], calibration: Calibration, base_dir: Path,
                  skipped: dict[str, str], families: set[str] | None = None) -> Calibration:
    """`calibration` with first-use costs fitted to the burst rows, in `families` (every GPU family
    when None; the others are left as they are): per engine and GPU family where MIN_ROWS of its
    rows move with it, and per family over every engine for the pooled knobs. A pair whose rows do
    not identify it takes the engine's median over the pairs that do (the upper of two), as the
    engine's other host-software costs do; a pair or family nothing identifies keeps its value."""
    refit = set(calibration.families) if families is None else set(families)
    found = burst_rows(rows)
    fitted_pairs: dict[tuple[str, str], float] = {}
    pooled: dict[str, float] = {}
    if found:
        base = _predictions(found, with_first_use(calibration, 0.0), base_dir)
        probe = _predictions(found, with_first_use(calibration, PROBE_MS), base_dir)
        slope = (probe - base) / PROBE_MS
        measured = np.array([m.value for m in found], dtype=float)
        moving = np.isfinite(base) & np.isfinite(slope) & (slope * 1000.0 >= MOVES * base)
        family = np.array([gpu_family_of(m.gpu) for m in found])
        engine = np.array([m.engine for m in found])

        def fit(mask: np.ndarray) -> float | None:
            mask = mask & moving
            if int(mask.sum()) < MIN_ROWS:
                return None
            return best_cost_ms(base[mask], slope[mask], measured[mask])

        fitted_pairs = {(e, f): v for e, fs in calibration.engines.items() for f in fs
                        if f in refit and (v := fit((engine == e) & (family == f))) is not None}
        pooled = {f: v for f in refit if (v := fit(family == f)) is not None}
    by_engine = {e: upper_median([v for (pe, _), v in fitted_pairs.items() if pe == e]) for e in calibration.engines}
    engines = {e: dict(fs) for e, fs in calibration.engines.items()}
    for e, fs in calibration.engines.items():
        for f, k in fs.items():
            if f not in refit:
                continue
            value = fitted_pairs.get((e, f), by_engine[e])
            if (e, f) not in fitted_pairs:
                took = f"set to {e}'s median over its families, {value:g}" if value is not None else f"kept {k.first_use_ms:g}"
                skipped[f"{e} {f} first_use_ms"] = (f"fewer than {MIN_ROWS} TTFT mean or tail rows of closed-loop runs "
                                                    f"with a known number of prompts; {took}")
            if value is not None:
                engines[e][f] = k.scaled(first_use_ms=value)
    families_out = {f: k.scaled(first_use_ms=pooled[f]) if f in pooled else k for f, k in calibration.families.items()}
    return calibration.model_copy(update={"families": families_out, "engines": engines})


def _predictions(rows: tuple[Measurement, ...], calibration: Calibration, base_dir: Path) -> np.ndarray:
    results = _evaluate_rows(rows, calibration, base_dir, {}, saturated=False)
    return np.array([r.predicted if r.predicted else np.nan for r in results], dtype=float)
