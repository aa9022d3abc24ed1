"""Reader for NVIDIA GenAI-Perf (`profile_export_genai_perf.json`) and AIPerf
(`profile_export_aiperf.json`) exports: the same Measurement rows as the CSV reader.

Both write one object per run whose metrics are objects of statistics with a unit, e.g.
"time_to_first_token": {"unit": "ms", "avg": .., "p50": .., "p90": .., "p99": ..}, next to
`request_latency`, `inter_token_latency`, `request_throughput`, `output_token_throughput`,
`input_sequence_length`, `output_sequence_length` and the run's `input_config`
(https://github.com/triton-inference-server/perf_analyzer/blob/main/genai-perf/README.md,
https://github.com/ai-dynamo/aiperf/blob/main/docs/tutorials/working-with-profile-exports.md).
Their inter-token latency is per request, (request latency - TTFT) / (output tokens - 1): the
planner's TPOT, so its percentiles are TPOT percentiles.
"""

from __future__ import annotations

from planner.engine.bench_results import Setup, finite_value, measurement_rows, resolve_setup, run_from_stats, stat_rows
from planner.engine.engines import DEFAULT_ENGINE
from planner.engine.measurements import Measurement, MeasurementsError

FORMAT = "GenAI-Perf / AIPerf profile export JSON"
_LATENCIES = {"time_to_first_token": "ttft", "inter_token_latency": "tpot", "request_latency": "e2e"}
_STATS = {"avg": "mean", "p50": "p50", "p90": "p90", "p99": "p99"}
_THROUGHPUTS = {"request_throughput": "requests_per_s", "output_token_throughput": "output_tok_s"}
_MS = {"ms": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "ns": 1e-6}


def is_profile_export(obj: object) -> bool:
    ttft = obj.get("time_to_first_token") if isinstance(obj, dict) else None
    return isinstance(ttft, dict) and "unit" in ttft and "avg" in ttft


def export_rows(obj: dict, where: str, flags: Setup, default_engine: str = DEFAULT_ENGINE) -> list[Measurement]:
    config = obj.get("input_config") if isinstance(obj.get("input_config"), dict) else {}
    setup = resolve_setup({"model_id": _model_name(config)}, where, flags)
    concurrency, rate = _load(config)
    if concurrency is None and rate is None:
        raise MeasurementsError(f"{where}: this {FORMAT} does not say its concurrency or request rate (input_config)")
    mode = "rate" if rate is not None else "concurrency"
    run = run_from_stats(lambda key, stat: _stat(obj, key, stat), ("input_sequence_length", "output_sequence_length"),
                         "avg", mode, rate, concurrency if mode == "concurrency" else None, f"{where} | {FORMAT}", where)
    return measurement_rows(setup, run, _metrics(obj, mode), where, default_engine)


def _metrics(obj: dict, mode: str) -> list[tuple[str, float]]:
    units = {key: _MS.get(str(obj[key].get("unit", "ms")).lower()) for key in _LATENCIES if isinstance(obj.get(key), dict)}
    latencies = {key: (name, units[key]) for key, name in _LATENCIES.items() if units.get(key) is not None}
    return stat_rows(lambda key, stat: _stat(obj, key, stat), latencies, _STATS, _THROUGHPUTS, mode)


def _stat(obj: dict, key: str, stat: str) -> float | None:
    block = obj.get(key)
    return finite_value(block.get(stat)) if isinstance(block, dict) else None


def _model_name(config: dict) -> str | None:
    for holder, key in ((config, "model"), (config, "model_names"), (config.get("endpoint") or {}, "model_names")):
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str) and value:
            return value
    return None


def _load(config: dict) -> tuple[int | None, float | None]:
    """(concurrency, request rate) from input_config: GenAI-Perf keeps them at its top level or
    under perf_analyzer.stimulus, AIPerf under loadgen."""
    places = [config, config.get("loadgen") or {}, (config.get("perf_analyzer") or {}).get("stimulus") or {}]
    concurrency = rate = None
    for place in places:
        if not isinstance(place, dict):
            continue
        c, r = place.get("concurrency"), finite_value(place.get("request_rate"))
        if isinstance(c, int) and not isinstance(c, bool) and c > 0 and concurrency is None:
            concurrency = c
        if r and rate is None:
            rate = r
    return concurrency, rate
