"""Joint limits for the constrained fit: hard ranges plus an optional soft prior.

:class:`JointLimits` holds one ``[lower, upper]`` range per degree of freedom (DoF) of a
:class:`~medpose.kinematics.skeleton.Skeleton`, in degrees (mm, unbounded, for the pelvis
translations).  The fit (:func:`medpose.kinematics.fit.fit`) never returns an angle outside
them.  Optionally a *soft prior* adds a penalty that grows quadratically as an angle enters a
band of ``soft_margin_deg`` inside either limit, so that noisy data do not push a joint hard
against its end of range unless the keypoints insist.

Sources
-------
* Defaults: ``medpose/resources/joint_ranges.yaml`` through
  :func:`~medpose.kinematics.skeleton.default_ranges`: the range healthy adults reach, per side
  the wider of the AAOS 1965 / Greene & Heckman 1994 average and a published adult group's
  mean + 2 SD (hip and knee flexion, ankle: Jung & Yamasaki 2016), never the average alone
  where a mean and SD were found.
* Age-group / sex variants: ``medpose/resources/joint_limits_variants.yaml`` (Soucie JM et al.,
  Haemophilia 2011;17:500-507, by age group 2-8, 9-19, 20-44, 45-69 years and sex): group
  means, which only widen a default limit.
* Per-patient overrides: a YAML file (a clinician's measured passive range, a post-operative
  restriction), see :meth:`JointLimits.from_yaml`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..errors import InputError, LimitError
from ..io._util import display_name
from ..packaged import resource_yaml
from .skeleton import Skeleton, default_ranges

__all__ = ["JointLimits", "AGE_GROUPS", "SEXES"]

#: Age groups of Soucie et al. (2011), years.
AGE_GROUPS = ("2-8", "9-19", "20-44", "45-69")
#: Sexes with separate reference values.
SEXES = ("female", "male")


def _variants() -> Mapping[str, Any]:
    return resource_yaml("joint_limits_variants.yaml")


def _targets(name: str, dof_names: tuple[str, ...]) -> list[str]:
    """DoF columns a row name refers to: itself, or both sides of a bilateral base name."""
    if name in dof_names:
        return [name]
    return [n for n in (f"{name}_r", f"{name}_l") if n in dof_names]


def _number(value: Any, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected a number of degrees, found {value!r}") from None
    if math.isnan(v):
        raise LimitError(f"{where}: limit is NaN (empty); expected a number of degrees")
    return v


@dataclass(frozen=True, eq=False)
class JointLimits:
    """Hard joint ranges (and an optional soft prior) for every DoF of a skeleton.

    Parameters
    ----------
    dof_names : tuple of str
        DoFs, in ``skeleton.dof_names`` order.
    lower, upper : numpy.ndarray, shape (D,)
        Hard limits in degrees (mm for translations, usually infinite); ``lower < upper``.
    sources : Mapping[str, str], keyword-only
        Where each DoF's range comes from (``"AAOS"``, ``"override: post-op"``...).
    soft_margin_deg : float, keyword-only
        Width of the band inside each limit where the soft prior acts; 0 disables it.
    soft_weight : float, keyword-only
        Strength of the soft prior in mm of keypoint residual per degree inside the band
        (the fit adds ``(soft_weight * depth_deg)**2`` to a frame's squared residual).

    Raises
    ------
    LimitError
        If a range is empty (``lower == upper`` or NaN) or inverted (``lower > upper``); the
        message names the DoF.

    Examples
    --------
    >>> lim = JointLimits.default().with_overrides({"knee_flexion_r": (0, 90)})
    >>> lim.range("knee_flexion_r")
    (0.0, 90.0)
    """

    dof_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    _: KW_ONLY
    sources: Mapping[str, str] = field(default_factory=dict)
    soft_margin_deg: float = 0.0
    soft_weight: float = 0.0

    def __post_init__(self) -> None:
        names = tuple(self.dof_names)
        lo = np.array(self.lower, dtype=float).reshape(-1)
        hi = np.array(self.upper, dtype=float).reshape(-1)
        if lo.shape != (len(names),) or hi.shape != (len(names),):
            raise InputError(
                f"JointLimits: lower and upper must have one value per DoF ({len(names)}), "
                f"found {lo.shape} and {hi.shape}"
            )
        for n, a, b in zip(names, lo, hi):
            if math.isnan(a) or math.isnan(b):
                raise LimitError(
                    f"JointLimits: range of {n!r} is empty (NaN limit); expected min < max"
                )
            if a > b:
                raise LimitError(
                    f"JointLimits: range of {n!r} is inverted: min {a:g} > max {b:g} degrees"
                )
            if a == b:
                raise LimitError(
                    f"JointLimits: range of {n!r} is empty: min = max = {a:g} degrees; "
                    "to hold a joint nearly fixed give a small range, e.g. "
                    f"[{a - 0.5:g}, {a + 0.5:g}]"
                )
        m, w = float(self.soft_margin_deg), float(self.soft_weight)
        if not (math.isfinite(m) and m >= 0 and math.isfinite(w) and w >= 0):
            raise InputError(
                f"JointLimits: soft_margin_deg and soft_weight must be finite and >= 0, "
                f"found {m!r} and {w!r}"
            )
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "dof_names", names)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(
            self, "sources", MappingProxyType({n: str(self.sources.get(n, "")) for n in names})
        )
        object.__setattr__(self, "soft_margin_deg", m)
        object.__setattr__(self, "soft_weight", w)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def default(
        cls,
        skeleton: Skeleton | None = None,
        *,
        age_group: str | None = None,
        sex: str | None = None,
    ) -> JointLimits:
        """Hard limits healthy adults reach, optionally widened for an age-group/sex variant.

        The defaults (``joint_ranges.yaml``) are the range healthy adults reach, not the average:
        per side the wider of the AAOS average and a published adult group's mean + 2 SD.  A
        variant row holds its group's published mean (Soucie et al. 2011), which about half of
        the group exceeds, so it only widens a side where it lies outside the default; the
        ``sources`` of such a DoF name the variant first, then the default.

        Parameters
        ----------
        skeleton : Skeleton, optional
            Whose DoFs (default :meth:`Skeleton.default`).
        age_group : {"2-8", "9-19", "20-44", "45-69"}, optional
            Soucie et al. (2011) age group in years; needs ``sex``.
        sex : {"female", "male"}, optional

        Raises
        ------
        InputError
            Unknown age group or sex, or only one of them given.
        """
        sk = skeleton if skeleton is not None else Skeleton.default()
        rng = default_ranges(sk)
        spec = _variants()
        rows = resource_yaml("joint_ranges.yaml").get("ranges", {})
        sources = {}
        for n in sk.dof_names:
            base = n[:-2] if n[-2:] in ("_r", "_l") else n
            row = rows.get(n, rows.get(base, {}))
            sources[n] = f"joint_ranges.yaml: {row.get('source', '')}".strip()
        lo = np.array([rng[n][0] for n in sk.dof_names])
        hi = np.array([rng[n][1] for n in sk.dof_names])
        if (age_group is None) != (sex is None):
            raise InputError(
                "JointLimits.default: give both age_group and sex, or neither; found "
                f"age_group={age_group!r}, sex={sex!r}"
            )
        if age_group is not None:
            if str(age_group) not in AGE_GROUPS:
                raise InputError(
                    f"JointLimits.default: unknown age_group {age_group!r}; known: {list(AGE_GROUPS)}"
                )
            if str(sex).lower() not in SEXES:
                raise InputError(f"JointLimits.default: unknown sex {sex!r}; known: {list(SEXES)}")
            variant = (spec["variants"].get(str(age_group)) or {}).get(str(sex).lower()) or {}
            for name, row in variant.items():
                for col in _targets(str(name), sk.dof_names):
                    i = sk.dof_names.index(col)
                    # a group's mean only widens a hard limit (the default: what adults reach)
                    wider = []
                    if "min" in row and float(row["min"]) < lo[i]:
                        lo[i] = float(row["min"])
                        wider.append("min")
                    if "max" in row and float(row["max"]) > hi[i]:
                        hi[i] = float(row["max"])
                        wider.append("max")
                    if wider:
                        src = str(row.get("source", "joint_limits_variants.yaml"))
                        sources[col] = f"{' and '.join(wider)}: {src}; {sources[col]}"
        return cls(sk.dof_names, lo, hi, sources=sources)

    @classmethod
    def from_yaml(
        cls,
        path: str | os.PathLike,
        skeleton: Skeleton | None = None,
        *,
        base: JointLimits | None = None,
    ) -> JointLimits:
        """Per-patient overrides read from YAML on top of ``base`` (default: :meth:`default`).

        The file (read with ``yaml.safe_load``)::

            # knee restricted after surgery, measured 2024-05-02
            age_group: 45-69          # optional: start from this variant (needs sex)
            sex: female
            limits:
              knee_flexion_r: {min: 0, max: 90, source: post-operative restriction}
              shoulder_abduction: {max: 120}    # no side: both sides
            soft_prior: {margin_deg: 10, weight: 1.0}   # optional

        Raises
        ------
        InputError
            Missing file, invalid YAML, unknown DoF (named, with the known ones), non-numeric
            value (file and field named).
        LimitError
            An empty or inverted range (file and DoF named).
        """
        p = os.fspath(path)
        src = display_name(p)
        try:
            with open(p, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
        except FileNotFoundError:
            raise InputError(f"{src}: joint-limits file not found") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{src}: not valid YAML ({exc.__class__.__name__})") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise InputError(
                f"{src}: expected a mapping with 'limits' (and optionally 'soft_prior', "
                f"'age_group', 'sex'), found {type(doc).__name__}"
            )
        unknown = set(doc) - {"limits", "soft_prior", "age_group", "sex"}
        if unknown:
            raise InputError(
                f"{src}: unknown top-level field(s) {sorted(unknown)}; expected limits, "
                "soft_prior, age_group, sex"
            )
        if base is None:
            base = cls.default(skeleton, age_group=doc.get("age_group"), sex=doc.get("sex"))
        rows = doc.get("limits") or {}
        if not isinstance(rows, Mapping):
            raise InputError(f"{src}: 'limits' must map DoF names to {{min, max}}, found {rows!r}")
        over: dict[str, tuple[float | None, float | None, str]] = {}
        for name, row in rows.items():
            where = f"{src}: limits.{name}"
            if not isinstance(row, Mapping) or not ({"min", "max"} & set(row)):
                raise LimitError(
                    f"{where}: empty range; expected a mapping with min and/or max (degrees)"
                )
            lo = _number(row["min"], f"{where}.min") if "min" in row else None
            hi = _number(row["max"], f"{where}.max") if "max" in row else None
            over[str(name)] = (lo, hi, str(row.get("source", f"override ({src})")))
        try:
            out = base._apply(over, src)
        except LimitError as exc:
            raise LimitError(f"{src}: {exc}") from None
        soft = doc.get("soft_prior")
        if soft is not None:
            if not isinstance(soft, Mapping):
                raise InputError(
                    f"{src}: soft_prior must be a mapping {{margin_deg, weight}}, found {soft!r}"
                )
            out = out.with_soft_prior(
                _number(soft.get("margin_deg", 10.0), f"{src}: soft_prior.margin_deg"),
                _number(soft.get("weight", 1.0), f"{src}: soft_prior.weight"),
            )
        return out

    # ------------------------------------------------------------------ modifiers
    def _apply(
        self, over: Mapping[str, tuple[float | None, float | None, str]], src: str
    ) -> JointLimits:
        lo, hi, sources = self.lower.copy(), self.upper.copy(), dict(self.sources)
        for name, (a, b, source) in over.items():
            cols = _targets(name, self.dof_names)
            if not cols:
                raise InputError(f"{src}: unknown DoF {name!r}; known: {list(self.dof_names)}")
            for c in cols:
                i = self.dof_names.index(c)
                lo[i] = lo[i] if a is None else a
                hi[i] = hi[i] if b is None else b
                sources[c] = source
        return JointLimits(
            self.dof_names,
            lo,
            hi,
            sources=sources,
            soft_margin_deg=self.soft_margin_deg,
            soft_weight=self.soft_weight,
        )

    def with_overrides(
        self, ranges: Mapping[str, tuple[float | None, float | None]], *, source: str = "override"
    ) -> JointLimits:
        """A copy with some ranges replaced: ``{"knee_flexion_r": (0, 90)}``; ``None`` keeps a side.

        A name without ``_r``/``_l`` sets both sides.  Raises InputError for an unknown DoF and
        LimitError for an empty or inverted result (the DoF named).
        """
        over = {}
        for k, v in ranges.items():
            a, b = v
            over[k] = (
                None if a is None else _number(a, f"{k}.min"),
                None if b is None else _number(b, f"{k}.max"),
                source,
            )
        return self._apply(over, "JointLimits.with_overrides")

    def with_soft_prior(self, margin_deg: float = 10.0, weight: float = 1.0) -> JointLimits:
        """A copy with the soft prior on (``margin_deg`` band, ``weight`` mm per degree); 0 turns it off."""
        return JointLimits(
            self.dof_names,
            self.lower,
            self.upper,
            sources=self.sources,
            soft_margin_deg=margin_deg,
            soft_weight=weight,
        )

    # ------------------------------------------------------------------ queries
    def range(self, name: str) -> tuple[float, float]:
        """``(lower, upper)`` of one DoF."""
        if name not in self.dof_names:
            raise InputError(f"JointLimits: unknown DoF {name!r}; known: {list(self.dof_names)}")
        i = self.dof_names.index(name)
        return float(self.lower[i]), float(self.upper[i])

    def for_skeleton(self, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` arrays in ``skeleton.dof_names`` order; InputError naming missing DoFs."""
        missing = [n for n in skeleton.dof_names if n not in self.dof_names]
        if missing:
            raise InputError(f"JointLimits: no range for DoF(s) {missing} of the skeleton")
        idx = [self.dof_names.index(n) for n in skeleton.dof_names]
        return self.lower[idx], self.upper[idx]

    def clip(self, q: np.ndarray) -> np.ndarray:
        """``q`` (T, D) clipped into the hard ranges (NaN stays NaN)."""
        return np.clip(np.asarray(q, dtype=float), self.lower, self.upper)

    def at_limit(self, q: np.ndarray, tol_deg: float = 1e-3) -> np.ndarray:
        """Boolean (T, D): where ``q`` lies within ``tol_deg`` of a hard limit."""
        q = np.asarray(q, dtype=float)
        return (np.abs(q - self.lower) <= tol_deg) | (np.abs(q - self.upper) <= tol_deg)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per DoF: ``min_deg``, ``max_deg``, ``source``."""
        return pd.DataFrame(
            {
                "min_deg": self.lower,
                "max_deg": self.upper,
                "source": [self.sources[n] for n in self.dof_names],
            },
            index=pd.Index(self.dof_names, name="dof"),
        )

    def __repr__(self) -> str:
        soft = (
            f", soft prior {self.soft_margin_deg:g} deg x {self.soft_weight:g} mm/deg"
            if self.soft_weight and self.soft_margin_deg
            else ""
        )
        return f"JointLimits({len(self.dof_names)} DoF{soft})"
