"""A range of motion that a joint's hard limit cut short says so, in the metrics and the report."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.limits import JointLimits
from medpose.kinematics.skeleton import Skeleton
from medpose.protocol.capped import CAPPED
from medpose.report import write_report
from medpose.report.labels import format_value
from medpose.synthetic.exercises import make_exercise

RATE = 10.0
CAP = 60.0  # deg: the synthetic squat's knees bend well past it


@pytest.fixture(scope="module")
def squat():
    sk = Skeleton.default(1750.0)
    truth = make_exercise("squat", skeleton=sk, rate=RATE, repetitions=3, seed=1)
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, truth.angles.values, keypoints=names)
    seq = KeypointSequence(x, tuple(names), RATE, frame="camera")
    low = JointLimits.default(sk).with_overrides({"knee_flexion": (None, CAP)})
    return truth, fit(seq, sk, progress=False), fit(seq, sk, limits=low, progress=False)


def _knee_rows(a):
    m = a.metrics
    return m[m["metric"] == "rom_knee_flexion"]


def test_a_range_held_by_a_limit_says_so(squat):
    truth, free, capped = squat
    knees = [truth.angles.names.index(f"knee_flexion{s}") for s in ("_l", "_r")]
    peak = np.nanmax(np.asarray(truth.angles.values)[:, knees])
    assert peak > CAP + 20.0  # the truth goes far past the lowered limit
    protocol = mp.Protocol.load("deep_squat")
    rows = _knee_rows(protocol.run(capped))
    assert len(rows) == 8  # 3 repetitions and the summary, per side
    for r in rows.itertuples(index=False):
        assert f"{CAPPED} ({CAP:.0f} deg)" in r.reason, r.reason
        assert r.value <= CAP + 1.0
    # the same squat inside the default limits: no note
    assert not _knee_rows(protocol.run(free))["reason"].fillna("").str.contains(CAPPED).any()


def test_the_report_puts_the_note_beside_the_value(squat, tmp_path):
    _, _, capped = squat
    a = mp.Protocol.load("deep_squat").run(capped)
    text = write_report(a, tmp_path, pdf=False).html.read_text(encoding="utf-8")
    cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", text)]
    value = format_value(a.value("rom_knee_flexion", "left"), "deg")
    assert any(c.startswith(f"{value} ({CAPPED} ({CAP:.0f} deg)") for c in cells), value
