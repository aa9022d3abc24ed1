"""`planner calibrate`: the fit recovers knobs that generated the data, stays in its published
ranges, and refuses to move knobs that the rows do not identify, naming the rows that would."""

from dataclasses import replace
from pathlib import Path

import pytest

from planner.cli import main
from planner.engine.fit import IDENTIFYING_ROWS, KNOB_RANGES, calibrate
from planner.engine.knobs import Calibration, Knobs
from planner.engine.measurements import Measurement, MeasurementSet
from planner.engine.validate import _metric, _predict_row
from planner.service import load_calibration

# What the synthetic benchmark was "measured" with: a slower engine than the defaults on hopper.
TRUE_KNOBS = Knobs(eta_weights=0.62, eta_compute=0.45, step_overhead_us=400.0)
HEADER = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,"
          "metric,value,source")


def measured(model, mode, metric, input_len, output_len, knobs=TRUE_KNOBS, rate=None, concurrency=None,
             max_seqs=None) -> Measurement:
    """A row whose value is the model's own prediction under `knobs` (a benchmark of a known engine)."""
    row = Measurement(model=model, gpu="h100-sxm", tp=1, pp=None, weights="bf16", kv="bf16", mode=mode, rate=rate,
                      concurrency=concurrency, input_len=float(input_len), output_len=float(output_len), max_seqs=max_seqs,
                      max_batched_tokens=None, prefix_hit=None, metric=metric, value=1.0, source="https://example.org/synthetic")
    point, reason, mean_in, mean_out = _predict_row(row, Calibration(default=knobs), Path("."), {})
    assert point is not None, reason
    value = _metric(point, row, mean_in, mean_out)
    return replace(row, value=value)


def synthetic_benchmark(knobs=TRUE_KNOBS) -> list[Measurement]:
    rows = []
    for model in ("llama-3.1-8b", "llama-3.2-3b"):
        for lin, lout in ((128, 128), (512, 256), (2048, 128), (1024, 1024)):
            rows.append(measured(model, "offline", "output_tok_s", lin, lout, knobs))
        # lone requests: decode speed (weights) and prefill speed (compute) at low load
        for lin in (256, 4096):
            rows.append(measured(model, "rate", "itl_ms_mean", lin, 128, knobs, rate=0.05))
            rows.append(measured(model, "rate", "ttft_ms_mean", lin, 128, knobs, rate=0.05))
    return rows


def as_set(rows) -> MeasurementSet:
    return MeasurementSet(path=Path("synthetic.csv"), rows=tuple(rows))


@pytest.fixture(scope="module")
def fitted():
    return calibrate(as_set(synthetic_benchmark()), Calibration(), parallel=False)


def test_fit_recovers_the_knobs_that_made_the_data(fitted):
    calibration, _, fits = fitted
    got = calibration.for_family("hopper")
    (fit,) = fits
    assert fit.loss_after < 0.5 * fit.loss_before
    # the knobs that move these rows most come back near their true values (the defaults are 0.75,
    # 0.55 and 130 us: each was off by 17-200 %)
    assert got.eta_weights == pytest.approx(TRUE_KNOBS.eta_weights, rel=0.1)
    assert got.eta_compute == pytest.approx(TRUE_KNOBS.eta_compute, rel=0.1)


def test_fitted_knobs_stay_in_their_published_ranges(fitted):
    got = fitted[0].for_family("hopper")
    for name, bounds in KNOB_RANGES.items():
        assert bounds.low - 1e-9 <= getattr(got, name) <= bounds.high + 1e-9, name


def test_knobs_no_row_moves_keep_their_start_and_are_named_with_the_rows_that_would():
    # offline throughput of short prompts says nothing about the API overhead (it is not in any
    # offline throughput) nor about prefill attention (short prompts)
    rows = [measured(m, "offline", "output_tok_s", lin, lout) for m in ("llama-3.1-8b", "llama-3.2-3b")
            for lin, lout in ((128, 128), (256, 512), (512, 256), (128, 1024))]
    start = Calibration()
    calibration, skipped, _ = calibrate(as_set(rows), start, parallel=False)
    got = calibration.for_family("hopper")
    for knob in ("api_overhead_ms", "eta_attention"):
        assert f"hopper {knob}" in skipped, skipped
        assert IDENTIFYING_ROWS[knob] in skipped[f"hopper {knob}"]
        assert getattr(got, knob) == getattr(start.default, knob)


