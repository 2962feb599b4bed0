"""The starts' shortcuts over long GPU batches give what their plain definitions give."""

import numpy as np
import pytest
import torch

from medpose.kinematics.fit.starts import jumps, keypoint_median
from medpose.kinematics.fit.stuck import MEDIAN_FRAMES


def _running_median_rule(q: torch.Tensor, jump: float, half: int) -> torch.Tensor:
    padded = torch.cat([q[:1].expand(half, -1), q, q[-1:].expand(half, -1)])
    med = padded.unfold(0, 2 * half + 1, 1).median(dim=-1).values
    return ((q - med).abs() > jump).any(dim=1)


@pytest.mark.parametrize("T", [3, 20, 31, 5000])
def test_jumps_flags_exactly_the_frames_far_from_their_running_median(T):
    g = torch.Generator().manual_seed(T)
    q = torch.cumsum(torch.randn(T, 6, generator=g, dtype=torch.float64) * 4.0, dim=0)
    # spikes, runs on another branch, and one at the first and last frames
    for t, c, v in ((T // 2, 1, 200.0), (T // 3, 4, -250.0), (0, 2, 300.0), (T - 1, 5, -180.0)):
        q[t : t + max(1, min(8, T // 50)), c] += v
    for jump in (60.0, 120.0):
        got = jumps(q, jump, 15)
        want = _running_median_rule(q, jump, 15)
        assert got.any()
        assert torch.equal(got, want)


def test_jumps_at_exactly_the_threshold_is_not_a_jump():
    q = torch.zeros(61, 1, dtype=torch.float64)
    q[30, 0] = 120.0
    assert not jumps(q, 120.0, 15).any()
    q[30, 0] = 120.5
    assert torch.equal(jumps(q, 120.0, 15), _running_median_rule(q, 120.0, 15))
    assert jumps(q, 120.0, 15).nonzero()[:, 0].tolist() == [30]


def test_keypoint_median_is_exact_up_to_its_sample_and_close_beyond():
    rng = np.random.default_rng(0)
    d = torch.as_tensor(np.abs(rng.normal(5.0, 2.0, (MEDIAN_FRAMES, 4))))
    d[::7, 1] = float("nan")  # unobserved keypoints are ignored
    assert torch.equal(keypoint_median(d), torch.nanmedian(d, dim=0).values)
    # a longer batch: the median of 65,536 evenly spaced frames; its standard error is about
    # 1.25 sd / sqrt(n) = 0.01 mm here, so 0.1 mm is 10 of them
    big = torch.as_tensor(np.abs(rng.normal(5.0, 2.0, (5 * MEDIAN_FRAMES + 3, 4))))
    full = torch.nanmedian(big, dim=0).values
    assert torch.allclose(keypoint_median(big), full, atol=0.1)
