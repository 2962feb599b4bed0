"""The skeleton as tensors: batched forward kinematics and its analytic Jacobian.

A :class:`Context` holds a skeleton's constants on a device and computes, for a batch of poses
``q`` (T, D) in one pass, the segment rotations and origins, the keypoints and the world axis
of every joint rotation.  The Jacobian is analytic: a revolute DoF with world axis ``w`` at
joint centre ``o`` moves a downstream keypoint ``x`` by ``w x (x - o)`` per radian (e.g.
Siciliano et al. 2009, *Robotics*, eq. 3.30); the axis of each rotation of an intrinsic Euler
sequence is the parent's axis rotated by the preceding elementary rotations.
"""

from __future__ import annotations

import numpy as np
import torch

from ..skeleton import Skeleton

__all__ = ["Context"]

_AX = {"X": 0, "Y": 1, "Z": 2}


class Context:
    """Skeleton constants as tensors; batched keypoints and analytic Jacobian in one pass.

    The solver's variables are the ``free`` DoFs only (observable ones), ordered as
    :attr:`var_dofs`: the free rotational DoFs, then the free translations.  Forward
    kinematics is written out here (rather than calling :func:`~medpose.kinematics.fk.segment_poses`)
    so that one pass gives the keypoints *and* the world axis of every joint rotation the
    Jacobian needs.  Internally the segments are stored in tree-level order (root, its children,
    their children...): each level's parents are the previous level, so the pass is a handful of
    batched 3x3 products per level on contiguous slices, with no scatter.
    """

    def __init__(
        self,
        skeleton: Skeleton,
        kp_index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype,
        free: np.ndarray | None = None,
    ):
        sk = skeleton
        self.sk, self.device, self.dtype = sk, device, dtype
        S, D = len(sk.segment_names), len(sk.dof_names)
        free = np.ones(D, dtype=bool) if free is None else np.asarray(free, dtype=bool)
        self._args = (kp_index, free)
        self._copies: dict[str, Context] = {}
        t = lambda a, dt=dtype: torch.as_tensor(np.array(a), device=device, dtype=dt)  # noqa: E731
        parent = sk.parent_index
        depth = np.zeros(S, dtype=np.int64)
        anc = np.zeros((S, S), dtype=bool)  # anc[s, a]: a is s or an ancestor of s
        for s in range(S):
            a = s
            while a >= 0:
                anc[s, a] = True
                a = parent[a]
            depth[s] = anc[s].sum() - 1
        order = np.argsort(depth, kind="stable")  # level order; root first
        pos = np.empty(S, dtype=np.int64)
        pos[order] = np.arange(S)
        self.order, self.pos = t(order, torch.long), t(pos, torch.long)
        bounds = np.searchsorted(depth[order], np.arange(int(depth.max()) + 2))
        # per level: slice in level order, and each member's parent position within the previous level
        self.levels = [
            (
                int(bounds[d]),
                int(bounds[d + 1]),
                t(pos[parent[order[bounds[d] : bounds[d + 1]]]] - bounds[d - 1], torch.long),
            )
            for d in range(1, int(depth.max()) + 1)
        ]
        self.parent_pos = t(
            np.where(parent[order] >= 0, pos[np.maximum(parent[order], 0)], S), torch.long
        )
        self.kseg = t(pos[sk.keypoint_segment[kp_index]], torch.long)
        self.koff = t(sk.keypoint_offsets[kp_index])
        self.offs = t(sk.joint_offsets[order])  # (S, 3), level order
        # elementary rotation of slot j of segment s about axis i:  E = B + cos(t) P + sin(t) Q
        B = np.zeros((3, S, 3, 3))
        P = np.zeros((3, S, 3, 3))
        Qm = np.zeros((3, S, 3, 3))
        for n, s in enumerate(order):
            for j, ax in enumerate(sk.sequences[s]):
                i = _AX[ax]
                k1, k2 = (i + 1) % 3, (i + 2) % 3
                B[j, n, i, i] = 1.0
                P[j, n, k1, k1] = P[j, n, k2, k2] = 1.0
                Qm[j, n, k2, k1], Qm[j, n, k1, k2] = 1.0, -1.0
        self.B, self.P, self.Q = t(B), t(P), t(Qm)
        idx = sk.joint_dof_index[order]  # (S, 3), -1 fixed
        self.ang_dof = t(np.where(idx >= 0, idx, D).T, torch.long)  # (3, S) -> column D is 0
        self.ang_scale = t(
            (np.where(idx >= 0, sk.joint_dof_sign[order], 0.0) * np.pi / 180.0).T
        )  # (3, S)
        fixed = np.deg2rad(sk.joint_fixed_deg[order]).T  # (3, S) constant angles of fixed slots
        self.ang_bias = t(fixed) if np.any(fixed != 0) else None
        rot = [
            (d, s, j)
            for s in range(S)
            for j in range(3)
            if (d := int(sk.joint_dof_index[s, j])) >= 0 and free[d]
        ]
        seg = np.array([r[1] for r in rot], dtype=np.int64)
        slot = np.array([r[2] for r in rot], dtype=np.int64)
        axis = np.array([_AX[sk.sequences[s][j]] for s, j in zip(seg, slot)], dtype=np.int64)
        self.seg, self.slot, self.axis = (
            t(pos[seg], torch.long),
            t(slot, torch.long),
            t(axis, torch.long),
        )
        # d x_k / d q_f (per degree) = sign * pi/180 * w_f x (x_k - o_f) for keypoints below the joint
        scale = (sk.joint_dof_sign[seg, slot] * np.pi / 180.0)[:, None] * anc[
            sk.keypoint_segment[kp_index]
        ][:, seg].T  # (Fr, K)
        self.scale = t(scale)
        K = len(kp_index)
        eps = np.zeros((3, 3, 3))  # [w]x = w @ eps: Levi-Civita
        for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
            eps[k, i, j], eps[k, j, i] = -1.0, 1.0
        self.eps = t(eps.reshape(3, 9))
        trans = [int(d) for d in sk.translation_dof_index if free[d]]
        tax = [list(sk.translation_dof_index).index(d) for d in trans]
        Jt_t = np.zeros((len(trans), 3, K))
        for n, a in enumerate(tax):
            Jt_t[n, a, :] = 1.0
        self.Jt_trans = t(Jt_t)  # (Ft, 3, K)
        self.trans_axes = t(tax, torch.long)
        self.trans_dofs = t(sk.translation_dof_index, torch.long)
        self.var_dofs = t([r[0] for r in rot] + trans, torch.long)  # (F,)
        self.n_rot = len(rot)
        self.D = D
        # keypoint groups for the normal equations: one per subtree below the root (trunk and arms,
        # each leg); a keypoint depends only on its group's rotations, the root's and the
        # translations, so J^T J is the sum of the groups' smaller products (about 3x fewer flops
        # for HALPE_26).  Keypoints on the root itself join the group with the fewest variables.
        root = int(np.flatnonzero(parent < 0)[0])
        sub = np.full(S, -1)
        for s_ in range(S):
            chain = [a for a in range(S) if anc[s_, a]]
            kids = [a for a in chain if parent[a] == root]
            sub[s_] = kids[0] if kids else -1
        ksub = sub[sk.keypoint_segment[kp_index]]
        Fr, F = len(rot), len(rot) + len(trans)
        groups = []
        for gid in [g for g in np.unique(ksub) if g >= 0]:
            kp = np.flatnonzero(ksub == gid)
            rr = np.flatnonzero(scale[:, kp].any(axis=1))  # rotations moving these keypoints
            groups.append([kp, rr])
        if not groups:
            groups = [[np.arange(K), np.arange(Fr)]]
        rootk = np.flatnonzero(ksub < 0)
        if rootk.size:
            g0 = min(groups, key=lambda gr: len(gr[1]))
            g0[0] = np.sort(np.concatenate([g0[0], rootk]))
            g0[1] = np.flatnonzero(scale[:, g0[0]].any(axis=1))
        self.groups = []
        for kp, rr in groups:
            vv = np.concatenate([rr, np.arange(Fr, F)])  # the group's variables
            n = len(vv)
            self.groups.append(
                (
                    t(kp, torch.long),
                    t(rr, torch.long),
                    t(scale[np.ix_(rr, kp)]),
                    t(Jt_t[:, :, kp]),
                    t((vv[:, None] * F + vv[None, :]).ravel(), torch.long),
                    t(vv, torch.long),
                    n,
                )
            )

    def on(self, device: torch.device) -> Context:
        """The same context on ``device`` (made once, then kept)."""
        if device == self.device:
            return self
        key = str(device)
        if key not in self._copies:
            self._copies[key] = Context(self.sk, *self._args[:1], device, self.dtype, self._args[1])
        return self._copies[key]

    def poses(self, q: torch.Tensor):
        """Elementary rotations E (T, 3, S, 3, 3), segment rotations R (T, S, 3, 3) and origins o
        (T, S, 3) from q (T, D) in degrees; segments in level order (:attr:`order`)."""
        T = q.shape[0]
        qz = torch.cat([q, q.new_zeros(T, 1)], dim=1)
        ang = qz[:, self.ang_dof] * self.ang_scale  # (T, 3, S) radians
        if self.ang_bias is not None:
            ang = ang + self.ang_bias
        E = (
            self.B
            + torch.cos(ang)[..., None, None] * self.P
            + torch.sin(ang)[..., None, None] * self.Q
        )
        Jl = _mm3(_mm3(E[:, 0], E[:, 1]), E[:, 2])  # joint rotations (T, S, 3, 3)
        Rs = [Jl[:, :1]]
        os_ = [(self.offs[0] + q.index_select(1, self.trans_dofs))[:, None]]
        for s0, s1, par in self.levels:  # tree depth (~5), not frames
            Rp = Rs[-1].index_select(1, par)
            os_.append(os_[-1].index_select(1, par) + _mv3(Rp, self.offs[s0:s1]))
            Rs.append(_mm3(Rp, Jl[:, s0:s1]))
        return E, torch.cat(Rs, dim=1), torch.cat(os_, dim=1)

    def axes(self, E: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """World axis (T, Fr, 3) of every free rotation: the parent's rotation times the
        preceding elementary rotations of the same joint, applied to the rotation's own axis."""
        T = R.shape[0]
        Rx = torch.cat([R, torch.eye(3, dtype=R.dtype, device=R.device).expand(T, 1, 3, 3)], dim=1)
        PR = Rx.index_select(1, self.parent_pos)  # (T, S, 3, 3)
        RA = _mm3(PR, E[:, 0])
        RB = _mm3(RA, E[:, 1])
        stk = torch.stack([PR, RA, RB], dim=1).transpose(-1, -2)  # (T, 3, S, column, row)
        return stk[:, self.slot, self.seg, self.axis]  # (T, Fr, 3)

    def keypoints(self, R: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """Keypoints (T, K, 3) from segment poses: ``o[seg] + R[seg] @ offset``."""
        return o.index_select(1, self.kseg) + _mv3(R.index_select(1, self.kseg), self.koff)

    def homogeneous(self, E: torch.Tensor, R: torch.Tensor, o: torch.Tensor, x: torch.Tensor):
        """The Jacobian's two factors: ``[[w_f]x, -[w_f]x o_f]`` (T, Fr, 3, 4) per free rotation and
        ``[x_k, 1]`` (T, K, 4) per keypoint, whose product is ``w_f x (x_k - o_f)``."""
        T, K = x.shape[:2]
        W = (self.axes(E, R) @ self.eps).reshape(T, -1, 3, 3)  # skew matrices [w]x (T, Fr, 3, 3)
        Wo = _mv3(W, o.index_select(1, self.seg))  # (T, Fr, 3): w x o_f
        return torch.cat([W, -Wo[..., None]], dim=-1), torch.cat([x, x.new_ones(T, K, 1)], dim=-1)

    def jacobian(
        self, E: torch.Tensor, R: torch.Tensor, o: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """Jacobian of the keypoints ``x`` (T, K, 3) w.r.t. the free rotations, transposed: (T, Fr, 3, K), per degree.

        Column f is ``scale_f * w_f x (x_k - o_f)`` for the keypoints below joint f (zero elsewhere),
        computed for all pairs at once from :meth:`homogeneous`: one small batched product
        (gathering only the pairs below each joint costs more than it saves).
        """
        T, K = x.shape[:2]
        Wh, xh = self.homogeneous(E, R, o, x)
        J = torch.bmm(Wh.reshape(T, -1, 4), xh.transpose(1, 2)).view(T, -1, 3, K)
        return J * self.scale[..., None, :]

    def full_jacobian(self, E, R, o, x) -> torch.Tensor:
        """Jacobian (T, K, 3, F) of the keypoints per degree / mm, translations included."""
        Jr = self.jacobian(E, R, o, x)  # (T, Fr, 3, K)
        Jt = self.Jt_trans.expand(x.shape[0], -1, -1, -1)  # (T, Ft, 3, K)
        return torch.cat([Jr, Jt], dim=1).permute(0, 3, 2, 1)

    def keypoints_at(self, q: torch.Tensor) -> torch.Tensor:
        """Keypoints (T, K, 3) of the poses ``q`` (T, D)."""
        _, R, o = self.poses(q)
        return self.keypoints(R, o)

    def evaluate(self, q: torch.Tensor, jacobian: bool = False):
        """Segment rotations (T, S, 3, 3) and origins (skeleton order), keypoints and (optionally)
        the Jacobian (T, K, 3, F) per degree / mm."""
        E, R, o = self.poses(q)
        x = self.keypoints(R, o)
        J = self.full_jacobian(E, R, o, x) if jacobian else None
        return R[:, self.pos], o[:, self.pos], x, J


def _mm3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched 3x3 matrix products ``a @ b``.

    On a GPU as broadcast multiply-adds: a batched GEMM spends most of its time setting up tiles
    for 3x3 matrices, while the elementwise form is memory-bound.  On the CPU ``matmul`` is faster.
    """
    if a.is_cuda:
        return (a[..., :, :, None] * b[..., None, :, :]).sum(dim=-2)
    return a @ b


def _mv3(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched matrix-vector products ``a @ v``, (..., 3, 3) x (..., 3) -> (..., 3) (see :func:`_mm3`)."""
    if a.is_cuda:
        return (a * v[..., None, :]).sum(dim=-1)
    return (a @ v[..., None])[..., 0]
