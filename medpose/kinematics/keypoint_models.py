"""Keypoint models: where each keypoint of a layout sits in medpose's skeleton, with a source.

A detector's keypoints are not medpose's joint centres, and a marker set puts its markers where
its model says (Pose2Sim's OpenSim ``RShoulder`` is fixed to the torso, not the humerus).  A
keypoint model says, for every keypoint of one layout, which medpose keypoint it stands for
(hence its segment), its prior position in that segment's frame, how uncertain that prior is
(``sd_mm``), and where each of the three values comes from.  The models are data, one YAML file
each in ``medpose/resources/keypoint_models/`` (read with ``yaml.safe_load``).

>>> from medpose.kinematics import Skeleton, load_keypoint_model
>>> model = load_keypoint_model("pose2sim_halpe26")
>>> model.keypoint("RShoulder").medpose, model.keypoint("RShoulder").segment
('acromion_r', 'trunk')
>>> sk = model.apply(Skeleton.default(1700.0))       # keypoints at the model's priors
>>> offsets, sd = model.prior(Skeleton.default(1700.0))
>>> sd["acromion_r"]
5.0
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from ..data import KeypointSequence
from ..errors import InputError
from ..layouts import Layout, canonical_keypoints, get_layout
from ..packaged import resource_text
from .skeleton import Skeleton

__all__ = [
    "KeypointModel",
    "KeypointPrior",
    "load_keypoint_model",
    "keypoint_model_for",
    "list_keypoint_models",
]

#: Packaged models (``resources/keypoint_models/<name>.yaml``).
_MODELS = (
    "halpe26",
    "pose2sim_halpe26",
    "coco17",
    "mediapipe33",
    "body25",
    "h36m17",
    "kinect_v2",
)
#: The model :func:`keypoint_model_for` picks for each layout.
_DEFAULT_FOR_LAYOUT = {
    "halpe26": "halpe26",
    "coco17": "coco17",
    "mediapipe33": "mediapipe33",
    "body25": "body25",
    "h36m17": "h36m17",
    "kinect_v2": "kinect_v2",
}
_SOURCE_KEYS = ("medpose", "offset", "sd_mm")
_SIDES = ("_r", "_l")


def list_keypoint_models() -> list[str]:
    """Names of the packaged keypoint models."""
    return list(_MODELS)


# ---------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class KeypointPrior:
    """One keypoint of a layout in a keypoint model.

    Attributes
    ----------
    native : str
        The layout's name for it (``RShoulder``).
    medpose : str or None
        The medpose keypoint it stands for (``acromion_r``); None: no medpose keypoint, not fitted.
    segment : str or None
        The skeleton segment that keypoint moves with (from ``resources/keypoints.yaml``).
    offset : tuple of (str, (cx, cy, cz)) or None
        Prior position in the segment's frame: ``sum(c * lengths[name])`` mm, ``mm`` terms in mm;
        None: the keypoint's position in ``resources/skeleton.yaml`` (medpose's default).
    sd_mm : float or None
        Prior standard deviation per axis, mm.
    source : Mapping[str, str]
        Where each value comes from: keys ``medpose``, ``offset``, ``sd_mm``.
    """

    native: str
    medpose: str | None
    segment: str | None
    offset: tuple[tuple[str, tuple[float, float, float]], ...] | None
    sd_mm: float | None
    source: Mapping[str, str]

    def kind(self, value: str = "offset") -> str:
        """``measured``, ``published``, ``default`` or ``assumption``: what the source of
        ``value`` (``"offset"``, ``"sd_mm"`` or ``"medpose"``) is."""
        return _source_kind(self.source.get(value, ""))

    def offset_text(self) -> str:
        """The offset as written in the file (``default`` for medpose's default)."""
        if self.offset is None:
            return "default" if self.medpose else ""
        return ", ".join(f"{k}: [{', '.join(f'{c:g}' for c in v)}]" for k, v in self.offset)


def _source_kind(text: str) -> str:
    t = text.strip().lower()
    if t.startswith("measured"):
        return "measured"
    if t.startswith("medpose default"):
        return "default"
    if t.startswith("medpose assumption"):
        return "assumption"
    return "published"


@dataclass(frozen=True, eq=False)
class KeypointModel:
    """Priors for the keypoints of one layout: medpose name, segment, offset, sd, source.

    Build with :func:`load_keypoint_model` (or :func:`keypoint_model_for`).

    Attributes
    ----------
    name : str
        Model name (``pose2sim_halpe26``).
    layout : str
        Layout id (``halpe26``; ``kinect_v2`` for the UI-PRMD names).
    description : str
    keypoints : tuple of KeypointPrior
        One per keypoint of the layout, in the layout's order.
    source_file : str
        The file it was read from (for messages).
    fit_prior : Mapping[str, float]
        Posture prior (degrees, as :func:`~medpose.kinematics.fit.fit`'s ``prior``) for the
        rotations this layout barely sees; a fit with a skeleton calibrated on this model uses
        it unless the call gives its own.  Empty for most models.
    auto_calibrate : bool
        Whether :func:`~medpose.kinematics.fit.fit`'s default (``calibrate="auto"``) calibrates
        this layout on the sequence itself; False for ``kinect_v2``, whose joints' errors change
        with posture (a calibration distorts the angles: :attr:`auto_calibrate_source`).
    auto_calibrate_source : str
        The measurement behind that setting; empty when the file gives none.
    """

    name: str
    layout: str
    description: str
    keypoints: tuple[KeypointPrior, ...]
    source_file: str
    fit_prior: Mapping[str, float] = field(default_factory=dict)
    auto_calibrate: bool = True
    auto_calibrate_source: str = ""

    # ------------------------------------------------------------------ look-ups
    @property
    def native_names(self) -> tuple[str, ...]:
        """The layout's keypoint names, in order."""
        return tuple(k.native for k in self.keypoints)

    @property
    def medpose_names(self) -> tuple[str, ...]:
        """The medpose keypoint of each layout keypoint that has one, in layout order."""
        return tuple(k.medpose for k in self.keypoints if k.medpose)

    def keypoint(self, name: str) -> KeypointPrior:
        """The entry for a layout name, one of its aliases, or the medpose name of either.

        Raises
        ------
        InputError
            The name is not a keypoint of this model's layout (the message lists them).
        """
        hit = self._lookup().get(name) or self._lookup_folded().get(str(name).casefold())
        if hit is None:
            raise InputError(
                f"{self.source_file}: keypoint {name!r} is not in layout {self.layout}; "
                f"expected one of {list(self.native_names)}"
            )
        return hit

    def _lookup(self) -> dict[str, KeypointPrior]:
        return _lookup_table(self)

    def _lookup_folded(self) -> dict[str, KeypointPrior]:
        return {k.casefold(): v for k, v in _lookup_table(self).items()}

    # ------------------------------------------------------------------ priors
    def offsets_mm(self, skeleton: Skeleton) -> dict[str, np.ndarray]:
        """Each medpose keypoint's prior position in its segment's frame, mm, scaled with the
        skeleton's lengths (``default`` entries: the skeleton.yaml position at those lengths)."""
        out: dict[str, np.ndarray] = {}
        for k in self.keypoints:
            if not k.medpose:
                continue
            if k.offset is None:
                out[k.medpose] = _default_offset(skeleton, k.medpose)
            else:
                out[k.medpose] = _evaluate(k, skeleton, self.source_file)
        return out

    def sd_mm(self) -> dict[str, float]:
        """Each medpose keypoint's prior standard deviation per axis, mm."""
        return {k.medpose: float(k.sd_mm) for k in self.keypoints if k.medpose and k.sd_mm}

    def prior(self, skeleton: Skeleton) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """``(offsets_mm, sd_mm)``: medpose keypoint -> prior position (3,) in its segment's
        frame at the skeleton's lengths, and -> prior standard deviation per axis (mm).

        The keys are the medpose names after :meth:`rename` (``acromion_r`` for Pose2Sim's
        ``RShoulder``), i.e. the names a calibration of the renamed sequence sees.
        """
        return self.offsets_mm(skeleton), self.sd_mm()

    def apply(self, skeleton: Skeleton) -> Skeleton:
        """A copy of the skeleton whose keypoints sit at this model's priors.

        The offsets are evaluated at the skeleton's current lengths and then fixed in mm
        (:meth:`Skeleton.with_offsets`): set the lengths first (``with_lengths``), then apply.
        Keypoints the model does not name keep their position.
        """
        offsets = {k: tuple(map(float, v)) for k, v in self.offsets_mm(skeleton).items()}
        return skeleton.with_offsets(keypoints=offsets)

    def rename(self, sequence: KeypointSequence) -> KeypointSequence:
        """The sequence with each keypoint named as the medpose keypoint this model maps it to.

        Layout names, their aliases and the layout's own medpose names are accepted (a
        Pose2Sim TRC read as ``shoulder_r`` becomes ``acromion_r`` under ``pose2sim_halpe26``).
        Keypoints the model maps to no medpose keypoint keep their name.  The sequence may
        hold a subset of the layout.

        Raises
        ------
        InputError
            A keypoint of the sequence is not in the model's layout (the message names the
            model file, the keypoint and the expected names), or two keypoints would get the
            same name.
        """
        names = tuple(sequence.names)
        table, folded = self._lookup(), self._lookup_folded()
        hits = [table.get(n) or folded.get(str(n).casefold()) for n in names]
        foreign = [n for n, k in zip(names, hits) if k is None]
        if foreign:
            try:
                theirs = f"layout {keypoint_model_for(names).layout}"
            except InputError:
                theirs = "no layout medpose knows"
            raise InputError(
                f"keypoint model {self.name!r} ({self.source_file}) is for layout {self.layout}, "
                f"but the sequence's keypoints {foreign[:6]}"
                + (f" (and {len(foreign) - 6} more)" if len(foreign) > 6 else "")
                + f" are not in it (its names are those of {theirs}); expected names among "
                f"{list(self.native_names)}: use the model of the sequence's own layout (a "
                "calibration is made and used on one layout)"
            )
        new = [k.medpose or n for n, k in zip(names, hits) if k is not None]
        dup = sorted({n for n in new if new.count(n) > 1})
        if dup:
            raise InputError(
                f"{self.source_file}: keypoints {[o for o, n in zip(names, new) if n in dup]} "
                f"of the sequence would all be named {dup}; expected each keypoint of layout "
                f"{self.layout} once"
            )
        return sequence.rename(dict(zip(names, new)))

    # ------------------------------------------------------------------ display
    def counts(self, value: str = "offset") -> dict[str, int]:
        """How many ``value`` entries (``"offset"`` or ``"sd_mm"``) are measured, published,
        default or assumption (keypoints with a medpose keypoint only)."""
        out = {"measured": 0, "published": 0, "default": 0, "assumption": 0}
        for k in self.keypoints:
            if k.medpose:
                out[k.kind(value)] += 1
        return out

    def __repr__(self) -> str:
        def tally(value: str) -> str:
            return ", ".join(f"{v} {k}" for k, v in self.counts(value).items() if v)

        unused = sum(1 for k in self.keypoints if not k.medpose)
        extra = f"; {unused} not fitted" if unused else ""
        return (
            f"KeypointModel({self.name!r}, layout {self.layout}, {len(self.keypoints)} keypoints; "
            f"offsets: {tally('offset')}; sd: {tally('sd_mm')}{extra})"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(k.native)}</td><td>{e(k.medpose or '—')}</td><td>{e(k.segment or '')}</td>"
            f"<td><code>{e(k.offset_text())}</code></td>"
            f"<td>{'' if k.sd_mm is None else f'{k.sd_mm:g}'}</td>"
            f"<td>{e(k.kind('offset') if k.medpose else '')}</td>"
            f"<td><small>{e(k.source.get('offset', k.source.get('medpose', '')))}</small></td></tr>"
            for k in self.keypoints
        )
        return (
            f"<div><b>{e(self.name)}</b> <code>layout {e(self.layout)}</code>"
            f"<p>{e(self.description)}</p>"
            "<table><tr><th>keypoint</th><th>medpose</th><th>segment</th><th>offset</th>"
            "<th>sd mm</th><th>offset is</th><th>source of the offset</th></tr>"
            f"{rows}</table><small>{e(self.source_file)}</small></div>"
        )


