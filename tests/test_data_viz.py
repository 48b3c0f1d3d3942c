"""`shakyo viz record`: a PNG of one record, with and without masks."""

from __future__ import annotations

import numpy as np

from reference.cli import main


def test_viz_record_writes_a_png_with_frames_and_masks(data_synth_dir, tmp_path, capsys):
    rec = sorted((data_synth_dir / "train").iterdir())[0]
    out = tmp_path / "fig" / "record.png"
    assert main(["viz", "record", str(rec), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    import matplotlib.image as mpimg

    png = mpimg.imread(out)
    n_ann = np.load(rec / "human_individual_masks.npy").shape[-1]
    # Two rows of panels, at least 8 columns (frames) and annotators + 2 (masks, outline).
    assert png.shape[0] > 300 and png.shape[1] > 8 * 150 and png.shape[1] > (n_ann + 2) * 150
    assert png[..., :3].std() > 0.05  # not a blank canvas


def test_viz_record_of_a_test_record_draws_frames_only(data_synth_dir, tmp_path):
    rec = sorted((data_synth_dir / "test").iterdir())[0]
    out = tmp_path / "test.png"
    assert main(["viz", "record", str(rec), "--out", str(out)]) == 0
    import matplotlib.image as mpimg

    assert mpimg.imread(out).shape[0] < 400  # one row


def test_viz_record_of_a_missing_folder_is_a_user_error(tmp_path, capsys):
    assert main(["viz", "record", str(tmp_path / "nope"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "nope") in err[0]
