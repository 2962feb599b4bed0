"""INT8 dynamic quantization of the keypoint refiner (CPU inference).

:func:`quantize_refiner` converts every ``nn.Linear`` of a float
:class:`~medpose.learning.refiner.KeypointRefiner` to a dynamically quantized one
(:func:`torch.ao.quantization.quantize_dynamic`: int8 weights, activations quantized per batch
at run time); layer norms, embeddings and the attention arithmetic stay in float.  The result
runs through :func:`~medpose.learning.refiner.refine_positions` like the original.

PyTorch marks the ``torch.ao.quantization`` eager-mode API as deprecated in favour of the
separate ``torchao`` package; its warnings are silenced here, the conversion is unchanged.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

from .refiner import KeypointRefiner

__all__ = ["quantize_refiner", "state_size_bytes"]


def quantize_refiner(model: KeypointRefiner) -> KeypointRefiner:
    """An int8 dynamically quantized copy of ``model`` (on the CPU; ``model`` is untouched)."""
    float_model = copy.deepcopy(model).to("cpu").eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(deprecat|torchao).*")
        quantized = torch.ao.quantization.quantize_dynamic(
            float_model, {nn.Linear}, dtype=torch.qint8, inplace=False
        )
    return quantized


def state_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's serialised state dict (weights and packed int8 parameters)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes
