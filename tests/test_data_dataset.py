"""Datasets (item layout, frame choice, quantisation) and the augmentation (FACTS §2, §8)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from reference.data import ContrailsDataset, ContrailsDatasetV0, get_aug
from reference.errors import DataError

H, W = 8, 6


def _write_tile(folder, rid, mask_shape=(H, W)):
    """Tile whose channel colour·8 + frame holds the constant 10·colour + frame + 1."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.zeros((H, W, 24), np.uint8)
    for c in range(3):
        for t in range(8):
            img[:, :, c * 8 + t] = 10 * c + t + 1
    mask = np.zeros(mask_shape, np.uint8)
    mask[2, 3] = 255
    mask.reshape(H, W)[5, 1] = 128
    tifffile.imwrite(
        folder / f"{rid}_img.tif", img, photometric="minisblack", planarconfig="contig"
    )
    tifffile.imwrite(folder / f"{rid}_mask.tif", mask, photometric="minisblack")


def test_item_layout_keeps_frames_0_to_4_as_colour_by_frame(tmp_path):
    _write_tile(tmp_path / "val_adj2", "7")
    image, mask = ContrailsDatasetV0(tmp_path, train=False)[0]
    assert image.shape == (3, 5, H, W) and image.dtype == torch.float32
    assert mask.shape == (1, H, W) and mask.dtype == torch.float32
    for c in range(3):
        for t in range(5):
            assert torch.all(image[c, t] == (10 * c + t + 1) / 255), (c, t)
    assert mask[0, 2, 3] == 1.0 and mask[0, 5, 1] == pytest.approx(128 / 255)
    assert mask.sum() == pytest.approx(1 + 128 / 255)


def test_validation_masks_with_a_trailing_axis_give_the_same_item(tmp_path):
    _write_tile(tmp_path / "a" / "val_adj2", "1")
    _write_tile(tmp_path / "b" / "val_adj2", "1", mask_shape=(H, W, 1))
    a = ContrailsDatasetV0(tmp_path / "a", train=False)[0]
    b = ContrailsDatasetV0(tmp_path / "b", train=False)[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_files_are_sorted_and_repeated(tmp_path):
    for rid in ("30", "10", "20"):
        _write_tile(tmp_path / "train_adj2", rid)
    ds = ContrailsDatasetV0(tmp_path, repeat=2)
    assert len(ds) == 6
    assert [p.name for p in ds.fnames] == ["10_img.tif", "20_img.tif", "30_img.tif"] * 2


def test_path_is_the_data_root_and_train_picks_the_folder(tmp_path):
    _write_tile(tmp_path / "train_adj2", "1")
    _write_tile(tmp_path / "val_adj2", "2")
    _write_tile(tmp_path / "train_adj2single", "3")
    assert [p.name for p in ContrailsDatasetV0(tmp_path, train=True).fnames] == ["1_img.tif"]
    assert [p.name for p in ContrailsDatasetV0(tmp_path, train=False).fnames] == ["2_img.tif"]
    single = ContrailsDatasetV0(tmp_path, folder="train_adj2single")
    assert [p.name for p in single.fnames] == ["3_img.tif"]
    flat = ContrailsDatasetV0(tmp_path / "val_adj2", folder="")
    assert [p.name for p in flat.fnames] == ["2_img.tif"]


@pytest.mark.parametrize("train", [True, False])
def test_tfms_apply_jointly_whenever_given(tmp_path, train):
    _write_tile(tmp_path / ("train_adj2" if train else "val_adj2"), "1")
    seen = {}

    def tfms(image, mask):
        seen["shape"] = (image.shape, mask.shape)
        return {"image": image[::-1].copy(), "mask": mask[::-1].copy()}

    ref_img, ref_mask = ContrailsDatasetV0(tmp_path, train=train)[0]
    assert not seen
    img, mask = ContrailsDatasetV0(tmp_path, train=train, tfms=tfms)[0]
    assert seen["shape"] == ((H, W, 15), (H, W))
    assert torch.equal(img, ref_img.flip(2)) and torch.equal(mask, ref_mask.flip(1))


def test_missing_tiles_raise_data_error(tmp_path):
    (tmp_path / "empty" / "train_adj2").mkdir(parents=True)
    with pytest.raises(DataError, match="no \\*_img.tif"):
        ContrailsDatasetV0(tmp_path / "empty")
    with pytest.raises(DataError, match="val_adj2: tile folder does not exist"):
        ContrailsDatasetV0(tmp_path / "empty", train=False)
    _write_tile(tmp_path / "t" / "train_adj2", "1")
    (tmp_path / "t" / "train_adj2" / "1_mask.tif").unlink()
    with pytest.raises(DataError, match="1_mask.tif"):
        ContrailsDatasetV0(tmp_path / "t")[0]


def test_test_dataset_quantises_like_the_tiles(tmp_path, data_record_writer):
    rng = np.random.default_rng(1)
    b14 = rng.uniform(235, 310, (H, W, 8))
    b15 = b14 + rng.uniform(-5, 3, b14.shape)
    b11 = b14 - rng.uniform(-5, 6, b14.shape)
    data_record_writer(tmp_path / "test/222", b11, b14, b15)
    data_record_writer(tmp_path / "test/111", b11, b14 + 1, b15 + 1)
    ds = ContrailsDataset(tmp_path / "test")
    assert len(ds) == 2
    image, rid = ds[1]
    assert rid == "222" and image.shape == (3, 8, H, W) and image.dtype == torch.float32
    b11, b14, b15 = (np.asarray(b, np.float32).astype(np.float64) for b in (b11, b14, b15))
    v = np.clip(np.stack([(b15 - b14 + 4) / 6, (b14 - b11 + 4) / 9, (b14 - 243) / 60]), 0, 1)
    x255 = 255 * v  # (3, H, W, 8), float64
    got = image.numpy().transpose(0, 2, 3, 1) * 255  # back to (3, H, W, 8)
    assert np.allclose(got, np.round(got), atol=1e-4), "values must be k/255"
    near_int = (np.abs(x255 - np.round(x255)) < 1e-4) & (x255 > 0) & (x255 < 255)
    np.testing.assert_array_equal(np.round(got)[~near_int], np.floor(x255)[~near_int])


def _sample():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 15), dtype=np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[10:12, 4:28] = 255
    return img, mask


