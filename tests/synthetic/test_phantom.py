"""Tests of medpose.synthetic.phantom: landmarks on bone, transform consistency, HU classes."""

from __future__ import annotations

import numpy as np
import pytest

from medpose.errors import InputError
from medpose.kinematics.skeleton import Skeleton
from medpose.synthetic.phantom import HU, make_phantom, static_pose


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default(1650.0)


@pytest.fixture(scope="module", params=["pelvis_legs", "shoulder_arm"])
def phantom(request, sk):
    return make_phantom(sk, region=request.param, seed=2)


def test_landmarks_lie_on_bone_surfaces(phantom):
    v = phantom.volume
    assert v.array.dtype == np.int16 and v.frame == "LPS"
    ijk = np.round(v.lps_to_index(phantom.landmarks.positions)).astype(int)
    for name, (i, j, k) in zip(phantom.landmarks.names, ijk):
        nb = v.array[i - 1 : i + 2, j - 1 : j + 2, k - 1 : k + 2]
        assert nb.max() > 700, f"{name}: no cortical bone next to the landmark"
        assert nb.min() < 200, f"{name}: landmark buried inside bone, not on its surface"
        assert v.array[i, j, k] > -500, f"{name}: landmark in air"


def test_tissue_classes_and_noise(phantom):
    a = phantom.volume.array.astype(float)
    air = a[a < -500]
    assert air.mean() == pytest.approx(HU["air"], abs=3) and air.std() == pytest.approx(
        HU["noise_sd"], rel=0.1
    )
    soft = a[(a > -200) & (a < 150)]
    assert soft.mean() == pytest.approx(HU["soft_tissue"], abs=5)
    assert np.any(np.abs(a - HU["cancellous"]) < 40) and np.any(np.abs(a - HU["cortical"]) < 40)


def test_transform_maps_landmarks_onto_the_static_pose(phantom, sk):
    _, kp = static_pose(sk)
    lm_body = phantom.image_to_body.apply(phantom.landmarks)
    assert lm_body.frame == "skeleton" and phantom.image_to_body.source == "LPS"
    want = kp[[sk.keypoint_names.index(n) for n in lm_body.names]]
    np.testing.assert_allclose(lm_body.positions, want, atol=1e-6)
    # supine: body up -> imaging S (+z), body anterior -> imaging A (-y), body right -> imaging R (-x)
    r = phantom.image_to_body.inverse().rotation.as_matrix()
    assert r[2, 1] > 0.99 and r[1, 0] < -0.99 and r[0, 2] < -0.99


def test_voxel_cap_coarsens_spacing(sk):
    p = make_phantom(sk, region="shoulder_arm", max_voxels=200_000)
    assert np.prod(p.volume.shape) <= 200_000
    s = np.asarray(p.params["spacing_mm"])
    np.testing.assert_allclose(s / s[0], [1.0, 1.0, 1.5 / 0.8])
    assert s[0] > 0.8 and p.params["requested_spacing_mm"] == [0.8, 0.8, 1.5]


def test_same_seed_same_volume(sk):
    a = make_phantom(sk, region="shoulder_arm", max_voxels=100_000, seed=1)
    b = make_phantom(sk, region="shoulder_arm", max_voxels=100_000, seed=1)
    assert np.array_equal(a.volume.array, b.volume.array) and a.image_to_body.allclose(
        b.image_to_body
    )


def test_bad_arguments(sk):
    with pytest.raises(InputError, match=r"unknown region 'knee'.*pelvis_legs.*shoulder_arm"):
        make_phantom(sk, region="knee")
    with pytest.raises(InputError, match="spacing"):
        make_phantom(sk, spacing=(1.0, -1.0, 1.0))
    with pytest.raises(InputError, match="max_voxels"):
        make_phantom(sk, max_voxels=10)
