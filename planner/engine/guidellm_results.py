"""Reader for GuideLLM benchmark reports (`guidellm benchmark --output-path report.json`): one row
set per benchmark of the report, the same Measurement rows as the CSV reader.

A report holds `benchmarks`, each with its scheduling strategy and `metrics`, where every metric
keeps statistics of the successful requests: {"successful": {"mean", "median", "percentiles":
{"p50", "p90", "p99", ...}}} (https://github.com/vllm-project/guidellm, docs/metrics.md).
`time_to_first_token_ms` is TTFT; `inter_token_latency_ms`, the time per token after the first,
is the planner's TPOT (GuideLLM's own `time_per_output_token_ms` spreads the TTFT over every token);
`request_latency` is end-to-end, in seconds. Strategies: synchronous (one request at a time),
concurrent (N streams), throughput (all at once), poisson and constant (a rate; constant spacing is
predicted as Poisson arrivals, which queue more).
"""

from __future__ import annotations

from functools import partial

from planner.engine.bench_results import Setup, finite_value, measurement_rows, resolve_setup, run_from_stats, stat_rows
from planner.engine.engines import DEFAULT_ENGINE
from planner.engine.measurements import Measurement, MeasurementsError

FORMAT = "GuideLLM benchmark report JSON"
# metric key -> (planner metric, factor to milliseconds)
_LATENCIES = {"time_to_first_token_ms": ("ttft", 1.0), "inter_token_latency_ms": ("tpot", 1.0),
              "request_latency": ("e2e", 1e3)}
_STATS = {"mean": "mean", "p50": "p50", "p90": "p90", "p99": "p99"}
_THROUGHPUTS = {"requests_per_second": "requests_per_s", "output_tokens_per_second": "output_tok_s"}


def is_guidellm_report(obj: object) -> bool:
    benches = obj.get("benchmarks") if isinstance(obj, dict) else None
    return (isinstance(benches, list) and bool(benches) and isinstance(benches[0], dict)
            and "time_to_first_token_ms" in (benches[0].get("metrics") or {}))


def report_rows(obj: dict, where: str, flags: Setup, default_engine: str = DEFAULT_ENGINE) -> list[Measurement]:
    rows = []
    for i, bench in enumerate(obj["benchmarks"]):
        place = f"{where} benchmark {i + 1}"
        if not isinstance(bench, dict) or not isinstance(bench.get("metrics"), dict):
            raise MeasurementsError(f"{place}: has no metrics")
        setup = resolve_setup({"model_id": _model(obj, bench)}, place, flags)
        mode, rate, concurrency, note = _strategy(bench, place)
        metrics = bench["metrics"]
        run = run_from_stats(partial(_stat, metrics), ("prompt_token_count", "output_token_count"),
                             "mean", mode, rate, concurrency, f"{where} | {FORMAT}{note}", place)
        stats = stat_rows(partial(_stat, metrics), _LATENCIES, _STATS, _THROUGHPUTS, mode)
        rows += measurement_rows(setup, run, stats, place, default_engine)
    return rows


def _stat(metrics: dict, key: str, stat: str) -> float | None:
    """A statistic of the successful requests; p50 falls back to the median."""
    summary = (metrics.get(key) or {}).get("successful") if isinstance(metrics.get(key), dict) else None
    if not isinstance(summary, dict):
        return None
    percentiles = summary.get("percentiles") if isinstance(summary.get("percentiles"), dict) else {}
    if stat in ("mean", "median"):
        return finite_value(summary.get(stat))
    value = finite_value(percentiles.get(stat, summary.get(stat)))
    return value if value is not None or stat != "p50" else finite_value(summary.get("median"))


def _model(report: dict, bench: dict) -> str | None:
    for holder, key in ((bench.get("worker"), "backend_model"), (bench.get("config"), "model"),
                        (bench.get("args"), "model"), (report.get("args"), "model")):
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key]:
            return holder[key]
    return None


def _strategy(bench: dict, where: str) -> tuple[str, float | None, int | None, str]:
    """(mode, rate, concurrency, source note) from the benchmark's scheduling strategy."""
    strategy = None
    for holder in (bench.get("args"), bench.get("config"), bench.get("scheduler"), bench):
        if isinstance(holder, dict) and isinstance(holder.get("strategy"), dict):
            strategy = holder["strategy"]
            break
    kind = str((strategy or {}).get("type_") or (strategy or {}).get("type") or "")
    if kind == "synchronous":
        return "concurrency", None, 1, ""
    if kind == "concurrent":
        streams = (strategy or {}).get("streams")
        if isinstance(streams, int) and streams > 0:
            return "concurrency", None, streams, ""
    if kind == "throughput":
        return "offline", None, None, ""
    if kind in ("poisson", "constant", "async"):
        rate = finite_value((strategy or {}).get("rate"))
        if rate:
            note = "; constant-interval arrivals, predicted as Poisson" if kind == "constant" else ""
            return "rate", rate, None, note
    raise MeasurementsError(f"{where}: a strategy planner cannot model ({kind or 'none given'}); it reads "
                            f"synchronous, concurrent, throughput, poisson and constant benchmarks")
