"""Every entry point survives hostile input: property tests drive the subcommands in-process with
arbitrary argument values and files, and each run must end in a result or one clear error line.

Generated cases per run (hypothesis max_examples): predict 100, plan 25, search 4, validate 15,
calibrate 8.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hardening_inputs import (
    GPUS,
    MODELS,
    NUMBER_TEXT,
    STRANGE_TEXT,
    csv_line,
    measurement_rows,
    mutated_profiles,
    profile_dicts,
    to_toml,
)
from hardening_support import CSV_HEADER, CSV_ROW, check_outcome, examples, run_cli, unreadable
from hypothesis import event, given, note
from hypothesis import strategies as st

HF = Path(__file__).parent.parent / "data" / "hf"

PATH_KINDS = ["missing", "dir", "binary", "latin1", "empty", "unreadable", "fifo", "devnull", "devzero", "junk"]


class Files:
    """Fresh files per generated case (tmp_path is shared by all examples of one test)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        self.blocked: list[Path] = []

    def folder(self) -> Path:
        self.count += 1
        folder = self.root / f"case{self.count}"
        folder.mkdir()
        return folder

    def make(self, kind: str, name: str = "input.toml", content: str = "") -> Path:
        path = self.folder() / name
        if kind == "missing":
            return path
        if kind == "dir":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)  # nobody ever writes: opening it for reading would block forever
        elif kind == "devnull":
            return Path(os.devnull)
        elif kind == "devzero":
            return Path("/dev/zero")  # endless: reading it whole never finishes
        elif kind == "binary":
            path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
        elif kind == "latin1":
            path.write_bytes('name = "café"\nmodel,gpu\n'.encode("latin-1"))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "junk":
            path.write_text("<html><body>not this</body></html>\n" * 3)
        elif kind in ("unreadable", "valid"):
            path.write_text(content, encoding="utf-8")
            if kind == "unreadable":
                self.blocked.append(path)
        else:
            raise AssertionError(kind)
        return path


@pytest.fixture
def files(tmp_path) -> Files:
    return Files(tmp_path)


def run(capsys, files: Files, argv):
    with unreadable(*files.blocked):
        code, out, err = run_cli(capsys, argv)
    files.blocked.clear()
    event(f"exit {code}")  # --hypothesis-show-statistics: how many cases got past the argument checks
    return check_outcome(code, out, err, argv)


def option(name: str, value: str, as_one: bool) -> list[str]:
    """--name value, or --name=value (the only way argparse takes values such as "-inf")."""
    return [f"{name}={value}"] if as_one else [name, value]


# ---------------------------------------------------------------------------------------------
# predict

PREDICT_NUMERIC = ["--tp", "--pp", "--max-seqs", "--max-batched-tokens", "--gpu-mem-util", "--prefix-hit", "--spec-k",
                   "--spec-accept", "--spec-draft-ratio", "--prune", "--input-p90", "--output-p90"]
GOOD_VALUES = {"--tp": ["1", "2", "8"], "--pp": ["1", "2"], "--max-seqs": ["1", "64"], "--max-batched-tokens": ["512", "8192"],
               "--gpu-mem-util": ["0.5", "0.9"], "--prefix-hit": ["0", "0.5"], "--spec-k": ["0", "4"],
               "--spec-accept": ["0.7"], "--spec-draft-ratio": ["0.05"], "--prune": ["0", "0.3"],
               "--input-p90": ["3000"], "--output-p90": ["900"]}


def mostly(good: st.SearchStrategy, hostile: st.SearchStrategy, odds: int = 6) -> st.SearchStrategy:
    """`hostile` one time in `odds`, so a good share of the cases gets past argument checking."""
    return st.integers(1, odds).flatmap(lambda roll: hostile if roll == odds else good)


