"""The fit's driver: every frame of a recording, chunk by chunk, through the solver.

Per chunk (:func:`fit_chunk`): every frame starts from a rigid fit of its trunk and pelvis
(:func:`~medpose.kinematics.fit.starts.rigid_init`); every ``warm_stride``-th frame is solved
first and moved to the Euler branch nearest neutral; the others start from the interpolation of
their solved neighbours; frames left in a local minimum are restarted.  Before the chunks, a
pilot of up to 64 frames measures the keypoint noise (:func:`measure_noise`), which sets the
posture prior's weight (:mod:`.pilot`).  :func:`run` holds only the loop and the results' host buffers, so
memory grows linearly with the recording's length.  The problem's device constants and a
chunk's loading are in :mod:`.device`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .continuity import continuous_branches
from .device import (
    Chunk,
    Setup,
    inward,
    load,
    rigid_start,
    setup,
)
from .distal import Proximal, keep_better, proximal
from .gaps import mend_points
from .onlimit import leave_limits
from .pilot import measure_noise
from .problem import NOISE_FLOOR_MM, FitProblem
from .rebranch import rebranch
from .solver import Priors, solve
from .starts import (
    choose_branches,
    despike,
    interpolate,
    neighbours,
    repair,
)

__all__ = ["fit_chunk", "run", "RunResult"]


@dataclass(frozen=True, eq=False)
class LengthsFirst:
    """A calibrated skeleton's lengths-only problem on the device, the priors and noise (mm)
    of the solves on it (see :func:`solve_frames`)."""

    st: Setup
    pri: Priors
    sigma: float


#: A calibrated solve started from the lengths-only skeleton's poses moves no rotation by more
#: than this many degrees per step (:func:`~medpose.kinematics.fit.solver.solve`'s ``max_step``).
#: The two skeletons' keypoints sit centimetres apart (the pelvis origin, the shoulders), and a
#: full Gauss-Newton step from those poses threw nearly straight arms 80-90 degrees onto the
#: forearm's pronation limit, where they stayed or from where LM crawled back for up to 100
#: iterations (``tests/kinematics/test_calibrate_opensim.py``'s functional trial).  A step that
#: large is never needed from a start this close, so the cap costs the other frames nothing.
_MAX_STEP_DEG = 30.0
#: The CPU's coarse frames' calibrated solve is also damped at first: faster there (a noise-free
#: functional trial's fit 0.5 s against 0.6).  On a GPU, where every frame is in that solve,
#: this damping cost a quarter of the throughput (one more iteration for most frames).
_LAM_COARSE = 1e-2


def _one_batch(t: torch.Tensor) -> bool:
    """Whether a calibrated fit's coarse frames join the other frames' solve (see
    :func:`solve_frames`): on a GPU."""
    return t.is_cuda


def solve_frames(
    st: Setup,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    q0: torch.Tensor,
    vidx: torch.Tensor,
    n: int,
    *,
    pri: Priors,
    pri1: Priors,
    sigma: float,
    warm_stride: int,
    smoothness: float,
    prev_last: torch.Tensor | None,
    max_iter: int,
    xtol: float,
    first: LengthsFirst | None = None,
    proximal: Proximal | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, fitted keypoints and convergence of the valid frames ``vidx`` of a chunk of ``n``.

    ``pri`` carries the smoothness term (``pri1`` is the same without it); ``prev_last`` is the
    previous chunk's last frame (relative to this chunk's centre), the first frame's neighbour.

    ``first`` (a calibrated skeleton's fit): the lengths-only problem on the same keypoints and
    DoFs.  Stage 1 then solves the coarse frames on it from its own rigid starts, chooses
    their branches, restarts those left in a local minimum and mends runs on another solution
    than their neighbours (:func:`~medpose.kinematics.fit.starts.despike`) there; the
    calibrated problem's solve starts from those poses (on a GPU with independent frames in one
    batch with the other frames).  With a straight elbow, a raised arm's two Euler branches (abduction 150; flexion
    ~170 with abduction ~35, the arm turned half about itself) differ only by where a calibrated
    elbow keypoint sits off the humerus's axis (~14 mm on a synthetic session with 8 mm noise),
    and a calibrated solve from the rigid start read the far branch in every top frame of a
    synthetic shoulder abduction; on the lengths-only skeleton the two fit exactly alike and the
    branch choice keeps the one nearest neutral, and the calibrated solve started there stays
    on it (``tests/kinematics/test_calibrate.py``).
    """
    ctx, lo, hi, free, neutral = st.ctx, st.lo, st.hi, st.free, st.neutral
    dev = x_obs.device
    # stage 1: every warm_stride-th valid frame from the rigid initialisation, then the
    # branch of each ball joint nearest neutral among equally good fits
    coarse = vidx[::warm_stride]
    # a calibrated fit's coarse frames solved on the calibrated skeleton in one batch with the
    # others, from their lengths-only poses: on a GPU, where a solve's kernels cost the same
    # however few frames they hold (on the CPU a solve of its own first, whose poses start the
    # other frames closer, made a noise-free 1000-frame trial's fit 10-18 % faster)
    together = (
        first is not None
        and _one_batch(x_obs)
        and smoothness == 0
        and coarse.numel() < vidx.numel()
    )
    s1, p1 = (st, pri1) if first is None else (first.st, first.pri)
    qr = q0[coarse]
    if first is not None:  # the lengths-only skeleton's rigid start (the calibrated one's if none)
        q1, ok1 = rigid_start(first.st, x_obs[coarse], w[coarse])
        qr = torch.where(ok1[:, None], q1, qr)
    qc, xc, cc = solve(
        s1.ctx,
        qr,
        x_obs[coarse],
        w[coarse],
        s1.lo,
        s1.hi,
        p1,
        max_iter=max_iter,
        xtol=xtol,
        lam0=1e-3,
    )  # far start: damped
    if proximal is not None:  # and from a start without the hand keypoints (:mod:`.distal`)
        solved = (qc, xc, cc)
        qc, xc, cc = keep_better(
            proximal, s1, p1, solved, qr, x_obs[coarse], w[coarse], max_iter, xtol
        )
    qc, moved_c = choose_branches(
        s1.ctx, s1.moves, qc, x_obs[coarse], w[coarse], s1.lo, s1.hi, s1.neutral
    )
    xc = torch.where(moved_c[:, None, None], s1.ctx.keypoints_at(qc), xc)
    xo_c, w_c = x_obs[coarse], w[coarse]  # frames held on a limit: from the other branches
    qc, xc, cc = leave_limits(s1, qc, xc, cc, xo_c, w_c, p1, xtol, max_iter)
    q_left = qc  # through leave_limits on the problem of stage 2 where first is None
    if first is not None:  # mended on the lengths-only problem, then the calibrated solve
        args = (xo_c, w_c, s1.lo, s1.hi, p1, s1.n_var)
        qc, xc, cc = repair(
            s1.ctx, qc, xc, cc, *args, first.sigma, xtol, max_iter, q_rigid=qr, odd=st.odd
        )
        qc, xc, cc = despike(s1.ctx, qc, xc, cc, *args, xtol, max_iter, s1.rot)
        if not together:
            # from poses on another skeleton: steps capped (and damped at first), see above
            qc, xc, cc = solve(
                ctx,
                qc,
                x_obs[coarse],
                w[coarse],
                lo,
                hi,
                pri1,
                max_iter=max_iter,
                xtol=xtol,
                lam0=_LAM_COARSE,
                max_step=_MAX_STEP_DEG,
            )
    # stage 2: every valid frame from the interpolation of its solved neighbours
    qn = interpolate(qc, coarse, vidx, st.rot) if coarse.numel() < vidx.numel() else qc
    qn = torch.where(free[None], qn, neutral[None])
    nb = neighbours(vidx, n, prev_last) if smoothness > 0 else None
    if together:
        # the coarse frames' lengths-only poses are starts too: every frame in one solve
        qv, xv, cvv = solve(
            ctx,
            qn,
            x_obs[vidx],
            w[vidx],
            lo,
            hi,
            pri,
            max_iter=max_iter,
            xtol=xtol,
            max_step=_MAX_STEP_DEG,
        )
    elif nb is None and coarse.numel() < vidx.numel():
        # frames are independent: the coarse frames are solved already, the others start
        # from their interpolation
        rest = torch.ones(n, dtype=torch.bool, device=dev)
        rest[coarse] = False
        sub = torch.nonzero(rest[vidx])[:, 0]
        qs, xs, cs_ = solve(
            ctx,
            qn[sub],
            x_obs[vidx[sub]],
            w[vidx[sub]],
            lo,
            hi,
            pri,
            max_iter=max_iter,
            xtol=xtol,
        )
        cpos = torch.nonzero(~rest[vidx])[:, 0]  # coarse frames within vidx
        qv, cvv = qn.clone(), torch.empty(vidx.numel(), dtype=torch.bool, device=dev)
        qv[sub], cvv[sub], cvv[cpos] = qs, cs_, cc
        xv = xs.new_empty(vidx.numel(), *xs.shape[1:])
        xv[sub] = xs
        xv[cpos] = xc
    else:
        # with smoothness the frames are coupled (block-Jacobi): a few sweeps, not to full tolerance
        qv, xv, cvv = solve(
            ctx,
            qn,
            x_obs[vidx],
            w[vidx],
            lo,
            hi,
            pri,
            neighbours=nb,
            max_iter=max_iter if nb is None else min(max_iter, 20),
            xtol=xtol,
        )
    qv, xv, cvv = repair(
        ctx,
        qv,
        xv,
        cvv,
        x_obs[vidx],
        w[vidx],
        lo,
        hi,
        pri1,
        st.n_var,
        sigma,
        xtol,
        max_iter,
        q_rigid=q0[vidx],
        odd=st.odd,
    )
    # the branch choice again for frames that moved far from their start
    qv, xv, cvv = rebranch(st, qv, xv, cvv, qn, x_obs[vidx], w[vidx], pri1, xtol, max_iter)
    # frames on a limit restarted from other branches, but for the coarse frames that are as
    # stage 1 left them on this problem (they were through it there)
    skip = torch.zeros(vidx.numel(), dtype=torch.bool, device=dev)
    if first is None:
        probes = torch.arange(0, vidx.numel(), warm_stride, device=dev)
        skip[probes] = (qv[probes] - q_left).abs().amax(dim=1) <= 1e-2
    xo_v, w_v = x_obs[vidx], w[vidx]
    qv, xv, cvv = leave_limits(st, qv, xv, cvv, xo_v, w_v, pri1, xtol, max_iter, skip=skip)
    # a run of frames on another equally good solution than its neighbours: from a neighbour
    obs = (x_obs[vidx], w[vidx], lo, hi, pri1)
    qv, xv, cvv = despike(ctx, qv, xv, cvv, *obs, st.n_var, xtol, max_iter, st.rot)
    return mend_points(ctx, qv, xv, cvv, *obs, xtol, max_iter, st.rot, st.bridge)


