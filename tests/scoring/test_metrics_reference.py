"""SPARC and LDLJ against the reference implementation's values (Balasubramanian et al.).

The data folder's ``metrics/smoothness_reference.{json,npz}`` holds speed profiles and the
values that the authors' code (github.com/siva82kb/SPARC, ``scripts/smoothness.py``, default
parameters) gives for them, on the arrays with 0.5 s of rest on either side (``sparc``,
``ldlj_padded``) and without it (``sparc_unpadded``, ``ldlj_unpadded``).  medpose computes
each metric on the array it is given, so both pairs must match.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import medpose as mp

TOL = 1e-4
REST_S = 0.5  # rest before and after each movement in the reference arrays (data README)


@pytest.fixture(scope="module")
def reference(shared_data):
    folder = shared_data / "metrics"
    rows = json.loads((folder / "smoothness_reference.json").read_text(encoding="utf-8"))["rows"]
    with np.load(folder / "smoothness_reference.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return rows, arrays


def _deviations(reference, metric, padded_key, unpadded_key):
    rows, arrays = reference
    out = []
    for row in rows:
        x, fs = arrays[row["key"]], row["fs"]
        assert x.size == row["n"]
        rest = round(REST_S * fs)
        core = x[rest:-rest]
        if row["definition"] != "gauss":  # a Gaussian has (tiny) tails in the rest
            assert np.all(x[:rest] == 0) and np.all(x[-rest:] == 0), row["key"]
        got = metric([x, core], fs)
        assert got.ok.all(), (row["key"], got.reasons)
        out.append((row["key"], abs(got.value[0] - row[padded_key])))
        out.append((row["key"] + " unpadded", abs(got.value[1] - row[unpadded_key])))
    return out


def test_sparc_matches_the_reference_implementation(reference):
    devs = _deviations(reference, mp.metrics.sparc, "sparc", "sparc_unpadded")
    assert len(devs) == 2 * len(reference[0]) >= 40
    worst = max(devs, key=lambda d: d[1])
    assert worst[1] <= TOL, f"SPARC differs from the reference by {worst[1]:.2e} on {worst[0]}"


def test_ldlj_matches_the_reference_implementation(reference):
    devs = _deviations(reference, mp.metrics.ldlj, "ldlj_padded", "ldlj_unpadded")
    worst = max(devs, key=lambda d: d[1])
    assert worst[1] <= TOL, f"LDLJ differs from the reference by {worst[1]:.2e} on {worst[0]}"


def test_reference_parameters_are_the_defaults(reference):
    """The reference values were computed with padlevel=4, fc=10 Hz, amp_th=0.05 (README)."""
    rows, arrays = reference
    row = rows[0]
    got = mp.metrics.sparc(arrays[row["key"]], row["fs"])
    assert dict(got.params) == {"padlevel": 4, "fc_hz": 10.0, "amp_th": 0.05, "fs_hz": row["fs"]}
    explicit = mp.metrics.sparc(arrays[row["key"]], row["fs"], padlevel=4, fc=10.0, amp_th=0.05)
    assert float(explicit) == float(got)


def test_smoother_movements_score_higher_in_the_reference_set(reference):
    """Two submovements further apart are less smooth (the reference values order them so,
    and so must ours: computed, not copied)."""
    rows, arrays = reference
    published = {row["key"]: row["sparc"] for row in rows}
    for fs in (100.0, 200.0):
        keys = [f"MJT D=0.5@{fs}"] + [f"2xMJT D=0.5 dT={dt}@{fs}" for dt in ("0.2", "0.4", "0.6")]
        ours = mp.metrics.sparc([arrays[k] for k in keys], fs).value
        theirs = np.array([published[k] for k in keys])
        for values in (ours, theirs):
            assert values[0] >= values[1] > values[2] > values[3]


def test_docstring_examples_of_the_reference_code():
    """The reference code's own doctests: a Gaussian speed profile at 100 Hz gives SPARC
    -1.41403 and LDLJ -5.81636 (siva82kb/SPARC scripts/smoothness.py)."""
    t = np.arange(-1, 1, 0.01)
    move = np.exp(-5 * t**2)
    assert float(mp.metrics.sparc(move, fs=100.0)) == pytest.approx(-1.41403, abs=5e-6)
    assert float(mp.metrics.ldlj(move, fs=100.0)) == pytest.approx(-5.81636, abs=5e-6)
