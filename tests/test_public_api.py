"""The public API (`medpose.__all__`): every name resolves, light import stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import medpose as mp

PROMISED = [
    "Transform",
    "Landmarks",
    "KeypointSequence",
    "JointAngles",
    "Session",
    "read_landmarks",
    "read_volume",
    "read_keypoints",
    "read_calibration",
    "triangulate",
    "register",
    "fit",
    "MedposeError",
    "InputError",
    "FrameMismatch",
    "DegenerateConfiguration",
    "ProtocolError",
    "synthetic",
    "temporal",
    "__version__",
]


@pytest.mark.parametrize("name", sorted(set(mp.__all__) | set(PROMISED)))
def test_every_public_name_resolves(name):
    assert getattr(mp, name) is not None
    assert name in mp.__all__


def test_design_examples_resolve():
    assert callable(mp.synthetic.make_session)
    assert callable(mp.temporal.butterworth)
    assert issubclass(mp.InputError, mp.MedposeError) and issubclass(
        mp.FrameMismatch, mp.MedposeError
    )


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mp.nope  # noqa: B018


def test_import_does_not_load_torch():
    code = "import sys, medpose; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
