"""The multi-task network: a timm trunk, a gender head and an age head, one forward pass."""

from __future__ import annotations

import timm
import torch
from torch import nn

from mtl.config import ModelConfig
from mtl.ordinal import AgeBins, CoralLayer
from mtl.weights import WeightsInfo, load_pretrained

AGE_MEAN, AGE_STD = 33.0, 20.0  # regression output scale (UTKFace-like), refined from training data


class MultiTaskNet(nn.Module):
    """Input: NCHW float images in [0, 1]. Output dict: ``age`` (years), ``gender_logit`` (female),
    and ``age_logits`` (N, K-1 CORAL logits) for the ordinal formulation."""

    def __init__(self, trunk: nn.Module, *, age_formulation: str, bins: AgeBins | None, drop_rate: float = 0.2):
        super().__init__()
        if age_formulation not in ("regression", "ordinal"):
            raise ValueError(f"unknown age formulation {age_formulation!r}")
        if age_formulation == "ordinal" and bins is None:
            raise ValueError("the ordinal formulation needs AgeBins")
        self.trunk = trunk
        self.age_formulation = age_formulation
        self.bins = bins
        self.tta_flip = False
        cfg = getattr(trunk, "pretrained_cfg", {}) or {}
        mean = cfg.get("mean", (0.485, 0.456, 0.406))
        std = cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        features = getattr(trunk, "head_hidden_size", None) or trunk.num_features
        self.dropout = nn.Dropout(drop_rate)
        self.gender_head = nn.Linear(features, 1)
        if age_formulation == "ordinal":
            self.age_head = CoralLayer(features, bins.num_bins)
        else:
            self.age_head = nn.Linear(features, 1)
            self.register_buffer("age_mean", torch.tensor(AGE_MEAN))
            self.register_buffer("age_std", torch.tensor(AGE_STD))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = (images - self.pixel_mean) / self.pixel_std
        features = self.dropout(self.trunk(x)).float()
        out = {"gender_logit": self.gender_head(features).squeeze(1)}
        if self.age_formulation == "ordinal":
            logits = self.age_head(features)
            out["age_logits"] = logits
            out["age"] = self.bins.expected_age(torch.sigmoid(logits))
        else:
            out["age"] = self.age_mean + self.age_std * self.age_head(features).squeeze(1)
        return out


    def infer(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference outputs; with ``tta_flip`` the mean over the image and its mirror image."""
        out = self(images)
        if not self.tta_flip:
            return out
        mirrored = self(images.flip(3))
        merged = {"age": (out["age"] + mirrored["age"]) / 2}
        female = (torch.sigmoid(out["gender_logit"]) + torch.sigmoid(mirrored["gender_logit"])) / 2
        merged["gender_logit"] = torch.logit(female.clamp(1e-7, 1 - 1e-7))
        if "age_logits" in out:
            merged["age_logits"] = (out["age_logits"] + mirrored["age_logits"]) / 2
        return merged


def create_model(cfg: ModelConfig, *, pretrained: bool = True) -> tuple[MultiTaskNet, WeightsInfo]:
    """Build the network from the model config; ``pretrained=False`` skips weight loading (for
    rebuilding a trained model whose state dict is loaded next)."""
    try:
        trunk = timm.create_model(cfg.backbone, pretrained=False, num_classes=0)
    except RuntimeError as exc:
        raise ValueError(f"model.backbone={cfg.backbone!r} is not a timm model: {exc}") from None
    info = load_pretrained(trunk, cfg.backbone, cfg.weights) if pretrained else WeightsInfo("state-dict")
    bins = AgeBins(min_age=cfg.min_age, max_age=cfg.max_age, width=cfg.bin_width)
    model = MultiTaskNet(trunk, age_formulation=cfg.age_formulation,
                         bins=bins if cfg.age_formulation == "ordinal" else None, drop_rate=cfg.drop_rate)
    model.tta_flip = cfg.tta_flip
    return model, info


def init_age_head(model: MultiTaskNet, train_ages: torch.Tensor) -> None:
    """Start the age head at the training label distribution (prior for CORAL, mean/std for regression)."""
    if model.age_formulation == "ordinal":
        model.age_head.init_biases_from_prior(model.bins.levels(train_ages).mean(dim=0))
    else:
        model.age_mean.fill_(float(train_ages.mean()))
        model.age_std.fill_(float(train_ages.std().clamp(min=1.0)))
