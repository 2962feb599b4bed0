"""The skeleton's declaration (``resources/skeleton.yaml`` and files in its layout): the
records a :class:`~medpose.kinematics.skeleton.Skeleton` is built from and their parser."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from ..errors import InputError
from ..io._util import display_name
from ..packaged import resource_yaml

__all__ = ["Offset", "Segment", "parse_spec", "read_yaml"]

_AXES = "XYZ"
_SIDES = ("r", "l")


# ---------------------------------------------------------------------------------- spec records
@dataclass(frozen=True)
class Offset:
    """A point ``sum(coef * lengths[name]) + mm`` (mm) in some segment frame."""

    terms: tuple[tuple[str, tuple[float, float, float]], ...]

    def evaluate(self, lengths: Mapping[str, float]) -> np.ndarray:
        out = np.zeros(3)
        for name, coef in self.terms:
            out += np.asarray(coef) * (1.0 if name == "mm" else lengths[name])
        return out


@dataclass(frozen=True)
class Segment:
    name: str
    parent: str | None
    joint: str
    offset: Offset
    sequence: str
    dofs: tuple[tuple[str, float] | None, ...]
    translations: tuple[str, ...]
    keypoints: tuple[tuple[str, Offset], ...]


def mirror_name(name: str, side: str) -> str:
    return f"{name}_{side}"


def parse_offset(
    raw: Any, where: str, lengths: Iterable[str], side: str | None, bilateral: set[str]
) -> Offset:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError(
            f"{where}: offset must be a mapping {{length name: [cx, cy, cz], mm: [x, y, z]}}, "
            f"found {raw!r}"
        )
    known = set(lengths) | {"mm"}
    terms: list[tuple[str, tuple[float, float, float]]] = []
    for key, coef in raw.items():
        if key not in known:
            raise InputError(f"{where}: unknown length {key!r} in offset; known: {sorted(known)}")
        c = np.asarray(coef, dtype=float) if isinstance(coef, (list, tuple)) else np.array([np.nan])
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            raise InputError(
                f"{where}: offset term {key!r} must be 3 finite numbers, found {coef!r}"
            )
        if side == "l":
            c = c * np.array([1.0, 1.0, -1.0])
        name = mirror_name(key, side) if (side and key in bilateral) else key
        terms.append((name, (float(c[0]), float(c[1]), float(c[2]))))
    return Offset(tuple(terms))


def parse_spec(spec: Any, source: str) -> tuple[dict[str, tuple[float, str]], tuple[Segment, ...]]:
    """Check a skeleton YAML document and expand bilateral segments into ``_r``/``_l``."""
    if not isinstance(spec, Mapping) or "lengths" not in spec or "segments" not in spec:
        raise InputError(f"{source}: expected a mapping with 'lengths' and 'segments'")
    ratios: dict[str, tuple[float, str]] = {}
    for name, row in spec["lengths"].items():
        if not (isinstance(row, list) and len(row) == 2):
            raise InputError(
                f"{source}: lengths.{name} must be [fraction of height, source], found {row!r}"
            )
        ratios[str(name)] = (float(row[0]), str(row[1]))
    bilateral = {
        str(n) for n, s in spec["segments"].items() if isinstance(s, Mapping) and s.get("bilateral")
    }
    for b in bilateral:
        if b not in ratios:
            raise InputError(f"{source}: bilateral segment {b!r} needs a length of the same name")
    length_names = set(ratios)

    segments: list[Segment] = []
    for sname, sraw in spec["segments"].items():
        where = f"{source}: segments.{sname}"
        if not isinstance(sraw, Mapping) or "joint" not in sraw:
            raise InputError(f"{where}: expected a mapping with 'parent', 'joint' and 'keypoints'")
        jraw = sraw["joint"]
        seq = str(jraw.get("sequence", ""))
        if len(seq) != 3 or not set(seq) <= set(_AXES) or len(set(seq)) != 3:
            raise InputError(
                f"{where}.joint.sequence: expected 3 distinct axes of XYZ (Tait-Bryan), found {seq!r}"
            )
        raw_dofs = list(jraw.get("dofs") or [])
        if len(raw_dofs) != 3:
            raise InputError(
                f"{where}.joint.dofs: expected 3 entries ({{name, sign}} or null), found {len(raw_dofs)}"
            )
        sides: tuple[str | None, ...] = _SIDES if sraw.get("bilateral") else (None,)
        for side in sides:
            name = mirror_name(sname, side) if side else str(sname)
            parent = sraw.get("parent")
            if parent is not None and side and parent in bilateral:
                parent = mirror_name(parent, side)
            dofs: list[tuple[str, float] | None] = []
            for axis, d in zip(seq, raw_dofs):
                if d is None:
                    dofs.append(None)
                    continue
                sign = float(d.get("sign", 0))
                if sign not in (1.0, -1.0):
                    raise InputError(
                        f"{where}.joint.dofs: sign of {d.get('name')!r} must be 1 or -1, found {sign}"
                    )
                if side == "l" and axis in "XY":  # mirror across the sagittal plane
                    sign = -sign
                dofs.append((mirror_name(str(d["name"]), side) if side else str(d["name"]), sign))
            kps = []
            for kname, kraw in (sraw.get("keypoints") or {}).items():
                kname = mirror_name(str(kname), side) if side else str(kname)
                kps.append(
                    (
                        kname,
                        parse_offset(
                            kraw, f"{where}.keypoints.{kname}", length_names, side, bilateral
                        ),
                    )
                )
            segments.append(
                Segment(
                    name=name,
                    parent=parent,
                    joint=mirror_name(str(jraw.get("name", sname)), side)
                    if side
                    else str(jraw.get("name", sname)),
                    offset=parse_offset(
                        jraw.get("offset"), f"{where}.joint.offset", length_names, side, bilateral
                    ),
                    sequence=seq,
                    dofs=tuple(dofs),
                    translations=tuple(str(t) for t in (jraw.get("translations") or ())),
                    keypoints=tuple(kps),
                )
            )
    # topology: exactly one root, parents declared before children
    seen: set[str] = set()
    roots = [s.name for s in segments if s.parent is None]
    if len(roots) != 1:
        raise InputError(
            f"{source}: expected exactly one root segment (parent: null), found {roots}"
        )
    for s in segments:
        if s.parent is not None and s.parent not in seen:
            raise InputError(
                f"{source}: segment {s.name!r} has parent {s.parent!r}, which is not declared "
                "before it; known so far: " + str(sorted(seen))
            )
        if s.translations and s.parent is not None:
            raise InputError(
                f"{source}: only the root segment may have translations, found on {s.name!r}"
            )
        if len(s.translations) not in (0, 3):
            raise InputError(
                f"{source}: root translations must be 3 names (X, Y, Z), found {list(s.translations)}"
            )
        seen.add(s.name)
    names = [n for s in segments for n in (*s.translations, *(d[0] for d in s.dofs if d))]
    kp_names = [k for s in segments for k, _ in s.keypoints]
    for what, lst in (("DoF", names), ("keypoint", kp_names)):
        dup = sorted({n for n in lst if lst.count(n) > 1})
        if dup:
            raise InputError(f"{source}: duplicate {what} names {dup}")
    return ratios, tuple(segments)


def read_yaml(path: str | os.PathLike | None, resource: str) -> tuple[Any, str]:
    if path is None:
        return resource_yaml(resource), f"medpose/resources/{resource}"
    else:
        p = os.fspath(path)
        source = display_name(p)
        try:
            with open(p, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise InputError(f"{source}: file not found") from None
    try:
        return yaml.safe_load(text), source
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