@cache
def _lookup_table(model: KeypointModel) -> dict[str, KeypointPrior]:
    lay = _layout(model.layout, model.source_file)
    out: dict[str, KeypointPrior] = {}
    by_native = {k.native: k for k in model.keypoints}
    for native, aliases, med in zip(lay.native, lay.aliases, lay.medpose):
        k = by_native[native]
        for n in (native, *aliases, med, *([k.medpose] if k.medpose else [])):
            out.setdefault(n, k)
    return out


# ---------------------------------------------------------------------------------- offsets
def _default_offset(skeleton: Skeleton, name: str) -> np.ndarray:
    """The keypoint's skeleton.yaml position at the skeleton's lengths (ignores with_offsets)."""
    for seg in skeleton._segments:
        for kname, off in seg.keypoints:
            if kname == name:
                return off.evaluate(skeleton.lengths)
    raise InputError(
        f"keypoint {name!r} is not in the skeleton; known: {list(skeleton.keypoint_names)}"
    )


def _evaluate(k: KeypointPrior, skeleton: Skeleton, source: str) -> np.ndarray:
    out = np.zeros(3)
    for term, coef in k.offset or ():
        if term == "mm":
            out += np.asarray(coef)
            continue
        name = _length_name(term, k.medpose or "", skeleton.lengths)
        if name is None:
            raise InputError(
                f"{source}: keypoint {k.native}: unknown length {term!r} in its offset; "
                f"known: {sorted(skeleton.lengths)}"
            )
        out += np.asarray(coef) * skeleton.lengths[name]
    return out