def test_same_seed_same_augmented_samples_other_seed_differs():
    img, mask = _sample()
    a, b, c = get_aug(seed=7), get_aug(seed=7), get_aug(seed=8)
    outs_a = [a(image=img, mask=mask) for _ in range(6)]
    outs_b = [b(image=img, mask=mask) for _ in range(6)]
    outs_c = [c(image=img, mask=mask) for _ in range(6)]
    for oa, ob in zip(outs_a, outs_b):
        assert np.array_equal(oa["image"], ob["image"]) and np.array_equal(oa["mask"], ob["mask"])
    assert any(not np.array_equal(oa["image"], oc["image"]) for oa, oc in zip(outs_a, outs_c))
    assert any(not np.array_equal(o["image"], img) for o in outs_a), "something must change"


def test_mask_stays_binary_and_image_keeps_its_shape():
    img, mask = _sample()
    aug = get_aug(seed=0)
    for _ in range(20):
        out = aug(image=img, mask=mask)
        assert out["image"].shape == img.shape and out["image"].dtype == np.uint8
        assert set(np.unique(out["mask"])) <= {0, 255}  # nearest: no blended label values


def test_affine_border_reflects_instead_of_painting_black():
    import albumentations as A

    affine = get_aug(seed=0).transforms[0]
    assert isinstance(affine, A.Affine)
    affine.p = 1.0
    only_affine = A.Compose([affine], seed=3)
    flat = np.full((32, 32, 15), 200, np.uint8)
    for _ in range(10):
        out = only_affine(image=flat, mask=np.zeros((32, 32), np.uint8))["image"]
        # A 2.x default constant border would put zeros in the corners after a shift.
        assert out.min() == 200


def test_aug_has_no_flips_or_rot90():
    import albumentations as A

    def flat(t):
        for x in getattr(t, "transforms", []):
            yield from flat(x)
        yield t

    kinds = {type(t) for t in flat(get_aug())}
    assert not kinds & {A.HorizontalFlip, A.VerticalFlip, A.RandomRotate90, A.Transpose}
    assert {
        A.Affine,
        A.RandomGamma,
        A.RandomBrightnessContrast,
        A.MotionBlur,
        A.GaussianBlur,
    } <= kinds
