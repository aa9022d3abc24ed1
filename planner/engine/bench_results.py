"""Reader for `vllm bench serve --save-result` JSON: each result becomes measurement rows, the same
`Measurement` objects the CSV reader makes, so validate and calibrate treat both alike.

A result is one JSON object (several, one per line, with --append-result). Its keys, as written
by vllm/benchmarks/serve.py: `model_id`, `request_rate` (a number or "inf"), `max_concurrency`,
`completed`, `failed`, `duration`, `total_input_tokens`, `total_output_tokens`,
`request_throughput`, `output_throughput`, `total_token_throughput`, and per metric (ttft, tpot,
itl, e2el) `mean_*_ms`, `median_*_ms`, `std_*_ms` and `p<N>_*_ms` for each --metric-percentiles;
with --save-detailed also per-request `input_lens`, `output_lens` and `errors`; and any
--metadata KEY=VALUE pairs as top-level keys. `planner export --to bench` writes `planner_*`
metadata (model, gpu, tp, pp, weights, kv, engine, limits, prefix hit) so its results need no flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from planner.engine import catalog
from planner.engine.engines import DEFAULT_ENGINE, ENGINES
from planner.engine.measurements import Measurement, MeasurementsError, memory_share
from planner.engine.scenario import LOGNORMAL_MAX_P90_RATIO
from planner.engine.specs import KV_PRECISIONS, WEIGHT_PRECISIONS

FORMAT = "vllm bench serve --save-result JSON"
# file metric -> planner metric
_LATENCIES = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2el": "e2e"}
_STATS = (("mean", "mean"), ("median", "p50"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"))
_THROUGHPUTS = {"request_throughput": "requests_per_s", "output_throughput": "output_tok_s",
                "total_token_throughput": "total_tok_s"}


@dataclass(frozen=True)
class Setup:
    """What a result file may not say about the server it measured (from flags or metadata)."""

    model: str | None = None
    gpu: str | None = None
    tp: int | None = None
    pp: int | None = None
    weights: str | None = None
    kv: str | None = None
    engine: str | None = None
    max_seqs: int | None = None
    max_batched_tokens: int | None = None
    prefix_hit: float | None = None
    gpu_mem_util: float | None = None  # the server's memory share (--gpu-memory-utilization)


def is_vllm_bench(obj: object) -> bool:
    """Recognised by content: the summary keys vllm bench serve always writes."""
    return (isinstance(obj, dict) and {"duration", "completed", "request_throughput"} <= obj.keys()
            and any(f"mean_{m}_ms" in obj for m in _LATENCIES))


def result_rows(obj: dict, where: str, flags: Setup, default_engine: str = DEFAULT_ENGINE) -> list[Measurement]:
    """The measurement rows of one result; `where` names it in errors (file, and record if several).
    What the file does not say comes from `flags`; an engine neither says is `default_engine`."""
    setup = resolve_setup(obj, where, flags)
    completed = _count(obj, "completed", where)
    if completed < 1:
        raise MeasurementsError(f"{where}: no request completed, so there is nothing to compare")
    mode, rate, concurrency = _load(obj, where)
    lens_in, lens_out = _lengths(obj)
    mean_in = float(np.mean(lens_in)) if lens_in is not None else _per_request(obj, "total_input_tokens", completed, where)
    mean_out = float(np.mean(lens_out)) if lens_out is not None else _per_request(obj, "total_output_tokens", completed, where)
    in_dist, in_p90 = _dist(lens_in, mean_in)
    out_dist, out_p90 = _dist(lens_out, mean_out)
    failed = obj.get("failed") or 0
    source = f"{where} | {FORMAT}, {obj.get('date', 'undated')}" + (f"; {failed} requests failed" if failed else "")
    # a closed-loop run starts its clients at once: how many requests it sent sizes that burst; a
    # run at an infinite rate sends them all at once, a finite batch (validate lists, not scores it)
    sent = None
    if mode in ("concurrency", "offline"):
        sent = _count(obj, "num_prompts", where) if obj.get("num_prompts") is not None else completed + int(failed)
    run = Run(mode, rate, concurrency, mean_in, mean_out, in_dist, out_dist, in_p90, out_p90, source, sent)
    return measurement_rows(setup, run, _metrics(obj, mode), where, default_engine)


@dataclass(frozen=True)
class Run:
    """How one benchmark run loaded the server, as a measurement row states it."""

    mode: str
    rate: float | None
    concurrency: int | None
    input_len: float
    output_len: float
    input_dist: str
    output_dist: str
    input_p90: float | None
    output_p90: float | None
    source: str
    # requests sent in all: a closed-loop run's start-up burst (startup.py), a finite batch offline
    num_prompts: int | None = None


def run_from_stats(stat, lengths: tuple[str, str], mean: str, mode: str, rate: float | None, concurrency: int | None,
                   source: str, where: str) -> Run:
    """A run whose prompt and output lengths are statistics objects (`stat(key, name)` reads one):
    their mean and p90 give the length distributions."""
    (mean_in, p90_in), (mean_out, p90_out) = ((stat(key, mean), stat(key, "p90")) for key in lengths)
    if not mean_in or not mean_out:
        raise MeasurementsError(f"{where}: needs the {' and '.join(lengths)} {mean}")
    in_dist, in_p90 = length_dist(mean_in, p90_in)
    out_dist, out_p90 = length_dist(mean_out, p90_out)
    return Run(mode, rate, concurrency, mean_in, mean_out, in_dist, out_dist, in_p90, out_p90, source)


def measurement_rows(setup: Setup, run: Run, metrics: list[tuple[str, float]], where: str,
                     default_engine: str = DEFAULT_ENGINE) -> list[Measurement]:
    """One Measurement per metric of a run, the same for every result format."""
    if not metrics:
        raise MeasurementsError(f"{where}: no latency or throughput figure to compare")
    common = dict(model=setup.model, gpu=setup.gpu, tp=setup.tp, pp=setup.pp, weights=setup.weights, kv=setup.kv,
                  max_seqs=setup.max_seqs, max_batched_tokens=setup.max_batched_tokens, prefix_hit=setup.prefix_hit,
                  gpu_mem_util=setup.gpu_mem_util,
                  engine=setup.engine or default_engine, **{f.name: getattr(run, f.name) for f in fields(Run)})
    return [Measurement(metric=metric, value=value, **common) for metric, value in metrics]


def stat_rows(stat, latencies: dict[str, tuple[str, float]], stats: dict[str, str], throughputs: dict[str, str],
              mode: str) -> list[tuple[str, float]]:
    """(metric, value) of a report whose metrics are objects of statistics: `stat(key, name)` reads
    one; `latencies` maps a key to the planner's metric and the factor to milliseconds, `stats` a
    statistic's name to the planner's (the first, the mean, also reads the throughputs)."""
    out = []
    for key, (name, to_ms) in latencies.items():
        for stat_name, pct in stats.items():
            value = stat(key, stat_name)
            if value is not None:
                out.append((f"{name}_ms_{pct}", value * to_ms))
    if mode != "rate":  # under an open-loop rate the throughput is the rate itself: nothing to predict
        mean = next(iter(stats))
        out += [(metric, value) for key, metric in throughputs.items() if (value := stat(key, mean))]
    return out


def _metrics(obj: dict, mode: str) -> list[tuple[str, float]]:
    out: dict[str, float] = {}
    for key, name in _LATENCIES.items():
        for stat, pct in _STATS:
            metric = f"{name}_ms_{pct}"
            value = finite_value(obj.get(f"{stat}_{key}_ms"))
            if value is not None and metric not in out:  # median before p50: both are the same figure
                out[metric] = value
    if mode != "rate":  # under an open-loop rate the throughput is the rate itself: nothing to predict
        for key, metric in _THROUGHPUTS.items():
            value = finite_value(obj.get(key))
            if value is not None and value > 0:
                out[metric] = value
    return list(out.items())


def finite_value(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _count(obj: dict, key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MeasurementsError(f"{where}: {key} must be a whole number of requests, got {value!r}")
    return value


def _per_request(obj: dict, key: str, completed: int, where: str) -> float:
    total = finite_value(obj.get(key))
    if total is None or total <= 0:
        raise MeasurementsError(f"{where}: needs {key} (or per-request lengths from --save-detailed)")
    return total / completed


def _load(obj: dict, where: str) -> tuple[str, float | None, int | None]:
    """(mode, rate, concurrency): an open-loop rate, clients capped by --max-concurrency, or all
    requests at once."""
    raw_rate = obj.get("request_rate", "inf")
    rate = math.inf if raw_rate in ("inf", None) else finite_value(raw_rate)
    if rate is None or rate == 0:
        raise MeasurementsError(f"{where}: request_rate must be a positive number or \"inf\", got {raw_rate!r}")
    cap = obj.get("max_concurrency")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise MeasurementsError(f"{where}: max_concurrency must be a whole number of clients or null, got {cap!r}")
    if math.isfinite(rate):
        return "rate", rate, cap
    return ("concurrency", None, cap) if cap else ("offline", None, None)


def _lengths(obj: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-request prompt and output lengths of the completed requests (--save-detailed)."""
    ins, outs = obj.get("input_lens"), obj.get("output_lens")
    if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs) or not ins:
        return None, None
    errors = obj.get("errors") if isinstance(obj.get("errors"), list) and len(obj["errors"]) == len(ins) else [""] * len(ins)
    keep = [(i, o) for i, o, e in zip(ins, outs, errors)
            if not e and isinstance(i, (int, float)) and isinstance(o, (int, float)) and i > 0 and o > 0]
    if not keep:
        return None, None
    arr = np.asarray(keep, dtype=float)
    return arr[:, 0], arr[:, 1]