def test_a_family_with_too_few_rows_is_not_fitted_and_says_why():
    rows = synthetic_benchmark()[:3]
    calibration, skipped, fits = calibrate(as_set(rows), Calibration(), parallel=False)
    assert not fits and "hopper" in skipped and "need 8" in skipped["hopper"]
    assert calibration.for_family("hopper") == Calibration().default


def test_calibrate_command_writes_a_calibration_that_validate_then_scores_better(tmp_path, capsys):
    csv = tmp_path / "mine.csv"
    lines = [HEADER]
    for m in synthetic_benchmark():
        lines.append(",".join("" if v is None else str(v) for v in (
            m.model, m.gpu, m.tp, m.pp, m.weights, m.kv, m.mode, m.rate, m.concurrency, m.input_len, m.output_len,
            m.max_seqs, m.max_batched_tokens, m.prefix_hit, m.metric, m.value, m.source)))
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(csv), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hopper:" in printed and "wrote" in printed
    load_calibration(out)  # a valid calibration file
    import json

    def median(*extra):
        assert main(["validate", str(csv), "--format", "json", *extra]) == 0
        return json.loads(capsys.readouterr().out)["overall"]["median_ape"]

    assert median("--calibration", str(out)) < 0.5 * median()


def test_worker_processes_give_the_same_fit(fitted):
    # the Jacobian's predictions may run in forked workers: the same knobs, whichever ran them
    parallel, _, fits = calibrate(as_set(synthetic_benchmark()), Calibration(), parallel=True)
    assert parallel.for_family("hopper") == fitted[0].for_family("hopper")
    assert fits[0].predictions == fitted[2][0].predictions


def test_calibrate_refuses_to_write_a_fit_of_nothing_and_lists_what_it_skipped(tmp_path, capsys):
    # two usable rows (a fit needs eight), a duplicated header line and a GPU outside the catalog
    path = tmp_path / "few.csv"
    path.write_text("\n".join([HEADER, HEADER,
                               "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,128,128,,,,output_tok_s,9000,https://example.org",
                               "llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,512,128,,,,output_tok_s,7000,https://example.org",
                               "llama-3.1-8b,tpu-v9,1,,bf16,bf16,offline,,,512,128,,,,output_tok_s,7000,https://example.org"])
                    + "\n")
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists() and len(err.splitlines()) == 1 and "nothing written" in err
    assert "hopper only 2 rows with a mean metric" in err and "GPU 'tpu-v9' not in the catalog: 1 row not used" in err
    assert "1 row not parsed (line 2, tp: not a number: 'tp')" in err
    # with enough rows it fits, and lists what it could not read with the results
    path.write_text(path.read_text() + "\n".join(
        f"llama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,{n},128,,,,output_tok_s,{9000 - n},https://example.org"
        for n in range(600, 1200, 100)) + "\n")
    assert main(["calibrate", str(path), "-o", str(out)]) == 3  # written, but rows were not used
    assert "row not parsed: line 2" in capsys.readouterr().out and out.exists()


def test_an_engines_own_fit_keeps_the_gpus_collective_latency(monkeypatch):
    """The all-reduce latency belongs to the GPUs' link: fitted on every engine's rows of a family,
    it is not refitted by one engine's rows (whose MoE layers could pass for it)."""
    from planner.engine import fit as fit_module

    calls = []

    def fake_fit_family(data, family, start, parallel=None, names=None, request_families=frozenset()):
        calls.append((family, names or list(KNOB_RANGES)))
        knobs = start.scaled(allreduce_latency_us=25.0) if names is None else start
        return fit_module.FamilyFit(family, len(data.rows), knobs, 1.0, 0.5)

    monkeypatch.setattr(fit_module, "fit_family", fake_fit_family)
    rows = [replace(r, engine=engine) for engine in ("vllm", "sglang") for r in synthetic_benchmark()]
    calibration, _, _ = calibrate(as_set(rows), Calibration(), parallel=False)
    pooled, *per_engine = calls
    assert pooled[0] == "hopper" and "allreduce_latency_us" in pooled[1]
    assert {name for name, _ in per_engine} == {"vllm hopper", "sglang hopper"}
    assert all("allreduce_latency_us" not in names and "moe_layer_overhead_us" in names for _, names in per_engine)
    assert calibration.for_family("hopper", "vllm").allreduce_latency_us == 25.0


