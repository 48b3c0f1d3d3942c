"""The training config: keys, overrides, and one-line errors that name the key and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference.config import KEYS, apply_override, load_config, parse_overrides, validate
from reference.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_published_recipe():
    cfg = validate({})
    # FACTS §7: SEED 2023, LR_MAX 3.5e-4, PCT_START 0.1, BS 8, 24 epochs, loss_comb, F_th.
    assert (cfg.SEED, cfg.LR_MAX, cfg.PCT_START, cfg.BS, cfg.EPOCHS) == (2023, 3.5e-4, 0.1, 8, 24)
    assert (cfg.LOSS_FUNC, cfg.METRIC, cfg.MODEL, cfg.RECIPE) == (
        "loss_comb",
        "F_th",
        "CoaT_ULSTM",
        "published",
    )
    # int(32/8 + 0.5) = 4 samples, eps 1e-8 and wd 0 (the discarded kwargs, FACTS §6).
    assert (cfg.n_acc, cfg.eps, cfg.weight_decay, cfg.LABELS) == (4, 1e-8, 0.0, "hard")
    assert cfg.FNAME == "CoaT_ULSTM_medium_s2023"
    assert cfg.run_dir == Path("out") / "CoaT_ULSTM_medium_s2023"


@pytest.mark.parametrize("bs, n_acc", [(2, 16), (4, 8), (8, 4), (16, 2), (3, 11), (32, 1)])
def test_published_accumulation_is_int_32_over_bs_plus_half(bs, n_acc):
    assert validate({"BS": bs}).n_acc == n_acc


def test_writeup_recipe_switches_eps_weight_decay_and_labels():
    cfg = validate({"RECIPE": "writeup"})
    assert (cfg.eps, cfg.weight_decay, cfg.LABELS) == (1e-4, 0.01, "soft")
    assert validate({"RECIPE": "writeup", "LABELS": "hard"}).LABELS == "hard"
    assert validate({"ACC": 32, "BS": 2}).n_acc == 32


def test_shipped_configs_validate():
    final = load_config(ROOT / "configs" / "coat_ulstm.json")
    assert (final.EPOCHS, final.LR_MAX, final.PCT_START, final.BS, final.SEED) == (
        24,
        3.5e-4,
        0.1,
        8,
        2023,
    )
    assert (final.MODEL, final.ARCH, final.LOSS_FUNC, final.METRIC, final.RECIPE) == (
        "CoaT_ULSTM", "medium", "loss_comb", "F_th", "published",
    )  # fmt: skip
    demo = load_config(ROOT / "configs" / "demo.json")
    assert demo.ARCH == "tiny" and demo.DEVICE == "cpu"


def test_epoch_from_the_published_readme_says_did_you_mean_epochs():
    with pytest.raises(ConfigError, match=r"unknown key EPOCH; did you mean EPOCHS\?"):
        validate({"EPOCH": 3})


@pytest.mark.parametrize(
    "bad, good", [("LR_MAXX", "LR_MAX"), ("SEEDS", "SEED"), ("pct_start", "PCT_START")]
)
def test_unknown_key_names_the_closest_valid_key(bad, good):
    with pytest.raises(ConfigError) as e:
        validate({bad: 1})
    assert f"unknown key {bad}; did you mean {good}?" in str(e.value)


def test_unknown_key_with_no_close_match_lists_the_keys():
    with pytest.raises(ConfigError, match="valid keys: PATH, SEED"):
        validate({"ZZZZZZ": 1})


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("BS", "8", 'BS must be an integer, got "8"'),
        ("BS", True, "BS must be an integer, got true"),
        ("BS", 2.5, "BS must be an integer, got 2.5"),
        ("BS", 0, "BS must be a number > 0, got 0"),
        ("LR_MAX", "fast", 'LR_MAX must be a number, got "fast"'),
        ("PCT_START", 1.0, "PCT_START must be a number strictly between 0 and 1, got 1.0"),
        ("RESUME", 1, "RESUME must be true/false, got 1"),
        ("PRECISION", "fp8", 'PRECISION must be one of fp32, bf16, fp16, got "fp8"'),
        ("RECIPE", "kaggle", "RECIPE must be one of published, writeup"),
        ("IMPL", "mine", "IMPL must be reference, solutions, exercises or an existing folder"),
        ("LABELS", "fuzzy", "LABELS must be one of hard, soft"),
        ("NUM_WORKERS", -1, "NUM_WORKERS must be an integer >= 0, got -1"),
        ("DEVICE", "tpu", 'DEVICE must be "auto", "cpu", "cuda" or "cuda:N", got "tpu"'),
        ("SEED", None, "SEED must be an integer, not null"),
        ("FNAME", "a/b", 'FNAME must be a plain folder name, got "a/b"'),
    ],
)
def test_wrong_type_or_value_names_the_key_and_what_is_allowed(key, value, needle):
    with pytest.raises(ConfigError) as e:
        validate({key: value}, source="cfg.json")
    msg = str(e.value)
    assert needle in msg and msg.startswith("cfg.json: ") and "\n" not in msg


def test_ints_are_accepted_where_numbers_are_and_become_floats():
    cfg = validate({"LR_MAX": 1, "PCT_START": 0.5})
    assert cfg.LR_MAX == 1.0 and isinstance(cfg.LR_MAX, float)


def test_overrides_are_json_parsed_with_raw_string_fallback():
    pairs = parse_overrides(["BS", "4", "ARCH", "mini", "PRETRAINED", "null", "RESUME", "true",
                             "LR_MAX", "1e-3", "FNAME", '"007"'])  # fmt: skip
    assert pairs == [("BS", 4), ("ARCH", "mini"), ("PRETRAINED", None), ("RESUME", True),
                     ("LR_MAX", 1e-3), ("FNAME", "007")]  # fmt: skip


def test_odd_override_count_is_an_error():
    with pytest.raises(ConfigError, match="override BS has no value"):
        parse_overrides(["ARCH", "mini", "BS"])


def test_load_config_applies_overrides_over_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"BS": 8, "ARCH": "medium", "EPOCHS": 24}))
    cfg = load_config(path, ["BS", "2", "ARCH", "tiny", "EPOCHS", "3"])
    assert (cfg.BS, cfg.ARCH, cfg.EPOCHS) == (2, "tiny", 3)
    with pytest.raises(ConfigError, match=r"override: unknown key EPOCH; did you mean EPOCHS\?"):
        load_config(path, ["EPOCH", "3"])
    with pytest.raises(ConfigError, match=r"^override: BS must be an integer"):
        load_config(path, ["BS", "four"])


def test_dotted_override_sets_a_nested_field():
    raw = {"PATH": "x", "SEED": {"outer": {"inner": 1}}}
    apply_override(raw, "SEED.outer.inner", 5)
    assert raw["SEED"] == {"outer": {"inner": 5}}
    # A dotted key into a non-object names the key and the problem.
    with pytest.raises(ConfigError, match="override BS.x: BS is not an object"):
        apply_override({"BS": 8}, "BS.x", 1)
    with pytest.raises(ConfigError, match="did you mean BS"):
        apply_override({}, "BSS.x", 1)


def test_bad_config_files_give_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"BS": 8,,}')
    with pytest.raises(ConfigError, match=r"broken.json: not valid JSON \(line 1"):
        load_config(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_config(listed)


def test_cli_reports_config_errors_in_one_line_with_exit_2(tmp_path, capsys):
    from reference.cli import main

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"EPOCH": 3}))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"shakyo train: error: {path}: unknown key EPOCH; did you mean EPOCHS?"


def test_every_key_has_help_and_a_valid_default():
    for key in KEYS.values():
        assert key.help
    validate({k: v.default for k, v in KEYS.items()})
