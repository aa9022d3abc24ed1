"""Command line: `planner [PROFILE]` opens the TUI; subcommands give the same numbers to scripts.

Nothing here imports Textual except the TUI launcher, so scripted calls stay fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from planner.engine.engines import ENGINES
from planner.output import (
    OutputFailed,
    check_target,
    emit,
    finish,
    silence_stdout,
    stdout,
    stdout_failure,
    to_stdout,
    write_result,
)
from planner.results_cli import FILES_HELP, inputs_name

COMMANDS = ("predict", "plan", "catalog", "search", "validate", "calibrate", "export")

ENGINE_DEFAULTS = (
    "Unset limits take the engine's defaults. vLLM V1 (vllm/engine/arg_utils.py get_batch_defaults): max_num_seqs "
    "1024 and max_num_batched_tokens 8192 on GPUs with >= 70 GiB that are not A100, else 256 and 2048. SGLang "
    "(server_args.py): chunked_prefill_size 2048 under 35 GiB, 8192 under 160 GiB, 16384 above; 2048 running "
    "requests. TensorRT-LLM (trtllm-serve): max_batch_size 2048, max_num_tokens 8192. All: "
    "gpu_memory_utilization 0.9; chunked prefill on; KV blocks of 16 tokens."
)


# One rule for every command (README "Exit status"); scripts branch on it.
EXIT_OK = 0  # the result was made and every tier (row) meets its targets
EXIT_FAILED = 1  # the run failed: the result could not be written, or an internal error
EXIT_USAGE = 2  # the command line or an input file was refused; nothing was computed or written
EXIT_SHORT = 3  # the result was made, but some tier misses its targets, is infeasible or unstable
EXIT_STATUS = (
    "exit status: 0 = done, and every tier or row meets its targets; 3 = done, but some tier misses its "
    "targets, is infeasible or unstable (predict: the replica does not fit or is unstable; search: a tier "
    "has no fleet that meets them; validate and calibrate: some rows could not be read or used); "
    "1 = failed (the result could not be written, standard output closed, internal error); 2 = refused "
    "(bad command line or input file; nothing written)."
)


class UsageError(ValueError):
    """Bad command-line input, reported as one line."""


def outcome(all_met: bool) -> int:
    return EXIT_OK if all_met else EXIT_SHORT


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fold_count(text: str) -> int:
    """--folds: a number of folds (2 or more), or `all` for one fold per source (0)."""
    if text.strip().lower() == "all":
        return 0
    try:
        value = positive_int(text)
    except argparse.ArgumentTypeError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a number of folds, at least 2, or 'all'; got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def mem_fraction(text: str) -> float:
    """--gpu-mem-util, read as a measurements file's memory share is (the range a profile takes too)."""
    from planner.engine.measurements import memory_share

    try:
        return memory_share(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        epilog = kwargs.pop("epilog", None)
        kwargs["epilog"] = f"{epilog}\n\n{EXIT_STATUS}" if epilog else EXIT_STATUS
        super().__init__(*args, formatter_class=Paragraphs, **kwargs)

    def error(self, message: str):  # one line, exit 2, no usage dump
        raise UsageError(message)


class Paragraphs(argparse.HelpFormatter):
    """Help text refilled per paragraph: the epilog's engine defaults and exit status stay apart."""

    def _fill_text(self, text, width, indent):
        return "\n\n".join(super(Paragraphs, self)._fill_text(p, width, indent) for p in text.split("\n\n"))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="planner", description="Capacity planner for serving large language models.")
    sub = parser.add_subparsers(dest="command")
    _predict_parser(sub)
    plan = sub.add_parser("plan", help="size a fleet for a profile's load and targets, per tier")
    plan.add_argument("profile", type=Path)
    plan.add_argument("--format", choices=("table", "json", "toml"), default="table")
    plan.add_argument("-o", "--output", type=Path, help="write to this file (atomically; --format json or toml; - for stdout)")
    plan.add_argument("--force", action="store_true", help="overwrite an output file that exists (regular files only)")
    _engine_flag(plan, "the serving engine (default: the profile's fleet.engine)")
    srch = sub.add_parser("search", help="cheapest fleets meeting the profile's targets, and the cost-latency frontier")
    srch.add_argument("profile", type=Path)
    srch.add_argument("--tier", choices=("small", "medium", "large", "all"), default="all")
    srch.add_argument("--top", type=positive_int, default=5)
    srch.add_argument("--gpus", help="comma-separated GPU ids (default: the whole catalog and the profile's [[gpu]]s)")
    srch.add_argument("--all-models", action="store_true", help="every catalog model of the tier, not just the profile's")
    srch.add_argument("--format", choices=("table", "json"), default="table")
    _engine_flag(srch, "the serving engine (default: the profile's fleet.engine)")
    val = sub.add_parser("validate", help="compare predictions with a measurements CSV")
    val.add_argument("measurements", type=Path, nargs="*", default=(), help=f"{FILES_HELP} (default: the shipped set)")
    knobs = val.add_mutually_exclusive_group()  # one set of knobs scores the rows
    knobs.add_argument("--calibration", type=Path, help="calibration TOML to evaluate (default: the shipped one)")
    knobs.add_argument("--uncalibrated", action="store_true", help="use the default knobs, not the shipped calibration")
    val.add_argument("--format", choices=("table", "json"), default="table")
    _engine_flag(val, "engine of the rows whose engine cell is empty (default: vllm)")
    val.add_argument("--cross-validate", action="store_true",
                     help="predict each source's rows with knobs fitted without that source (refits per source: minutes)")
    _folds_flag(val)
    _result_flags(val)
    cal = sub.add_parser("calibrate", help="fit the model's knobs to a measurements CSV")
    cal.add_argument("measurements", type=Path, nargs="+", help=FILES_HELP)
    cal.add_argument("-o", "--output", type=Path, required=True,
                     help="calibration TOML to write (atomically; - for stdout, the report then goes to stderr)")
    cal.add_argument("--force", action="store_true", help="overwrite the output file (regular files only)")
    _engine_flag(cal, "engine of the rows whose engine cell is empty (default: vllm)")
    cal.add_argument("--cross-validate", action="store_true",
                     help="also record leave-one-source-out error bands in the calibration (minutes)")
    _folds_flag(cal)
    cal.add_argument("--from-defaults", action="store_true",
                     help="start from the published default knobs, not the shipped calibration (as cross-validation does)")
    _result_flags(cal)
    _export_parser(sub)
    cat = sub.add_parser("catalog", help="list the GPUs or models the planner knows")
    cat.add_argument("kind", choices=("gpus", "models"))
    cat.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def _folds_flag(parser) -> None:
    parser.add_argument("--folds", type=fold_count, metavar="N|all",
                        help="with --cross-validate: sources dealt into N folds (default 5; each fold is one refit), "
                             "or `all` for one source per fold, leave-one-source-out proper (40 minutes on the shipped set)")


