"""The public API (`medpose.__all__`): every name resolves, is documented and is the one the
docs use; light import stays light."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import medpose as mp

ROOT = Path(__file__).resolve().parents[1]

#: Names the architecture promises (docs/architecture.md, the design's public API) that exist.
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


def test_all_has_no_duplicates_and_keeps_its_promises():
    assert len(mp.__all__) == len(set(mp.__all__))
    missing = [n for n in PROMISED if n not in mp.__all__]
    assert not missing, f"promised public names missing from medpose.__all__: {missing}"


@pytest.mark.parametrize("name", [n for n in mp.__all__ if n != "__version__"])
def test_every_public_name_resolves_and_is_documented(name):
    obj = getattr(mp, name)
    assert inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj), (
        f"medpose.{name} is a {type(obj).__name__}; the public API holds modules, classes and "
        "functions"
    )
    doc = inspect.getdoc(obj) or ""
    assert len(doc.split()) >= 3, f"medpose.{name} has no docstring"
    if not inspect.ismodule(obj):
        # the object is the one its home module defines, not a copy or a stand-in
        home = sys.modules[obj.__module__]
        assert getattr(home, obj.__name__) is obj


def test_version_is_a_version_string():
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?([.-]?\w+)*", mp.__version__), mp.__version__


def test_names_used_in_the_docs_are_public():
    """Every ``mp.X`` in the README and the user docs is in ``medpose.__all__``."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    used = {
        (page.name, m)
        for page in pages
        for m in re.findall(r"\bmp\.([A-Za-z_]\w*)", page.read_text(encoding="utf-8"))
    }
    unknown = sorted((page, n) for page, n in used if n not in mp.__all__)
    assert not unknown, f"docs use names outside medpose.__all__: {unknown}"


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
