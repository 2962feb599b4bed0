"""``Fit.to_mot(zero=opensim_zero(...))``: an OpenSim model's zero pose written as 0.

medpose's calibrated skeleton and Pose2Sim's OpenSim model read the same posture a few degrees
apart (where each puts its keypoints against its bone frames).  Fitting the skeleton to the
model's own markers in the model's reference pose gives that difference per coordinate; the
``.mot`` less it holds the model's coordinates, constant offset included.  The truth is
OpenSim's: ``tests/data/opensim`` holds markers OpenSim 4.6 generated from Pose2Sim's model with
their generating coordinates, and the model's markers in its reference pose
(``pose2sim_reference_pose.trc``: every coordinate 0 except ``pro_sup`` 90, written with
:func:`medpose.io.opensim.osim_reference_markers`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medpose as mp
from medpose.cli import main as cli_main
from medpose.errors import InputError
from medpose.io.opensim import opensim_mapping, osim_reference_markers
from medpose.kinematics.fit import opensim_zero

DATA = Path(__file__).resolve().parents[1] / "data" / "opensim"
REFERENCE = DATA / "pose2sim_reference_pose.trc"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pose2sim"
OSIM = SHARED / "Model_Pose2Sim_simple.osim"
MARKERS = SHARED / "Markers_Halpe26.xml"
FLEXION = ("knee_angle_r", "knee_angle_l", "elbow_flex_r", "elbow_flex_l", "hip_flexion_r",
           "hip_flexion_l")  # fmt: skip


@pytest.fixture(scope="module")
def functional():
    """The benchmark's functional trial (squats, arm raises, gait; 334 frames, no noise),
    calibrated with Pose2Sim's marker model and fitted, and its generating coordinates."""
    seq = mp.read_keypoints(DATA / "pose2sim_functional.trc")
    truth = pd.read_csv(DATA / "pose2sim_functional_truth.csv")
    patient = mp.calibrate(seq, keypoint_model="pose2sim_halpe26")
    return mp.fit(seq, patient, progress=False), truth


def _written(f, path, zero=None) -> dict[str, np.ndarray]:
    ja = mp.read_mot(f.to_mot(path, model="pose2sim", zero=zero), translations="keep")
    return {n: ja.values[:, i] for i, n in enumerate(ja.names)}


def test_the_models_zero_is_written_as_zero(functional, tmp_path):
    """Knee, elbow and hip flexion as written carry no constant offset from OpenSim's
    coordinates (mean difference within 1 degree); the time course is unchanged."""
    f, truth = functional
    zero = opensim_zero(f, mp.read_keypoints(REFERENCE))
    plain = _written(f, tmp_path / "plain.mot")
    zeroed = _written(f, tmp_path / "zeroed.mot", zero)
    assert set(zero) >= set(FLEXION) and "pelvis_tx" not in zero and "mtp_angle_r" not in zero
    for col in FLEXION:
        want = truth[col].to_numpy(float)
        assert abs(np.mean(zeroed[col] - want)) <= 1.0, col
        np.testing.assert_allclose(zeroed[col], plain[col] - zero[col], atol=1e-3)
    # not vacuous: written plainly, the calibrated knees fail the 1-degree promise above (they
    # read the model's zero pose away from 0), which the zero takes them within
    knees = [abs(np.mean(w[c] - truth[c].to_numpy(float))) for w in (plain, zeroed)
             for c in ("knee_angle_r", "knee_angle_l")]  # fmt: skip
    assert min(knees[:2]) > 1.0 >= max(knees[2:])


def test_a_marker_set_may_hold_fewer_keypoints_than_the_fit(functional):
    """Pose2Sim's HALPE_26 marker set has no eyes or ears: a fit on more keypoints than the
    markers still reads its zero from the markers there are (here without the head's two),
    and the knees' zero does not move."""
    f, _ = functional
    ref = mp.read_keypoints(REFERENCE)
    keep = [i for i, n in enumerate(ref.names) if n not in ("nose", "head_top")]
    fewer = mp.KeypointSequence(ref.positions[:, keep], tuple(ref.names[i] for i in keep), 1.0,
                                frame=ref.frame)  # fmt: skip
    assert len(fewer.names) == 20
    full, part = opensim_zero(f, ref), opensim_zero(f, fewer)
    for knee in ("knee_angle_r", "knee_angle_l"):
        assert part[knee] == pytest.approx(full[knee], abs=0.2)


