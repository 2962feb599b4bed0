from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from medpose.data import KeypointSequence
from medpose.errors import InputError, LimitError
from medpose.io.keypoints import read_keypoints
from medpose.io.mot import read_mot
from medpose.io.trc import write_trc
from medpose.kinematics.fit import MirrorWarning, euler_from_matrix, fit, prepare
from medpose.kinematics.fit.context import Context
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.limits import JointLimits
from medpose.kinematics.reference import fit_reference
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise

HALPE = get_layout("halpe26")


@pytest.fixture(scope="module")
def sk():
    return Skeleton.default(1750.0)


@pytest.fixture(scope="module")
def squat(sk):
    tr = make_exercise("squat", skeleton=sk, rate=10.0, repetitions=1, seed=1)
    return tr.angles.values


@pytest.fixture(scope="module")
def arms(sk):
    tr = make_exercise("shoulder_abduction", skeleton=sk, rate=10.0, repetitions=1, seed=2)
    q = tr.angles.values.copy()
    e = make_exercise("elbow_flexion", skeleton=sk, rate=10.0, repetitions=1, seed=3).angles.values
    n = min(len(q), len(e))
    for c in ("elbow_flexion_r", "elbow_flexion_l"):
        q[:n, sk.dof_index(c)] = e[:n, sk.dof_index(c)]
    return q


def _seq(sk, q, names=None, noise=0.0, seed=0, rate=10.0):
    names = list(names or sk.keypoint_names)
    x = forward_kinematics(sk, q, keypoints=names)
    x = x + np.random.default_rng(seed).normal(0, noise, x.shape) if noise else x
    return KeypointSequence(x, tuple(names), rate, frame="camera")


# ------------------------------------------------------------------------------ building blocks
@pytest.mark.parametrize("seq", ["XYZ", "ZXY", "YZX", "XZY", "ZYX", "YXZ"])
def test_euler_from_matrix_matches_scipy(seq):
    a = np.random.default_rng(0).uniform(-80, 80, (20, 3))
    R = Rotation.from_euler(seq, a, degrees=True).as_matrix()
    got = np.degrees(euler_from_matrix(torch.as_tensor(R), seq).numpy())
    np.testing.assert_allclose(got, a, atol=1e-9)


def test_analytic_jacobian_matches_autograd(sk):
    kp = sk.keypoint_index(list(HALPE.medpose))
    free = np.ones(len(sk.dof_names), bool)
    free[sk.dof_index(["forearm_pronation_r", "wrist_flexion_l"])] = False
    ctx = Context(sk, kp, torch.device("cpu"), torch.float64, free)
    q = torch.as_tensor(np.random.default_rng(1).uniform(-60, 60, (4, len(sk.dof_names))))
    _, _, _, J = ctx.evaluate(q, jacobian=True)
    f = lambda qq: forward_kinematics(sk, qq[None], keypoints=list(HALPE.medpose))[0]  # noqa: E731
    Jn = torch.func.vmap(torch.func.jacfwd(f))(q)[..., ctx.var_dofs]
    torch.testing.assert_close(J, Jn, atol=1e-10, rtol=0)


