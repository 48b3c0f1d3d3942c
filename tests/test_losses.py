"""loss_comb and the Lovász-Dice hinge (FACTS §4) against hand-computed small cases.

Every expected number below is derived by hand in the comments (Dice surrogate, β = 1):
    Cᵢ = Σ_{j≤i} gⱼ, S = Σ g, tpᵢ = S − Cᵢ, fnᵢ = Cᵢ, fpᵢ = (i+1) − Cᵢ,
    Δᵢ = 1 − 2tpᵢ / (2tpᵢ + fnᵢ + fpᵢ), Δ' = differences, L = Σ (ELU(e₍ᵢ₎)+1)·Δ'ᵢ.
"""

import math

import pytest
import torch

from reference.losses import loss_comb, lovasz_grad, lovasz_hinge, lovasz_hinge_flat, lovasz_sym

E1 = math.exp(-1.0)  # ELU(-1) + 1
E2 = math.exp(-2.0)  # ELU(-2) + 1


def t64(values):
    return torch.tensor(values, dtype=torch.float64)


def test_lovasz_grad_is_dice_not_jaccard():
    # g = [0, 1, 1, 0]: S = 2, C = [0, 1, 2, 2]
    # tp = [2, 1, 0, 0], fn = [0, 1, 2, 2], fp = [1, 1, 1, 2]
    # Δ = [1 - 4/5, 1 - 2/4, 1 - 0/3, 1 - 0/4] = [0.2, 0.5, 1, 1] -> Δ' = [0.2, 0.3, 0.5, 0]
    # (Jaccard would give Δ = 1 - I/U = [1/3, 2/3, 1, 1] -> [1/3, 1/3, 1/3, 0].)
    got = lovasz_grad(t64([0, 1, 1, 0]))
    torch.testing.assert_close(got, t64([0.2, 0.3, 0.5, 0.0]), rtol=0, atol=1e-15)
    assert not torch.allclose(got, t64([1 / 3, 1 / 3, 1 / 3, 0.0]))


def test_lovasz_grad_empty_mask_weights_only_the_first_pixel():
    # g = 0: tp = fn = 0, fp = i+1 -> Δ = 1 everywhere -> Δ' = [1, 0, 0]
    torch.testing.assert_close(lovasz_grad(t64([0, 0, 0])), t64([1.0, 0.0, 0.0]))


def test_lovasz_grad_single_pixel_is_not_differenced():
    # g = [1]: tp = 0, fn = 1, fp = 0 -> Δ₀ = 1 - 0/1 = 1; g = [0]: fp = 1 -> Δ₀ = 1
    torch.testing.assert_close(lovasz_grad(t64([1])), t64([1.0]))
    torch.testing.assert_close(lovasz_grad(t64([0])), t64([1.0]))


def test_one_pixel():
    # x = 0.5, y = 1: e = 1 - 0.5 = 0.5, Δ' = [1] -> L = ELU(0.5) + 1 = 1.5
    assert lovasz_hinge_flat(t64([0.5]), t64([1.0])).item() == pytest.approx(1.5, abs=1e-15)
    # x = 3, y = 1: e = -2 -> L = ELU(-2) + 1 = e^-2 (the hinge is smooth below 0)
    assert lovasz_hinge_flat(t64([3.0]), t64([1.0])).item() == pytest.approx(E2, abs=1e-15)


def test_empty_mask_penalises_only_the_highest_logit():
    # y = 0, signs = -1, e = 1 + x = [1.2, 0.0, 1.5]; sorted [1.5, 1.2, 0.0], Δ' = [1, 0, 0]
    # L = ELU(1.5) + 1 = 2.5
    x = t64([0.2, -1.0, 0.5])
    assert lovasz_hinge_flat(x, t64([0, 0, 0])).item() == pytest.approx(2.5, abs=1e-14)


def test_all_positive_dice_differs_from_jaccard():
    # x = [2, -0.5, 0], y = 1: e = 1 - x = [-1, 1.5, 1]; sorted [1.5, 1, -1], g = [1, 1, 1]
    # S = 3, C = [1, 2, 3], tp = [2, 1, 0], fn = [1, 2, 3], fp = 0
    # Δ = [1 - 4/5, 1 - 2/4, 1] = [0.2, 0.5, 1] -> Δ' = [0.2, 0.3, 0.5]
    # L = 2.5·0.2 + 2.0·0.3 + e^-1·0.5 = 1.1 + 0.5/e
    # (Jaccard: Δ' = [1/3, 1/3, 1/3] -> (2.5 + 2.0 + e^-1)/3 = 1.6226...)
    got = lovasz_hinge_flat(t64([2.0, -0.5, 0.0]), t64([1, 1, 1])).item()
    assert got == pytest.approx(1.1 + 0.5 * E1, abs=1e-14)
    assert abs(got - (4.5 + E1) / 3) > 0.3