def _length_name(term: str, medpose: str, lengths: Iterable[str]) -> str | None:
    known = set(lengths)
    if term in known:
        return term
    side = medpose[-2:] if medpose[-2:] in _SIDES else None
    if side and f"{term}{side}" in known:
        return f"{term}{side}"
    return None


# ---------------------------------------------------------------------------------- loading
def _layout(name: str, source: str) -> Layout:
    if name == "kinect_v2":
        from ..io.uiprmd import UIPRMD_NAMES

        return Layout(
            name="kinect_v2",
            native=UIPRMD_NAMES,
            medpose=UIPRMD_NAMES,
            description="Kinect v2 joints as UI-PRMD gives them (medpose.io.read_uiprmd)",
            source="medpose/io/uiprmd.py",
        )
    try:
        return get_layout(name)
    except InputError as exc:
        raise InputError(f"{source}: layout: {exc}") from None


def load_keypoint_model(name: str | os.PathLike) -> KeypointModel:
    """A keypoint model by name (one of :func:`list_keypoint_models`) or from a YAML file.

    Parameters
    ----------
    name : str or path-like
        ``halpe26``, ``pose2sim_halpe26``, ``coco17``, ``mediapipe33``, ``body25``, ``h36m17``,
        ``kinect_v2``; or the path of a file in the same format (``*.yaml``).

    Raises
    ------
    InputError
        Unknown name (the message lists the known ones); a file that is not a keypoint model:
        not valid YAML, a layout keypoint missing or extra, an unknown medpose keypoint or
        length, a standard deviation that is not a positive number, a value without a source
        (the message names the file and the keypoint).
    """
    if isinstance(name, str) and name in _MODELS:
        return _load_packaged(name)
    p = Path(os.fspath(name))
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise InputError(f"{p.name}: keypoint model file not found")
        text = p.read_text(encoding="utf-8")
        return _parse(text, str(p))
    raise InputError(
        f"unknown keypoint model {str(name)!r}; known models: {list(_MODELS)} "
        "(or the path of a .yaml file)"
    )


