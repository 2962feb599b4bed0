"""``steps.fit.calibrate`` in a protocol: the subject's skeleton from the movement itself or from
the session's static trial (:func:`medpose.calibrate`), on a synthetic session."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.errors import ProtocolError
from medpose.io.trc import write_trc
from medpose.protocol import execute_session

ROOT = Path(__file__).resolve().parents[2]
SQUAT = ROOT / "protocols" / "deep_squat.yaml"


def _variant(tmp_path: Path, fit: str, static: bool = False) -> mp.Protocol:
    """deep_squat with another ``steps.fit`` (and a static trial when asked)."""
    text = SQUAT.read_text().replace("  fit: {smoothness: 2.0}\n", f"  fit: {fit}\n")
    if static:
        text = text.replace(
            "\nsteps:\n",
            "  - {name: static, movement: quiet standing, kind: static}\n\nsteps:\n",
            1,
        )
    path = tmp_path / "squat_variant.yaml"
    path.write_text(text)
    return mp.Protocol.load(path)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sessions") / "visit1"
    mp.synthetic.make_session(path, seed=11, exercises=("squat",), n_cameras=2)
    return path


def _residual(result) -> float:
    q = result.assessment.quality
    return float(q.loc[q["check"] == "fit_residual_median", "value"].median())


def test_calibrating_on_the_movement_lowers_the_fit_residual(session, tmp_path):
    """``calibrate: movement``: the squat trial is fitted with a skeleton calibrated on itself:
    the median keypoint residual falls (the keypoints carry a constant synthetic bias that the
    default skeleton cannot follow), and the quality table says how far each keypoint moved."""
    plain = execute_session(
        _variant(tmp_path, "{smoothness: 0.0, calibrate: none}"),
        session,
        trials={"deep_squat": "squat"},
    )
    cal = execute_session(
        _variant(tmp_path, "{smoothness: 0.0, calibrate: movement}"),
        session,
        trials={"deep_squat": "squat"},
    )
    assert _residual(cal) < _residual(plain)
    q = cal.assessment.quality
    moved = q[q["check"] == "calibration_change"]
    assert len(moved) >= 12 and (moved["unit"] == "mm").all()
    assert np.isfinite(moved["value"]).all() and moved["value"].max() <= 60.0 * 3**0.5
    assert "calibration_change" not in set(plain.assessment.quality["check"])


def test_calibrating_on_the_static_trial(session, tmp_path):
    """``calibrate: static``: the session's static trial (marker-like, every skeleton keypoint)
    calibrates the subject on the exercise trial's keypoints; the squat is fitted with it."""
    protocol = _variant(tmp_path, "{smoothness: 0.0, calibrate: static}", static=True)
    result = execute_session(protocol, session, trials={"deep_squat": "squat"})
    q = result.assessment.quality
    assert (q["check"] == "calibration_change").any()
    assert set(q.loc[q["check"] == "calibration_change", "trial"]) == {"deep_squat"}
    assert np.isfinite(result.assessment.score)


def test_a_static_calibration_needs_a_static_trial(tmp_path):
    with pytest.raises(ProtocolError, match="calibrate"):
        _variant(tmp_path, "{calibrate: static}")
    with pytest.raises(ProtocolError, match="calibrate"):
        _variant(tmp_path, "{calibrate: sometimes}")


def test_one_trial_run_with_a_static_calibration_calibrates_on_the_movement(session, tmp_path):
    """``Protocol.run(sequence)`` has no static trial at hand: it warns and calibrates on the
    movement."""
    protocol = _variant(tmp_path, "{smoothness: 0.0, calibrate: static}", static=True)
    seq = mp.read_keypoints(session / "trials" / "squat.trc")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        a = protocol.run(seq)
    assert any("calibrating on the movement" in str(w.message) for w in rec)
    assert np.isfinite(a.score)


def test_the_default_fits_lengths_only_without_a_static_trial_of_its_keypoints(session, tmp_path):
    """``calibrate: auto`` (the default): the session's static trial is marker-like (every
    skeleton keypoint, more than the HALPE_26 squat has, none of its detector's bias), so it
    does not calibrate the squat, which is fitted as with ``calibrate: none``."""
    auto = execute_session(
        _variant(tmp_path, "{smoothness: 0.0}", static=True),
        session,
        trials={"deep_squat": "squat"},
    )
    none = execute_session(
        _variant(tmp_path, "{smoothness: 0.0, calibrate: none}", static=True),
        session,
        trials={"deep_squat": "squat"},
    )
    assert not (auto.assessment.quality["check"] == "calibration_change").any()
    assert _residual(auto) == pytest.approx(_residual(none), rel=1e-6)


def test_the_default_calibrates_on_a_static_trial_of_the_same_keypoints(session, tmp_path):
    """``calibrate: auto`` with a static trial of the squat's own keypoints (here its first
    standing frame, held still for a second): the subject is calibrated on it, as
    ``calibrate: static`` does, not on the movement."""
    copy = tmp_path / "visit_same_static"
    shutil.copytree(session, copy)
    squat = mp.read_keypoints(copy / "trials" / "squat.trc")
    still = np.repeat(squat.positions[:1], 30, axis=0)
    still = still + np.random.default_rng(0).normal(0.0, 0.5, still.shape)
    write_trc(
        KeypointSequence(still, squat.names, squat.rate, frame=squat.frame),
        copy / "trials" / "static.trc",
    )
    runs = {
        how: execute_session(
            _variant(tmp_path, f"{{smoothness: 0.0, calibrate: {how}}}", static=True),
            copy,
            trials={"deep_squat": "squat"},
        )
        for how in ("auto", "static", "none")
    }
    assert (runs["auto"].assessment.quality["check"] == "calibration_change").any()
    assert _residual(runs["auto"]) == pytest.approx(_residual(runs["static"]), rel=1e-6)
    assert _residual(runs["auto"]) != pytest.approx(_residual(runs["none"]), rel=1e-3)
