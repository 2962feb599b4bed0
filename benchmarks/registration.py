"""Registration benchmark: medpose against scikit-surgerycore and SimpleITK on the same inputs.

Run: ``python benchmarks/registration.py [--trials 10000] [--quick]``.  Prints the tables and
writes them to ``benchmarks/RESULTS.md`` between the ``registration`` markers.

Layout: N = 4, 6, 10 fiducials on the upper part of a head-sized ellipsoid (semi-axes 80, 100,
70 mm); targets at the fiducial centroid and 50 and 100 mm from it along the weakest principal
axis (smallest spread).  Isotropic FLE: 1 mm RMS.  Anisotropic FLE: a camera with 0.25 mm
lateral and 1.0 mm depth standard deviation (depth along x).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from medpose.synthetic.fiducials import head_fiducials

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

from medpose.errors import MedposeError
from medpose.geometry import Transform
from medpose.registration import (
    camera_fle,
    predict_tre,
    register,
    register_batch,
    simulate_tre,
    tre_fitzpatrick,
)

try:
    from sksurgerycore.algorithms.errors import compute_tre_from_fle
    from sksurgerycore.algorithms.procrustes import orthogonal_procrustes
except ImportError:  # pragma: no cover
    sys.exit("install the bench extra: pip install scikit-surgerycore")

FLE = 1.0
ANISO = camera_fle(0.25, 1.0, axis=(1, 0, 0))


def head_layout(n: int) -> np.ndarray:
    """n fiducials over a head-sized ellipsoid (80 x 100 x 70 mm)."""
    return head_fiducials(n)


def targets_for(x: np.ndarray) -> np.ndarray:
    c = x.mean(0)
    axis = np.linalg.svd(x - c)[2][2]
    return c + np.outer([0.0, 50.0, 100.0], axis)


def sitk_register(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """SimpleITK's landmark initialiser; returns the 4x4 moving -> fixed matrix."""
    tx = sitk.LandmarkBasedTransformInitializer(
        sitk.VersorRigid3DTransform(), fixed.ravel().tolist(), moving.ravel().tolist()
    )
    a = np.array(tx.GetMatrix()).reshape(3, 3)
    c = np.array(tx.GetCenter())
    t = np.array(tx.GetTranslation())
    m = np.eye(4)  # ITK maps fixed -> moving: x -> A (x - c) + c + t
    m[:3, :3] = a
    m[:3, 3] = -a @ c + c + t
    return np.linalg.inv(m)