def test_mixed_labels():
    # x = [1, -2, 0.5, -0.3], y = [1, 0, 0, 1]: signs [1, -1, -1, 1]
    # e = [0, -1, 1.5, 1.3]; sorted [1.5, 1.3, 0, -1] with g = [0, 1, 1, 0]
    # Δ' = [0.2, 0.3, 0.5, 0] (test_lovasz_grad_is_dice_not_jaccard)
    # L = 2.5·0.2 + 2.3·0.3 + 1.0·0.5 + e^-1·0 = 0.5 + 0.69 + 0.5 = 1.69
    got = lovasz_hinge_flat(t64([1.0, -2.0, 0.5, -0.3]), t64([1, 0, 0, 1])).item()
    assert got == pytest.approx(1.69, abs=1e-14)


def test_soft_labels():
    # x = [0, 1], y = [0.25, 0.75]: signs = [-0.5, 0.5], e = [1, 0.5] (already sorted)
    # S = 1, C = [0.25, 1], tp = [0.75, 0], fn = [0.25, 1], fp = [0.75, 1]
    # Δ₀ = 1 - 1.5/(1.5 + 0.25 + 0.75) = 0.4, Δ₁ = 1 - 0/2 = 1 -> Δ' = [0.4, 0.6]
    # L = (ELU(1)+1)·0.4 + (ELU(0.5)+1)·0.6 = 2·0.4 + 1.5·0.6 = 1.7
    got = lovasz_hinge_flat(t64([0.0, 1.0]), t64([0.25, 0.75])).item()
    assert got == pytest.approx(1.7, abs=1e-14)


def test_ties_do_not_change_the_value():
    # x = [0.5, -0.5, 2], y = [1, 0, 1]: e = [0.5, 0.5, -1], a tie between a positive and a
    # negative pixel. Order g = [1, 0, 1]: C = [1, 1, 2], tp = [1, 1, 0], fn = [1, 1, 2],
    # fp = [0, 1, 1], Δ = [1/3, 1/2, 1], Δ' = [1/3, 1/6, 1/2] -> 1.5/3 + 1.5/6 + e^-1/2.
    # Order g = [0, 1, 1]: Δ' = [0.2, 0.3, 0.5] -> 1.5·0.5 + e^-1/2. Both = 0.75 + e^-1/2.
    expected = 0.75 + 0.5 * E1
    assert lovasz_hinge_flat(t64([0.5, -0.5, 2.0]), t64([1, 0, 1])).item() == pytest.approx(
        expected, abs=1e-14
    )
    assert lovasz_hinge_flat(t64([-0.5, 0.5, 2.0]), t64([0, 1, 1])).item() == pytest.approx(
        expected, abs=1e-14
    )


def test_no_pixels_gives_zero_and_keeps_the_graph():
    x = torch.zeros(0, dtype=torch.float64, requires_grad=True)
    loss = lovasz_hinge_flat(x, torch.zeros(0, dtype=torch.float64))
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad is not None and x.grad.shape == (0,)


def test_per_image_is_the_mean_of_images_and_flat_is_not():
    # image 0 = test_mixed_labels (L = 1.69); image 1: y = 0, e = 1 + x = [1.2, 0, 1.5, 1.1]
    # -> L = ELU(1.5) + 1 = 2.5. per_image: (1.69 + 2.5) / 2 = 2.095.
    x = t64([[1.0, -2.0, 0.5, -0.3], [0.2, -1.0, 0.5, 0.1]]).reshape(2, 1, 2, 2)
    y = t64([[1, 0, 0, 1], [0, 0, 0, 0]]).reshape(2, 1, 2, 2)
    assert lovasz_hinge(x, y, per_image=True).item() == pytest.approx(2.095, abs=1e-14)
    # per_image=False, one set of 8 pixels: e sorted = [1.5, 1.5, 1.3, 1.2, 1.1, 0, 0, -1]
    # with g = [0, 0, 1, 0, 0, 1, 0, 0] (ties value-neutral): S = 2, C = [0,0,1,1,1,2,2,2],
    # tp = [2,2,1,1,1,0,0,0], fn = C, fp = [1,2,2,3,4,4,5,6]
    # Δ = [1-4/5, 1-4/6, 1-2/5, 1-2/6, 1-2/7, 1, 1, 1] = [1/5, 1/3, 3/5, 2/3, 5/7, 1, 1, 1]
    # Δ' = [1/5, 2/15, 4/15, 1/15, 1/21, 2/7, 0, 0]
    # L = 2.5/5 + 2.5·2/15 + 2.3·4/15 + 2.2/15 + 2.1/21 + 1.0·2/7
    flat = 2.5 / 5 + 2.5 * 2 / 15 + 2.3 * 4 / 15 + 2.2 / 15 + 2.1 / 21 + 2 / 7
    assert lovasz_hinge(x, y, per_image=False).item() == pytest.approx(flat, abs=1e-14)


