"""The solver: projected Levenberg-Marquardt on a batch of frames, with priors.

Minimises, per frame, the confidence-weighted squared keypoint residuals plus the squared prior
residuals (:func:`prior_terms`: soft limits, posture, temporal smoothness) over the free DoFs
inside their hard limits (Levenberg 1944; Marquardt 1963, SIAM J Appl Math 11:431-441).  Box
constraints are kept by projection: every step is clipped into ``[lo, hi]`` and DoFs at a bound
whose gradient points outwards are frozen for that step (the active set of Bertsekas 1982, SIAM
J Control Optim 20:221-246).  J^T J is summed over keypoint groups (:func:`normal_equations`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .context import Context

__all__ = ["Priors", "prior_terms", "add_prior_cost", "normal_equations", "solve"]


@dataclass(frozen=True)
class Priors:
    """The prior terms' weights (see :func:`prior_terms`)."""

    margin: float  # soft-limit band, degrees
    weight: float  # soft-limit weight, mm per degree
    tik: torch.Tensor | None  # (F,) posture-prior weight per variable, mm per degree
    mu: torch.Tensor | None  # (F,) neutral value per variable
    smooth: float = 0.0
    row: torch.Tensor | None = None  # (F,) coupled posture term, mm per degree (about mu)


def prior_terms(
    z: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pri: Priors,
    mean_nb: torch.Tensor | None = None,
    nb_ok: torch.Tensor | None = None,
):
    """Prior residuals (T, F) and their diagonal Jacobians: soft limits, posture, smoothness."""
    terms = []
    if pri.weight > 0 and pri.margin > 0:
        up = torch.clamp(z - (hi - pri.margin), min=0.0)
        dn = torch.clamp((lo + pri.margin) - z, min=0.0)
        band = ((up > 0) | (dn > 0)).to(z.dtype)
        terms.append((pri.weight * (up - dn), pri.weight * band))
    if pri.tik is not None and pri.mu is not None:
        terms.append((pri.tik * (z - pri.mu), pri.tik.expand_as(z)))
    if pri.smooth > 0 and mean_nb is not None and nb_ok is not None:
        ok = nb_ok.to(z.dtype)[:, None]
        terms.append((pri.smooth * (z - mean_nb) * ok, pri.smooth * ok.expand_as(z)))
    return terms


def add_prior_cost(
    cost: torch.Tensor,
    z: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pri: Priors,
    mu: torch.Tensor,
    row: torch.Tensor | None,
    mean_nb: torch.Tensor | None = None,
    nb_ok: torch.Tensor | None = None,
) -> torch.Tensor:
    """``cost`` (T,) plus the priors' squared residuals at ``z`` (T, F): :func:`prior_terms`'
    and the coupled term ``((z - mu) @ row)**2`` (``row`` (F,), or None for none)."""
    for r, _ in prior_terms(z, lo, hi, pri, mean_nb, nb_ok):
        cost = cost + (r * r).sum(dim=1)
    if row is not None:
        cost = cost + ((z - mu) @ row) ** 2
    return cost


#: Up to this many frames on the CPU, :func:`normal_equations` forms the whole weighted Jacobian
#: in one batched product instead of per keypoint group: the groups save flops, which pay only
#: on larger batches, while a few frames' time is the calls' own (HALPE_26 on one thread: 0.7 ->
#: 0.3 ms for one frame, 1.7 -> 1.25 ms for 64, equal at 256).  The solver's last iterations
#: hold a few slow frames, so most of its calls are this small.
SMALL_BATCH = 128


