"""Fit.plot: the joint angles a person looks at, and the frames at a joint limit."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.limits import JointLimits
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise

HALPE = get_layout("halpe26")


@pytest.fixture(scope="module")
def squat_fit():
    """A squat whose knees flex past 60 degrees, fitted with the knees limited to 60: the frames
    beyond sit on the limit."""
    sk = Skeleton.default(1750.0)
    q = make_exercise("squat", skeleton=sk, rate=10.0, repetitions=1, seed=1).angles.values
    x = forward_kinematics(sk, q, keypoints=list(HALPE.medpose))
    seq = KeypointSequence(x, tuple(HALPE.native), 10.0, frame="camera")
    limits = JointLimits.default().with_overrides({"knee_flexion": (None, 60.0)})
    f = fit(seq, sk, limits, progress=False, threads=1)
    truth = q[:, sk.dof_index("knee_flexion_r")]
    return f, truth


def test_the_default_plot_draws_what_moves_most_and_the_limit_is_marked(squat_fit):
    f, truth = squat_fit
    assert truth.max() > 70.0  # the limit is reached
    fig, ax = plt.subplots()
    try:
        f.plot(ax=ax)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        # the eight joint angles with the widest 2nd-98th percentile range, skeleton order
        a = f.angles.drop(columns=[c for c in f.angles if c.startswith("pelvis_")])
        a = a.dropna(axis=1, how="all").astype(float)
        ranges = {c: np.percentile(a[c], 98) - np.percentile(a[c], 2) for c in a}
        assert len(labels) == 8 and labels == [c for c in a.columns if c in labels]
        others = [r for c, r in ranges.items() if c not in labels]
        assert min(ranges[c] for c in labels) >= max(others) - 1e-3  # (ties either way)
        assert "hip_flexion_r" in labels and "hip_flexion_l" in labels
        ax.clear()
        f.plot(["hip_flexion_r", "knee_flexion_r"], ax=ax)
        lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
        y = lines["knee_flexion_r"].get_ydata()
        np.testing.assert_allclose(y, f.angles["knee_flexion_r"].to_numpy())
        # the marks: one per frame at the limit, where the curve is
        at = f.at_limit["knee_flexion_r"].to_numpy()
        beyond = truth > 60.5
        assert beyond.any() and at[beyond].all()  # every frame past the limit sits on it
        marks = [
            ln
            for ln in ax.get_lines()
            if ln.get_marker() == "x" and ln.get_color() == lines["knee_flexion_r"].get_color()
        ]
        assert len(marks) == 1 and len(marks[0].get_xdata()) == at.sum()
        np.testing.assert_allclose(marks[0].get_ydata(), 60.0, atol=1e-3)
    finally:
        plt.close(fig)


def test_the_default_plot_of_an_arm_raise_shows_the_arm():
    """A raise of the right arm: the default plot draws that shoulder's angles, which a fixed
    set of flexions left out (abduction is the movement)."""
    sk = Skeleton.default(1750.0)
    ex = make_exercise("shoulder_abduction", skeleton=sk, rate=10.0, repetitions=1, side="right")
    x = forward_kinematics(sk, ex.angles.values, keypoints=list(HALPE.medpose))
    f = fit(KeypointSequence(x, tuple(HALPE.native), 10.0, frame="camera"), sk, progress=False)
    fig, ax = plt.subplots()
    try:
        f.plot(ax=ax)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[0] != "pelvis_tilt" and "shoulder_abduction_r" in labels
    finally:
        plt.close(fig)


def test_named_dofs_only_and_bad_names_refused(squat_fit):
    f, _ = squat_fit
    fig, ax = plt.subplots()
    try:
        f.plot("hip_flexion_l", ax=ax)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["hip_flexion_l"]
        with pytest.raises(InputError, match=r"'hip_flex_l'.*expected names among"):
            f.plot(["hip_flexion_r", "hip_flex_l"], ax=ax)
        with pytest.raises(InputError, match=r"'pelvis_tx'"):  # a translation, not an angle
            f.plot(["pelvis_tx"], ax=ax)
        with pytest.raises(InputError, match="dofs is empty"):
            f.plot([], ax=ax)
        nothing = dataclasses.replace(f, observable=np.zeros_like(f.observable))
        with pytest.raises(InputError, match="no DoF has a fitted angle"):
            nothing.plot(ax=ax)
        # HALPE_26 has no hand keypoints: nothing sees the forearm's pronation
        with pytest.raises(InputError, match=r"no keypoint constrains \['forearm_pronation_r'\]"):
            f.plot(["forearm_pronation_r"], ax=ax)
    finally:
        plt.close(fig)