def test_the_per_request_cost_is_set_by_ttft_rows_not_by_long_end_to_end_rows():
    """End-to-end rows of long outputs move with the per-request cost once it is hundreds of ms, but
    whatever their decode lacks would pass for it: only TTFT rows identify it."""
    start = Calibration(default=Knobs(api_overhead_ms=300.0))
    rows = [measured(m, "rate", "e2e_ms_mean", lin, 128, rate=0.05) for m in ("llama-3.1-8b", "llama-3.2-3b")
            for lin in (128, 512, 1024, 2048)]
    calibration, skipped, _ = calibrate(as_set(rows), start, parallel=False)
    assert calibration.for_family("hopper").api_overhead_ms == 300.0
    assert skipped["hopper api_overhead_ms"].startswith("no ttft_ms_mean row's prediction moves with it")


def test_a_knob_that_fewer_than_three_rows_move_is_not_fitted_to_their_noise():
    # two long-prompt TTFT rows are all that move the prefill attention efficiency
    rows = [measured(m, "offline", "output_tok_s", lin, lout) for m in ("llama-3.1-8b", "llama-3.2-3b")
            for lin, lout in ((128, 128), (256, 512), (512, 256), (128, 1024))]
    rows += [measured("llama-3.1-8b", "rate", "ttft_ms_mean", 16384, 16, rate=0.01) for _ in range(2)]
    calibration, skipped, _ = calibrate(as_set(rows), Calibration(), parallel=False)
    assert calibration.for_family("hopper").eta_attention == Knobs().eta_attention
    assert skipped["hopper eta_attention"].startswith("only 2 rows move with it, too few")


def test_an_engines_host_cost_its_rows_cannot_see_is_its_own_not_the_familys():
    """vLLM's rows on a family that say nothing of its per-request cost take vLLM's from the
    families whose rows do, not the family's pooled value (set there by another engine's rows)."""
    from planner.engine.fit import _own_host_costs

    pooled_by_sglang = Knobs(api_overhead_ms=350.0)
    per_engine = {"vllm": {"cdna3": pooled_by_sglang, "hopper": Knobs(api_overhead_ms=30.0),
                           "ampere": Knobs(api_overhead_ms=10.0)},
                  "sglang": {"cdna3": pooled_by_sglang}}
    unidentified = {("vllm", "cdna3"): {"api_overhead_ms"}, ("vllm", "hopper"): set(), ("vllm", "ampere"): set(),
                    ("sglang", "cdna3"): set()}
    out = _own_host_costs(per_engine, unidentified)
    assert out["vllm"]["cdna3"].api_overhead_ms == 30.0  # the upper of vLLM's two: 10 and 30
    assert out["vllm"]["hopper"].api_overhead_ms == 30.0 and out["vllm"]["ampere"].api_overhead_ms == 10.0
    assert out["sglang"]["cdna3"].api_overhead_ms == 350.0
    # an engine whose rows identify it nowhere keeps what it had
    assert _own_host_costs({"trtllm": {"ada": pooled_by_sglang}}, {("trtllm", "ada"): {"api_overhead_ms"}}) == \
        {"trtllm": {"ada": pooled_by_sglang}}


