"""F_th, DiceAccumulator and dice_curve (FACTS §5) on hand cases and inside fastai."""

import numpy as np
import pytest
import torch
from torch import nn

from reference.metrics import DEFAULT_THRESHOLDS, DiceAccumulator, F_th, dice_curve


def brute_force_dice(probs, targets, thresholds, beta=1.0):
    """Independent per-threshold loop: P = p > th compared in float32, t = y > 0.5."""
    p = np.asarray(probs, dtype=np.float32).reshape(-1)
    t = np.asarray(targets).reshape(-1) > 0.5
    out = []
    for th in thresholds:
        pred = p > np.float32(th)  # NaN > th is False
        tp = float(np.sum(pred & t))
        fp = float(np.sum(pred & ~t))
        fn = float(np.sum(~pred & t))
        b2 = beta**2
        out.append((1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp + 1e-6))
    return np.array(out)


def test_default_thresholds_are_the_80_of_the_original():
    assert len(DEFAULT_THRESHOLDS) == 80
    assert DEFAULT_THRESHOLDS[0] == pytest.approx(0.10) and DEFAULT_THRESHOLDS[-1] == pytest.approx(
        0.89
    )


def test_hand_case_two_thresholds():
    # p = [0.9, 0.6, 0.3, 0.2], t = [1, 0, 1, 0]
    # th 0.25: P = [1, 1, 1, 0] -> tp 2, fp 1, fn 0 -> 4 / (4 + 0 + 1 + 1e-6)
    # th 0.50: P = [1, 1, 0, 0] -> tp 1, fp 1, fn 1 -> 2 / (2 + 1 + 1 + 1e-6)
    acc = DiceAccumulator([0.25, 0.5])
    acc.update(np.array([0.9, 0.6, 0.3, 0.2], np.float32), np.array([1, 0, 1, 0]))
    assert acc.tp.tolist() == [2, 1] and acc.fp.tolist() == [1, 1] and acc.fn.tolist() == [0, 1]
    np.testing.assert_allclose(acc.dice, [4 / (5 + 1e-6), 2 / (4 + 1e-6)], rtol=0, atol=1e-15)
    assert acc.best_threshold == 0.25
    assert acc.value == pytest.approx(4 / (5 + 1e-6), abs=1e-15)


def test_strict_greater_at_a_probability_equal_to_the_threshold():
    # p = 0.5 exactly, t = 1: at th 0.5, 0.5 > 0.5 is False -> tp 0, fn 1 -> dice 0;
    # at th 0.49: tp 1 -> 2 / (2 + 1e-6).
    acc = DiceAccumulator([0.5, 0.49])
    acc.update(torch.tensor([0.5]), torch.tensor([1.0]))
    np.testing.assert_allclose(acc.dice, [0.0, 2 / (2 + 1e-6)], rtol=0, atol=1e-15)


def test_comparison_is_in_float32_like_torch_tensor_gt_python_float():
    # float32(0.3) = 0.30000001192...; th = 0.30000000000000004 rounds to the same float32,
    # so p > th is False in float32 although it is True in float64.
    p = torch.tensor([0.3], dtype=torch.float32)
    th = 0.30000000000000004
    acc = DiceAccumulator([th])
    acc.update(p, torch.tensor([1.0]))
    assert acc.tp.tolist() == [0] and acc.fn.tolist() == [1]
    assert bool((p > th).item()) is False  # torch's own semantics agree


def test_eps_keeps_an_empty_set_at_zero():
    # no positive pixel, nothing predicted: tp = fp = fn = 0 -> 0 / (0 + 1e-6) = 0
    acc = DiceAccumulator()
    acc.update(torch.full((1, 1, 4, 4), 0.05), torch.zeros(1, 1, 4, 4))
    assert np.all(acc.dice == 0.0) and np.isfinite(acc.value)


def test_nan_probability_counts_as_negative():
    # p = [nan, 0.9], t = [1, 1] at th 0.5: nan > 0.5 is False -> tp 1, fn 1 -> 2 / (2 + 1)
    acc = DiceAccumulator([0.5])
    acc.update(torch.tensor([float("nan"), 0.9]), torch.tensor([1.0, 1.0]))
    assert acc.tp.tolist() == [1] and acc.fn.tolist() == [1] and acc.fp.tolist() == [0]


