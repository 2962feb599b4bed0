"""Left/right identity repair of 3D keypoint trajectories over time.

A left/right swap that survives triangulation shows in 3D as both keypoints of a pair
jumping into each other's place from one frame to the next.  For each pair ``(l, r)`` and
each pair of consecutive observed frames, the displacement with the labels kept
(``|l_t - l_s| + |r_t - r_s|``) is compared with the displacement with the labels
exchanged (``|l_t - r_s| + |r_t - l_s|``); a clear win for the exchange (below ``ratio``
times the kept one, and by at least ``min_jump_mm``) marks a label flip between the frames.
The test is made first for the whole body (displacements summed over all pairs, so pairs
too close together to decide alone follow the body, and most pairs seen must agree), then for
each pair on its own; a pair seen again after a gap takes the flips its limb's other pairs
made meanwhile (a swap that ends while one of the pair is hidden is not seen otherwise).
The label state of every frame is the parity of the flips before it (a cumulative sum, no
loop over frames), and the state held by most frames is taken as the true labelling: the
minority frames are relabelled, a keypoint seen while its twin is hidden included.  A
relabelling that turns the pelvis, the shoulders or the face against the rest of the trunk is
refused (the trunk turns as one: :func:`_twists_trunk`).  When a bone table is given, a
relabelling is also only kept if it lowers the deviation of the pair's bones from their median
lengths, judged with the other pairs relabelled (a swap makes bone lengths jump).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data import KeypointSequence
from ..errors import InputError
from ..layouts import lr_pairs

__all__ = ["SWAP_REPORT_COLUMNS", "lr_pairs", "repair_swaps_3d"]

#: columns of the left/right relabelling reports of every stage (2D views and 3D)
SWAP_REPORT_COLUMNS = [
    "stage",
    "frame",
    "time_s",
    "camera",
    "keypoint_l",
    "keypoint_r",
    "cost_before",
    "cost_after",
]


def repair_swaps_3d(
    sequence: KeypointSequence,
    pairs: Sequence[tuple[str, str]] | None = None,
    ratio: float = 0.5,
    min_jump_mm: float = 50.0,
    bones: Sequence[tuple[str, str]] | None = None,
) -> tuple[KeypointSequence, pd.DataFrame]:
    """Detect and undo left/right label swaps in a 3D sequence.

    Parameters
    ----------
    sequence : KeypointSequence
        3D, mm.
    pairs : sequence of (left, right) names, optional
        Default: every ``x_l`` / ``x_r`` pair.
    ratio : float
        The exchanged displacement must be below ``ratio`` times the kept one.
    min_jump_mm : float
        ... and smaller by at least this many millimetres.
    bones : sequence of (a, b) names, optional
        Segments (e.g. ``("hip_l", "knee_l")``); a flip of a pair with a bone in this table is
        kept only if exchanging the pair's labels in the flipped frames brings its bone
        lengths closer to their medians, the other pairs relabelled as decided.

    Returns
    -------
    sequence : KeypointSequence
        Relabelled copy (positions and confidence exchanged in the flipped frames).
    report : pandas.DataFrame
        One row per relabelled (frame, pair): ``stage`` ("3d"), ``frame``, ``time_s``,
        ``camera`` (empty), ``keypoint_l``, ``keypoint_r``, ``cost_before`` and ``cost_after``
        (displacement from the previous observed frame, mm, as labelled before and after).
    """
    if sequence.ndim != 3:
        raise InputError("repair_swaps_3d: expected a 3D sequence (mm); found 2D keypoints")
    names = sequence.names
    pairs = lr_pairs(names) if pairs is None else list(pairs)
    for a, b in pairs:
        for n in (a, b):
            if n not in names:
                raise InputError(
                    f"repair_swaps_3d: pair keypoint {n!r} not in the sequence's keypoints"
                )
    cols = SWAP_REPORT_COLUMNS
    if not pairs or sequence.n_frames < 2:
        return sequence, pd.DataFrame(columns=cols)
    pos = sequence.positions
    li = np.array([names.index(a) for a, _ in pairs])
    ri = np.array([names.index(b) for _, b in pairs])
    L, R = pos[:, li], pos[:, ri]  # (T, P, 3)
    ok = np.all(np.isfinite(L), -1) & np.all(np.isfinite(R), -1)  # (T, P)
    t_idx = np.arange(sequence.n_frames)
    # previous observed frame of each pair (forward fill of indices)
    last = np.where(ok, t_idx[:, None], -1)
    last = np.maximum.accumulate(last, axis=0)
    prev = np.full_like(last, -1)
    prev[1:] = last[:-1]
    has_prev = ok & (prev >= 0)
    pidx = np.arange(len(pairs))

    def flips(P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        A, B = P[:, li], P[:, ri]
        Ap, Bp = A[np.maximum(prev, 0), pidx], B[np.maximum(prev, 0), pidx]
        k = np.where(
            has_prev, np.linalg.norm(A - Ap, axis=-1) + np.linalg.norm(B - Bp, axis=-1), 0.0
        )
        e = np.where(
            has_prev, np.linalg.norm(A - Bp, axis=-1) + np.linalg.norm(B - Ap, axis=-1), 0.0
        )
        return k, e, has_prev & (e < ratio * k) & (k - e > min_jump_mm)

    # a keypoint seen while its twin is hidden takes the pair's labelling too
    either = np.all(np.isfinite(L), -1) | np.all(np.isfinite(R), -1)

    def majority(state: np.ndarray, valid: np.ndarray) -> np.ndarray:
        n1, n0 = np.sum(state & valid, axis=0), np.sum(~state & valid, axis=0)
        return np.where(n1 > n0, ~state, state)

    # whole-body flips first (all pairs together: decides pairs too close to decide alone) ...
    keep, exch, _ = flips(pos)
    kb, eb = keep.sum(axis=1), exch.sum(axis=1)
    # ... and most of the pairs seen in both frames agree: summed, a swap of the arms held
    # wide apart (wrists 1.5 m apart) outweighs every other pair kept
    vote = (exch < keep) & has_prev
    body_flip = (
        (eb < ratio * kb)
        & (kb - eb > min_jump_mm * len(pairs) ** 0.5)
        & (2 * vote.sum(axis=1) > has_prev.sum(axis=1))
    )
    body = majority((np.cumsum(body_flip) % 2 == 1)[:, None], np.ones((len(t_idx), 1), bool))[:, 0]
    relabel = body[:, None] & either
    staged = _exchanged(pos, relabel, li, ri)
    # ... then each pair on its own
    _, _, flip = flips(staged)
    flip = _across_gaps(flip, ok, prev, has_prev, [a for a, _ in pairs])
    relabel ^= majority(np.cumsum(flip, axis=0) % 2 == 1, ok) & either
    # the two checks only take relabellings back, each judged with the other pairs as they
    # stand: repeated until neither takes one back (a pelvis left unturned by the trunk check
    # must not leave its knees judged against it turned)
    while True:
        before = relabel.copy()
        relabel &= ~_twists_trunk(pos, pairs, li, ri, relabel)
        if bones:
            relabel &= _bones_agree(pos, names, pairs, li, ri, relabel, bones)
        if np.array_equal(relabel, before):
            break
    t, p = np.nonzero(relabel)
    new = _exchanged(pos, relabel, li, ri)
    conf = _exchanged(sequence.confidence, relabel, li, ri)
    out = sequence.with_positions(new, conf)
    Lp2, Rp2 = new[np.maximum(prev, 0), li], new[np.maximum(prev, 0), ri]
    after = np.linalg.norm(new[:, li] - Lp2, axis=-1) + np.linalg.norm(new[:, ri] - Rp2, axis=-1)
    report = pd.DataFrame(
        {
            "stage": "3d",
            "frame": t,
            "time_s": sequence.start + t / sequence.rate,
            "camera": "",
            "keypoint_l": np.array([a for a, _ in pairs], dtype=object)[p],
            "keypoint_r": np.array([b for _, b in pairs], dtype=object)[p],
            "cost_before": np.where(has_prev[t, p], keep[t, p], np.nan),
            "cost_after": np.where(has_prev[t, p], after[t, p], np.nan),
        },
        columns=cols,
    )
    return out, report


def _exchanged(a: np.ndarray, relabel: np.ndarray, li: np.ndarray, ri: np.ndarray) -> np.ndarray:
    """A copy of ``a`` (T, K, ...) with each pair's left and right columns exchanged in the
    frames where ``relabel`` (T, P) holds."""
    t, p = np.nonzero(relabel)
    out = a.copy()
    out[t, li[p]], out[t, ri[p]] = a[t, ri[p]], a[t, li[p]]
    return out


#: Keypoints of one limb swap together (a detector confuses the arms, or the legs): a pair's
#: label change hidden in a gap is read from its limb's other pairs.
#: The legs come first: a name may hold words of both (``foot_index``).
_LIMBS = (
    ("hip", "knee", "ankle", "heel", "toe", "foot"),
    ("shoulder", "elbow", "wrist", "hand", "thumb", "index", "pinky", "finger"),
    ("eye", "ear", "mouth"),
)


#: Pairs on the trunk and the head: the pelvis, the shoulders and the face turn left to right
#: together within 90 degrees in any posture (the trunk's axial rotation reaches about 45 degrees,
#: the neck's about 80).  The pelvis is checked against the shoulders and the reverse, the face
#: against both.
_TRUNK = ("hip", "shoulder")
_HEAD = ("eye", "ear", "mouth")


def _twists_trunk(
    pos: np.ndarray, pairs, li: np.ndarray, ri: np.ndarray, relabel: np.ndarray
) -> np.ndarray:
    """(T, P) True where relabelling a trunk or head pair (:data:`_TRUNK`, :data:`_HEAD`) turns
    its left-to-right direction against the body's while it agreed before: the hips against the
    shoulders (as relabelled), the shoulders against the hips, the face against both.  A flip found
    after a stretch of badly triangulated frames (one hip jumping 150-300 mm from frame to frame)
    otherwise turns the pelvis backwards for the rest of a recording."""
    words = [set(a.split("_")) for a, _ in pairs]  # eye_inner_l: eye, not forearm_l: ear
    kind = [0 if w & set(_TRUNK) else 1 if w & set(_HEAD) else -1 for w in words]
    d_in = np.nan_to_num(pos[:, li] - pos[:, ri])  # (T, P, 3), left minus right as given
    n = np.linalg.norm(d_in, axis=-1, keepdims=True)
    d_in = np.divide(d_in, n, out=np.zeros_like(d_in), where=n > 0)  # unseen: no direction
    d_out = np.where(relabel[..., None], -d_in, d_in)
    out = np.zeros(relabel.shape, dtype=bool)
    for j, kj in enumerate(kind):
        if kj < 0:
            continue
        refs = [q for q, kq in enumerate(kind) if q != j and kq == 0]
        if not refs:
            continue
        r_in, r_out = d_in[:, refs].sum(axis=1), d_out[:, refs].sum(axis=1)
        before = np.sum(d_in[:, j] * r_in, axis=-1)
        after = np.sum(d_out[:, j] * r_out, axis=-1)
        out[:, j] = relabel[:, j] & (after < 0) & (before >= 0)
    return out


def _across_gaps(
    flip: np.ndarray, ok: np.ndarray, prev: np.ndarray, has_prev: np.ndarray, left: list[str]
) -> np.ndarray:
    """``flip`` (T, P) with the label changes hidden in gaps added: where a pair is seen again
    after a gap without a flip found there (the displacement over the gap, motion included,
    rarely passes the test), it flips if most of its limb's pairs seen throughout the gap
    changed labels an odd number of times over it.  Without this, a swap that ends while one
    keypoint of the pair is hidden left the pair mislabelled until its next swap."""
    limb = [
        next((i for i, words in enumerate(_LIMBS) if any(w in n for w in words)), -1) for n in left
    ]
    mates = [
        [q for q in range(len(left)) if q != p and limb[q] == limb[p] >= 0]
        for p in range(len(left))
    ]
    t_idx = np.arange(flip.shape[0])
    out = flip.copy()
    par = np.cumsum(flip, axis=0)
    unseen = np.cumsum(~ok, axis=0)  # frames each pair was not seen, up to t
    for t, p in zip(*np.nonzero(has_prev & (prev < t_idx[:, None] - 1) & ~flip)):
        s = prev[t, p]
        votes = [
            (par[t, q] - par[s, q]) % 2 == 1
            for q in mates[p]
            if ok[s, q] and unseen[t, q] == unseen[s, q]  # seen in every frame from s to t
        ]
        if votes and sum(votes) * 2 > len(votes):
            out[t, p] = True
    return out


def _bones_agree(
    pos: np.ndarray,
    names: tuple[str, ...],
    pairs,
    li,
    ri,
    relabel: np.ndarray,
    bones: Sequence[tuple[str, str]],
) -> np.ndarray:
    """(T, P) True where relabelling brings the pair's bones closer to their median lengths, every
    other pair's relabelling applied; bones not seen in a frame (an end hidden, either way
    labelled) are left out of its sum, and a frame with none seen keeps the relabelling."""
    idx = {n: i for i, n in enumerate(names)}
    for a, b in bones:
        for n in (a, b):
            if n not in idx:
                raise InputError(
                    f"repair_swaps_3d: bone keypoint {n!r} not in the sequence's keypoints"
                )
    agree = np.ones(relabel.shape, dtype=bool)
    full = _exchanged(pos, relabel, li, ri)  # a pair's bones judged among its neighbours'
    for j, (left, right) in enumerate(pairs):
        own = [(a, b) for a, b in bones if left in (a, b) or right in (a, b)]
        if not own:
            continue
        swap = {left: right, right: left}
        dev_with = np.zeros(pos.shape[0])
        dev_without = np.zeros(pos.shape[0])
        n_seen = np.zeros(pos.shape[0], dtype=int)
        for a, b in own:
            length = np.linalg.norm(full[:, idx[a]] - full[:, idx[b]], axis=-1)
            with warnings.catch_warnings():  # a bone never seen: no median, no warning
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(np.where(relabel[:, j], np.nan, length))
            sa, sb = swap.get(a, a), swap.get(b, b)
            length_back = np.linalg.norm(full[:, idx[sa]] - full[:, idx[sb]], axis=-1)
            d_with, d_without = np.abs(length - med), np.abs(length_back - med)
            seen = np.isfinite(d_with) & np.isfinite(d_without)  # an unseen bone says nothing
            dev_with += np.where(seen, d_with, 0.0)
            dev_without += np.where(seen, d_without, 0.0)
            n_seen += seen
        agree[:, j] = (dev_with < dev_without) | (n_seen == 0)
    return agree