def normal_equations(
    ctx: Context,
    E: torch.Tensor,
    R: torch.Tensor,
    o: torch.Tensor,
    x: torch.Tensor,
    sw: torch.Tensor,
    xo: torch.Tensor,
):
    """Weighted data cost (T,), J^T J (T, F, F) and J^T r (T, F) at keypoints ``x`` (T, K, 3).

    Per keypoint group (:attr:`Context.groups`), the weighted Jacobian of the group's variables
    and the weighted residual are the rows of one (T, F_g + 1, 3 K_g) matrix ``B``; ``B B^T`` gives
    the group's share of J^T J, J^T r and r^T r, which are added up.  Batches of at most
    :data:`SMALL_BATCH` frames on the CPU take the whole Jacobian's product at once (the same
    sums, to rounding).
    """
    T = x.shape[0]
    Fr, Ft = ctx.n_rot, ctx.Jt_trans.shape[0]
    F = Fr + Ft
    if T <= SMALL_BATCH and not x.is_cuda:  # a few frames: one product, a handful of calls
        J = (ctx.full_jacobian(E, R, o, x) * sw[..., None]).reshape(T, -1, F)
        B = torch.cat([J, (sw * (x - xo)).reshape(T, -1, 1)], dim=2)  # (T, 3 K, F + 1)
        G = B.transpose(1, 2) @ B
        return G[:, F, F], G[:, :F, :F].contiguous(), G[:, :F, F].contiguous()
    Wh, xh = ctx.homogeneous(E, R, o, x)  # (T, Fr, 3, 4), (T, K, 4)
    swk = sw[..., 0]  # (T, K)
    res = sw * (x - xo)  # (T, K, 3)
    H = x.new_zeros(T, F * F)
    g = x.new_zeros(T, F)
    dc = x.new_zeros(T)
    for kp, rr, scale, jt, flat, vv, n in ctx.groups:
        k = kp.numel()
        nr = rr.numel()
        wk = swk.index_select(1, kp)  # (T, k)
        buf = x.new_empty(T, n + 1, 3, k)
        J = torch.bmm(
            Wh.index_select(1, rr).reshape(T, -1, 4), xh.index_select(1, kp).transpose(1, 2)
        )
        torch.mul(J.view(T, nr, 3, k), (scale * wk[:, None])[:, :, None, :], out=buf[:, :nr])
        if Ft:
            torch.mul(jt, wk[:, None, None, :], out=buf[:, nr:n])
        buf[:, n] = res.index_select(1, kp).transpose(1, 2)
        Bf = buf.flatten(2)
        G = Bf @ Bf.transpose(1, 2)
        H.index_add_(1, flat, G[:, :n, :n].reshape(T, -1))
        g.index_add_(1, vv, G[:, :n, n])
        dc += G[:, n, n]
    return dc, H.view(T, F, F), g


#: On a GPU, a batch (or the frames of one still iterating) of at most this many frames is
#: solved on the CPU: an iteration's hundreds of small kernels cost about 5 ms on an H200 however
#: few frames they hold, while the CPU does a handful of frames in a fraction of that.
HANDOFF = 256


def _hands_off(t: torch.Tensor) -> bool:
    """Whether :func:`solve` hands small batches of ``t``'s device to the CPU."""
    return t.is_cuda


def _batched(t: torch.Tensor) -> bool:
    """Whether :func:`solve` evaluates the normal equations of every frame still iterating at its
    accepted point in each iteration (on a GPU: no host sync to pick the frames that moved, and
    fresh normal equations can be damped in place), rather than keeping a rejected frame's."""
    return t.is_cuda


def _on_cpu(
    ctx, q0, x_obs, w, lo, hi, pri: Priors, lam0, max_iter, tol, xtol, hold=None, max_step=None
):
    """:func:`solve` of a small batch on the CPU, the results back on the batch's device."""
    cpu = torch.device("cpu")
    mv = lambda t: None if t is None else t.to(cpu)  # noqa: E731
    out = solve(
        ctx.on(cpu),
        q0.to(cpu),
        x_obs.to(cpu),
        w.to(cpu),
        lo.to(cpu),
        hi.to(cpu),
        replace(pri, tik=mv(pri.tik), mu=mv(pri.mu), row=mv(pri.row)),
        max_iter=max_iter,
        tol=tol,
        xtol=xtol,
        lam0=lam0.to(cpu) if torch.is_tensor(lam0) else lam0,
        handoff=False,
        hold=mv(hold),
        max_step=max_step,
    )
    return tuple(t.to(q0.device) for t in out)