@pytest.mark.parametrize("names", ["halpe", "all"])
def test_grouped_normal_equations_match_the_full_jacobian(sk, names):
    """J^T J, J^T r and r^T r summed over keypoint groups equal the products of the whole
    weighted Jacobian (every skeleton keypoint, or HALPE_26 whose hips sit on the root)."""
    from medpose.kinematics.fit.solver import normal_equations

    kp = (
        sk.keypoint_index(list(HALPE.medpose))
        if names == "halpe"
        else np.arange(len(sk.keypoint_names))
    )
    ctx = Context(sk, kp, torch.device("cpu"), torch.float64)
    assert len(ctx.groups) >= 2
    rng = np.random.default_rng(3)
    q = torch.as_tensor(rng.uniform(-60, 60, (5, len(sk.dof_names))))
    E, R, o = ctx.poses(q)
    x = ctx.keypoints(R, o)
    xo = x + torch.as_tensor(rng.normal(0, 5, x.shape))
    sw = torch.as_tensor(rng.uniform(0, 1, (5, len(kp), 1)))
    dc, H, g = normal_equations(ctx, E, R, o, x, sw, xo)
    J = ctx.full_jacobian(E, R, o, x) * sw[..., None]  # (T, K, 3, F)
    J = J.reshape(5, -1, J.shape[-1])
    r = (sw * (x - xo)).reshape(5, -1)
    torch.testing.assert_close(H, J.mT @ J, atol=1e-8, rtol=1e-10)
    torch.testing.assert_close(g, (J.mT @ r[..., None])[..., 0], atol=1e-8, rtol=1e-10)
    torch.testing.assert_close(dc, (r * r).sum(dim=1), atol=1e-8, rtol=1e-10)


# ------------------------------------------------------------------------------ recovery
@pytest.mark.parametrize("which", ["squat", "arms"])
def test_noise_free_recovery(sk, squat, arms, which):
    q = squat if which == "squat" else arms
    f = fit(_seq(sk, q), sk)
    assert f.observable.all()
    err = np.abs(f.q - q)
    assert np.nanmax(err) < 0.1, dict(zip(sk.dof_names, err.max(0).round(3)))
    assert f.converged.all() and f.residuals.to_numpy().max() < 0.05
    assert list(f.angles.columns) == [n for n, r in zip(sk.dof_names, sk.rotational) if r]
    assert f.angles.index.name == "time_s"


def test_halpe26_layout_noise_free_limbs(sk, squat):
    """HALPE_26 names are recognised; knee/ankle/elbow recovered; hand DoFs reported NaN."""
    seq = _seq(sk, squat, HALPE.medpose).rename(dict(zip(HALPE.medpose, HALPE.native)))
    f = fit(seq, sk)
    a = f.angles
    for c in ("knee_flexion_r", "knee_flexion_l", "elbow_flexion_r"):
        assert np.abs(a[c].to_numpy() - squat[:, sk.dof_index(c)]).max() < 0.1, c
    assert a["forearm_pronation_r"].isna().all() and a["wrist_flexion_l"].isna().all()
    assert f.keypoints.names == tuple(HALPE.medpose)


def test_noise_5mm_knee_elbow_rms(sk, squat, arms):
    """Marker-like keypoint set (all skeleton keypoints), 5 mm Gaussian noise per axis."""
    for q, dofs in (
        (squat, ("knee_flexion_r", "knee_flexion_l")),
        (arms, ("elbow_flexion_r", "elbow_flexion_l")),
    ):
        f = fit(_seq(sk, q, noise=5.0, seed=4), sk)
        for c in dofs:
            rms = np.sqrt(np.mean((f.angles[c].to_numpy() - q[:, sk.dof_index(c)]) ** 2))
            assert rms < 1.5, (c, rms)


def test_torch_matches_scipy_reference(sk, arms):
    seq = _seq(sk, arms[::10], noise=5.0, seed=7)
    f = fit(seq, sk)
    prob = prepare(seq, sk)
    q0 = f.q + np.random.default_rng(0).uniform(-3, 3, f.q.shape) * prob.observable
    q_ref = fit_reference(prob, seq, q0, noise_mm=f.noise_mm, tol=1e-10)
    np.testing.assert_allclose(f.q[:, prob.observable], q_ref[:, prob.observable], atol=0.02)