@st.composite
def predict_argv(draw, files: Files) -> list[str]:
    # A third of the cases are well-formed (they reach the engine, with extreme but valid values);
    # in the rest any argument may be hostile.
    hostile = draw(st.sampled_from([False, True, True]))

    def pick(good: st.SearchStrategy, bad: st.SearchStrategy, odds: int = 4):
        return draw(mostly(good, bad, odds) if hostile else good)

    model_kind = pick(st.sampled_from(["catalog"] * 6 + ["hf"]), st.sampled_from(["text", "path"]))
    if model_kind == "catalog":
        model = draw(st.sampled_from(MODELS))
    elif model_kind == "text":
        model = draw(st.one_of(st.sampled_from(STRANGE_TEXT), st.text(max_size=12)))
    elif model_kind == "hf":
        model = str(draw(st.sampled_from(sorted(p.parent for p in HF.glob("*/config.json")))))
    else:
        # "binary" and latin-1 are left out: a config.json that is not UTF-8 gives an unclear message from hf_config.py,
        # reported and kept as test_binary_config_json_error_names_the_file (xfail) until fixed there
        kind = draw(st.sampled_from(["missing", "dir", "fifo", "devzero", "empty"]))
        model = str(files.make(kind, "config.json"))
        if kind == "fifo" and draw(st.booleans()):
            model = str(Path(model).parent)  # a folder whose config.json is a FIFO
    gpu = pick(st.sampled_from(GPUS + ["h100", "H100-SXM", "tpu-v6e"]), st.sampled_from(STRANGE_TEXT))
    lengths = st.sampled_from(["1", "100", "1000", "2048", "32768", "1000000", "10000000", "0.5", "1e3", "1e-300"])
    # outputs of 1-8 tokens in a closed loop take 4-15 s (reported; test_closed_loop_with_tiny_outputs_is_fast)
    out_lengths = st.sampled_from(["16", "100", "1000", "2048", "32768", "1000000", "10000000", "1e3"])
    as_one = st.booleans()
    argv = ["predict", *option("--model", model, draw(as_one)), *option("--gpu", gpu, draw(as_one)),
            *option("--input-len", pick(lengths, NUMBER_TEXT), draw(as_one)),
            *option("--output-len", pick(out_lengths, NUMBER_TEXT), draw(as_one))]
    mode = pick(st.sampled_from(["--offline", "--concurrency", "--rate"]), st.sampled_from(["none", "both"]))
    loads = st.sampled_from(["0", "1", "16", "1000", "1000000", "0.5", "2", "1e9", "1e-300"])
    if mode == "--offline":
        argv.append("--offline")
    elif mode in ("--concurrency", "--rate"):
        argv += option(mode, pick(loads, NUMBER_TEXT), draw(as_one))
    elif mode == "both":
        argv += ["--offline", "--rate", "1"]
    for name in draw(st.lists(st.sampled_from(PREDICT_NUMERIC), unique=True, max_size=4)):
        argv += option(name, pick(st.sampled_from(GOOD_VALUES[name]), NUMBER_TEXT), draw(as_one))
    if draw(st.booleans()):
        argv += ["--weights", pick(st.sampled_from(["bf16", "fp8", "int4", "fp4", "int8"]), st.just("fp3"))]
    if draw(st.booleans()):
        argv += ["--kv", pick(st.sampled_from(["fp8", "int8", "bf16"]), st.just("int4"))]
    for which in ("input", "output"):
        dist = draw(st.sampled_from(["fixed", "fixed", "lognormal", "exponential"]))
        argv += [f"--{which}-dist", pick(st.just(dist), st.just("gamma"))]
        if dist == "lognormal" and f"--{which}-p90" not in argv:
            argv += [f"--{which}-p90", pick(st.just("1e7"), NUMBER_TEXT)]
    if draw(st.integers(0, 4)) == 0:
        argv += draw(st.sampled_from([["--no-chunked-prefill"], ["--sparsity-2-4"]]))
    if draw(st.integers(0, 4)) == 0:
        kind = pick(st.just("valid"), st.sampled_from(PATH_KINDS), 2)
        content = pick(st.sampled_from(["[default]\neta_weights = 0.8\n", "[families.hopper]\nstep_overhead_us = 200\n"]),
                       st.sampled_from(["[default]\neta_weights = 7\n", "families = 3\n", "x = [[[[\n"]), 2)
        argv += ["--calibration", str(files.make(kind, "cal.toml", content))]
    argv += ["--format", pick(st.sampled_from(["json", "json", "table"]), st.just("yaml"), 20)]
    return argv


@examples(100)
@given(data=st.data())
def test_predict_survives_hostile_arguments(capsys, files, data):
    argv = data.draw(predict_argv(files))
    result = run(capsys, files, argv)
    if isinstance(result, dict) and result.get("fits") and result.get("stable") is False:
        for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):  # an unstable replica has no finite percentile
            assert result[metric]["p99"] is None and result[metric]["mean"] is None


# ---------------------------------------------------------------------------------------------
# plan


