"""Surface refinement: ICP between a CT/MRI surface and a camera point cloud.

* :func:`extract_surface` - the boundary voxels of a thresholded volume (skin or bone) as LPS
  points with normals.  Thresholding and the boundary are SimpleITK's ``BinaryThreshold`` and
  ``BinaryContour`` filters; normals are the smallest principal axis of each point's
  neighbourhood (local PCA, Hoppe et al. 1992), oriented out of the thresholded region.
* :func:`refine_surface` - trimmed ICP (Chetverikov et al. 2002) from a landmark start,
  point-to-point (Besl & McKay 1992, each step a closed-form Procrustes fit) or point-to-plane
  (Chen & Medioni 1992, each step the linearised least squares of Low 2004), with closest points
  from ``scipy.spatial.cKDTree``.

References
----------
Besl, McKay, "A method for registration of 3-D shapes", IEEE TPAMI 14(2):239-256, 1992.
Chen, Medioni, "Object modelling by registration of multiple range images", Image Vis. Comput.
10(3):145-155, 1992.  Low, "Linear least-squares optimization for point-to-plane ICP surface
registration", UNC TR04-004, 2004.  Chetverikov, Svirko, Stepanov, Krsek, "The trimmed iterative
closest point algorithm", ICPR 2002.  Hoppe et al., "Surface reconstruction from unorganized
points", SIGGRAPH 1992.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ..data import Landmarks
from ..errors import DegenerateConfiguration, FrameMismatch, InputError
from ..geometry import Transform
from .result import Registration
from .solve import procrustes_batch

__all__ = ["Surface", "SurfaceFit", "extract_surface", "refine_surface"]


@dataclass(frozen=True, eq=False, kw_only=True)
class Surface:
    """Surface points and unit normals in one frame.

    Attributes
    ----------
    points : ndarray (M, 3), mm
    normals : ndarray (M, 3), unit, pointing out of the thresholded region
    frame : str
    """

    points: np.ndarray
    normals: np.ndarray
    frame: str = "LPS"

    def __len__(self) -> int:
        return self.points.shape[0]


@dataclass(frozen=True, eq=False, kw_only=True)
class SurfaceFit:
    """Result of :func:`refine_surface`.

    Attributes
    ----------
    transform : Transform
        Refined moving (surface frame) -> fixed (point-cloud frame) transform.
    rms : float
        Surface residual: RMS closest-point distance (mm) over the pairs kept by trimming.
    distances : ndarray (P,)
        Closest-point distance (mm) of every cloud point at the end.
    inliers : ndarray of bool (P,)
        The pairs kept by trimming at the last iteration.
    iterations : int
    converged : bool
    """

    transform: Transform
    rms: float
    distances: np.ndarray
    inliers: np.ndarray
    iterations: int
    converged: bool

    def plot(self, ax: Any = None) -> Any:
        """The closest-point distances (mm) of the cloud's points at the end, as a histogram on
        a matplotlib axis: the pairs kept by trimming and those trimmed, the RMS dashed."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        d = np.asarray(self.distances, dtype=float)
        keep = np.asarray(self.inliers, dtype=bool)
        finite = d[np.isfinite(d)]
        bins = np.linspace(0.0, float(finite.max()) if finite.size else 1.0, 41)
        ax.hist([d[keep], d[~keep]], bins=bins, stacked=True, color=["#4c72b0", "#d62728"],
                label=[f"kept ({int(keep.sum())})", f"trimmed ({int((~keep).sum())})"])  # fmt: skip
        ax.axvline(self.rms, color="black", ls="--", lw=1, label=f"RMS {self.rms:.2f} mm")
        ax.set_xlabel("distance to the surface (mm)")
        ax.set_ylabel("points")
        ax.legend(fontsize="small")
        return ax

    def _repr_html_(self) -> str:
        from ..report.display import surface_fit_html

        return surface_fit_html(self)

    def __repr__(self) -> str:
        return (
            f"SurfaceFit({self.transform.source}->{self.transform.target}, rms={self.rms:.3f} mm, "
            f"{int(self.inliers.sum())}/{len(self.inliers)} pairs, {self.iterations} iterations, "
            f"converged={self.converged})"
        )