def test_chunks_missing_and_low_confidence(sk, squat):
    seq = _seq(sk, squat)
    x = seq.positions.copy()
    conf = np.ones(x.shape[:2])
    x[3, 10:14] = np.nan  # missing keypoints: ignored
    x[5, 20] += 400.0  # wild but unconfident: ignored
    conf[5, 20] = 0.05
    f = fit(
        KeypointSequence(x, seq.names, seq.rate, confidence=conf), sk, chunk_size=4, progress=False
    )
    assert np.nanmax(np.abs(f.q - squat)) < 0.1
    assert np.isnan(f.residuals.iloc[3, 10]) and np.isfinite(f.residuals.iloc[4, 10])


def test_threads_give_the_same_fit_and_are_restored(sk, squat):
    seq = _seq(sk, squat, noise=2.0)
    before = torch.get_num_threads()
    a = fit(seq, sk, threads=1, progress=False)
    b = fit(seq, sk, threads=2, progress=False)
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(a.q, b.q, atol=1e-3)


def test_lazy_keypoints_and_residuals_match_the_solver(sk, squat):
    """A GPU fit leaves the fitted keypoints and residuals to be computed when asked (forward
    kinematics of q); on the CPU the same computation must reproduce the solver's own."""
    import dataclasses

    from medpose.kinematics.fit.result import Observed

    seq = _seq(sk, squat, HALPE.medpose, noise=3.0)
    x = seq.positions.copy()
    x[2, 5] = np.nan  # a missing keypoint stays NaN
    seq = KeypointSequence(x, seq.names, seq.rate)
    f = fit(seq, sk, progress=False)
    prob = prepare(seq, sk)
    src = Observed(
        seq.positions,
        seq.confidence,
        prob.seq_index,
        prob.kp_index,
        prob.min_confidence,
        "cpu",
        np.dtype(np.float32),
    )
    lazy = dataclasses.replace(f, fitted_=None, residual_=None, source=src)
    np.testing.assert_allclose(lazy.fitted, f.fitted, atol=0.01)
    np.testing.assert_allclose(lazy.residuals.to_numpy(), f.residuals.to_numpy(), atol=0.01)
    assert np.isnan(lazy.residual[2, 5]) and lazy.fitted.dtype == np.float32


@pytest.mark.parametrize("smoothness", [0.0, 2.0])
def test_a_jump_in_the_data_is_repaired_from_the_rigid_start(sk, smoothness):
    """Frames interpolated across a jump in the data (the subject 26 m away and in another pose
    from one frame to the next, as where a recording is tiled) start far off, and with smoothness
    their neighbours pull them further; they are restarted from their own rigid start and fit
    like the others (before: up to 3.7 m of residual)."""
    g = make_exercise("gait", skeleton=sk, rate=60.0, repetitions=2, seed=0).angles.values
    n = len(g)
    names = list(HALPE.medpose)
    x = forward_kinematics(sk, np.concatenate([g, g]), keypoints=names)
    x = x + np.random.default_rng(0).normal(0.0, 5.0, x.shape)
    x[:n] += np.array([26000.0, 0.0, 0.0])
    seq = KeypointSequence(x[3:], tuple(names), 60.0)  # the jump falls between coarse frames
    f = fit(seq, sk, smoothness=smoothness, warm_stride=6, progress=False)
    assert np.nanmax(f.residual) < 100.0, np.nanmax(f.residual, axis=1).round(1)


def test_z_up_data_and_trc_in_metres(tmp_path, sk, squat):
    """A Pose2Sim-like HALPE_26 .trc (metres, Y up) and a Z-up copy both just work."""
    seq = _seq(sk, squat, HALPE.medpose).rename(dict(zip(HALPE.medpose, HALPE.native)))
    p = write_trc(seq, tmp_path / "trial.trc", units="m")
    f = fit(read_keypoints(p))
    assert np.abs(f.angles["knee_flexion_r"] - squat[:, sk.dof_index("knee_flexion_r")]).max() < 1.0
    assert f.patient is not None and f.patient.height_mm == pytest.approx(1750, rel=0.05)
    zup = Rotation.from_euler("x", 90, degrees=True).as_matrix()  # Y up -> Z up
    g = fit(seq.with_positions(seq.positions @ zup.T), sk)
    np.testing.assert_allclose(g.alignment @ zup, np.eye(3), atol=1e-12)
    assert np.abs(g.angles["knee_flexion_l"] - squat[:, sk.dof_index("knee_flexion_l")]).max() < 0.1


