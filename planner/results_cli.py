"""The measurement inputs of `planner validate` and `planner calibrate`: CSVs or benchmark result
files (planner.engine.measurement_files), and the flags that say what a result file does not."""

from __future__ import annotations

from pathlib import Path

from planner.engine.engines import DEFAULT_ENGINE

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")
KV_PRECISIONS = ("bf16", "fp16", "fp8", "int8")
FILES_HELP = ("measurements CSV, `vllm bench serve --save-result` JSON, GuideLLM report or GenAI-Perf / AIPerf profile export, "
              "or a folder of them; several may be given")


def add_result_flags(parser) -> None:
    from planner.cli import positive_int

    group = parser.add_argument_group("benchmark result files", "for what a result file does not say itself")
    group.add_argument("--model", help="catalog id or Hugging Face id of the model served (default: the file's model_id)")
    group.add_argument("--gpu", help="catalog GPU id the benchmark ran on")
    group.add_argument("--tp", type=positive_int, help="tensor-parallel GPUs of the replica benchmarked")
    group.add_argument("--pp", type=positive_int, help="pipeline-parallel stages (default: 1)")
    group.add_argument("--weights", choices=PRECISIONS, help="weight precision (default: the model's dtype)")
    group.add_argument("--kv", choices=KV_PRECISIONS, help="KV-cache precision (default: bf16)")


def read_inputs(paths: list[Path], args):
    """The rows of every file given (the shipped set when none is)."""
    from planner.engine.bench_results import Setup
    from planner.engine.measurement_files import read_measurement_files
    from planner.engine.measurements import packaged_measurements_path

    setup = Setup(model=args.model, gpu=args.gpu, tp=args.tp, pp=args.pp, weights=args.weights, kv=args.kv)
    return read_measurement_files(list(paths) or [packaged_measurements_path()], args.engine or DEFAULT_ENGINE, setup)


def inputs_name(paths: list[Path]) -> str:
    """How the inputs are named in messages and in a calibration's `source`."""
    return " ".join(Path(p).name or str(p) for p in paths)
