"""Image volumes (CT, MRI) with their voxel-to-LPS geometry.

A :class:`Volume` holds a 3D mono-channel array and the ITK/DICOM geometry that places
each voxel in the patient's LPS world (x to the patient's Left, y to Posterior, z to
Superior, millimetres):

.. math::  x_{LPS} = o + D \\, \\mathrm{diag}(s) \\, (i, j, k)^T

with origin ``o``, direction ``D`` (columns = directions of the i, j, k axes in LPS) and
spacing ``s``.  This is the ITK image geometry (ITK Software Guide, section 4.1.4 "Defining
Origin and Spacing" / "Direction"), identical to DICOM's Image Plane module (PS3.3
C.7.6.2.1.1) for a stack of slices.

``Volume.array`` is indexed ``[i, j, k]`` like the ITK index and like nibabel, i.e. it is
the transpose of :func:`SimpleITK.GetArrayFromImage` (which is ``[k, j, i]``).

Reading and writing go through SimpleITK: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``,
``.nhdr``), MetaImage (``.mha``, ``.mhd``) and DICOM series folders.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..io._util import atomic_path, display_name, require_text_path
from ._filecheck import (
    check_payload,
    check_slices,
    inside,
    itk_error,
    meta_payload,
    nifti_header,
    nrrd_payload,
)
from ._volwrite import DETACHED_FIELD, set_vox_offset, sitk_write, verify_written, write_pair

__all__ = [
    "Volume",
    "read_volume",
    "write_volume",
    "list_dicom_series",
    "VOLUME_EXTENSIONS",
]

#: File extensions :func:`read_volume` and :func:`write_volume` accept, with their format.
VOLUME_EXTENSIONS: dict[str, str] = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}


def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(VOLUME_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return "".join(path.suffixes[-2:]).lower() or "(none)"


def _readonly_view(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D mono-channel image and its voxel-to-LPS geometry.

    Parameters
    ----------
    array : ndarray, shape (I, J, K)
        Voxel values indexed ``[i, j, k]`` (ITK index order; the transpose of
        ``SimpleITK.GetArrayFromImage``).  Kept in its own dtype (e.g. int16 for CT) and
        stored as a read-only view (no copy).
    spacing : array_like, shape (3,)
        Distance between voxel centres along i, j, k, millimetres, > 0.
    origin : array_like, shape (3,)
        LPS position of voxel ``[0, 0, 0]``'s centre, millimetres.
    direction : array_like, shape (3, 3)
        Columns are the unit directions of the i, j, k axes in LPS.  Must be invertible.

    Raises
    ------
    InputError
        If the array is not 3D or the geometry is not finite / invertible.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((4, 5, 6), np.int16), spacing=[1, 2, 3], origin=[10, 0, 0], direction=np.eye(3))
    >>> v.index_to_lps([[1, 1, 1]])
    array([[11.,  2.,  3.]])
    >>> v.lps_to_index([11.0, 2.0, 3.0])
    array([1., 1., 1.])
    """

    array: np.ndarray
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(f"Volume: array must be 3D indexed [i, j, k], found shape {arr.shape}")
        spacing = np.asarray(self.spacing, dtype=float).reshape(-1)
        origin = np.asarray(self.origin, dtype=float).reshape(-1)
        direction = np.asarray(self.direction, dtype=float)
        if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            raise InputError(
                f"Volume: spacing must be 3 finite positive numbers (mm), found {spacing.tolist()}"
            )
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise InputError(
                f"Volume: origin must be 3 finite numbers (mm, LPS), found {origin.tolist()}"
            )
        if (
            direction.shape != (3, 3)
            or not np.all(np.isfinite(direction))
            or abs(np.linalg.det(direction)) < 1e-6
        ):
            raise InputError(
                f"Volume: direction must be an invertible 3x3 matrix, found {direction.tolist()}"
            )
        for name, value in (
            ("array", arr),
            ("spacing", spacing),
            ("origin", origin),
            ("direction", direction),
        ):
            object.__setattr__(self, name, _readonly_view(value))

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def frame(self) -> str:
        """Always ``"LPS"``: the frame of :meth:`index_to_lps`."""
        return "LPS"

    @property
    def affine(self) -> np.ndarray:
        """4x4 homogeneous matrix from continuous index ``(i, j, k, 1)`` to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction * self.spacing[None, :]
        m[:3, 3] = self.origin
        return m

    def index_to_lps(self, ijk: Any) -> np.ndarray:
        """LPS position (mm) of continuous voxel indices.

        Parameters
        ----------
        ijk : array_like, shape (..., 3)
            Indices ``(i, j, k)``; integers are voxel centres.

        Returns
        -------
        ndarray, shape (..., 3)
            ``origin + direction @ (spacing * ijk)``.
        """
        ijk = np.asarray(ijk, dtype=float)
        if ijk.shape[-1:] != (3,):
            raise InputError(
                f"Volume.index_to_lps: indices must have shape (..., 3), found {ijk.shape}"
            )
        return ijk @ (self.direction * self.spacing[None, :]).T + self.origin

    def lps_to_index(self, xyz: Any) -> np.ndarray:
        """Continuous voxel indices ``(i, j, k)`` of LPS positions (mm), shape (..., 3) -> (..., 3)."""
        xyz = np.asarray(xyz, dtype=float)
        if xyz.shape[-1:] != (3,):
            raise InputError(
                f"Volume.lps_to_index: points must have shape (..., 3), found {xyz.shape}"
            )
        inv = np.linalg.inv(self.direction * self.spacing[None, :])
        return (xyz - self.origin) @ inv.T

    # ------------------------------------------------------------------ SimpleITK
    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and geometry (bool arrays become uint8)."""
        arr = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)), isVector=False)
        img.SetSpacing(tuple(float(s) for s in self.spacing))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction.reshape(-1)))  # row-major, as ITK
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, *, source: str = "image") -> Volume:
        """Build from a 3D mono-channel SimpleITK image.

        Parameters
        ----------
        image : SimpleITK.Image
            3D image with one component per pixel.
        source : str
            Name used in error messages (a file's display name).

        Raises
        ------
        InputError
            For vector (multi-component) images and images that are not 3D.
        """
        n_comp = image.GetNumberOfComponentsPerPixel()
        if n_comp != 1:
            raise InputError(
                f"{source}: vector image with {n_comp} components per voxel; medpose volumes are "
                "mono-channel only (extract one with SimpleITK.VectorIndexSelectionCast)"
            )
        if image.GetDimension() != 3:
            raise InputError(
                f"{source}: {image.GetDimension()}D image of size {image.GetSize()}; expected a 3D volume"
            )
        arr = sitk.GetArrayViewFromImage(image).transpose(2, 1, 0).copy(order="F")
        direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
        return cls(arr, np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin()), direction)

    def __repr__(self) -> str:
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing={np.round(self.spacing, 4).tolist()} mm, "
            f"origin={np.round(self.origin, 3).tolist()} mm LPS)"
        )

    def _repr_html_(self) -> str:
        from ..report.display_data import volume_html

        return volume_html(self)

    def plot(
        self,
        plane: str = "axial",
        index: int | None = None,
        landmarks: Any = None,
        ax: Any = None,
        **imshow_kwargs: Any,
    ) -> Any:
        """One slice on a matplotlib axis, in LPS millimetres, with the landmarks near it.

        Parameters
        ----------
        plane : {"axial", "coronal", "sagittal"}
            Drawn in the radiological convention: axial as seen from the feet (the patient's
            left on the screen's right, anterior up); coronal as seen from the front (the
            patient's left on the right, superior up); sagittal with anterior on the left and
            superior up.  The slice is the voxel plane across the voxel axis closest to the
            plane's normal (for an oblique volume, its voxel plane drawn square to LPS).
        index : int, optional
            Slice number along that voxel axis, 0 to its size - 1; default the middle one.
        landmarks : Landmarks, optional
            Points in LPS; those inside the volume whose nearest slice is this one (within half
            the slice spacing) are drawn (+) and named at their LPS position.
        ax : matplotlib axis, optional
            Default: the current axis.
        **imshow_kwargs
            Passed to :meth:`matplotlib.axes.Axes.imshow` (default ``cmap="gray"``,
            ``interpolation="nearest"``; e.g. ``vmin=-200, vmax=400`` for a CT window).

        The image's extent is the slice's voxel edges in mm (voxel centres from
        :meth:`index_to_lps`, half a voxel beyond), so one data unit is one mm.  Returns the
        axis.  Raises InputError for an unknown plane or an index outside the volume,
        FrameMismatch for landmarks in a frame other than LPS.
        """
        import matplotlib.pyplot as plt

        from ..report.display_data import volume_plot

        return volume_plot(self, ax or plt.gca(), plane, index, landmarks, **imshow_kwargs)


