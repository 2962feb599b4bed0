"""Where each frame's solve starts, and which of equally good solutions is kept.

* :func:`rigid_init`: a weighted Kabsch (1976) fit of the zero-pose trunk and pelvis keypoints,
  the rotation taken by :func:`polar` (Higham 1986), gives every frame's root pose.
* :func:`interpolate`: frames between solved ones start from their neighbours' solution.
* :func:`branch_moves` / :func:`choose_branches`: a ball joint's Euler angles have two branches
  (and a segment's half turn about its own axis can move nothing the keypoints see); among poses
  that fit equally well the one whose joint rotations are nearest the neutral pose's (smallest
  rotation angles) is kept.
* :func:`repair`: frames left in a local minimum are restarted from their rigid start or a
  neighbour's solution.
* :func:`despike`: a run of frames on another, equally good solution than the frames around
  it is solved again from its nearest regular frame.
* :func:`neighbours`: the mean of the neighbouring frames, for the temporal smoothness term.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..skeleton import Skeleton
from .context import Context
from .orientation import euler_from_matrix
from .solver import Priors, solve
from .stuck import frame_rms, keypoint_median, put, restart_odd

__all__ = [
    "polar",
    "rigid_init",
    "branch_moves",
    "apply_move",
    "fits_as_well",
    "choose_branches",
    "frame_rms",
    "put",
    "jumps",
    "keypoint_median",
    "repair",
    "despike",
    "drop_outliers",
    "solve_held",
    "outliers",
    "interpolate",
    "neighbours",
]


def polar(M: torch.Tensor, iters: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal polar factor of 3x3 matrices ``M`` (T, 3, 3) by scaled Newton iteration.

    ``X <- (g X + X^-T / g) / 2`` with ``g = (|X^-1|_F / |X|_F)^(1/2)`` (Higham 1986, SIAM J Sci
    Stat Comput 7:1160-1174, eqs. 3.1 and 3.3; ``X^-T`` from the cofactor matrix, all
    elementwise).  For ``M = H^T`` with ``det H > 0`` this is the Kabsch rotation ``V U^T``;
    ``ok`` (T,) is False where ``det M`` is not clearly positive (reflection, rank < 3) or the
    iteration has not settled, for the caller to solve by SVD.
    """
    scale = torch.linalg.matrix_norm(M).clamp(min=1e-30)[:, None, None]
    X = M / scale
    det0 = torch.linalg.det(X)
    for _ in range(iters):
        c = torch.stack(
            [
                torch.linalg.cross(X[:, 1], X[:, 2]),
                torch.linalg.cross(X[:, 2], X[:, 0]),
                torch.linalg.cross(X[:, 0], X[:, 1]),
            ],
            dim=1,
        )  # cofactors
        det = (X[:, 0] * c[:, 0]).sum(dim=1)[:, None, None]
        Xit = c / det  # X^-T
        g = torch.sqrt(torch.linalg.matrix_norm(Xit) / torch.linalg.matrix_norm(X))[:, None, None]
        X = 0.5 * (g * X + Xit / g)
    eye = torch.eye(3, dtype=M.dtype, device=M.device)
    orth = torch.linalg.matrix_norm(X.transpose(1, 2) @ X - eye) < 1e-4
    ok = (det0 > 1e-6) & orth & torch.isfinite(X).all(dim=(1, 2))
    return torch.where(ok[:, None, None], X, eye), ok


#: A trunk template whose third singular value is at most this share of its first is taken
#: as planar and projected onto its plane for the rigid start: nearly planar (a calibrated
#: skeleton's trunk keypoints, 0.7 mm off the plane on a synthetic gait), the cross-covariance
#: was too close to rank 2 for the polar iteration in 71 % of the frames, which fell back to a
#: batched SVD (about 19 ms per call for a million frames on an H100).
PLANAR = 0.02


