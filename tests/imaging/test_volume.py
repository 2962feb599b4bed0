"""Volumes: voxel <-> LPS geometry checked against nibabel, pydicom and SimpleITK on real scanner files."""

from __future__ import annotations

import errno
import gzip
import shutil
import struct
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from scipy.spatial.transform import Rotation

from medpose.errors import InputError
from medpose.imaging import volume as vol_module
from medpose.imaging.volume import Volume, list_dicom_series, read_volume, write_volume
from medpose.io import volume as io_volume

NIB_DATA = Path(nib.__file__).resolve().parent / "tests" / "data"
# Real 3D NIfTI files shipped with nibabel (standard.nii.gz has qform_code 0 and sform_code 2).
NIFTI_3D = [
    "anatomical.nii",
    "reoriented_anat_moved.nii",
    "resampled_anat_moved.nii",
    "standard.nii.gz",
]
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
RAS_TO_LPS_4 = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def nib_data() -> Path:
    if not NIB_DATA.is_dir():  # the dev extra's nibabel wheel ships it
        pytest.fail(f"nibabel's test data folder is missing ({NIB_DATA}): install medpose[dev]")
    return NIB_DATA


def _all_indices(shape) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(
        -1, 3
    )


def _nibabel_lps(img, ijk: np.ndarray) -> np.ndarray:
    ras = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]  # nibabel: index -> RAS mm
    return ras @ RAS_TO_LPS.T


def _oblique_volume(dtype=np.int16) -> Volume:
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 3000, size=(7, 6, 5)).astype(dtype)
    direction = Rotation.from_euler("xyz", [12.0, -25.0, 40.0], degrees=True).as_matrix()
    return Volume(
        arr, spacing=[0.75, 1.25, 2.5], origin=[-120.5, 33.25, -70.0], direction=direction
    )


# ---------------------------------------------------------------------------- NIfTI vs nibabel
@pytest.mark.parametrize("name", NIFTI_3D)
def test_nifti_every_voxel_where_nibabel_puts_it(nib_data, name):
    path = nib_data / name
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error"
        )  # these files have consistent headers: no qform/sform warning
        vol = read_volume(path)
    img = nib.load(str(path))
    assert vol.shape == img.shape
    np.testing.assert_array_equal(vol.array, np.asarray(img.dataobj))  # [i, j, k] order, as nibabel
    ijk = _all_indices(vol.shape)
    np.testing.assert_allclose(vol.index_to_lps(ijk), _nibabel_lps(img, ijk), atol=1e-4)
    np.testing.assert_allclose(vol.affine, RAS_TO_LPS_4 @ img.affine, atol=1e-4)


def test_oblique_real_header_agrees_with_nibabel(nib_data, tmp_path):
    """example4d.nii.gz (a real oblique scan, qform = sform, code 1): its first volume as a 3D file."""
    src = nib.load(str(nib_data / "example4d.nii.gz"))
    img = nib.Nifti1Image(np.asarray(src.dataobj)[..., 0], src.affine, src.header)
    img.header.set_data_shape(img.shape)
    path = tmp_path / "oblique.nii.gz"
    nib.save(img, str(path))
    vol = read_volume(path)
    assert not np.allclose(vol.direction, np.diag(np.diag(vol.direction)))  # truly oblique
    ijk = _all_indices(vol.shape)
    np.testing.assert_allclose(
        vol.index_to_lps(ijk), _nibabel_lps(nib.load(str(path)), ijk), atol=1e-4
    )


