"""Per-task losses and how they are weighted: fixed weights or learned uncertainty (Kendall 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtl.ordinal import AgeBins, coral_loss

TASKS = ("age", "gender")


def age_loss(outputs: dict[str, torch.Tensor], age: torch.Tensor, *, formulation: str, bins: AgeBins | None,
             regression_loss: str = "smooth_l1", age_scale: float = 10.0) -> torch.Tensor:
    """Age loss: CORAL loss over bins, or L1 / smooth-L1 on age in units of ``age_scale`` years."""
    if formulation == "ordinal":
        return coral_loss(outputs["age_logits"], bins.levels(age))
    pred = outputs["age"] / age_scale
    target = age / age_scale
    if regression_loss == "l1":
        return F.l1_loss(pred, target)
    return F.smooth_l1_loss(pred, target, beta=0.2)


def gender_loss(outputs: dict[str, torch.Tensor], gender: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the female logit."""
    return F.binary_cross_entropy_with_logits(outputs["gender_logit"], gender)


class FixedWeighting(nn.Module):
    """total = w_age * L_age + w_gender * L_gender."""

    def __init__(self, age_weight: float = 1.0, gender_weight: float = 1.0):
        super().__init__()
        self.register_buffer("weights", torch.tensor([age_weight, gender_weight], dtype=torch.float32))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights * losses).sum()

    def task_weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in zip(TASKS, self.weights)}


class UncertaintyWeighting(nn.Module):
    """Learned homoscedastic uncertainty: total = sum_i exp(-s_i) L_i + s_i, s_i = log sigma_i^2.

    Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses", CVPR 2018.
    The effective weight of task i is exp(-s_i); ``s`` are trainable parameters.
    """

    def __init__(self, n_tasks: int = 2):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        if losses.shape != self.log_vars.shape:
            raise ValueError(f"expected {tuple(self.log_vars.shape)} task losses, got {tuple(losses.shape)}")
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()

    def task_weights(self) -> dict[str, float]:
        return {t: float(torch.exp(-s)) for t, s in zip(TASKS, self.log_vars.detach())}


def make_weighting(kind: str, *, age_weight: float = 1.0, gender_weight: float = 1.0) -> nn.Module:
    """Factory for the loss weighting named in the config (``fixed`` or ``uncertainty``)."""
    if kind == "fixed":
        return FixedWeighting(age_weight, gender_weight)
    if kind == "uncertainty":
        return UncertaintyWeighting(len(TASKS))
    raise ValueError(f"unknown loss weighting {kind!r}; use 'fixed' or 'uncertainty'")
