"""The fit on a CUDA GPU gives the CPU's answer (run on a machine with a GPU; CI has none)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medpose.data import KeypointSequence
from medpose.io.keypoints import read_keypoints
from medpose.kinematics.calibrate import calibrate
from medpose.kinematics.fit import fit, prepare
from medpose.kinematics.fit.device import setup
from medpose.kinematics.fit.solver import HANDOFF, solve
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

HALPE = get_layout("halpe26")
WELL = ("knee_flexion_r", "knee_flexion_l", "hip_flexion_r", "hip_flexion_l")


def _gait(frames: int, noise: float):
    sk = Skeleton.default(1750.0)
    q = make_exercise("gait", skeleton=sk, rate=60.0, repetitions=4, seed=0).angles.values[:frames]
    x = forward_kinematics(sk, q, keypoints=list(HALPE.medpose))
    x = x + np.random.default_rng(0).normal(0, noise, x.shape)
    return sk, q, KeypointSequence(x, tuple(HALPE.native), 60.0, frame="camera")


@pytest.mark.parametrize("calibrated", [False, True])
def test_cuda_fit_agrees_with_the_cpu_fit(calibrated):
    """Same sequence, same skeleton: the well-determined angles agree within 0.25 degree RMS
    (float32 on two devices sums in another order, and a frame stops where its step or its cost
    change falls below the tolerance, so the two stop a little apart) and both are within 3
    degrees RMS of the truth."""
    sk, q, seq = _gait(600, 5.0)
    model = calibrate(seq) if calibrated else sk
    a = fit(seq, model, device="cpu", progress=False).angles
    b = fit(seq, model, device="cuda", progress=False).angles
    for name in WELL:
        d = a[name].to_numpy() - b[name].to_numpy()
        assert np.sqrt(np.mean(d**2)) < 0.25, name
        t = q[:, sk.dof_index(name)]
        assert np.sqrt(np.mean((b[name].to_numpy() - t) ** 2)) < 3.0, name


def test_solve_finishes_its_stragglers_on_the_cpu():
    """A batch larger than HANDOFF starts on the GPU and ends on the CPU; a smaller one runs on
    the CPU: either way the frames reach the CPU solver's minimum (float64; within 0.02 degree,
    where a frame stops once its cost changes by less than 1e-4 relative)."""
    sk, q, seq = _gait(3 * HANDOFF, 5.0)
    prob = prepare(seq, sk)
    for n in (3 * HANDOFF, HANDOFF // 2):
        out = []
        for dev in ("cpu", "cuda"):
            st = setup(prob, seq.n_keypoints, torch.device(dev), torch.float64)
            x = torch.as_tensor(np.array(seq.positions[:n]), device=dev) @ st.At
            w = torch.ones(x.shape[:2], device=dev, dtype=torch.float64)
            q0 = torch.as_tensor(q[:n], device=dev) + 10.0  # 10 degrees off everywhere
            q0 = torch.where(st.free[None], q0, st.neutral[None])
            qs, xs, conv = solve(st.ctx, q0, x, w, st.lo, st.hi, st.priors(5.0))
            assert qs.device.type == dev and xs.device.type == dev
            out.append((qs.cpu().numpy(), bool(conv.all())))
        (qc, cc), (qg, cg) = out
        assert cc and cg
        for name in WELL:
            i = sk.dof_index(name)
            np.testing.assert_allclose(qg[:, i], qc[:, i], atol=0.02)


def test_cuda_fit_drops_outliers_as_the_cpu_does():
    """A few keypoints 200 mm off in isolated frames (a knee, a hip): the frames solved again
    without them (a batch small enough to finish on the CPU, held near a neighbour's pose) read
    the same angles on both devices, within 0.25 degree RMS over those frames."""
    sk = Skeleton.default(1750.0)
    q = make_exercise("shoulder_abduction", skeleton=sk, rate=30.0, repetitions=2, seed=2)
    q = q.angles.values
    names = list(HALPE.medpose)
    x = forward_kinematics(sk, q, keypoints=names)
    rng = np.random.default_rng(0)
    x = x + rng.normal(0, 5.0, x.shape)
    bad = np.arange(20, len(x) - 20, 37)
    d = rng.normal(size=(len(bad), 3))
    x[bad, names.index("knee_l")] += 200.0 * d / np.linalg.norm(d, axis=1, keepdims=True)
    seq = KeypointSequence(x, tuple(HALPE.native), 30.0, frame="camera")
    a = fit(seq, sk, device="cpu", progress=False).angles
    b = fit(seq, sk, device="cuda", progress=False).angles
    for name in WELL:
        e = a[name].to_numpy()[bad] - b[name].to_numpy()[bad]
        assert np.sqrt(np.mean(e**2)) < 0.25, name
        t = q[bad, sk.dof_index(name)]
        assert np.abs(b[name].to_numpy()[bad] - t).max() < 6.0, name


def test_inputs_reach_the_gpu_unchanged_through_the_staging_buffers(monkeypatch):
    """Several page-locked pieces (one cut mid-row), a read-only array and a conversion: the
    values on the GPU are the host's, converted as torch converts them."""
    from medpose.kinematics.fit import device as fit_device

    monkeypatch.setattr(fit_device, "STAGE_BYTES", 1000)
    a = np.random.default_rng(0).normal(0.0, 500.0, (97, 26, 3))
    a[3, 4] = np.nan
    a.setflags(write=False)
    dev = torch.device("cuda")
    for dt in (torch.float32, torch.float64):
        got = fit_device.to_device(a, dev, dt)
        assert got.device.type == "cuda" and got.dtype == dt and got.shape == a.shape
        want = torch.from_numpy(a.copy()).to(dt)
        assert torch.allclose(got.cpu(), want, rtol=0.0, atol=0.0, equal_nan=True)


def test_cuda_fit_keeps_straight_arms_on_a_calibrated_skeleton():
    """On a GPU the calibrated fit solves every frame in one batch from the lengths-only poses
    (each step's rotations capped, as for the CPU's coarse frames): on OpenSim's noise-free
    functional trial (``tests/kinematics/test_calibrate_opensim.py``) the elbows stay within 1.5
    degrees of OpenSim's coordinate (offset removed) and the forearms off their pronation limit,
    as on the CPU."""
    data = Path(__file__).resolve().parents[1] / "data" / "opensim"
    seq = read_keypoints(data / "pose2sim_functional.trc")
    truth = pd.read_csv(data / "pose2sim_functional_truth.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        patient = calibrate(seq, keypoint_model="pose2sim_halpe26")
        f = fit(seq, patient, device="cuda", progress=False)
    for side in "rl":
        d = f.angles[f"elbow_flexion_{side}"].to_numpy() - truth[f"elbow_flex_{side}"].to_numpy()
        assert np.sqrt(np.mean((d - d.mean()) ** 2)) <= 1.5, side
        assert f.angles[f"forearm_pronation_{side}"].abs().max() < 79.0, side
