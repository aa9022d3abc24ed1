"""Reader for published LLM-serving measurements in the planner's CSV contract.

One metric per row. Columns, in order (users' scripts depend on them):

    model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,
    max_seqs,max_batched_tokens,prefix_hit,metric,value,source,engine,
    input_dist,output_dist,input_p90,output_p90,num_prompts,gpu_mem_util

Conventions:
* `mode` is `offline` (all requests queued at once), `rate` (open loop, Poisson arrivals at
  `rate` req/s) or `concurrency` (closed loop with `concurrency` clients; a static batch of N is
  concurrency N).
* `rate`, `requests_per_s`, `output_tok_s` and `total_tok_s` are for ONE replica (one TP x PP
  group), never per GPU and never for a whole multi-replica system.
* `input_len` / `output_len` are tokens per request (means when the source's lengths vary).
* `source` is a URL, optionally followed by " | note" describing a unit conversion.
* `engine` is `vllm`, `sglang` or `trtllm`; a file without the column, or an empty cell, means vLLM
  (the default of `predict`).
* `input_dist` / `output_dist` are `fixed` (every request the mean; the default), `exponential` or
  `lognormal` (with `input_p90` / `output_p90`, above the mean), so that a benchmark with varied
  lengths is predicted as it ran.
* `num_prompts` is how many requests a closed-loop benchmark sent in all (`--num-prompts`). Its
  clients all start at once, so the first `concurrency` prompts arrive as one burst: with it the
  planner predicts that start-up wave too, which sets the tail of a short run's TTFT (a p99 of
  fewer than 100 requests is the run's slowest one or two: listed, not scored). On an
  offline row it marks a run of that many prompts sent at once (`vllm bench serve` at an infinite
  rate): such a run ends in a drain the steady-state model does not give, so validation lists the
  row with that reason and does not score it.
* `gpu_mem_util` is the memory share the server was started with where the run set one (vLLM's
  `--gpu-memory-utilization`, SGLang's `--mem-fraction-static`, TensorRT-LLM's
  `free_gpu_memory_fraction`), between 0.05 and 0.99: it sets how many sequences the KV cache holds.
* Empty optional cells (pp, rate, concurrency, max_seqs, max_batched_tokens, prefix_hit, weights,
  kv, gpu_mem_util) take the same defaults as `planner predict`: the model's dtype for weights, bf16
  KV (fp16 for fp16 models), the engine's limits, a memory share of 0.9.

Bad rows do not abort the read: they come back as `RowError`s next to the good rows, so a user's
file with one typo still calibrates. A file that is not a CSV of this shape raises
`MeasurementsError` with one line saying why.
"""

from __future__ import annotations

import csv
import io
import math
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from planner.engine.engines import DEFAULT_ENGINE, ENGINES
from planner.engine.inputs import printable
from planner.engine.scenario import MEM_UTIL_CEILING, MEM_UTIL_FLOOR, LengthDist
from planner.engine.specs import KV_PRECISIONS, WEIGHT_PRECISIONS

COLUMNS: tuple[str, ...] = (
    "model", "gpu", "tp", "pp", "weights", "kv", "mode", "rate", "concurrency", "input_len",
    "output_len", "max_seqs", "max_batched_tokens", "prefix_hit", "metric", "value", "source", "engine",
    "input_dist", "output_dist", "input_p90", "output_p90", "num_prompts", "gpu_mem_util",
)
# Columns a file may leave out of its header entirely; every other column must be present.
OPTIONAL_COLUMNS = frozenset({"pp", "weights", "kv", "rate", "concurrency", "max_seqs", "max_batched_tokens", "prefix_hit",
                              "source", "engine", "input_dist", "output_dist", "input_p90", "output_p90",
                              "num_prompts", "gpu_mem_util"})
LENGTH_KINDS: tuple[str, ...] = ("fixed", "exponential", "lognormal")
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in OPTIONAL_COLUMNS)

MODES: tuple[str, ...] = ("offline", "concurrency", "rate")
METRICS: tuple[str, ...] = (
    "ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99",
    "tpot_ms_mean", "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p99",
    "itl_ms_mean", "itl_ms_p50", "itl_ms_p90", "itl_ms_p99",
    "e2e_ms_mean", "e2e_ms_p50", "e2e_ms_p90", "e2e_ms_p99",
    "output_tok_s", "total_tok_s", "requests_per_s",
)

# Sniff this many bytes for NULs: csv would otherwise report binary junk as missing columns.
_SNIFF_BYTES = 8192
_BREAK = re.compile(r"\r\n|\r|\n")
# The shipped set is ~0.2 MB; a file this big (~90k rows) is the wrong file (and calibrating
# on it would take hours), so it is refused before it is read.
MAX_MEASUREMENTS_BYTES = 16 * 1024 * 1024