def _bce(x, y):
    # log(1 + e^x) - x·y, the BCE of a logit, written independently of torch.
    return math.log1p(math.exp(x)) - x * y


def test_loss_comb_hand_case():
    # x = [1, -2, 0.5, -0.3], y = [1, 0, 0, 1]
    # L(x, y) = 1.69 (test_mixed_labels).
    # L(-x, 1-y): signs' = [-1, 1, 1, -1], e' = 1 - (-x)·signs' = [0, -1, 1.5, 1.3] (the same e);
    # sorted [1.5, 1.3, 0, -1] with g' = [1, 0, 0, 1]: S = 2, C = [1, 1, 1, 2],
    # tp = [1, 1, 1, 0], fn = [1, 1, 1, 2], fp = [0, 1, 2, 2]
    # Δ = [1 - 2/3, 1 - 2/4, 1 - 2/5, 1 - 0/4] = [1/3, 1/2, 3/5, 1] -> Δ' = [1/3, 1/6, 1/10, 2/5]
    # L' = 2.5/3 + 2.3/6 + 1.0/10 + (ELU(-1)+1)·0.4 = ... + e^-1·0.4
    xs, ys = [1.0, -2.0, 0.5, -0.3], [1.0, 0.0, 0.0, 1.0]
    l_pos = 1.69
    l_neg = 2.5 / 3 + 2.3 / 6 + 0.1 + 0.4 * E1
    bce = sum(_bce(a, b) for a, b in zip(xs, ys)) / 4
    expected = bce + 0.01 * 0.5 * (l_pos + l_neg)
    x, y = t64(xs).reshape(1, 1, 2, 2), t64(ys).reshape(1, 1, 2, 2)
    assert lovasz_sym(x, y).item() == pytest.approx(0.5 * (l_pos + l_neg), abs=1e-14)
    got = loss_comb(x, y)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_loss_comb_casts_half_precision_logits_to_float32(half):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 8, 8, generator=g).to(half)
    y = (torch.rand(2, 1, 8, 8, generator=g) > 0.7).float()
    got = loss_comb(x, y)
    assert got.dtype == torch.float32
    assert torch.equal(got, loss_comb(x.float(), y))


def test_loss_comb_accepts_bool_targets():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1, 4, 4, generator=g)
    y = torch.rand(1, 1, 4, 4, generator=g) > 0.5
    assert torch.equal(loss_comb(x, y), loss_comb(x, y.float()))


def test_loss_comb_gradcheck_float64():
    g = torch.Generator().manual_seed(2)
    # Distinct logits spaced well apart: no tie in the sorted errors within the FD step.
    x = (torch.randperm(18, generator=g).double() * 0.37 - 3.0).reshape(2, 1, 3, 3)
    x.requires_grad_(True)
    y = torch.tensor([0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0], dtype=torch.float64)
    y = y.reshape(2, 1, 3, 3)
    assert torch.autograd.gradcheck(lambda a: loss_comb(a, y), (x,), eps=1e-6, atol=1e-8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loss_comb_under_cuda_autocast_matches_float32_on_cpu():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 1, 64, 64, generator=g)
    y = (torch.rand(2, 1, 64, 64, generator=g) > 0.9).float()
    # fastai computes the loss inside autocast with fp16 logits; the cast keeps it float32.
    with torch.autocast("cuda", dtype=torch.float16):
        got = loss_comb(x.cuda().half(), y.cuda())
    assert got.dtype == torch.float32
    expected = loss_comb(x.half().float(), y)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
