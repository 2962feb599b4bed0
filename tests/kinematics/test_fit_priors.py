"""The fit's posture prior, Euler-branch choice and noise estimate (issue 6, round 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.kinematics.fit import DEFAULT_PRIOR, fit, prepare, prior_sd
from medpose.kinematics.fit.context import Context
from medpose.kinematics.fit.problem import LUMBAR_SHARE
from medpose.kinematics.fit.solver import Priors
from medpose.kinematics.fit.starts import branch_moves, choose_branches, frame_rms, repair
from medpose.kinematics.fk import forward_kinematics, segment_poses
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import EXERCISES, make_exercise

HALPE = get_layout("halpe26")
#: The clinically meaningful DoFs of each synthetic exercise (both sides).
MEANINGFUL = {
    "shoulder_abduction": ("shoulder_abduction", "shoulder_flexion", "elbow_flexion"),
    "shoulder_flexion": ("shoulder_flexion", "shoulder_abduction", "elbow_flexion"),
    "elbow_flexion": ("elbow_flexion", "shoulder_abduction", "shoulder_flexion"),
    "seated_knee_extension": ("knee_flexion", "hip_flexion", "elbow_flexion"),
    "squat": ("knee_flexion", "hip_flexion", "ankle_dorsiflexion", "shoulder_flexion"),
    "sit_to_stand": ("knee_flexion", "hip_flexion", "ankle_dorsiflexion"),
    "shoulder_extension": ("shoulder_flexion", "shoulder_abduction", "elbow_flexion"),
    "shoulder_scaption": ("shoulder_flexion", "shoulder_abduction", "elbow_flexion"),
    "shoulder_internal_rotation": ("shoulder_rotation", "shoulder_abduction", "elbow_flexion"),
    "shoulder_external_rotation": ("shoulder_rotation", "shoulder_abduction", "elbow_flexion"),
    "deep_squat": ("knee_flexion", "hip_flexion", "ankle_dorsiflexion", "shoulder_flexion"),
    "hurdle_step": ("knee_flexion", "hip_flexion", "ankle_dorsiflexion", "elbow_flexion"),
    "inline_lunge": ("knee_flexion", "hip_flexion", "ankle_dorsiflexion"),
    "side_lunge": ("knee_flexion", "hip_flexion", "shoulder_flexion"),
    "straight_leg_raise": ("hip_flexion", "knee_flexion"),
    "gait": (
        "knee_flexion",
        "hip_flexion",
        "ankle_dorsiflexion",
        "elbow_flexion",
        "shoulder_flexion",
    ),
}


@pytest.fixture(scope="module")
def sk():
    return Skeleton.default(1750.0)


def _halpe(sk, q, rate, noise=0.0, seed=0):
    x = forward_kinematics(sk, q, keypoints=list(HALPE.medpose))
    if noise:
        x = x + np.random.default_rng(seed).normal(0.0, noise, x.shape)
    return KeypointSequence(x, tuple(HALPE.native), rate, frame="camera")


def _rms(f, q, sk, dof):
    return float(np.sqrt(np.nanmean((f.angles[dof].to_numpy() - q[:, sk.dof_index(dof)]) ** 2)))


def test_every_exercise_covers_the_table():
    assert set(MEANINGFUL) == set(EXERCISES)


#: Exercises the fit does not yet meet the 1-degree bound on, noise-free (known failures: strict,
#: so a fix shows up as an unexpected pass).
KNOWN_FAILURES = {
    "deep_squat": "straight arms overhead throughout read on the other Euler branch (abduction 170 "
    "/ flexion -5, an equal fit); a few descent frames in a near-exact local minimum with pelvis "
    "tilt 8 deg high (hip flexion about 4 deg RMS)",
}


@pytest.mark.parametrize(
    "exercise",
    [
        pytest.param(e, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[e]))
        if e in KNOWN_FAILURES
        else e
        for e in sorted(EXERCISES)
    ],
)
def test_every_exercise_halpe26_noise_free_within_1deg(sk, exercise):
    """HALPE_26 keypoints, no noise: every clinically meaningful DoF within 1 degree RMS."""
    tr = make_exercise(exercise, skeleton=sk, rate=15.0, repetitions=1, seed=0)
    q = tr.angles.values
    f = fit(_halpe(sk, q, 15.0), sk, progress=False)
    errs = {f"{d}_{s}": _rms(f, q, sk, f"{d}_{s}") for d in MEANINGFUL[exercise] for s in "rl"}
    assert max(errs.values()) < 1.0, errs
    assert np.nanmax(f.residual) < 0.1


def test_shoulder_abduction_branch_is_the_clinical_one(sk):
    """The lead's case: abduction to 150 deg with a straight elbow and no hand keypoints.

    Before the branch choice the fit returned flexion 180 / abduction 33 (the other Euler
    branch with the elbow hyperextended), residuals 1e-7 mm, abduction RMS error 25 deg.
    """
    tr = make_exercise("shoulder_abduction", skeleton=sk, repetitions=2, seed=0)
    q = tr.angles.values
    f = fit(_halpe(sk, q, tr.angles.rate), sk, progress=False)
    for s in "rl":
        true_abd = q[:, sk.dof_index(f"shoulder_abduction_{s}")]
        assert true_abd.max() > 140  # through the gimbal lock at 90
        assert _rms(f, q, sk, f"shoulder_abduction_{s}") < 0.1
        assert np.abs(f.angles[f"shoulder_flexion_{s}"]).max() < 1.0
        assert f.angles[f"elbow_flexion_{s}"].min() > 4.0  # not hyperextended


def test_branch_moves_are_exact_reparametrisations(sk):
    """Each move leaves the upper arm's and forearm's long axes where they were."""
    free = np.ones(len(sk.dof_names), bool)
    moves = branch_moves(sk, free)
    own = set(sk.dof_index(["shoulder_flexion_r", "shoulder_rotation_r"]).tolist())
    mv = [m for m in moves if int(m[0][0]) in own]  # the shoulder's own moves
    assert len(mv) == 3  # twin, half turn, both
    q = sk.make_q(
        {
            "shoulder_flexion_r": 30.0,
            "shoulder_abduction_r": 40.0,
            "shoulder_rotation_r": 20.0,
            "elbow_flexion_r": 35.0,
            "forearm_pronation_r": 10.0,
        }
    )
    R0, _ = segment_poses(sk, q)
    hum, fore = sk.segment_index(["upper_arm_r", "forearm_r"])
    for cols, mult, off in mv:
        q2 = q.copy()
        q2[0, cols] = q[0, cols] * mult + off
        R2, _ = segment_poses(sk, q2)
        np.testing.assert_allclose(R2[0, hum][:, 1], R0[0, hum][:, 1], atol=1e-12)  # long axes
        np.testing.assert_allclose(R2[0, fore][:, 1], R0[0, fore][:, 1], atol=1e-12)
        np.testing.assert_allclose(
            R2[0, fore], R0[0, fore], atol=1e-12
        )  # child re-expressed exactly


def test_choose_branches_prefers_neutral_among_equal_fits(sk):
    seq = _halpe(sk, sk.make_q({"shoulder_abduction_r": 147.0, "elbow_flexion_r": 5.0}), 30.0)
    prob = prepare(seq, sk)
    ctx = Context(sk, prob.kp_index, torch.device("cpu"), torch.float64, prob.observable)
    wrong = sk.make_q(
        {"shoulder_flexion_r": 180.0, "shoulder_abduction_r": 33.0, "elbow_flexion_r": -5.0}
    )
    x = torch.as_tensor(seq.positions[:, prob.seq_index] @ prob.alignment.T)
    w = torch.ones(x.shape[:2], dtype=torch.float64)
    lo, hi = torch.as_tensor(prob.lower), torch.as_tensor(prob.upper)
    q, moved = choose_branches(
        ctx,
        branch_moves(sk, prob.observable),
        torch.as_tensor(wrong),
        x,
        w,
        lo,
        hi,
        torch.as_tensor(prob.prior_mean),
    )
    assert bool(moved[0])
    got = dict(zip(sk.dof_names, q[0].numpy()))
    assert got["shoulder_abduction_r"] == pytest.approx(147.0, abs=1e-6)
    assert got["shoulder_flexion_r"] == pytest.approx(0.0, abs=1e-6)
    assert got["elbow_flexion_r"] == pytest.approx(5.0, abs=1e-6)
    assert abs(got["shoulder_rotation_r"]) < 1e-6


def test_lumbopelvic_prior_keeps_hip_flexion_in_a_squat_under_noise(sk):
    """Squat and sit-to-stand, HALPE_26, 5 mm noise: the trunk's inclination is seen, its split
    between pelvis tilt and lumbar flexion is the prior's (:data:`LUMBAR_SHARE`, a third; these
    movements have 0.29-0.33).  A split off by 0.05 of at most 45 deg of inclination moves hip
    flexion by at most 2.3 deg, on top of the noise's 1-1.5 deg (the knee's error): hip flexion
    within 3 deg RMS.  With lumbar flexion held near 0 instead (the prior about neutral alone)
    the whole lumbar flexion (10-15 deg) went into pelvis tilt and hip flexion: 4.8-5.6 deg RMS.
    """
    for exercise in ("squat", "sit_to_stand"):
        tr = make_exercise(exercise, skeleton=sk, rate=30.0, repetitions=2, seed=0)
        q = tr.angles.values
        share = (
            q[:, sk.dof_index("lumbar_flexion")].max()
            / (q[:, sk.dof_index("lumbar_flexion")] + q[:, sk.dof_index("pelvis_tilt")]).max()
        )
        assert abs(share - LUMBAR_SHARE) <= 0.05
        f = fit(_halpe(sk, q, 30.0, noise=5.0, seed=1), sk, progress=False)
        for s in "rl":
            assert _rms(f, q, sk, f"hip_flexion_{s}") < 3.0, exercise


def test_noise_is_measured_with_the_arms_overhead(sk):
    """The pilot that measures the keypoint noise is solved to convergence: a deep squat's arms
    held overhead (shoulder flexion 170-175) start far from the rigid start's arms-down pose.
    Noise-free keypoints measure below 0.1 mm (the fit's floor), 5 mm noise within 20 %."""
    tr = make_exercise("deep_squat", skeleton=sk, rate=15.0, repetitions=1, seed=0)
    q = tr.angles.values
    assert q[:, sk.dof_index("shoulder_flexion_r")].min() >= 170.0
    assert fit(_halpe(sk, q, 15.0), sk, progress=False).noise_mm < 0.1
    noisy = fit(_halpe(sk, q, 15.0, noise=5.0, seed=2), sk, progress=False)
    assert noisy.noise_mm == pytest.approx(5.0, rel=0.2)


def test_repair_mends_a_long_run_of_stuck_frames(sk):
    """A run of 30 frames left at a wrong pose (legs straight at the bottom of a squat, tens of
    mm off) is repaired from its ends inwards, one frame per end and pass, until none is left:
    every frame ends within the noise-free fit's threshold (0.5 mm at sigma 0)."""
    tr = make_exercise("squat", skeleton=sk, rate=30.0, repetitions=1, seed=0)
    q = tr.angles.values
    seq = _halpe(sk, q, 30.0)
    prob = prepare(seq, sk)
    ctx = Context(sk, prob.kp_index, torch.device("cpu"), torch.float64, prob.observable)
    x = torch.as_tensor(seq.positions[:, prob.seq_index] @ prob.alignment.T)
    w = torch.ones(x.shape[:2], dtype=torch.float64)
    lo, hi = torch.as_tensor(prob.lower), torch.as_tensor(prob.upper)
    knee = sk.dof_index("knee_flexion_r")
    run = np.flatnonzero(q[:, knee] > 60.0)[:30]
    assert run.size == 30 and np.all(np.diff(run) == 1)
    bent = sk.dof_index(["knee_flexion_r", "knee_flexion_l", "hip_flexion_r", "hip_flexion_l"])
    stuck = q.copy()
    stuck[np.ix_(run, bent)] = 0.0
    qs = torch.as_tensor(stuck)
    xs = ctx.keypoints_at(qs)
    pri = Priors(0.0, 0.0, None, None)
    conv = torch.ones(qs.shape[0], dtype=torch.bool)
    assert float(frame_rms(xs, x, w, 30)[run].min()) > 10.0
    _, xr, _ = repair(ctx, qs, xs, conv, x, w, lo, hi, pri, 30, 0.0, 1e-6, 100)
    assert float(frame_rms(xr, x, w, 30).max()) < 0.5


def test_prior_sd_lookup_and_bad_input(sk):
    sd = prior_sd(sk, {"shoulder_rotation": 20.0, "elbow_flexion_l": 30.0})
    assert (
        sd[sk.dof_index("shoulder_rotation_r")] == 20.0 == sd[sk.dof_index("shoulder_rotation_l")]
    )
    assert sd[sk.dof_index("elbow_flexion_l")] == 30.0
    assert sd[sk.dof_index("elbow_flexion_r")] == DEFAULT_PRIOR["*"]
    assert sd[sk.dof_index("lumbar_flexion")] == DEFAULT_PRIOR["lumbar_flexion"]
    assert np.isinf(sd[sk.dof_index("pelvis_tilt")]) and np.isinf(sd[sk.dof_index("pelvis_tx")])
    with pytest.raises(InputError, match="unknown DoF 'shoulder_twist'"):
        prior_sd(sk, {"shoulder_twist": 5.0})
    with pytest.raises(InputError, match=r"'knee_flexion'.*> 0 degrees.*-1"):
        prior_sd(sk, {"knee_flexion": -1.0})
    with pytest.raises(InputError, match="mapping"):
        prior_sd(sk, 5.0)
    seq = _halpe(sk, sk.make_q({}, 3), 30.0)
    with pytest.raises(InputError, match="prior"):
        fit(seq, sk, prior={"*": 0.0})
    with pytest.raises(InputError, match="tol_deg"):
        fit(seq, sk, tol_deg=0.0)


def test_float32_agrees_with_float64(sk):
    """The default float32 fit against an explicit float64 fit of the same data.

    float32 rounding itself is far below what is tested: eps_32 = 1.2e-7 on coordinates of about
    1000 mm is 1e-4 mm, 2e-5 degrees on a 300 mm lever.  What differs is where each precision's
    solver stops (the cost falling by less than 1e-5 relative in a frame): with 5 mm keypoint
    noise that leaves each frame a few hundredths of a degree from its optimum (0.057 degrees at
    most on this squat, 1e-3 median over all DoFs).  The test asks for what matters: the
    well-determined angles move by less than a tenth of their own error against the truth
    (1.3 to 4.4 degrees RMS here, from the noise), and their RMS errors agree to 0.01 degrees
    (the fit's docstring).  Weakly determined DoFs (upper-arm rotation with a nearly straight
    elbow, and the elbow flexion tied to it) may stop at other solutions and are not compared.
    """
    tr = make_exercise("squat", skeleton=sk, rate=15.0, repetitions=1, seed=2)
    q = tr.angles.values
    seq = _halpe(sk, q, 15.0, noise=5.0, seed=3)
    f64 = fit(seq, sk, dtype=torch.float64, progress=False)
    f32 = fit(seq, sk, progress=False)  # the default
    assert f64.q.dtype == np.float64 and f32.q.dtype == np.float32
    for c in (
        "knee_flexion_r",
        "knee_flexion_l",
        "hip_flexion_l",
        "elbow_flexion_r",
        "ankle_dorsiflexion_r",
    ):
        err64, err32 = _rms(f64, q, sk, c), _rms(f32, q, sk, c)
        assert abs(err64 - err32) < 0.01, c
        assert np.abs(f64.angles[c] - f32.angles[c]).max() < 0.1 * err64, c
