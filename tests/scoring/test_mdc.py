"""MDC95 of every score: published measurement error where it exists, else the value's own CI;
the composite's MDC95 by propagating the components' SEMs; stored in the study database."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.packaged import resource_yaml
from medpose.protocol.session_result import store_scores
from medpose.scoring import composite, mdc95, reliability_for, score_metric, sem_from_ci
from medpose.scoring.norms import RESOURCE
from medpose.scoring.scores import MEASURED, MEASURED_SESSION
from medpose.synthetic.exercises import make_exercise

K = 1.96 * math.sqrt(2.0)  # MDC95 per SEM (Weir 2005)
SESSION_DEG = 2.75  # between-session error of markerless joint angles (Kanko et al. 2021)


def angle_mdc(sem_ci: float) -> float:
    """An angle's MDC95 from its CI's SEM with the between-session error in quadrature."""
    return K * math.hypot(sem_ci, SESSION_DEG)


ROM = {"key": "rom.test.knee_flexion", "mean": 135.0, "sd": None, "unit": "deg"}
TIMED = {"key": "ftsts.test", "mean": 11.4, "better": "lower", "unit": "s"}
CRIT = {
    "key": "criterion.test.angle",
    "upper": 0.0,
    "mode": "criterion",
    "unit": "deg",
    "better": "lower",
}


def test_mdc95_and_sem_from_ci_by_hand():
    assert float(mdc95(2.0).value) == pytest.approx(1.96 * 1.4142135623730951 * 2.0)
    assert float(sem_from_ci(10.0, 17.84).value) == pytest.approx(7.84 / 3.92)
    assert float(mdc95(sem_from_ci(10.0, 17.84).value).value) == pytest.approx(K * 2.0)
    # another level: the normal quantile (90 %: 1.6449)
    assert float(sem_from_ci(0.0, 2 * 1.6448536, level=0.9).value) == pytest.approx(1.0)
    r = sem_from_ci([1.0, np.nan], [3.0, 2.0])
    assert np.isnan(r.value[1]) and r.reasons[1] and not r.reasons[0]
    with pytest.raises(InputError, match="low must not exceed high"):
        sem_from_ci(3.0, 1.0)


def test_a_value_with_a_known_ci_gets_its_mdc95_in_unit_and_percent_points():
    # an angle: the CI's SEM (the repetitions' scatter in one session) and the published
    # between-session error of markerless angles, in quadrature
    s = score_metric(100.0, ROM, ci=[95.0, 105.0])
    assert float(s.mdc95) == pytest.approx(angle_mdc(10.0 / 3.92))
    assert float(s.mdc95_percent) == pytest.approx(float(s.mdc95) * 100.0 / 135.0)
    assert s.mdc95_source == MEASURED_SESSION and s.reasons["mdc95"] == ""
    # a tight CI cannot make an angle's MDC95 smaller than the between-session error's
    tight = score_metric(100.0, ROM, ci=[99.99, 100.01])
    assert float(tight.mdc95) == pytest.approx(K * SESSION_DEG, rel=1e-4)
    # lower is better (100 mean / x): d percent / dx = 100 mean / x^2; seconds: the CI alone
    t = score_metric(10.0, TIMED, ci=[9.0, 11.0])
    assert float(t.mdc95_percent) == pytest.approx(K * 2.0 / 3.92 * 100.0 * 11.4 / 100.0)
    assert t.mdc95_source == MEASURED
    # a criterion: 100 less per 90 degrees beyond the limit
    c = score_metric(20.0, CRIT, ci=[18.0, 22.0])
    assert float(c.mdc95_percent) == pytest.approx(angle_mdc(4.0 / 3.92) * 100.0 / 90.0)
    # a batch: one MDC95 per value; no CI and nothing published: NaN with the reason
    b = score_metric([100.0, 110.0], ROM, ci=[[99.0, 101.0], [np.nan, np.nan]])
    assert b.mdc95[0] == pytest.approx(angle_mdc(2.0 / 3.92)) and np.isnan(b.mdc95[1])
    assert "no SEM or ICC" in b.reasons["mdc95"]
    frame = b.to_frame()
    assert list(frame["mdc95_source"]) == [MEASURED_SESSION] * 2
    assert np.isnan(frame["mdc95_percent"][1])
    none = score_metric(100.0, ROM)
    assert math.isnan(float(none.mdc95)) and none.mdc95_source == ""


def test_published_rows_give_the_published_mdc95():
    knee = reliability_for("rom", "knee_flexion")
    s = score_metric(100.0, ROM, ci=[90.0, 110.0], reliability=knee)  # published wins
    assert float(s.mdc95) == pytest.approx(K * 1.7)
    assert s.mdc95_source.startswith("published: Piriyaprasarth")
    sts = score_metric(12.0, TIMED, reliability=reliability_for("five_times_sit_to_stand"))
    assert float(sts.mdc95) == pytest.approx(2.5, abs=0.05)  # Goldberg 2012: MDC95 2.5 s
    # every published MDC in the resource matches its SEM (to the published rounding)
    rows = resource_yaml(RESOURCE)["reliability"]
    for row in rows:
        sem = row.get("sem")
        if "mdc95_published" in row:
            assert K * sem == pytest.approx(row["mdc95_published"], abs=0.05 + 0.05 * sem)
        if "mdc90_published" in row:  # MDC90 = 1.645 sqrt(2) SEM, whole degrees published
            assert 1.645 * math.sqrt(2.0) * sem == pytest.approx(row["mdc90_published"], abs=0.05)
        assert row["source"] in resource_yaml(RESOURCE)["sources"]


def _monte_carlo_sd(p, se, w, formula, n=40000):
    rng = np.random.default_rng(3)
    draws = {k: p[k] + se[k] * rng.standard_normal(n) for k in p}
    return float(np.std(composite(draws, w, formula).value))


@pytest.mark.parametrize(
    "formula", ["weighted_mean_capped", "weighted_mean", "weighted_geometric_capped"]
)
def test_composite_mdc95_matches_a_monte_carlo_simulation(formula):
    p = {"a": 62.0, "b": 75.0, "c": 48.0}  # far below the cap of 100
    se = {"a": 3.0, "b": 1.5, "c": 4.0}
    w = {"a": 2.0, "b": 1.0, "c": 1.0}
    c = composite(p, w, formula, sems=se)
    if formula != "weighted_geometric_capped":
        hand = math.sqrt(sum((w[k] * se[k]) ** 2 for k in p)) / sum(w.values())
        assert float(c.mdc95) == pytest.approx(K * hand)
    assert float(c.mdc95) / K == pytest.approx(_monte_carlo_sd(p, se, w, formula), rel=0.03)


def test_composite_mdc95_of_the_minimum_and_of_missing_components():
    p = {"a": 40.0, "b": 90.0}
    c = composite(p, {"a": 1.0, "b": 1.0}, "min_capped", sems={"a": 2.0, "b": 9.0})
    assert float(c.mdc95) == pytest.approx(K * 2.0)
    assert float(c.mdc95) / K == pytest.approx(
        _monte_carlo_sd(p, {"a": 2.0, "b": 9.0}, {"a": 1.0, "b": 1.0}, "min_capped"), rel=0.03
    )
    # a missing component is left out, as for the value; one without an SEM makes it NaN
    gone = composite(
        {"a": 40.0, "b": math.nan, "c": 60.0}, dict.fromkeys("abc", 1.0), sems={"a": 2.0, "c": 2.0}
    )
    assert float(gone.mdc95) == pytest.approx(K * math.sqrt(8.0) / 2.0)
    lack = composite({"a": 40.0, "b": 60.0}, {"a": 1.0, "b": 1.0}, sems={"a": 2.0})
    assert math.isnan(float(lack.mdc95)) and "no SEM for b" in lack.mdc95_reason
    # ScoreResults carry their own SEM (mdc95_percent / 1.96 sqrt 2)
    s1 = score_metric(100.0, ROM, ci=[95.0, 105.0])
    s2 = score_metric(120.0, ROM, ci=[110.0, 130.0])
    both = composite({"x": s1, "y": s2}, {"x": 1.0, "y": 1.0})
    want = math.hypot(float(s1.mdc95_percent), float(s2.mdc95_percent)) / 2.0
    assert float(both.mdc95) == pytest.approx(want)
    with pytest.raises(InputError, match="not scored"):
        composite({"a": 40.0}, {"a": 1.0}, sems={"z": 1.0})


@pytest.fixture(scope="module")
def assessed():
    """deep_squat on the fit of a synthetic squat seen with 5 mm keypoint noise."""
    sk = Skeleton.default(1750.0)
    truth = make_exercise("squat", skeleton=sk, rate=10.0, repetitions=3, seed=1)
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, truth.angles.values, keypoints=names)
    x = x + np.random.default_rng(0).normal(0.0, 5.0, x.shape)
    f = fit(KeypointSequence(x, tuple(names), 10.0, frame="camera"))
    return mp.Protocol.load("deep_squat").run(f)


def test_a_protocol_run_gives_every_score_a_finite_mdc95(assessed):
    s = assessed.scores
    assert len(s) and np.isfinite(s["percent"].astype(float)).all()
    assert (s["mdc95"].astype(float) > 0).all() and (s["mdc95_percent"].astype(float) > 0).all()
    published = s["mdc95_source"].str.startswith("published: ")
    assert set(s.loc[~published, "mdc95_source"]) <= {MEASURED, MEASURED_SESSION}
    angles = s[~published & (s["unit"] == "deg")]
    assert len(angles) and (angles["mdc95"].astype(float) >= K * SESSION_DEG - 1e-9).all()
    knee = s[s["metric"] == "rom_knee_flexion"]
    assert published[knee.index].all() and np.allclose(knee["mdc95"], K * 1.7)
    # the composite: the worse side's SEM of each weighted metric, propagated
    comp = mp.Protocol.load("deep_squat").spec.composite
    num = 0.0
    for key, w in comp.weights.items():
        rows = s[s["metric"] == key]
        num += (w * float(rows.loc[rows["percent"].astype(float).idxmin(), "mdc95_percent"])) ** 2
    assert comp.formula == "weighted_mean_capped_100"
    assert assessed.score_mdc95 == pytest.approx(math.sqrt(num) / sum(comp.weights.values()))
    assert "mdc95" in repr(assessed.composite)


def test_every_metric_value_has_a_ci_or_says_why(assessed):
    m = assessed.metrics
    ci = np.isfinite(m["ci_low"].astype(float)) & np.isfinite(m["ci_high"].astype(float))
    assert (ci | (m["reason"].fillna("") != "")).all()
    assert (m.loc[~ci, "reason"] != "").all()
    # summaries of repetitions (3 here) all have one: bootstrap or the fit's noise
    s = assessed.summary()
    rom = s[s["metric"].str.startswith("rom_")]
    assert (
        len(rom)
        and np.all(rom["ci_low"] <= rom["value"])
        and np.all(rom["value"] <= rom["ci_high"])
    )


def test_the_study_stores_every_mdc95(assessed, tmp_path):
    study = mp.Study(tmp_path / "study.sqlite")
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    study.add_run(
        patient="P-1",
        session="2026-03-01_visit1",
        date="2026-03-01",
        protocol="deep_squat",
        protocol_version="1",
        protocol_hash="sha256:aa",
        inputs={"trials/squat.trc": "sha256:01"},
        metrics=None,
        scores=store_scores(
            assessed.scores.assign(trial=assessed.trial), assessed.score, assessed.score_mdc95
        ),
        started=t0,
        finished=t0 + timedelta(seconds=5),
    )
    got = study.scores(protocol="deep_squat")
    assert len(got) == len(assessed.scores) + 1 and np.isfinite(got["mdc95"]).all()
    row = got[got["metric"] == "composite"]
    assert float(row["mdc95"].iloc[0]) == pytest.approx(assessed.score_mdc95)
