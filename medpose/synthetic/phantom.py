"""A CT-like imaging phantom of a synthetic patient, with its bony landmarks.

The phantom is built from the skeleton in its static (anatomical neutral) pose, the same
pose as the synthetic static trial, so one rigid transform maps every imaging landmark
onto the static-trial landmarks.  Bones are unions of capsules (cylinders with
hemispherical caps) around the segment axes, a cortical shell (~1000 HU) around
cancellous bone (~300 HU); soft tissue (~40 HU) is a union of wider capsules; air is
-1000 HU; Gaussian noise of 20 HU is added (Hounsfield values: e.g. Bushberg et al.,
*The Essential Physics of Medical Imaging*, 3rd ed. 2012, ch. 10: water 0, soft tissue
~+40, bone up to ~+1000, air -1000).  Every bony landmark lies exactly on a bone
surface: a small capsule runs from the segment axis towards the landmark and ends with
its surface at the landmark.

The patient lies supine in the scanner: body superior is imaging S (+z in LPS), body
anterior is imaging A (-y), the patient's right is imaging R (-x), give or take a few
degrees (drawn from the seed).  :attr:`Phantom.image_to_body` is that rigid transform
from ``"LPS"`` to the skeleton's frame ``"skeleton"`` (ISB axes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..data import Landmarks
from ..errors import InputError
from ..geometry import LPS, Transform
from ..imaging.volume import Volume
from ..kinematics.fk import forward_kinematics
from ..kinematics.skeleton import SKELETON_FRAME, Skeleton

__all__ = ["Phantom", "make_phantom", "static_pose", "REGIONS", "BODY", "HU"]

BODY = SKELETON_FRAME  # "skeleton": the skeleton's ISB world frame
#: Hounsfield units used by the phantom.
HU = {"air": -1000, "soft_tissue": 40, "cancellous": 300, "cortical": 1000, "noise_sd": 20}

# Per region: landmarks (bony, on bone surfaces), bones (capsules between keypoints, radius
# mm; "+s" entries are per side), soft tissue (capsules: a, b, minimal radius mm).
REGIONS: dict[str, dict[str, Any]] = {
    "pelvis_legs": dict(
        landmarks=[
            "asis_{s}",
            "psis_{s}",
            "greater_trochanter_{s}",
            "lateral_epicondyle_femur_{s}",
            "medial_epicondyle_femur_{s}",
            "lateral_malleolus_{s}",
            "medial_malleolus_{s}",
        ],
        bones=[
            ("asis_r", "asis_l", 8.0),
            ("psis_r", "psis_l", 8.0),
            ("asis_{s}", "psis_{s}", 10.0),
            ("asis_{s}", "hip_{s}", 14.0),
            ("psis_{s}", "hip_{s}", 14.0),
            ("hip_{s}", "hip_{s}", 22.0),
            ("hip_{s}", "knee_{s}", 13.0),
            ("lateral_epicondyle_femur_{s}", "medial_epicondyle_femur_{s}", 16.0),
            ("knee_{s}", "ankle_{s}", 13.0),
            ("lateral_malleolus_{s}", "medial_malleolus_{s}", 9.0),
        ],
        soft=[
            ("hip_r", "hip_l", 90.0),
            ("pelvis", "asis_r", 60.0),
            ("hip_{s}", "knee_{s}", 65.0),
            ("knee_{s}", "ankle_{s}", 45.0),
        ],
        axes={
            "greater_trochanter_{s}": ("hip_{s}", "knee_{s}"),
            "asis_{s}": ("hip_{s}", "asis_{s}"),
            "psis_{s}": ("hip_{s}", "psis_{s}"),
            "lateral_epicondyle_femur_{s}": ("hip_{s}", "knee_{s}"),
            "medial_epicondyle_femur_{s}": ("hip_{s}", "knee_{s}"),
            "lateral_malleolus_{s}": ("knee_{s}", "ankle_{s}"),
            "medial_malleolus_{s}": ("knee_{s}", "ankle_{s}"),
        },
    ),
    "shoulder_arm": dict(
        landmarks=[
            "acromion_{s}",
            "lateral_epicondyle_humerus_{s}",
            "medial_epicondyle_humerus_{s}",
            "radial_styloid_{s}",
            "ulnar_styloid_{s}",
            "c7",
            "ij",
            "px",
            "t8",
        ],
        bones=[
            ("shoulder_{s}", "shoulder_{s}", 22.0),
            ("shoulder_{s}", "elbow_{s}", 11.0),
            ("lateral_epicondyle_humerus_{s}", "medial_epicondyle_humerus_{s}", 12.0),
            ("elbow_{s}", "radial_styloid_{s}", 7.0),
            ("elbow_{s}", "ulnar_styloid_{s}", 7.0),
            ("ij", "acromion_{s}", 8.0),
            ("acromion_{s}", "shoulder_{s}", 10.0),
            ("ij", "px", 9.0),
            ("c7", "t8", 10.0),
        ],
        soft=[
            ("spine", "neck", 110.0),
            ("acromion_r", "acromion_l", 55.0),
            ("shoulder_{s}", "elbow_{s}", 45.0),
            ("elbow_{s}", "wrist_{s}", 38.0),
        ],
        axes={
            "acromion_{s}": ("neck", "acromion_{s}"),
            "lateral_epicondyle_humerus_{s}": ("shoulder_{s}", "elbow_{s}"),
            "medial_epicondyle_humerus_{s}": ("shoulder_{s}", "elbow_{s}"),
            "radial_styloid_{s}": ("elbow_{s}", "wrist_{s}"),
            "ulnar_styloid_{s}": ("elbow_{s}", "wrist_{s}"),
            "c7": ("spine", "neck"),
            "ij": ("spine", "neck"),
            "px": ("spine", "neck"),
            "t8": ("spine", "neck"),
        },
    ),
}


@dataclass(frozen=True, kw_only=True)
class Phantom:
    """A synthetic CT volume with its true landmarks.

    Attributes
    ----------
    volume : Volume
        int16 Hounsfield units, LPS geometry (identity direction).
    landmarks : Landmarks
        Bony landmarks in ``"LPS"``, mm, on the bone surfaces.
    image_to_body : Transform
        Rigid transform ``"LPS"`` -> ``"skeleton"`` (the skeleton's ISB frame of the static pose).
    region : str
    params : dict
        Spacing actually used, voxel count, HU values, seed.
    """

    volume: Volume
    landmarks: Landmarks
    image_to_body: Transform
    region: str
    params: dict


def static_pose(skeleton: Any) -> tuple[np.ndarray, np.ndarray]:
    """The static trial pose: all angles 0 except 5 deg shoulder abduction, feet on the floor.

    Returns
    -------
    q : ndarray (1, D)
        Angles (deg) and root translation (mm) in the order of ``skeleton.dofs``.
    kp : ndarray (K, 3)
        Keypoints in the body frame, mm (order of ``skeleton.keypoints``).
    """
    dofs = list(skeleton.dof_names)
    q = np.zeros((1, len(dofs)))
    for d in ("shoulder_abduction_r", "shoulder_abduction_l"):
        if d in dofs:
            q[0, dofs.index(d)] = 5.0
    kp = np.asarray(forward_kinematics(skeleton, q))[0]
    names = list(skeleton.keypoint_names)
    feet = [
        i
        for i, n in enumerate(names)
        if n.startswith(("heel_", "big_toe_", "small_toe_", "ankle_"))
    ]
    if "pelvis_ty" in dofs and feet:
        lift = -float(np.min(kp[feet, 1]))
        q[0, dofs.index("pelvis_ty")] = lift
        kp = kp + np.array([0.0, lift, 0.0])
    return q, kp


def expand_sides(items: Sequence[Any]) -> list[Any]:
    """Items with ``{s}`` in their text, once per side (``"r"``, then ``"l"``); others as given.

    An item is a name (``"asis_{s}"``) or a tuple whose string members are formatted.
    """
    out: list[Any] = []
    for it in items:
        text = str(it)
        if "{s}" in text:
            for s in ("r", "l"):
                out.append(
                    tuple(x.format(s=s) if isinstance(x, str) else x for x in it)
                    if isinstance(it, tuple)
                    else it.format(s=s)
                )
        else:
            out.append(it)
    return out


def _capsule_sdf(points: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (mm) of points (..., 3) to the capsule a-b of radius r (negative inside)."""
    ab = b - a
    denom = float(ab @ ab)
    ap = points - a
    h = np.clip((ap @ ab) / denom, 0.0, 1.0) if denom > 0 else np.zeros(points.shape[:-1])
    return np.linalg.norm(ap - h[..., None] * ab, axis=-1) - r


def make_phantom(
    skeleton: Any = None,
    *,
    region: str = "pelvis_legs",
    spacing: Sequence[float] = (0.8, 0.8, 1.5),
    max_voxels: int = 4_000_000,
    seed: int = 0,
    angles: Mapping[str, float] | None = None,
    wobble_deg: float = 3.0,
    shift_mm: float = 20.0,
    noise_hu: float | None = None,
) -> Phantom:
    """Build a CT-like phantom of one body region of the skeleton in its static pose.

    Parameters
    ----------
    skeleton : Skeleton, optional
        Default ``Skeleton.default()``.
    region : {"pelvis_legs", "shoulder_arm"}
        ``pelvis_legs``: pelvis, femurs, tibiae; landmarks ASIS, PSIS, greater trochanters,
        femoral epicondyles, malleoli.  ``shoulder_arm``: shoulder girdle, both arms and the
        upper thorax; landmarks acromia, humeral epicondyles, radial and ulnar styloids,
        C7, IJ, PX, T8.
    spacing : (3,) float
        Finest voxel spacing (mm) along LPS x, y, z.  If the cropped region would need more
        than ``max_voxels`` voxels at this spacing, all three are multiplied by a common
        factor so that it fits (the spacing used is in ``params["spacing_mm"]`` and in the
        volume).
    max_voxels : int
        Cap on the voxel count (default 4 million: builds and writes in about a second).
    seed : int
        Draws the patient's placement on the table (+-``wobble_deg``, +-``shift_mm``) and
        the noise.
    angles : mapping, optional
        Joint angles (deg) by degree-of-freedom name (e.g. ``{"hip_flexion_r": 10}``) added
        to the static pose, for anatomical variety; the landmarks follow.  Unknown names are
        an InputError.
    wobble_deg, shift_mm : float
        Largest rotation about each axis (deg) and shift along each axis (mm) of the
        placement on the table (default 3 deg, 20 mm).
    noise_hu : float, optional
        Standard deviation of the Gaussian noise (HU); default ``HU["noise_sd"]`` (20).

    Returns
    -------
    Phantom

    Raises
    ------
    InputError
        Unknown region (lists the known ones), bad spacing, or a skeleton lacking a
        keypoint the region needs.
    """
    if region not in REGIONS:
        raise InputError(f"make_phantom: unknown region {region!r}; known: {sorted(REGIONS)}")
    sp = np.asarray(spacing, dtype=float).reshape(-1)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(
            f"make_phantom: spacing must be 3 positive numbers (mm), found {list(spacing)}"
        )
    if int(max_voxels) < 1000:
        raise InputError(f"make_phantom: max_voxels must be >= 1000, found {max_voxels!r}")
    skeleton = skeleton if skeleton is not None else Skeleton.default()
    spec = REGIONS[region]
    rng = np.random.default_rng(seed)
    q_static, kp_body = static_pose(skeleton)
    if angles:
        dofs = list(skeleton.dof_names)
        unknown = sorted(set(angles) - set(dofs))
        if unknown:
            raise InputError(f"make_phantom: unknown angles {unknown}; known: {dofs}")
        q = q_static.copy()
        for name, value in angles.items():
            q[0, dofs.index(name)] += float(value)
        kp_body = np.asarray(forward_kinematics(skeleton, q))[0]
    names = list(skeleton.keypoint_names)
    idx = {n: i for i, n in enumerate(names)}
    needed = {x for it in expand_sides(spec["bones"]) + expand_sides(spec["soft"]) for x in it[:2]}
    needed |= set(expand_sides(spec["landmarks"]))
    missing = sorted(needed - set(idx))
    if missing:
        raise InputError(
            f"make_phantom: the skeleton lacks keypoints {missing} needed by region {region!r}"
        )

    # supine placement: body x (anterior) -> LPS -y, body y (superior) -> +z, body z (right) -> -x
    body_to_lps_r = Rotation.from_matrix(
        np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    )
    wobble = Rotation.from_rotvec(np.deg2rad(rng.uniform(-1.0, 1.0, 3) * float(wobble_deg)))
    rot = wobble * body_to_lps_r
    lm_names = expand_sides(spec["landmarks"])
    centre_body = kp_body[[idx[n] for n in lm_names]].mean(axis=0)
    t = (
        rng.uniform(-1.0, 1.0, 3) * float(shift_mm)
        + np.array([0.0, 0.0, -300.0])
        - rot.apply(centre_body)
    )
    body_to_image = Transform(rot, t, source=BODY, target=LPS)
    kp = body_to_image.apply(kp_body)
    p = {n: kp[i] for n, i in idx.items()}

    # bones: listed capsules plus one short capsule per landmark ending on its surface
    lm_set = set(lm_names)
    bones = []
    for a, b, r in expand_sides(
        spec["bones"]
    ):  # a landmark end is pulled in by r: it lies on the cap
        pa, pb = p[a], p[b]
        u = (pb - pa) / max(float(np.linalg.norm(pb - pa)), 1e-9)
        bones.append((pa + r * u if a in lm_set else pa, pb - r * u if b in lm_set else pb, r))
    axes = {
        k2: v2
        for k, v in spec["axes"].items()
        for k2, v2 in (
            [(k.format(s=s), (v[0].format(s=s), v[1].format(s=s))) for s in ("r", "l")]
            if "{s}" in k
            else [(k, v)]
        )
    }
    rad_lm = 6.0
    for n in lm_names:
        a, b = p[axes[n][0]], p[axes[n][1]]
        ab = b - a
        foot = a + np.clip((p[n] - a) @ ab / (ab @ ab), 0, 1) * ab
        direction = p[n] - foot
        dist = float(np.linalg.norm(direction))
        if dist <= rad_lm:
            bones.append(
                (p[n] - np.array([0.0, 0.0, rad_lm]), p[n] - np.array([0.0, 0.0, rad_lm]), rad_lm)
            )
        else:
            end = p[n] - direction / dist * rad_lm
            bones.append((foot, end, rad_lm))
    soft = []
    for a, b, r in expand_sides(spec["soft"]):
        soft.append((p[a], p[b], r))
    # every landmark at least 15 mm under the skin: widen the nearest soft capsule if needed
    lm = np.array([p[n] for n in lm_names])
    for x in lm:
        d = [float(_capsule_sdf(x[None], a, b, r)[0]) for a, b, r in soft]
        k = int(np.argmin(d))
        if d[k] > -15.0:
            a, b, r = soft[k]
            soft[k] = (a, b, r + d[k] + 15.0)

    # grid: the region's bounding box plus a margin, identity direction
    lo = np.min([np.minimum(a, b) - r for a, b, r in soft], axis=0) - 10.0
    hi = np.max([np.maximum(a, b) + r for a, b, r in soft], axis=0) + 10.0
    shape = np.ceil((hi - lo) / sp).astype(int) + 1
    if np.prod(shape.astype(float)) > max_voxels:
        sp = sp * (np.prod(shape.astype(float)) / max_voxels) ** (1.0 / 3.0)
        shape = np.ceil((hi - lo) / sp).astype(int) + 1
        while np.prod(shape.astype(float)) > max_voxels:  # the +1 voxel per axis: a few 1% steps
            sp = sp * 1.01
            shape = np.ceil((hi - lo) / sp).astype(int) + 1
    cortical_mm = max(3.0, float(sp.max()))
    sdf_soft = np.full(tuple(shape), np.inf, dtype=np.float32)
    sdf_bone = np.full(tuple(shape), np.inf, dtype=np.float32)
    for store, caps in ((sdf_soft, soft), (sdf_bone, bones)):
        for a, b, r in caps:
            i0 = np.clip(np.floor((np.minimum(a, b) - r - lo) / sp).astype(int) - 1, 0, shape)
            i1 = np.clip(np.ceil((np.maximum(a, b) + r - lo) / sp).astype(int) + 2, 0, shape)
            if np.any(i1 <= i0):
                continue
            axes_pts = [lo[d] + sp[d] * np.arange(i0[d], i1[d]) for d in range(3)]
            grid = np.stack(np.meshgrid(*axes_pts, indexing="ij"), axis=-1)
            block = (slice(i0[0], i1[0]), slice(i0[1], i1[1]), slice(i0[2], i1[2]))
            store[block] = np.minimum(store[block], _capsule_sdf(grid, a, b, r))
    hu = np.full(tuple(shape), float(HU["air"]), dtype=np.float32)
    hu[sdf_soft <= 0] = HU["soft_tissue"]
    hu[sdf_bone <= 0] = HU["cortical"]
    hu[sdf_bone <= -cortical_mm] = HU["cancellous"]
    noise_sd = float(HU["noise_sd"] if noise_hu is None else noise_hu)
    hu += rng.normal(0.0, noise_sd, size=tuple(hu.shape)).astype(np.float32)
    array = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
    volume = Volume(array, sp, lo, np.eye(3))
    landmarks = Landmarks(tuple(lm_names), lm, frame=LPS)
    params = {
        "region": region,
        "spacing_mm": [float(v) for v in sp],
        "shape": [int(v) for v in shape],
        "voxels": int(np.prod(shape)),
        "cortical_mm": cortical_mm,
        "hu": dict(HU, noise_sd=noise_sd),
        "seed": int(seed),
        "requested_spacing_mm": [float(v) for v in np.asarray(spacing, float)],
    }
    return Phantom(
        volume=volume,
        landmarks=landmarks,
        image_to_body=body_to_image.inverse(),
        region=region,
        params=params,
    )