class MeasurementsError(ValueError):
    """The file as a whole cannot be read as a measurements CSV."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1-based line in the file; the header is line 1
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class Measurement:
    """One published number and the setup it was measured under."""

    model: str
    gpu: str
    tp: int
    pp: int | None
    weights: str | None
    kv: str | None
    mode: str
    rate: float | None
    concurrency: int | None
    input_len: float
    output_len: float
    max_seqs: int | None
    max_batched_tokens: int | None
    prefix_hit: float | None
    metric: str
    value: float
    source: str
    engine: str = DEFAULT_ENGINE
    input_dist: str = "fixed"
    output_dist: str = "fixed"
    input_p90: float | None = None
    output_p90: float | None = None
    num_prompts: int | None = None
    gpu_mem_util: float | None = None

    @property
    def url(self) -> str:
        """The source URL without the conversion note."""
        return self.source.split(" | ", 1)[0].strip()


@dataclass(frozen=True)
class MeasurementSet:
    path: Path
    rows: tuple[Measurement, ...]
    errors: tuple[RowError, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Measurement]:
        return iter(self.rows)

    def where(self, **equals: object) -> MeasurementSet:
        """Rows whose fields equal the given values, e.g. where(metric="ttft_ms_mean", gpu="h100-sxm")."""
        rows = tuple(r for r in self.rows if all(getattr(r, k) == v for k, v in equals.items()))
        return MeasurementSet(self.path, rows, self.errors)

    def column(self, name: str) -> np.ndarray:
        """One numeric field as a float array (None -> nan), for vectorised error statistics."""
        return np.array([math.nan if (v := getattr(r, name)) is None else v for r in self.rows], dtype=float)


def packaged_measurements_path() -> Path:
    """The calibration set shipped in planner/data (a plain file in every supported install)."""
    return Path(str(resources.files("planner") / "data" / "measurements.csv"))


# --- cell parsers: each returns the value or raises ValueError with a user-facing message ---

def _number(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {text!r}")
    if x < 0:
        raise ValueError(f"must not be negative: {text}")
    return x


def _integer(text: str) -> int:
    x = _number(text)
    if x != int(x):
        raise ValueError(f"not a whole number: {text!r}")
    return int(x)


def _positive(parse: Callable[[str], float]) -> Callable[[str], float]:
    def check(text: str) -> float:
        x = parse(text)
        if x <= 0:
            raise ValueError(f"must be above zero: {text}")
        return x
    return check


def _fraction(text: str) -> float:
    x = _number(text)
    if x > 1:
        raise ValueError(f"must be a fraction between 0 and 1: {text}")
    return x


def memory_share(text: str) -> float:
    """A server's memory share (gpu_mem_util) as text states it: a CSV cell, a result's metadata,
    predict's --gpu-mem-util."""
    x = _number(text)
    if not MEM_UTIL_FLOOR < x <= MEM_UTIL_CEILING:
        raise ValueError(f"must be a memory share above {MEM_UTIL_FLOOR} and at most {MEM_UTIL_CEILING}, got {text}")
    return x


def _choice(allowed: tuple[str, ...] | list[str]) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"unknown value {text!r}; expected one of {', '.join(allowed)}")
        return text
    return check


def _text(text: str) -> str:
    return printable(text)  # model, gpu and source are shown in tables and messages


# column -> (parser, required). Required cells may not be empty.
_CELLS: dict[str, tuple[Callable[[str], object], bool]] = {
    "model": (_text, True),
    "gpu": (_text, True),
    "tp": (_positive(_integer), True),
    "pp": (_positive(_integer), False),
    "weights": (_choice(WEIGHT_PRECISIONS), False),
    "kv": (_choice(KV_PRECISIONS), False),
    "mode": (_choice(MODES), True),
    "rate": (_positive(_number), False),
    "concurrency": (_positive(_integer), False),
    "input_len": (_positive(_number), True),
    "output_len": (_positive(_number), True),
    "max_seqs": (_positive(_integer), False),
    "max_batched_tokens": (_positive(_integer), False),
    "prefix_hit": (_fraction, False),
    "metric": (_choice(METRICS), True),
    "value": (_number, True),
    "source": (_text, False),
    "engine": (_choice(ENGINES), False),
    "input_dist": (_choice(LENGTH_KINDS), False),
    "output_dist": (_choice(LENGTH_KINDS), False),
    "input_p90": (_positive(_number), False),
    "output_p90": (_positive(_number), False),
    "num_prompts": (_positive(_integer), False),
    "gpu_mem_util": (memory_share, False),
}