@pytest.mark.parametrize("qcode, scode", [(1, 2), (0, 0)])
def test_nifti_qform_sform_conflict_warns(tmp_path, qcode, scode):
    data = np.zeros((4, 5, 6), np.int16)
    q = np.eye(4)
    q[:3, :3] = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    q[:3, 3] = [10, -20, 30]
    s = np.diag([1.0, 1.0, 1.0, 1.0])
    s[:3, 3] = [5, 5, 5]
    img = nib.Nifti1Image(data, None)
    img.set_qform(q, qcode)
    img.set_sform(s, scode)
    path = tmp_path / "conflict.nii"
    nib.save(img, str(path))
    with pytest.warns(
        UserWarning,
        match=rf"conflict\.nii: the NIfTI qform \(code {qcode}\) and sform \(code {scode}\) "
        r"disagree; medpose uses ITK's choice",
    ):
        read_volume(path)


# ---------------------------------------------------------------------------- DICOM vs pydicom
@pytest.fixture()
def ct_file() -> Path:
    p = get_testdata_file("CT_small.dcm")
    if p is None:  # the dev extra's pydicom wheel ships it
        pytest.fail("pydicom's test file CT_small.dcm is missing: install medpose[dev]")
    return Path(p)


def test_dicom_ct_geometry_against_pydicom(tmp_path, ct_file):
    folder = tmp_path / "ct"
    folder.mkdir()
    shutil.copy(ct_file, folder / "slice.dcm")
    ds = pydicom.dcmread(ct_file)
    vol = read_volume(folder)
    assert vol.shape == (int(ds.Columns), int(ds.Rows), 1)
    np.testing.assert_allclose(vol.origin, [float(v) for v in ds.ImagePositionPatient], atol=1e-6)
    # PixelSpacing is (row spacing = along j, column spacing = along i): PS3.3 C.7.6.2.1.1 / 10.7.1.3
    np.testing.assert_allclose(
        vol.spacing[:2], [float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])], atol=1e-6
    )
    np.testing.assert_allclose(
        vol.spacing[2], float(ds.SliceThickness), atol=1e-6
    )  # one slice: 5 mm
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    np.testing.assert_allclose(vol.direction[:, 0], iop[:3], atol=1e-6)
    np.testing.assert_allclose(vol.direction[:, 1], iop[3:], atol=1e-6)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(
        ds.RescaleIntercept
    )  # [row, column] = [j, i]
    np.testing.assert_array_equal(vol.array[:, :, 0], hu.T)
    # a voxel's LPS position per the DICOM Image Plane equation (PS3.3 C.7.6.2.1.1)
    i, j = 17, 93
    expected = (
        np.array([float(v) for v in ds.ImagePositionPatient])
        + iop[:3] * float(ds.PixelSpacing[1]) * i
        + iop[3:] * float(ds.PixelSpacing[0]) * j
    )
    np.testing.assert_allclose(vol.index_to_lps([i, j, 0]), expected, atol=1e-6)


def _write_series(
    ct_file: Path, folder: Path, z_offsets, series_uid: str | None = None, prefix: str = "img"
) -> list[float]:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    for n, dz in enumerate(z_offsets):
        ds = pydicom.dcmread(ct_file)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        pos = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + dz]
        ds.SliceLocation = pos[2] + dz
        ds.PixelData = (
            (ds.pixel_array + int(dz)).astype(ds.pixel_array.dtype).tobytes()
        )  # tag each slice
        ds.save_as(folder / f"{prefix}_{n:02d}.dcm")  # file order differs from position order
    return [float(v) for v in pydicom.dcmread(ct_file).ImagePositionPatient]


def test_dicom_series_sorted_by_position(tmp_path, ct_file):
    origin = _write_series(ct_file, tmp_path / "s", [20.0, 0.0, 10.0, 30.0])
    vol = read_volume(tmp_path / "s")
    assert vol.shape[2] == 4
    np.testing.assert_allclose(vol.spacing[2], 10.0, atol=1e-6)
    np.testing.assert_allclose(vol.origin, origin, atol=1e-6)
    base = vol.array[:, :, 0].astype(int)
    for k in range(4):
        np.testing.assert_array_equal(vol.array[:, :, k].astype(int) - base, 10 * k)


