"""One path from a profile to the engine: the CLI (every command that reads a profile) and the app
resolve a profile the same way, and read the calibration it names with one loader."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import tomli_w

from planner.cli import main, summary
from planner.engine.knobs import shipped_calibration
from planner.engine.trust import BAND_GROUPS, LOAD_BANDS
from planner.profile import load_profile
from planner.report import fmt_sig
from planner.service import ComputeError, load_calibration, resolve
from planner.tui.compute import compute

HF = Path(__file__).parent / "data" / "hf"


def own_calibration(folder: Path) -> dict[str, float]:
    """A calibration beside the profile: the shipped knobs, with cross-validated bands unlike the
    shipped ones (every band the same, so each group's widest is known). Returns those bands."""
    shipped = shipped_calibration()
    widest = max(v for band in shipped.cv_error_pct.values() for v in band.values())
    bands = {group: round(widest + 7.0 * (i + 1), 1) for i, group in enumerate(BAND_GROUPS)}
    keys = ["all", *LOAD_BANDS, "unmeasured", *(k for k in shipped.cv_error_pct if k.startswith(("gpu ", "engine ")))]
    own = shipped.model_copy(update={"cv_error_pct": {k: dict(bands) for k in keys}})
    (folder / "cal.toml").write_text(tomli_w.dumps(own.model_dump(exclude_none=True)), encoding="utf-8")
    return bands


def write_profile(folder: Path, extra: str = "", models: str = "") -> Path:
    path = folder / "p.toml"
    models = models or 'small = "llama-3.2-3b"\nmedium = "llama-3.1-8b"\nlarge = "llama-3.1-70b"\n'
    path.write_text(f'name = "own-calibration"\n{extra}\n[models]\n{models}\n[load]\nrate_rps = 2.0\n'
                    '[fleet]\ngpu = "h100-sxm"\n', encoding="utf-8")
    return path


def test_a_profile_naming_its_own_calibration_shows_its_bands_everywhere(tmp_path, capsys, monkeypatch):
    bands = own_calibration(tmp_path)
    path = write_profile(tmp_path, 'calibration = "cal.toml"')
    assert main(["plan", str(path), "--format", "json"]) in (0, 3)
    cli = json.loads(capsys.readouterr().out)
    assert [t["error_pct"] for t in cli["tiers"]] == [bands] * 3
    app = compute(load_profile(path).profile, tmp_path, cache=False)
    assert [t["error_pct"] for t in app.data["tiers"]] == [bands] * 3
    assert main(["export", str(path), "--to", "toml"]) in (0, 3)
    export = tomllib.loads(capsys.readouterr().out)
    assert [t["error_pct"] for t in export["plan"]["tiers"]] == [bands] * 3
    # `planner PROFILE` without Textual prints the plan's table: it read the shipped calibration
    monkeypatch.setenv("COLUMNS", "300")
    summary(str(path))
    table = capsys.readouterr().out
    assert f"±{fmt_sig(bands['throughput'])}% throughput" in table


def test_the_cli_reads_a_tier_model_config_relative_to_the_profile_as_the_app_does(tmp_path, capsys, monkeypatch):
    shutil.copytree(HF / "qwen2.5-7b", tmp_path / "models" / "qwen")
    path = write_profile(tmp_path, models='small = "llama-3.2-3b"\nmedium = "models/qwen"\nlarge = "llama-3.1-70b"\n')
    monkeypatch.chdir(tmp_path.parent)  # not the profile's folder
    assert main(["plan", str(path), "--format", "json"]) in (0, 3)
    cli = json.loads(capsys.readouterr().out)
    app = compute(load_profile(path).profile, tmp_path, cache=False)
    assert cli["tiers"][1]["model"] == app.data["tiers"][1]["model"] == "models/qwen"
    assert cli["tiers"] == app.data["tiers"]


def test_an_unknown_id_names_the_profile_key_in_the_cli_and_the_message_in_the_app(tmp_path, capsys):
    path = write_profile(tmp_path, models='small = "llama-3.2-3b"\nmedium = "no-such-model"\nlarge = "llama-3.1-70b"\n')
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: models.medium: unknown model 'no-such-model'" in err
    with pytest.raises(ComputeError) as raised:
        resolve(load_profile(path).profile, tmp_path)
    assert raised.value.field == "models.medium" and str(raised.value).startswith("unknown model 'no-such-model'")


@pytest.mark.parametrize("content, needle", [
    (None, "no such file"),
    ("[default]\neta_kv = 'high'\n", "default.eta_kv"),
    ("[default\n", "invalid TOML"),
])
def test_one_calibration_loader_names_the_file_for_the_cli_and_the_app(tmp_path, capsys, content, needle):
    cal = tmp_path / "cal.toml"
    if content is not None:
        cal.write_text(content, encoding="utf-8")
    path = write_profile(tmp_path, 'calibration = "cal.toml"')
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"planner: error: {cal}") and needle in err and len(err.splitlines()) == 1
    with pytest.raises(ComputeError) as raised:
        resolve(load_profile(path).profile, tmp_path)
    assert str(raised.value) == err.removeprefix("planner: error: ")
    with pytest.raises(ValueError) as direct:
        load_calibration(cal)
    assert str(direct.value) == str(raised.value)


def test_the_cli_searches_the_profiles_own_gpus_as_the_app_does(tmp_path, capsys):
    from planner.engine import catalog
    from planner.service import fleet_search

    h100 = catalog.get_gpu("h100-sxm").model_dump(exclude_none=True)
    cheapest = min(g.price_usd_hour for g in catalog.gpus().values() if g.price_usd_hour)
    own = h100 | {"id": "own-h100", "aliases": [], "price_usd_hour": cheapest / 10}  # an H100 below any price
    path = write_profile(tmp_path, tomli_w.dumps({"gpu": [own]}))
    assert main(["search", str(path), "--tier", "small", "--top", "3", "--format", "json"]) == 0
    [tier] = json.loads(capsys.readouterr().out)["tiers"]
    app = fleet_search(load_profile(path).profile, tmp_path, "small", top=3)
    assert tier["top"][0]["gpu"] == app.rows[0].gpu == "own-h100"
    assert [r["gpu"] for r in tier["top"]] == [r.gpu for r in app.rows]
