"""Quality gate for a registration: pass or fail, with the reasons.

A :class:`QualityGate` holds thresholds on the fiducial registration error, on the predicted
target registration error at named targets and on the number of fiducials (and outliers).
:meth:`QualityGate.check` applies them to a :class:`~medpose.registration.Registration` and
returns a :class:`GateResult`; the navigation-check protocol builds one with
:meth:`QualityGate.from_dict` from its YAML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data import Landmarks
from ..errors import InputError
from .checks import wrong_side_pairs
from .result import Registration

__all__ = ["QualityGate", "GateResult"]


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """Outcome of :meth:`QualityGate.check`.

    Attributes
    ----------
    passed : bool
    reasons : tuple of str
        One sentence per failed criterion (empty when passed).
    values : dict
        What was measured: ``fre_mm``, ``n_fiducials``, ``n_outliers``, ``tre_mm`` (target -> mm).
    limits : dict
        The thresholds applied to them, under the same keys (``n_fiducials`` a minimum, the
        others maxima; ``tre_mm`` target -> mm); a criterion the gate did not set is absent.
    """

    passed: bool
    reasons: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return "PASS" if self.passed else "FAIL: " + "; ".join(self.reasons)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per criterion: ``criterion, target, value, limit, unit, passed`` (the limit
        NaN, and passed True, for a value the gate only reports)."""
        rows = []

        def add(criterion: str, target: str, value: float, limit: Any, unit: str, low: bool):
            ok = limit is None or (value >= limit if low else value <= limit)
            lim = math.nan if limit is None else float(limit)
            rows.append((criterion, target, float(value), lim, unit, bool(ok)))

        v, lim = self.values, self.limits
        if "fre_mm" in v:
            add("FRE", "", v["fre_mm"], lim.get("fre_mm"), "mm", False)
        for name, tre in (v.get("tre_mm") or {}).items():
            add("predicted TRE", str(name), tre, (lim.get("tre_mm") or {}).get(name), "mm", False)
        if "n_fiducials" in v:
            add("fiducials in the fit", "", v["n_fiducials"], lim.get("n_fiducials"), "", True)
        if "n_outliers" in v:
            add("outliers", "", v["n_outliers"], lim.get("n_outliers"), "", False)
        if v.get("left_right_pairs"):
            add(
                "left/right pairs on the wrong side",
                "",
                v["wrong_side_pairs"],
                lim.get("wrong_side_pairs"),
                "",
                False,
            )
        return pd.DataFrame(
            rows, columns=["criterion", "target", "value", "limit", "unit", "passed"]
        )

    def plot(self, ax: Any = None) -> Any:
        """FRE and predicted TRE (mm) as bars on a matplotlib axis, green within their limit,
        red beyond it, grey with none; each limit a black tick across its bar."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        df = self.to_dataframe()
        df = df[df["unit"] == "mm"]
        labels = [c if not t else f"TRE {t}" for c, t in zip(df["criterion"], df["target"])]
        y = np.arange(len(df))
        colours = [
            "#999999" if np.isnan(lo) else ("#2ca02c" if ok else "#d62728")
            for lo, ok in zip(df["limit"], df["passed"])
        ]
        ax.barh(y, df["value"], color=colours)
        ax.scatter(df["limit"], y, marker="|", s=400, color="black", label="limit")
        if df["limit"].notna().any():
            ax.legend(fontsize="small", loc="lower right")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel("mm")
        ax.set_title(f"quality gate: {'PASS' if self.passed else 'FAIL'}", fontsize="medium")
        return ax

    def __repr__(self) -> str:
        from ..report.display import gate_repr

        return gate_repr(self)

    def _repr_html_(self) -> str:
        from ..report.display import gate_html

        return gate_html(self)


@dataclass(frozen=True, kw_only=True)
class QualityGate:
    """Thresholds a registration must meet before it is trusted.

    Parameters
    ----------
    max_fre_mm : float, optional
        Largest acceptable fiducial registration error (RMS, mm).
    max_tre_mm : float or mapping name -> float, optional
        Largest acceptable predicted RMS TRE (mm), at every target or per named target.
    min_fiducials : int
        Fewest fiducials that must remain in the fit (after outlier rejection), default 4.
    max_outliers : int, optional
        Most fiducials that robust registration may reject.

    Examples
    --------
    >>> gate = QualityGate(max_fre_mm=2.0, max_tre_mm={"tumour": 3.0}, min_fiducials=4)
    >>> gate.max_tre_mm["tumour"]
    3.0
    """

    max_fre_mm: float | None = None
    max_tre_mm: float | Mapping[str, float] | None = None
    min_fiducials: int = 4
    max_outliers: int | None = None

    def __post_init__(self) -> None:
        def positive(v: Any, what: str) -> None:
            if v is not None and not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise InputError(f"QualityGate: {what} must be a positive number (mm), found {v!r}")

        positive(self.max_fre_mm, "max_fre_mm")
        if isinstance(self.max_tre_mm, Mapping):
            for k, v in self.max_tre_mm.items():
                positive(v, f"max_tre_mm[{k!r}]")
            object.__setattr__(
                self, "max_tre_mm", {str(k): float(v) for k, v in self.max_tre_mm.items()}
            )
        else:
            positive(self.max_tre_mm, "max_tre_mm")
        if not isinstance(self.min_fiducials, int) or self.min_fiducials < 3:
            raise InputError(
                f"QualityGate: min_fiducials must be an integer >= 3, found {self.min_fiducials!r}"
            )
        if self.max_outliers is not None and (
            not isinstance(self.max_outliers, int) or self.max_outliers < 0
        ):
            raise InputError(
                f"QualityGate: max_outliers must be an integer >= 0, found {self.max_outliers!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "quality gate") -> QualityGate:
        """Build from a mapping (e.g. a protocol's YAML); unknown keys are an error naming them."""
        if not isinstance(d, Mapping):
            raise InputError(
                f"{source}: expected a mapping of thresholds, found {type(d).__name__}"
            )
        known = {"max_fre_mm", "max_tre_mm", "min_fiducials", "max_outliers"}
        unknown = set(d) - known
        if unknown:
            raise InputError(
                f"{source}: unknown keys {sorted(map(str, unknown))}; expected some of {sorted(known)}"
            )
        try:
            return cls(**dict(d))
        except InputError as e:
            raise InputError(f"{source}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as a plain mapping (the inverse of :meth:`from_dict`)."""
        return {
            "max_fre_mm": self.max_fre_mm,
            "max_tre_mm": self.max_tre_mm,
            "min_fiducials": self.min_fiducials,
            "max_outliers": self.max_outliers,
        }

    def check(
        self,
        registration: Registration,
        targets: Landmarks | None = None,
        fle: Any = None,
        *,
        landmarks: Landmarks | None = None,
    ) -> GateResult:
        """Apply the thresholds, and check the imaging side's left and right.

        Every left/right pair of landmarks in the moving (imaging) frame, LPS or RAS (names
        that differ only by ``l``/``left`` and ``r``/``right``: ``asis_l``/``asis_r``), is
        checked: the patient's left one must lie toward the patient's left (+x in LPS).  When
        most pairs are on the wrong side the gate FAILS: the landmarks file's coordinate
        system is then almost certainly wrong (RAS coordinates labelled LPS or the reverse, a
        180 degree turn about z that the rigid fit absorbs with unchanged FRE and TRE), and
        navigating with it would put the patient's left on the right.

        Parameters
        ----------
        registration : Registration
        targets : Landmarks, optional
            Targets in the moving frame; needed when ``max_tre_mm`` is set.  With a per-target
            mapping, every named target must be present.
        fle : optional
            FLE for the TRE prediction (default: the registration's, else estimated from FRE).
        landmarks : Landmarks, optional, keyword-only
            Every imaging landmark (moving frame), for the left/right check; the named
            fiducials of ``registration`` and ``targets`` are always checked.

        Raises
        ------
        InputError
            When TRE thresholds are set but targets are missing.
        """
        reasons: list[str] = []
        n = registration.n_fiducials
        n_out = len(registration.outliers)
        values: dict[str, Any] = {"fre_mm": registration.fre, "n_fiducials": n, "n_outliers": n_out}
        applied: dict[str, Any] = {"n_fiducials": self.min_fiducials}
        if self.max_fre_mm is not None:
            applied["fre_mm"] = self.max_fre_mm
        if self.max_outliers is not None:
            applied["n_outliers"] = self.max_outliers
        if n < self.min_fiducials:
            reasons.append(
                f"{n} fiducials in the fit, fewer than the {self.min_fiducials} required"
            )
        if self.max_outliers is not None and n_out > self.max_outliers:
            reasons.append(
                f"{n_out} outlier fiducials {list(registration.outliers)}, more than the "
                f"{self.max_outliers} allowed"
            )
        if self.max_fre_mm is not None and registration.fre > self.max_fre_mm:
            reasons.append(f"FRE {registration.fre:.2f} mm exceeds {self.max_fre_mm:g} mm")
        if self.max_tre_mm is not None:
            if targets is None or len(targets) == 0:
                raise InputError("QualityGate.check: max_tre_mm is set but no targets were given")
            limits: dict[str, float] = (
                dict(self.max_tre_mm)
                if isinstance(self.max_tre_mm, Mapping)
                else {t: float(self.max_tre_mm) for t in targets.names}
            )
            missing = [t for t in limits if t not in targets.names]
            if missing:
                raise InputError(
                    f"QualityGate.check: targets {missing} have a TRE threshold but are not among the "
                    f"targets given {list(targets.names)}"
                )
            predicted = registration.predict_tre(targets.subset(list(limits)), fle=fle)
            tre = dict(zip(limits, np.atleast_1d(np.asarray(predicted, dtype=float)).tolist()))
            values["tre_mm"] = tre
            applied["tre_mm"] = limits
            for name, lim in limits.items():
                if tre[name] > lim:
                    reasons.append(f"predicted TRE at {name} {tre[name]:.2f} mm exceeds {lim:g} mm")
        pairs, wrong = _laterality(registration, targets, landmarks)
        if pairs:
            values["left_right_pairs"] = len(pairs)
            values["wrong_side_pairs"] = len(wrong)
            applied["wrong_side_pairs"] = len(pairs) // 2  # "most" pairs: more than half
            if len(wrong) > len(pairs) // 2:
                frame = registration.transform.source
                reasons.append(
                    f"{len(wrong)} of {len(pairs)} left/right landmark pairs lie on the wrong "
                    f"side ({'; '.join(wrong[:3])}{'; ...' if len(wrong) > 3 else ''}): in "
                    f"{frame} +x points to the patient's "
                    f"{'left' if frame == 'LPS' else 'right'}, so the landmarks file's "
                    "coordinate system is probably wrong (RAS coordinates labelled LPS, or the "
                    "reverse); fix the file's coordinateSystem and register again"
                )
        return GateResult(passed=not reasons, reasons=tuple(reasons), values=values, limits=applied)


def _laterality(
    registration: Registration, targets: Landmarks | None, landmarks: Landmarks | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """The left/right pairs among the imaging-side points the gate sees, and the wrong ones."""
    frame = str(registration.transform.source)
    names: list[str] = []
    points: list[np.ndarray] = []
    extra = [] if registration.named is False else [(registration.names, registration.moving)]
    for lm in (targets, landmarks):
        if lm is not None and str(lm.frame) == frame:
            extra.append((lm.names, lm.positions))
    for ns, ps in extra:
        for n, p in zip(ns, np.asarray(ps, dtype=float)):
            if str(n) not in names:
                names.append(str(n))
                points.append(p)
    if not names:
        return [], []
    return wrong_side_pairs(Landmarks(tuple(names), np.reshape(points, (-1, 3)), frame=frame))