def test_dicom_two_series_refused_then_chosen(tmp_path, ct_file):
    a, b = generate_uid(), generate_uid()
    _write_series(ct_file, tmp_path / "mixed", [0.0, 5.0], series_uid=a, prefix="a")
    _write_series(
        ct_file, tmp_path / "mixed", [0.0, 5.0, 10.0], series_uid=b, prefix="b"
    )  # same folder
    with pytest.raises(
        InputError, match=r"mixed: folder holds 2 DICOM series; pass series_uid= to choose one"
    ) as info:
        read_volume(tmp_path / "mixed")
    assert a not in str(info.value) and str(tmp_path) not in str(info.value)
    assert sorted(list_dicom_series(tmp_path / "mixed")) == sorted([a, b])
    assert read_volume(tmp_path / "mixed", series_uid=a).shape[2] == 2
    assert read_volume(tmp_path / "mixed", series_uid=b).shape[2] == 3
    with pytest.raises(
        InputError, match=r"series_uid '1\.2\.3' not found; the folder holds 2 other series"
    ):
        read_volume(tmp_path / "mixed", series_uid="1.2.3")


def test_empty_folder_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not dicom")
    with pytest.raises(InputError, match=r"empty: folder holds no DICOM series"):
        read_volume(tmp_path / "empty")


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_write_read_round_trip(tmp_path, ext, dtype):
    vol = _oblique_volume(dtype)
    path = write_volume(vol, tmp_path / f"v{ext}")
    back = read_volume(path)
    assert back.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(back.array, vol.array)
    tol = 1e-4 if ext.startswith(".nii") else 1e-9  # NIfTI stores float32 quaternions and offsets
    np.testing.assert_allclose(back.spacing, vol.spacing, atol=tol)
    np.testing.assert_allclose(back.origin, vol.origin, atol=tol)
    np.testing.assert_allclose(back.direction, vol.direction, atol=tol)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_detached_header_formats_write_two_files(tmp_path):
    write_volume(_oblique_volume(), tmp_path / "d.mhd")
    write_volume(_oblique_volume(), tmp_path / "n.nhdr")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 4 and "d.mhd" in names and "n.nhdr" in names
    d_raw = next(n for n in names if n.startswith("d.") and n.endswith(".raw"))
    n_raw = next(n for n in names if n.startswith("n.") and n.endswith(".raw"))
    assert f"ElementDataFile = {d_raw}" in (tmp_path / "d.mhd").read_text()
    assert f"data file: {n_raw}" in (tmp_path / "n.nhdr").read_text()


def test_sitk_round_trip_and_index_maths_match_itk():
    vol = _oblique_volume()
    img = vol.to_sitk()
    assert img.GetSize() == vol.shape
    assert img[3, 2, 1] == vol.array[3, 2, 1]  # SimpleITK indexes images (i, j, k) too
    rng = np.random.default_rng(1)
    ijk = rng.uniform(-2, 8, size=(50, 3))
    itk = np.array([img.TransformContinuousIndexToPhysicalPoint(tuple(map(float, p))) for p in ijk])
    np.testing.assert_allclose(vol.index_to_lps(ijk), itk, atol=1e-9)
    np.testing.assert_allclose(vol.lps_to_index(itk), ijk, atol=1e-9)
    np.testing.assert_allclose(
        vol.index_to_lps(ijk.reshape(5, 10, 3)), itk.reshape(5, 10, 3), atol=1e-9
    )
    back = Volume.from_sitk(img)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_array_equal(back.affine, vol.affine)


def test_volume_is_read_only():
    vol = _oblique_volume()
    with pytest.raises(ValueError):
        vol.array[0, 0, 0] = 1
    with pytest.raises(ValueError):
        vol.origin[0] = 1.0


def test_io_module_reexports():
    assert io_volume.read_volume is read_volume and io_volume.Volume is Volume


