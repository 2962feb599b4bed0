"""Full arm elevation on real UI-PRMD shoulder abductions: the pass limit is one healthy arms meet.

The ``humeral_elevation`` criterion of ``shoulder_abduction`` (and ``shoulder_scaption``) passes
from 151 degrees, the band that earns the Constant-Murley score's full elevation points
(Constant & Murley 1987).  Its former limit, the AAOS average range of 180 degrees, was met by no
correct UI-PRMD abduction (ten healthy subjects, Kinect v2): a limit nobody meets cannot tell a
correct raise from an incorrect one.  Over all 200 m07 files the new limit passes 67 of the 100
correct repetitions and 13 of the 100 incorrect ones; here the first episode of every subject.
"""

from __future__ import annotations

import warnings

import pytest

import medpose as mp
from medpose.scoring import norm_for

SUBJECTS = tuple(f"s{i:02d}" for i in range(1, 11))
# the first repetition of each subject; per episode, 5 to 9 of the 10 correct raises pass and
# 0 to 4 of the 10 incorrect ones (e01: 6 and 0)
EPISODE = "e01"


def test_full_elevation_is_the_constant_murley_top_band():
    row = norm_for("criterion", "humeral_elevation", source="constant1987")
    assert float(row["lower"]) == 151.0  # 151-180 degrees: 10 of 10 elevation points
    assert row["better"] == "higher" and row["unit"] == "deg"
    assert "Constant CR, Murley AHG" in row["source"] and "1987" in row["source"]
    for name in ("shoulder_abduction", "shoulder_scaption"):
        spec = mp.Protocol.load(name).spec
        keys = [m.norm for m in spec.metrics if m.name == "humeral_elevation"]
        assert keys == ["criterion.constant1987.humeral_elevation"], name


@pytest.fixture(scope="module")
def elevation(shared_data):
    """(value, CI high, percent) of the arm that moved, per (correct, subject), episode e01."""
    import torch

    root = shared_data / "ui-prmd" / "kinect"
    protocol = mp.Protocol.load("shoulder_abduction")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small fit per file: threads only spin on a shared machine
    out = {}
    try:
        for correct, kind, tail in ((True, "correct", ""), (False, "incorrect", "_inc")):
            for subject in SUBJECTS:
                name = f"m07_{subject}_{EPISODE}_positions{tail}.txt.gz"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    a = protocol.run(
                        mp.read_keypoints(root / kind / "positions" / name), side="auto"
                    )
                s = a.scores[a.scores["metric"] == "humeral_elevation"]
                assert len(s) == 1, (name, s)  # the arm that moved
                m = a.metrics[(a.metrics["metric"] == "humeral_elevation")]
                m = m[m["repetition"].isna() & (m["side"] == s["side"].iloc[0])]
                out[correct, subject] = (
                    float(s["value"].iloc[0]),
                    float(m["ci_high"].iloc[0]),
                    float(s["percent"].iloc[0]),
                )
    finally:
        torch.set_num_threads(threads)
    return out


def test_correct_abductions_meet_full_elevation_and_incorrect_ones_mostly_do_not(elevation):
    limit = float(norm_for("criterion", "humeral_elevation", source="constant1987")["lower"])
    good = [elevation[True, s] for s in SUBJECTS]
    poor = [elevation[False, s] for s in SUBJECTS]
    # the AAOS average range: no healthy subject's correct raise reads 180 on these keypoints
    assert all(v < 180.0 for v, _, _ in good)
    passed = [v >= limit for v, _, _ in good]
    failed_poor = [v < limit for v, _, _ in poor]
    # most correct raises pass (6 of 10 here, 67 of 100 on all files), incorrect ones rarely
    # (0 of 10 here, 13 of 100 on all files)
    assert sum(passed) >= 5, good
    assert sum(failed_poor) >= 8, poor
    # a correct raise that misses the limit is not told from it: the value's keypoint-noise
    # interval reaches it, and its score stays above 90 (less than 9 degrees short)
    for (v, hi, pct), ok in zip(good, passed):
        assert ok or (hi >= limit and pct > 90.0), (v, hi, pct)
    for v, _, pct in good + poor:
        assert pct == pytest.approx(min(100.0, max(0.0, 100.0 - (limit - v) / 90.0 * 100.0)))