def test_truth_outside_limits_is_clamped_and_flagged(sk, arms):
    lim = JointLimits.default(sk).with_overrides({"elbow_flexion": (None, 60.0)})
    f = fit(_seq(sk, arms), sk, lim)
    e = f.angles["elbow_flexion_r"].to_numpy()
    over = arms[:, sk.dof_index("elbow_flexion_r")] > 60.5
    assert over.any() and np.all(e <= 60.0)
    # an infeasible frame ends on a limit of the arm chain: mostly the elbow's, or the shoulder's
    # where a compromise through it fits better
    arm = f.at_limit[
        ["elbow_flexion_r", "shoulder_flexion_r", "shoulder_abduction_r", "shoulder_rotation_r"]
    ]
    assert arm.to_numpy()[over].any(axis=1).all()
    assert f.at_limit["elbow_flexion_r"].to_numpy()[over].mean() > 0.8
    assert (
        not f.at_limit["elbow_flexion_r"]
        .to_numpy()[arms[:, sk.dof_index("elbow_flexion_r")] < 55]
        .any()
    )


def test_soft_prior_and_smoothness_run(sk, squat):
    lim = JointLimits.default(sk).with_soft_prior(10.0, 1.0)
    f = fit(_seq(sk, squat, noise=5.0), sk, lim, smoothness=2.0)
    g = fit(_seq(sk, squat, noise=5.0), sk)
    jerk = lambda a: np.nanmean(np.abs(np.diff(a["knee_flexion_r"].to_numpy(), 2)))  # noqa: E731
    assert jerk(f.angles) < jerk(g.angles)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    spread=st.floats(0.5, 2.0),
    noise=st.floats(0.0, 30.0),
    knee_max=st.floats(10.0, 140.0),
)
def test_property_fitted_angles_never_leave_hard_limits(sk, seed, spread, noise, knee_max):
    rng = np.random.default_rng(seed)
    lim = JointLimits.default(sk).with_overrides({"knee_flexion_r": (-2.0, knee_max)})
    lo, hi = lim.for_skeleton(sk)
    fin = np.isfinite(lo)
    mid = np.zeros_like(lo)
    half = np.full_like(lo, 100.0)
    mid[fin], half[fin] = 0.5 * (lo[fin] + hi[fin]), 0.5 * (hi[fin] - lo[fin])
    q = mid + spread * half * rng.uniform(-1, 1, (3, len(lo)))  # truth may lie outside
    f = fit(_seq(sk, q, HALPE.medpose, noise=noise, seed=seed), sk, lim)
    ok = np.isfinite(f.q)
    assert np.all((f.q >= lo) | ~ok) and np.all((f.q <= hi) | ~ok)


# ------------------------------------------------------------------------------ exports
def test_exports(tmp_path, sk, squat):
    f = fit(_seq(sk, squat), sk)
    m = read_mot(f.to_mot(tmp_path / "ik.mot", model=None))
    np.testing.assert_allclose(m["knee_flexion_r"], f.angles["knee_flexion_r"], atol=1e-6)
    import pandas as pd

    pq = pd.read_parquet(f.to_parquet(tmp_path / "a.parquet"))
    cs = pd.read_csv(f.to_csv(tmp_path / "a.csv"))
    np.testing.assert_allclose(pq["hip_flexion_l"], f.angles["hip_flexion_l"])
    np.testing.assert_allclose(cs["pelvis_ty_mm"], f.translations["pelvis_ty"])
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------------------ bad input
def test_too_few_keypoints_gives_nan_and_warning(sk, squat):
    seq = _seq(sk, squat)
    x = seq.positions.copy()
    x[[2, 4], 5:] = np.nan
    with pytest.warns(UserWarning, match=r"2 of \d+ frames not fitted: 2 have fewer than \d+ k"):
        f = fit(seq.with_positions(x), sk)
    assert f.angles.iloc[[2, 4]].isna().all().all() and not f.converged.iloc[2]
    assert np.isfinite(f.angles.iloc[3]).all()