# ---------------------------------------------------------------------------- bad input
def test_truncated_nifti(tmp_path, nib_data):
    raw = (nib_data / "anatomical.nii").read_bytes()
    bad = tmp_path / "cut.nii"
    bad.write_bytes(raw[: len(raw) // 2])  # ITK 5.4 alone reads this without error, zero-filled
    with pytest.raises(
        InputError,
        match=r"cut\.nii: truncated NIfTI: 33649 bytes of voxel data after vox_offset 352, the "
        r"header promises 67650 \(\(33, 41, 25\) x >i2\)",
    ) as info:
        read_volume(bad)
    assert str(tmp_path) not in str(info.value)
    bad.write_bytes(raw[:200])  # inside the 348-byte header
    with pytest.raises(InputError, match=r"cut\.nii: could not read NIfTI image"):
        read_volume(bad)


def test_truncated_nifti_gz(tmp_path, nib_data):
    for source in ("standard.nii.gz", "example4d.nii.gz"):
        raw = (nib_data / source).read_bytes()
        bad = tmp_path / "cut.nii.gz"
        bad.write_bytes(raw[: len(raw) * 2 // 3])  # ITK 5.4 alone reads both without error
        with pytest.raises(
            InputError, match=r"cut\.nii\.gz: truncated or corrupt gzip stream \(EOFError"
        ):
            read_volume(bad)


def test_nan_voxels_stay_nan(tmp_path, nib_data):
    """ITK 5 turns NaN in float NIfTI into 0 (ITK PR #6683); missing must stay NaN."""
    vol = read_volume(nib_data / "resampled_anat_moved.nii")  # a real SPM image with 153 NaN voxels
    assert int(np.isnan(vol.array).sum()) == 153
    arr = _oblique_volume(np.float32).array.copy()
    arr[1, 2, 3], arr[0, 0, 0], arr[6, 5, 4] = np.nan, np.inf, -np.inf
    src = Volume(arr, [1, 1, 1], [0, 0, 0], np.eye(3))
    for ext in (".nii", ".nii.gz", ".nrrd", ".mha"):
        np.testing.assert_array_equal(
            read_volume(write_volume(src, tmp_path / f"n{ext}")).array, arr
        )
    nib.save(
        nib.Nifti1Image(arr[..., None], np.eye(4)), str(tmp_path / "one_volume_4d.nii")
    )  # (I, J, K, 1)
    np.testing.assert_array_equal(read_volume(tmp_path / "one_volume_4d.nii").array, arr)


def test_missing_path_and_unknown_extension(tmp_path):
    with pytest.raises(InputError, match=r"nope\.nii\.gz: image file or DICOM folder not found"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")
    with pytest.raises(
        InputError,
        match=r"scan\.png: unknown image extension '\.png'; expected one of .*'\.nii\.gz'",
    ):
        read_volume(tmp_path / "scan.png")
    with pytest.raises(InputError, match=r"out\.dcm: unknown image extension '\.dcm'"):
        write_volume(_oblique_volume(), tmp_path / "out.dcm")


def test_4d_and_vector_images_refused(tmp_path, nib_data):
    with pytest.raises(
        InputError,
        match=r"example4d\.nii\.gz: 4D image of size \(128, 96, 24, 2\); expected a 3D volume",
    ):
        read_volume(nib_data / "example4d.nii.gz")
    vec = sitk.Image([4, 5, 6], sitk.sitkVectorFloat32, 3)
    sitk.WriteImage(vec, str(tmp_path / "vec.mha"))
    with pytest.raises(
        InputError,
        match=r"vec\.mha: vector image with 3 components per voxel; medpose volumes are "
        r"mono-channel only",
    ):
        read_volume(tmp_path / "vec.mha")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(array=np.zeros((2, 2))),
            r"array must be 3D indexed \[i, j, k\], found shape \(2, 2\)",
        ),
        (
            dict(spacing=[1, 0, 1]),
            r"spacing must be 3 finite positive numbers \(mm\), found \[1\.0, 0\.0, 1\.0\]",
        ),
        (dict(origin=[0, np.nan, 0]), r"origin must be 3 finite numbers"),
        (dict(direction=np.zeros((3, 3))), r"direction must be an invertible 3x3 matrix"),
    ],
)
def test_volume_validation(kwargs, message):
    args = dict(array=np.zeros((2, 2, 2)), spacing=[1, 1, 1], origin=[0, 0, 0], direction=np.eye(3))
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        Volume(**args)


def test_index_shape_checked():
    with pytest.raises(InputError, match=r"indices must have shape \(\.\.\., 3\), found \(4, 2\)"):
        _oblique_volume().index_to_lps(np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"points must have shape \(\.\.\., 3\)"):
        _oblique_volume().lps_to_index([1.0, 2.0])


# ---------------------------------------------------------------------------- size and geometry checks
def _nifti_bytes(tmp_path: Path, name: str = "g.nii") -> tuple[Path, bytearray]:
    """A NIfTI-1 written by nibabel (little-endian, sform and qform code 1)."""
    img = nib.Nifti1Image(np.arange(120, dtype=np.int16).reshape(4, 5, 6), np.diag([2.0, 3, 4, 1]))
    img.set_qform(img.affine, 1)
    img.set_sform(img.affine, 1)
    path = tmp_path / name
    nib.save(img, str(path))
    return path, bytearray(path.read_bytes())


def test_written_nifti_has_vox_offset_352_and_nibabel_agrees(tmp_path):
    vol = _oblique_volume()
    for ext in (".nii", ".nii.gz"):
        path = write_volume(vol, tmp_path / f"v{ext}")
        img = nib.load(str(path))
        raw = gzip.decompress(path.read_bytes()) if ext == ".nii.gz" else path.read_bytes()
        assert struct.unpack("<f", raw[108:112])[0] == 352.0  # nifti1.h: vox_offset >= 352
        np.testing.assert_array_equal(np.asarray(img.dataobj), vol.array)
    assert (tmp_path / "v.nii").stat().st_size == 352 + vol.array.nbytes


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_medpose_written_nifti_cut_by_300_bytes_refused(tmp_path, ext):
    vol = Volume(
        np.random.default_rng(0).normal(0, 500, (20, 20, 20)).astype(np.int16),
        [1, 1, 1],
        [0, 0, 0],
        np.eye(3),
    )
    path = write_volume(vol, tmp_path / f"ct{ext}")
    if ext == ".nii":
        path.write_bytes(path.read_bytes()[:-300])
        match = r"ct\.nii: truncated NIfTI: 15700 bytes of voxel data after vox_offset 352, the header promises 16000"
    else:  # a complete gzip stream of a cut .nii, and a cut gzip stream
        raw = gzip.decompress(path.read_bytes())[:-300]
        path.write_bytes(gzip.compress(raw))
        match = r"ct\.nii\.gz: truncated NIfTI: 15700 bytes"
    with pytest.raises(InputError, match=match):
        read_volume(path)
    if ext == ".nii.gz":
        good = write_volume(vol, tmp_path / "ct2.nii.gz").read_bytes()
        path.write_bytes(good[:-300])
        with pytest.raises(InputError, match=r"ct\.nii\.gz: truncated or corrupt gzip stream"):
            read_volume(path)


@pytest.mark.parametrize(
    "offset, fmt, value, message",
    [
        (84, "<f", 0.0, r"NIfTI pixdim\[1:4\] is \[2\.0, 0\.0, 4\.0\]; expected 3 finite positive"),
        (76 + 12, "<f", float("nan"), r"NIfTI pixdim\[1:4\] is \[2\.0, 3\.0, nan\]"),
        (280, "<f", float("nan"), r"NIfTI sform \(sform_code 1\) srow_x/y/z is \[\[nan, "),
        (
            296 + 4,
            "<f",
            0.0,
            r"NIfTI sform \(sform_code 1\) srow_x/y/z is .*expected a finite invertible",
        ),
        (256, "<f", float("nan"), r"NIfTI qform \(qform_code 1\) quatern_b/c/d \[nan, "),
        (256, "<f", 1.5, r"NIfTI qform .*expected finite values and b\^2 \+ c\^2 \+ d\^2 <= 1"),
    ],
)
def test_bad_nifti_geometry_refused(tmp_path, offset, fmt, value, message):
    """nifti1.h byte offsets: pixdim 76, quatern_b 256, srow_x 280, srow_y 296."""
    path, raw = _nifti_bytes(tmp_path)
    if offset == 296 + 4:  # srow_y = 0: a singular sform
        raw[296:312] = struct.pack("<4f", 0, 0, 0, 0)
    else:
        raw[offset : offset + 4] = struct.pack(fmt, value)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"g\.nii: " + message):
        read_volume(path)


def test_nan_sform_with_code_0_is_ignored(tmp_path):
    path, raw = _nifti_bytes(tmp_path)
    raw[254:256] = struct.pack("<h", 0)  # sform_code 0: the qform is used, the sform ignored
    raw[280:284] = struct.pack("<f", float("nan"))
    path.write_bytes(bytes(raw))
    np.testing.assert_allclose(read_volume(path).spacing, [2, 3, 4])


@pytest.mark.parametrize("ext", [".nrrd", ".mha", ".nhdr", ".mhd"])
def test_truncated_nrrd_and_metaimage_refused(tmp_path, ext):
    path = write_volume(_oblique_volume(), tmp_path / f"t{ext}")
    data = path if ext in (".nrrd", ".mha") else next(tmp_path.glob("t.*.raw"))
    data.write_bytes(data.read_bytes()[:-50])
    with pytest.raises(
        InputError, match=r"truncated: \d+ bytes of voxel data in .*, the header promises 420"
    ):
        read_volume(path)


@pytest.mark.parametrize("ext", [".nrrd", ".mha"])
def test_compressed_truncated_or_impossible_size_refused(tmp_path, ext):
    path = write_volume(_oblique_volume(), tmp_path / f"z{ext}", compress=True)
    raw = path.read_bytes()
    path.write_bytes(raw[:-20])
    with pytest.raises(
        InputError, match=r"truncated or corrupt compressed voxel data|truncated: the compressed"
    ):
        read_volume(path)
    field = b"sizes: 7 6 5" if ext == ".nrrd" else b"DimSize = 7 6 5"
    assert field in raw
    path.write_bytes(raw.replace(field, field[:-5] + b"7000 6000 5000"))
    with pytest.raises(
        InputError, match=r"promises 420000000000 bytes of voxels, more than \d+ compressed"
    ):
        read_volume(path)


def test_detached_data_file_must_stay_inside_root(tmp_path):
    write_volume(_oblique_volume(), tmp_path / "d.mhd")
    header = (tmp_path / "d.mhd").read_text()
    line = next(ln for ln in header.splitlines() if ln.startswith("ElementDataFile"))
    (tmp_path / "d.mhd").write_text(header.replace(line, "ElementDataFile = /etc/passwd"))
    with pytest.raises(
        InputError,
        match=r"d\.mhd: ElementDataFile names a data file outside the allowed root folder",
    ) as info:
        read_volume(tmp_path / "d.mhd")
    assert "passwd" not in str(info.value) and "/etc" not in str(info.value)
    # a data file in the parent folder: refused by default, read with root= the parent
    sub = tmp_path / "sub"
    sub.mkdir()
    raw_name = line.split("=")[1].strip()
    (sub / "d.mhd").write_text(header.replace(line, f"ElementDataFile = ../{raw_name}"))
    with pytest.raises(InputError, match=r"ElementDataFile names a data file outside"):
        read_volume(sub / "d.mhd")
    np.testing.assert_array_equal(
        read_volume(sub / "d.mhd", root=tmp_path).array, _oblique_volume().array
    )
    with pytest.raises(InputError, match=r"d\.mhd: lies outside the allowed root folder"):
        read_volume(sub / "d.mhd", root=tmp_path / "elsewhere")
    # a symbolic link inside the folder that leads outside it is refused too
    (sub / "link.raw").symlink_to(tmp_path / raw_name)
    (sub / "d.mhd").write_text(header.replace(line, "ElementDataFile = link.raw"))
    with pytest.raises(InputError, match=r"ElementDataFile names a data file outside"):
        read_volume(sub / "d.mhd")


def test_nrrd_data_file_outside_refused_and_lists_refused(tmp_path):
    write_volume(_oblique_volume(), tmp_path / "n.nhdr")
    text = (tmp_path / "n.nhdr").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("data file:"))
    (tmp_path / "n.nhdr").write_text(text.replace(line, "data file: ../../../../etc/passwd"))
    with pytest.raises(
        InputError, match=r"n\.nhdr: NRRD 'data file' names a data file outside"
    ) as info:
        read_volume(tmp_path / "n.nhdr")
    assert "passwd" not in str(info.value)
    (tmp_path / "n.nhdr").write_text(text.replace(line, "data file: LIST"))
    with pytest.raises(
        InputError, match=r"NRRD 'data file' is 'LIST'...; medpose reads one data file"
    ):
        read_volume(tmp_path / "n.nhdr")


