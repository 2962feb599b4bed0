"""Session folders for the protocol tests: a small valid session written with plain files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from medpose.camera import Camera
from medpose.io.calibration import write_calibration
from medpose.protocol import write_session_yaml

#: The patient id of the test sessions; the session folder is named after it on purpose.
PATIENT_ID = "SYN-4711"

TRC = """PathFileType\t4\t(X/Y/Z)\tstatic.trc
DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames
100\t100\t3\t2\tm\t100\t1\t3
Frame#\tTime\tknee_r\t\t\tankle_r
\t\tX1\tY1\tZ1\tX2\tY2\tZ2

1\t0.00\t0.1\t0.5\t0.2\t0.1\t0.1\t0.2
2\t0.01\t0.1\t0.5\t0.2\t0.1\t0.1\t0.25
3\t0.02\t0.1\t0.5\t0.2\t0.1\t0.1\t0.3
"""


def session_dict() -> dict:
    return {
        "medpose_session": 1,
        "patient": {
            "id": PATIENT_ID,
            "sex": "female",
            "age_years": 54,
            "height_mm": 1680,
            "mass_kg": 64,
        },
        "date": dt.date(2026, 11, 25),
        "side_of_interest": "right",
        "imaging": {"volume": "imaging/ct.nii.gz", "landmarks": "imaging/landmarks.csv"},
        "calibration": "calibration/calibration.toml",
        "trials": [
            {"name": "static", "kind": "static", "keypoints": "trials/static.trc"},
            {
                "name": "shoulder_abduction",
                "kind": "exercise",
                "exercise": "shoulder_abduction",
                "rate_hz": 30,
                "cameras": {
                    "cam01": "trials/shoulder_abduction/cam01_json",
                    "cam02": "trials/shoulder_abduction/cam02_json",
                },
            },
        ],
    }


def write_openpose_folder(folder: Path, n_frames: int = 4, seed: int = 0) -> np.ndarray:
    """BODY_25 OpenPose JSON files (25 keypoints x (x, y, c)); returns the (T, 25, 2) pixels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(10, 600, size=(n_frames, 25, 2))
    for t in range(n_frames):
        flat = np.column_stack([xy[t], np.full(25, 0.9)]).reshape(-1).tolist()
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat}]}
        (folder / f"{folder.name[:-5]}_{t:012d}_keypoints.json").write_text(json.dumps(doc))
    return xy


def make_session(root: Path, doc: dict | None = None) -> Path:
    """A small valid session folder written with plain files (no medpose writers except calibration)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "imaging").mkdir()
    img = sitk.Image(6, 5, 4, sitk.sitkInt16)
    img.SetSpacing((0.8, 0.8, 2.0))
    img.SetOrigin((-10.0, 20.0, 5.0))
    sitk.WriteImage(img, str(root / "imaging" / "ct.nii.gz"))
    (root / "imaging" / "landmarks.csv").write_text(
        "name,x,y,z\nasis_r,-120.5,40,900\nasis_l,110,42.5,901\n"
    )
    k = [[800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]]
    write_calibration(
        [
            Camera("cam01", (640, 480), k, translation=[0, 0, 3000]),
            Camera("cam02", (640, 480), k, rotation=[0, 0.5, 0], translation=[-1500, 0, 3000]),
        ],
        root / "calibration" / "calibration.toml",
    )
    (root / "trials").mkdir()
    (root / "trials" / "static.trc").write_text(TRC)
    write_openpose_folder(root / "trials" / "shoulder_abduction" / "cam01_json", seed=1)
    write_openpose_folder(root / "trials" / "shoulder_abduction" / "cam02_json", seed=2)
    write_session_yaml(session_dict() if doc is None else doc, root)
    return root


def rewrite(root: Path, doc: dict) -> None:
    """Write session.yaml without the schema check of write_session_yaml."""
    (root / "session.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    """A valid session in a folder named after the patient: messages must still not show the id."""
    return make_session(tmp_path / "patients" / PATIENT_ID)


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The helpers above, for the test modules (conftest is not importable under importlib mode)."""
    return SimpleNamespace(
        PATIENT_ID=PATIENT_ID,
        TRC=TRC,
        session_dict=session_dict,
        write_openpose_folder=write_openpose_folder,
        make_session=make_session,
        rewrite=rewrite,
    )
