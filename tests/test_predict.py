"""`shakyo predict`: synthetic test folders -> a valid submission; blends average as documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reference.cli import main
from reference.data import get_false_color, read_record
from reference.data.synth import synthesize
from reference.models import get_model
from reference.submission import check_submission, rle_decode

SIZE = 64


def _item(record_dir: Path) -> torch.Tensor:
    """Independent re-derivation of a test item (FACTS §1, §8): ash colour of all 8
    frames, floor(255 v) / 255 with the product in float32 as in the original, as
    (3, 8, H, W) float32."""
    ash = get_false_color(read_record(record_dir), full=True)  # (H, W, 3, 8) float32
    q = np.floor(np.float32(255) * ash).astype(np.float64) / 255
    return torch.from_numpy(q.transpose(2, 3, 0, 1).astype(np.float32))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, 0, 2, 3, seed=7, size=SIZE, workers=1, progress=False)
    return out


def _save_run(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = get_model("CoaT_ULSTM", arch="tiny")
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / "model.pth")
    (folder / "config.json").write_text(json.dumps({"MODEL": "CoaT_ULSTM", "ARCH": "tiny"}))
    return folder / "model.pth"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [_save_run(root / "a", 1), _save_run(root / "b", 2)]


@pytest.fixture(scope="module")
@torch.no_grad()
def manual(data, runs) -> list[dict[str, np.ndarray]]:
    """Per weights file, {record_id: (H, W) float64 sigmoid probability}, computed by
    hand: plain load_state_dict, all test records in one batch."""
    records = sorted((data / "test").iterdir())
    x = torch.stack([_item(r) for r in records])
    out = []
    for weights_file in runs:
        model = get_model("CoaT_ULSTM", arch="tiny")
        model.load_state_dict(torch.load(weights_file, weights_only=True))
        prob = torch.sigmoid(model.eval()(x))[:, 0].double().numpy()
        out.append({r.name: p for r, p in zip(records, prob)})
    return out


def _safe_threshold(probs: list[np.ndarray]) -> float:
    """The midpoint of the widest gap between sorted probabilities in the 70th-95th
    percentile, so float32 vs float64 rounding (~1e-7) cannot flip a pixel."""
    p = np.sort(np.concatenate([q.ravel() for q in probs]))
    lo, hi = int(0.7 * p.size), int(0.95 * p.size)
    i = lo + int(np.argmax(np.diff(p[lo:hi])))
    assert p[i + 1] - p[i] > 1e-5, "no gap wide enough for a safe threshold"
    return float(p[i] + p[i + 1]) / 2


def test_predict_on_synthetic_test_folders_writes_a_valid_submission(tmp_path, data, runs, capsys):
    out = tmp_path / "submission.csv"
    rc = main(["predict", "--data", str(data / "test"), "--weights", str(runs[0]),
               "--threshold", "0.5", "--out", str(out), "--batch-size", "2", "--device", "cpu"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    report = check_submission(out, data / "test")
    assert report.n_records == 3
    lines = out.read_text().splitlines()
    assert lines[0] == "record_id,encoded_pixels"
    ids = [line.split(",")[0] for line in lines[1:]]
    assert ids == sorted(ids, key=int)
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


def test_two_weights_files_are_averaged_with_normalised_weights(tmp_path, data, runs, manual):
    from reference.infer import predict

    # --model-weights 1 3 -> 0.25 and 0.75.
    blend = {rid: 0.25 * manual[0][rid] + 0.75 * manual[1][rid] for rid in manual[0]}
    th = _safe_threshold(list(blend.values()))
    out = predict(data / "test", runs, model_weights=[1, 3], threshold=th,
                  out=tmp_path / "s.csv", batch_size=2, device="cpu")  # fmt: skip
    rows = dict(line.split(",") for line in out.read_text().splitlines()[1:])
    assert sorted(rows) == sorted(blend)
    n_positive = 0
    for rid, p in blend.items():
        expected = (p > th).astype(np.uint8)
        # The published encoder zeroes the first and last pixel (column-major).
        expected[0, 0] = expected[-1, -1] = 0
        np.testing.assert_array_equal(rle_decode(rows[rid], (SIZE, SIZE)), expected)
        n_positive += int(expected.sum())
    assert n_positive > 0  # the comparison covered real runs, not only empty masks


class _Affine(torch.nn.Module):
    """logits = a * (red channel of frame 4) + b: a model whose sigmoid is known by hand."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):  # (B, 3, T, H, W) -> (B, 1, H, W)
        return self.a * x[:, :1, 4] + self.b