def _check_folds(args) -> None:
    """--folds alone would do nothing (it says how --cross-validate holds sources out): refused."""
    if args.folds is not None and not args.cross_validate:
        raise UsageError("--folds needs --cross-validate (it says how the sources are held out)")


def _engine_flag(parser, help_text: str) -> None:
    parser.add_argument("--engine", choices=ENGINES, help=help_text)


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="performance of one replica under one workload", epilog=ENGINE_DEFAULTS)
    p.add_argument("--model", required=True, help="catalog id or path to a Hugging Face config.json (or its folder)")
    p.add_argument("--gpu", required=True, help="catalog id or alias")
    p.add_argument("--tp", type=positive_int, help="tensor-parallel degree (default: the smallest that fits)")
    p.add_argument("--pp", type=positive_int, default=1)
    p.add_argument("--weights", choices=("bf16", "fp16", "fp8", "int8", "int4", "fp4"), help="default: the model's dtype")
    p.add_argument("--kv", choices=("bf16", "fp16", "fp8", "int8"), help="default: bf16 (fp16 for fp16 models)")
    p.add_argument("--input-len", type=positive_float, required=True, help="prompt tokens (mean)")
    p.add_argument("--output-len", type=positive_float, required=True, help="output tokens (mean)")
    p.add_argument("--input-dist", choices=("fixed", "lognormal", "exponential"), default="fixed")
    p.add_argument("--output-dist", choices=("fixed", "lognormal", "exponential"), default="fixed")
    p.add_argument("--input-p90", type=positive_float, help="p90 of a lognormal prompt length (with --input-dist lognormal)")
    p.add_argument("--output-p90", type=positive_float, help="p90 of a lognormal output length (with --output-dist lognormal)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--offline", action="store_true", help="all requests queued: maximum throughput")
    mode.add_argument("--concurrency", type=positive_int, help="closed loop with N clients")
    mode.add_argument("--rate", type=float, help="open loop: Poisson arrivals, requests/s (>= 0)")
    p.add_argument("--num-prompts", type=positive_int,
                   help="a benchmark run of N requests (vllm bench serve --num-prompts): with --offline all sent at "
                        "once and simulated to the last; with --concurrency the clients' start-up burst included; "
                        "with --rate past the replica's capacity simulated to the last (below it, the steady state)")
    p.add_argument("--engine", choices=ENGINES, default="vllm",
                   help="serving engine: its default limits and calibration (default: vllm)")
    p.add_argument("--max-seqs", type=positive_int, help="running-sequence cap (vLLM max_num_seqs)")
    p.add_argument("--max-batched-tokens", type=positive_int, help="chunked-prefill token budget (max_num_batched_tokens)")
    p.add_argument("--no-chunked-prefill", action="store_true", help="whole-prompt prefill steps (vLLM V0 style)")
    p.add_argument("--gpu-mem-util", type=mem_fraction, default=0.9,
                   help="share of GPU memory for weights, activations and KV cache (vLLM gpu_memory_utilization, "
                        "SGLang mem_fraction_static); on TensorRT-LLM the KV cache's share of the memory the model "
                        "leaves free (free_gpu_memory_fraction)")
    p.add_argument("--prefix-hit", type=fraction, default=0.0, help="share of prompt tokens served from the prefix cache")
    p.add_argument("--spec-k", type=int, default=0, help="speculative decoding draft length")
    # unset: ServingConfig's defaults; given without --spec-k they would change nothing, so they are refused
    p.add_argument("--spec-accept", type=fraction, help="per-token acceptance rate (with --spec-k)")
    p.add_argument("--spec-draft-ratio", type=fraction, help="draft step cost / target step cost (with --spec-k)")
    p.add_argument("--prune", type=fraction, default=0.0, help="fraction of parameters removed by structured pruning")
    p.add_argument("--sparsity-2-4", action="store_true", help="2:4 structured sparsity on sparse tensor cores")
    p.add_argument("--calibration", type=Path, help="calibration TOML written by `planner calibrate`")
    p.add_argument("--format", choices=("table", "json"), default="table")


