"""ITK transform files: medpose's convention checked with SimpleITK's own reader and writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from medpose.errors import InputError
from medpose.geometry import Transform
from medpose.io.transform import read_transform, write_transform


def _random_transform(seed: int, scale: float = 1.0) -> Transform:
    rng = np.random.default_rng(seed)
    return Transform(
        Rotation.random(random_state=seed), rng.uniform(-300, 300, 3), scale, "LPS", "camera"
    )


def _sitk_map(path: Path, points: np.ndarray) -> np.ndarray:
    tx = sitk.ReadTransform(str(path))
    return np.array([tx.TransformPoint(tuple(map(float, x))) for x in points])


@pytest.mark.parametrize("ext", [".tfm", ".h5"])
@pytest.mark.parametrize("scale", [1.0, 1.37])
def test_written_file_is_the_resampling_transform_target_to_source(tmp_path, ext, scale):
    """The file maps fixed (= target) points to moving (= source) points: F = T^-1 (ITK, Slicer)."""
    t = _random_transform(3, scale)
    path = write_transform(t, tmp_path / f"ct2camera{ext}")
    src = np.random.default_rng(4).uniform(-200, 200, (20, 3))
    np.testing.assert_allclose(_sitk_map(path, t.apply(src)), src, atol=1e-9)
    back = read_transform(path, source="LPS", target="camera")
    np.testing.assert_allclose(back.matrix, t.matrix, atol=1e-12)
    assert (back.source, back.target) == ("LPS", "camera")


def test_text_file_records_frames_and_round_trips(tmp_path):
    t = _random_transform(5, 0.8)
    path = write_transform(t, tmp_path / "t.tfm")
    text = path.read_text()
    assert "Transform: AffineTransform_double_3_3" in text and "FixedParameters: 0 0 0" in text
    back = read_transform(path)  # frames from the file's comment lines
    assert (back.source, back.target) == ("LPS", "camera")
    np.testing.assert_allclose(back.matrix, t.matrix, atol=1e-12)
    np.testing.assert_allclose(back.scale, 0.8, atol=1e-12)


@pytest.mark.parametrize("kind", ["affine", "similarity", "euler", "composite"])
@pytest.mark.parametrize("ext", [".tfm", ".h5"])
def test_reads_sitk_written_transforms_with_centre(tmp_path, kind, ext):
    """SimpleITK's files (non-zero centre in FixedParameters) read as F^-1: moving -> fixed."""
    rot = Rotation.from_euler("xyz", [20, -35, 50], degrees=True)
    centre, shift = (12.0, -40.0, 7.5), (3.0, 5.0, -8.0)
    if kind == "affine":
        tx = sitk.AffineTransform(3)
        tx.SetMatrix(tuple(rot.as_matrix().reshape(-1)))
        tx.SetTranslation(shift)
        tx.SetCenter(centre)
    elif kind == "similarity":
        tx = sitk.Similarity3DTransform(
            1.5, tuple(rot.as_quat()), shift, centre
        )  # versor x, y, z, w
    elif kind == "euler":
        tx = sitk.Euler3DTransform(centre, 0.2, -0.4, 0.9, shift)
    else:
        a = sitk.Euler3DTransform(centre, 0.1, 0.2, 0.3, shift)
        b = sitk.TranslationTransform(3, (10.0, 0.0, -5.0))
        tx = sitk.CompositeTransform([a, b])
    path = tmp_path / f"{kind}{ext}"
    sitk.WriteTransform(tx, str(path))
    m = read_transform(path, source="moving", target="fixed")
    fixed = np.random.default_rng(0).uniform(-100, 100, (15, 3))
    moving = np.array([tx.TransformPoint(tuple(map(float, y))) for y in fixed])
    np.testing.assert_allclose(m.apply(moving), fixed, atol=1e-9)
    assert (m.source, m.target) == ("moving", "fixed")


# ---------------------------------------------------------------------------- bad input
def _tfm(tmp_path: Path, body: str, name: str = "bad.tfm") -> Path:
    p = tmp_path / name
    p.write_text("#Insight Transform File V1.0\n#Transform 0\n" + body)
    return p