def _dist(lens: np.ndarray | None, mean: float) -> tuple[str, float | None]:
    """The length distribution of per-request lengths (see length_dist)."""
    if lens is None or np.ptp(lens) == 0:
        return "fixed", None
    return length_dist(mean, float(np.quantile(lens, 0.9)))


def length_dist(mean: float, p90: float | None) -> tuple[str, float | None]:
    """The length distribution the planner predicts with: fixed when the lengths did not vary (or
    only the mean is known), else a lognormal through the measured mean and p90 (an exponential
    when the p90 is beyond any lognormal's reach)."""
    if p90 is None or p90 <= mean:
        return "fixed", None
    if p90 >= mean * LOGNORMAL_MAX_P90_RATIO:
        return "exponential", None
    return "lognormal", p90


def resolve_setup(obj: dict, where: str, flags: Setup) -> Setup:
    """What the file says (its planner_* metadata, its model id through the catalog), then flags."""
    values = {f.name: _parse_meta(f.name, obj.get(f"planner_{f.name}"), where) for f in fields(Setup)}
    if values["model"] is None:
        values["model"] = catalog_model(obj.get("model_id"))
    for f in fields(Setup):
        if values[f.name] is None:
            values[f.name] = getattr(flags, f.name)
    named = obj.get("model_id")
    needed = (("model", "--model", f"catalog model ({named!r} is not in the catalog)" if named else "model"),
              ("gpu", "--gpu", "GPU"), ("tp", "--tp", "tensor-parallel size"))
    missing = [(flag, what) for name, flag, what in needed if values[name] is None]
    if missing:
        raise MeasurementsError(f"{where}: this result does not say its {' or '.join(w for _, w in missing)}: "
                                f"pass {' and '.join(f for f, _ in missing)}")
    return Setup(**values)


