"""Every number a person reads goes through planner.report's formatters: no scientific notation,
no float noise, no false precision. JSON keeps full precision."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from planner.cli import main
from planner.report import fmt_gb, fmt_num, fmt_sig

HF = Path(__file__).parent / "data" / "hf"
HEADER = ("model,gpu,tp,pp,weights,kv,mode,rate,concurrency,input_len,output_len,max_seqs,max_batched_tokens,prefix_hit,"
          "metric,value,source")
MAGNITUDES = [m * 10.0**k for k in range(-6, 31) for m in (1.0, 1.23456789, 9.87654321)]
NOISE = re.compile(r"[1-9][\d,]*\.\d{4,}|\de[+-]\d|\d{16,}")  # 11.5741, 1.039e+04, 750625000000001125...


def as_float(text: str) -> float:
    return float(text.replace(",", ""))


def significant_digits(text: str) -> int:
    return len(text.lstrip("-").replace(",", "").replace(".", "").strip("0"))


@pytest.mark.parametrize("digits", [3, 4])
@pytest.mark.parametrize("sign", [1, -1])
def test_fmt_sig_is_plain_and_keeps_its_digits(digits, sign):
    for value in MAGNITUDES:
        text = fmt_sig(sign * value, digits)
        assert "e" not in text and not NOISE.search(text), (value, text)
        assert as_float(text) == pytest.approx(sign * value, rel=0.51 * 10.0 ** (1 - digits)), (value, text)
        # whole numbers keep their digits up to a float's 15; fractions keep `digits`
        assert significant_digits(text) <= (min(len(f"{round(value):d}"), 15) if value >= 10 ** digits else digits), text


def test_fmt_gb_moves_to_larger_units():
    units = {"GB": 1, "TB": 1e3, "PB": 1e6, "EB": 1e9, "ZB": 1e12, "YB": 1e15}
    for value in MAGNITUDES:
        text = fmt_gb(value)
        number, unit = text.rsplit(" ", 1)
        assert "e" not in number and (as_float(number) < 1000 or unit == "YB"), text
        assert as_float(number) * units[unit] == pytest.approx(value, rel=0.06, abs=0.05), text


def test_fmt_num_never_uses_scientific_notation():
    for value in MAGNITUDES:
        assert "e" not in fmt_num(value) and not NOISE.search(fmt_num(value)), value


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


def test_a_model_too_large_for_any_gpu_reads_in_large_units(capsys, tmp_path):
    config = json.loads((HF / "llama-3.1-8b" / "config.json").read_text())
    config["hidden_size"] *= 1_000_000
    config["intermediate_size"] *= 1_000_000
    (tmp_path / "config.json").write_text(json.dumps(config))
    for fmt in ("json", "table"):
        code, out = run(capsys, "predict", "--model", tmp_path, "--gpu", "h100", "--input-len", "100", "--output-len", "10",
                        "--offline", "--format", fmt)
        assert code == 3 and "does not fit" in out
        assert not NOISE.search(out) and "ZB" in out, out


def test_plan_title_shows_the_load_as_set(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    profile = tmp_path / "p.toml"
    profile.write_text('name = "x"\n[load]\nrequests_per_day = 1000000\npeak_factor = 1\n'
                       'input_len = { kind = "lognormal", mean = 3000, p90 = 6000 }\n'
                       'output_len = { kind = "exponential", mean = 400 }\n')
    _, out = run(capsys, "plan", profile)
    title = out.splitlines()[0]
    assert f"peak {1e6 / 86400:.1f} req/s" in title, title  # not 11.5741
    assert f"{3000:,} in / {400:,} out" in title, title  # the means as set, not the sampled 2999 / 399
    _, out = run(capsys, "plan", profile, "--format", "json")
    load = json.loads(out)["load"]
    assert load["peak_rate_rps"] == pytest.approx(1e6 / 86400, abs=1e-4)  # JSON keeps its precision
    assert load["mean_input_tokens"] != 3000  # and the sampled mean


def test_validate_shows_large_values_in_full(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    csv = tmp_path / "m.csv"
    csv.write_text(f"{HEADER}\nllama-3.1-8b,h100-sxm,1,,bf16,bf16,offline,,,128,128,,,,output_tok_s,10390,https://example.org\n")
    _, out = run(capsys, "validate", csv)
    assert "10,390" in out and not NOISE.search(out), out


def test_length_errors_show_large_lengths_plainly(capsys):
    code = main(["predict", "--model", "llama-3.1-8b", "--gpu", "h100", "--input-len", "1e6", "--input-dist", "lognormal",
                 "--input-p90", "1e5", "--output-len", "10", "--offline"])
    err = capsys.readouterr().err
    assert code == 2 and "p90 (100,000) must be above the mean (1,000,000)" in err, err


def test_long_waits_read_in_plain_seconds():
    from planner.engine.saturated import _seconds  # the closed loop's "~X for a batch slot" note

    assert _seconds(1234.5) == "1,234 s" and _seconds(12.345) == "12.3 s" and _seconds(0.25) == "250 ms"