def extract_surface(
    volume: Any,
    lower: float,
    upper: float | None = None,
    *,
    max_points: int | None = 50_000,
    neighbours: int = 12,
    seed: int = 0,
) -> Surface:
    """Boundary of ``lower <= value <= upper`` in a volume, as LPS points with normals.

    Parameters
    ----------
    volume : medpose.imaging.volume.Volume
        The CT or MRI (``.to_sitk()`` and ``.index_to_lps``).
    lower, upper : float
        Threshold in the volume's units (e.g. -300 HU for skin, 250 HU for bone); ``upper``
        defaults to the volume's maximum.
    max_points : int or None
        Keep at most this many boundary voxels (a seeded random subset).
    neighbours : int
        Neighbourhood size for the normals (local PCA).
    seed : int

    Returns
    -------
    Surface
        Voxel centres of the region's boundary (``BinaryContour``, face-connected) in LPS.

    Raises
    ------
    InputError
        Non-finite threshold, or no voxel in the threshold range.
    """
    if not np.isfinite(lower) or (upper is not None and (not np.isfinite(upper) or upper < lower)):
        raise InputError(
            f"extract_surface: threshold must be finite with upper >= lower, found {lower!r}, {upper!r}"
        )
    vmin, vmax = float(np.min(volume.array)), float(np.max(volume.array))
    hi = vmax if upper is None else float(upper)
    if lower > vmax or hi < vmin:
        raise InputError(
            f"extract_surface: no surface at threshold [{lower:g}, {hi:g}]: volume values span "
            f"[{vmin:g}, {vmax:g}]"
        )
    image = volume.to_sitk()
    mask = sitk.BinaryThreshold(image, float(lower), hi, 1, 0)
    contour = sitk.BinaryContour(mask, fullyConnected=False, backgroundValue=0, foregroundValue=1)
    kji = np.argwhere(sitk.GetArrayViewFromImage(contour) > 0)
    if len(kji) < 3:
        raise InputError(
            f"extract_surface: no surface at threshold [{lower:g}, {hi:g}]: {len(kji)} boundary voxels; "
            f"volume values span [{vmin:g}, {vmax:g}]"
        )
    ijk = kji[:, ::-1]
    if max_points is not None and len(ijk) > max_points:
        ijk = ijk[np.sort(np.random.default_rng(seed).choice(len(ijk), max_points, replace=False))]
    pts = volume.index_to_lps(ijk.astype(float))
    k = min(neighbours, len(pts))
    _, nb = cKDTree(pts).query(pts, k=k)
    local = pts[nb] - pts[nb].mean(axis=1, keepdims=True)
    _, vec = np.linalg.eigh(local.transpose(0, 2, 1) @ local)
    normals = vec[:, :, 0]
    # orient outwards: one voxel along +normal should leave the region
    inside = sitk.GetArrayViewFromImage(mask).transpose(2, 1, 0)
    step = volume.lps_to_index(pts + normals * float(np.min(volume.spacing)))
    idx = np.clip(np.rint(step).astype(int), 0, np.array(inside.shape) - 1)
    flip = inside[idx[:, 0], idx[:, 1], idx[:, 2]] > 0
    normals[flip] *= -1.0
    return Surface(
        points=pts, normals=normals, frame=volume.frame if hasattr(volume, "frame") else "LPS"
    )