# ---------------------------------------------------------------------------------------------


def _length(mean: float, dist: str, p90: float | None, which: str):
    """A length distribution; a rejected one names the options, not the schema's fields."""
    from pydantic import ValidationError

    from planner.engine.scenario import LengthDist

    if p90 is not None and dist != "lognormal":  # only a lognormal has a p90 to set: it would be ignored
        raise UsageError(f"--{which}-p90 needs --{which}-dist lognormal (got --{which}-dist {dist})")
    try:
        return LengthDist(kind=dist, mean=mean, p90=p90 if dist == "lognormal" else None)
    except ValidationError as exc:
        options = {"mean": f"--{which}-len", "p90": f"--{which}-p90"}
        problems = []
        for err in exc.errors():
            field = err["loc"][0] if err["loc"] else None
            problems.append(f"{options.get(field, f'--{which}-dist {dist}')}: {err['msg'].removeprefix('Value error, ')}")
        raise UsageError("; ".join(problems)) from None


def cmd_predict(args) -> int:
    from planner.engine import catalog
    from planner.engine.predict import PredictRequest, predict
    from planner.engine.roofline import ServingConfig
    from planner.engine.serving import Workload
    from planner.report import prediction_json
    from planner.service import load_calibration

    if args.rate is not None and (not math.isfinite(args.rate) or args.rate < 0):
        raise UsageError(f"--rate must be a finite number >= 0, got {args.rate}")
    if args.spec_k < 0 or args.spec_k > 16:
        raise UsageError(f"--spec-k must be from 0 to 16, got {args.spec_k}")
    spec = {"spec_accept": args.spec_accept, "spec_draft_ratio": args.spec_draft_ratio}
    for name, value in spec.items():
        if value is not None and args.spec_k == 0:
            raise UsageError(f"--{name.replace('_', '-')} needs --spec-k (speculative decoding is off without a draft length)")
    if not args.model.strip():  # an empty path would read ./config.json
        raise UsageError("--model must not be empty")
    model = catalog.get_model(args.model)
    gpu = catalog.get_gpu(args.gpu)
    weights = args.weights or model.dtype
    kv = args.kv or ("fp16" if model.dtype == "fp16" else "bf16")
    cfg = ServingConfig(
        tp=args.tp or 1, pp=args.pp, weights=weights, kv=kv, max_num_seqs=args.max_seqs,
        max_num_batched_tokens=args.max_batched_tokens, chunked_prefill=not args.no_chunked_prefill,
        gpu_mem_util=args.gpu_mem_util, prefix_hit=args.prefix_hit, spec_k=args.spec_k,
        **{k: v for k, v in spec.items() if v is not None}, prune_fraction=args.prune,
        sparsity_2_4=args.sparsity_2_4, engine=args.engine,
    )
    mode = "offline" if args.offline else "concurrency" if args.concurrency else "rate"
    req = PredictRequest(
        model=model, gpu=gpu, config=cfg, input_len=_length(args.input_len, args.input_dist, args.input_p90, "input"),
        output_len=_length(args.output_len, args.output_dist, args.output_p90, "output"), mode=mode,
        concurrency=args.concurrency or 0, rate_rps=args.rate or 0.0, tp_auto=args.tp is None,
        num_prompts=args.num_prompts,
    )
    _check_unchunked_budget(cfg, req.input_len)
    calibration = load_calibration(args.calibration) if args.calibration else None
    pred = predict(req, calibration)
    wl = Workload(req.input_len, req.output_len)
    data = prediction_json(pred, wl.mean_in, wl.mean_out)
    if args.format == "json":
        emit(json.dumps(data, indent=2, allow_nan=False))
    else:
        from planner.tables import prediction_table

        _print(prediction_table(data))
    return outcome(pred.fits and data.get("stable", False))