def test_a_frame_without_its_pelvis_says_so(sk, squat):
    # enough keypoints, but the pelvis's and trunk's gone: the pose has nothing to start from
    seq = _seq(sk, squat)
    x = seq.positions.copy()
    torso = {"pelvis", "trunk"}
    seg = [sk.segment_names[s] for s in sk.keypoint_segment]
    gone = [
        seq.names.index(n)
        for n, s in zip(sk.keypoint_names, seg)
        if n in seq.names and (s in torso or n.startswith("shoulder_"))
    ]
    assert len(seq.names) - len(gone) >= len(seq.names) // 2  # enough keypoints otherwise
    x[3, gone] = np.nan
    with pytest.warns(
        UserWarning, match=r"1 of \d+ frames not fitted: 1 have fewer than 3 on the pelvis, trunk"
    ):
        f = fit(seq.with_positions(x), sk)
    assert f.angles.iloc[3].isna().all()


def test_unusable_layout(sk):
    x = np.random.default_rng(0).normal(0, 100, (4, 3, 3))
    with pytest.raises(InputError) as ei:
        fit(KeypointSequence(x, ("RWrist", "LWrist", "m1"), 30.0))
    assert (
        "hip_r" in str(ei.value)
        and "neck or shoulder" in str(ei.value)
        and "layout" in str(ei.value)
    )


def test_metres_refused(sk, squat):
    seq = _seq(sk, squat, HALPE.medpose)
    with pytest.raises(InputError, match="metres"):
        fit(seq.with_positions(seq.positions / 1000.0))
    with pytest.raises(InputError, match="metres"):
        fit(seq.with_positions(seq.positions / 1000.0), sk)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"smoothness": -1.0}, "smoothness"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"up": "sideways"}, "up="),
        ({"min_confidence": 2.0}, "min_confidence"),
        ({"noise_mm": -1.0}, "noise_mm"),
        ({"noise_mm": float("nan")}, "noise_mm"),
        ({"limits": {"knee": (0, 1)}}, "JointLimits"),
    ],
)
def test_bad_arguments(sk, squat, kw, match):
    with pytest.raises(InputError, match=match):
        fit(_seq(sk, squat[:3]), sk, **kw)


@pytest.mark.parametrize("layout", ["medpose", "coco17"])
def test_mirrored_sequence_is_named(sk, squat, layout):
    """A body reflected through a plane (any plane: here one tilted between the axes) is the
    mirror image of a body: no skeleton fits it (about 70 mm median residual on this squat),
    so the fit warns, naming the cues that showed it and what was expected."""
    names = None if layout == "medpose" else get_layout(layout).medpose
    seq = _seq(sk, squat[:6], names)
    n = np.array([1.0, 0.3, -0.5]) / np.linalg.norm([1.0, 0.3, -0.5])
    x = np.array(seq.positions)
    mirrored = seq.with_positions(x - 2.0 * (x @ n)[..., None] * n)
    expect = r"mirror image of a body.*100% of the anterior cues.*nose - ear_r.*point backwards"
    with pytest.warns(MirrorWarning, match=expect + r".*expected them to point forwards"):
        prepare(mirrored)
    with pytest.warns(MirrorWarning, match=r"one axis negated"):
        prepare(seq.with_positions(x * [-1.0, 1.0, 1.0]), sk)
    # left and right labels exchanged is the same mirror image
    swapped = tuple(
        nm[:-2] + {"_l": "_r", "_r": "_l"}[nm[-2:]] if nm[-2:] in ("_l", "_r") else nm
        for nm in seq.names
    )
    with pytest.warns(MirrorWarning, match=r"left and right label"):
        prepare(KeypointSequence(x, swapped, seq.rate, frame="camera"))
    # a proper rotation of the same body is not a mirror image
    turned = Rotation.from_rotvec([0.3, 2.0, -0.4]).apply(x.reshape(-1, 3)).reshape(x.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MirrorWarning)
        prepare(seq.with_positions(turned), sk)


