"""Every bad input a careless user can give the CLI: one line, exit 2, nothing left behind.

A table of cases (issue 11, items 4-6; the count is printed by
``test_the_table_has_at_least_120_cases``). Each case copies a small world
(tests/bad_inputs_setup.py: a synthetic dataset, its tiles, a run folder, a
config, a submission), breaks one thing, runs one command in-process through
``shakyo.cli.main`` (a subprocess would pay the torch import every time) and
asserts: exit code 2; exactly one non-empty stderr line, starting ``shakyo
CMD`` and holding the case's text (the file or key it blames); no traceback;
the folder unchanged except for what the case lists as made; no ``.tmp-*``
file. A few cases run as real processes where the process boundary matters
(stderr written by libraries, the console script).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from bad_inputs_setup import (
    UNWRITABLE,
    band,
    both,
    build_base,
    celsius,
    copy,
    copy_world,
    crop,
    lock_prepare,
    mkdir,
    npy,
    remove,
    sides,
    tif,
    tokens,
    truncate,
    write,
)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    id: str
    argv: str  # split on spaces after {TOKEN} substitution
    expect: str  # must be in the stderr line ({TOKEN}s substituted)
    setup: object = None
    makes: tuple[str, ...] = ()  # path prefixes the command may create (output of good records)
    env: dict = field(default_factory=dict)


C = Case
K = "kaggle"
SYN = "--size 64 --train 1 --val 1 --test 1 --workers 1"
PRED = "predict --data kaggle/test --weights run/model.pth"
TR = "train cfg.json"
SUB = "submission check sub.csv --data kaggle/test"
PLAN = (REPO / "configs/cloud/demo.toml").read_text()
NO_CUDA = "" if not __import__("torch").cuda.is_available() else None

CASES: list[Case] = [
    # ---------------------------------------------------------------- synth
    C("synth-foreign-file", f"synth ds {SYN}", "notes.txt", write("ds/notes.txt", "mine")),
    C("synth-foreign-record", f"synth ds {SYN}", "123", mkdir("ds/train/123")),
    C("synth-out-is-file", f"synth afile {SYN}", "afile"),
    C("synth-out-below-file", f"synth afile/ds {SYN}", "afile"),
    C("synth-out-unwritable", f"synth {UNWRITABLE}/ds {SYN}", UNWRITABLE),
    C("synth-size-not-16", "synth ds --size 60", "--size 60"),
    C("synth-size-too-small", "synth ds --size 16", "--size 16"),
    C("synth-size-not-a-number", "synth ds --size big", "--size"),
    C("synth-negative-count", "synth ds --size 64 --train -1", "record counts"),
    C("synth-negative-seed", "synth ds --size 64 --seed -3", "--seed"),
    C("synth-unknown-option", "synth ds --frobnicate", "--frobnicate"),
    C("synth-no-out", "synth", "out"),
    # -------------------------------------------------------------- prepare
    C("prepare-missing-data", "prepare nosuch", "nosuch"),
    C("prepare-data-is-file", "prepare afile", "afile"),
    C("prepare-no-splits", "prepare run", "no train/ or validation/"),
    C("prepare-empty-split", "prepare empty", "empty/train", mkdir("empty/train")),
    *[
        C(f"prepare-{name}", "prepare kaggle --out new --workers 1", expect, setup, ("new",))
        for name, expect, setup in [
            ("missing-band-14", "{TRAIN0}/band_14.npy", remove("{TRAIN0}/band_14.npy")),
            ("missing-band-11", "{TRAIN0}/band_11.npy", remove("{TRAIN0}/band_11.npy")),
            ("band-is-folder", "{TRAIN0}/band_15.npy", both(remove("{TRAIN0}/band_15.npy"),
                                                           mkdir("{TRAIN0}/band_15.npy"))),
            ("odd-band-15", "{TRAIN0}/band_15.npy", band("{TRAIN0}", "15", crop)),
            ("odd-band-11-named-not-14", "{TRAIN0}/band_11.npy", band("{TRAIN0}", "11", crop)),
            ("odd-band-in-validation", "{VAL0}/band_14.npy", band("{VAL0}", "14", crop)),
            ("band-2d", "{TRAIN0}/band_14.npy", band("{TRAIN0}", "14", lambda a: a[..., 0])),
            ("band-7-frames", "{TRAIN0}/band_14.npy", band("{TRAIN0}", "14", lambda a: a[..., :7])),
            ("band-int", "dtype int32", band("{TRAIN0}", "14", lambda a: a.astype(np.int32))),
            ("band-nan", "NaN", band("{TRAIN0}", "14", lambda a: np.where(a > 0, np.nan, a))),
            ("band-inf", "infinite", band("{TRAIN0}", "11", lambda a: a + np.inf)),
            ("bands-celsius", "°C", celsius("{TRAIN0}")),
            ("band-celsius-one", "{TRAIN0}/band_15.npy",
             band("{TRAIN0}", "15", lambda a: a - np.float32(273.15))),
            ("band-zeros", "not a brightness temperature", band("{TRAIN0}", "14", np.zeros_like)),
            ("band-millikelvin", "kelvin", band("{TRAIN0}", "14", lambda a: a * 1000)),
            ("band-truncated", "{TRAIN0}/band_14.npy", truncate("{TRAIN0}/band_14.npy")),
            ("band-text", "{TRAIN0}/band_14.npy", write("{TRAIN0}/band_14.npy", "hello")),
            ("band-empty-file", "{TRAIN0}/band_14.npy", write("{TRAIN0}/band_14.npy", b"")),
            ("band-pickled", "{TRAIN0}/band_14.npy",
             npy("{TRAIN0}", "band_14.npy", np.array([{"a": 1}], dtype=object))),
            ("mask-missing", "human_pixel_masks.npy", remove("{TRAIN0}/human_pixel_masks.npy")),
            ("mask-not-binary", "0 or 1",
             npy("{TRAIN0}", "human_pixel_masks.npy", np.full((64, 64, 1), 2, np.int32))),
            ("mask-wrong-shape", "human_pixel_masks.npy",
             npy("{TRAIN0}", "human_pixel_masks.npy", np.zeros((32, 64, 1), np.int32))),
            ("val-mask-missing", "{VAL0}/human_pixel_masks.npy",
             remove("{VAL0}/human_pixel_masks.npy")),
        ]
    ],
    C("prepare-soft-without-annotators", "prepare kaggle --out new --labels soft --workers 1",
      "human_individual_masks.npy", remove("{TRAIN0}/human_individual_masks.npy"), ("new",)),
    C("prepare-labels-unknown", "prepare kaggle --labels medium", "--labels"),
    C("prepare-labels-mismatch", "prepare kaggle --out tiles --labels soft", "labels=hard"),
    C("prepare-out-is-file", "prepare kaggle --out afile", "afile"),
    C("prepare-out-below-file", "prepare kaggle --out afile/tiles", "afile"),
    C("prepare-out-unwritable", f"prepare kaggle --out {UNWRITABLE}/t", UNWRITABLE),
    C("prepare-while-another-runs", "prepare kaggle --out new", "another `shakyo prepare`",
      lock_prepare("new"), ("new",)),
    C("prepare-workers-not-int", "prepare kaggle --workers many", "--workers"),
    # ------------------------------------------------------------------ viz
    C("viz-record-missing", "viz record nosuch --out x.png", "nosuch"),
    C("viz-record-no-out", "viz record {TRAIN0}", "--out"),
    C("viz-record-out-is-folder", "viz record {TRAIN0} --out tiles", "tiles"),
    C("viz-record-out-below-file", "viz record {TRAIN0} --out afile/x.png", "afile"),
    C("viz-record-odd-band", "viz record {TRAIN0} --out x.png", "{TRAIN0}/band_14.npy",
      band("{TRAIN0}", "14", crop)),
    C("viz-record-celsius", "viz record {TRAIN0} --out x.png", "°C", celsius("{TRAIN0}")),
    C("viz-curves-missing", "viz curves nosuch", "nosuch"),
    C("viz-curves-no-history", "viz curves run", "history.csv"),
    C("viz-curves-binary-batches", "viz curves run", "run/batches.csv",
      both(write("run/history.csv", "epoch,train_loss\n0,1.0\n"),
           write("run/batches.csv", b"\xff\xfe\x00"))),
    C("viz-predictions-not-a-run", "viz predictions tiles", "config.json"),
    C("viz-unknown-action", "viz picture x", "picture"),
    C("viz-curves-out-is-folder", "viz curves run --out tiles", "--out tiles"),
    C("viz-curves-out-below-file", "viz curves run --out afile/c.png", "afile"),
    C("viz-predictions-out-is-folder", "viz predictions run --out tiles", "--out tiles"),
    C("viz-record-split-folder", "viz record kaggle/train --out x.png", "kaggle/train"),
    C("viz-record-out-not-png", "viz record {TRAIN0} --out x.xyz", "x.png"),
    C("viz-curves-out-not-png", "viz curves run --out c.jpg", "c.png"),
    # -------------------------------------------------------------- weights
    C("weights-unknown-name", "weights coat_huge", "coat_huge"),
    C("weights-bad-sha256", "weights coat_lite_mini --sha256 xyz", "--sha256"),
    C("weights-to-is-file", "weights coat_lite_mini --to afile", "afile"),
    C("weights-to-below-file", "weights coat_lite_mini --to afile/w", "afile"),
    C("weights-url-without-name", "weights x --url http://127.0.0.1:9/", "file name"),
    C("weights-url-unreachable", "weights x --url http://127.0.0.1:9/w.pth --to w", "127.0.0.1",
      makes=("w",)),
    # ---------------------------------------------------------------- train
    C("train-config-missing", "train nosuch.json", "nosuch.json"),
    C("train-config-is-folder", "train tiles", "tiles is a folder"),
    C("train-config-not-json", "train bad.json", "bad.json", write("bad.json", "{")),
    C("train-config-array", "train bad.json", "JSON object", write("bad.json", "[1]")),
    C("train-config-binary", "train bad.json", "not a text file", write("bad.json", b"\xff\xfe")),
    C("train-config-unknown-key", "train bad.json", "EPOCH", write("bad.json", '{"EPOCH": 1}')),
    C("train-config-bad-value", "train bad.json", "bad.json: BS", write("bad.json", '{"BS": "x"}')),
    C("train-override-unknown", f"{TR} EPOCH 1", "override: unknown key EPOCH"),
    C("train-override-bad-type", f"{TR} BS x", "override: BS"),
    C("train-override-not-the-file", f"{TR} BS x", "override: BS must be an integer"),
    C("train-override-no-value", f"{TR} BS", "BS has no value"),
    C("train-override-negative", f"{TR} BS -1", "override: BS must be"),
    C("train-override-fraction", f"{TR} PCT_START 1.5", "override: PCT_START"),
    C("train-override-choice", f"{TR} PRECISION fp8", "override: PRECISION"),
    C("train-override-fname", f"{TR} FNAME a/b", "override: FNAME"),
    C("train-override-device", f"{TR} DEVICE tpu", "override: DEVICE"),
    C("train-override-impl", f"{TR} IMPL nowhere", "override: IMPL"),
    C("train-override-dotted", f"{TR} BS.x 1", "BS is not an object"),
    C("train-override-null", f"{TR} EPOCHS null", "override: EPOCHS"),
    C("train-path-missing", f"{TR} PATH nosuch", "nosuch"),
    C("train-path-not-tiles", f"{TR} PATH kaggle", "train_adj2"),
    C("train-tile-truncated", TR, "{TILE0}", truncate("{TILE0}")),
    C("train-tile-garbage", TR, "{TILE0}", write("{TILE0}", b"II*\x00garbage")),
    C("train-tile-empty", TR, "{TILE0}", write("{TILE0}", b"")),
    C("train-tile-wrong-channels", TR, "{TILE0}", tif("{TILE0}", (64, 64, 5))),
    C("train-tile-wrong-dtype", TR, "{TILE0}",
      lambda root, tok: __import__("tifffile").imwrite(root / tok["TILE0"],
                                                       np.zeros((64, 64, 24), np.float32))),
    C("train-mask-missing", TR, "{MASK0}", remove("{MASK0}")),
    C("train-mask-truncated", TR, "{MASK0}", truncate("{MASK0}", 0.3)),
    C("train-mask-wrong-size", TR, "{MASK0}", tif("{MASK0}", (32, 32))),
    C("train-val-tile-truncated", TR, "val_adj2",
      lambda root, tok: truncate(str(sorted((root / "tiles/val_adj2").glob("*_img.tif"))[0]
                                     .relative_to(root)))(root, tok)),
    C("train-out-is-file", f"{TR} OUT afile", "OUT afile"),
    C("train-out-below-file", f"{TR} OUT afile/runs", "afile"),
    C("train-out-unwritable", f"{TR} OUT {UNWRITABLE}/runs", UNWRITABLE),
    C("train-weights-run-checkpoint", f"{TR} WEIGHTS run/checkpoint.pth", "run checkpoint"),
    C("train-weights-checkpoint-names-model", f"{TR} WEIGHTS run/checkpoint.pth", "run/model.pth"),
    C("train-weights-missing", f"{TR} WEIGHTS nosuch.pth", "nosuch.pth"),
    C("train-weights-garbage", f"{TR} WEIGHTS garbage.pth", "garbage.pth"),
    C("train-weights-wrong-model", f"{TR} WEIGHTS run/model.pth MODEL CoaT_U", "does not fit"),
    C("train-pretrained-missing", f"{TR} PRETRAINED nosuch.pth", "nosuch.pth"),
    C("train-labels-mismatch", f"{TR} LABELS soft", "holds hard labels"),
    C("train-bs-above-tiles", f"{TR} BS 64", "fewer than BS 64"),
    C("train-precision-on-cpu", f"{TR} PRECISION bf16", "PRECISION bf16"),
    C("train-model-unknown", f"{TR} MODEL Foo", "Foo"),
    C("train-arch-unknown", f"{TR} ARCH huge", "huge"),
    C("train-loss-unknown", f"{TR} LOSS_FUNC mse", "LOSS_FUNC"),
    C("train-resume-damaged-checkpoint", f"{TR} RESUME true", "runs/r/checkpoint.pth",
      write("runs/r/checkpoint.pth", b"junk")),
    C("train-impl-exercises-todo", f"{TR} IMPL exercises", "IMPL exercises"),
    *([C("train-device-cuda-absent", f"{TR} DEVICE cuda", "DEVICE cuda")] if NO_CUDA == "" else []),
    # ------------------------------------------------------------- evaluate
    C("evaluate-run-missing", "evaluate nosuch", "nosuch"),
    C("evaluate-run-is-file", "evaluate afile", "afile"),
    C("evaluate-not-a-run", "evaluate tiles", "config.json"),
    C("evaluate-config-damaged", "evaluate run", "config.json", write("run/config.json", "{")),
    C("evaluate-batch-size-0", "evaluate run --batch-size 0", "--batch-size"),
    C("evaluate-no-model", "evaluate run", "model.pth", remove("run/model.pth")),
    C("evaluate-data-missing", "evaluate run --data nosuch", "nosuch"),
    C("evaluate-val-tile-truncated", "evaluate run", "val_adj2",
      lambda root, tok: truncate(str(sorted((root / "tiles/val_adj2").glob("*_img.tif"))[0]
                                     .relative_to(root)))(root, tok)),
    C("predict-weights-is-folder", "predict --data kaggle/test --weights run", "run/model.pth"),
    C("train-weights-is-folder", f"{TR} WEIGHTS run", "pass run/model.pth"),
    C("train-pretrained-run-checkpoint", f"{TR} PRETRAINED run/checkpoint.pth", "run checkpoint"),
    # -------------------------------------------------------------- predict
    C("predict-data-missing", "predict --data nosuch --weights run/model.pth", "nosuch"),
    C("predict-data-is-file", "predict --data afile --weights run/model.pth", "afile"),
    C("predict-data-empty", "predict --data empty --weights run/model.pth", "empty", mkdir("empty")),
    C("predict-weights-missing", "predict --data kaggle/test --weights nosuch.pth", "nosuch.pth"),
    C("predict-weights-run-checkpoint", "predict --data kaggle/test --weights run/checkpoint.pth",
      "RESUME"),
    C("predict-weights-garbage", "predict --data kaggle/test --weights garbage.pth --model "
      "CoaT_ULSTM --arch tiny", "garbage.pth"),
    C("predict-weights-truncated", PRED, "run/model.pth", truncate("run/model.pth", 0.5)),
    C("predict-weights-pickled-numpy", "predict --data kaggle/test --weights np.pth --model "
      "CoaT_ULSTM", "np.pth",
      lambda root, tok: __import__("torch").save({"a": np.zeros(2)}, root / "np.pth")),
    C("predict-weights-without-config", "predict --data kaggle/test --weights lone/model.pth",
      "lone/config.json", copy("run/model.pth", "lone/model.pth")),
    C("predict-run-config-not-object", PRED, "JSON object", write("run/config.json", "[]")),
    C("predict-run-config-no-model", PRED, "MODEL", write("run/config.json", "{}")),
    C("predict-wrong-model", f"{PRED} --model CoaT_U", "does not fit"),
    C("predict-threshold-1", f"{PRED} --threshold 1", "--threshold"),
    C("predict-threshold-0", f"{PRED} --threshold 0", "--threshold"),
    C("predict-threshold-nan", f"{PRED} --threshold nan", "--threshold"),
    C("predict-threshold-text", f"{PRED} --threshold high", "--threshold"),
    C("predict-model-weights-count", f"{PRED} --model-weights 1 2", "--model-weights"),
    C("predict-model-weights-negative", f"{PRED} --model-weights -1", "--model-weights"),
    C("predict-batch-size-0", f"{PRED} --batch-size 0", "--batch-size"),
    C("predict-out-is-folder", f"{PRED} --out tiles", "--out tiles"),
    C("predict-out-below-file", f"{PRED} --out afile/s.csv", "afile"),
    C("predict-out-unwritable", f"{PRED} --out {UNWRITABLE}/s.csv", UNWRITABLE),
    C("predict-sides-not-16", PRED, "{TEST0}", sides(60)),
    C("predict-sides-mixed", PRED, "--batch-size 1", sides(32)),
    C("predict-band-missing", PRED, "{TEST0}", remove("{TEST0}/band_11.npy")),
    C("predict-bands-celsius", PRED, "°C", celsius("{TEST0}")),
    C("predict-odd-band", PRED, "{TEST0}/band_15.npy", band("{TEST0}", "15", crop)),
    C("predict-no-weights", "predict --data kaggle/test", "--weights"),
    C("predict-num-workers-negative", f"{PRED} --num-workers -1", "--num-workers"),
    C("predict-data-is-dataset-root", "predict --data kaggle --weights run/model.pth", "kaggle"),
    C("evaluate-data-is-records", "evaluate run --data kaggle/validation", "kaggle/validation"),
    C("evaluate-batch-size-negative", "evaluate run --batch-size -1", "--batch-size"),
    C("hint-zero", "hint rle 0", "hint 0"),
    C("demo-out-unwritable", f"demo --out {UNWRITABLE}/demo", UNWRITABLE),
    C("submission-data-is-dataset-root", "submission check sub.csv --data kaggle", "kaggle"),
    *([C("predict-device-cuda-absent", f"{PRED} --device cuda", "--device cuda")]
      if NO_CUDA == "" else []),
    # ----------------------------------------------------------- submission
    C("submission-file-missing", "submission check nosuch.csv --data kaggle/test", "nosuch.csv"),
    C("submission-file-is-folder", "submission check kaggle --data kaggle/test", "is a folder"),
    C("submission-data-missing", "submission check sub.csv --data nosuch", "nosuch"),
    C("submission-bad-header", SUB, "sub.csv:1", write("sub.csv", "id,rle\n")),
    C("submission-empty-file", SUB, "empty file", write("sub.csv", "")),
    C("submission-binary", SUB, "sub.csv", write("sub.csv", b"\xff\xfe\x00\x01")),
    C("submission-three-fields", SUB, "3 fields",
      write("sub.csv", "record_id,encoded_pixels\n1,2,3\n")),
    C("submission-unknown-record", SUB, "record 42",
      write("sub.csv", "record_id,encoded_pixels\n42,-\n")),
    C("submission-missing-record", SUB, "has no row", write("sub.csv", "record_id,encoded_pixels\n")),
    C("submission-duplicate", SUB, "duplicate",
      lambda root, tok: (root / "sub.csv").write_text(
          (root / "sub.csv").read_text() + (root / "sub.csv").read_text().splitlines()[1] + "\n")),
    C("submission-odd-rle", SUB, "bad RLE",
      lambda root, tok: (root / "sub.csv").write_text(
          (root / "sub.csv").read_text().replace(",-", ",5", 1))),
    C("submission-rle-outside", SUB, "bad RLE",
      lambda root, tok: (root / "sub.csv").write_text(
          (root / "sub.csv").read_text().replace(",-", ",4090 100", 1))),
    C("submission-no-action", "submission", "ACTION"),
    C("submission-no-data", "submission check sub.csv", "--data"),
    # ------------------------------------------------------ learner commands
    C("check-timeout-0", "check rle --timeout 0", "--timeout"),
    C("check-timeout-negative", "check rle --timeout -5", "--timeout"),
    C("check-timeout-nan", "check rle --timeout nan", "--timeout"),
    C("check-timeout-text", "check rle --timeout soon", "--timeout"),
    C("watch-interval-0", "watch --interval 0 --once", "--interval"),
    C("watch-interval-negative", "watch --interval -1 --once", "--interval"),
    C("check-impl-missing", "check rle --impl nosuch", "--impl nosuch"),
    C("check-impl-is-file", "check rle --impl afile", "--impl afile"),
    C("check-impl-empty-names-file", "check rle --impl impl_empty", "submission.py is missing"),
    C("check-impl-empty-all", "check --impl impl_empty", "impl_empty"),
    C("watch-impl-empty", "watch rle --impl impl_empty --once", "submission.py"),
    C("list-impl-missing", "list --impl nosuch", "nosuch"),
    C("progress-impl-missing", "progress --impl nosuch", "nosuch"),
    C("check-unknown-id", "check rlee", "rlee"),
    C("hint-unknown-id", "hint rlee", "rlee"),
    C("hint-out-of-range", "hint rle 99", "hint 99"),
    C("reset-unknown-id", "reset rlee", "rlee"),
    C("reset-solutions", "reset rle --impl solutions", "--impl solutions"),
    C("solution-unknown-id", "solution rlee", "rlee"),
    C("solution-not-passed", "solution rle", "rle has not passed"),
    C("progress-file-is-folder", "progress", "progress.txt", mkdir("state/progress.txt")),
    C("unknown-command-close", "trian cfg.json", "`train`"),
    C("unknown-command-far", "xyzzy", "xyzzy"),
    # ---------------------------------------------------------- cloud, demo
    C("cloud-plan-missing", "cloud plan nosuch.toml", "nosuch.toml"),
    C("cloud-plan-is-folder", "cloud plan tiles", "tiles is a folder"),
    C("cloud-plan-not-toml", "cloud plan p.toml", "p.toml", write("p.toml", "x =")),
    C("cloud-plan-binary", "cloud plan p.toml", "p.toml", write("p.toml", b"\xff\xfe\x00")),
    C("cloud-no-action", "cloud", "ACTION"),
    C("cloud-plan-config-is-folder", "cloud plan p.toml", "[train] config tiles",
      write("p.toml", PLAN.replace('"configs/demo.json"', '"tiles"'))),
    C("cloud-plan-bad-override", "cloud plan p.toml", "[train] overrides: EPOCHS",
      write("p.toml", PLAN.replace('"configs/demo.json"', '"cfg.json"')
            .replace("EPOCHS = 1", 'EPOCHS = "x"'))),
    C("cloud-status-interval-0", "cloud status p.toml --interval 0", "--interval"),
    C("cloud-kernel-timeout-negative", "cloud kernel p.toml --timeout -1", "--timeout"),
    C("cloud-kernel-poll-0", "cloud kernel p.toml --poll 0", "--poll"),
    C("demo-out-is-file", "demo --out afile", "afile"),
    C("demo-seed-not-int", "demo --seed x", "--seed"),
]  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return build_base(tmp_path_factory.mktemp("bad_inputs") / "world")


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[str(p.relative_to(root))] = ("dir",) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def _run_in_process(argv: list[str], capfd) -> tuple[int, str]:
    from shakyo.cli import main

    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    return rc, capfd.readouterr().err


def _check(case: Case, root: Path, tok: dict, before: dict, rc: int, err: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}, stderr:\n{err}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"{len(lines)} stderr lines:\n{err}"
    assert lines[0].startswith("shakyo"), lines[0]
    assert "\x1b" not in lines[0], repr(lines[0])
    expect = case.expect.format(**tok)
    assert expect in lines[0], f"{expect!r} not in: {lines[0]}"
    after = _snapshot(root)
    tmp = [p for p in after if Path(p).name.startswith(".tmp-")]
    assert not tmp, f"left behind: {tmp}"
    changed = sorted(
        p for p in set(before) | set(after)
        if before.get(p) != after.get(p) and not any(
            p == m or p.startswith(m + "/") for m in case.makes)
    )  # fmt: skip
    assert not changed, f"the command changed the folder: {changed}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case, base, tmp_path, monkeypatch, capfd):
    root = tmp_path / "w"
    copy_world(base, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("SHAKYO_STATE_DIR", str(root / "state"))
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    tok = tokens(root)
    keep = case.setup(root, tok) if case.setup else None  # noqa: F841 (a held lock)
    before = _snapshot(root)
    argv = case.argv.format(**tok).split()
    capfd.readouterr()
    rc, err = _run_in_process(argv, capfd)
    _check(case, root, tok, before, rc, err)


def test_the_table_has_at_least_120_cases():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    print(f"\nbad-input table: {len(CASES)} in-process cases + {len(SUBPROCESS)} subprocess cases")
    assert len(CASES) + len(SUBPROCESS) >= 120


# Where the process boundary matters: the console script itself, stderr that
# libraries write (tifffile's logger, warnings), the interpreter's own exit path.
SUBPROCESS = [
    C("process-train-tile-truncated", TR, "{TILE0}", truncate("{TILE0}")),
    C("process-check-timeout-0", "check rle --timeout 0", "--timeout"),
    C("process-predict-out-folder", f"{PRED} --out tiles", "--out tiles"),
    C("process-prepare-odd-band", "prepare kaggle --out new --workers 2", "{TRAIN0}/band_11.npy",
      band("{TRAIN0}", "11", crop), ("new",)),
]  # fmt: skip


@pytest.mark.parametrize("case", SUBPROCESS, ids=[c.id for c in SUBPROCESS])
def test_bad_input_in_a_real_process(case, base, tmp_path):
    root = tmp_path / "w"
    copy_world(base, root)
    tok = tokens(root)
    if case.setup:
        case.setup(root, tok)
    before = _snapshot(root)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SHAKYO_STATE_DIR": str(root / "state")}
    proc = subprocess.run(
        [sys.executable, "-m", "shakyo.cli", *case.argv.format(**tok).split()],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _check(case, root, tok, before, proc.returncode, proc.stderr)


def test_reader_text_drops_escapes_and_cuts_at_a_word():
    from reference.models.checkpoint import reader_text

    words = "alpha beta gamma delta epsilon " * 10
    text = reader_text(ValueError("\x1b[1m" + words + "\x1b[0m\nsecond line"), limit=40)
    assert "\x1b" not in text and "second" not in text
    assert text.endswith(" ...") and len(text) <= 44
    assert all(w in words.split() for w in text[: -len(" ...")].split())  # no word cut in two
    refusal = "Weights only load failed. Long advice.\n\tWeightsUnpickler error: Unsupported operand 103\n\nCheck"
    assert reader_text(RuntimeError(refusal)) == (
        "torch.load(weights_only=True) refused it: Unsupported operand 103"
    )
