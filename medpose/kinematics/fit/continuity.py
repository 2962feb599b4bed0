"""Branch continuity: equally good readings of a ball joint kept on one branch over time.

A raised straight arm has readings that fit its keypoints exactly alike: flexion 164 with
abduction 26, or flexion -16 with abduction 154 and the humerus turned half about itself
(:func:`~medpose.kinematics.fit.starts.branch_moves`).  Frame by frame,
:func:`~medpose.kinematics.fit.starts.choose_branches` keeps the one nearest neutral, and in a
noisy raise the frames at the top then read one, then the other, 180 degrees apart from one
frame to the next.  :func:`continuous_branches` chooses, per ball joint, among the readings
that fit as well as the frame's own (inside the limits), the sequence with the fewest jumps of
its Euler angles from frame to frame, changing as few frames as it can: a minimum-cost path over
the frames (Viterbi 1967; the forward and backward costs by parallel prefix scans in the
min-plus semiring, so a million frames take twenty batched steps, not a loop).  A raise whose
top is reached continuously keeps its branch; arms held overhead from the first frame to the
last keep the reading :func:`~medpose.kinematics.fit.starts.choose_branches` gave them.
"""

from __future__ import annotations

import torch

from .context import Context
from .starts import apply_move, fits_as_well

__all__ = ["continuous_branches"]

#: The cost of a change of a joint's Euler angles from one frame to the next is its squared size
#: (degrees squared) up to this: a jump to another reading counts once, whatever its size, so the
#: path has as few jumps as it can (a noisy frame on another minimum, which no exact reading
#: of its neighbours matches, is not followed by them).
JUMP = 2 * 90.0**2
#: The cost of a frame read otherwise than its fit left it, about one noisy frame's step (5.5
#: degrees squared): where continuity does not decide (no jump either way), the frames keep
#: their readings, and a jump that must be somewhere is not moved across a run of frames for a
#: step that noise alone makes (a third of this let a run stuck on the other reading spread 25
#: frames into a raised arm's top; ``tests/protocol/test_session_run.py``); a run of frames on the
#: other reading between two jumps is turned back when shorter than ``2 JUMP / SWITCH`` (1,080)
#: frames.
SWITCH = 30.0


def _change(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Squared change (degrees squared) from the first two Euler angles ``u`` (..., 2) to ``v``:
    the middle angle's change, and the first's times the cosine of the middle (the first turns
    the segment's axis less the nearer the middle is to 90 degrees, where it is undefined: a
    limb passing there, as an arm abducting through the horizontal, changes it by anything)."""
    d = torch.remainder(v - u + 180.0, 360.0) - 180.0
    c = 0.5 * (
        torch.cos(torch.deg2rad(u[..., 1])).abs() + torch.cos(torch.deg2rad(v[..., 1])).abs()
    )
    return d[..., 1] ** 2 + (c * d[..., 0]) ** 2


def _minplus(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched min-plus matrix products ``(a ⊗ b)[i, j] = min_k a[i, k] + b[k, j]``."""
    return (a[..., :, :, None] + b[..., None, :, :]).amin(dim=-2)


def _forward(unary: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Least cost (T, S) of a path over frames 0..t ending in each state at t: ``unary`` (T, S)
    per frame and state, ``step`` (T - 1, S, S) from a state at t to one at t + 1."""
    T = unary.shape[0]
    if T == 1:
        return unary
    prod = step + unary[1:, None, :]  # (T - 1, S, S)
    d = 1
    while d < T - 1:  # inclusive prefix products (Hillis & Steele 1986)
        prod = torch.cat([prod[:d], _minplus(prod[:-d], prod[d:])])
        d *= 2
    return torch.cat([unary[:1], (unary[0][None, :, None] + prod).amin(dim=1)])


def _path(unary: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Each frame's state (T,) on the least-cost path (the first state on a tie)."""
    ahead = _forward(unary, step)
    behind = _forward(unary.flip(0), step.flip(0).transpose(1, 2)).flip(0)
    both = torch.where(torch.isfinite(unary), ahead + behind - unary, float("inf"))
    return torch.argmin(both, dim=1)


def continuous_branches(
    ctx: Context,
    moves,
    q: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``q`` (T, D) of frames in time order, each ball joint's reading chosen for continuity.

    ``moves``: :func:`~medpose.kinematics.fit.starts.branch_moves`, three per joint.  A move is
    a candidate in a frame where it stays inside the hard limits and does not raise the frame's
    keypoint cost beyond rounding (the test of :func:`~.starts.choose_branches`).  Returns the
    new q and a mask (T,) of the frames that changed; the keypoints they fit are unchanged.
    """
    T = q.shape[0]
    changed = torch.zeros(T, dtype=torch.bool, device=q.device)
    if T < 2 or not moves:
        return q, changed
    sw = torch.sqrt(w)[..., None]
    cost = None
    for g in range(0, len(moves), 3):  # one ball joint's twin, half turn, and both
        group = moves[g : g + 3]
        # the joint's first two angles (an Euler twin turns them by about 180 degrees); its
        # last, about the segment's own axis, and the children's are often all but unseen (a
        # straight arm's humeral rotation wanders by tens of degrees between frames)
        cols = torch.as_tensor(group[0][0][:2], device=q.device)
        if not bool((_change(q[:-1, cols], q[1:, cols]) > 90.0**2).any()):
            continue  # no jump: the readings stay as they are
        if cost is None:  # the frames' keypoint cost, which no move may raise
            cost = ((sw * (ctx.keypoints_at(q) - x_obs)) ** 2).sum(dim=(1, 2))
        cand, ok = [q], [torch.ones(T, dtype=torch.bool, device=q.device)]
        for move in group:
            qn, inside = apply_move(q, move, lo, hi)
            cn = ((sw * (ctx.keypoints_at(qn) - x_obs)) ** 2).sum(dim=(1, 2))
            cand.append(qn)
            ok.append(inside & fits_as_well(cn, cost, x_obs.shape[1]))
        if not bool(torch.stack(ok[1:]).any()):
            continue
        V = torch.stack([c[:, cols] for c in cand], dim=1)  # (T, S, C)
        # (T - 1, S, S): from a reading at t to one at t + 1
        step = _change(V[:-1, :, None, :], V[1:, None, :, :]).clamp(max=JUMP)
        unary = torch.where(torch.stack(ok, dim=1), SWITCH, float("inf"))
        unary[:, 0] = 0.0
        state = _path(unary, step)
        pick = state > 0
        if bool(pick.any()):
            q = torch.stack(cand, dim=1)[torch.arange(T, device=q.device), state]
            changed |= pick
    return q, changed