def rigid_init(
    ctx: Context,
    template: torch.Tensor,
    torso: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    root_seq: str,
    root_sign: torch.Tensor,
    root_rot: torch.Tensor,
    trans: torch.Tensor,
    D: int,
):
    """q0 (T, D) from a weighted Kabsch fit of the zero-pose trunk/pelvis keypoints; ok (T,)."""
    wt = w[:, torso]  # (T, M)
    P = template[torso]  # (M, 3)
    _, sv, vh = torch.linalg.svd(P - P.mean(dim=0))  # one small SVD: is the template planar?
    planar = sv.numel() == 3 and bool(sv[2] <= PLANAR * sv[0])
    if planar:  # onto its plane (a calibrated trunk's keypoints lie within a mm or so of it)
        P = P - ((P - P.mean(dim=0)) @ vh[2])[:, None] * vh[2][None]
    Q = x_obs[:, torso]
    ws = wt.sum(dim=1, keepdim=True).clamp(min=1e-12)
    pc = (wt @ P) / ws  # (T, 3)
    qc = (wt[..., None] * Q).sum(dim=1) / ws
    Hm = torch.einsum("tm,tmi,tmj->tij", wt, P[None] - pc[:, None], Q - qc[:, None])
    M = Hm.transpose(1, 2)
    if planar:
        # planar template (normal n = u x v): M n = 0, so M + (M u x M v) n^T / |M| = R (S + det(S) / |M| n n^T)
        # has the same rotation factor and full rank
        u, v, n = vh[0], vh[1], torch.linalg.cross(vh[0], vh[1])
        c = torch.linalg.cross(M @ u, M @ v) / torch.linalg.matrix_norm(M).clamp(min=1e-30)[:, None]
        M = M + c[:, :, None] * n[None, None, :]
    Rr, ok_polar = polar(M)  # template -> observed
    hard = torch.nonzero(~ok_polar)[:, 0]
    if hard.numel():  # reflections, near-degenerate
        U, _, Vh = torch.linalg.svd(Hm[hard])
        d = torch.sign(torch.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
        d = torch.where(d == 0, torch.ones_like(d), d)
        Dm = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
        Rr[hard] = Vh.transpose(1, 2) @ Dm @ U.transpose(1, 2)
    t = qc - (Rr @ pc[..., None])[..., 0]
    q0 = x_obs.new_zeros(x_obs.shape[0], D)
    ang = torch.rad2deg(euler_from_matrix(Rr, root_seq)) * root_sign
    q0[:, root_rot] = ang
    q0[:, trans] = t
    ok = (wt > 0).sum(dim=1) >= 3
    return q0, ok


def branch_moves(sk: Skeleton, free: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Re-parametrisations of a ball joint that leave its segment's (and children's) pose unchanged.

    For ``R = R_i(a) R_j(b) R_k(c)``: the other Euler branch ``(a + 180, 180 - b, c + 180)``
    (Diebel 2006, sec. 5) gives the same rotation; a half turn of the segment about its own
    last axis ``k`` with each child joint re-expressed (``R_k(180) R_u(d) R_v(e) R_k(f) =
    R_u(-d) R_v(-e) R_k(f + 180)`` for the child's axes ``u, v`` perpendicular to ``k``) moves
    nothing but what turns with it about that axis; they compose.  Returned per move: DoF
    columns, per-column multiplier (+-1) and offset (degrees, in the DoF's own sign), applied
    as ``q' = m q + c``.  Whether a move is exact for the keypoints at hand (a child keypoint
    off the axis, a child DoF held fixed) is not assumed: :func:`choose_branches` compares costs.
    """
    moves = []
    idx, sign = sk.joint_dof_index, sk.joint_dof_sign
    for s, seq in enumerate(sk.sequences):
        if sk.parent_index[s] < 0 or not all(idx[s] >= 0) or not free[idx[s]].all():
            continue
        # Euler twin: raw (a, b, c) -> (a + 180, 180 - b, c + 180); in DoF units q = raw * sign
        twin = (
            list(idx[s]),
            [1.0, -1.0, 1.0],
            [180.0 * sign[s, 0], 180.0 * sign[s, 1], 180.0 * sign[s, 2]],
        )
        k = seq[2]
        flip_c, flip_m, flip_o = [int(idx[s, 2])], [1.0], [180.0 * sign[s, 2]]
        for c in np.flatnonzero(sk.parent_index == s):
            for j, ax in enumerate(sk.sequences[c]):
                d = int(idx[c, j])
                if d < 0 or not free[d]:
                    continue
                flip_c.append(d)
                flip_m.append(1.0 if ax == k else -1.0)
                flip_o.append(180.0 * sign[c, j] if ax == k else 0.0)
        flip = (flip_c, flip_m, flip_o)
        both_c = list(flip_c)
        both_m, both_o = list(flip_m), list(flip_o)
        for d, m, o in zip(*twin):
            if d in both_c:  # compose on the shared column
                n = both_c.index(d)
                both_m[n], both_o[n] = both_m[n] * m, m * both_o[n] + o
            else:
                both_c.append(d)
                both_m.append(m)
                both_o.append(o)
        for c_, m_, o_ in (twin, flip, (both_c, both_m, both_o)):
            moves.append((np.array(c_), np.array(m_), np.array(o_)))
    return moves


def _wrap_into(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The 360-degree equivalent of ``v`` inside ``[lo, hi]`` where there is one."""
    v = torch.remainder(v + 180.0, 360.0) - 180.0
    v = torch.where(v > hi, v - 360.0, v)
    return torch.where(v < lo, v + 360.0, v)


def apply_move(q: torch.Tensor, move, lo: torch.Tensor, hi: torch.Tensor):
    """``q`` (T, D) with a move of :func:`branch_moves` applied (each angle wrapped into its
    limits where a 360-degree equivalent is inside them), and where it is inside them (T,)."""
    cols, mult, off = move
    c = torch.as_tensor(cols, device=q.device)
    v = _wrap_into(
        q[:, c] * torch.as_tensor(mult, device=q.device, dtype=q.dtype)
        + torch.as_tensor(off, device=q.device, dtype=q.dtype),
        lo[c],
        hi[c],
    )
    moved = q.clone()
    moved[:, c] = v
    return moved, ((v >= lo[c]) & (v <= hi[c])).all(dim=1)


def fits_as_well(cost_new: torch.Tensor, cost: torch.Tensor, n_keypoints: int) -> torch.Tensor:
    """Where a moved pose's keypoint cost is no higher than ``cost`` beyond rounding."""
    return cost_new <= cost * (1.0 + 1e-5) + 1e-6 * n_keypoints


def choose_branches(
    ctx: Context,
    moves,
    q: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    mu: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Among poses that fit the keypoints equally well, keep the one nearest the neutral pose.

    Each move of :func:`branch_moves` is tried on every frame; it is taken where it stays
    inside the hard limits, does not raise the keypoint cost (beyond rounding) and brings the
    joints it changes nearer neutral: a smaller sum of squared rotation angles between each
    joint's rotation and its rotation at ``mu`` (the geodesic distance; Euler angles are no
    measure of it).  Between two valid branches this is a convention, not always the clinical
    reading: a straight arm raised in the scapular plane by flexion 164 with abduction 26 and
    the elbow at 5 is a 164-degree rotation, its twin turned half about the humerus (flexion
    -16, abduction 154, the elbow at its -5 limit) a 154-degree one, kept where it is inside
    the limits.
    Returns the new q and a mask of the frames that changed.
    """
    changed = torch.zeros(q.shape[0], dtype=torch.bool, device=q.device)
    if not moves or q.shape[0] == 0:
        return q, changed
    sw = torch.sqrt(w)[..., None]
    x = ctx.keypoints_at(q)
    cost = ((sw * (x - x_obs)) ** 2).sum(dim=(1, 2))
    sk = ctx.sk
    dof_seg = np.full(len(sk.dof_names), -1)
    for seg, dofs in enumerate(sk.joint_dof_index):
        dof_seg[dofs[dofs >= 0]] = seg
    J0 = _joint_rotations(ctx, mu[None])[0]  # (S, 3, 3) at neutral, level order
    for move in moves:
        segs = ctx.pos[torch.as_tensor(np.unique(dof_seg[move[0]]), device=q.device)]
        moved, inside = apply_move(q, move, lo, hi)
        sel = torch.nonzero(inside)[:, 0]
        if sel.numel() == 0:
            continue
        qn = moved[sel]
        nearer = _from_neutral(ctx, qn, J0, segs) < _from_neutral(ctx, q[sel], J0, segs) - 1e-9
        sel, qn = sel[nearer], qn[nearer]
        if sel.numel() == 0:
            continue
        cn = ((sw[sel] * (ctx.keypoints_at(qn) - x_obs[sel])) ** 2).sum(dim=(1, 2))
        ok = fits_as_well(cn, cost[sel], x_obs.shape[1])
        take = sel[ok]
        q = q.index_put((take,), qn[ok])
        cost = cost.index_put((take,), cn[ok])
        changed[take] = True
    return q, changed


def _joint_rotations(ctx: Context, q: torch.Tensor) -> torch.Tensor:
    """Each joint's rotation (child relative to parent), (T, S, 3, 3), level order."""
    E = ctx.poses(q)[0]
    return E[:, 0] @ E[:, 1] @ E[:, 2]


def _from_neutral(ctx: Context, q: torch.Tensor, J0: torch.Tensor, segs: torch.Tensor):
    """Sum over the joints ``segs`` of the squared angle (rad) of their rotation from ``J0``."""
    J = _joint_rotations(ctx, q)[:, segs]
    cos = ((J0[segs][None] * J).sum(dim=(-1, -2)) - 1.0) / 2.0  # trace(J0^T J)
    return (torch.arccos(cos.clamp(-1.0, 1.0)) ** 2).sum(dim=1)


#: A restart is kept where it lowers the frame's residual by at least this factor.
_GAIN = 0.99
#: A keypoint whose residual exceeds this many times its median over the frames (plus
#: :data:`_ALONE_MM`) marks its frame as stuck, even when the frame's RMS looks fine.
_ALONE = 3.0
_ALONE_MM = 3.0


def _residuals(x: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per keypoint distance (T, K) of fitted to observed, NaN where not observed."""
    d = torch.sqrt(((x - x_obs) ** 2).sum(dim=2))
    return torch.where(w > 0, d, torch.full_like(d, float("nan")))


def off_alone(x: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Frames where one keypoint is far off while the others fit: a limb settled on another
    solution (an elbow flexed the other way with the forearm turned) that the frame's RMS over
    every keypoint hides.  Per frame, True where some observed keypoint's residual exceeds
    ``_ALONE`` times its own median over the frames plus ``_ALONE_MM``."""
    d = _residuals(x, x_obs, w)
    med = keypoint_median(d)  # (K,)
    return (d > _ALONE * med + _ALONE_MM).any(dim=1)


def repair(
    ctx: Context,
    q,
    x,
    conv,
    x_obs,
    w,
    lo,
    hi,
    pri: Priors,
    n_var: int,
    sigma: float,
    xtol: float,
    max_iter: int,
    passes: int | None = None,
    q_rigid: torch.Tensor | None = None,
    odd: bool = True,
):
    """Restart frames stuck in a local minimum (residual above ``3 sigma + 0.5`` mm), keeping
    whichever fits better: first from their own rigid start ``q_rigid`` (a frame interpolated
    across a jump in the data, e.g. a tracking glitch, starts far off), then from the solution
    of a neighbouring frame that fits.  Frames are in time order, so a run of stuck frames is
    repaired from its ends, one frame per pass, until a pass repairs none (or after ``passes``;
    default: as many as there are frames)."""
    if q_rigid is not None:
        rms = frame_rms(x, x_obs, w, n_var)
        bad = ~(rms <= 3.0 * sigma + 0.5)
        if bool(bad.any()) and not bool(bad.all()):
            idx = torch.nonzero(bad)[:, 0]
            qn, xn, cn = solve(
                ctx,
                q_rigid[idx],
                x_obs[idx],
                w[idx],
                lo,
                hi,
                pri,
                max_iter=max_iter,
                xtol=xtol,
                lam0=1e-3,
            )
            better = frame_rms(xn, x_obs[idx], w[idx], n_var) < rms[idx]
            take = idx[better]
            q, x, conv = put(q, x, conv, take, qn[better], xn[better], cn[better])
    if odd:  # frames clearly worse than their neighbours (:mod:`.stuck`)
        q, x, conv = restart_odd(ctx, q, x, conv, x_obs, w, lo, hi, pri, n_var, xtol, max_iter)
    # a frame that failed from an unchanged neighbour fails again: it is retried only once that
    # neighbour changed (same result as retrying it, at a fraction of the cost: on a noise-free
    # trial most of a pass's frames were such retries)
    failed = torch.zeros(q.shape[0], dtype=torch.bool, device=q.device)
    for _ in range(q.shape[0] if passes is None else passes):
        rms = frame_rms(x, x_obs, w, n_var)
        bad = ~(rms <= 3.0 * sigma + 0.5) | off_alone(x, x_obs, w)
        if not bool(bad.any()) or bool(bad.all()):
            break
        idx = torch.nonzero(bad)[:, 0]
        prev_ok = (idx > 0) & ~bad[(idx - 1).clamp(min=0)]
        nxt = (idx + 1).clamp(max=q.shape[0] - 1)
        next_ok = (idx < q.shape[0] - 1) & ~bad[nxt]
        use = (prev_ok | next_ok) & ~failed[idx]
        if not bool(use.any()):
            break
        idx = idx[use]
        src = torch.where(prev_ok[use], idx - 1, nxt[use])
        qn, xn, cn = solve(
            ctx, q[src], x_obs[idx], w[idx], lo, hi, pri, max_iter=max_iter, xtol=xtol
        )
        better = frame_rms(xn, x_obs[idx], w[idx], n_var) < _GAIN * rms[idx]
        take = idx[better]
        if take.numel() == 0:
            break
        q, x, conv = put(q, x, conv, take, qn[better], xn[better], cn[better])
        failed[idx[~better]] = True
        # a changed frame's neighbours are tried again (from it, or it was their source)
        failed[(take - 1).clamp(min=0)] = False
        failed[(take + 1).clamp(max=q.shape[0] - 1)] = False
    return q, x, conv


def _nearest(good: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """For each frame ``idx``, the nearest of the frames ``good`` (sorted; the earlier on a tie)."""
    k = torch.searchsorted(good, idx).clamp(max=good.numel() - 1)
    before, after = good[(k - 1).clamp(min=0)], good[k]
    return torch.where((idx - before).abs() <= (after - idx).abs(), before, after)


def jumps(q: torch.Tensor, jump: float, half: int) -> torch.Tensor:
    """Frames (T,) where some column of ``q`` (T, C) is more than ``jump`` from its running
    median over ``2 half + 1`` frames (the ends repeated).  The median is one of its window's
    values, so only a frame more than ``jump`` from its window's minimum or maximum (a max-pool)
    can be that far from it; the sorting median is taken for those only (over a million frames,
    the max-pools take a fraction of its time)."""
    padded = torch.cat([q[:1].expand(half, -1), q, q[-1:].expand(half, -1)])
    pool = lambda a: torch.nn.functional.max_pool1d(a.T[None], 2 * half + 1, 1)[0].T  # noqa: E731
    near = (pool(padded) - q <= jump) & (q + pool(-padded) <= jump)
    cand = torch.nonzero(~near.all(dim=1))[:, 0]
    bad = torch.zeros(q.shape[0], dtype=torch.bool, device=q.device)
    if cand.numel():
        win = padded.unfold(0, 2 * half + 1, 1)[cand]  # (n, C, 2 half + 1)
        bad[cand] = ((q[cand] - win.median(dim=-1).values).abs() > jump).any(dim=1)
    return bad


def despike(
    ctx: Context,
    q,
    x,
    conv,
    x_obs,
    w,
    lo,
    hi,
    pri: Priors,
    n_var: int,
    xtol: float,
    max_iter: int,
    rot: torch.Tensor,
    jump: float = 120.0,
    half: int = 15,
):
    """Re-solve frames that jump off their neighbourhood onto another, equally good solution.

    A straight arm overhead is reached by flexion or by abduction with the humerus turned
    about its own axis, which the keypoints barely see; :func:`choose_branches` only knows the
    exact Euler twins, so a run of frames (e.g. restarted by :func:`repair` from the rigid
    start, arms down) can settle on the other path.  Frames where a bounded rotational DoF is
    more than ``jump`` degrees from its running median over ``2 half + 1`` frames are solved
    again from the nearest frame that is not; the new solution is kept where it fits better
    (as :func:`repair` does): a genuine fast movement re-solved from a neighbour returns to
    itself.  Frames are in time order."""
    T = q.shape[0]
    cols = rot & ((hi - lo) < 359.0)  # a DoF with a full turn of range may wrap legitimately
    if T < 3 or not bool(cols.any()):
        return q, x, conv
    bad = jumps(q[:, cols], jump, half)
    if not bool(bad.any()) or bool(bad.all()):
        return q, x, conv
    idx = torch.nonzero(bad)[:, 0]
    good = torch.nonzero(~bad)[:, 0]
    src = _nearest(good, idx)
    qn, xn, cn = solve(ctx, q[src], x_obs[idx], w[idx], lo, hi, pri, max_iter=max_iter, xtol=xtol)
    rms = frame_rms(x[idx], x_obs[idx], w[idx], n_var)
    ok = frame_rms(xn, x_obs[idx], w[idx], n_var) <= rms * 1.005 + 0.01
    take = idx[ok]
    q, x, conv = put(q, x, conv, take, qn[ok], xn[ok], cn[ok])
    return q, x, conv


#: A keypoint is a gross outlier in a frame (a wrong triangulation, a tracking glitch) where
#: its residual exceeds both this many mm and :data:`OUTLIER_FACTOR` times its own median
#: residual over the frames.
OUTLIER_MM = 50.0
OUTLIER_FACTOR = 4.0
#: At most this share of a frame's observed keypoints is dropped as outliers; a frame with
#: more is left as it is (its pose, not a few points, is off: :func:`repair`'s case).
OUTLIER_SHARE = 0.25
#: Weight (mm per degree, mm per mm) of the temporal prior that holds an outlier frame's DoFs
#: near its neighbours' (see :func:`drop_outliers`).
OUTLIER_HOLD = 0.5


def gross(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals ``d`` (T, K) mm (NaN where a keypoint is not observed) above both
    :data:`OUTLIER_MM` and :data:`OUTLIER_FACTOR` times the keypoint's median over the frames
    (T, K), and the frames (T,) where more than :data:`OUTLIER_SHARE` of the observed keypoints
    are."""
    med = keypoint_median(d)  # (K,)
    out = d > torch.clamp(OUTLIER_FACTOR * med, min=OUTLIER_MM)  # NaN: False
    many = out.sum(dim=1) > OUTLIER_SHARE * torch.isfinite(d).sum(dim=1)
    return out, many


def outliers(d: torch.Tensor) -> torch.Tensor:
    """Gross outliers (T, K) among residuals ``d`` (T, K) mm (:func:`gross`), in frames where
    at most :data:`OUTLIER_SHARE` of the observed keypoints are."""
    out, many = gross(d)
    return out & ~many[:, None]


def drop_outliers(
    ctx: Context,
    q,
    x,
    conv,
    x_obs,
    w,
    lo,
    hi,
    pri: Priors,
    xtol: float,
    max_iter: int,
):
    """Solve again, without them, the frames where a few keypoints are gross outliers.

    Least squares lets one wrong point pull the whole pose: a wrist triangulated 200 mm off
    tilted a squat's pelvis 17 degrees (the demo's follow-up session, calibrated).  The
    keypoints :func:`outliers` finds get weight zero in their frames, which are solved again
    from the pose of the nearest frame without outliers, held near it by a weak temporal prior
    (:data:`OUTLIER_HOLD`), so that a DoF only the dropped keypoint saw (the elbow's flexion
    without the wrist) keeps its neighbour's value instead of going to neutral.  Twice: the second pass finds the outliers on the first pass's poses (a point
    that the pulled pose had moved away fits again and keeps its weight).  Returns q, x,
    conv."""
    for _ in range(2):
        out = outliers(_residuals(x, x_obs, w))
        some = out.any(dim=1)
        good = torch.nonzero(~some)[:, 0]
        if not bool(some.any()) or good.numel() == 0:
            break
        idx = torch.nonzero(some)[:, 0]
        # the nearest frame without outliers (not a mean of two: neighbours on two Euler
        # branches of a raised arm would average to neither)
        nb = q[_nearest(good, idx)]
        wo = w[idx].masked_fill(out[idx], 0.0)
        qn, xn, cn = solve_held(ctx, nb, x_obs[idx], wo, lo, hi, pri, xtol, max_iter)
        q, x, conv = put(q, x, conv, idx, qn, xn, cn)
    return q, x, conv


def solve_held(ctx: Context, start, x_obs, w, lo, hi, pri: Priors, xtol: float, max_iter: int):
    """:func:`~.solver.solve` of frames from ``start`` (n, D), held near it by the weak temporal
    prior :data:`OUTLIER_HOLD`."""
    held = replace(pri, smooth=OUTLIER_HOLD)
    return solve(ctx, start, x_obs, w, lo, hi, held, max_iter=max_iter, xtol=xtol, hold=start)


def interpolate(
    q_c: torch.Tensor, at_c: torch.Tensor, at: torch.Tensor, rot: torch.Tensor
) -> torch.Tensor:
    """Start values for frames ``at`` from solved frames ``at_c`` (sorted): linear in time, or
    the nearer solved frame for a rotational DoF that jumps by more than 45 degrees between them."""
    n = at_c.numel()
    i = torch.clamp(torch.searchsorted(at_c.contiguous(), at, right=True) - 1, 0, n - 1)
    j = torch.clamp(i + 1, max=n - 1)
    span = (at_c[j] - at_c[i]).to(q_c.dtype)
    a = torch.where(
        span > 0, (at - at_c[i]).to(q_c.dtype) / span.clamp(min=1), torch.zeros_like(span)
    )[:, None]
    qi, qj = q_c[i], q_c[j]
    lin = qi + a * (qj - qi)
    near = torch.where(a > 0.5, qj, qi)
    jump = ((qj - qi).abs() > 45.0) & rot[None]
    return torch.where(jump, near, lin)


def neighbours(vidx: torch.Tensor, n: int, prev_last: torch.Tensor | None):
    """Mean of the previous and next frame's current q (for consecutive valid frames)."""
    # position of each valid frame's neighbours within the valid-frame batch
    m = vidx.numel()
    ar = torch.arange(m, device=vidx.device)
    has_prev = torch.zeros(m, dtype=torch.bool, device=vidx.device)
    has_next = torch.zeros(m, dtype=torch.bool, device=vidx.device)
    if m > 1:
        has_prev[1:] = (vidx[1:] - vidx[:-1]) == 1
        has_next[:-1] = (vidx[1:] - vidx[:-1]) == 1
    first = prev_last if prev_last is not None and m > 0 and int(vidx[0]) == 0 else None

    def f(q: torch.Tensor):
        prev = q[torch.clamp(ar - 1, min=0)]
        nxt = q[torch.clamp(ar + 1, max=m - 1)]
        hp = has_prev.clone()
        if first is not None:
            prev = prev.clone()
            prev[0] = first
            hp[0] = True
        cnt = hp.to(q.dtype) + has_next.to(q.dtype)
        s = torch.where(hp[:, None], prev, 0.0) + torch.where(has_next[:, None], nxt, 0.0)
        mean = s / cnt.clamp(min=1.0)[:, None]
        return torch.nan_to_num(mean), cnt > 0

    return f
