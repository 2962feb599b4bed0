"""Quality gate: pass/fail with reasons."""

from __future__ import annotations

import numpy as np
import pytest

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