def test_an_efficiency_a_familys_rows_leave_flat_takes_the_least_favourable_fitted_one():
    """A family measured on dense models alone says nothing of its expert GEMMs: it takes the
    lowest eta_moe the families whose rows fit it reached, not the optimistic start, as a family
    nobody measured does. A knob the rows tie to another, or fit, keeps its value."""
    from planner.engine.fit import FamilyFit, _least_favourable_where_flat

    def fit(family, knobs, unidentified=(), flat=()):
        return FamilyFit(family, 10, knobs, 1.0, 0.5, unidentified={k: "why" for k in unidentified}, flat=set(flat))

    fits = {"hopper": fit("hopper", Knobs(eta_moe=0.7, eta_attention=0.5)),
            "blackwell": fit("blackwell", Knobs(eta_moe=0.55), unidentified=["eta_attention"], flat=["eta_attention"]),
            "cdna3": fit("cdna3", Knobs(eta_moe=0.8, eta_attention=0.9), unidentified=["eta_moe", "eta_attention"],
                         flat=["eta_moe"]),
            "ampere": fit("ampere", Knobs(eta_moe=0.4), unidentified=["eta_moe"], flat=["eta_moe"])}
    skipped = {"cdna3 eta_moe": "no row moves with it"}
    out = _least_favourable_where_flat(fits, skipped)
    assert out["cdna3"].eta_moe == 0.55  # the lower of hopper's 0.7 and blackwell's 0.55
    assert out["cdna3"].eta_attention == 0.9  # tied, not flat: the fit's other knobs lean on it
    assert "ampere" not in out  # already below every fitted value
    assert out["blackwell"].eta_attention == 0.5 and out["blackwell"].eta_moe == 0.55  # its start 0.6 was above hopper's
    assert skipped["cdna3 eta_moe"].endswith("set to 0.55, the least favourable of the families that fit it")


def test_a_rate_past_capacity_is_scored_but_does_not_set_the_knobs():
    """Validation scores a run offered more than the replica serves on the throughput it saturates
    at; the fit leaves it out (its throughput depends on how long it ran past capacity)."""
    from planner.engine.fit import _Rows
    from planner.engine.validate import _evaluate_rows

    row = Measurement(model="llama-3.1-8b", gpu="h100-sxm", tp=1, pp=None, weights="bf16", kv="bf16", mode="rate",
                      rate=1000.0, concurrency=None, input_len=467.0, output_len=256.0, max_seqs=None,
                      max_batched_tokens=None, prefix_hit=None, metric="requests_per_s", value=30.0,
                      source="https://example.org/past-capacity")
    (scored,) = _evaluate_rows((row,), Calibration(), Path("."), {})
    assert scored.predicted is not None and scored.utilization > 1.0
    (ratio,) = _Rows((row,), Path(".")).log_ratios(Knobs())
    assert ratio != ratio  # NaN: no prediction for the fit


def test_calibrate_names_the_knobs_that_ended_at_a_bound_of_their_range():
    """A knob the rows push to an edge of its range absorbs a term the model lacks: say where."""
    from planner.engine.fit import knobs_at_bounds

    pushed = Knobs(layer_overhead_us=40.0, eta_moe=0.1, eta_compute=0.6, api_overhead_ms=2.2)
    untouched = Knobs()  # api_overhead_ms sits at 0, the bottom of its range, because nothing moved it
    calibration = Calibration(families={"hopper": pushed, "ada": untouched}, engines={"vllm": {"hopper": pushed}})
    lines = knobs_at_bounds(calibration)
    assert "hopper layer_overhead_us = 40, the top of its range 0-40" in lines
    assert "hopper eta_moe = 0.1, the bottom of its range 0.1-1" in lines
    assert "vllm hopper layer_overhead_us = 40, the top of its range 0-40" in lines
    # 2.2 ms is near zero but not at the bottom of 0-1000 ms on the fit's log scale
    assert not [line for line in lines if line.startswith("ada") or "eta_compute" in line or "api_overhead" in line]


def test_a_model_familys_own_request_cost_is_fitted_apart_from_the_engines_knobs():
    """Qwen3-8B's TTFT, measured by two publishers, runs 100 ms above what the engine's knobs give
    it (a cost of that model's serving stack): the fit gives qwen3 its own per-request cost and
    leaves the knobs, and every other model's TTFT, where the Llama rows put them."""
    rows = synthetic_benchmark()
    for i, lin in enumerate((128, 256, 512, 1024, 2048, 3072)):
        row = measured("qwen3-8b", "rate", "ttft_ms_mean", lin, 128, rate=0.05)
        rows.append(replace(row, value=row.value + 100.0, source=("https://example.org/lab-a/run" if i % 2 else "https://example.com/lab-b/run")))
    calibration, _, _ = calibrate(as_set(rows), Calibration(), parallel=False)
    assert calibration.model_request_ms == {"qwen3": pytest.approx(100.0, abs=5.0)}
    got = calibration.for_family("hopper")
    assert got.eta_weights == pytest.approx(TRUE_KNOBS.eta_weights, rel=0.1)
    assert got.api_overhead_ms < 5.0
    with_own = calibration.for_family("hopper", model_family="qwen3").api_overhead_ms
    assert with_own == pytest.approx(got.api_overhead_ms + 100.0, abs=5.0)
    # one publisher's rows are not enough: its gateway or client must not become the model's
    one_lab = [replace(r, source="https://example.org/lab-a/run") if r.model == "qwen3-8b" else r for r in rows]
    assert calibrate(as_set(one_lab), Calibration(), parallel=False)[0].model_request_ms == {}