def test_predict_probs_blends_sigmoids_per_record():
    from reference.infer import predict_probs

    x = torch.rand(3, 3, 8, 4, 5, generator=torch.Generator().manual_seed(0))
    loader = [(x[:2], ["7", "5"]), (x[2:], ["6"])]  # two batches, ids out of order
    probs = predict_probs([_Affine(2.0, -1.0), _Affine(-3.0, 0.5)], [0.4, 0.6], loader, "cpu")
    assert sorted(probs) == ["5", "6", "7"]
    r = x[:, 0, 4].double().numpy()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for i, rid in enumerate(["7", "5", "6"]):
        expected = 0.4 * sig(2 * r[i] - 1) + 0.6 * sig(-3 * r[i] + 0.5)
        assert probs[rid].shape == (4, 5)
        np.testing.assert_allclose(probs[rid], expected, atol=1e-6)


def test_normalise_weights():
    from reference.infer import normalise_weights

    assert normalise_weights(None, 4) == [0.25] * 4
    assert normalise_weights([1, 3], 2) == [0.25, 0.75]


def test_model_flags_replace_a_missing_config_and_validation_reports_dice(
    tmp_path, data, runs, capsys
):
    lone = tmp_path / "lone.pth"  # a weights file with no config.json beside it
    lone.write_bytes(runs[0].read_bytes())
    out = tmp_path / "val.csv"
    rc = main(["predict", "--data", str(data / "validation"), "--weights", str(lone),
               "--model", "CoaT_ULSTM", "--arch", "tiny", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["submission", "check", str(out), "--data", str(data / "validation")]) == 0
    assert "2 records" in (summary := capsys.readouterr().out) and "global Dice" in summary


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--threshold", "1.0"], "must be in (0, 1)"),
        (["--threshold", "0"], "must be in (0, 1)"),
        (["--model-weights", "1", "2"], "2 values for 1 weights files"),
        (["--model-weights", "-1"], "weights must be >= 0"),
    ],
)
def test_bad_options_fail_with_one_line(tmp_path, data, runs, capsys, extra, message):
    out = tmp_path / "s.csv"
    rc = main(["predict", "--data", str(data / "test"), "--weights", str(runs[0]),
               "--out", str(out), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_missing_weights_file_fails_with_one_line(tmp_path, data, capsys):
    rc = main(["predict", "--data", str(data / "test"), "--weights", str(tmp_path / "no.pth")])
    err = capsys.readouterr().err
    assert rc == 2 and "no.pth: weights file not found" in err and err.count("\n") == 1


def test_weights_without_config_or_model_flag_fail_with_one_line(tmp_path, data, runs, capsys):
    lone = tmp_path / "lone.pth"
    lone.write_bytes(runs[0].read_bytes())
    rc = main(["predict", "--data", str(data / "test"), "--weights", str(lone)])
    err = capsys.readouterr().err
    assert rc == 2 and "config.json: not found" in err and "--model" in err


def test_folder_without_records_fails_with_one_line(tmp_path, runs, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["predict", "--data", str(tmp_path / "empty"), "--weights", str(runs[0])])
    err = capsys.readouterr().err
    assert rc == 2 and "no record folders" in err and err.count("\n") == 1


def test_full_fp32_turns_tf32_off_inside_and_restores_it():
    from reference.infer import full_fp32

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with full_fp32():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