def test_accumulation_is_global_not_a_mean_of_batches():
    # th 0.5. batch 1: p = [0.9, 0.8], t = [1, 1] -> tp 2: dice 4/(4 + 1e-6) ≈ 1
    # batch 2: p = [0.9, 0.1], t = [0, 1] -> tp 0, fp 1, fn 1: dice 0
    # global: tp 2, fp 1, fn 1 -> 4 / (4 + 1 + 1 + 1e-6) ≈ 0.667; mean of batches ≈ 0.5
    acc = DiceAccumulator([0.5])
    acc.update(torch.tensor([0.9, 0.8]), torch.tensor([1.0, 1.0]))
    acc.update(torch.tensor([0.9, 0.1]), torch.tensor([0.0, 1.0]))
    assert acc.value == pytest.approx(4 / (6 + 1e-6), abs=1e-15)
    assert abs(acc.value - 0.5) > 0.1


def test_batches_sum_to_one_big_batch_and_match_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 1, 16, 16, generator=g)
    # plant probabilities exactly on float32 thresholds and a NaN
    probs.view(-1)[:80] = torch.from_numpy(DEFAULT_THRESHOLDS.astype(np.float32))
    probs.view(-1)[100] = float("nan")
    targets = torch.rand(6, 1, 16, 16, generator=g)  # soft targets: t = y > 0.5
    acc = DiceAccumulator()
    for i in range(0, 6, 2):
        acc.update(probs[i : i + 2], targets[i : i + 2])
    whole = DiceAccumulator()
    whole.update(probs, targets)
    assert np.array_equal(acc.tp, whole.tp) and np.array_equal(acc.fp, whole.fp)
    assert np.array_equal(acc.fn, whole.fn)
    expected = brute_force_dice(probs.numpy(), targets.numpy(), DEFAULT_THRESHOLDS)
    np.testing.assert_allclose(acc.dice, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dice_curve(probs, targets), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dice_curve(probs.numpy(), targets.numpy()), expected, atol=1e-15)


def test_unsorted_thresholds_keep_their_order():
    p, t = np.array([0.9, 0.6, 0.3, 0.2], np.float32), np.array([1, 0, 1, 0])
    np.testing.assert_allclose(dice_curve(p, t, [0.5, 0.25]), dice_curve(p, t, [0.25, 0.5])[::-1])


def test_f_th_metric_on_logits_matches_dice_curve():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 1, 8, 8, generator=g).half()  # AMP gives fp16 predictions
    y = (torch.rand(4, 1, 8, 8, generator=g) > 0.6).float()

    class FakeLearner:
        pass

    m = F_th()
    m.reset()
    for i in range(2):
        learn = FakeLearner()
        learn.pred, learn.y = logits[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2]
        m.accumulate(learn)
    ths, curve = m.curve
    expected = dice_curve(torch.sigmoid(logits.float()), y)
    np.testing.assert_array_equal(ths, DEFAULT_THRESHOLDS)
    np.testing.assert_allclose(curve, expected, rtol=0, atol=0)
    assert m.value == expected.max()
    assert m.best_threshold == DEFAULT_THRESHOLDS[int(np.argmax(expected))]
    assert m.name == "f_th"
    m.reset()
    assert m.acc.tp.sum() == 0


def test_f_th_inside_a_fastai_learner_validate():
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner

    g = torch.Generator().manual_seed(4)
    xs = torch.randn(6, 1, 8, 8, generator=g)
    ys = (torch.rand(6, 1, 8, 8, generator=g) > 0.5).float()
    ds = list(zip(xs, ys))
    dls = DataLoaders(DataLoader(ds, bs=2), DataLoader(ds, bs=2, shuffle=False), device="cpu")
    model = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.fill_(-0.5)
    metric = F_th()
    learn = Learner(dls, model, loss_func=nn.BCEWithLogitsLoss(), metrics=[metric])
    with learn.no_logging():
        loss, f_th = learn.validate()
    expected = brute_force_dice(
        torch.sigmoid(2.0 * xs - 0.5).numpy(), ys.numpy(), DEFAULT_THRESHOLDS
    )
    assert f_th == pytest.approx(expected.max(), abs=1e-12)
    np.testing.assert_allclose(metric.curve[1], expected, rtol=0, atol=1e-12)
    assert learn.recorder.metric_names[-2] == "f_th"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_accumulator_on_cuda_counts_like_on_cpu():
    g = torch.Generator().manual_seed(6)
    probs = torch.rand(4, 1, 64, 64, generator=g)
    probs.view(-1)[:80] = torch.from_numpy(DEFAULT_THRESHOLDS.astype(np.float32))
    targets = torch.rand(4, 1, 64, 64, generator=g)
    cpu, gpu = DiceAccumulator(), DiceAccumulator()
    cpu.update(probs, targets)
    gpu.update(probs.cuda(), targets.cuda())
    assert np.array_equal(cpu.tp, gpu.tp) and np.array_equal(cpu.fp, gpu.fp)
    assert np.array_equal(cpu.fn, gpu.fn)