def _parse_row(raw: dict[str, str | None], line: int,
               default_engine: str = DEFAULT_ENGINE) -> tuple[Measurement | None, list[RowError]]:
    values: dict[str, object] = {}
    errors: list[RowError] = []
    for column in COLUMNS:
        parse, required = _CELLS[column]
        text = (raw.get(column) or "").strip()
        if not text:
            values[column] = None if not required else ""
            if required:
                errors.append(RowError(line, column, "missing value"))
            continue
        try:
            values[column] = parse(text)
        except ValueError as exc:
            errors.append(RowError(line, column, str(exc)))
    # The mode says which load parameter the row needs.
    if values.get("mode") == "rate" and values.get("rate") is None and not _has_error(errors, "rate"):
        errors.append(RowError(line, "rate", "rate mode needs a rate (req/s)"))
    if values.get("mode") == "concurrency" and values.get("concurrency") is None and not _has_error(errors, "concurrency"):
        errors.append(RowError(line, "concurrency", "concurrency mode needs a concurrency (clients)"))
    for side in ("input", "output"):
        if not _has_error(errors, f"{side}_len") and not _has_error(errors, f"{side}_p90"):
            problem = _length_problem(values.get(f"{side}_dist") or "fixed", values.get(f"{side}_len"), values.get(f"{side}_p90"))
            if problem:
                errors.append(RowError(line, f"{side}_p90", problem))
    if errors:
        return None, errors
    values["source"] = values["source"] or ""
    values["input_dist"] = values["input_dist"] or "fixed"
    values["output_dist"] = values["output_dist"] or "fixed"
    values["engine"] = values["engine"] or default_engine
    return Measurement(**values), []  # type: ignore[arg-type]


def _length_problem(kind: str, mean: object, p90: object) -> str:
    """What is wrong with a row's length distribution, in the words of `predict` ('' if nothing)."""
    if kind != "lognormal" or not isinstance(mean, float):
        return ""  # a p90 beside fixed or exponential lengths is ignored, as by predict
    if p90 is None:
        return "lognormal lengths need a p90 (the 90th-percentile length)"
    try:
        LengthDist(kind="lognormal", mean=mean, p90=p90)
    except ValueError as exc:
        return str(exc).split("Value error, ")[-1].split("\n")[0]
    return ""


def _line_breaks(raw: dict) -> int:
    cells = [v for v in raw.values() if isinstance(v, str)] + [x for v in raw.values() if isinstance(v, list) for x in v]
    return sum(len(_BREAK.findall(cell)) for cell in cells)


def _has_error(errors: list[RowError], column: str) -> bool:
    return any(e.column == column for e in errors)


def _read_text(path: Path) -> str:
    """The file's text, or MeasurementsError with one clear line."""
    name = path.name or str(path)
    try:
        # stat first: opening a FIFO blocks until a writer comes, and /dev/zero never ends
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise MeasurementsError(f"{name}: is a directory, expected a measurements CSV file")
        if not stat.S_ISREG(info.st_mode):
            raise MeasurementsError(f"{name}: not a regular file, expected a measurements CSV file")
        if info.st_size > MAX_MEASUREMENTS_BYTES:
            raise MeasurementsError(f"{name}: over {MAX_MEASUREMENTS_BYTES // 2**20} MiB, expected a measurements CSV file")
        with path.open("rb") as f:
            data = f.read(MAX_MEASUREMENTS_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise MeasurementsError(f"{name}: cannot read file ({exc.strerror or exc})") from None
    if len(data) > MAX_MEASUREMENTS_BYTES:
        raise MeasurementsError(f"{name}: over {MAX_MEASUREMENTS_BYTES // 2**20} MiB, expected a measurements CSV file")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise MeasurementsError(f"{name}: binary file, expected a UTF-8 CSV text file")
    try:
        return data.decode("utf-8-sig")  # tolerate the BOM spreadsheet exports add
    except UnicodeDecodeError as exc:
        raise MeasurementsError(f"{name}: not UTF-8 text (byte {exc.start}), expected a CSV file") from None


def read_measurements(path: Path | str, default_engine: str = DEFAULT_ENGINE) -> MeasurementSet:
    """Parse a measurements CSV. Row problems are collected, file problems raise. Rows without an
    engine are `default_engine`'s."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        return _parse(path, reader, default_engine)
    except csv.Error as exc:  # e.g. a cell over csv's field size limit (128 KiB)
        line = reader.line_num + 1  # the lines read whole so far, then the one that failed
        raise MeasurementsError(f"{path.name}: line {line}: not a measurements CSV: {exc}") from None


def _parse(path: Path, reader: csv.DictReader, default_engine: str = DEFAULT_ENGINE) -> MeasurementSet:
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise MeasurementsError(
            f"{path.name}: missing columns {', '.join(missing)}; expected {','.join(COLUMNS)}"
        )
    reader.fieldnames = header  # stripped names, so " value" still maps to value
    rows: list[Measurement] = []
    errors: list[RowError] = []
    last = reader.line_num
    for raw in reader:
        # line_num is the record's last line; a quoted cell may hold line breaks
        start, last = max(reader.line_num - _line_breaks(raw), last + 1), reader.line_num
        if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
            continue  # blank line
        row, row_errors = _parse_row(raw, start, default_engine)
        if row is not None:
            rows.append(row)
        errors.extend(row_errors)
    return MeasurementSet(path, tuple(rows), tuple(errors))