# ---------------------------------------------------------------------- reading
def list_dicom_series(folder: str | os.PathLike) -> list[str]:
    """SeriesInstanceUIDs of the DICOM series in ``folder`` (not recursive), via GDCM."""
    folder = require_text_path(folder, "DICOM folder")
    if not folder.is_dir():
        raise InputError(f"{display_name(folder)}: DICOM folder not found")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _read_dicom_files(files: list[str], name: str) -> sitk.Image:
    check_slices(files, name)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(
            f"{name}: could not read DICOM ({len(files)} files): {itk_error(exc, Path(files[0]))}"
        ) from None


def _read_dicom_series(folder: Path, series_uid: str | None) -> sitk.Image:
    name = display_name(folder)
    uids = list_dicom_series(folder)
    if not uids:
        raise InputError(
            f"{name}: folder holds no DICOM series; expected the files of one DICOM series "
            f"(or pass a file with one of {sorted(VOLUME_EXTENSIONS)})"
        )
    if series_uid is None:
        if len(uids) > 1:
            raise InputError(
                f"{name}: folder holds {len(uids)} DICOM series; pass series_uid= to choose one "
                "(medpose.imaging.volume.list_dicom_series(folder) lists their UIDs)"
            )
        series_uid = uids[0]
    elif series_uid not in uids:
        raise InputError(
            f"{name}: series_uid {series_uid!r} not found; the folder holds {len(uids)} other series"
        )
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))
    return _read_dicom_files(files, name)