def _check_unchunked_budget(cfg, input_len) -> None:
    from planner.engine.scenario import unchunked_budget_shortfall

    need = unchunked_budget_shortfall(cfg.max_num_batched_tokens, cfg.chunked_prefill, input_len)
    if need is not None:
        raise UsageError(f"--max-batched-tokens {cfg.max_num_batched_tokens} is below the p99 prompt of --input-len "
                         f"({need:,} tokens): with --no-chunked-prefill each prompt is prefilled in one step, and "
                         f"the engine refuses a budget that cannot hold it; give at least {need}")


def cmd_plan(args) -> int:
    from planner import service
    from planner.profile import profile_to_dict
    from planner.report import plan_export, plan_json

    if args.output and not to_stdout(args.output) and args.format == "table":
        raise UsageError("-o needs --format json or toml (the table is for the terminal)")
    check_target(args.output, args.force, may_replace=args.profile)
    inputs = resolve_profile(args.profile, args.engine)
    prof = inputs.profile
    plan = service.plan(inputs)
    if args.format == "json":
        text = json.dumps(plan_json(plan), indent=2, allow_nan=False) + "\n"
    elif args.format == "toml":
        import tomli_w

        text = tomli_w.dumps(plan_export(plan, profile_to_dict(prof)))
    else:
        from planner.tables import plan_table

        _print(plan_table(plan_json(plan), prof.name))
        text = None
    if text is not None:
        write_result(args.output, text)
    return outcome(all(t.meets_slo for t in plan.tiers))