def test_mirrored_sequence_warns_through_fit(sk, squat):
    seq = _seq(sk, squat[:2], HALPE.medpose)
    with pytest.warns(MirrorWarning, match="mirror image"):
        fit(seq.with_positions(seq.positions * [1.0, 1.0, -1.0]), sk, max_iter=5)


def test_bad_sequences(sk):
    with pytest.raises(InputError, match="KeypointSequence"):
        fit(np.zeros((3, 4, 3)))
    with pytest.raises(InputError, match="3D keypoints"):
        fit(KeypointSequence(np.zeros((2, 3, 2)), ("hip_r", "hip_l", "neck"), 30.0))
    with pytest.raises(LimitError, match="knee_flexion_r"):
        JointLimits.default(sk).with_overrides({"knee_flexion_r": (90, 10)})


def test_polar_factor_is_the_kabsch_rotation_and_flags_reflections():
    from medpose.kinematics.fit.starts import polar

    R = Rotation.random(50, random_state=3).as_matrix()
    S = np.random.default_rng(3).normal(size=(50, 3, 3))
    S = S @ S.transpose(0, 2, 1) + 0.1 * np.eye(3)  # symmetric positive definite
    X, ok = polar(torch.as_tensor(R @ S))
    assert ok.all() and np.abs(X.numpy() - R).max() < 1e-10
    refl = R @ S @ np.diag([1.0, 1.0, -1.0])  # det < 0: Kabsch needs the SVD
    _, ok = polar(torch.as_tensor(refl))
    assert not ok.any()


def test_rigid_start_of_a_nearly_planar_trunk(sk):
    """A calibrated trunk's keypoints lie a mm or so off a plane: the rigid start, made on
    their projection onto it, still finds the root's pose (within 1 degree and 3 mm)."""
    from medpose.kinematics.fit.device import rigid_start, setup

    off = {
        k: sk.keypoint_offsets[sk.keypoint_index(k)] + d
        for k, d in (("neck", (0, 0, 2.0)), ("hip_r", (1.5, 0, 0)))
    }
    bent = sk.with_offsets(keypoints=off)
    rng = np.random.default_rng(5)
    q = np.zeros((40, len(bent.dof_names)))
    for c in ("pelvis_tilt", "pelvis_list", "pelvis_rotation"):
        q[:, bent.dof_index(c)] = rng.uniform(-60, 60, 40)
    for c in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
        q[:, bent.dof_index(c)] = rng.uniform(-500, 500, 40)
    names = list(HALPE.medpose)
    x = forward_kinematics(bent, q, keypoints=names) + rng.normal(0, 0.5, (40, len(names), 3))
    seq = KeypointSequence(x, tuple(HALPE.native), 30.0, frame="camera")
    prob = prepare(seq, bent)
    st = setup(prob, seq.n_keypoints, torch.device("cpu"), torch.float64)
    P = st.template[st.torso].numpy()
    sv = np.linalg.svd(P - P.mean(axis=0), compute_uv=False)
    assert 0 < sv[2] < 0.01 * sv[0]  # nearly, not exactly, planar
    xo = torch.as_tensor(np.array(seq.positions)) @ st.At
    q0, ok = rigid_start(st, xo, torch.ones(40, len(names), dtype=torch.float64))
    assert ok.all()
    fitted = st.ctx.keypoints_at(q0.clone())[:, st.torso]
    assert (fitted - xo[:, st.torso]).norm(dim=2).max() < 3.0
    rot = [bent.dof_index(c) for c in ("pelvis_tilt", "pelvis_list", "pelvis_rotation")]
    assert np.abs(q0.numpy()[:, rot] - q[:, rot]).max() < 1.0