def test_bad_input(functional, tmp_path):
    f, _ = functional
    with pytest.raises(InputError, match="expected a Fit"):
        opensim_zero("a fit", REFERENCE)
    with pytest.raises(InputError, match=r"expected an \.osim file or a 3D KeypointSequence"):
        opensim_zero(f, np.zeros((1, 22, 3)))
    with pytest.raises(InputError, match="unknown"):
        opensim_zero(f, REFERENCE, model="rajagopal")
    with pytest.raises(InputError, match=r"no\.osim: no such OpenSim model file"):
        opensim_zero(f, tmp_path / "no.osim")  # with or without the opensim package
    coco = mp.KeypointSequence(np.zeros((1, 3, 3)), ("nose", "left_eye", "right_eye"), 1.0)
    with pytest.raises(InputError, match=r"the model's markers are not the fit's: .*layout"):
        opensim_zero(f, coco)
    ref = mp.read_keypoints(REFERENCE)
    more = mp.KeypointSequence(np.concatenate([ref.positions, ref.positions[:, :1]], axis=1),
                               (*ref.names, "eye_l"), 1.0, frame=ref.frame)  # fmt: skip
    with pytest.raises(InputError, match=r"\['eye_l'\] were not calibrated"):
        opensim_zero(f, more)  # a marker the calibration never saw
    other = mp.KeypointSequence(ref.positions * 1.3, ref.names, 1.0, frame=ref.frame)
    with pytest.warns(UserWarning, match=r"lie \d+ mm \(median\) from the fitted skeleton"):
        opensim_zero(f, other)  # another body's markers: the zero read there is uncertain
    for bad in ({"knee_flexion_r": 1.0}, {"knee_angle_r": float("nan")}, {"knee_angle_r": "x"}):
        with pytest.raises(InputError, match="zero_deg"):  # medpose's name, NaN, not a number
            f.to_mot(tmp_path / "a.mot", zero=bad)
    with pytest.raises(InputError, match="expected model"):
        f.to_mot(tmp_path / "a.mot", model=None, zero={"knee_angle_r": 1.0})
    assert not (tmp_path / "a.mot").exists()


# ------------------------------------------------------------------- with OpenSim itself
def _opensim(markers=True):
    osim = pytest.importorskip("opensim")
    m = osim.Model(str(OSIM))
    if markers:
        m.updateMarkerSet(osim.MarkerSet(str(MARKERS)))
        m.finalizeConnections()
    return m


def test_the_reference_markers_are_the_models(shared_data):
    """Read with OpenSim: the pelvis at the ground's origin, so the ``Hip`` marker at its place
    in the pelvis (the mapping's ``pelvis_keypoint``, from the marker file); the unscaled model is
    left/right symmetric; the stored reference file is these markers."""
    _opensim()
    ref = osim_reference_markers(OSIM, markers=MARKERS)
    x = dict(zip(ref.names, ref.positions[0]))
    hip = opensim_mapping()["pelvis_keypoint"]["location_m"]
    np.testing.assert_allclose(x["Hip"], np.asarray(hip) * 1000.0, atol=0.01)
    for name in ("Knee", "Ankle", "Heel", "BigToe", "Elbow", "Wrist", "Shoulder"):
        np.testing.assert_allclose(x[f"L{name}"] * [1, 1, -1], x[f"R{name}"], atol=0.01)
    stored = mp.read_keypoints(REFERENCE)  # read with medpose's names, in the file's order
    assert len(stored.names) == len(ref.names) == 22
    np.testing.assert_allclose(stored.positions, ref.positions, atol=0.01)
    with pytest.raises(InputError, match="markers="):  # the unscaled model holds none
        osim_reference_markers(OSIM)