def resolve_profile(path: Path, engine: str | None = None, tiers=("small", "medium", "large"), fleet: bool = True):
    """The profile at `path` resolved as the app resolves it (service.resolve); `engine` in place of
    its fleet.engine. An unknown id is reported with the file and the key that names it."""
    from planner.profile import load_profile
    from planner.service import ComputeError, resolve

    profile = load_profile(path).profile
    try:
        return resolve(profile, Path(path).resolve().parent, engine, tiers, fleet)
    except ComputeError as exc:
        if exc.field:
            raise UsageError(f"{path}: {exc.field}: {exc}") from None
        raise


def cmd_catalog(args) -> int:
    from planner.report import catalog_json

    rows = catalog_json(args.kind)
    if args.format == "json":
        emit(json.dumps(rows, indent=2, allow_nan=False))
    else:
        from planner.tables import catalog_table

        _print(catalog_table(args.kind, rows))
    return 0


def _print(renderable, to_stderr: bool = False) -> None:
    """A rich table or text on standard output (or stderr); a closed or full output is an error."""
    from rich.console import Console

    try:
        Console(file=sys.stderr if to_stderr else stdout()).print(renderable)
    except OSError as exc:
        raise stdout_failure(exc) from None


def run_tui(profile_path: str | None) -> int:
    try:
        from planner.tui.app import run
    except ImportError:
        return summary(profile_path)
    return run(profile_path)


def summary(profile_path: str | None) -> int:
    """Print the default (or given) profile's plan as a table."""
    from planner import service
    from planner.profile import default_profile
    from planner.report import plan_json
    from planner.tables import plan_table

    inputs = resolve_profile(Path(profile_path)) if profile_path else service.resolve(default_profile(), Path.cwd())
    plan = service.plan(inputs)
    _print(plan_table(plan_json(plan), inputs.profile.name))
    return outcome(all(t.meets_slo for t in plan.tiers))


def cmd_search(args) -> int:
    from planner import service
    from planner.report import search_json

    tiers = ["small", "medium", "large"] if args.tier == "all" else [args.tier]
    gpu_ids = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus is not None else None
    if gpu_ids == []:  # not every GPU: that is what leaving --gpus out means
        raise UsageError(f"--gpus names no GPU id: {args.gpus!r}")
    inputs = resolve_profile(args.profile, args.engine, [] if args.all_models else tiers, fleet=False)
    results = service.search(inputs, tiers, gpu_ids, args.top, args.all_models)
    data = [search_json(r) for r in results]
    if args.format == "json":
        emit(json.dumps({"tiers": data}, indent=2, allow_nan=False))
    else:
        from planner.tables import search_tables

        for table in search_tables(data):
            _print(table)
    return outcome(all(r.ranked for r in results))


def _measurements(args):
    from planner.results_cli import read_inputs

    return read_inputs(args.measurements, args)


def cmd_validate(args) -> int:
    from planner.engine.crossval import error_by_source
    from planner.engine.knobs import Calibration, shipped_calibration
    from planner.engine.validate import evaluate_rows, summarize
    from planner.report import cross_validation_json, validation_json, validation_row
    from planner.service import load_calibration

    _check_folds(args)
    data = _measurements(args)
    if args.uncalibrated:
        calibration = Calibration()
    else:
        calibration = load_calibration(args.calibration) if args.calibration else shipped_calibration()
    cv = None
    if args.cross_validate:
        from planner.engine.crossval import cross_validate

        progress = None if args.format == "json" else (lambda s: print(s, file=sys.stderr, flush=True))
        held = cross_validate(data, Calibration(), progress=progress, held_out_models=True, folds=args.folds)
        results = held.by_source
        cv = cross_validation_json(held)
    else:
        results = evaluate_rows(data, calibration)
    report = summarize(results)
    rows = [validation_row(r) for r in results]
    sources = error_by_source(results)
    if args.format == "json":
        emit(json.dumps(validation_json(rows, report, cv, data.errors, sources), indent=2, allow_nan=False))
    else:
        from planner.tables import cross_validation_tables, validation_tables

        for table in validation_tables(rows, report, [str(e) for e in data.errors], sources):
            _print(table)
        if cv:
            for table in cross_validation_tables(cv):
                _print(table)
    return outcome(not data.errors and all(r.predicted is not None for r in results))


