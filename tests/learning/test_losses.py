"""PoseAlignmentLoss and gaussian_heatmaps against hand computations and definitions."""

from __future__ import annotations

import math

import pytest
import torch

from medpose.errors import InputError
from medpose.learning.losses import AlphaSchedule, PoseAlignmentLoss, gaussian_heatmaps


def _batch(seed: int = 0, b: int = 2, k: int = 3, shape=(4, 5, 3), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(b, k, 3, generator=g, dtype=dtype) * 3
    true = torch.randn(b, k, 3, generator=g, dtype=dtype) * 3
    logits = torch.randn(b, k, *shape, generator=g, dtype=dtype)
    vox = torch.rand(b, k, 3, generator=g, dtype=dtype) * (torch.tensor(shape, dtype=dtype) - 1)
    return pred, true, logits, vox


def test_gaussian_heatmaps_normalised_and_peaked_at_centre() -> None:
    centres = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    hm = gaussian_heatmaps(centres, (4, 5, 6), sigma=1.0)
    assert hm.shape == (1, 2, 4, 5, 6)
    torch.testing.assert_close(hm.flatten(2).sum(-1), torch.ones(1, 2))
    assert tuple(int(i) for i in torch.nonzero(hm[0, 0] == hm[0, 0].max())[0]) == (1, 2, 3)
    # Ratio of neighbouring voxels is exp(-0.5 * ((d+1)^2 - d^2) / sigma^2).
    ratio = hm[0, 0, 2, 2, 3] / hm[0, 0, 1, 2, 3]
    assert float(ratio) == pytest.approx(math.exp(-0.5))


def test_gaussian_heatmaps_sigma_in_mm_with_spacing() -> None:
    centres = torch.tensor([[[1.0, 1.0, 1.0]]], dtype=torch.float64)
    hm = gaussian_heatmaps(centres, (3, 3, 3), sigma=2.0, spacing=(2.0, 1.0, 1.0))
    # One voxel along axis 0 is 2 mm = 1 sigma; along axis 1 it is 0.5 sigma.
    assert float(hm[0, 0, 2, 1, 1] / hm[0, 0, 1, 1, 1]) == pytest.approx(math.exp(-0.5))
    assert float(hm[0, 0, 1, 2, 1] / hm[0, 0, 1, 1, 1]) == pytest.approx(math.exp(-0.125))


def test_gradcheck_both_terms_float64() -> None:
    pred, true, logits, vox = _batch(b=1, k=2, shape=(3, 3, 2))
    pred.requires_grad_(True)
    logits.requires_grad_(True)
    loss = PoseAlignmentLoss(alpha=0.3, beta_mm=0.5, sigma=1.0)
    assert torch.autograd.gradcheck(
        lambda p, h: loss(p, true, h, target_voxels=vox).total, (pred, logits)
    )


def test_gradcheck_scores_mode_and_target_voxels() -> None:
    pred, true, logits, vox = _batch(b=1, k=2, shape=(3, 2, 2), seed=3)
    scores = (logits.exp() + 0.1).requires_grad_(True)
    vox.requires_grad_(True)  # the target Gaussian is differentiable in its centre too
    loss = PoseAlignmentLoss(alpha=0.0, heatmaps="scores", sigma=1.0)
    assert torch.autograd.gradcheck(
        lambda h, v: loss(pred, true, h, target_voxels=v).total, (scores, vox)
    )


def test_kl_zero_iff_heatmaps_equal() -> None:
    pred, true, _, vox = _batch()
    target = gaussian_heatmaps(vox, (4, 5, 3), sigma=1.5)
    loss = PoseAlignmentLoss(alpha=0.0, heatmaps="scores")
    same = loss(pred, true, target * 7.0, target_heatmaps=target)  # scale does not matter
    assert float(same.heatmap) == pytest.approx(0.0, abs=1e-12)
    logit_loss = PoseAlignmentLoss(alpha=0.0, heatmaps="logits")
    assert float(logit_loss(pred, true, target.log() + 2.0, target_heatmaps=target).heatmap) == (
        pytest.approx(0.0, abs=1e-12)
    )
    shifted = gaussian_heatmaps(vox + 0.3, (4, 5, 3), sigma=1.5)
    assert float(loss(pred, true, shifted, target_heatmaps=target).heatmap) > 1e-4


def test_kl_matches_definition() -> None:
    pred, true, logits, vox = _batch(seed=5)
    target = gaussian_heatmaps(vox, (4, 5, 3), sigma=1.0)
    out = PoseAlignmentLoss(alpha=0.0)(pred, true, logits, target_heatmaps=target)
    p = torch.softmax(logits.flatten(2), -1)
    t = target.flatten(2)
    expected = (t * (t.log() - p.log())).sum(-1).mean()
    assert float(out.heatmap) == pytest.approx(float(expected), rel=1e-10)
    # torch's kl_div(log p, t) summed per channel is the same quantity
    ref = torch.nn.functional.kl_div(p.log(), t, reduction="none").sum(-1).mean()
    assert float(out.heatmap) == pytest.approx(float(ref), rel=1e-10)


def test_l1_term_equals_hand_computation() -> None:
    pred = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]])
    true = torch.tensor([[[3.0, 0.0, -6.0], [1.0, 2.5, 3.0]]])
    logits = torch.zeros(1, 2, 2, 2, 2)
    vox = torch.zeros(1, 2, 3)
    plain = PoseAlignmentLoss(alpha=1.0, beta_mm=0.0)(pred, true, logits, target_voxels=vox)
    # landmark 0: (3 + 0 + 6) / 3 = 3; landmark 1: 0.5 / 3; mean of the two
    assert float(plain.coord) == pytest.approx((3.0 + 0.5 / 3) / 2)
    smooth = PoseAlignmentLoss(alpha=1.0, beta_mm=1.0)(pred, true, logits, target_voxels=vox)
    # Huber(beta=1): |d| - 0.5 above 1 mm, 0.5 d^2 below.
    assert float(smooth.coord) == pytest.approx(((2.5 + 5.5) / 3 + 0.125 / 3) / 2)
    ref = torch.nn.functional.l1_loss(pred, true)
    assert float(plain.coord) == pytest.approx(float(ref))