def solve_from(
    st: Setup,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    q0: torch.Tensor,
    q_rigid: torch.Tensor,
    vidx: torch.Tensor,
    nb,
    *,
    pri: Priors,
    pri1: Priors,
    sigma: float,
    max_iter: int,
    xtol: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`solve_frames` for frames that start near their solution (``q0``: a previous fit's
    poses, e.g. before a small change of the skeleton): one solve from there, then the frames
    left in a local minimum are restarted (:func:`~medpose.kinematics.fit.starts.repair`, from
    their rigid start ``q_rigid`` or a neighbour).  No branch choice: the start's is kept.
    ``nb``: the temporal neighbours (:func:`~medpose.kinematics.fit.starts.neighbours`) or None."""
    qv, xv, cvv = solve(
        st.ctx,
        q0[vidx],
        x_obs[vidx],
        w[vidx],
        st.lo,
        st.hi,
        pri if nb is not None else pri1,
        neighbours=nb,
        max_iter=max_iter if nb is None else min(max_iter, 20),
        xtol=xtol,
    )
    args = (x_obs[vidx], w[vidx], st.lo, st.hi, pri1)
    qr_v, odd = q_rigid[vidx], st.odd
    qv, xv, cvv = repair(
        st.ctx, qv, xv, cvv, *args, st.n_var, sigma, xtol, max_iter, q_rigid=qr_v, odd=odd
    )
    return mend_points(st.ctx, qv, xv, cvv, *args, xtol, max_iter, st.rot, st.bridge)


def fit_chunk(
    st: Setup,
    pos: np.ndarray,
    conf: np.ndarray,
    frames: slice,
    *,
    pri: Priors,
    pri1: Priors,
    sigma: float,
    warm_stride: int,
    smoothness: float,
    prev_last: torch.Tensor | None,
    keypoints: bool,
    max_iter: int,
    xtol: float,
    start: np.ndarray | torch.Tensor | None = None,
    first: LengthsFirst | None = None,
    proximal: Proximal | None = None,
) -> Chunk:
    """Fit the frames ``frames`` (a slice) of the recording; ``keypoints``: also return the
    fitted keypoints and residuals (a GPU fit leaves them to be computed when asked).
    ``start`` (n, D), skeleton axes: every frame starts there (:func:`solve_from`) instead of
    from the rigid start and its solved neighbours; a NaN row starts from its rigid start.
    ``first``: a calibrated skeleton's lengths-only problem (see :func:`solve_frames`; unused
    with ``start``)."""
    D, K, trans, dev = len(st.prob.skeleton.dof_names), len(st.prob.seq_index), st.trans, st.dev
    x_obs, w, q0, valid = load(st, pos, conf, frames)
    n = x_obs.shape[0]
    vidx = torch.nonzero(valid)[:, 0]
    # work relative to the chunk's mean pelvis position (float32 keeps its precision)
    centre = q0[vidx][:, trans].mean(dim=0) if vidx.numel() else q0.new_zeros(3)
    x_obs = x_obs - centre
    q0[:, trans] = q0[:, trans] - centre
    q = torch.full((n, D), float("nan"), device=dev, dtype=st.dt)
    xf = torch.full((n, K, 3), float("nan"), device=dev, dtype=st.dt)
    cv = torch.zeros(n, dtype=torch.bool, device=dev)
    last = None
    if vidx.numel():
        pl = None
        if prev_last is not None and smoothness > 0:
            pl = prev_last[0].clone()
            pl[trans] = pl[trans] - centre
        if start is None:
            out = solve_frames(
                st,
                x_obs,
                w,
                q0,
                vidx,
                n,
                pri=pri,
                pri1=pri1,
                sigma=sigma,
                warm_stride=warm_stride,
                smoothness=smoothness,
                prev_last=pl,
                max_iter=max_iter,
                xtol=xtol,
                first=first,
                proximal=proximal,
            )
        else:  # the given poses (relative to the centre), a NaN row from its rigid start
            qs = torch.as_tensor(start, device=dev, dtype=st.dt).clone()
            qs[:, trans] = qs[:, trans] - centre
            qs = torch.where(torch.isfinite(qs).all(dim=1, keepdim=True), qs, q0)
            qs = torch.where(st.free[None], qs, st.neutral[None])
            nb = neighbours(vidx, n, pl) if smoothness > 0 else None
            out = solve_from(
                st,
                x_obs,
                w,
                qs,
                q0,
                vidx,
                nb,
                pri=pri,
                pri1=pri1,
                sigma=sigma,
                max_iter=max_iter,
                xtol=xtol,
            )
        qv, xv, cvv = out
        # each ball joint's equally good readings on one branch over time
        qv, moved = continuous_branches(st.ctx, st.moves, qv, x_obs[vidx], w[vidx], st.lo, st.hi)
        if bool(moved.any()):
            xv = xv.clone()
            xv[moved] = st.ctx.keypoints_at(qv[moved])
        q[vidx], xf[vidx], cv[vidx] = qv, xv, cvv
        if bool(valid[-1]):
            last = q[-1:].clone()
            last[:, trans] = last[:, trans] + centre
    res = None
    if keypoints:
        # residuals do not depend on the axes (A is a rotation): computed before adding the centre back
        res = torch.where(w > 0, torch.linalg.vector_norm(xf - x_obs, dim=2), float("nan"))
        xf = (xf + centre) @ st.Ad  # back to the data frame
    q[:, trans] = q[:, trans] + centre
    return Chunk(q, xf if keypoints else None, res, cv, valid, last)


@dataclass(frozen=True, eq=False)
class RunResult:
    """Every frame's results on the host, in the fit's precision (see :func:`run`)."""

    q: np.ndarray  # (T, D)
    fitted: np.ndarray | None  # (T, K, 3) data frame (None on a GPU)
    residual: np.ndarray | None  # (T, K) (None on a GPU)
    converged: np.ndarray  # (T,) bool
    valid: np.ndarray  # (T,) bool
    at_limit: np.ndarray  # (T, D) bool
    noise_mm: float  # keypoint noise measured on the pilot frames, NaN if none could be fitted


#: The fit is run again with its own noise when the pilot's is more than this factor above it.
RENOISE = 1.5


def run(
    prob: FitProblem,
    pos: np.ndarray,
    conf: np.ndarray,
    dev: torch.device,
    dt: torch.dtype,
    *,
    smoothness: float,
    chunk_size: int,
    progress: bool | None,
    max_iter: int,
    warm_stride: int,
    xtol: float,
    noise_mm: float | None = None,
    start: np.ndarray | torch.Tensor | None = None,
    remeasure: bool | None = None,
    first: FitProblem | None = None,
    bridge: int = 0,
    odd: bool = True,
) -> RunResult:
    """Fit every frame of ``pos`` (T, K_seq, 3) / ``conf`` (T, K_seq) set up by ``prob``.

    The keypoint noise that weighs the posture prior comes from a pilot (or ``noise_mm``).  A
    pilot frame solved from its rigid start can stay in a local minimum (a limb on another
    solution) and read tens of mm; when the finished fit, whose frames start from their
    neighbours and are mended, measures the noise at less than 1/:data:`RENOISE` of the
    pilot's, the frames are fitted again with the fit's own measurement (``remeasure``; default:
    when the noise was not given), each from its pose in the first pass (solved again from
    the rigid starts with a weaker posture prior, frames fell into other minima).  ``start`` (T, D), skeleton axes: each frame's start
    (:func:`solve_from`).  ``first``: a lengths-only problem with the same keypoints, DoFs
    and axes as ``prob`` (a calibrated skeleton's), on which the coarse frames are solved and
    their branches chosen first (:func:`solve_frames`; unused with ``start``).  ``bridge``:
    gaps of keypoints of up to this many frames are held across (:mod:`.gaps`; 0: none); ``odd``:
    frames clearly worse than their neighbours are restarted (:mod:`.stuck`)."""
    remeasure = noise_mm is None if remeasure is None else remeasure
    st = setup(prob, pos.shape[1], dev, dt, bridge, odd)
    st1 = setup(first, pos.shape[1], dev, dt) if first is not None and start is None else None
    T, D, K = pos.shape[0], len(prob.skeleton.dof_names), len(prob.seq_index)
    # the pilot's keypoint noise sets the posture prior's weight, sigma / sd mm per degree
    sigma, sigma1 = (
        measure_noise(st, pos, conf, max_iter=max_iter, xtol=xtol, start=start, first=st1)
        if noise_mm is None or st1 is not None
        else (noise_mm, float("nan"))
    )
    if noise_mm is not None:
        sigma = noise_mm
    sig = max(sigma, NOISE_FLOOR_MM) if math.isfinite(sigma) else NOISE_FLOOR_MM
    pri, pri1 = st.priors(sig, smoothness), st.priors(sig)
    # the lengths-only problem's solves are weighed by its own noise, as a fit without the
    # calibration would be
    sig1 = max(sigma1, sig) if math.isfinite(sigma1) else sig
    first_pri = None if st1 is None else LengthsFirst(st1, st1.priors(sig1), sig1)
    # stage 1's problem without its hand keypoints (:mod:`.distal`)
    px = None if start is not None else proximal(first or prob, pos.shape[1], dev, dt, sig1)

    # results are computed on the device and copied once per chunk into these, in the fit's
    # precision (float32 carries no more than that).  On a GPU the fitted keypoints and residuals
    # stay behind (Fit computes them when asked), so only q and three masks travel, into
    # page-locked memory (copies at full speed; torch's pinned-memory cache keeps it for the next fit)
    tdt = torch.float64 if dt == torch.float64 else torch.float32
    gpu = dev.type == "cuda"
    q_all, conv_all, valid_all, at_all = (
        torch.empty(shape, dtype=d, pin_memory=gpu)
        for shape, d in (((T, D), tdt), (T, torch.bool), (T, torch.bool), ((T, D), torch.bool))
    )
    fit_all = None if gpu else torch.empty((T, K, 3), dtype=tdt)
    res_all = None if gpu else torch.empty((T, K), dtype=tdt)
    lo, hi = st.lo, st.hi
    ltol = 1e-6 * torch.clamp(torch.where(torch.isfinite(lo), lo, 0.0).abs(), min=1.0)
    starts = list(range(0, T, chunk_size))
    bar = None
    if progress or (progress is None and len(starts) > 1):
        from tqdm.auto import tqdm

        bar = tqdm(total=T, unit="frame", desc="fit")
    # the limits rounded inwards to the fit's precision: q clamped to them never leaves the
    # (float64) hard limits, whatever the rounding
    lo_np, hi_np = inward(
        prob.lower, prob.upper, np.float32 if tdt == torch.float32 else np.float64
    )
    lo_in, hi_in = torch.as_tensor(lo_np, device=dev), torch.as_tensor(hi_np, device=dev)
    last = None
    for s0 in starts:
        s1 = min(T, s0 + chunk_size)
        c = fit_chunk(
            st,
            pos,
            conf,
            slice(s0, s1),
            pri=pri,
            pri1=pri1,
            sigma=sig,
            warm_stride=warm_stride,
            smoothness=smoothness,
            prev_last=last,
            keypoints=not gpu,
            max_iter=max_iter,
            xtol=xtol,
            start=None if start is None else start[s0:s1],
            first=first_pri,
            proximal=px,
        )
        last = c.last
        q = c.q
        at = torch.isfinite(q) & (((q - lo).abs() <= ltol) | ((q - hi).abs() <= ltol)) & st.free
        qc = torch.minimum(torch.maximum(q.to(tdt), lo_in), hi_in)  # (NaN stays NaN)
        outs = [(q_all, qc), (conv_all, c.converged), (valid_all, c.valid), (at_all, at)]
        if fit_all is not None and res_all is not None and c.fitted is not None:
            assert c.residual is not None
            outs += [(fit_all, c.fitted), (res_all, c.residual)]
        for dst, src in outs:
            dst[s0:s1].copy_(src, non_blocking=gpu)
        if bar is not None:
            bar.update(s1 - s0)
    if gpu:
        torch.cuda.synchronize(dev)
    if bar is not None:
        bar.close()
    if remeasure and res_all is not None and math.isfinite(sig):
        r = res_all.numpy().astype(float)
        n_obs = np.isfinite(r).sum(axis=1)
        dof = np.maximum(3 * n_obs - st.n_var, 1)
        ok = n_obs > 0
        if ok.any():
            again = float(np.median(np.sqrt(np.nansum(r[ok] ** 2, axis=1) / dof[ok])))
            if max(again, NOISE_FLOOR_MM) * RENOISE < sig:
                return run(
                    prob,
                    pos,
                    conf,
                    dev,
                    dt,
                    smoothness=smoothness,
                    chunk_size=chunk_size,
                    progress=progress,
                    max_iter=max_iter,
                    warm_stride=warm_stride,
                    xtol=xtol,
                    noise_mm=max(again, NOISE_FLOOR_MM),
                    start=q_all.numpy().astype(float),  # from this pass's poses
                    remeasure=False,
                    bridge=bridge,
                )
    return RunResult(
        q=q_all.numpy(),
        fitted=None if fit_all is None else fit_all.numpy(),
        residual=None if res_all is None else res_all.numpy(),
        converged=conv_all.numpy(),
        valid=valid_all.numpy(),
        at_limit=at_all.numpy(),
        noise_mm=sigma,
    )