def _nifti_fixups(path: Path, volume: Volume, img: Any) -> Volume:
    """Compare ITK's reading of a NIfTI with nibabel's and repair what ITK 5 loses.

    * Geometry: ITK prefers the sform only when ``sform_code`` is 1 (scanner) or the qform
      is absent; nibabel whenever ``sform_code > 0``; with neither set they also differ.
      A disagreement larger than 1e-3 mm at the volume's corners is warned about.
    * Non-finite voxels: ITK < 6 replaces every NaN and +-Inf of a float NIfTI by 0
      (ITK pull request #6683); they are put back from the file, since NaN means missing.
    """
    corners = (
        np.array(np.meshgrid(*[[0, n - 1] for n in volume.shape], indexing="ij")).reshape(3, -1).T
    )
    lps = (corners @ img.affine[:3, :3].T + img.affine[:3, 3]) * np.array([-1.0, -1.0, 1.0])
    err = float(np.max(np.linalg.norm(lps - volume.index_to_lps(corners), axis=1)))
    if err > 1e-3:
        hdr = img.header
        warnings.warn(
            f"{display_name(path)}: the NIfTI qform (code {int(hdr['qform_code'])}) and sform "
            f"(code {int(hdr['sform_code'])}) disagree; medpose uses ITK's choice, which places voxels "
            f"up to {err:.3g} mm away from where nibabel puts them",
            UserWarning,
            stacklevel=3,
        )
    same_voxels = tuple(img.shape[:3]) == volume.shape and all(
        n == 1 for n in img.shape[3:]
    )  # (I, J, K, 1) too
    if np.issubdtype(volume.array.dtype, np.floating) and same_voxels:
        raw = np.asarray(img.dataobj, dtype=volume.array.dtype).reshape(volume.shape)
        bad = ~np.isfinite(raw)
        if bad.any():
            arr = np.array(volume.array, order="F")
            arr[bad] = raw[bad]
            volume = Volume(arr, volume.spacing, volume.origin, volume.direction)
    return volume


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    with open(path, "rb") as fh:
        fh.seek(128)
        return fh.read(4) == b"DICM"  # the DICOM file meta preamble (PS3.10 7.1)