@st.composite
def profile_path(draw, files: Files) -> Path:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "mutated", "mutated", *PATH_KINDS]))
    if kind == "valid":
        return files.make("valid", "p.toml", to_toml(draw(profile_dicts())))
    if kind == "mutated":
        return files.make("valid", "p.toml", draw(mutated_profiles(planned=True))[1])
    return files.make(kind, "p.toml", 'name = "x"\n')


@examples(25)
@given(data=st.data())
def test_plan_survives_hostile_profiles_and_outputs(capsys, files, data):
    profile = data.draw(profile_path(files))
    if profile.is_file():
        note(profile.read_text(errors="replace")[:3000])
    fmt = data.draw(st.sampled_from(["json", "json", "table", "toml"]))
    argv = ["plan", profile, "--format", fmt]
    if fmt != "table" and data.draw(st.integers(0, 3)) == 0:
        kind = data.draw(st.sampled_from(["missing", "missing", "dir", "fifo", "unreadable", "valid", "folder-missing", "dot"]))
        if kind == "folder-missing":
            out = files.root / "no-such-folder" / "out.toml"
        elif kind == "dot":
            out = Path(".")
        else:
            out = files.make(kind, "out.toml", "old = 1\n")
        argv += ["-o", out] + (["--force"] if data.draw(st.booleans()) else [])
    result = run(capsys, files, argv)
    if isinstance(result, dict):
        for tier in result["tiers"]:
            if tier["feasible"]:
                assert tier["gpus"] >= 0 and tier["gpus"] == tier["replicas"] * tier["tp"] * tier["pp"]
                assert tier["usd_month"] is None or tier["usd_month"] >= 0
            else:
                assert tier["reason"].strip(), tier
                assert tier["usd_month"] is None and tier["e2e_ms"]["p99"] is None


# ---------------------------------------------------------------------------------------------
# search (slow: 1-2 GPUs, the small tier)


@examples(4)
@given(data=st.data())
def test_search_survives_hostile_arguments(capsys, files, data):
    profile = data.draw(mostly(
        st.builds(lambda d: files.make("valid", "p.toml", to_toml(d)), profile_dicts(load_max_rps=50, max_len=8192)),
        st.sampled_from(["missing", "dir", "binary", "fifo"]).map(lambda k: files.make(k, "p.toml")),
    ))
    gpus = data.draw(mostly(
        st.lists(st.sampled_from(["l4", "h100-sxm", "a100-80gb", "mi300x"]), min_size=1, max_size=2).map(",".join),
        st.sampled_from(["", ",", " , ", "nonexistent", "l4,,", "h100,unknown"]),
    ))
    top = data.draw(mostly(st.sampled_from(["1", "3"]), NUMBER_TEXT))
    argv = ["search", profile, "--tier", "small", *option("--gpus", gpus, True), *option("--top", top, True),
            "--format", data.draw(st.sampled_from(["json", "table"]))]
    run(capsys, files, argv)


# ---------------------------------------------------------------------------------------------
# validate and calibrate (tiny CSVs)


# One GPU per calibration family: `calibrate` fits a family (slow, seconds) only once it has 8 rows.
FAMILY_GPUS = ["l4", "h100-sxm", "a100-80gb", "mi300x"]


@st.composite
def measurements_csv(draw, files: Files, calibrating: bool = False, max_rows: int = 10) -> Path:
    kind = draw(mostly(st.sampled_from(["valid", "valid", "noisy"]), st.sampled_from(PATH_KINDS), 3))
    if kind not in ("valid", "noisy"):
        return files.make(kind, "m.csv", CSV_HEADER + "\n" + CSV_ROW + "\n")
    rows = draw(st.lists(measurement_rows(), min_size=1, max_size=max_rows))
    if calibrating:
        # round robin over the families (none reaches 8 rows), but one case in five puts every row on
        # one GPU so that, with 8+ rows, the fit itself runs
        fit = draw(st.integers(1, 5)) == 5
        for i, row in enumerate(rows):
            row["gpu"] = FAMILY_GPUS[0 if fit else i % len(FAMILY_GPUS)]
            # the fit predicts every row ~260 times: open- and closed-loop rows take minutes
            # (reported: test_calibrate_of_a_few_closed_loop_rows_is_fast)
            if fit:
                row.update(mode="offline", rate="", concurrency="")
    if kind == "noisy":
        for row in rows:
            for column in draw(st.lists(st.sampled_from(list(row)), max_size=3)):
                row[column] = draw(st.sampled_from(["", "nan", "-1", "abc", "1e999", "0", "ü", "99999999999999999999"]))
    return files.make("valid", "m.csv", "\n".join([CSV_HEADER, *(csv_line(r) for r in rows)]) + "\n")