def _parse_meta(name: str, value, where: str):
    """A --metadata value (always text) as the Setup field it fills; a bad one is named."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if name == "gpu_mem_util":
        try:
            return memory_share(text)
        except ValueError as exc:
            raise MeasurementsError(f"{where}: planner_gpu_mem_util {exc}") from None
    try:
        if name in ("tp", "pp", "max_seqs", "max_batched_tokens"):
            number = int(text)
            if number < 1:
                raise ValueError
            return number
        if name == "prefix_hit":
            hit = float(text)
            if not 0 <= hit <= 1:
                raise ValueError
            return hit
    except ValueError:
        raise MeasurementsError(f"{where}: planner_{name} must be a positive number, got {text!r}") from None
    allowed = {"weights": WEIGHT_PRECISIONS, "kv": KV_PRECISIONS, "engine": ENGINES}.get(name)
    if allowed is not None and text not in allowed:
        raise MeasurementsError(f"{where}: planner_{name} {text!r} is not one of {', '.join(allowed)}")
    return text


def catalog_model(model_id) -> str | None:
    """The catalog id of a served model name: a Hugging Face id, or a local path ending in one."""
    if not isinstance(model_id, str) or not model_id.strip():
        return None
    parts = [p for p in model_id.strip().split("/") if p]
    wanted = {catalog.normalize("/".join(parts[-2:])), catalog.normalize(parts[-1])} if parts else set()
    for model in catalog.models().values():  # names only: a model id is never read as a local path here
        if wanted & {catalog.normalize(n) for n in (model.id, *model.aliases, model.hf_id) if n}:
            return model.id
    return None