def test_alpha_isolates_terms() -> None:
    pred, true, logits, vox = _batch(seed=1)
    only_coord = PoseAlignmentLoss(alpha=1.0)(pred, true, logits, target_voxels=vox)
    only_heat = PoseAlignmentLoss(alpha=0.0)(pred, true, logits, target_voxels=vox)
    assert float(only_coord.total) == float(only_coord.coord)
    assert float(only_heat.total) == float(only_heat.heatmap)
    mix = PoseAlignmentLoss(alpha=0.25)(pred, true, logits, target_voxels=vox)
    assert float(mix.total) == pytest.approx(0.25 * float(mix.coord) + 0.75 * float(mix.heatmap))
    # with alpha=1 the heatmaps receive no gradient, with alpha=0 the coordinates none
    p = pred.clone().requires_grad_(True)
    h = logits.clone().requires_grad_(True)
    PoseAlignmentLoss(alpha=1.0)(p, true, h, target_voxels=vox).total.backward()
    assert h.grad is not None and float(h.grad.abs().max()) == 0.0
    assert p.grad is not None and float(p.grad.abs().max()) > 0.0


def test_mask_excludes_landmarks() -> None:
    pred, true, logits, vox = _batch(seed=2, k=3)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    loss = PoseAlignmentLoss(alpha=0.5)
    masked = loss(pred, true, logits, target_voxels=vox, mask=mask)
    garbage = pred.clone()
    garbage[~mask] = 1e6  # hidden landmarks may hold anything
    logits2 = logits.clone()
    logits2[~mask] = -50.0
    again = loss(garbage, true, logits2, target_voxels=vox, mask=mask)
    assert float(again.total) == pytest.approx(float(masked.total))
    # equals the mean over the visible landmarks only
    per = loss(
        pred[mask][None], true[mask][None], logits[mask][None], target_voxels=vox[mask][None]
    )
    assert float(masked.total) == pytest.approx(float(per.total))
    none = loss(pred, true, logits, target_voxels=vox, mask=torch.zeros(2, 3, dtype=torch.bool))
    assert float(none.total) == 0.0


def test_schedule_values() -> None:
    lin = AlphaSchedule(start=0.2, end=0.8, epochs=10, kind="linear")
    assert [lin(e) for e in (0, 5, 10, 20)] == pytest.approx([0.2, 0.5, 0.8, 0.8])
    cos = AlphaSchedule(start=1.0, end=0.0, epochs=4, kind="cosine")
    assert [cos(e) for e in (0, 1, 2, 4)] == pytest.approx(
        [1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.0]
    )
    assert AlphaSchedule(start=0.3, kind="constant")(99) == 0.3
    loss = PoseAlignmentLoss(schedule=lin)
    assert loss.alpha == pytest.approx(0.2)
    loss.set_epoch(5)
    assert loss.alpha == pytest.approx(0.5)
    pred, true, logits, vox = _batch()
    out = loss(pred, true, logits, target_voxels=vox)
    assert out.alpha == pytest.approx(0.5)
    assert PoseAlignmentLoss().alpha == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 1.5},
        {"alpha": 0.5, "schedule": AlphaSchedule()},
        {"beta_mm": -1.0},
        {"heatmaps": "probs"},
        {"sigma": 0.0},
    ],
)
def test_bad_configuration_refused(kwargs) -> None:
    with pytest.raises(InputError):
        PoseAlignmentLoss(**kwargs)


def test_bad_shapes_refused() -> None:
    pred, true, logits, vox = _batch()
    loss = PoseAlignmentLoss()
    with pytest.raises(InputError, match="target_coords"):
        loss(pred, true[:, :2], logits, target_voxels=vox)
    with pytest.raises(InputError, match="pred_heatmaps"):
        loss(pred, true, logits[:, :2], target_voxels=vox)
    with pytest.raises(InputError, match="exactly one"):
        loss(pred, true, logits)
    with pytest.raises(InputError, match="mask"):
        loss(pred, true, logits, target_voxels=vox, mask=torch.ones(2, 2))
    with pytest.raises(InputError, match="non-negative"):
        PoseAlignmentLoss(heatmaps="scores")(pred, true, logits, target_voxels=vox)
    with pytest.raises(InputError, match="AlphaSchedule"):
        AlphaSchedule(kind="step")  # type: ignore[arg-type]