def test_keypoints_the_skeleton_does_not_know_are_left_out(sk, squat):
    """Extra columns (e.g. a Kinect's toes and collars) neither break the fit nor change it."""
    seq = _seq(sk, squat, noise=2.0, seed=4)
    rng = np.random.default_rng(5)
    extra = rng.normal(size=(seq.n_frames, 3, 3)) * 100.0
    wide = KeypointSequence(
        np.concatenate([extra[:, :2], seq.positions, extra[:, 2:]], axis=1),
        ("extra_a", "extra_b", *seq.names, "extra_c"),
        seq.rate,
    )
    plain, more = fit(seq, skeleton=sk), fit(wide, skeleton=sk)
    np.testing.assert_allclose(more.q, plain.q, atol=1e-4)
    assert more.residuals.shape[1] == plain.residuals.shape[1]


def test_solver_hand_off_of_stragglers_keeps_every_frame(sk, monkeypatch):
    """On a GPU the last frames still iterating finish on the CPU (a small batch there costs
    less than a GPU iteration's kernel launches).  Forced here on the CPU itself: every frame
    gets back to its own row and reaches the minimum the uninterrupted solver reaches."""
    import medpose.kinematics.fit.solver as solver
    from medpose.kinematics.fit.device import setup

    g = make_exercise("gait", skeleton=sk, rate=60.0, repetitions=2, seed=0).angles.values
    n = solver.HANDOFF + 90
    seq = _seq(sk, g[:n], HALPE.medpose, noise=5.0, seed=2, rate=60.0)
    prob = prepare(seq, sk)
    st = setup(prob, seq.n_keypoints, torch.device("cpu"), torch.float64)
    x = torch.as_tensor(np.array(seq.positions)) @ st.At
    w = torch.ones(x.shape[:2], dtype=torch.float64)
    rng = np.random.default_rng(0)
    q0 = torch.as_tensor(g[:n] + rng.uniform(-20, 20, g[:n].shape))
    q0 = torch.where(st.free[None], q0, st.neutral[None])
    args = (st.ctx, q0, x, w, st.lo, st.hi, st.priors(5.0))
    q_plain, x_plain, c_plain = solver.solve(*args)
    calls = []
    on_cpu = solver._on_cpu
    monkeypatch.setattr(solver, "_hands_off", lambda t: True)
    monkeypatch.setattr(solver, "_on_cpu", lambda *a: calls.append(a[1].shape[0]) or on_cpu(*a))
    q_h, x_h, c_h = solver.solve(*args)
    assert calls and all(0 < c <= solver.HANDOFF for c in calls)
    assert bool(c_plain.all()) and bool(c_h.all())
    cost = lambda xx: ((xx - x) ** 2).sum(dim=(1, 2))  # noqa: E731
    # each frame at the same minimum: its keypoints within 0.05 mm RMS, well-determined angles
    np.testing.assert_allclose(cost(x_h).sqrt(), cost(x_plain).sqrt(), atol=0.05 * 26**0.5)
    for name in ("knee_flexion_r", "hip_flexion_l", "elbow_flexion_r"):
        i = sk.dof_index(name)
        np.testing.assert_allclose(q_h[:, i], q_plain[:, i], atol=0.05)
    small = solver.solve(st.ctx, q0[:40], x[:40], w[:40], st.lo, st.hi, st.priors(5.0))
    assert calls[-1] == 40  # a batch that small goes straight to the CPU
    torch.testing.assert_close(small[0], q_h[:40], atol=0.05, rtol=0)