def refine_surface(
    initial: Transform | Registration,
    surface: Surface,
    points: Any,
    *,
    method: str = "point_to_plane",
    overlap: float = 0.9,
    max_iterations: int = 50,
    tolerance: float = 1e-4,
) -> SurfaceFit:
    """Refine a moving -> fixed transform by trimmed ICP of a fixed-frame point cloud to a surface.

    Parameters
    ----------
    initial : Transform or Registration
        Start, e.g. the landmark registration; its source must be the surface's frame.
    surface : Surface
        From :func:`extract_surface` (moving frame, e.g. LPS).
    points : array_like (P, 3) or Landmarks
        The camera-side cloud in the fixed frame (mm).  NaN rows are dropped.
    method : {"point_to_plane", "point_to_point"}
    overlap : float in (0, 1]
        Fraction of cloud points kept at each iteration, those closest to the surface
        (trimmed ICP for partial overlap).
    max_iterations : int
    tolerance : float
        Stop when an update moves every cloud point by less than this (mm).

    Returns
    -------
    SurfaceFit

    Raises
    ------
    FrameMismatch
        The transform's source is not the surface's frame, or Landmarks not in its target frame.
    InputError, DegenerateConfiguration
        Bad method/overlap, or fewer than 6 usable cloud points.
    """
    t0 = initial.transform if isinstance(initial, Registration) else initial
    if t0.source != surface.frame:
        raise FrameMismatch(
            f"refine_surface: the start maps '{t0.source}'->'{t0.target}' but the surface is in "
            f"'{surface.frame}'"
        )
    if isinstance(points, Landmarks):
        if points.frame != t0.target:
            raise FrameMismatch(
                f"refine_surface: the cloud is in '{points.frame}', expected '{t0.target}'"
            )
        points = points.positions
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"refine_surface: points must have shape (P, 3), found {p.shape}")
    p = p[np.all(np.isfinite(p), axis=1)]
    if method not in ("point_to_plane", "point_to_point"):
        raise InputError(
            f"refine_surface: method must be 'point_to_plane' or 'point_to_point', found {method!r}"
        )
    if not 0 < overlap <= 1:
        raise InputError(f"refine_surface: overlap must be in (0, 1], found {overlap!r}")
    keep_n = int(np.ceil(overlap * len(p)))
    if keep_n < 6:
        raise DegenerateConfiguration(
            f"refine_surface: {len(p)} finite cloud points ({keep_n} kept); ICP needs at least 6"
        )
    if t0.scale != 1.0:
        raise InputError(
            "refine_surface: rigid ICP only; the start has a scale of "
            f"{t0.scale:.6g} - apply it to the surface first"
        )
    g = t0.inverse()  # fixed -> moving
    rg, tg = g.rotation.as_matrix(), np.array(g.translation)
    tree = cKDTree(surface.points)
    extent = float(np.sqrt(((p - p.mean(0)) ** 2).sum(1).max()))
    converged, iterations = False, 0
    keep = np.ones(len(p), bool)
    for step in range(1, max_iterations + 1):
        iterations = step
        q = p @ rg.T + tg
        dist, idx = tree.query(q)
        keep = np.zeros(len(p), bool)
        keep[np.argsort(dist, kind="stable")[:keep_n]] = True
        qk, sk = q[keep], surface.points[idx[keep]]
        if method == "point_to_point":
            est = procrustes_batch(sk[None], qk[None], None, False)
            dr, dt = est["R"][0], est["t"][0]
        else:
            nk = surface.normals[idx[keep]]
            c = qk.mean(0)
            qc = qk - c
            a = np.hstack([np.cross(qc, nk), nk])
            rhs = ((sk - qk) * nk).sum(1)
            x = np.linalg.lstsq(a, rhs, rcond=1e-10)[0]
            dr = Rotation.from_rotvec(x[:3]).as_matrix()
            dt = c + x[3:] - dr @ c
        rg, tg = dr @ rg, dr @ tg + dt
        move = np.linalg.norm(dr - np.eye(3), 2) * (
            extent + np.linalg.norm(q.mean(0))
        ) + np.linalg.norm(dt)
        if move < tolerance:
            converged = True
            break
    q = p @ rg.T + tg
    dist, _ = tree.query(q)
    keep = np.zeros(len(p), bool)
    keep[np.argsort(dist, kind="stable")[:keep_n]] = True
    fitted = Transform(Rotation.from_matrix(rg), tg, 1.0, t0.target, t0.source).inverse()
    return SurfaceFit(
        transform=fitted,
        rms=float(np.sqrt(np.mean(dist[keep] ** 2))),
        distances=dist,
        inliers=keep,
        iterations=iterations,
        converged=converged,
    )