def solve(
    ctx: Context,
    q0: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pri: Priors,
    *,
    neighbours=None,
    max_iter: int = 100,
    tol: float = 1e-4,
    xtol: float = 1e-3,
    lam0: float | torch.Tensor = 1e-5,
    handoff: bool = True,
    hold: torch.Tensor | None = None,
    max_step: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projected Levenberg-Marquardt on a batch of frames.

    One forward-kinematics pass per iteration gives the trial point's keypoints and, for the
    frames that accept it and go on, the Jacobian of the next step; a rejected frame keeps its
    pose and only raises its damping (on a GPU its normal equations are evaluated again there,
    :func:`_batched`; on the CPU they are kept).  Converged frames leave the batch, so the
    slowest frames do not cost the others anything; on a GPU the last :data:`HANDOFF` frames
    (and a batch that small) finish on the CPU (frames without temporal ``neighbours``).
    ``lam0``: the initial damping, for all frames or per frame (T,).  ``handoff=False`` keeps
    every frame on its device.  ``hold`` (T, D): poses the frames are held near with the
    smoothness weight ``pri.smooth``, a temporal prior with fixed neighbours (instead of
    ``neighbours``).  ``max_step`` (degrees): a trust region, each step scaled so that no
    rotation moves further (for starts that are close but on another skeleton).

    Returns q (T, D), fitted keypoints (T, K, 3) and converged (T,).
    """
    T = q0.shape[0]
    cuda = q0.is_cuda
    batched = _batched(q0)
    handoff = handoff and neighbours is None and _hands_off(q0)
    if handoff and T <= HANDOFF:
        return _on_cpu(ctx, q0, x_obs, w, lo, hi, pri, lam0, max_iter, tol, xtol, hold, max_step)
    var = ctx.var_dofs
    lo_v, hi_v = lo[var], hi[var]
    row, mu = pri.row, pri.mu if pri.mu is not None else torch.zeros_like(lo_v)
    if row is not None and not bool(row.any()):
        row = None
    qa = q0.clone()  # the active frames' state
    qa[:, var] = torch.clamp(qa[:, var], lo_v, hi_v)
    sw = torch.sqrt(w)[..., None]  # (T, K, 1)
    xo = x_obs
    E, R, o = ctx.poses(qa)
    xa = ctx.keypoints(R, o)
    dc, H, g = normal_equations(ctx, E, R, o, xa, sw, xo)
    q, xf = qa.clone(), xa.clone()  # results, written as frames finish
    lam = lam0.to(q).clone() if torch.is_tensor(lam0) else q.new_full((T,), lam0)
    conv = torch.zeros(T, dtype=torch.bool, device=q.device)
    act = torch.arange(T, device=q.device)
    w_all = w
    for it in range(max_iter):
        if act.numel() == 0:
            break
        if handoff and act.numel() <= HANDOFF and it:
            # the stragglers finish on the CPU, from their accepted state and damping
            qh, xh, ch = _on_cpu(
                ctx,
                qa,
                xo,
                w_all.index_select(0, act),
                lo,
                hi,
                pri,
                lam,
                max_iter - it,
                tol,
                xtol,
                None if hold is None else hold.index_select(0, act),
                max_step,
            )
            q.index_copy_(0, act, qh)
            xf.index_copy_(0, act, xh)
            conv[act] = ch
            act = act[:0]
            break
        za = qa[:, var]
        mnb = nbok = None
        if neighbours is not None:
            mnb, nbok = neighbours(q)
            mnb, nbok = mnb.index_select(0, act)[:, var], nbok.index_select(0, act)
        elif hold is not None:
            mnb = hold.index_select(0, act)[:, var]
            nbok = torch.ones(act.numel(), dtype=torch.bool, device=q.device)
        terms = prior_terms(za, lo_v, hi_v, pri, mnb, nbok)
        cost, dd, gt = dc, torch.diagonal(H, dim1=1, dim2=2), g
        for r, dj in terms:  # the priors' J^T J is diagonal
            cost = cost + (r * r).sum(dim=1)
            dd = dd + dj * dj
            gt = gt + dj * r
        if row is not None:  # the coupled term: one linear residual row @ (z - mu)
            rc = (za - mu) @ row
            cost = cost + rc * rc
            dd = dd + row * row
            gt = gt + rc[:, None] * row
        frozen = ((za <= lo_v) & (gt > 0)) | ((za >= hi_v) & (gt < 0))
        keep = (~frozen).to(q.dtype)
        # the damped system; batched, H is evaluated afresh for the next iteration and is damped
        # in place (each (T, F, F) pass over a million frames costs milliseconds on a GPU)
        Hc = H if row is None else H + row[:, None] * row[None, :]
        A = Hc.clone() if row is None and not batched else Hc
        fz = torch.nonzero(frozen.any(dim=1))[:, 0]
        if fz.numel():  # frozen DoFs leave the system
            A[fz] = A[fz] * keep[fz, :, None] * keep[fz, None, :]
        # damped diagonal (1 + lam) (J^T J)_ii; a frozen DoF's row is the identity
        torch.diagonal(A, dim1=1, dim2=2).copy_(
            dd * keep * (1.0 + lam[:, None]) + 1e-9 + frozen.to(q.dtype)
        )
        L, info = torch.linalg.cholesky_ex(A)
        rhs = (gt * keep)[..., None]
        if cuda:  # two triangular solves: half cholesky_solve's time there
            sol = torch.linalg.solve_triangular(
                L.mT, torch.linalg.solve_triangular(L, rhs, upper=False), upper=True
            )
        else:
            sol = torch.cholesky_solve(rhs, L)
        step = -sol[..., 0] * keep
        bad = info != 0
        step = torch.where(bad[:, None], torch.zeros_like(step), step)
        if max_step is not None:  # a trust region on the rotations: the whole step scaled
            big = step[:, : ctx.n_rot].abs().amax(dim=1, keepdim=True)
            step = step * torch.clamp(max_step / big.clamp(min=1e-12), max=1.0)
        z_new = torch.clamp(za + step, lo_v, hi_v)
        q_new = qa.clone()
        q_new[:, var] = z_new
        E2, R2, o2 = ctx.poses(q_new)
        x2 = ctx.keypoints(R2, o2)
        r2 = (sw * (x2 - xo)).flatten(1)
        dc2 = (r2 * r2).sum(dim=1)
        cost2 = add_prior_cost(dc2, z_new, lo_v, hi_v, pri, mu, row, mnb, nbok)
        ok = (cost2 <= cost) & torch.isfinite(cost2) & ~bad
        dz = (z_new - za).abs().amax(dim=1)
        done = ((cost - cost2).abs() <= tol * cost) | (dz <= xtol) | (lam > 1e10) | (cost <= 1e-20)
        qa = torch.where(ok[:, None], q_new, qa)
        xa = torch.where(ok[:, None, None], x2, xa)
        lam = torch.where(ok, torch.clamp(lam / 10.0, min=1e-9), lam * 4.0)
        if batched:  # the accepted poses, where the next normal equations are evaluated
            E = torch.where(ok[:, None, None, None, None], E2, E)
            R = torch.where(ok[:, None, None, None], R2, R)
            o = torch.where(ok[:, None, None], o2, o)
        if neighbours is not None:  # the neighbours read q
            q.index_copy_(0, act, qa)
        fin = torch.nonzero(done)[:, 0]
        if fin.numel():  # finished frames leave the batch
            fa = act.index_select(0, fin)
            q.index_copy_(0, fa, qa.index_select(0, fin))
            xf.index_copy_(0, fa, xa.index_select(0, fin))
            conv[fa] = True
            stay = torch.nonzero(~done)[:, 0]
            if stay.numel() == 0:
                act = stay
                break
            act, qa, xa, sw, xo, lam, ok = (
                t.index_select(0, stay) for t in (act, qa, xa, sw, xo, lam, ok)
            )
            if batched:
                E, R, o = (t.index_select(0, stay) for t in (E, R, o))
            else:
                dc, H, g, E2, R2, o2, x2 = (
                    t.index_select(0, stay) for t in (dc, H, g, E2, R2, o2, x2)
                )
        # the next step's normal equations at the accepted points: batched, for every frame
        # still going; otherwise for the frames that moved (a rejected frame keeps its own)
        if batched:
            dc, H, g = normal_equations(ctx, E, R, o, xa, sw, xo)
        else:
            upd = torch.nonzero(ok)[:, 0]
            if upd.numel():
                dcn, Hn, gn = normal_equations(
                    ctx, *(t.index_select(0, upd) for t in (E2, R2, o2, x2, sw, xo))
                )
                dc.index_copy_(0, upd, dcn)
                H.index_copy_(0, upd, Hn)
                g.index_copy_(0, upd, gn)
    if act.numel():  # out of iterations
        q.index_copy_(0, act, qa)
        xf.index_copy_(0, act, xa)
    return q, xf, conv