def cmd_calibrate(args) -> int:
    import time

    import tomli_w

    from planner.engine.fit import MIN_ROWS_PER_FAMILY, calibrate, knobs_at_bounds
    from planner.engine.knobs import Calibration, shipped_calibration
    from planner.engine.validate import evaluate_rows, group_errors, summarize, validated_families
    from planner.report import calibration_data, cross_validation_json

    _check_folds(args)
    check_target(args.output, args.force)
    # with -o - the calibration is standard output, and the report goes to stderr beside it
    to_stderr = to_stdout(args.output)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if to_stderr else emit
    data = _measurements(args)
    started = time.perf_counter()
    # from the shipped knobs: the families the file does not measure keep them, and "before" is
    # what the user's plans use today
    start = Calibration() if args.from_defaults else shipped_calibration()
    before = summarize(evaluate_rows(data, start))
    fitted, skipped, fits = calibrate(data, start)
    if not fits:  # one line, as every error: what each family had, and what was not read
        why = [f"{what} {reason.split(';')[0]}" for what, reason in skipped.items()]
        if data.errors:
            lines = len({e.line for e in data.errors})
            why.append(f"{lines} row{'s' if lines != 1 else ''} not parsed ({data.errors[0]})")
        raise UsageError(f"{inputs_name(args.measurements)}: no GPU family has the {MIN_ROWS_PER_FAMILY} rows with a mean metric "
                         f"that a fit needs ({'; '.join(why) or 'no rows'}); nothing written")
    for error in data.errors:
        say(f"row not parsed: {error}")
    results = evaluate_rows(data, fitted)
    after = summarize(results)
    gpu_families, model_families = validated_families(results, args.measurements[0].resolve().parent)
    engines = sorted({r.row.engine for r in results if r.error_pct is not None})
    fitted = fitted.model_copy(update={"source": f"planner calibrate {inputs_name(args.measurements)}",
                                       "error_pct": group_errors(results), "validated_families": gpu_families,
                                       "validated_models": model_families, "validated_engines": engines})
    for fit in fits:
        say(f"{fit.family}: {fit.rows} rows, loss {fit.loss_before:.3f} -> {fit.loss_after:.3f} "
            f"({fit.predictions} predictions of the rows)")
    for family, cost_ms in fitted.model_request_ms.items():
        say(f"{family}: its own per-request cost, {cost_ms:g} ms, added to its TTFT on every engine and GPU "
            "(what its TTFT rows at light load lack under the engines' knobs)")
    refitted = {fit.family for fit in fits}  # the pooled fits are named by their family
    for engine, by_family in fitted.engines.items():
        for family, knobs in by_family.items():
            if family in refitted and f"{engine} {family} first_use_ms" not in skipped:
                say(f"{engine} {family}: a cold server's start-up burst waits {knobs.first_use_ms:g} ms for first use "
                    "(runs of a given number of prompts only, never a server in its steady state)")
    if args.cross_validate:
        from planner.engine.crossval import cross_validate, error_bands
        from planner.tables import cross_validation_tables

        say("cross-validating: sources dealt into folds, each fold predicted with knobs fitted without it")
        held = cross_validate(data, Calibration(), progress=lambda s: say(f"  {s}"),
                              fitted_on_all=fitted if args.from_defaults else None, held_out_models=True,
                              folds=args.folds)
        fitted = fitted.model_copy(update={"cv_error_pct": error_bands(held)})
        for table in cross_validation_tables(cross_validation_json(held)):
            _print(table, to_stderr)
    write_result(args.output, tomli_w.dumps(calibration_data(fitted)))
    say(f"fitted {len(fits)} GPU families on {len(data.rows)} rows in {time.perf_counter() - started:.1f} s: "
          f"median error {before['overall']['median_ape']}% -> {after['overall']['median_ape']}%")
    for metric, stats in after["summary"].items():
        was = before["summary"].get(metric, {}).get("median_ape")
        say(f"  {metric}: {stats['n']} rows, median error {was}% -> {stats['median_ape']}%")
    for what, why in skipped.items():
        say(f"not fitted: {what}: {why}")
    for line in knobs_at_bounds(fitted):
        say(f"at a bound (the rows want more than the range allows: a term the model lacks): {line}")
    say(f"wrote {'the calibration to standard output' if to_stderr else args.output}")
    unknown_gpu = any(what.startswith("GPU ") for what in skipped)  # rows no fit could use
    return outcome(not data.errors and not unknown_gpu)