# ---------------------------------------------------------------------------- DICOM checks
def test_dicom_duplicate_slice_positions_refused(tmp_path, ct_file):
    _write_series(ct_file, tmp_path / "dup", [0.0, 5.0, 5.0, 10.0])
    with pytest.raises(
        InputError, match=r"dup: 1 pair\(s\) of slices share the same position .*4 slices"
    ):
        read_volume(tmp_path / "dup")


def test_dicom_missing_slice_refused(tmp_path, ct_file):
    _write_series(ct_file, tmp_path / "gap", [0.0, 5.0, 15.0, 20.0])  # 10 mm is missing
    with pytest.raises(
        InputError, match=r"gap: slice spacing varies from 5 to 10 mm \(median 5 mm over 4 slices\)"
    ):
        read_volume(tmp_path / "gap")


def test_dicom_unreadable_slice_refused(tmp_path, ct_file):
    _write_series(ct_file, tmp_path / "bad", [0.0, 5.0, 10.0, 15.0, 20.0])
    victim = tmp_path / "bad" / "img_02.dcm"  # the slice at 10 mm
    victim.write_bytes(victim.read_bytes()[:300])
    # GDCM leaves the unreadable file out of the series: the gap it leaves is what gives it away
    with pytest.raises(
        InputError,
        match=r"bad: slice spacing varies from 5 to 10 mm \(median 5 mm over 4 slices\); "
        r"expected equal spacing \(a missing or unreadable slice\?\)",
    ):
        read_volume(tmp_path / "bad")


