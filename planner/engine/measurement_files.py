"""Measurements from the files users have: the planner's CSV or benchmark tools' result files,
recognised by their content; one file, several, or a folder of them."""

from __future__ import annotations

import json
from pathlib import Path

from planner.engine.bench_results import FORMAT as VLLM_BENCH
from planner.engine.bench_results import Setup, is_vllm_bench, result_rows
from planner.engine.engines import DEFAULT_ENGINE
from planner.engine.genai_perf_results import FORMAT as PROFILE_EXPORT
from planner.engine.genai_perf_results import export_rows, is_profile_export
from planner.engine.guidellm_results import FORMAT as GUIDELLM
from planner.engine.guidellm_results import is_guidellm_report, report_rows
from planner.engine.measurements import (
    COLUMNS,
    REQUIRED_COLUMNS,
    MeasurementsError,
    MeasurementSet,
    RowError,
    _read_text,
    read_measurements,
)

KNOWN = (f"a measurements CSV (columns {','.join(COLUMNS[:4])},...), a {VLLM_BENCH}, a {GUIDELLM} or a "
         f"{PROFILE_EXPORT}")
SUFFIXES = (".csv", ".json", ".jsonl")


def read_measurement_files(paths: list[Path], default_engine: str = DEFAULT_ENGINE, setup: Setup = Setup()) -> MeasurementSet:
    """Every row of every file (a folder stands for its .csv, .json and .jsonl files). Bad rows of
    a CSV come back as errors beside the good ones; a file that is none of the known formats, or
    a result that does not say what it measured, raises MeasurementsError naming it."""
    files = [f for path in paths for f in _expand(Path(path))]
    rows, errors = [], []
    for file in files:
        data = _read_file(file, default_engine, setup)
        rows.extend(data.rows)
        errors.extend(RowError(e.line, f"{file.name}: {e.column}", e.message) if len(files) > 1 else e for e in data.errors)
    return MeasurementSet(Path(paths[0]) if len(paths) == 1 else Path.cwd(), tuple(rows), tuple(errors))


def _expand(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not found:
        raise MeasurementsError(f"{path}: a folder without {', '.join(SUFFIXES)} files; expected {KNOWN}")
    return found


def _read_file(path: Path, default_engine: str, setup: Setup) -> MeasurementSet:
    text = _read_text(path)
    if text.lstrip()[:1] not in ("{", "["):  # a CSV names its setup on every row: the flags are for results
        header = text.splitlines()[0] if text.strip() else ""
        if not any(column in header for column in REQUIRED_COLUMNS):  # not even a broken measurements CSV
            raise MeasurementsError(f"{path.name}: not a format planner reads; expected {KNOWN}")
        return read_measurements(path, default_engine)
    records = _json_records(text, path)
    rows = []
    for i, record in enumerate(records):
        where = path.name if len(records) == 1 else f"{path.name} record {i + 1}"
        if is_vllm_bench(record):
            rows.extend(result_rows(record, where, setup, default_engine))
        elif is_profile_export(record):
            rows.extend(export_rows(record, where, setup, default_engine))
        elif is_guidellm_report(record):
            rows.extend(report_rows(record, where, setup, default_engine))
        else:
            raise MeasurementsError(f"{where}: not a format planner reads; expected {KNOWN}")
    return MeasurementSet(path, tuple(rows))


def _json_records(text: str, path: Path) -> list:
    """One JSON value (an object, or a list of them), or one object per line (--append-result)."""
    try:
        value = json.loads(text)
        return value if isinstance(value, list) else [value]
    except json.JSONDecodeError as whole:
        records = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise MeasurementsError(f"{path.name}: not valid JSON (line {whole.lineno}: {whole.msg}); "
                                        f"expected {KNOWN}") from None
        return records