@pytest.mark.parametrize("coupled", [False, True])
def test_solver_batched_iterations_take_the_same_steps(sk, monkeypatch, coupled):
    """On a GPU every frame still iterating gets fresh normal equations at its accepted point
    each iteration, damped in place (no kept copy of a rejected frame's); forced here on the
    CPU: the same math as keeping them, so every frame takes the same steps (float64, to 1e-6
    degree), with DoFs frozen at their limits and with the coupled (lumbopelvic) prior row."""
    import medpose.kinematics.fit.solver as solver
    from medpose.kinematics.fit.device import setup

    g = make_exercise("squat", skeleton=sk, rate=60.0, repetitions=1, seed=0).angles.values
    seq = _seq(sk, g[:120], HALPE.medpose, noise=5.0, seed=3, rate=60.0)
    prob = prepare(seq, sk)
    st = setup(prob, seq.n_keypoints, torch.device("cpu"), torch.float64)
    x = torch.as_tensor(np.array(seq.positions)) @ st.At
    w = torch.ones(x.shape[:2], dtype=torch.float64)
    rng = np.random.default_rng(1)
    q0 = torch.as_tensor(g[:120] + rng.uniform(-30, 30, g[:120].shape))
    q0 = torch.where(st.free[None], q0, st.neutral[None])
    pri = st.priors(5.0)
    if coupled:
        row = torch.zeros(st.n_var, dtype=torch.float64)
        row[:2] = torch.tensor([0.3, -0.2], dtype=torch.float64)
        pri = replace(pri, row=row)
    args = (st.ctx, q0, x, w, st.lo, st.hi, pri)
    q_a, x_a, c_a = solver.solve(*args, handoff=False)
    monkeypatch.setattr(solver, "_batched", lambda t: True)
    q_b, x_b, c_b = solver.solve(*args, handoff=False)
    lo, hi = st.lo[st.ctx.var_dofs], st.hi[st.ctx.var_dofs]
    z = q_a[:, st.ctx.var_dofs]
    assert bool(((z <= lo) | (z >= hi)).any())  # some frames end with a DoF at a limit
    assert torch.equal(c_a, c_b)
    torch.testing.assert_close(q_b, q_a, atol=1e-6, rtol=0)
    torch.testing.assert_close(x_b, x_a, atol=1e-6, rtol=0)


def test_a_fit_started_from_a_previous_fit_is_as_accurate_as_a_full_fit(sk):
    """``init=``: a fit with one skeleton (the default), then with the subject's own (3 % longer
    thighs and shanks, which made the data) started from the first fit's poses: the
    well-determined angles are as close to the truth as a full fit's (within 0.2 degrees RMS)
    and it fits as well; an init of another length is refused."""
    longer = sk.with_lengths(
        {k: v * (1.03 if k.startswith(("thigh", "shank")) else 1.0) for k, v in sk.lengths.items()}
    )
    g = make_exercise("gait", skeleton=longer, rate=60.0, repetitions=2, seed=0).angles.values
    g = g[:300]
    seq = _seq(longer, g, HALPE.medpose, noise=4.0, seed=5, rate=60.0)
    first = fit(seq, sk, progress=False)
    full = fit(seq, longer, progress=False)
    warm = fit(seq, longer, progress=False, init=first)
    for name in ("knee_flexion_r", "knee_flexion_l", "hip_flexion_r", "elbow_flexion_l"):
        t = g[:, longer.dof_index(name)]
        err = {
            k: np.sqrt(np.mean((f.angles[name].to_numpy() - t) ** 2))
            for k, f in (("full", full), ("warm", warm))
        }
        assert err["warm"] <= err["full"] + 0.2, (name, err)
    assert np.nanmedian(warm.residual) <= np.nanmedian(full.residual) + 0.05
    with pytest.raises(InputError, match="init"):
        fit(seq.slice(0, 100), longer, progress=False, init=first)