def sks_register(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    r, t, _ = orthogonal_procrustes(fixed, moving)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = t[:, 0]
    return m


def exact_section() -> tuple[str, list]:
    truth = Transform(Rotation.from_rotvec([0.4, -0.3, 1.2]), [15.0, -40.0, 900.0])
    rows = []
    for n in (4, 6, 10):
        x = head_layout(n)
        y = truth.apply(x)
        errs = {
            "medpose rigid": register(y, x).transform.matrix,
            "medpose similarity": register(y, x, scale=True).transform.matrix,
            "medpose anisotropic": register(
                y, x, fle={"fixed": ANISO, "moving": 0.3}
            ).transform.matrix,
            "medpose robust": register(y, x, robust=True).transform.matrix,
            "medpose batch": register_batch(y, x).matrix[0],
            "scikit-surgery": sks_register(y, x),
            "SimpleITK": sitk_register(y, x),
        }
        for k, m in errs.items():
            err = np.linalg.norm(Transform.from_matrix(m).apply(x) - y, axis=1).max()
            rows.append((n, k, float(err)))
    # noisy agreement with scikit-surgery (plain least squares)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(1000):
        x = head_layout(6) + rng.normal(size=(6, 3))
        y = Rotation.random(random_state=rng).apply(head_layout(6)) + rng.normal(
            scale=FLE, size=(6, 3)
        )
        diffs.append(
            np.linalg.norm(
                register(y, x).transform.apply(x)
                - Transform.from_matrix(sks_register(y, x)).apply(x),
                axis=1,
            ).max()
        )
    text = (
        "**Exact data** (max distance between mapped and true fiducials, mm):\n\n"
        + markdown_table(rows, ["N", "method", "max error mm"])
        + f"\n\nNoisy data (1000 problems, N = 6, FLE 1 mm): medpose vs scikit-surgery Arun, max difference of "
        f"mapped fiducials = {max(diffs):.2e} mm.\n"
    )
    return text, rows + [("noisy agreement", float(max(diffs)))]


def tre_section(trials: int) -> tuple[str, list]:
    rows = []
    for n in (4, 6, 10):
        x = head_layout(n)
        tg = targets_for(x)
        sim_iso = simulate_tre(x, tg, FLE, trials, seed=n)
        pred_iso = predict_tre(x, tg, FLE)
        sks = np.array([np.sqrt(compute_tre_from_fle(x, FLE**2, t[None])) for t in tg])
        shift = np.array([300.0, -200.0, 500.0])
        sks_shift = np.array(
            [np.sqrt(compute_tre_from_fle(x + shift, FLE**2, (t + shift)[None])) for t in tg]
        )
        sim_an = simulate_tre(x, tg, ANISO, trials, weighted_by_fle=False, seed=100 + n)
        pred_an = predict_tre(x, tg, ANISO, weighted_by_fle=False)
        iso_an = tre_fitzpatrick(x, tg, float(np.sqrt(np.trace(ANISO))))
        sim_ml = simulate_tre(x, tg, ANISO, trials, seed=200 + n)
        pred_ml = predict_tre(x, tg, ANISO)
        for k, d in enumerate((0, 50, 100)):
            pe = lambda p, s, k=k: 100.0 * (p[k] - s[k]) / s[k]  # noqa: E731
            rows.append(
                (
                    n,
                    d,
                    float(sim_iso[k]),
                    f"{pe(pred_iso, sim_iso):+.2f}",
                    f"{pe(sks, sim_iso):+.1f}",
                    f"{pe(sks_shift, sim_iso):+.1f}",
                    float(sim_an[k]),
                    f"{pe(pred_an, sim_an):+.2f}",
                    f"{pe(iso_an, sim_an):+.1f}",
                    float(sim_ml[k]),
                    f"{pe(pred_ml, sim_ml):+.2f}",
                )
            )
    header = [
        "N",
        "target mm",
        "iso: sim TRE",
        "medpose %",
        "sksurgery %",
        "sksurgery, origin moved %",
        "aniso LS: sim TRE",
        "medpose (propagation) %",
        "1998 formula %",
        "aniso weighted: sim TRE",
        "medpose %",
    ]
    text = (
        f"**Predicted vs simulated RMS TRE** ({trials} trials each; % = (predicted - simulated) / simulated; "
        "isotropic FLE 1 mm; anisotropic: 0.25 mm lateral, 1.0 mm depth; 'LS' = plain least squares, "
        "'weighted' = register(fle=...)):\n\n" + markdown_table(rows, header) + "\n"
    )
    return text, rows


def outlier_section(trials: int) -> tuple[str, list]:
    x = head_layout(6)
    tg = targets_for(x)
    rng = np.random.default_rng(7)
    rows = []
    for fle_known in (False, True):
        named = other = 0
        e_rob, e_clean, e_ls = [], [], []
        for _ in range(trials):
            y = x + rng.normal(scale=FLE / np.sqrt(3), size=x.shape)
            j = int(rng.integers(6))
            d = rng.normal(size=3)
            yo = y.copy()
            yo[j] += 10.0 * d / np.linalg.norm(d)
            reg = register(yo, x, robust=True, fle=FLE if fle_known else None)
            named += j in reg.outliers
            other += any(o != j for o in reg.outliers)
            keep = np.arange(6) != j
            e_rob.append(((reg.transform.apply(tg) - tg) ** 2).sum(1))
            e_clean.append(((register(y[keep], x[keep]).transform.apply(tg) - tg) ** 2).sum(1))
            e_ls.append(((register(yo, x).transform.apply(tg) - tg) ** 2).sum(1))
        rob, clean, ls = (np.sqrt(np.mean(e, 0)) for e in (e_rob, e_clean, e_ls))
        rows.append(
            (
                "given" if fle_known else "estimated",
                100.0 * named / trials,
                100.0 * other / trials,
                " / ".join(f"{v:.3f}" for v in clean),
                " / ".join(f"{v:.3f}" for v in rob),
                f"{100 * (rob[2] / clean[2] - 1):+.1f}",
                " / ".join(f"{v:.2f}" for v in ls),
            )
        )
    header = [
        "FLE",
        "outlier named %",
        "clean point also named %",
        "TRE clean 5 (0/50/100 mm)",
        "TRE robust",
        "robust vs clean at 100 mm %",
        "TRE plain LS with outlier",
    ]
    text = (
        f"**One 10 mm outlier among 6 fiducials** ({trials} trials, FLE 1 mm; TRE in mm at the centroid, "
        "50 and 100 mm):\n\n" + markdown_table(rows, header) + "\n"
    )
    return text, rows


def speed_section(quick: bool) -> tuple[str, list]:
    rng = np.random.default_rng(1)
    x = head_layout(6)
    b = 20_000 if quick else 200_000
    rot = Rotation.random(b, random_state=2).as_matrix()
    fixed = np.einsum("bij,nj->bni", rot, x) + rng.normal(size=(b, 6, 3))
    moving = x + rng.normal(size=(b, 6, 3))

    def best(f, reps=5):
        out = []
        for _ in range(reps):
            t = time.perf_counter()
            f()
            out.append(time.perf_counter() - t)
        return min(out)

    rows = []
    for check in (True, False):
        t = best(lambda check=check: register_batch(fixed, moving, check=check), 3)
        rows.append(
            (f"medpose register_batch (check={check})", f"{t / b * 1e6:.2f}", f"{b / t:,.0f}")
        )
    t = best(lambda: register_batch(fixed[:2000], moving[:2000], fle=ANISO), 3)
    rows.append(
        ("medpose register_batch, anisotropic FLE", f"{t / 2000 * 1e6:.1f}", f"{2000 / t:,.0f}")
    )
    m = 300
    t = best(lambda: [register(fixed[i], moving[i]) for i in range(m)], 3)
    rows.append(("medpose register (one call)", f"{t / m * 1e6:.1f}", f"{m / t:,.0f}"))
    t = best(lambda: [register(fixed[i], moving[i], robust=True) for i in range(50)], 2)
    rows.append(
        ("medpose register robust=True (one call)", f"{t / 50 * 1e6:.0f}", f"{50 / t:,.0f}")
    )

    def kabsch(y, xx):
        mx, my = xx.mean(0), y.mean(0)
        u, _, vt = np.linalg.svd((y - my).T @ (xx - mx))
        d = np.sign(np.linalg.det(u @ vt))
        r = u @ np.diag([1, 1, d]) @ vt
        return r, my - r @ mx

    t = best(lambda: [kabsch(fixed[i], moving[i]) for i in range(m)], 3)
    rows.append(("plain numpy Kabsch (one call)", f"{t / m * 1e6:.1f}", f"{m / t:,.0f}"))
    t = best(lambda: [orthogonal_procrustes(fixed[i], moving[i]) for i in range(m)], 3)
    rows.append(("scikit-surgery orthogonal_procrustes", f"{t / m * 1e6:.1f}", f"{m / t:,.0f}"))
    t = best(lambda: [sitk_register(fixed[i], moving[i]) for i in range(m)], 3)
    rows.append(
        ("SimpleITK LandmarkBasedTransformInitializer", f"{t / m * 1e6:.1f}", f"{m / t:,.0f}")
    )
    text = (
        f"**Speed**, six-point rigid registrations ({machine()}; best of several runs; "
        f"batch of {b:,}):\n\n"
        + markdown_table(rows, ["method", "us per registration", "per second"])
        + "\n"
    )
    return text, rows


def bad_input_section() -> str:
    line = np.outer(np.arange(5.0), [30, 10, 5])
    mirrored = head_layout(6) * [-1, 1, 1]
    cases = {
        "collinear": (line + [0, 0, 1], line),
        "2 points": (line[:2], line[:2]),
        "NaN": (np.vstack([line[:4], [np.nan, 0, 0]]), head_layout(5)),
        "mirrored": (mirrored, head_layout(6)),
    }
    rows = []
    for name, (f, mv) in cases.items():
        out = []
        for fn in (lambda a, b: register(a, b), sks_register, sitk_register):
            try:
                res = fn(f, mv)
                m = res.transform.matrix if hasattr(res, "transform") else res
                out.append("returns a transform" + (" (NaN)" if not np.all(np.isfinite(m)) else ""))
            except MedposeError as e:
                out.append(f"{type(e).__name__}")
            except Exception as e:
                out.append(f"{type(e).__name__}")
        rows.append((name, *out))
    return (
        "**Bad input** (what each returns):\n\n"
        + markdown_table(rows, ["input", "medpose", "scikit-surgery", "SimpleITK"])
        + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000, help="Monte-Carlo trials per TRE case")
    ap.add_argument("--outlier-trials", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="small sizes, do not write RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.outlier_trials = 1000, 100
    parts = ["## Registration (`benchmarks/registration.py`)\n"]
    for fn in (
        exact_section,
        lambda: tre_section(args.trials),
        lambda: outlier_section(args.outlier_trials),
        lambda: speed_section(args.quick),
    ):
        text, _ = fn()
        print(text, flush=True)
        parts.append(text)
    bad = bad_input_section()
    print(bad)
    parts.append(bad)
    if not args.quick:
        update_results("registration", "\n".join(parts))
        print("written to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
