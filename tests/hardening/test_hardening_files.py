"""Profiles and measurement CSVs: generated from the schema, then mutated. Reading one gives a result
or a clear error naming the file (and, for a field, the place), within the time bound.

Generated cases per run (hypothesis max_examples): valid profiles 60, mutated profiles 200,
mutated profiles through `planner plan` 20, valid CSVs 60, mutated CSVs 150.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from hardening_inputs import CELL_NOISE, csv_line, measurement_rows, mutated_profiles, profile_dicts, to_toml
from hardening_support import CSV_HEADER, CSV_ROW, bounded, check_outcome, examples, run_cli
from hypothesis import given, note
from hypothesis import strategies as st

from planner.engine.measurements import COLUMNS, MeasurementsError, read_measurements
from planner.profile import MAX_PROFILE_BYTES, Profile, ProfileError, load_profile, profile_from_toml

WHERE = "dir/p.toml"
# "p.toml:3:7: invalid TOML ..." names a line; "p.toml: load.rate_rps = -1: ..." names a key path
PLACE = re.compile(r"^(?P<file>[^:]+\.toml)(:\d+:\d+)?: (?P<rest>.+)$")


def assert_profile_error(exc: ProfileError, where: str = WHERE) -> None:
    text = str(exc)
    assert text.strip(), "empty message"
    for line in text.splitlines():
        assert line.startswith(f"{where}"), f"a line does not name the file: {line!r}"
        assert PLACE.match(line), line
        assert "Traceback" not in line and "pydantic" not in line and "Value error," not in line, line


# ---------------------------------------------------------------------------------------------
# profiles


@examples(60)
@given(profile_dicts())
def test_generated_profiles_load_and_round_trip(data):
    """Everything the schema allows loads, and saving it gives the same profile back."""
    profile = profile_from_toml(to_toml(data), WHERE)
    assert isinstance(profile, Profile)
    from planner.profile import profile_to_toml

    assert profile_from_toml(profile_to_toml(profile), WHERE) == profile


@examples(200)
@given(mutated_profiles())
def test_mutated_profiles_load_or_fail_naming_file_and_place(case):
    kind, text = case
    note(text)
    try:
        bounded(profile_from_toml, text, WHERE, limit=10)
    except ProfileError as exc:
        assert_profile_error(exc)
        if kind in ("extra key", "non-finite") and "invalid TOML" not in str(exc):
            # a field error: after the file comes the dotted place of the key
            assert re.search(r"p\.toml: [\w\[\].-]*\w", str(exc)), str(exc)


@examples(20)
@given(mutated_profiles(planned=True))
def test_mutated_profiles_through_plan(capsys, tmp_path_factory, case):
    _, text = case
    note(text)
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_text(text, encoding="utf-8")
    argv = ["plan", path, "--format", "json"]
    code, out, err = run_cli(capsys, argv)
    check_outcome(code, out, err, argv)
    if err:
        assert str(path) in err or "[[model]]" in err, err


@pytest.mark.parametrize("text, needles", [
    ('name = "x"\nname = "y"\n', ["p.toml:2:", "invalid TOML"]),  # duplicate keys: TOML forbids them
    ('name = "x"\n[load]\nrate_rps = 1\n[load]\nrate_rps = 2\n', ["p.toml:4:", "invalid TOML"]),
    ('name = "x"\n[load]\nrate_rps = "fast"\n', ["load.rate_rps", "must be a number"]),
    ('name = "x"\nload = 5\n', ["load", "must be a table"]),
    ('name = "x"\n[slo]\nttft_ms = inf\n', ["slo.ttft_ms = inf", "finite"]),
    ('name = "x"\n[fleet]\nprice_usd_hour = inf\n', ["fleet.price_usd_hour = inf", "finite"]),
    ('name = "x"\n[load]\nrate_rps = 1\ninput_len = {kind = "lognormal", mean = 1000, p90 = inf}\n',
     ["load.input_len.p90 = inf", "finite"]),
    ('name = "x"\n[load]\nrate_rps = 1\ninput_len = {kind = "fixed", mean = 1000, max = inf}\n', ["load.input_len.max = inf"]),
    ('name = "x"\n[slo]\ne2e_ms = nan\n', ["slo.e2e_ms = nan"]),
    ('name = "x"\ndescription = ' + "[" * 3000 + "]" * 3000 + "\n", ["nested too deeply"]),
    ('name = "x"\n[plan]\nx = ' + "{a = " * 2000 + "1" + "}" * 2000 + "\n", ["nested too deeply"]),
    ('name = "ünï 🦙"\n[load]\nrate_rps = 1e400\n', ["load.rate_rps = inf", "finite"]),
    ('name = "x"\n[fleet]\ngpus_per_node = 99999999999999999999999\n', ["fleet.gpus_per_node", "<= 1024"]),
])
def test_profile_regressions(text, needles):
    with pytest.raises(ProfileError) as info:
        profile_from_toml(text, WHERE)
    assert_profile_error(info.value)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_a_plan_export_with_non_finite_results_still_opens():
    """[plan] holds results, not inputs: it is not checked for inf."""
    assert profile_from_toml('name = "x"\n[plan]\nusd = inf\n', WHERE).name == "x"


def test_many_custom_entries_validate_in_linear_time(tmp_path):
    """Duplicate-id checking was quadratic: 20,000 [[model]] entries took 5 s, a 10 MB file hours."""
    text = 'name = "x"\n' + "".join(f'[[model]]\nid = "m{i}"\nconfig = "c{i}.json"\n' for i in range(30_000))
    text += '[[model]]\nid = "m7"\nconfig = "again.json"\n'
    start = time.perf_counter()
    with pytest.raises(ProfileError, match="'m7' is defined more than once"):
        bounded(profile_from_toml, text, WHERE, limit=20)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("kind", ["fifo", "devzero", "folder-with-fifo"])
def test_custom_model_config_that_never_ends_is_refused(tmp_path, kind):
    if kind == "devzero":
        config = "/dev/zero"
    else:
        target = tmp_path / ("m" if kind == "folder-with-fifo" else "config.json")
        if kind == "folder-with-fifo":
            target.mkdir()
            os.mkfifo(target / "config.json")
        else:
            os.mkfifo(target)
        config = target.name
    profile = profile_from_toml(f'name = "x"\n[[model]]\nid = "mine"\nconfig = "{config}"\n', WHERE)
    with pytest.raises(ProfileError, match=r"\[\[model\]\] 'mine': .*not a regular file"):
        bounded(profile.custom_models, tmp_path, limit=10)


def test_fifty_megabyte_profile_is_refused_quickly(tmp_path):
    big = tmp_path / "big.toml"
    with big.open("wb") as f:
        f.write(b'name = "x"\ndescription = "')
        chunk = b"junk " * 200_000
        while f.tell() < 50 * 2**20:
            f.write(chunk)
        f.write(b'"\n')
    start = time.perf_counter()
    with pytest.raises(ProfileError) as info:
        bounded(load_profile, big, limit=20)
    assert str(info.value) == f"{big}: over {MAX_PROFILE_BYTES // 2**20} MiB; not a profile"
    assert time.perf_counter() - start < 10


def test_profile_just_under_the_limit_reads_within_the_bound(tmp_path):
    """9 MiB of comments is a valid (if silly) profile: it loads, within the time bound."""
    path = tmp_path / "long.toml"
    line = "# " + "x" * 98 + "\n"
    path.write_text('name = "x"\n' + line * (9 * 2**20 // len(line)))
    assert bounded(load_profile, path, limit=20).profile.name == "x"


# ---------------------------------------------------------------------------------------------
# measurement CSVs


def write_csv(tmp: Path, lines: list[str], name: str = "m.csv") -> Path:
    path = tmp / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    return path


@examples(60)
@given(st.lists(measurement_rows(), min_size=1, max_size=20))
def test_generated_csv_rows_parse_exactly(tmp_path_factory, rows):
    path = write_csv(tmp_path_factory.mktemp("m"), [CSV_HEADER, *(csv_line(r) for r in rows)])
    data = read_measurements(path)
    assert data.errors == ()
    assert [(m.model, m.gpu, m.metric, m.mode) for m in data] == [(r["model"], r["gpu"], r["metric"], r["mode"]) for r in rows]


@st.composite
def mutated_csv(draw) -> tuple[str, list[str]]:
    rows = draw(st.lists(measurement_rows(), min_size=1, max_size=8))
    lines = [CSV_HEADER, *(csv_line(r) for r in rows)]
    kind = draw(st.sampled_from(["cell", "cell", "drop column", "extra column", "short row", "long row", "header",
                                 "unicode", "quote", "crlf", "bom", "blank lines", "huge number"]))
    i = draw(st.integers(1, len(lines) - 1))
    if kind == "cell":
        row = dict(rows[i - 1])
        for column in draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=4)):
            row[column] = draw(CELL_NOISE)
        lines[i] = csv_line(row)
    elif kind == "drop column":
        column = draw(st.sampled_from(COLUMNS))
        kept = [c for c in COLUMNS if c != column]
        lines = [",".join(kept), *(csv_line(r, kept) for r in rows)]
    elif kind == "extra column":
        lines = [CSV_HEADER + ",extra", *(csv_line(r) + ",x" for r in rows)]
    elif kind == "short row":
        lines[i] = ",".join(lines[i].split(",")[: draw(st.integers(0, 10))])
    elif kind == "long row":
        lines[i] += ",1,2,3"
    elif kind == "header":
        lines[0] = draw(st.sampled_from(["", "model;gpu;tp", CSV_HEADER.upper(), CSV_HEADER.replace(",", ", "),
                                         CSV_HEADER.replace("value", "value,value"), '"' + CSV_HEADER]))
    elif kind == "unicode":
        text = draw(st.text(st.characters(min_codepoint=0x80, blacklist_categories=("Cs",)), min_size=1, max_size=5))
        at = draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:at] + text + lines[i][at:]
    elif kind == "quote":
        at = draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:at] + '"' + lines[i][at:]
    elif kind == "crlf":
        lines = [line + "\r" for line in lines]
    elif kind == "bom":
        lines[0] = "\ufeff" + lines[0]
    elif kind == "blank lines":
        lines.insert(i, draw(st.sampled_from(["", ",,,,", "   ", ",,,,,,,,,,,,,,,,"])))
    elif kind == "huge number":
        row = dict(rows[i - 1])
        row[draw(st.sampled_from(["tp", "rate", "concurrency", "input_len", "value", "max_seqs"]))] = draw(
            st.sampled_from(["1e308", "1e309", "9" * 400, "-1e308", "5e-324"]))
        lines[i] = csv_line(row)
    return kind, lines


@examples(150)
@given(mutated_csv())
def test_mutated_csvs_read_or_fail_naming_the_file(tmp_path_factory, case):
    kind, lines = case
    note("\n".join(lines))
    path = write_csv(tmp_path_factory.mktemp("m"), lines, "bench.csv")
    try:
        data = bounded(read_measurements, path, limit=10)
    except MeasurementsError as exc:
        message = str(exc)
        assert message.startswith("bench.csv: ") and "\n" not in message, message
        return
    physical = len(re.findall(r"\r\n|\r|\n", path.read_text(encoding="utf-8", errors="replace")))
    for error in data.errors:  # a bad row names its (first) line and its column
        assert 2 <= error.line <= physical and error.column in COLUMNS, error
        assert error.message and "Traceback" not in error.message
    for m in data:
        for name in ("tp", "input_len", "output_len", "value"):
            value = getattr(m, name)
            assert value == value and abs(value) != float("inf"), (name, value)  # never NaN or inf


def test_fifty_megabyte_csv_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as f:
        f.write((CSV_HEADER + "\n").encode())
        row = (CSV_ROW + "\n").encode()
        block = row * (2**20 // len(row))
        while f.tell() < 50 * 2**20:
            f.write(block)
    start = time.perf_counter()
    with pytest.raises(MeasurementsError, match=r"^big\.csv: over 16 MiB"):
        bounded(read_measurements, path, limit=20)
    assert time.perf_counter() - start < 5


def test_fifty_megabyte_csv_through_validate(capsys, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as f:
        f.truncate(50 * 2**20)  # sparse: 50 MB of NUL bytes
    code, out, err = run_cli(capsys, ["validate", path])
    check_outcome(code, out, err, ["validate", path])
    assert code == 2 and "big.csv" in err


@pytest.mark.parametrize("kind", ["fifo", "devzero", "folder"])
def test_csv_paths_that_are_not_files(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "m.csv"
        os.mkfifo(path)
    elif kind == "devzero":
        path = Path("/dev/zero")
    else:
        path = tmp_path
    with pytest.raises(MeasurementsError) as info:
        bounded(read_measurements, path, limit=10)
    assert ("not a regular file" if kind != "folder" else "is a directory") in str(info.value)


def test_binary_after_the_sniffed_prefix(tmp_path):
    """NUL bytes past the first 8 KiB are not sniffed: the rows holding them are just bad rows."""
    path = tmp_path / "m.csv"
    path.write_bytes(((CSV_HEADER + "\n") + (CSV_ROW + "\n") * 200).encode() + CSV_ROW.replace("h100", "h1\0").encode() + b"\n")
    data = bounded(read_measurements, path, limit=10)
    assert len(data) == 201  # the gpu name with a NUL reads as text; evaluation reports it unknown


@pytest.mark.parametrize("per_token", [9, 0])
def test_custom_moe_with_impossible_routing_is_refused(per_token):
    from planner.engine import catalog

    fields = catalog.get_model("mixtral-8x7b").model_dump(exclude_none=True, exclude={"quality"})
    fields.update(id="bad-moe", aliases=[], experts_per_token=per_token)
    text = 'name = "x"\n' + to_toml({"model": [fields]})
    with pytest.raises(ProfileError, match=r"model\[0\]\.experts_per_token"):
        profile_from_toml(text, WHERE)


def test_row_errors_name_the_first_line_of_a_multi_line_record(tmp_path):
    """A quoted cell may hold line breaks; the error names the line the record starts on, not where it ends."""
    text = (CSV_HEADER + "\n\n" + '"\nx\r\n",h100-sxm,1,,bf16,bf16,offline,,,1,1,,,,ttft_ms_mean,1,src\n'
            + CSV_ROW.replace(",24,", ",abc,") + "\n")
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode())
    errors = {(e.line, e.column) for e in read_measurements(path).errors}
    assert (6, "value") in errors  # header 1, blank 2, a record over lines 3-5, the bad value on 6
    assert all(line in (3, 6) for line, _ in errors), errors
