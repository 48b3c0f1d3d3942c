"""Cloud plans, keys, redaction and the on-start script: the pieces `shakyo cloud` is built from."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference.cloud.onstart import instance_env, plan_variables, render_onstart
from reference.cloud.plan import PlanError, load_plan
from reference.cloud.redact import redact
from reference.cloud.secrets import find_keys

ROOT = Path(__file__).resolve().parents[1]
GOOD = """
[offer]
max_dph = 0.5
[instance]
image = "img:1"
max_hours = 3
[project]
repo = "https://example.invalid/shakyo.git"
[train]
config = "configs/demo.json"
overrides = { EPOCHS = 2 }
seeds = [1, 2]
[data]
dataset = "me/icrgw-tiles"
[publish]
dataset = "me/my-model-x"
title = "my model x"
"""


def _plan(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (ROOT / "configs" / "cloud").glob("*.toml"))
)
def test_shipped_plans_are_valid(name):
    plan = load_plan(ROOT / "configs" / "cloud" / name, repo_root=ROOT)
    assert plan.train_configs and plan.max_cost() > 0


def test_learner_plan_is_the_learners_12_epoch_run():
    plan = load_plan(ROOT / "configs" / "cloud" / "learner_12ep.toml", repo_root=ROOT)
    (cfg,) = plan.train_configs
    # FACTS §10: fp32, pretrained, hard labels, BS 4, 12 epochs; tracked with wandb (§11).
    assert (cfg["EPOCHS"], cfg["BS"], cfg["PRECISION"], cfg["LABELS"]) == (12, 4, "fp32", "hard")
    assert cfg["PRETRAINED"] and plan["train"]["weights"] == "coat_lite_medium"
    assert cfg["TRACKER"] == "wandb"
    assert plan.max_cost() == pytest.approx(0.60 * 12)


def test_a_good_plan_fills_defaults_and_derives_names(tmp_path):
    plan = load_plan(_plan(tmp_path, GOOD), repo_root=ROOT)
    assert plan.seeds == [1, 2] and [c["SEED"] for c in plan.train_configs] == [1, 2]
    assert [c["FNAME"] for c in plan.train_configs] == ["demo_s1", "demo_s2"]  # one folder per seed
    assert plan.logs_dataset == "me/my-model-x-logs" and plan.kernel_ref == "me/my-model-x-infer"
    assert plan["offer"]["min_reliability"] == 0.98 and plan["data"]["source"] == "dataset"
    q = plan.offer_query()
    assert "dph_total<=0.5" in q and "gpu_name=RTX_4090" in q and "rentable=true" in q


@pytest.mark.parametrize(
    "edit, message",
    [
        (("max_dph = 0.5", "max_dhp = 0.5"), "[offer] unknown key max_dhp; did you mean max_dph?"),
        (("max_hours = 3", ""), "[instance] max_hours is missing; add it, e.g. max_hours = 12"),
        (
            ("max_dph = 0.5", 'max_dph = "cheap"'),
            '[offer] max_dph must be a number, got "cheap"; e.g. max_dph = 0.6',
        ),
        (("max_dph = 0.5", "max_dph = -1"), "[offer] max_dph must be a number > 0, got -1"),
        (
            ('dataset = "me/my-model-x"', 'dataset = "my-model-x"'),
            '[publish] dataset must be "owner/slug"',
        ),
        (
            ('title = "my model x"', 'title = "x"'),
            "[publish] title must be a title of 6 to 50 characters",
        ),
        (
            ("EPOCHS = 2", "EPOCH = 2"),
            "[train] overrides: unknown key EPOCH; did you mean EPOCHS?",
        ),
        (("EPOCHS = 2", 'PATH = "x"'), "[train] overrides must not set PATH"),
        (("seeds = [1, 2]", "seeds = [1, 1]"), "[train] seeds must be a list of distinct integers"),
        (("[data]", "[dta]"), "unknown table [dta]; did you mean [data]?"),
        (
            ('config = "configs/demo.json"', 'config = "configs/nope.json"'),
            "[train] config configs/nope.json not found",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_file_table_and_key(tmp_path, edit, message):
    path = _plan(tmp_path, GOOD.replace(*edit))
    with pytest.raises(PlanError) as e:
        load_plan(path, repo_root=ROOT)
    text = str(e.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_the_cli_says_one_line_and_exits_2(tmp_path):
    path = _plan(tmp_path, GOOD.replace("max_dph = 0.5", "max_dph = 0"))
    proc = subprocess.run([sys.executable, "-m", "reference.cli", "cloud", "plan", str(path)], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, HOME=str(tmp_path)))  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "[offer] max_dph must be a number > 0" in proc.stderr


def test_keys_are_found_in_files_and_environment_and_never_described_by_value(tmp_path):
    home = tmp_path
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "ann", "key": "k" * 32}))
    (home / ".config" / "vastai").mkdir(parents=True)
    (home / ".config" / "vastai" / "vast_api_key").write_text("v" * 40 + "\n")
    (home / ".netrc").write_text(
        "machine api.wandb.ai\n  login user\n  password " + "w" * 40 + "\n"
    )
    keys = find_keys({"HOME": str(home)})
    assert keys.kaggle_username == "ann" and keys.kaggle.value == "k" * 32
    assert keys.vast.value == "v" * 40 and keys.wandb.value == "w" * 40
    text = "\n".join(keys.describe()) + repr(keys.kaggle) + str(keys.vast)
    assert "k" * 32 not in text and "v" * 40 not in text and "w" * 40 not in text
    assert str(home / ".kaggle" / "kaggle.json") in text
    env = find_keys(
        {
            "HOME": str(home),
            "KAGGLE_USERNAME": "bob",
            "KAGGLE_KEY": "e" * 32,
            "VAST_API_KEY": "x" * 40,
        }
    )
    assert (env.kaggle_username, env.kaggle.source, env.vast.source) == (
        "bob",
        "$KAGGLE_KEY",
        "$VAST_API_KEY",
    )
    assert find_keys({"HOME": str(tmp_path / "empty")}).kaggle is None


def test_redaction_removes_raw_quoted_and_basic_auth_forms():
    key = "abc/def+ghi=jkl123"
    basic = base64.b64encode(f"ann:{key}".encode()).decode()
    text = f"key={key} url=https://x/?k=abc%2Fdef%2Bghi%3Djkl123 auth=Basic {basic} short=abc"
    out = redact(text, {"KAGGLE_KEY": key, "OTHER": "abc"}, username="ann")
    assert out == ("key=[redacted KAGGLE_KEY] url=https://x/?k=[redacted KAGGLE_KEY] "
                   "auth=Basic [redacted KAGGLE_KEY] short=abc")  # fmt: skip


def test_redact_script_reads_the_values_from_the_environment(tmp_path):
    script = ROOT / "reference" / "cloud" / "redact.py"
    proc = subprocess.run([sys.executable, str(script), "KAGGLE_KEY", "UNSET_VAR"], input=b"a SECRETSECRET b\n",
                          capture_output=True, env={"KAGGLE_KEY": "SECRETSECRET", "PATH": os.environ["PATH"]})  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == b"a [redacted KAGGLE_KEY] b\n"


def test_onstart_exports_survive_the_shell_and_hold_no_key(tmp_path):
    text = GOOD.replace('title = "my model x"', 'title = "it\'s $HOME `x`"')
    plan = load_plan(_plan(tmp_path, text), repo_root=ROOT)
    variables = plan_variables(plan, "0" * 40, 1_700_000_000)
    script = render_onstart(variables)
    exports = "\n".join(
        line
        for line in script.splitlines()
        if line.startswith("export SHAKYO_") and "WORK" not in line
    )
    proc = subprocess.run(["bash", "-c", exports + '\nprintf "%s\\n" "$SHAKYO_PUBLISH_TITLE" "$SHAKYO_OVERRIDES" "$SHAKYO_SEEDS"'],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"]})  # fmt: skip
    assert proc.stdout.splitlines() == ["it's $HOME `x`", "EPOCHS 2", "1 2"]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    keys = find_keys({"HOME": str(tmp_path), "KAGGLE_USERNAME": "me", "KAGGLE_KEY": "K" * 32})
    env = instance_env(keys, send_wandb=False)
    assert env == {"KAGGLE_USERNAME": "me", "KAGGLE_KEY": "K" * 32}
    assert "K" * 32 not in script
    with pytest.raises(Exception, match="TRACKER wandb needs a wandb key"):
        instance_env(keys, send_wandb=True)