@cache
def _load_packaged(name: str) -> KeypointModel:
    rel = f"keypoint_models/{name}.yaml"
    return _parse(resource_text(rel), f"medpose/resources/{rel}")


def _parse(text: str, source: str) -> KeypointModel:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keypoints"), list):
        raise InputError(f"{source}: expected a mapping with 'name', 'layout' and 'keypoints'")
    for key in ("name", "layout"):
        if not isinstance(doc.get(key), str):
            raise InputError(f"{source}: '{key}' must be a string, found {doc.get(key)!r}")
    lay = _layout(doc["layout"], source)
    canon = canonical_keypoints()
    sk = _default_skeleton()
    entries: list[KeypointPrior] = []
    for i, raw in enumerate(doc["keypoints"]):
        entries.append(_parse_entry(raw, i, source, canon, sk))
    # the keypoints must be those of the layout, each once
    natives = [k.native for k in entries]
    missing = [n for n in lay.native if n not in natives]
    extra = [n for n in natives if n not in lay.native]
    dup = sorted({n for n in natives if natives.count(n) > 1})
    if missing or extra or dup:
        raise InputError(
            f"{source}: keypoints do not match layout {lay.name}: missing {missing}, "
            f"not in the layout {extra}, repeated {dup}; expected each of {list(lay.native)} once"
        )
    meds = [k.medpose for k in entries if k.medpose]
    dupm = sorted({n for n in meds if meds.count(n) > 1})
    if dupm:
        raise InputError(f"{source}: medpose keypoints {dupm} are given to more than one keypoint")
    order = {n: i for i, n in enumerate(lay.native)}
    entries.sort(key=lambda k: order[k.native])
    return KeypointModel(
        name=str(doc["name"]),
        layout=lay.name,
        description=str(doc.get("description", "")),
        keypoints=tuple(entries),
        source_file=source,
        fit_prior=MappingProxyType(_fit_prior(doc.get("fit_prior"), source)),
        **_auto_calibrate(doc.get("auto_calibrate"), source),
    )