@examples(15)
@given(data=st.data())
def test_validate_survives_hostile_files(capsys, files, data):
    argv = ["validate", data.draw(measurements_csv(files, max_rows=6))]
    if data.draw(st.integers(0, 2)) == 0:
        kind = data.draw(st.sampled_from(PATH_KINDS + ["valid"]))
        argv += ["--calibration", files.make(kind, "cal.toml", "[default]\neta_kv = 0.5\n")]
    elif data.draw(st.booleans()):
        argv.append("--uncalibrated")
    argv += ["--format", data.draw(st.sampled_from(["json", "table"]))]
    result = run(capsys, files, argv)
    if isinstance(result, dict):
        for row in result["rows"]:
            assert (row["predicted"] is None) == ("reason" in row)


@examples(8)
@given(data=st.data())
def test_calibrate_survives_hostile_files(capsys, files, data):
    csv = data.draw(measurements_csv(files, calibrating=True))
    kind = data.draw(mostly(st.just("missing"), st.sampled_from(["dir", "valid", "folder-missing", "fifo"]), 3))
    out = files.root / "nope" / "c.toml" if kind == "folder-missing" else files.make(kind, "c.toml", "old = 1\n")
    argv = ["calibrate", csv, "-o", out] + (["--force"] if data.draw(st.booleans()) else [])
    text = run(capsys, files, argv)
    if isinstance(text, str):
        assert text.rstrip().endswith(f"wrote {out}")
        from planner.service import load_calibration

        load_calibration(out)  # what calibrate writes, predict --calibration reads


# ---------------------------------------------------------------------------------------------
# Plain regression tests for what the properties found


def test_multi_problem_profile_error_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[load]\nrate_rps = -1\n[slo]\nttft_ms = -1\n')
    code, out, err = run_cli(capsys, ["plan", bad])
    check_outcome(code, out, err, ["plan", bad])
    assert "load.rate_rps = -1" in err and "slo.ttft_ms = -1" in err


@pytest.mark.parametrize("kind", ["fifo", "devzero", "binary", "junk", "dir", "unreadable"])
@pytest.mark.parametrize("command", ["predict", "validate", "plan-profile"])
def test_calibration_file_is_read_safely_and_named(capsys, files, kind, command):
    cal = files.make(kind, "cal.toml", "[default]\neta_kv = 0.5\n")
    if command == "predict":
        argv = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "10", "--output-len", "10",
                "--offline", "--calibration", cal]
    elif command == "validate":
        csv = files.make("valid", "m.csv", CSV_HEADER + "\n" + CSV_ROW + "\n")
        argv = ["validate", csv, "--calibration", cal]
    else:
        profile = files.make("valid", "p.toml", f'name = "x"\ncalibration = "{cal}"\n')
        argv = ["plan", profile]
    with unreadable(*files.blocked):
        code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert code == 2 and str(cal) in err, err


@pytest.mark.parametrize("text, needles", [
    ("x = [[[[", ["cal.toml", "invalid TOML"]),
    ("[default\neta_kv = 0.5\n", ["cal.toml:1:", "invalid TOML"]),
    ("x = " + "[" * 5000 + "]" * 5000, ["cal.toml", "nested too deeply"]),
    ("[default]\neta_weights = 7\n", ["cal.toml", "default.eta_weights"]),
    ("families = 3\n", ["cal.toml", "families"]),
])
def test_bad_calibration_content_names_the_file(capsys, tmp_path, text, needles):
    cal = tmp_path / "cal.toml"
    cal.write_text(text)
    argv = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "10", "--output-len", "10", "--offline",
            "--calibration", cal]
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert code == 2 and all(n in err for n in needles), err


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_measurements_that_never_end_are_refused(capsys, files, kind):
    path = files.make(kind, "m.csv")
    code, out, err = run_cli(capsys, ["validate", path])
    check_outcome(code, out, err, ["validate", path])
    assert code == 2 and "not a regular file" in err