def test_a_models_request_cost_takes_a_runs_median_ttft_over_its_mean():
    """A short run's first requests can pay once for kernels compiled on first use, which moves its
    mean TTFT and not its median: where a run reports both, its median sets the model's cost; a
    run that reports only its mean still counts, its mean."""
    from planner.engine.fit import model_request_costs

    rows = []
    for i, lin in enumerate((128, 256, 512, 1024, 2048, 3072)):
        source = "https://example.org/lab-a/run" if i % 2 else "https://example.com/lab-b/run"
        for metric, cost_ms in (("ttft_ms_mean", 500.0), ("ttft_ms_p50", 100.0)):
            row = measured("qwen3-8b", "rate", metric, lin, 128, rate=0.05)
            rows.append(replace(row, value=row.value + cost_ms, source=source))
    start = Calibration(default=TRUE_KNOBS)
    assert model_request_costs(as_set(rows), start, frozenset({"qwen3"})) == {"qwen3": pytest.approx(100.0, abs=2.0)}
    means_only = [r for r in rows if r.metric == "ttft_ms_mean"]
    assert model_request_costs(as_set(means_only), start, frozenset({"qwen3"})) == {"qwen3": pytest.approx(500.0, abs=2.0)}
    # runs that report only a median are not among the runs whose means the cost replaces
    medians_only = [r for r in rows if r.metric == "ttft_ms_p50"]
    assert model_request_costs(as_set(medians_only), start, frozenset({"qwen3"})) == {}


def test_publisher_is_the_host_and_the_repository():
    from planner.engine.fit import publisher

    page = "https://github.com/gpustack/gpustack/blob/abc/docs/performance-lab/qwen3-8b/h100.md"
    assert publisher(page) == "github.com/gpustack/gpustack"
    assert publisher("https://example.org/a") == "example.org/a"


def test_ttft_rows_do_not_pull_the_gemm_efficiency():
    """What a TTFT row measures above the engine's prefill is mostly the request's own cost (HTTP,
    the chat template, tokenising): its rows move the per-request cost in the fit, and their slope
    on the GEMM efficiency is zero, so that efficiency comes from the throughput rows alone and no
    prefill slows to pay for a request's cost (fit.BLIND_METRICS)."""
    import numpy as np

    from planner.engine.fit import _Evaluator, _jacobian, _Rows

    rows = [measured(m, "offline", "output_tok_s", 2048, 128) for m in ("llama-3.1-8b", "llama-3.2-3b")]
    rows += [measured(m, "rate", "ttft_ms_mean", 2048, 128, rate=0.05) for m in ("llama-3.1-8b", "llama-3.2-3b")]
    names = ["eta_compute", "api_overhead_ms"]
    start = Knobs(api_overhead_ms=20.0)
    u = np.array([KNOB_RANGES[n].to_u(getattr(start, n)) for n in names])
    evaluate = _Evaluator(_Rows(tuple(rows), Path(".")), parallel=False)
    (r0,) = evaluate([start])
    jac = _jacobian(evaluate, start, names, u, r0, [0, 1])
    throughput, ttft = slice(0, 2), slice(2, 4)
    assert np.all(jac[throughput, 0] != 0.0)  # prefill-heavy throughput moves with the GEMM efficiency
    assert np.all(jac[ttft, 0] == 0.0)  # TTFT's prediction moves with it too, but may not pull it
    assert np.all(jac[ttft, 1] != 0.0)  # the per-request cost is TTFT's