def _auto_calibrate(raw: Any, source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    ok = isinstance(raw, Mapping) and set(raw) == {"use", "source"}
    ok = ok and isinstance(raw["use"], bool) and isinstance(raw["source"], str)
    if not (ok and raw["source"].strip()):
        raise InputError(
            f"{source}: 'auto_calibrate' must be {{use: true or false, source: <text>}}, "
            f"found {raw!r}"
        )
    return {"auto_calibrate": raw["use"], "auto_calibrate_source": raw["source"].strip()}


def _fit_prior(raw: Any, source: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(v, Mapping) and isinstance(v.get("sd_deg"), (int, float)) and v["sd_deg"] > 0
        for v in raw.values()
    ):
        raise InputError(
            f"{source}: 'fit_prior' must map a DoF name to {{sd_deg: <number > 0>, source: ...}}, "
            f"found {raw!r}"
        )
    return {str(k): float(v["sd_deg"]) for k, v in raw.items()}


@cache
def _default_skeleton() -> Skeleton:
    return Skeleton.default()


def _parse_entry(
    raw: Any, i: int, source: str, canon: Mapping[str, Any], sk: Skeleton
) -> KeypointPrior:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("native"), str):
        raise InputError(f"{source}: keypoints[{i}] must be a mapping with 'native', found {raw!r}")
    native = raw["native"]
    where = f"{source}: keypoint {native}"
    med = raw.get("medpose")
    src = raw.get("source")
    if not isinstance(src, Mapping):
        raise InputError(f"{where}: 'source' must map {list(_SOURCE_KEYS)} to text, found {src!r}")
    needed = _SOURCE_KEYS if med is not None else ("medpose",)
    for key in needed:
        if not isinstance(src.get(key), str) or not src[key].strip():
            raise InputError(f"{where}: no source for '{key}' (expected source.{key}: text)")
    source_map = {str(k): str(v) for k, v in src.items()}
    if med is None:
        return KeypointPrior(native, None, None, None, None, source_map)
    if not isinstance(med, str) or med not in canon or med not in sk.keypoint_names:
        raise InputError(
            f"{where}: medpose keypoint {med!r} is not a medpose keypoint; expected one of "
            f"resources/keypoints.yaml: {sorted(canon)}"
        )
    segment = str(canon[med]["segment"])
    off = raw.get("offset")
    offset: tuple[tuple[str, tuple[float, float, float]], ...] | None
    if off == "default":
        offset = None
    elif isinstance(off, Mapping) and off:
        terms = []
        for term, coef in off.items():
            c = np.asarray(coef, dtype=float) if isinstance(coef, (list, tuple)) else None
            if c is None or c.shape != (3,) or not np.all(np.isfinite(c)):
                raise InputError(
                    f"{where}: offset term {term!r} must be 3 finite numbers, found {coef!r}"
                )
            if term != "mm" and _length_name(str(term), med, sk.lengths) is None:
                raise InputError(
                    f"{where}: unknown length {term!r} in its offset; expected 'mm' or one of "
                    f"{sorted(sk.lengths)} (bilateral names without the side are taken on the "
                    "keypoint's side)"
                )
            terms.append((str(term), (float(c[0]), float(c[1]), float(c[2]))))
        offset = tuple(terms)
    else:
        raise InputError(
            f"{where}: offset must be 'default' or a mapping {{length name: [cx, cy, cz], "
            f"mm: [x, y, z]}}, found {off!r}"
        )
    sd = raw.get("sd_mm")
    sdv = float(sd) if isinstance(sd, (int, float)) and not isinstance(sd, bool) else math.nan
    if not math.isfinite(sdv) or sdv <= 0:
        raise InputError(f"{where}: sd_mm must be a positive number of mm, found {sd!r}")
    return KeypointPrior(native, med, segment, offset, sdv, source_map)