def test_csv_cell_over_the_csv_field_limit(capsys, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(CSV_HEADER + "\n" + CSV_ROW + "x" * 200_000 + "\n")
    code, out, err = run_cli(capsys, ["validate", path])
    check_outcome(code, out, err, ["validate", path])
    assert code == 2 and "m.csv: line 2" in err and "field larger than field limit" in err


@pytest.mark.parametrize("gpus", ["", ",", " , "])
def test_search_with_an_empty_gpu_list_is_refused_not_the_whole_catalog(capsys, tmp_path, gpus):
    profile = tmp_path / "p.toml"
    profile.write_text('name = "x"\n')
    argv = ["search", profile, "--tier", "small", f"--gpus={gpus}"]
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert code == 2 and "--gpus" in err


@pytest.mark.parametrize("target", [".", "/", "folder"])
def test_output_that_is_a_folder_is_a_clear_error(capsys, tmp_path, target):
    out = tmp_path if target == "folder" else Path(target)
    profile = Path(__file__).parent.parent.parent / "profiles" / "chatbot-h100.toml"
    for argv in (["plan", profile, "--format", "json", "-o", out, "--force"],):
        code, stdout, err = run_cli(capsys, argv)
        check_outcome(code, stdout, err, argv)
        assert code == 2 and "cannot save" in err and "folder" in err


def test_empty_model_does_not_read_config_json_from_the_working_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text((HF / "llama-3.1-8b" / "config.json").read_text())
    monkeypatch.chdir(tmp_path)
    argv = ["predict", "--model", "", "--gpu", "h100", "--input-len", "10", "--output-len", "10", "--offline"]
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert code == 2 and "--model" in err


@pytest.mark.parametrize("args, needles", [
    (["--input-len", "2e7"], ["--input-len", "10000000"]),
    (["--input-len", "100", "--input-dist", "lognormal"], ["--input-dist lognormal", "p90"]),
    (["--input-len", "100", "--input-dist", "lognormal", "--input-p90", "50"], ["--input-dist lognormal", "above the mean"]),
    (["--input-len", "100", "--output-dist", "lognormal", "--output-p90", "5"], ["--output-dist lognormal", "above the mean"]),
])
def test_length_errors_name_the_options(capsys, args, needles):
    argv = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--output-len", "10", "--offline", *args]
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert code == 2 and all(n in err for n in needles), err


def test_offline_table_does_not_show_unreported_percentiles_as_infinite(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    argv = ["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "100", "--output-len", "10", "--offline"]
    code, out, err = run_cli(capsys, argv)
    assert code == 0 and err == ""
    assert "∞" not in out


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00", '{"model_type": "llama"}'.encode("utf-16")])
def test_binary_config_json_error_names_the_file(capsys, tmp_path, content):
    (tmp_path / "config.json").write_bytes(content)
    argv = ["predict", "--model", tmp_path, "--gpu", "h100", "--input-len", "10", "--output-len", "10", "--offline"]
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert "config.json" in err


@pytest.mark.parametrize("argv", [
    ["predict", "--model=--", "--gpu", "l4", "--input-len", "1", "--output-len", "1", "--offline"],
    ["predict", "--model", "llama-3.1-8b", "--gpu=--", "--input-len", "1", "--output-len", "1", "--offline"],
    ["search", "profiles/chatbot-h100.toml", "--gpus=--"],
    ["validate", "--calibration=--"],
])
def test_option_value_of_a_double_dash_is_a_usage_error(capsys, argv):
    """argparse turns `--opt=--` into an empty list, which reached the handlers (an internal error)."""
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert code == 2 and "expected a value" in err


@pytest.mark.parametrize("text, argv_tail, needles", [
    ('name = "x"\n[fleet]\ngpu = "h10"\n', ["plan"], ["p.toml: fleet.gpu: unknown GPU 'h10'", "h100-sxm"]),
    ('name = "x"\n[models]\nmedium = "llama-3.1-7b"\n', ["plan"], ["p.toml: models.medium: unknown model"]),
    ('name = "x"\n[models]\nsmall = "nope"\n', ["search", "--tier", "small", "--gpus", "l4"], ["p.toml: models.small"]),
])
def test_unknown_ids_in_a_profile_name_the_file_and_key(capsys, tmp_path, text, argv_tail, needles):
    profile = tmp_path / "p.toml"
    profile.write_text(text)
    argv = [argv_tail[0], profile, *argv_tail[1:]]
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    assert code == 2 and all(n in err for n in needles), err
