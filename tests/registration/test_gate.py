"""Quality gate: pass/fail with reasons."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from medpose import InputError, Landmarks
from medpose.registration import GateResult, QualityGate, register


@pytest.fixture
def noisy_reg(pair):
    cam, ct = pair
    rng = np.random.default_rng(1)
    pos = cam.positions + rng.normal(scale=0.5, size=(6, 3))
    pos[4] += [0, 12.0, 0]
    return register(Landmarks(cam.names, pos, "camera"), ct, robust=True, fle=0.8)


def test_gate_passes_and_fails_with_reasons(noisy_reg):
    targets = Landmarks(("tumour", "far"), [[0, 0, 30.0], [0, 0, 300.0]], "LPS")
    ok = QualityGate(max_fre_mm=2.0, max_tre_mm={"tumour": 2.0}, min_fiducials=4).check(
        noisy_reg, targets
    )
    assert (
        isinstance(ok, GateResult)
        and ok.passed
        and bool(ok)
        and ok.reasons == ()
        and str(ok) == "PASS"
    )
    assert ok.values["n_outliers"] == 1 and ok.values["tre_mm"]["tumour"] < 2.0
    bad = QualityGate(max_fre_mm=0.01, max_tre_mm=1.0, min_fiducials=6, max_outliers=0).check(
        noisy_reg, targets
    )
    assert not bad.passed
    text = " | ".join(bad.reasons)
    assert "5 fiducials in the fit, fewer than the 6 required" in text
    assert "1 outlier fiducials ['fid4']" in text
    assert "FRE" in text and "exceeds 0.01 mm" in text
    assert "predicted TRE at far" in text and "tumour" not in text
    assert str(bad).startswith("FAIL: ")


def test_gate_from_dict_and_bad_thresholds(noisy_reg):
    gate = QualityGate.from_dict({"max_fre_mm": 1.5, "min_fiducials": 5}, source="navigation.yaml")
    assert gate.to_dict()["max_fre_mm"] == 1.5 and gate.check(noisy_reg).passed
    with pytest.raises(InputError, match=r"navigation.yaml: unknown keys \['max_fre'\]"):
        QualityGate.from_dict({"max_fre": 1.0}, source="navigation.yaml")
    with pytest.raises(InputError, match="max_fre_mm must be a positive number"):
        QualityGate(max_fre_mm=-1)
    with pytest.raises(InputError, match=r"max_tre_mm\['tumour'\]"):
        QualityGate(max_tre_mm={"tumour": "x"})
    with pytest.raises(InputError, match="min_fiducials must be an integer >= 3"):
        QualityGate(min_fiducials=2)
    with pytest.raises(InputError, match="no targets"):
        QualityGate(max_tre_mm=2.0).check(noisy_reg)
    with pytest.raises(InputError, match=r"targets \['tumour'\] have a TRE threshold"):
        QualityGate(max_tre_mm={"tumour": 2.0}).check(
            noisy_reg, Landmarks(("x",), [[0, 0, 0]], "LPS")
        )


def test_gate_shows_each_criterion_with_its_value_and_limit(noisy_reg):
    targets = Landmarks(("tumour", "far"), [[0, 0, 30.0], [0, 0, 300.0]], "LPS")
    gate = QualityGate(max_fre_mm=2.0, max_tre_mm={"far": 1.0}, min_fiducials=4, max_outliers=0)
    res = gate.check(noisy_reg, targets)
    df = res.to_dataframe().set_index(["criterion", "target"])
    fre = df.loc[("FRE", "")]
    assert fre["value"] == pytest.approx(noisy_reg.fre) and fre["limit"] == 2.0 and fre["passed"]
    far = df.loc[("predicted TRE", "far")]
    assert far["value"] == pytest.approx(res.values["tre_mm"]["far"]) and far["limit"] == 1.0
    assert far["passed"] == (far["value"] <= 1.0)
    assert df.loc[("fiducials in the fit", ""), "value"] == 5  # one of six rejected
    out = df.loc[("outliers", "")]
    assert out["value"] == 1 and out["limit"] == 0 and not out["passed"]
    text = repr(res)
    assert text.startswith("GateResult(FAIL: ") and "outliers 1 > 0 FAILED" in text
    assert f"FRE {noisy_reg.fre:.2f} mm <= 2 mm" in text and "fiducials in the fit 5 >= 4" in text
    page = res._repr_html_()
    assert "FAIL" in page and "1 outlier fiducials [&#x27;fid4&#x27;]" in page and "<img" in page
    # the bars: FRE and the TRE in mm, their lengths the values, red where a limit is exceeded
    ax = Figure().add_subplot()
    assert res.plot(ax=ax) is ax
    bars = ax.containers[0]
    assert [b.get_width() for b in bars] == pytest.approx(
        [noisy_reg.fre, res.values["tre_mm"]["far"]]
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == ["FRE", "TRE far"]
    # a gate with no thresholds but the default minimum reports values without limits
    plain = QualityGate().check(noisy_reg)
    assert plain.passed and np.isnan(
        plain.to_dataframe().set_index("criterion").loc["FRE", "limit"]
    )


def test_registration_plot_draws_each_residual_and_marks_outliers(noisy_reg):
    ax = Figure().add_subplot()
    assert noisy_reg.plot(ax=ax) is ax
    kept, rejected = ax.containers
    assert [b.get_height() for b in kept] == pytest.approx(
        noisy_reg.residuals[noisy_reg.inliers].tolist()
    )
    assert [b.get_height() for b in rejected] == pytest.approx([noisy_reg.residuals["fid4"]])
    assert ax.lines[0].get_ydata()[0] == pytest.approx(noisy_reg.fre)


# ---------------------------------------------------------------- left and right (laterality)
PELVIS = {  # LPS mm: the patient's left is +x
    "asis_l": [120.0, -60.0, 0.0],
    "asis_r": [-120.0, -60.0, 0.0],
    "psis_l": [40.0, 90.0, 20.0],
    "psis_r": [-40.0, 90.0, 20.0],
    "knee_l": [100.0, 0.0, -450.0],
    "knee_r": [-100.0, 0.0, -450.0],
}


def _pelvis_through_slicer(tmp_path, coordinate_system: str) -> Landmarks:
    """The pelvis written as LPS, its file's coordinateSystem then set to ``coordinate_system``
    without changing the numbers, read back."""
    import json

    import medpose as mp

    path = tmp_path / "pelvis.mrk.json"
    mp.write_landmarks(Landmarks(tuple(PELVIS), list(PELVIS.values()), "LPS"), path)
    doc = json.loads(path.read_text())
    assert doc["markups"][0]["coordinateSystem"] == "LPS"
    doc["markups"][0]["coordinateSystem"] = coordinate_system
    path.write_text(json.dumps(doc))
    return mp.read_landmarks(path)


def test_left_right_pairs_are_found_by_name():
    from medpose.registration.checks import left_right_pairs

    names = ["asis_l", "ASIS_R", "left-hip", "right-hip", "l_ear", "lateral", "sternum", "knee_l"]
    assert sorted(left_right_pairs(names)) == [("asis_l", "ASIS_R"), ("left-hip", "right-hip")]


def test_a_landmarks_file_with_the_wrong_coordinate_system_fails_the_gate(tmp_path, truth):
    right = _pelvis_through_slicer(tmp_path, "LPS")
    wrong = _pelvis_through_slicer(tmp_path, "RAS")  # RAS -> LPS turns x and y over
    assert np.allclose(wrong.positions[:, 0], -right.positions[:, 0])
    cam = truth.apply(right)
    gate = QualityGate(max_fre_mm=1.0)
    ok = gate.check(register(cam, right), landmarks=right)
    assert ok.passed and ok.values["left_right_pairs"] == 3 and ok.values["wrong_side_pairs"] == 0
    reg = register(cam, wrong)  # a 180 degree turn about z: the fit is just as good
    assert reg.fre < 1e-6
    bad = gate.check(reg, landmarks=wrong)
    assert not bad.passed and bad.values["wrong_side_pairs"] == 3
    (reason,) = bad.reasons
    assert "3 of 3 left/right landmark pairs lie on the wrong side" in reason
    assert "asis_l is 240.0 mm to the right of asis_r" in reason
    assert "coordinate system is probably wrong" in reason and "RAS" in reason
    row = bad.to_dataframe().set_index("criterion").loc["left/right pairs on the wrong side"]
    assert row["value"] == 3 and not row["passed"]


def test_one_pair_on_the_wrong_side_of_several_does_not_fail_the_gate(truth):
    pos = np.array(list(PELVIS.values()))
    pos[[4, 5], 0] = pos[[5, 4], 0]  # the knees' x swapped: a mislabelled pair, not a frame
    lm = Landmarks(tuple(PELVIS), pos, "LPS")
    result = QualityGate().check(register(truth.apply(lm), lm))
    assert result.passed and result.values["wrong_side_pairs"] == 1