# ---------------------------------------------------------------------------------- choice
def keypoint_model_for(sequence_or_names: KeypointSequence | Sequence[str]) -> KeypointModel:
    """The default keypoint model for a sequence's layout, from its keypoint names.

    HALPE_26 names give the ``halpe26`` detector model (use
    ``load_keypoint_model("pose2sim_halpe26")`` for markers from Pose2Sim's OpenSim model),
    COCO 17 names ``coco17``, and so on; UI-PRMD's Kinect names give ``kinect_v2``.  Native
    names, aliases and medpose names are all recognised.  A layout that holds exactly the
    names is preferred; otherwise the smallest layout that holds them all.

    Raises
    ------
    InputError
        No layout holds all the names (the message names those that no layout knows and the
        known models).
    """
    if isinstance(sequence_or_names, KeypointSequence):
        names = list(sequence_or_names.names)
    else:
        names = list(sequence_or_names)
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"keypoint_model_for: expected keypoint names, found {names!r}")
    candidates = []
    for model_name in _DEFAULT_FOR_LAYOUT.values():
        model = load_keypoint_model(model_name)
        table = model._lookup()
        folded = model._lookup_folded()
        hits = [table.get(n) or folded.get(n.casefold()) for n in names]
        if all(h is not None for h in hits):
            covered = {h.native for h in hits if h is not None}
            exact = len(covered) == len(model.keypoints)
            candidates.append((not exact, len(model.keypoints), model))
    if not candidates:
        known: set[str] = set()
        for model_name in _DEFAULT_FOR_LAYOUT.values():
            known |= set(load_keypoint_model(model_name)._lookup())
        unknown = [n for n in names if n not in known]
        raise InputError(
            "keypoint_model_for: no keypoint model's layout holds all of these keypoints"
            + (f"; not in any layout: {unknown}" if unknown else "")
            + f"; known models: {list(_MODELS)}"
        )
    candidates.sort(key=lambda c: (c[0], c[1]))
    return candidates[0][2]