def test_opensim_puts_the_models_markers_where_they_were(functional, tmp_path, capsys, shared_data):
    """Loaded on the model in OpenSim, the zeroed ``.mot`` puts the markers within 3 mm
    (median) of the markers it was fitted to, closer than the plain one; ``medpose fit
    --zero-from-model`` closer than without."""
    model = _opensim()
    f, _ = functional
    seq = mp.read_keypoints(DATA / "pose2sim_functional.trc")
    state = model.initSystem()
    cs, ms = model.getCoordinateSet(), model.getMarkerSet()
    header = (DATA / "pose2sim_functional.trc").read_text().splitlines()[3].split("\t")[2::3]
    order = [header.index(ms.get(i).getName()) for i in range(ms.getSize())]  # file's order

    def error(columns) -> float:
        out = []
        for t in range(0, seq.n_frames, 4):
            for i in range(cs.getSize()):
                c = cs.get(i)
                v = columns.get(c.getName(), np.zeros(seq.n_frames))[t]
                c.setValue(state, np.radians(v) if c.getMotionType() == 1 else v / 1000.0, False)
            model.realizePosition(state)
            y = [[ms.get(i).getLocationInGround(state).get(j) * 1000.0 for j in range(3)]
                 for i in range(ms.getSize())]  # fmt: skip
            out.append(np.linalg.norm(np.array(y) - seq.positions[t, order], axis=1))
        return float(np.median(out))

    zero = opensim_zero(f, OSIM, markers=MARKERS)
    plain, zeroed = (
        error(_written(f, tmp_path / "p.mot")),
        error(_written(f, tmp_path / "z.mot", zero)),
    )
    assert zeroed <= 3.0 and zeroed < plain, (plain, zeroed)
    # the command line (its own calibration, with the detector's priors) likewise
    read = {}
    for flags in ([], ["--osim", str(OSIM), "--markers", str(MARKERS), "--zero-from-model"]):
        out = tmp_path / f"cli{len(flags)}.mot"
        args = ["fit", str(DATA / "pose2sim_functional.trc"), "-o", str(out), "--no-progress"]
        assert cli_main(args + flags) == 0
        said = capsys.readouterr().out
        assert ("the model's zero pose reads" in said) == bool(flags)  # what it subtracted
        ja = mp.read_mot(out, translations="keep")
        read[len(flags)] = error({n: ja.values[:, i] for i, n in enumerate(ja.names)})
    assert read[5] < read[0], read


def test_markers_of_another_layout_are_refused_before_the_fit(
    shared_data, tmp_path, capsys, monkeypatch
):
    """Keypoints that do not hold the marker set's (here the HALPE_26 markers without the head
    top and neck, as a MediaPipe recording has none) are refused before any fit, naming the
    markers missing, and nothing is written.  The model's markers are the stored reference
    pose (OpenSim's own, :func:`test_the_reference_markers_are_the_models`), so that this runs
    without the ``opensim`` package."""
    stored = mp.read_keypoints(DATA / "pose2sim_reference_pose.trc")
    monkeypatch.setattr(
        "medpose.io.opensim.osim_reference_markers", lambda osim, model, markers=None: stored
    )
    seq = mp.read_keypoints(DATA / "pose2sim_functional.trc")
    keep = [n for n in seq.names if n not in ("head_top", "neck")]
    trc = tmp_path / "no_neck.trc"
    mp.write_keypoints(seq.select(keep), trc)
    out = tmp_path / "z.mot"
    args = ["fit", str(trc), "-o", str(out), "--osim", str(OSIM), "--markers", str(MARKERS)]
    assert cli_main([*args, "--zero-from-model", "--no-progress"]) == 1
    said = capsys.readouterr()
    assert "--zero-from-model: the model's markers ['head_top', 'neck']" in said.err, said.err
    assert "Fit(" not in said.out and not out.exists()


def test_without_the_opensim_package_the_message_says_what_to_do(shared_data, monkeypatch):
    osim = shared_data / "pose2sim" / "Model_Pose2Sim_simple.osim"
    monkeypatch.setitem(sys.modules, "opensim", None)  # import opensim raises ImportError
    with pytest.raises(InputError, match="need the opensim package") as err:
        osim_reference_markers(osim)
    assert "Model_Pose2Sim_simple.osim" in str(err.value) and "KeypointSequence" in str(err.value)
