"""Refiner checkpoints: weights as safetensors, architecture and training record as JSON.

``save_refiner(model, "refiner.safetensors")`` writes ``refiner.safetensors`` (tensors, and the
config again in its metadata) and ``refiner.json`` beside it::

    {"format": "medpose-refiner", "version": 1,
     "config": {"keypoints": [...], "d_model": 64, ...},
     "training": {...}}

:func:`load_refiner` refuses a pair whose config and tensors do not match (names, shapes, the
config copy inside the safetensors), or whose keypoints are not the ones the caller expects,
and names the difference.  No pickle is involved anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import InputError
from ..io._util import atomic_path, atomic_write, display_name
from .refiner import KeypointRefiner, RefinerConfig

__all__ = ["FORMAT", "default_refiner", "default_refiner_path", "load_refiner", "save_refiner"]

FORMAT = "medpose-refiner"
VERSION = 1


def _config_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_refiner(
    model: KeypointRefiner, path: str | os.PathLike, training: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``path`` (``.safetensors``) and its config to ``path`` with ``.json``.

    ``training`` (JSON-able: command, seed, steps, data, final loss...) is recorded in the JSON.
    Both files are written atomically.  Returns the ``.safetensors`` path.
    """
    dest = Path(path)
    if dest.suffix != ".safetensors":
        raise InputError(f"save_refiner: {dest.name}: expected a .safetensors file name")
    config = model.config.to_dict()
    doc = {"format": FORMAT, "version": VERSION, "config": config, "training": training or {}}
    text = json.dumps(doc, indent=2, sort_keys=True)  # fails early if training is not JSON-able
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "config": json.dumps(config, sort_keys=True)}
    with atomic_path(dest, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    with atomic_write(_config_path(dest)) as fh:
        fh.write(text + "\n")
    return dest


def _read_config(path: Path) -> tuple[RefinerConfig, dict[str, Any]]:
    cfg_path = _config_path(path)
    name = display_name(cfg_path)
    if not cfg_path.is_file():
        raise InputError(f"{name}: refiner config not found (expected beside {path.name})")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"{name}: field 'format' is {found!r}, expected {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise InputError(f"{name}: field 'version' is {doc.get('version')!r}, expected {VERSION}")
    config = RefinerConfig.from_dict(doc.get("config"), source=f"{name}: field 'config'")  # type: ignore[arg-type]
    training = doc.get("training", {})
    return config, training if isinstance(training, dict) else {}


def load_refiner(
    path: str | os.PathLike,
    *,
    keypoints: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> KeypointRefiner:
    """Load a refiner written by :func:`save_refiner` (eval mode, on ``device``).

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` file; its ``.json`` config must lie beside it.
    keypoints : sequence of str, optional
        The keypoint names (in order) the caller expects; refused if the checkpoint's differ.

    Raises
    ------
    InputError
        A file is missing or unreadable; the config copy inside the safetensors differs from
        the JSON; tensor names or shapes differ from the architecture the config describes;
        or the keypoint names differ from ``keypoints``.  The message names the difference.
    """
    src = Path(path)
    name = display_name(src)
    if not src.is_file():
        raise InputError(f"{name}: refiner weights not found")
    config, training = _read_config(src)
    if keypoints is not None and tuple(keypoints) != config.keypoints:
        want, have = list(keypoints), list(config.keypoints)
        extra = [n for n in have if n not in want]
        lacking = [n for n in want if n not in have]
        detail = (
            f"checkpoint has {extra} not expected, lacks {lacking}"
            if extra or lacking
            else "same names in another order"
        )
        raise InputError(f"{name}: keypoint names differ from those expected ({detail})")
    try:
        tensors = load_file(str(src), device="cpu")
        with open(src, "rb") as fh:  # the metadata header (8-byte length + JSON)
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{name}: not a readable safetensors file ({exc})") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise InputError(
            f"{name}: metadata 'format' is {meta.get('format')!r}, expected {FORMAT!r}"
        )
    if meta.get("config") != json.dumps(config.to_dict(), sort_keys=True):
        raise InputError(
            f"{name}: the config stored in the weights differs from {_config_path(src).name}"
        )
    model = KeypointRefiner(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"{name}: tensor names differ from the architecture: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    wrong = [
        f"{k}: {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(tensors[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise InputError(f"{name}: tensor shapes differ from the architecture: {wrong[:5]}")
    model.load_state_dict(tensors)
    model.training_record = training  # type: ignore[assignment]
    return model.to(device).eval()


def default_refiner_path() -> Path:
    """The refiner shipped with medpose (``medpose/resources/models/refiner.safetensors``)."""
    return Path(str(resources.files("medpose") / "resources" / "models" / "refiner.safetensors"))


def default_refiner(device: str | torch.device = "cpu") -> KeypointRefiner:
    """Load the shipped refiner (MediaPipe's 33 keypoints; see ``docs/learning.md``)."""
    return load_refiner(default_refiner_path(), device=device)
