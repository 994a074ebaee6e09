"""Rank-consistent ordinal regression (CORAL, Cao, Mirjalili & Raschka 2020) over age bins."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AgeBins:
    """Equal-width age bins from ``min_age`` to ``max_age``: ages <-> ranks <-> bin centres."""

    def __init__(self, *, min_age: int = 1, max_age: int = 116, width: int = 1):
        if width < 1:
            raise ValueError(f"bin width must be >= 1, got {width}")
        if max_age <= min_age:
            raise ValueError(f"max_age ({max_age}) must exceed min_age ({min_age})")
        self.min_age, self.max_age, self.width = min_age, max_age, width
        self.num_bins = math.ceil((max_age - min_age + 1) / width)

    def rank(self, age: torch.Tensor) -> torch.Tensor:
        """Bin index (0..K-1) of each age, clipped to the range."""
        return ((age - self.min_age) // self.width).clamp(0, self.num_bins - 1).long()

    def levels(self, age: torch.Tensor) -> torch.Tensor:
        """CORAL targets: (N, K-1) with level k = 1 when rank > k."""
        ranks = self.rank(age)
        thresholds = torch.arange(self.num_bins - 1, device=age.device)
        return (ranks[:, None] > thresholds[None, :]).float()

    def expected_age(self, prob_greater: torch.Tensor) -> torch.Tensor:
        """Age decoded from P(rank > k): expected rank, mapped to the centre of the bins."""
        expected_rank = prob_greater.sum(dim=1)
        return self.min_age + expected_rank * self.width + (self.width - 1) / 2

    def quantile_age(self, prob_greater: torch.Tensor, q: float) -> torch.Tensor:
        """Age at cumulative probability ``q`` of the predicted bin distribution."""
        cdf = 1 - prob_greater  # P(rank <= k) for k = 0..K-2, non-decreasing
        ones = torch.ones_like(cdf[:, :1])
        cdf = torch.cat([cdf, ones], dim=1)
        rank = (cdf < q).sum(dim=1).clamp(max=self.num_bins - 1)
        return self.min_age + rank * self.width + (self.width - 1) / 2


class CoralLayer(nn.Module):
    """One shared weight vector and K-1 ordered biases: logits_k = w.x + b_k, b_0 > b_1 > ...

    The biases are parametrised as ``b_0 - cumsum(softplus(d))`` so they are strictly decreasing,
    which makes P(rank > k) non-increasing in k for every input (rank consistency by construction).
    """

    def __init__(self, in_features: int, num_bins: int):
        super().__init__()
        if num_bins < 2:
            raise ValueError(f"CORAL needs at least 2 bins, got {num_bins}")
        self.fc = nn.Linear(in_features, 1, bias=False)
        self.first_bias = nn.Parameter(torch.zeros(1))
        self.raw_gaps = nn.Parameter(torch.full((num_bins - 2,), -2.0))

    def biases(self) -> torch.Tensor:
        gaps = F.softplus(self.raw_gaps)
        return torch.cat([self.first_bias, self.first_bias - torch.cumsum(gaps, 0)])

    def init_biases_from_prior(self, prob_greater: torch.Tensor) -> None:
        """Start from the training prior P(rank > k) so early epochs predict the label distribution."""
        p = prob_greater.clamp(1e-4, 1 - 1e-4)
        logits = torch.log(p / (1 - p))
        gaps = (logits[:-1] - logits[1:]).clamp(min=1e-3)
        with torch.no_grad():
            self.first_bias.fill_(float(logits[0]))
            self.raw_gaps.copy_(torch.log(torch.expm1(gaps)))  # inverse softplus

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 2:
            raise ValueError(f"CoralLayer expects (N, features), got shape {tuple(features.shape)}")
        return self.fc(features) + self.biases()[None, :]


def coral_loss(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the summed binary cross-entropies of the K-1 tasks."""
    if logits.shape != levels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and levels {tuple(levels.shape)} differ in shape")
    return F.binary_cross_entropy_with_logits(logits, levels, reduction="none").sum(dim=1).mean()
