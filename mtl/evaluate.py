"""Batched inference over cached images: model outputs and predictions for a split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtl.dataset import FaceBatches, make_loader, to_model_input
from mtl.model import MultiTaskNet


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on CPU (bf16 does not speed up CPU training)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.inference_mode()
def forward_frame(model: MultiTaskNet, images: np.ndarray, frame: pd.DataFrame, *, device: torch.device,
                  batch_size: int = 256, channels_last: bool = True) -> dict[str, torch.Tensor]:
    """Model outputs (on CPU, float) for the rows of ``frame``, which index ``images`` via ``cache_index``."""
    model.eval()
    dataset = FaceBatches(images, frame["cache_index"].to_numpy(), frame["age"].to_numpy(), frame["gender"].to_numpy())
    chunks: dict[str, list[torch.Tensor]] = {}
    for pixels, _, _ in make_loader(dataset, batch_size, shuffle=False):
        with autocast(device):
            out = model.infer(to_model_input(pixels, device, channels_last))
        for key, value in out.items():
            chunks.setdefault(key, []).append(value.float().cpu())
    return {key: torch.cat(values) for key, values in chunks.items()}


def predict_frame(model: MultiTaskNet, images: np.ndarray, frame: pd.DataFrame, *, device: torch.device,
                  batch_size: int = 256, channels_last: bool = True) -> pd.DataFrame:
    """``frame`` with ``pred_age`` and ``female_probability`` columns added."""
    out = forward_frame(model, images, frame, device=device, batch_size=batch_size, channels_last=channels_last)
    result = frame.copy()
    result["pred_age"] = out["age"].numpy() if len(frame) else []
    result["female_probability"] = torch.sigmoid(out["gender_logit"]).numpy() if len(frame) else []
    return result