def read_volume(
    path: str | os.PathLike,
    *,
    series_uid: str | None = None,
    root: str | os.PathLike | None = None,
) -> Volume:
    """Read a 3D image: NIfTI, NRRD, MetaImage file, a DICOM file or a DICOM series folder.

    The file is checked in Python before ITK reads it: voxel bytes against the header (ITK
    5.4 zero-fills a truncated NIfTI, and would allocate whatever size a damaged header
    states), NIfTI geometry fields, the detached data file's location, and the spacing of
    DICOM slices.

    Parameters
    ----------
    path : str or PathLike
        A ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file, a DICOM file
        (``.dcm``, or any file with the ``DICM`` preamble), or a folder of DICOM files.
    series_uid : str, optional
        SeriesInstanceUID to read when the DICOM folder holds several series.
    root : str or PathLike, optional, keyword-only
        Folder that every file read must lie in (symbolic links resolved): ``path`` itself
        and the data file a detached ``.mhd`` (``ElementDataFile``) or ``.nhdr``
        (``data file``) header names.  Default: the folder of ``path``.

    Returns
    -------
    Volume
        Geometry in LPS millimetres, as ITK reads it (NIfTI's RAS header is converted by
        ITK; DICOM slices are sorted by position along the slice normal by GDCM).  NaN and
        +-Inf voxels of float NIfTI files are kept (ITK 5 alone would turn them into 0).
        A single DICOM file is read exactly as a folder holding only that file.

    Raises
    ------
    InputError
        Missing path, ``path`` or its data file outside ``root``, unknown extension,
        unreadable or truncated file, NIfTI pixdim that is zero or not finite, a qform or
        sform in use that is not finite or singular, empty DICOM folder, folder with several
        series and no ``series_uid``, DICOM slices with differing orientation, duplicate
        positions or uneven spacing, vector or non-3D image.

    Warns
    -----
    UserWarning
        For a NIfTI whose qform and sform disagree so that ITK and nibabel would place the
        voxels differently.
    """
    p = require_text_path(path, "image path")
    name = display_name(p)
    if not p.exists():
        raise InputError(f"{name}: image file or DICOM folder not found")
    top = Path(root) if root is not None else (p if p.is_dir() else p.parent)
    if root is not None and not inside(p, top):
        raise InputError(f"{name}: lies outside the allowed root folder given to read_volume")
    if p.is_dir():
        return Volume.from_sitk(_read_dicom_series(p, series_uid), source=name)
    ext = _extension(p)
    if ext not in VOLUME_EXTENSIONS and p.is_file() and _is_dicom_file(p):
        return Volume.from_sitk(_read_dicom_files([str(p)], name), source=name)
    if ext not in VOLUME_EXTENSIONS:
        raise InputError(
            f"{name}: unknown image extension {ext!r}; expected one of {sorted(VOLUME_EXTENSIONS)}, "
            "a DICOM file or a DICOM series folder"
        )
    if not p.is_file():
        raise InputError(f"{name}: not a regular file")
    fmt = VOLUME_EXTENSIONS[ext]
    nifti = nifti_header(p) if fmt == "NIfTI" else None
    if fmt in ("NRRD", "MetaImage"):
        payload = nrrd_payload(p, top) if fmt == "NRRD" else meta_payload(p, top)
        check_payload(p, payload)
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(f"{name}: could not read {fmt} image: {itk_error(exc, p)}") from None
    volume = Volume.from_sitk(image, source=name)
    if nifti is not None:
        volume = _nifti_fixups(p, volume, nifti)
    return volume


# ---------------------------------------------------------------------- writing
def write_volume(volume: Volume, path: str | os.PathLike, *, compress: bool = False) -> Path:
    """Write a volume as NIfTI, NRRD or MetaImage, atomically.

    * Single files (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``): written to a temporary file
      beside ``path``, checked for all their voxel bytes (ITK does not report a full disk),
      synced and renamed onto ``path`` (:func:`medpose.io._util.atomic_path`).  NIfTI files
      get ``vox_offset = 352`` (ITK leaves 0); ``.nii.gz`` is compressed by Python's gzip
      from ITK's checked ``.nii``.
    * Header + data pairs (``.mhd``, ``.nhdr``): the data file is written under a new unique
      name (``<stem>.<8 hex digits>.raw``, ``.zraw`` or ``.raw.gz``), then the header that
      names it replaces the old header atomically, then the old header's data file is
      removed.  A crash at any point leaves a consistent old or new pair (plus at most an
      unreferenced data file).

    Parameters
    ----------
    volume : Volume
    path : str or PathLike
        Output file; its extension picks the format (see :data:`VOLUME_EXTENSIONS`).
    compress : bool
        Ask the writer to compress the pixel data (``.nii.gz`` is always compressed).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        Unknown extension or a write that SimpleITK refuses.
    OSError
        A full disk or another file-system error, unchanged (``path`` keeps its old content).
    """
    p = require_text_path(path, "image path")
    name = display_name(p)
    ext = _extension(p)
    if ext not in VOLUME_EXTENSIONS:
        raise InputError(
            f"{name}: unknown image extension {ext!r}; expected one of {sorted(VOLUME_EXTENSIONS)}"
        )
    fmt = VOLUME_EXTENSIONS[ext]
    image = volume.to_sitk()
    nbytes = image.GetNumberOfPixels() * image.GetSizeOfPixelComponent()
    p.parent.mkdir(parents=True, exist_ok=True)
    if ext in DETACHED_FIELD:
        write_pair(image, p, ext, fmt, compress, nbytes)
        return p
    with atomic_path(p, suffix=ext) as tmp:
        target = tmp.with_name(tmp.name[: -len(".gz")]) if ext == ".nii.gz" else tmp
        try:
            sitk_write(image, target, fmt, compress and fmt != "NIfTI", name)
            verify_written(target, fmt, p.parent, nbytes)
            if fmt == "NIfTI":
                set_vox_offset(target)
            if ext == ".nii.gz":
                # no file name and mtime 0 in the gzip header: the same volume gives the same bytes
                with (
                    open(target, "rb") as src,
                    open(tmp, "wb") as raw,
                    gzip.GzipFile(
                        filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0
                    ) as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            if target != tmp:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
    return p