def cmd_export(args) -> int:
    from planner.export_cli import cmd_export as export  # the deploy writers load only for this command

    return export(args)


HANDLERS = {"predict": cmd_predict, "plan": cmd_plan, "catalog": cmd_catalog, "validate": cmd_validate, "search": cmd_search,
            "calibrate": cmd_calibrate, "export": cmd_export}


def dispatch(argv: list[str]) -> int:
    commands = COMMANDS
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")):
        if argv and not Path(argv[0]).exists():
            raise UsageError(_not_a_command(argv[0], commands))
        if len(argv) > 1:
            raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        return run_tui(argv[0] if argv else None)
    if argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    if argv[0] in ("--version", "-V"):
        from planner import __version__

        emit(f"planner {__version__}")
        return 0
    args = build_parser().parse_args(argv)
    for name, value in vars(args).items():
        if value == []:  # argparse drops the value of `--gpus=--` and leaves an empty list
            raise UsageError(f"argument --{name.replace('_', '-')}: expected a value")
    handler = HANDLERS.get(args.command)
    if handler is None:
        raise UsageError(f"unknown command {args.command!r}")
    return handler(args)


def _not_a_command(word: str, commands: tuple[str, ...]) -> str:
    """`planner frobnicate`: the first argument is a subcommand or a profile to open, and it is neither."""
    import difflib

    if word.endswith(".toml") or "/" in word or "\\" in word:  # meant as a profile
        return f"{word}: no such file"
    if word in ("gpus", "models"):
        hint = f"did you mean 'planner catalog {word}'? "
    else:
        close = difflib.get_close_matches(word, commands, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
    return (f"{word!r} is neither a subcommand nor a profile file (no such file); {hint}"
            f"subcommands: {', '.join(commands)} (planner --help)")


def _result_flags(parser) -> None:
    from planner.results_cli import add_result_flags

    add_result_flags(parser)


def _export_parser(sub) -> None:
    from planner.export_cli import add_export_parser

    add_export_parser(sub)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = dispatch(argv)
        finish()
        return code
    except SystemExit as exc:  # argparse --help inside a subcommand
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError as exc:  # `planner ... | head -c1`: the reader left before the result was whole
        silence_stdout()
        return _fail(stdout_failure(exc), EXIT_FAILED)
    except OutputFailed as exc:
        return _fail(exc, EXIT_FAILED)
    except UsageError as exc:
        return _fail(exc, EXIT_USAGE)
    except Exception as exc:  # every known failure is a ValueError/OSError subclass with a message
        return _fail(_one_line(exc), EXIT_USAGE if isinstance(exc, (ValueError, OSError)) else EXIT_FAILED)


def _fail(message, code: int) -> int:
    if sys.stderr is not None:
        print(f"planner: error: {message}", file=sys.stderr)
    return code


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    from planner.service import validation_text

    if isinstance(exc, ValidationError):
        return validation_text(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    # several problems (a profile lists each field error on its own line) still make one line
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or exc.__class__.__name__
    return text if isinstance(exc, (ValueError, OSError)) else f"internal error ({exc.__class__.__name__}): {text}"