def test_single_dicom_file_reads_like_its_one_file_folder(tmp_path, ct_file):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(ct_file, folder / "CT_small.dcm")
    from_file, from_folder = read_volume(ct_file), read_volume(folder)
    np.testing.assert_array_equal(from_file.array, from_folder.array)
    np.testing.assert_array_equal(from_file.affine, from_folder.affine)
    ds = pydicom.dcmread(ct_file)
    np.testing.assert_allclose(from_file.origin, [float(v) for v in ds.ImagePositionPatient])
    noext = tmp_path / "IM0001"  # no extension: recognised by its DICM preamble
    shutil.copy(ct_file, noext)
    np.testing.assert_array_equal(read_volume(noext).array, from_folder.array)


# ---------------------------------------------------------------------------- atomic writes
def _short_writer(real):
    """SimpleITK's WriteImage as on a full disk: ITK reports nothing and leaves a short file."""

    def write(image, name, useCompression=False):
        real(image, name, useCompression=useCompression)
        stem = Path(name).stem  # .mhd, .nhdr: the data file SimpleITK writes beside the header
        data = [
            f for f in Path(name).parent.iterdir() if f.suffix == ".raw" and f.name.startswith(stem)
        ]
        with open(data[0] if data else name, "r+b") as fh:
            fh.truncate(max(fh.seek(0, 2) - 100, 0))

    return write


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".mha", ".nhdr", ".mhd"])
def test_full_disk_raises_and_keeps_old_file(tmp_path, monkeypatch, ext):
    old = _oblique_volume()
    path = write_volume(old, tmp_path / f"o{ext}")
    before = sorted(p.name for p in tmp_path.iterdir())
    new = Volume(old.array * 2, old.spacing, old.origin, old.direction)
    monkeypatch.setattr(vol_module.sitk, "WriteImage", _short_writer(sitk.WriteImage))
    with pytest.raises(OSError, match=r"short write"):
        write_volume(new, path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing new left over
    np.testing.assert_array_equal(read_volume(path).array, old.array)


def test_gzip_enospc_propagates(tmp_path, monkeypatch):
    old = _oblique_volume()
    path = write_volume(old, tmp_path / "g.nii.gz")

    class FullDisk:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(vol_module.gzip, "GzipFile", FullDisk)
    with pytest.raises(OSError) as info:
        write_volume(Volume(old.array * 2, old.spacing, old.origin, old.direction), path)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    np.testing.assert_array_equal(read_volume(path).array, old.array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.nii.gz"]


@pytest.mark.parametrize("ext", [".nhdr", ".mhd"])
def test_pair_interrupted_before_header_keeps_old_pair(tmp_path, monkeypatch, ext):
    old = _oblique_volume()
    path = write_volume(old, tmp_path / f"p{ext}")
    new = Volume(old.array * 2, old.spacing, old.origin, old.direction)

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", crash)  # after the new data file got its name
    with pytest.raises(KeyboardInterrupt):
        write_volume(new, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_volume(path).array, old.array)
    assert len(list(tmp_path.iterdir())) == 2  # the old pair only
    write_volume(new, path)  # and a complete rewrite replaces the pair and removes the old data
    np.testing.assert_array_equal(read_volume(path).array, new.array)
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize(
    "ext, old, new, message",
    [
        (".mha", b"NDims = 3", b"NDims =93", r"MetaImage NDims is '93' and DimSize has 3 values"),
        (
            ".nrrd",
            b"dimension: 3",
            b"dimension: 2",
            r"NRRD dimension is '2' and sizes has 3 values",
        ),
        (".mha", b"MET_SHORT", b"MET_BOGUS", r"MetaImage ElementType 'MET_BOGUS'; expected one of"),
        (
            ".nrrd",
            b"type: short",
            b"type: quaternion",
            r"NRRD type 'quaternion' is not a known NRRD type",
        ),
        (
            ".nrrd",
            b"sizes: 7 6 5",
            b"sizes: 7 0 5",
            r"NRRD sizes is '7 0 5'; expected positive integers",
        ),
    ],
)
def test_bad_text_header_fields_refused(tmp_path, ext, old, new, message):
    """MetaIO aborts the process (SIGABRT) on NDims 93: such headers are refused before ITK."""
    path = write_volume(_oblique_volume(), tmp_path / f"h{ext}")
    raw = path.read_bytes()
    assert old in raw
    path.write_bytes(raw.replace(old, new, 1))
    with pytest.raises(InputError, match=rf"h\{ext}: " + message):
        read_volume(path)


def test_same_volume_gives_same_bytes(tmp_path):
    """The gzip header carries no temporary file name and no time stamp."""
    a = write_volume(_oblique_volume(), tmp_path / "a.nii.gz").read_bytes()
    b = write_volume(_oblique_volume(), tmp_path / "sub" / "a.nii.gz").read_bytes()
    assert a == b