def test_non_linear_transform_refused(tmp_path):
    sitk.WriteTransform(sitk.BSplineTransform(3), str(tmp_path / "bs.tfm"))
    with pytest.raises(
        InputError, match=r"bs\.tfm: transform 0 is 'BSplineTransform'; medpose reads linear 3D"
    ):
        read_transform(tmp_path / "bs.tfm", source="a", target="b")
    sitk.WriteTransform(sitk.BSplineTransform(3), str(tmp_path / "bs.h5"))
    with pytest.raises(
        InputError, match=r"bs\.h5: BSplineTransform \(3D\) is not a linear 3D transform"
    ):
        read_transform(tmp_path / "bs.h5", source="a", target="b")


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "Transform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 1 0 0\nFixedParameters: 0 0 0\n",
            r"transform 0 \(AffineTransform_double_3_3\) Parameters has 11 numbers; expected 12",
        ),
        (
            "Transform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 1 0 0 0\nFixedParameters: 0 0\n",
            r"FixedParameters has 2 numbers; expected 3 \(the centre\)",
        ),
        (
            "Transform: Similarity3DTransform_double_3_3\nParameters: 0 0 0 0 0 0\nFixedParameters: 0 0 0\n",
            r"Parameters has 6 numbers; expected 7",
        ),
        (
            "Transform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 nan 0 0 0\nFixedParameters: 0 0 0\n",
            r"transform 0 Parameters has NaN or infinite values",
        ),
        (
            "Transform: AffineTransform_double_2_2\nParameters: 1 0 0 1 0 0\nFixedParameters: 0 0\n",
            r"'AffineTransform_double_2_2', 2D; expected a 3D transform",
        ),
        (
            "Transform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 1 0 x 0\nFixedParameters: 0 0 0\n",
            r"Parameters '1 0 0 0 1 0 0 0 1 0 x 0'; expected numbers",
        ),
        (
            "Transform: AffineTransform_double_3_3\nParameters: 2 0 0 0 1 0 0 0 1 0 0 0\nFixedParameters: 0 0 0\n",
            r"bad\.tfm: Transform\.from_matrix: 3x3 block is not a scaled rotation",
        ),
        (
            "Transform: AffineTransform_double_3_3\nParameters: -1 0 0 0 1 0 0 0 1 0 0 0\nFixedParameters: 0 0 0\n",
            r"determinant -1; a reflection",
        ),
        ("Parameters: 1\n", r"Parameters before any 'Transform:' line"),
        ("#only comments\n", r"no 'Transform:' line"),
    ],
)
def test_malformed_text_files_refused(tmp_path, body, message):
    with pytest.raises(InputError, match=r"bad\.tfm: .*" + message.replace(r"bad\.tfm: ", "")):
        read_transform(_tfm(tmp_path, body), source="a", target="b")


def test_missing_unknown_and_garbage_files(tmp_path):
    with pytest.raises(InputError, match=r"none\.tfm: transform file not found"):
        read_transform(tmp_path / "none.tfm", source="a", target="b")
    (tmp_path / "t.mat").write_text("x")
    with pytest.raises(InputError, match=r"t\.mat: unknown transform file extension '\.mat'"):
        read_transform(tmp_path / "t.mat", source="a", target="b")
    (tmp_path / "g.tfm").write_text("hello\n")
    with pytest.raises(
        InputError, match=r"g\.tfm: first line 'hello'; expected '#Insight Transform File V1\.0'"
    ):
        read_transform(tmp_path / "g.tfm", source="a", target="b")
    (tmp_path / "g.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match=r"g\.h5: SimpleITK cannot read the transform"):
        read_transform(tmp_path / "g.h5", source="a", target="b")
    with pytest.raises(InputError, match=r"o\.mat: unknown transform file extension"):
        write_transform(_random_transform(0), tmp_path / "o.mat")
    with pytest.raises(InputError, match=r"o\.tfm: expected a medpose Transform, found ndarray"):
        write_transform(np.eye(4), tmp_path / "o.tfm")  # type: ignore[arg-type]


def test_frames_mismatch_and_missing_frames_refused(tmp_path):
    path = write_transform(_random_transform(1), tmp_path / "t.tfm")
    with pytest.raises(
        InputError, match=r"t\.tfm: the file records source frame 'LPS'; source='RAS' was asked"
    ):
        read_transform(path, source="RAS")
    with pytest.raises(
        InputError, match=r"t\.tfm: the file records target frame 'camera'; target='LPS' was asked"
    ):
        read_transform(path, target="LPS")
    h5 = write_transform(_random_transform(1), tmp_path / "t.h5")
    with pytest.raises(
        InputError, match=r"t\.h5: the file does not record its source frame; pass source="
    ):
        read_transform(h5)
    bad = Transform(source="a\nb", target="c")
    with pytest.raises(InputError, match=r"x\.tfm: source frame 'a\\nb'; expected a one-line name"):
        write_transform(bad, tmp_path / "x.tfm")
