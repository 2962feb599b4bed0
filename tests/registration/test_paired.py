"""Paired-point registration: exact recovery, agreement with SimpleITK, TRE prediction, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from medpose import DegenerateConfiguration, FrameMismatch, InputError, Landmarks
from medpose.registration import camera_fle, predict_tre, register, simulate_tre, tre_fitzpatrick

from .conftest import head_layout

VARIANTS = [
    {},
    {"scale": True},
    {"weights": [1, 2, 3, 4, 5, 6]},
    {"fle": 0.5},
    {"fle": np.diag([0.1, 0.2, 1.5])},
    {"fle": {"fixed": camera_fle(0.2, 0.8), "moving": 0.3}},
    {"fle": camera_fle(0.2, 0.8), "scale": True},
    {"robust": True},
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: ",".join(kw) or "plain")
def test_exact_data_every_variant_recovers_transform(pair, truth, kw):
    cam, ct = pair
    reg = register(cam, ct, **kw)
    assert reg.transform.source == "LPS" and reg.transform.target == "camera"
    assert np.abs(reg.transform.matrix - truth.matrix).max() < 1e-9
    assert reg.fre < 1e-9 and reg.outliers == ()


def test_exact_similarity_recovers_scale(layout, truth):
    moving = layout
    fixed = 1.3 * truth.rotation.apply(layout) + truth.translation
    reg = register(fixed, moving, scale=True)
    assert abs(reg.transform.scale - 1.3) < 1e-12
    assert np.abs(reg.transform.apply(moving) - fixed).max() < 1e-9


def test_three_points_and_planar_sets_register(truth):
    pts = np.array([[0.0, 0, 0], [100, 0, 0], [0, 70, 0]])
    reg = register(truth.apply(pts), pts)
    assert np.abs(reg.transform.matrix[:3] - truth.matrix[:3]).max() < 1e-9
    planar = head_layout(8) * [1, 1, 0]
    reg = register(truth.apply(planar), planar)
    assert np.abs(reg.transform.matrix[:3] - truth.matrix[:3]).max() < 1e-9


def test_noisy_data_agrees_with_simpleitk(layout, truth):
    rng = np.random.default_rng(3)
    fixed = truth.apply(layout) + rng.normal(scale=1.0, size=layout.shape)
    reg = register(fixed, layout)
    tx = sitk.LandmarkBasedTransformInitializer(
        sitk.VersorRigid3DTransform(), fixed.ravel().tolist(), layout.ravel().tolist()
    )
    # SimpleITK maps fixed -> moving; invert ours to compare
    ours = reg.transform.inverse()
    pts = fixed
    theirs = np.array([tx.TransformPoint(p.tolist()) for p in pts])
    assert np.abs(ours.apply(pts) - theirs).max() < 1e-6


def test_residuals_fre_and_table(pair):
    cam, ct = pair
    moved = Landmarks(cam.names, cam.positions + np.eye(6, 3) * 0.5, frame="camera")
    reg = register(moved, ct)
    assert isinstance(reg.residuals, pd.Series) and list(reg.residuals.index) == list(ct.names)
    assert reg.residuals.name == "residual_mm"
    assert reg.fre == pytest.approx(np.sqrt(np.mean(reg.residuals**2)))
    df = reg.to_dataframe()
    assert df.attrs["fre_mm"] == pytest.approx(reg.fre) and df["inlier"].all()
    arr = register(moved.positions, ct.positions)
    assert list(arr.residuals.index) == list(range(6)) and arr.transform.source == "moving"


def test_pairing_by_name_ignores_order(pair, truth):
    cam, ct = pair
    rev = cam.subset(list(reversed(cam.names)))
    assert register(rev, ct).transform.allclose(truth.inverse().inverse(), atol=1e-9)
    sub = register(cam, ct, names=["fid0", "fid2", "fid3", "fid5"])
    assert sub.names == ("fid0", "fid2", "fid3", "fid5")


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(6))), st.integers(0, 10_000))
def test_registration_invariant_to_reordering(perm, seed):
    rng = np.random.default_rng(seed)
    x = head_layout(6)
    y = Rotation.random(random_state=seed).apply(x) + rng.normal(size=(6, 3))
    a = register(y, x)
    b = register(y[perm], x[perm])
    assert np.abs(a.transform.matrix - b.transform.matrix).max() < 1e-9
    assert abs(a.fre - b.fre) < 1e-9


# ---------------------------------------------------------------------- TRE
def test_fitzpatrick_formula_on_a_known_case():
    # four fiducials on a square of side 2a in the xy plane: f_x^2 = f_y^2 = a^2/2 + ... computed by hand
    a = 50.0
    x = np.array([[a, a, 0], [-a, a, 0], [-a, -a, 0], [a, -a, 0]])
    # principal axes x, y, z with lambda = a^2, a^2, 0: f_x^2 = a^2, f_y^2 = a^2, f_z^2 = 2 a^2
    target = np.array([[0.0, 0.0, 100.0]])  # d_x = d_y = 100, d_z = 0
    expect = np.sqrt(1.0 / 4 * (1 + (100**2 / a**2 + 100**2 / a**2) / 3))
    assert tre_fitzpatrick(x, target, 1.0)[0] == pytest.approx(expect, rel=1e-12)


def test_tre_formula_and_propagation_agree_and_ignore_origin(layout):
    targets = np.array([[0.0, 0, 0], [0, 0, 150], [120, -30, 10]])
    f46 = tre_fitzpatrick(layout, targets, 0.7)
    reg = register(layout, layout)
    prop = np.sqrt(
        np.trace(reg.tre_covariance(targets, fle=0.7), axis1=1, axis2=2)
    )  # first-order propagation
    assert np.allclose(prop, f46, rtol=1e-10)
    assert np.allclose(reg.predict_tre(targets, fle=0.7), f46, rtol=1e-12)
    shift = np.array([500.0, -300, 1000])
    assert np.allclose(tre_fitzpatrick(layout + shift, targets + shift, 0.7), f46, rtol=1e-10)


def test_isotropic_prediction_matches_simulation(layout):
    c = layout.mean(0)
    targets = c + np.outer([0, 50, 100], [0, 0, 1.0])
    pred = predict_tre(layout, targets, 1.0)
    sim = simulate_tre(layout, targets, 1.0, trials=20_000, seed=1)
    assert np.allclose(pred, sim, rtol=0.03)


def test_anisotropic_prediction_beats_isotropic_formula(layout):
    cov = camera_fle(0.2, 1.5, axis=(1, 0, 0))
    c = layout.mean(0)
    targets = c + np.outer([0, 100], [0, 0, 1.0])
    sim = simulate_tre(layout, targets, cov, trials=20_000, weighted_by_fle=False, seed=2)
    aniso = predict_tre(layout, targets, cov, weighted_by_fle=False)
    iso = tre_fitzpatrick(layout, targets, float(np.sqrt(np.trace(cov))))
    assert np.allclose(aniso, sim, rtol=0.03)
    # equal at the centroid (only the trace matters there), better away from it
    assert abs(aniso[1] - sim[1]) < 0.2 * abs(iso[1] - sim[1])
    # the weighted estimator does better than plain least squares, and is predicted too
    sim_w = simulate_tre(layout, targets, cov, trials=20_000, seed=3)
    assert np.allclose(predict_tre(layout, targets, cov), sim_w, rtol=0.03)
    assert sim_w[1] < 0.9 * sim[1]


def test_predict_tre_forms(pair):
    cam, ct = pair
    noisy = Landmarks(
        cam.names, cam.positions + np.random.default_rng(0).normal(size=(6, 3)), "camera"
    )
    reg = register(noisy, ct)
    tg = Landmarks(("tumour", "entry"), [[0, 0, 20.0], [10, 40, 60]], frame="LPS")
    s = reg.predict_tre(tg, fle=1.0)
    assert list(s.index) == ["tumour", "entry"] and s.name == "tre_mm"
    assert np.isscalar(reg.predict_tre([0, 0, 20.0], fle=1.0))
    # default FLE: estimated from FRE (Fitzpatrick 1998 eq. 10)
    est = reg.estimated_fle()
    assert est == pytest.approx(reg.fre * np.sqrt(6 / 4))
    assert reg.predict_tre(tg)["tumour"] == pytest.approx(reg.predict_tre(tg, fle=est)["tumour"])
    with pytest.raises(FrameMismatch, match="moving frame 'LPS'"):
        reg.predict_tre(tg.with_frame("camera"))
    with pytest.raises(InputError, match="NaN"):
        reg.predict_tre([[0, np.nan, 0]])


# ---------------------------------------------------------------------- robust
def test_robust_names_a_ten_mm_outlier(pair, truth):
    cam, ct = pair
    rng = np.random.default_rng(5)
    pos = cam.positions + rng.normal(scale=0.3, size=(6, 3))
    pos[2] += [6.0, -8.0, 0.0]
    bad = Landmarks(cam.names, pos, "camera")
    for fle in (None, 0.5):
        reg = register(bad, ct, robust=True, fle=fle)
        assert reg.outliers == ("fid2",)
        clean = register(
            bad.subset([n for n in cam.names if n != "fid2"]),
            ct.subset([n for n in ct.names if n != "fid2"]),
            fle=fle,
        )
        assert reg.transform.allclose(clean.transform, atol=1e-9)
        assert reg.fre == pytest.approx(clean.fre)
        assert reg.residuals["fid2"] > 8
    plain = register(bad, ct)
    assert plain.outliers == () and plain.fre > 3


# ---------------------------------------------------------------------- bad input
def test_fewer_than_three(pair):
    cam, ct = pair
    with pytest.raises(DegenerateConfiguration, match="2 common fiducial"):
        register(cam, ct, names=["fid0", "fid1"])


def test_collinear_and_nearly_collinear_state_threshold(truth):
    line = np.outer(np.arange(5.0), [30, 10, 5])
    with pytest.raises(DegenerateConfiguration, match=r"collinear.*min_spread_ratio=0\.01"):
        register(truth.apply(line), line)
    near = line + np.array([[0, 0, 0], [0.5, -0.5, 0], [0, 0, 0], [0, 0.5, 0], [0, 0, 0]])
    with pytest.raises(DegenerateConfiguration, match="nearly collinear"):
        register(truth.apply(near), near)
    with pytest.raises(DegenerateConfiguration, match="collinear"):
        register(np.zeros((4, 3)), np.eye(4, 3) * 50 + [0, 0, 1])


def test_nan_and_inf_named(pair):
    cam, ct = pair
    pos = np.array(ct.positions)
    pos[3, 1] = np.nan
    with pytest.raises(InputError, match=r"moving landmarks \(LPS\).*\['fid3'\]"):
        register(cam, Landmarks(ct.names, pos, "LPS"))
    arr = np.array(cam.positions)
    arr[1, 0] = np.inf
    with pytest.raises(InputError, match=r"fixed points.*\[1\]"):
        register(arr, ct.positions)


def test_mismatched_counts_and_shapes(pair):
    cam, ct = pair
    with pytest.raises(InputError, match="6 fixed and 5 moving"):
        register(cam.positions, ct.positions[:5])
    with pytest.raises(InputError, match=r"shape \(N, 3\)"):
        register(cam.positions[:, :2], ct.positions[:, :2])
    with pytest.raises(InputError, match="both be Landmarks"):
        register(cam, ct.positions)


def test_names_on_one_side_only_are_listed(pair):
    cam, ct = pair
    extra = Landmarks(ct.names + ("tumour",), np.vstack([ct.positions, [0, 0, 0]]), "LPS")
    cam2 = Landmarks(("nasion",) + cam.names[1:], cam.positions, "camera")
    with pytest.raises(
        InputError,
        match=r"fixed \(camera\) only: \['nasion'\]; moving \(LPS\) only: \['fid0', 'tumour'\]",
    ):
        register(cam2, extra)
    with pytest.raises(InputError, match=r"\['tumour'\] not in the fixed"):
        register(cam, extra, names=["fid1", "fid2", "tumour"])


def test_same_frame_by_mistake(pair):
    _, ct = pair
    with pytest.raises(InputError, match="both in frame 'LPS'"):
        register(ct, ct)
    assert register(ct, ct, allow_same_frame=True).fre < 1e-12


def test_mirrored_set(pair):
    cam, ct = pair
    mirrored = Landmarks(cam.names, cam.positions * [-1, 1, 1], "camera")
    with pytest.raises(DegenerateConfiguration, match=r"mirror images.*determinant -1"):
        register(mirrored, ct)


def test_bad_weights_fle_and_options(pair):
    cam, ct = pair
    with pytest.raises(InputError, match="weights must be finite"):
        register(cam, ct, weights=[1, 1, 1, -1, 1, 1])
    with pytest.raises(InputError, match="one number per fiducial"):
        register(cam, ct, weights=[1, 1])
    with pytest.raises(InputError, match=r"weights missing for \['fid5'\]"):
        register(cam, ct, weights={f"fid{i}": 1.0 for i in range(5)})
    with pytest.raises(InputError, match="negative eigenvalue"):
        register(cam, ct, fle=np.diag([1.0, -1.0, 1.0]))
    with pytest.raises(InputError, match="not symmetric"):
        register(cam, ct, fle=np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(InputError, match="unknown keys"):
        register(cam, ct, fle={"camera": 1.0})
    with pytest.raises(InputError, match="FLE is zero"):
        register(cam, ct, fle=0.0)
    with pytest.raises(InputError, match="min_spread_ratio"):
        register(cam, ct, min_spread_ratio=0)
    with pytest.raises(DegenerateConfiguration, match="at least 4"):
        register(cam, ct, robust=True, names=["fid0", "fid1", "fid2"])
    with pytest.raises(InputError, match="lateral"):
        camera_fle(-1, 1)


def test_far_from_origin_is_judged_on_shape(layout, truth):
    """A layout 1 km away registers as at the origin; a line there is still a line.

    Coordinates of magnitude |x| are rounded by eps |x| (eps = 2.2e-16), so the mapped points
    can agree to no better than that; 100 eps |x| leaves room for the fit's few operations.
    """
    eps = np.finfo(float).eps
    for offset in (1e3, 1e6, 5e6):
        moving = layout + [offset, -offset, offset]
        reg = register(truth.apply(moving), moving)
        assert np.abs(reg.transform.apply(moving) - truth.apply(moving)).max() < 100 * eps * offset
        # the rotation is the shape's: it does not depend on the offset
        assert np.abs(reg.transform.rotation.as_matrix() - truth.rotation.as_matrix()).max() < 1e-9
    line = np.outer(np.arange(5.0), [30, 10, 5]) + 5e6
    with pytest.raises(DegenerateConfiguration, match="collinear"):
        register(truth.apply(line), line)


@pytest.mark.parametrize("magnitude", [1e12, 1e160])
def test_implausible_magnitudes_are_refused(layout, magnitude):
    """Coordinates beyond 10 km are a unit or file error (and 1e160 overflows when squared)."""
    huge = layout * magnitude
    with pytest.raises(
        InputError,
        match=r"moving points \(rows\): coordinates of magnitude up to .* mm.*\|x\| < 1e\+07 mm",
    ):
        register(layout, huge)
    ct = Landmarks(tuple(f"fid{i}" for i in range(6)), huge, "LPS")
    cam = Landmarks(ct.names, layout, "camera")
    with pytest.raises(InputError, match=r"moving landmarks \(LPS\): coordinates of magnitude"):
        register(cam, ct)
    with pytest.raises(InputError, match=r"fixed points \(rows\): coordinates of magnitude"):
        predict_tre(huge, [0.0, 0.0, 0.0], 1.0)
    with pytest.raises(InputError, match=r"simulate_tre: fiducials: coordinates of magnitude"):
        simulate_tre(huge, [0.0, 0.0, 0.0], 1.0, trials=10)
