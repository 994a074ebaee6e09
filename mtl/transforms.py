"""albumentations pipelines: augmentation for the training split only."""

from __future__ import annotations

import albumentations as A
import cv2


def train_augmentation(strength: float = 1.0, seed: int | None = None) -> A.Compose | None:
    """Flip, small affine and colour/brightness jitter; magnitudes scale with ``strength`` (0 = off)."""
    if strength <= 0:
        return None
    s = strength
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(1 - 0.08 * s, 1 + 0.08 * s),
                translate_percent=(-0.05 * s, 0.05 * s),
                rotate=(-10 * s, 10 * s),
                border_mode=cv2.BORDER_REFLECT_101,
                p=min(1.0, 0.7 * s),
            ),
            A.ColorJitter(brightness=0.25 * s, contrast=0.25 * s, saturation=0.25 * s, hue=0.02 * s,
                          p=min(1.0, 0.6 * s)),
            A.ToGray(p=min(0.5, 0.05 * s)),
        ],
        seed=seed,
    )
