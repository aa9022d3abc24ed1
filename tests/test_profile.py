"""Profile schema, TOML round trip, error messages and atomic, conflict-aware saving."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import types
import typing
from pathlib import Path

import annotated_types as at
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from planner.engine.engines import ENGINES
from planner.engine.scenario import LengthDist, Load, Optimizations, Scenario
from planner.engine.specs import GpuSpec, ModelSpec
from planner.profile import (
    HfModelRef,
    Profile,
    ProfileConflictError,
    ProfileError,
    default_profile,
    default_profile_text,
    load_profile,
    profile_from_toml,
    profile_to_dict,
    profile_to_toml,
    profile_to_toml_over,
    save_profile,
    save_text_atomic,
    user_profiles,
    user_profiles_dir,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "profiles").glob("*.toml"))
EXPECTED_PROFILES = {
    "chatbot-h100",
    "startup-chatbot",
    "enterprise-support",
    "edge-assistant",
    "rag-long-context",
    "batch-summarisation",
    "code-assistant",
}


def error_of(text: str, where: str = "bad.toml") -> str:
    with pytest.raises(ProfileError) as info:
        profile_from_toml(text, where)
    return str(info.value)


# ---------------------------------------------------------------- schema and defaults


def test_minimal_profile_is_two_lines():
    p = profile_from_toml('name = "mini"\n[load]\nrate_rps = 5\n')
    assert p.schema_version == 1
    assert p.load.rate_rps == 5
    assert p.scenario().model_dump(exclude={"load"}) == Scenario().model_dump(exclude={"load"})


def test_lengths_accept_a_number_or_a_table():
    p = profile_from_toml(
        'name = "x"\n[load]\nrate_rps = 1\ninput_len = 800\n'
        'output_len = { kind = "lognormal", mean = 1000, p90 = 2200 }\n'
    )
    assert p.load.input_len == LengthDist(kind="fixed", mean=800)
    assert p.load.output_len.kind == "lognormal" and p.load.output_len.p90 == 2200


def test_scenario_is_a_copy():
    p = profile_from_toml('name = "x"\n')
    s = p.scenario()
    s.load.rate_rps = 99
    assert p.load.rate_rps == 10
    assert Profile.from_scenario(s, "y").load.rate_rps == 99


def test_off_switches_a_target_off_and_round_trips():
    p = profile_from_toml('name = "x"\n[slo]\nttft_ms = "off"\n')
    assert p.slo.ttft_ms is None
    text = profile_to_toml(p)
    assert 'ttft_ms = "off"' in text
    assert profile_from_toml(text) == p


def test_exported_plan_opens_as_a_profile_and_is_not_written_back():
    p = default_profile()
    plan = {"planner_version": "0.1.0", "date": "2025-01-01", "small": {"gpus": 2, "note": None}}
    exported = profile_to_toml(p, plan=plan)
    reopened = profile_from_toml(exported)
    assert reopened.plan == {"planner_version": "0.1.0", "date": "2025-01-01", "small": {"gpus": 2}}
    assert reopened.model_copy(update={"plan": None}) == p
    assert "[plan]" not in profile_to_toml(reopened)
    assert "plan" not in profile_to_dict(reopened)


# ---------------------------------------------------------------- custom tables


def test_custom_tables_example_in_reference_profile_is_valid():
    text = (ROOT / "profiles" / "chatbot-h100.toml").read_text()
    block = text.split("# >>> custom tables example\n")[1].split("# <<< custom tables example")[0]
    uncommented = "\n".join(line.removeprefix("#").removeprefix(" ") for line in block.splitlines())
    p = profile_from_toml('name = "custom"\n' + uncommented)
    assert [g.id for g in p.custom_gpus()] == ["rtx-6000-ada"]
    assert isinstance(p.custom_gpus()[0], GpuSpec)
    assert p.model == [HfModelRef(id="my-finetune", config="models/my-finetune/config.json")]


def test_custom_models_reads_hf_config_relative_to_profile(tmp_path, monkeypatch):
    spec = ModelSpec(
        id="from-config", name="Tiny", family="llama", layers=2, hidden=64, heads=4, kv_heads=4,
        head_dim=16, ffn_dim=128, vocab=1000, max_context=2048, source="test",
    )  # fmt: skip
    seen: list[Path] = []

    def fake_reader(path, display=None):
        seen.append(Path(path))
        return spec

    fake = types.ModuleType("planner.engine.hf_config")
    fake.model_from_hf_config = fake_reader
    monkeypatch.setitem(sys.modules, "planner.engine.hf_config", fake)
    p = profile_from_toml('name = "x"\n[[model]]\nid = "mine"\nconfig = "cfg/config.json"\n')
    inline = spec.model_copy(update={"id": "inline"})
    p = p.model_copy(update={"model": [*p.model, inline]})
    models = p.custom_models(tmp_path)
    assert seen == [tmp_path / "cfg" / "config.json"]
    assert [m.id for m in models] == ["mine", "inline"]
    assert models[0].name == "Tiny"


def test_custom_models_wraps_reader_errors(tmp_path, monkeypatch):
    def broken(path, display=None):
        raise FileNotFoundError(2, "No such file or directory")

    fake = types.ModuleType("planner.engine.hf_config")
    fake.model_from_hf_config = broken
    monkeypatch.setitem(sys.modules, "planner.engine.hf_config", fake)
    p = profile_from_toml('name = "x"\n[[model]]\nid = "mine"\nconfig = "missing.json"\n')
    with pytest.raises(ProfileError, match=r"^\[\[model\]\] 'mine': .*No such file"):
        p.custom_models(tmp_path)


def test_custom_models_with_the_real_hf_reader(tmp_path):
    pytest.importorskip("planner.engine.hf_config")
    folder = tmp_path / "cfg"
    folder.mkdir()
    # Llama-3.2-1B's config.json, trimmed to the keys that shape the model
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
        "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
        "max_position_embeddings": 131072, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    p = profile_from_toml('name = "x"\n[[model]]\nid = "tiny-llama"\nconfig = "cfg/config.json"\n')
    (spec,) = p.custom_models(tmp_path)
    assert spec.id == "tiny-llama"
    assert spec.layers == 16 and spec.kv_heads == 8
    p = profile_from_toml('name = "x"\n[[model]]\nid = "gone"\nconfig = "nope/config.json"\n')
    with pytest.raises(ProfileError, match=r"^\[\[model\]\] 'gone': .*nope"):
        p.custom_models(tmp_path)


def test_duplicate_custom_ids_are_rejected():
    msg = error_of('name = "x"\n[[model]]\nid = "a"\nconfig = "1.json"\n[[model]]\nid = "a"\nconfig = "2.json"\n')
    assert msg == "bad.toml: [[model]] id 'a' is defined more than once"


# ---------------------------------------------------------------- error messages


def test_toml_syntax_error_names_line_and_column():
    msg = error_of('name = "x"\n[load]\nrate_rps 5\n')
    assert msg == "bad.toml:3:10: invalid TOML: Expected '=' after a key in a key/value pair"


def test_field_error_names_path_value_and_allowed_range():
    assert error_of('name = "x"\n[load]\nrate_rps = -3\n') == "bad.toml: load.rate_rps = -3: must be >= 0"


def test_literal_and_union_errors_say_what_is_allowed():
    msg = error_of('name = "x"\n[optimizations]\ntp = "x"\n')
    assert msg == "bad.toml: optimizations.tp = \"x\": must be 'auto' or a whole number"
    msg = error_of('name = "x"\n[optimizations]\nkv = "fp4"\n')
    assert msg.startswith("bad.toml: optimizations.kv = \"fp4\": must be one of 'auto', 'bf16'")


def test_unknown_key_suggests_the_nearest_name():
    msg = error_of('name = "x"\n[load]\nrate_rps = 1\noutput_length = 200\n')
    assert msg == "bad.toml: load.output_length: unknown key; did you mean `output_len`?"
    assert "did you mean `load`?" in error_of('name = "x"\n[lod]\nrate_rps = 1\n')
    assert "did you mean `layers`?" in error_of('name = "x"\n[[model]]\nid = "m"\nlayrs = 2\n')


def test_section_level_rule_and_missing_keys():
    msg = error_of('name = "x"\n[load]\nrate_rps = 1\nrequests_per_day = 5\n')
    assert msg == "bad.toml: load: give rate_rps or requests_per_day, not both"
    assert error_of("[load]\nrate_rps = 1\n") == "bad.toml: missing required key: `name`"


def test_several_errors_get_one_line_each():
    msg = error_of('name = "x"\n[load]\nrate_rps = -1\n[slo]\nmax_utilization = 2\n')
    assert msg.splitlines() == [
        "bad.toml: load.rate_rps = -1: must be >= 0",
        "bad.toml: slo.max_utilization = 2: must be <= 0.99",
    ]


def test_newer_schema_version_is_refused_and_missing_means_1():
    msg = error_of('schema_version = 3\nname = "x"\n')
    assert msg == "bad.toml: schema_version 3 is newer than this planner understands (1); upgrade planner"
    assert profile_from_toml('name = "x"\n').schema_version == 1


def test_directory_is_reported(tmp_path):
    with pytest.raises(ProfileError, match=r"is a folder, not a profile file$"):
        load_profile(tmp_path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ProfileError, match=r"nope\.toml: no such file$"):
        load_profile(tmp_path / "nope.toml")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_is_reported(tmp_path):
    path = tmp_path / "locked.toml"
    path.write_text('name = "x"\n')
    path.chmod(0)
    try:
        with pytest.raises(ProfileError, match=r"locked\.toml: permission denied$"):
            load_profile(path)
    finally:
        path.chmod(0o644)


def test_binary_and_non_utf8_files_are_reported(tmp_path):
    binary = tmp_path / "image.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ProfileError, match=r"image\.toml: binary file, not a TOML profile$"):
        load_profile(binary)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('name = "café"\n'.encode("latin-1"))
    with pytest.raises(ProfileError, match=r"latin1\.toml: not UTF-8 text \(bad byte at offset 11\)$"):
        load_profile(latin1)


def test_utf8_bom_is_tolerated(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfname = "x"\n')
    assert load_profile(path).profile.name == "x"


# ---------------------------------------------------------------- saving


def write_profile(path: Path, name: str) -> None:
    path.write_text(f'name = "{name}"\n')


def test_save_and_load(tmp_path):
    path = tmp_path / "p.toml"
    saved = save_profile(default_profile(), path)
    loaded = load_profile(path)
    assert loaded.profile == default_profile()
    assert loaded.mtime_ns == saved.mtime_ns
    assert loaded.base_dir == tmp_path


def test_failed_replace_leaves_original_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "p.toml"
    write_profile(path, "original")

    def boom(src, dst):
        raise RuntimeError("crash during rename")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(RuntimeError):
        save_profile(default_profile(), path)
    assert path.read_text() == 'name = "original"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_full_disk_leaves_original_and_no_temp(tmp_path, monkeypatch, failing):
    path = tmp_path / "p.toml"
    write_profile(path, "original")

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, failing, no_space)
        with pytest.raises(ProfileError) as info:
            save_profile(default_profile(), path)
    assert str(info.value) == f"{path}: cannot save: No space left on device"
    assert path.read_text() == 'name = "original"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


def test_save_into_missing_folder_is_a_profile_error(tmp_path):
    with pytest.raises(ProfileError, match="cannot save"):
        save_text_atomic(tmp_path / "no-such-dir" / "plan.toml", "x = 1\n")


def test_save_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "p.toml"
    write_profile(path, "original")
    path.chmod(0o640)
    save_text_atomic(path, 'name = "new"\n')
    assert path.stat().st_mode & 0o777 == 0o640


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.toml"
    write_profile(real, "original")
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    save_text_atomic(link, 'name = "new"\n')
    assert link.is_symlink() and real.read_text() == 'name = "new"\n'


def test_conflict_when_file_changed_since_load(tmp_path):
    path = tmp_path / "p.toml"
    save_profile(default_profile(), path)
    loaded = load_profile(path)
    write_profile(path, "someone-else")
    # Some filesystems tick coarsely: make the change visible in the mtime for sure.
    os.utime(path, ns=(loaded.mtime_ns + 5_000_000_000, loaded.mtime_ns + 5_000_000_000))
    mine = loaded.profile.model_copy(update={"description": "mine"})
    with pytest.raises(ProfileConflictError, match="changed on disk since it was opened"):
        save_profile(mine, path, expected_mtime_ns=loaded.mtime_ns)
    assert load_profile(path).profile.name == "someone-else"
    saved = save_profile(mine, path, expected_mtime_ns=loaded.mtime_ns, overwrite_changed=True)
    assert load_profile(path).profile.description == "mine"
    # The returned state is the new baseline: saving again from it is not a conflict.
    save_profile(mine, path, expected_mtime_ns=saved.mtime_ns)


def test_unchanged_file_saves_without_conflict(tmp_path):
    path = tmp_path / "p.toml"
    save_profile(default_profile(), path)
    loaded = load_profile(path)
    save_profile(loaded.profile, path, expected_mtime_ns=loaded.mtime_ns)


# ---------------------------------------------------------------- folders and shipped profiles


def test_user_profiles_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANNER_CONFIG_DIR", str(tmp_path))
    assert user_profiles_dir() == tmp_path / "profiles"
    assert user_profiles() == []
    folder = user_profiles_dir(create=True)
    save_profile(default_profile(), folder / "mine.toml")
    assert user_profiles() == [folder / "mine.toml"]


def test_user_profiles_dir_defaults_to_platform_config(monkeypatch):
    monkeypatch.delenv("PLANNER_CONFIG_DIR", raising=False)
    from platformdirs import user_config_path

    assert user_profiles_dir() == user_config_path("planner") / "profiles"


def test_all_example_profiles_ship():
    assert {p.stem for p in SHIPPED} >= EXPECTED_PROFILES


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_profile_loads_and_round_trips(path, tmp_path):
    p = load_profile(path).profile
    assert p.name == path.stem
    p.scenario()
    copy = tmp_path / path.name
    save_profile(p, copy)
    assert load_profile(copy).profile == p


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_profile_explains_every_key(path):
    previous = ""
    for line in path.read_text().splitlines():
        if re.match(r"[a-z_0-9]+ *=", line):
            assert "#" in line or previous.startswith("#"), f"{path.name}: no comment for {line!r}"
        previous = line


def test_packaged_default_is_identical_to_the_example():
    packaged = ROOT / "planner" / "profiles" / "chatbot-h100.toml"
    assert packaged.read_bytes() == (ROOT / "profiles" / "chatbot-h100.toml").read_bytes()


def test_default_profile_spells_out_the_scenario_defaults():
    p = default_profile()
    assert p.name == "chatbot-h100"
    assert p.optimizations.weights == "fp8"  # the one deliberate change: 405B fits 8x H100
    defaults = Scenario()
    defaults.optimizations.weights = "fp8"
    assert p.scenario() == defaults


def test_shipped_ids_exist_in_the_catalogs():
    catalog = pytest.importorskip("planner.engine.catalog")
    for path in SHIPPED:
        s = load_profile(path).profile.scenario()
        catalog.get_gpu(s.fleet.gpu)
        for model_id in s.models.model_dump().values():
            catalog.get_model(model_id)


# ---------------------------------------------------------------- round-trip property

# Field-specific strategies where model-level rules narrow what the field types allow.
OVERRIDES = {
    (Optimizations, "tp"): st.one_of(st.just("auto"), st.integers(1, 1024)),
    (Optimizations, "pp"): st.one_of(st.just("auto"), st.integers(1, 64)),
    (GpuSpec, "tflops"): st.dictionaries(
        st.sampled_from(["fp16", "fp8", "int8", "fp4"]), st.floats(0, 1e5)
    ).map(lambda d: {"bf16": 1000.0, **d}),
    (GpuSpec, "engines"): st.lists(st.sampled_from(ENGINES), min_size=1, unique=True),
    (Profile, "schema_version"): st.just(1),
    (Profile, "plan"): st.none(),
}
# Text as a profile holds it: control characters are cleaned out on load (see test_text_is_printable).
CHARS = st.characters(codec="utf-8", exclude_categories=("Cc",),
                      exclude_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
TEXT = st.text(CHARS, max_size=12)


def length_dists() -> st.SearchStrategy[LengthDist]:
    mean = st.floats(1, 1e6)
    simple = st.builds(LengthDist, kind=st.sampled_from(["fixed", "exponential"]), mean=mean)
    lognormal = st.tuples(mean, st.floats(1.01, 2.27)).map(
        lambda m_r: LengthDist(kind="lognormal", mean=m_r[0], p90=m_r[0] * m_r[1])
    )
    above_mean = st.one_of(st.none(), st.floats(1, 100))  # a truncation at or above the mean
    return st.tuples(st.one_of(simple, lognormal), above_mean).map(
        lambda d_r: d_r[0].model_copy(update={"max": None if d_r[1] is None else d_r[0].mean * d_r[1]})
    )


def loads() -> st.SearchStrategy[Load]:
    rate = st.one_of(
        st.fixed_dictionaries({"rate_rps": st.floats(0, 1e7)}),
        st.fixed_dictionaries({"requests_per_day": st.floats(0, 1e12)}),
    )
    rest = st.fixed_dictionaries(
        {}, optional={"peak_factor": st.floats(1, 100), "input_len": length_dists(), "output_len": length_dists()}
    )
    return st.tuples(rate, rest).map(lambda r: Load(**r[0], **r[1]))


def bounded(field, kind: type) -> st.SearchStrategy:
    limits: dict = {}
    for m in field.metadata:
        if isinstance(m, at.Ge):
            limits["min_value"] = m.ge
        elif isinstance(m, at.Gt):
            limits.update(min_value=m.gt, exclude_min=True)
        elif isinstance(m, at.Le):
            limits["max_value"] = m.le
        elif isinstance(m, at.Lt):
            limits.update(max_value=m.lt, exclude_max=True)
    if kind is int:
        low = limits.get("min_value", -(2**53)) + (1 if limits.get("exclude_min") else 0)
        high = limits.get("max_value", 2**53) - (1 if limits.get("exclude_max") else 0)
        return st.integers(low, high)
    return st.floats(allow_nan=False, allow_infinity=False, **limits)


def values(tp, field) -> st.SearchStrategy:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return values(args[0], field)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([values(a, field) for a in args])
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        items = values(args[0], field)
        if field is not None and args[0] is not str:  # custom tables: ids must be unique
            return st.lists(items, max_size=2, unique_by=lambda x: x.id)
        return st.lists(items, max_size=3)
    if origin is dict:
        return st.dictionaries(TEXT, values(args[1], None), max_size=3)
    if tp is type(None):
        return st.none()
    if tp is LengthDist:
        return length_dists()
    if tp is Load:
        return loads()
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return models(tp)
    if tp is bool:
        return st.booleans()
    if tp in (int, float):
        return bounded(field, tp) if field is not None else st.floats(-1e9, 1e9)
    if tp is str:
        min_size = 1 if field is not None and any(isinstance(m, at.MinLen) for m in field.metadata) else 0
        return st.text(CHARS, min_size=min_size, max_size=12)
    raise NotImplementedError(tp)


def routable(fields: dict) -> dict:
    """An MoE model routes each token to 1..experts experts; a dense one to none."""
    experts = fields.get("experts", 0)
    per_token = fields.get("experts_per_token", 0)
    return fields | {"experts_per_token": min(max(per_token, 1), experts) if experts > 0 else 0}


def budget_holds_prompts(fields: dict) -> dict:
    """Without chunked prefill a token budget must hold the longest prompt: leave it unset."""
    opt = fields.get("optimizations")
    if opt is not None and not opt.chunked_prefill and opt.max_num_batched_tokens is not None:
        return fields | {"optimizations": opt.model_copy(update={"max_num_batched_tokens": None})}
    return fields


# cross-field rules a per-field strategy cannot express
REPAIRS = {ModelSpec: routable, Profile: budget_holds_prompts}


def models(cls: type[BaseModel]) -> st.SearchStrategy:
    required, optional = {}, {}
    for name, field in cls.model_fields.items():
        strategy = OVERRIDES[cls, name] if (cls, name) in OVERRIDES else values(field.annotation, field)
        (required if field.is_required() else optional)[name] = strategy
    repair = REPAIRS.get(cls, lambda fields: fields)
    return st.fixed_dictionaries(required, optional=optional).map(repair).map(cls.model_validate)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(Profile))
def test_toml_round_trip(profile):
    text = profile_to_toml(profile)
    again = profile_from_toml(text)
    assert again == profile
    assert profile_to_toml(again) == text



def test_lognormal_wider_than_any_lognormal_is_refused_with_the_limit():
    text = 'name = "x"\n[load]\nrate_rps = 1\ninput_len = { kind = "lognormal", mean = 800, p90 = 2000 }\n'
    with pytest.raises(ProfileError, match=r"load\.input_len.*at most 2\.273 x the mean \(1,819\).*exponential"):
        profile_from_toml(text)


def test_text_is_printable():
    """Control characters in a profile would drive the terminal of whoever shows it: they are
    cleaned out on load, so every place the text appears gets it clean."""
    text = ('name = "evil\\u001b[31mRED"\ndescription = "two\\nlines\\u0007 \\u202eright-to-left"\n'
            'load.rate_rps = 1\nmodels.small = "llama-3.2-1b\\u009b"\n')
    profile = profile_from_toml(text)
    assert profile.name == "evil[31mRED"
    assert profile.description == "two lines right-to-left"
    assert profile.models.small == "llama-3.2-1b"


def test_refused_text_is_quoted_escaped():
    text = 'name = "x"\nload.rate_rps = 1\nfleet.gpu = 3\n"bad\\u001b[2Jkey" = 1\nslo.ttft_ms = "\\u001b]0;t\\u0007"\n'
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text, "p.toml")
    message = str(err.value)
    assert "\x1b" not in message and "\x07" not in message
    assert "p.toml: bad\\u001b[2Jkey: unknown key" in message
    assert 'p.toml: slo.ttft_ms = "\\u001b]0;t\\u0007": must be a number' in message


@pytest.mark.parametrize(("line", "message"), [
    ("load.rate_rps = true", "load.rate_rps = true: must be a number"),
    ("optimizations.pp = true", "optimizations.pp = true: must be a whole number"),
    ("optimizations.tp = false", "optimizations.tp = false: must be"),
    ("fleet.max_gpus = true", "fleet.max_gpus = true: must be a whole number"),
    ("slo.ttft_ms = true", "slo.ttft_ms = true: must be a number"),
])
def test_booleans_are_not_numbers(line, message):
    rate = "" if line.startswith("load.rate_rps") else "load.rate_rps = 1\n"
    text = f'name = "x"\n{rate}{line}\n'
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text, "p.toml")
    assert f"p.toml: {message}" in str(err.value)


def test_booleans_still_set_switches():
    text = 'name = "x"\nload.rate_rps = 1\noptimizations.chunked_prefill = false\noptimizations.sparsity_2_4 = true\n'
    opt = profile_from_toml(text).optimizations
    assert opt.chunked_prefill is False and opt.sparsity_2_4 is True


@pytest.mark.parametrize("dist", ["{ mean = 400, max = 10 }",
                                  '{ kind = "lognormal", mean = 400, p90 = 900, max = 399 }'])
def test_truncation_below_the_mean_is_refused(dist):
    with pytest.raises(ProfileError) as err:
        profile_from_toml(f'name = "x"\nload.rate_rps = 1\nload.input_len = {dist}\n', "p.toml")
    assert "p.toml: load.input_len: max (" in str(err.value)
    assert "must be at least the mean (400)" in str(err.value)


def test_truncation_at_the_mean_or_above_is_taken():
    profile = profile_from_toml('name = "x"\nload.rate_rps = 1\nload.output_len = { mean = 400, max = 400 }\n')
    assert profile.load.output_len.max == 400


def _unchunked(budget: int, input_len: str) -> str:
    return (f'name = "x"\nload.rate_rps = 1\nload.input_len = {input_len}\n'
            f'optimizations.chunked_prefill = false\noptimizations.max_num_batched_tokens = {budget}\n')


def test_unchunked_budget_below_the_prompt_is_refused():
    with pytest.raises(ProfileError) as err:
        profile_from_toml(_unchunked(512, "2000"), "p.toml")
    message = str(err.value)
    assert message.startswith("p.toml: optimizations.max_num_batched_tokens (512) is below the p99 prompt")
    assert "at least 2,000" in message and "chunked_prefill" in message
    # a lognormal's p99 prompt is well above its mean: a budget of the mean does not hold it
    with pytest.raises(ProfileError, match="max_num_batched_tokens"):
        profile_from_toml(_unchunked(1000, '{ kind = "lognormal", mean = 1000, p90 = 2000 }'))
    with pytest.raises(ValidationError, match="max_num_batched_tokens"):
        Scenario(load=Load(rate_rps=1, input_len=2000),
                 optimizations=Optimizations(chunked_prefill=False, max_num_batched_tokens=512))


def test_unchunked_budget_that_holds_the_prompt_is_taken():
    assert profile_from_toml(_unchunked(2048, "2000")).optimizations.max_num_batched_tokens == 2048
    # a truncation bounds the longest prompt
    assert profile_from_toml(_unchunked(2048, '{ kind = "exponential", mean = 1000, max = 2048 }'))
    # chunked prefill splits prompts across steps: any budget serves
    chunked = _unchunked(512, "2000").replace("chunked_prefill = false", "chunked_prefill = true")
    assert profile_from_toml(chunked).optimizations.max_num_batched_tokens == 512


# ---------------------------------------------------------------- saving keeps the author's file


def comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new), "lines were added or removed"
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_save_changes_only_the_changed_value(tmp_path):
    """What ctrl+s does in the app: save_profile over the text the profile was read from."""
    path = tmp_path / "e.toml"
    path.write_bytes((ROOT / "profiles" / "edge-assistant.toml").read_bytes())
    loaded = load_profile(path)
    original = loaded.text
    edited = loaded.profile.model_copy(update={"load": loaded.profile.load.model_copy(update={"rate_rps": 12.5})})
    saved = save_profile(edited, path, expected_mtime_ns=loaded.mtime_ns, over_text=loaded.text)
    text = path.read_text()
    assert saved.text == text
    assert comments(text) == comments(original) and len(comments(original)) >= 30
    [(old, new)] = changed_lines(original, text)
    assert old.startswith("rate_rps = 1.0 ") and new.startswith("rate_rps = 12.5 ")
    assert new.index("#") == old.index("#")  # the comment keeps its column
    assert load_profile(path).profile == edited


def test_save_writes_changes_in_place_and_leaves_unset_keys_unset(tmp_path):
    original = (
        "# mine\n"
        'name = "mine"   # the name\n'
        "\n"
        "[load]\n"
        "rate_rps = 5        # peak\n"
        "input_len = { mean = 400, max = 4000 }  # prompts\n"
        "output_len = 300\n"
        "\n"
        "[fleet]\n"
        'gpu = "l4"\n'
        "max_gpus = 4        # the rack\n"
    )
    profile = profile_from_toml(original)
    load = profile.load.model_copy(update={
        "rate_rps": 7.0,
        "input_len": profile.load.input_len.model_copy(update={"mean": 500.0}),
        "output_len": LengthDist(kind="fixed", mean=350),
    })
    edited = profile.model_copy(update={
        "load": load,
        "fleet": profile.fleet.model_copy(update={"max_gpus": None, "engine": "sglang"}),
        "cost": profile.cost.model_copy(update={"pue": 1.2}),
    })
    path = tmp_path / "mine.toml"
    save_profile(edited, path, over_text=original)
    assert path.read_text() == (
        "# mine\n"
        'name = "mine"   # the name\n'
        "\n"
        "[load]\n"
        "rate_rps = 7        # peak\n"  # written as the author wrote it: a whole number
        "input_len = { mean = 500, max = 4000 }  # prompts\n"
        "output_len = 350\n"  # a fixed length stays a bare number
        "\n"
        "[fleet]\n"
        'gpu = "l4"\n'
        'engine = "sglang"\n'  # unset before: added after the table's last key
        "# max_gpus = 4      # the rack\n"  # unset now: commented out, its note kept
        "\n"
        "[cost]\n"
        "pue = 1.2\n"
    )
    assert load_profile(path).profile == edited


def test_a_profile_started_from_the_built_in_default_keeps_its_comments(tmp_path):
    default_text = default_profile_text()
    mine = default_profile().model_copy(update={"name": "mine"})
    path = tmp_path / "mine.toml"
    save_profile(mine, path, over_text=default_text)
    text = path.read_text()
    assert comments(text) == comments(default_text)
    [(old, new)] = changed_lines(default_text, text)
    assert new.startswith('name = "mine" ')
    assert load_profile(path).profile == mine


def test_setting_a_key_shown_commented_out_writes_it_in_place():
    """The default lists unset keys as commented-out examples: setting one writes it there (not
    after the next table's introduction), unsetting one comments it out, every note kept at its
    column; going back gives the original bytes."""
    default_text = default_profile_text()
    default = profile_from_toml(default_text)
    daily = default.model_copy(update={"load": Load(requests_per_day=2_000_000, peak_factor=1.0),
                                       "fleet": default.fleet.model_copy(update={"max_gpus": 16})})
    text = profile_to_toml_over(default_text, daily)
    assert [new for _, new in changed_lines(default_text, text)] == [
        "max_gpus = 16               # the most GPUs you can have: a load needing more is planned on this many "
        "and shown overloaded",
        "# rate_rps = 10.0           # requests per second to size for (at the peak)",
        "requests_per_day = 2000000   # daily volume instead of rate_rps ...",
    ]
    assert profile_from_toml(text) == daily
    assert profile_to_toml_over(text, default).replace("2000000", "500000").replace("= 16 ", "= 64 ") == default_text


def test_saving_a_file_with_windows_line_ends_keeps_them():
    text = (ROOT / "profiles" / "edge-assistant.toml").read_text().replace("\n", "\r\n")
    profile = profile_from_toml(text)
    edited = profile.model_copy(update={"fleet": profile.fleet.model_copy(update={"engine": "sglang", "max_gpus": None})})
    out = profile_to_toml_over(text, edited)
    assert out.count("\n") == out.count("\r\n") == text.count("\r\n") + 1  # engine added, max_gpus commented out
    assert profile_from_toml(out) == edited


def test_saving_an_opened_plan_export_drops_its_results(tmp_path):
    exported = profile_to_toml(default_profile(), plan={"tiers": [{"tier": "small", "gpus": 1}]})
    opened = profile_from_toml(exported)
    path = tmp_path / "p.toml"
    save_profile(opened, path, over_text=exported)
    text = path.read_text()
    assert "[plan]" not in text and 'tier = "small"' not in text
    assert load_profile(path).profile == opened.model_copy(update={"plan": None})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(Profile), models(Profile))
def test_saving_over_any_profile_gives_the_new_profile(old, new):
    text = profile_to_toml(old)
    again = profile_from_toml(profile_to_toml_over(text, new))
    assert again == new.model_copy(update={"plan": None})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(new=models(Profile))
def test_saving_over_a_hand_written_profile_gives_the_new_profile(path, new):
    text = path.read_text()
    assert profile_from_toml(profile_to_toml_over(text, new)) == new.model_copy(update={"plan": None})


def test_saving_over_dotted_keys_and_bare_lengths_keeps_their_style():
    text = 'name = "x"\nload.rate_rps = 5  # peak\nload.input_len = 1000\n'
    profile = profile_from_toml(text)
    load = profile.load.model_copy(update={"rate_rps": 6.0, "input_len": LengthDist(kind="exponential", mean=900)})
    out = profile_to_toml_over(text, profile.model_copy(update={"load": load}))
    assert out == 'name = "x"\nload.rate_rps = 6  # peak\nload.input_len = {kind = "exponential", mean = 900.0}\n'
    # dotted keys spread over the file, one removed and others set
    text = 'name = "x"\nload.rate_rps = 5\nload.peak_factor = 2.0\n\n[slo]\nttft_ms = 100.0\n'
    daily = profile_from_toml(text).model_copy(update={"load": Load(requests_per_day=1000, peak_factor=3)})
    assert profile_from_toml(profile_to_toml_over(text, daily)) == daily
