"""ONNX export of a landmark detector's networks, checked with onnxruntime.

Each stage (``"coarse"`` or ``"fine"``) is exported with its soft-argmax: the ONNX model
takes a windowed image on the stage's grid, (B, 1, X, Y, Z) float32, and returns the heatmap
logits (B, K, X, Y, Z) and the sub-voxel positions (B, K, 3) in grid voxels.  Resampling
and the voxel-to-LPS mapping stay in Python (:mod:`medpose.imaging.transforms`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..io._util import atomic_path, display_name
from .detector import LandmarkDetector, soft_argmax

__all__ = ["export_onnx", "check_onnx", "OnnxCheck"]


class _WithSoftArgmax(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        coords, _ = soft_argmax(logits)
        return logits, coords


def _stage(detector: LandmarkDetector, stage: str) -> tuple[nn.Module, tuple[int, ...]]:
    c = detector.config
    if stage == "coarse":
        return detector.coarse, tuple(c.grid)
    if stage == "fine" and detector.fine is not None:
        return detector.fine, (c.fine_patch,) * 3
    raise InputError(
        f"export_onnx: stage must be 'coarse' or 'fine' (this detector has "
        f"{'a' if detector.fine is not None else 'no'} fine stage), found {stage!r}"
    )


def export_onnx(
    detector: LandmarkDetector,
    path: str | os.PathLike,
    *,
    stage: str = "coarse",
    opset: int = 17,
) -> Path:
    """Write one stage of the detector (network + soft-argmax) as an ONNX model, atomically.

    The batch dimension is dynamic; the grid size is the config's.
    """
    net, shape = _stage(detector, stage)
    dest = Path(path)
    module = _WithSoftArgmax(net).to("cpu").eval()
    x = torch.zeros(1, 1, *shape)
    with atomic_path(dest) as tmp, torch.no_grad():
        torch.onnx.export(
            module,
            (x,),
            str(tmp),
            input_names=["image"],
            output_names=["logits", "coords"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "coords": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return dest


@dataclass(frozen=True)
class OnnxCheck:
    """Agreement of an ONNX export with the torch model on one input.

    Attributes
    ----------
    max_logit_diff : float
        Largest absolute difference of the logits.
    max_coord_diff_vox : float
        Largest difference of a soft-argmax coordinate, grid voxels.
    torch_ms, onnx_ms : float
        CPU time of one forward pass (median of ``repeats``), milliseconds.
    """

    max_logit_diff: float
    max_coord_diff_vox: float
    torch_ms: float
    onnx_ms: float

    def __repr__(self) -> str:
        return (
            f"OnnxCheck(max |logit diff| {self.max_logit_diff:.2e}, max coordinate diff "
            f"{self.max_coord_diff_vox:.2e} voxels, torch {self.torch_ms:.1f} ms, "
            f"onnxruntime {self.onnx_ms:.1f} ms)"
        )


def check_onnx(
    detector: LandmarkDetector,
    path: str | os.PathLike,
    image: torch.Tensor | None = None,
    *,
    stage: str = "coarse",
    repeats: int = 3,
    seed: int = 0,
) -> OnnxCheck:
    """Run the ONNX model with onnxruntime (CPU) and the torch stage on the same input.

    ``image``: (B, 1, X, Y, Z) on the stage's grid; default a seeded random image in [0, 1].
    """
    import time

    import onnxruntime as ort

    net, shape = _stage(detector, stage)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"check_onnx: {display_name(p)}: no such file")
    if image is None:
        g = torch.Generator().manual_seed(seed)
        image = torch.rand(1, 1, *shape, generator=g)
    x = image.detach().to("cpu", torch.float32)
    module = _WithSoftArgmax(net).to("cpu").eval()
    sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])

    def timed(f: Any) -> tuple[Any, float]:
        times, out = [], None
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            out = f()
            times.append((time.perf_counter() - t0) * 1e3)
        return out, float(np.median(times))

    with torch.no_grad():
        (t_logits, t_coords), t_ms = timed(lambda: module(x))
    (o_logits, o_coords), o_ms = timed(lambda: sess.run(None, {"image": x.numpy()}))
    return OnnxCheck(
        max_logit_diff=float(np.abs(t_logits.numpy() - o_logits).max()),
        max_coord_diff_vox=float(np.abs(t_coords.numpy() - o_coords).max()),
        torch_ms=t_ms,
        onnx_ms=o_ms,
    )
