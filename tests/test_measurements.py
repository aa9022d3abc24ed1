"""The shipped calibration set and the measurements CSV reader."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from planner.engine.measurements import (
    COLUMNS,
    METRICS,
    Measurement,
    MeasurementsError,
    packaged_measurements_path,
    read_measurements,
)

HEADER = ",".join(COLUMNS)
GOOD = "llama-3.1-8b,h100-sxm,1,,fp8,fp8,rate,4,,467,256,,,,ttft_ms_mean,24,https://example.org/a,trtllm,,,,,,"
MOE = {"mixtral-8x7b", "mixtral-8x22b", "qwen3-30b-a3b", "qwen3-235b-a22b", "gpt-oss-120b", "deepseek-v3"}


def write(tmp_path: Path, *lines: str, name: str = "measurements.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def row(**changes: str) -> str:
    """GOOD with some cells replaced."""
    cells = dict(zip(COLUMNS, next(csv.reader([GOOD])), strict=True))
    cells.update(changes)
    return ",".join(cells[c] for c in COLUMNS)


# --- the shipped set ---

@pytest.fixture(scope="module")
def shipped():
    return read_measurements(packaged_measurements_path())


def test_shipped_file_parses_without_errors(shipped):
    assert shipped.errors == ()
    assert len(shipped) > 500


def test_shipped_header_is_exactly_the_contract():
    with packaged_measurements_path().open(newline="") as fh:
        assert next(csv.reader(fh)) == list(COLUMNS)


def test_shipped_coverage(shipped):
    assert {r.mode for r in shipped} == {"offline", "concurrency", "rate"}
    assert len({r.gpu for r in shipped}) >= 5
    models = {r.model for r in shipped}
    assert models & MOE, "needs an MoE model"
    assert models - MOE, "needs a dense model"
    assert {r.metric for r in shipped} <= set(METRICS)


def test_shipped_sources_are_urls(shipped):
    assert all(r.url.startswith("https://") and " " not in r.url for r in shipped)


def test_shipped_rows_name_their_engine():
    with packaged_measurements_path().open(newline="") as fh:
        engines = {r["engine"] for r in csv.DictReader(fh)}
    assert engines == {"vllm", "sglang", "trtllm"}


def test_a_file_without_the_engine_column_is_read_as_the_given_engine(tmp_path):
    legacy = ",".join(COLUMNS[:COLUMNS.index("engine")])
    line = GOOD.split(",trtllm")[0]
    assert read_measurements(write(tmp_path, legacy, line)).rows[0].engine == "vllm"
    assert read_measurements(write(tmp_path, legacy, line), "sglang").rows[0].engine == "sglang"
    assert read_measurements(write(tmp_path, HEADER, row(engine="nope"))).errors[0].column == "engine"


def test_shipped_load_columns_match_mode(shipped):
    for r in shipped:
        if r.mode == "offline":
            assert r.rate is None and r.concurrency is None
        assert (r.rate is not None) == (r.mode == "rate")
        assert (r.concurrency is not None) == (r.mode == "concurrency")


def test_shipped_runs_on_datasets_of_varied_lengths_carry_their_spread(shipped):
    # ShareGPT as the serving benchmarks sample it and MLPerf's OpenOrca run at median lengths of
    # half to four fifths of their means: taken as fixed, a run's KV pressure and the drain of its
    # longest outputs vanish (the notes give each dataset's per-request lengths and their source)
    varied = [r for r in shipped if "sharegpt" in r.source.lower() or "openorca" in r.source.lower()]
    assert len(varied) >= 250
    assert all("fixed" not in (r.input_dist, r.output_dist) for r in varied)


# --- reading good rows ---

def test_good_row_types_and_empty_optionals(tmp_path):
    result = read_measurements(write(tmp_path, HEADER, GOOD))
    assert result.errors == ()
    (m,) = result.rows
    assert m == Measurement(
        model="llama-3.1-8b", gpu="h100-sxm", tp=1, pp=None, weights="fp8", kv="fp8", mode="rate",
        rate=4.0, concurrency=None, input_len=467.0, output_len=256.0, max_seqs=None,
        max_batched_tokens=None, prefix_hit=None, metric="ttft_ms_mean", value=24.0,
        source="https://example.org/a", engine="trtllm", input_dist="fixed", output_dist="fixed", input_p90=None,
        output_p90=None,
    )


def test_optional_columns_may_be_left_out_of_the_header(tmp_path):
    header = "model,gpu,tp,weights,kv,mode,input_len,output_len,metric,value"
    result = read_measurements(write(tmp_path, header, "mistral-7b,l40s,1,fp8,fp8,offline,128,128,output_tok_s,9664.13"))
    assert result.errors == () and result.rows[0].source == "" and result.rows[0].pp is None


def test_url_drops_the_conversion_note(tmp_path):
    result = read_measurements(write(tmp_path, HEADER, row(source="https://example.org/b | per-GPU x2")))
    assert result.rows[0].url == "https://example.org/b"


def test_where_and_column(tmp_path):
    result = read_measurements(write(tmp_path, HEADER, GOOD, row(metric="itl_ms_mean", value="9")))
    itl = result.where(metric="itl_ms_mean")
    assert len(itl) == 1 and itl.column("value").tolist() == [9.0]
    assert np.isnan(result.column("pp")).all()  # empty cells come back as nan


def test_large_file_reads_fast(tmp_path):
    path = write(tmp_path, HEADER, *([GOOD] * 5000))
    start = time.perf_counter()
    result = read_measurements(path)
    assert len(result) == 5000 and time.perf_counter() - start < 2.0


# --- bad rows: collected, not raised ---

@pytest.mark.parametrize(
    ("changes", "column", "fragment"),
    [
        ({"value": "fast"}, "value", "not a number"),
        ({"value": "-3"}, "value", "negative"),
        ({"tp": "1.5"}, "tp", "whole number"),
        ({"tp": "0"}, "tp", "above zero"),
        ({"input_len": "-128"}, "input_len", "negative"),
        ({"mode": "burst"}, "mode", "unknown value 'burst'"),
        ({"metric": "ttft_ms_p95"}, "metric", "unknown value 'ttft_ms_p95'"),
        ({"weights": "fp6"}, "weights", "unknown value"),
        ({"model": ""}, "model", "missing value"),
        ({"value": ""}, "value", "missing value"),
        ({"rate": ""}, "rate", "rate mode needs a rate"),
        ({"mode": "concurrency", "rate": ""}, "concurrency", "concurrency mode needs a concurrency"),
        ({"prefix_hit": "1.5"}, "prefix_hit", "between 0 and 1"),
        ({"rate": "nan"}, "rate", "finite"),
        ({"mode": "concurrency", "concurrency": "8", "num_prompts": "0"}, "num_prompts", "above zero"),
        ({"mode": "concurrency", "concurrency": "8", "num_prompts": "12.5"}, "num_prompts", "whole number"),
        ({"gpu_mem_util": "1.2"}, "gpu_mem_util", "at most 0.99"),
        ({"gpu_mem_util": "0"}, "gpu_mem_util", "above 0.05"),
        ({"gpu_mem_util": "most"}, "gpu_mem_util", "not a number"),
    ],
)
def test_bad_row_is_reported_with_line_and_column(tmp_path, changes, column, fragment):
    result = read_measurements(write(tmp_path, HEADER, GOOD, row(**changes), GOOD))
    assert len(result.rows) == 2
    (error,) = result.errors
    assert (error.line, error.column) == (3, column)
    assert fragment in error.message


def test_one_row_can_have_several_errors(tmp_path):
    result = read_measurements(write(tmp_path, HEADER, row(tp="x", value="y")))
    assert [e.column for e in result.errors] == ["tp", "value"] and result.rows == ()


def test_blank_lines_are_skipped(tmp_path):
    result = read_measurements(write(tmp_path, HEADER, GOOD, "", ",,,,", GOOD))
    assert len(result) == 2 and result.errors == ()


# --- bad files: raised, one clear line ---

def test_missing_columns_names_file_and_columns(tmp_path):
    header = ",".join(c for c in COLUMNS if c not in ("metric", "value"))
    with pytest.raises(MeasurementsError) as info:
        read_measurements(write(tmp_path, header, "x"))
    message = str(info.value)
    assert message.startswith("measurements.csv: missing columns metric, value; expected model,gpu,")
    assert "\n" not in message


def test_empty_file_is_missing_every_required_column(tmp_path):
    with pytest.raises(MeasurementsError, match="missing columns model, gpu"):
        read_measurements(write(tmp_path, ""))


def test_missing_file(tmp_path):
    with pytest.raises(MeasurementsError, match=r"nope\.csv: cannot read file"):
        read_measurements(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(MeasurementsError, match="is a directory"):
        read_measurements(tmp_path)


def test_binary_file(tmp_path):
    path = tmp_path / "weights.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(MeasurementsError, match=r"weights\.csv: binary file"):
        read_measurements(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + b"\n" + GOOD.replace("llama", "ll\xe9ma").encode("latin-1"))
    with pytest.raises(MeasurementsError, match="not UTF-8"):
        read_measurements(path)


def test_error_is_a_value_error():
    assert issubclass(MeasurementsError, ValueError)


def test_length_distributions_and_empty_precisions_are_predicted_as_predict_would(tmp_path):
    from planner.engine.knobs import Calibration
    from planner.engine.validate import evaluate_rows

    lognormal = row(mode="rate", rate="2", metric="tpot_ms_p99", input_dist="lognormal", input_p90="900",
                    output_dist="exponential")
    fixed = row(mode="rate", rate="2", metric="tpot_ms_p99")
    empty = row(weights="", kv="", mode="rate", rate="2", metric="ttft_ms_mean")
    bf16 = row(weights="bf16", kv="bf16", mode="rate", rate="2", metric="ttft_ms_mean")
    data = read_measurements(write(tmp_path, HEADER, lognormal, fixed, empty, bf16))
    assert data.errors == ()
    assert (data.rows[0].input_dist, data.rows[0].input_p90, data.rows[0].output_dist) == ("lognormal", 900.0, "exponential")
    assert (data.rows[2].weights, data.rows[2].kv) == (None, None)
    varied, same, default, explicit = (r.predicted for r in evaluate_rows(data, Calibration()))
    assert varied is not None and same is not None and varied > same  # varied outputs: a longer TPOT tail
    assert default == pytest.approx(explicit)  # llama-3.1-8b's dtype is bf16, KV bf16


def test_a_lognormal_row_needs_a_possible_p90(tmp_path):
    bad = [row(input_dist="lognormal"), row(input_dist="lognormal", input_p90="400"),
           row(output_dist="lognormal", output_p90="100000"), row(input_dist="gamma")]
    errors = read_measurements(write(tmp_path, HEADER, *bad)).errors
    assert [(e.line, e.column) for e in errors] == [(2, "input_p90"), (3, "input_p90"), (4, "output_p90"), (5, "input_dist")]
    assert "need a p90" in errors[0].message and "above the mean" in errors[1].message
    assert "at most" in errors[2].message and "expected one of fixed, exponential, lognormal" in errors[3].message


def test_a_rows_memory_share_is_predicted_as_predicts_flag_would(tmp_path):
    """gpu_mem_util sets how many sequences the KV cache holds, as --gpu-mem-util does: Llama 3.1
    70B in bf16 on 2 x H100 under vLLM (a share of the whole GPU) leaves little room beside its
    weights, so 0.95 holds about twice the long sequences of the default 0.9, and an empty cell is
    the default."""
    from planner.engine.knobs import Calibration
    from planner.engine.validate import evaluate_rows

    def offline(share: str) -> str:
        return row(model="llama-3.1-70b", tp="2", weights="bf16", kv="bf16", mode="offline", rate="",
                   input_len="4000", output_len="1000", metric="output_tok_s", value="1000", engine="vllm",
                   gpu_mem_util=share)

    data = read_measurements(write(tmp_path, HEADER, offline(""), offline("0.9"), offline("0.95")))
    assert data.errors == () and [r.gpu_mem_util for r in data.rows] == [None, 0.9, 0.95]
    default, same, more = (r.predicted for r in evaluate_rows(data, Calibration()))
    assert default == pytest.approx(same)
    assert more > 1.3 * default  # the KV cache binds the batch: more memory, a bigger batch
